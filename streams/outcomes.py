"""Outcomes joined to their inferences in either order (vigil.join), in the first stage: the
missed-escalation check, and each pair handed on; in the second, subgroup performance with its
safety-threshold and equity signals.

Exactly once across a crash: a batch's table changes and handovers reach Kafka as separate
records, and a SIGKILL while they are being delivered can leave some delivered and others not. A
batch delivers its join entries before its handovers. A pair is handed on again when the record
that completed it is read again (vigil.join gives it again), and a day counts it unless it took it
before (performance_monitor.Day), which needs the pair to be given by the same record: its entry,
delivered first, says which one it met at, even if the two topics are read in another order after
the crash. In the second stage a batch delivers its day counts before the release of parked pairs,
so a released pair is never lost. Pairs are counted in the order they reach the second stage:
while a model has pairs parked, its later pairs park behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.app import (
    Delivery,
    Item,
    Stored,
    app,
    cached,
    concern,
    due_queue,
    each,
    emit,
    hand_over,
    log,
    model_of,
    monitoring,
    news_of,
    send_changelogs,
    send_dead_letter,
    settings,
    table_key,
    tick_everywhere,
    writing_for,
)
from streams.registry import registration
from vigil.events import (
    HANDOVER_TOPIC,
    GuidelineChanged,
    InferenceMade,
    ModelRegistered,
    OutcomeObserved,
    ThresholdBreached,
)
from vigil.guidelines import guideline_alert
from vigil.handover import JoinedPair
from vigil.join import Entry, Met, Parked, Position, arrive
from vigil.oversight import missed_escalation
from vigil.performance import Pair, name_of
from vigil.performance_monitor import (
    PerformanceState,
    add_pairs,
    breach_candidate,
    join_key,
    pair_of,
    performance_alert,
    refused,
    waiting_form,
    window_table,
)
from vigil.performance_monitor import decode as decode_day
from vigil.performance_monitor import encode as encode_day
from vigil.performance_monitor import transitions as performance_transitions
from vigil.validation import Rejected, canonical_json
from vigil_runtime.observability import JOIN_EXPIRED, PERFORMANCE

OutcomeJoin = Entry[InferenceMade, OutcomeObserved]
ParkedPairs = Parked[InferenceMade, OutcomeObserved]

# First stage: inferences and outcomes are keyed by inference id.
joins = Stored("outcome-join", OutcomeJoin, Delivery.JOIN_ENTRIES)  # inference_id -> what waits for its other side
due = due_queue("outcome-join")  # join keys by wall-clock time of expiry, per partition
# Second stage: handovers and registry events are keyed by model_id, so the tables are co-partitioned.
registry = Stored("models", ModelRegistered)  # model_id -> its registration
registered_on = app.Table("model-partitions", default=None, key_type=bytes, value_type=bytes)  # model_id -> partition
parked = Stored("outcome-parked", ParkedPairs)  # model_id -> pairs waiting for its registration
performance_state = Stored("performance-state", PerformanceState)  # model, version -> rolling state
# model, version, day -> Bucket, in its own codec (counts per label and subgroup)
performance_days = app.Table("performance-days", default=None, key_type=bytes, value_type=bytes)


class _Batch:
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], PerformanceState] = {}
        self.pairs: dict[bytes, list[tuple[Pair, Position]]] = {}  # (model, version, day) -> pairs met, in order
        self.released = False  # parked pairs were released to be counted
        self.parked: dict[str, ParkedPairs] = {}
        self.last_of: dict[str, Item] = {}  # model_id -> its latest record: where its tables are written

    def state(self, model_id: str, version: str) -> PerformanceState:
        if (model_id, version) not in self.states:
            stored = performance_state.get(table_key(model_id, version))
            self.states[(model_id, version)] = stored or PerformanceState()
        return self.states[(model_id, version)]

    def parked_of(self, model_id: str, partition: int) -> ParkedPairs:
        if model_id not in self.parked:
            self.parked[model_id] = parked.get(model_id.encode()) or ParkedPairs(partition=partition)
        return self.parked[model_id]

    def has_parked(self, model_id: str) -> bool:
        if model_id in self.parked:
            return bool(self.parked[model_id].pairs)
        return parked.table.get(model_id.encode()) is not None

    async def release(self, model_id: str, item: Item, now: datetime) -> None:
        """Counts the pairs parked for a model now registered."""
        waited = self.parked_of(model_id, item.message.partition)
        released, waited.pairs = waited.pairs, []
        self.released = self.released or bool(released)
        for pair in released:
            await _count_pair(pair.met(), item, self, now)


@concern("join_outcomes", "inference.v1", "outcome.v1")
async def join_outcomes(items: list[Item]) -> None:
    """First stage: outcome joined to inference in either order; the escalation check; the pair handed on."""
    now = datetime.now(UTC)

    async def handle(item: Item) -> None:
        if isinstance(event := item.event, InferenceMade | OutcomeObserved):
            await _join(event, item, now)
        elif item.is_tick:
            _expire(item, now)

    await each(items, "join_outcomes", handle)


@concern("count_performance", HANDOVER_TOPIC, "model.v1")
async def count_performance(items: list[Item]) -> None:
    """Second stage: the pairs handed on counted in their days' buckets; the windows judged."""
    batch = _Batch()
    now = datetime.now(UTC)

    async def handle(item: Item) -> None:
        event = item.event
        if isinstance(event, ModelRegistered):
            registry[event.model_id.encode()] = event
            registered_on[event.model_id.encode()] = str(item.message.partition).encode()
            batch.last_of[event.model_id] = item
            await batch.release(event.model_id, item, now)
        elif item.handover is not None and item.handover.pairs:
            batch.last_of[item.handover.model_id] = item
            for pair in item.handover.pairs:
                await _count_pair(pair.met(), item, batch, now)
        elif isinstance(event, GuidelineChanged):  # keyed by its own id: tell every partition's models
            await tick_everywhere(guideline=canonical_json(event))
        elif item.is_tick:
            if guideline := news_of(item, "guideline"):
                await _tell_affected(GuidelineChanged.model_validate_json(guideline), item.message.partition)
            await _release_or_refuse_parked(item, batch, now)

    await each(items, "count_performance", handle)
    for key, pairs in batch.pairs.items():
        model = _registered(model_of(key))
        assert model is not None  # pairs of unregistered models are parked
        policy = monitoring.for_model(model.model_id).performance
        writing_for(batch.last_of[model.model_id].record)
        day = decode_day(performance_days.get(key))
        add_pairs(day.counts, day.new(pairs), model, policy.attributes, policy.depth)
        performance_days[key] = encode_day(day)
    if batch.released:  # the counts of released pairs before their release
        await send_changelogs(performance_days)
    for model_id, waiting in batch.parked.items():
        writing_for(batch.last_of[model_id].record)
        if waiting.pairs:
            parked[model_id.encode()] = waiting
        else:
            parked.pop(model_id.encode())
    for (model_id, version), state in batch.states.items():
        writing_for(batch.last_of[model_id].record)
        await _judge_performance(model_id, version, state)
        performance_state[table_key(model_id, version)] = state


def _registered(model_id: str) -> ModelRegistered | None:
    return registry.read(model_id.encode())


async def _join(event: InferenceMade | OutcomeObserved, item: Item, now: datetime) -> None:
    model = registration(event.model_id)
    if isinstance(event, OutcomeObserved) and model and (why := refused(event, model)):
        await send_dead_letter(why, *item.position, item.message.value)  # a label outside the set; unknown models wait
        return
    # Wall-clock time: an inference never followed up is forgotten after the horizon, however far
    # behind its stream is read.
    horizon = timedelta(days=monitoring.for_model(event.model_id).performance.horizon_days)
    side = OutcomeJoin(model_id=event.model_id, partition=item.message.partition, due=now + horizon)
    if isinstance(event, InferenceMade):
        new = side.holding(item.position, left=waiting_form(event))
    else:
        new = side.holding(item.position, right=event)
    key = join_key(event).encode()
    arrival = arrive(joins.get(key), new, item.position, "outcome", "performance")
    if not arrival.repeat:
        joins[key] = arrival.entry
    if arrival.to_queue:
        due.add(item.message.partition, horizon, arrival.entry.due, key)
    if arrival.refused:  # it would count in another model's performance
        refusal = arrival.refused
        await send_dead_letter(refusal.why, *refusal.right_from, canonical_json(refusal.right).encode())
    if met := arrival.met:  # met now, or given again (the events it raises have fixed ids)
        await _check_escalation(met.left, met.right)
        pair = JoinedPair(left=met.left, right=met.right, right_from=met.right_from, at=met.at, since=now)
        hand_over(met.left.model_id).pairs.append(pair)


async def _count_pair(met: Met[InferenceMade, OutcomeObserved], item: Item, batch: _Batch, now: datetime) -> None:
    """Adds a joined pair to its day's pairs of this batch. A pair of a model whose registration the
    worker has not seen yet (on a fresh start, topics are read in parallel) is parked until it
    comes, and so is one whose model still has pairs parked: pairs are counted in the order they met."""
    inference, outcome = met.left, met.right
    model = _registered(inference.model_id)
    if model is None or batch.has_parked(inference.model_id):
        batch.parked_of(inference.model_id, item.message.partition).park(met, now)
        return
    if why := refused(outcome, model):
        await send_dead_letter(why, *met.right_from, canonical_json(outcome).encode())
        return
    policy = monitoring.for_model(model.model_id).performance
    state = batch.state(model.model_id, inference.model_version)
    attributes = state.capped(policy.max_values).apply(inference.subgroup, policy.attributes)
    day = inference.occurred_at.date()
    pairs = batch.pairs.setdefault(table_key(model.model_id, inference.model_version, day.isoformat()), [])
    pairs.append((pair_of(inference, outcome, attributes), met.at))
    state.counted(inference.occurred_at, inference.event_id)  # also for a pair given again: its day may be new


def _expire(tick: Item, now: datetime) -> None:
    """First stage, on the tick's partition: forgets join entries past the horizon (inferences
    never followed up, outcomes never matched: counted)."""
    for key in due.due(tick.message.partition, now):
        entry = joins.get(key)
        if entry is None or entry.due > now:  # gone, or moved on since it was indexed
            continue
        joins.pop(key)
        if not entry.paired:
            JOIN_EXPIRED.labels(entry.model_id, "inference" if entry.left else "outcome").inc()


async def _release_or_refuse_parked(tick: Item, batch: _Batch, now: datetime) -> None:
    """Second stage, on the tick's partition: dead-letters parked pairs whose model is still not
    registered after the grace period (those of a model registered meanwhile are counted)."""
    partition = tick.message.partition
    for key, waiting in parked.items():
        model_id = key.decode()
        if waiting.partition != partition:
            continue
        batch.last_of.setdefault(model_id, tick)
        if _registered(model_id) is not None:
            await batch.release(model_id, tick, now)
            continue
        for gone in batch.parked_of(model_id, partition).overstayed(now, timedelta(seconds=settings.registry_grace)):
            why = Rejected(
                f"outcome for model {model_id!r}, which no ModelRegistered event names "
                f"(waited {settings.registry_grace:g} s); not counted in performance",
                "unknown_model",
                "model_id",
            )
            await send_dead_letter(why, *gone.right_from, canonical_json(gone.right).encode())


async def _tell_affected(guideline: GuidelineChanged, partition: int) -> None:
    """An alert for each model registered on this partition whose use case the guideline names."""
    for key, on in list(registered_on.items()):
        model = _registered(key.decode())
        if int(on) == partition and model is not None and (alert := guideline_alert(guideline, model)):
            await emit(alert)
            log.warning("worker.guideline", model_id=model.model_id, guideline_id=guideline.guideline_id)


async def _check_escalation(inference: InferenceMade, outcome: OutcomeObserved) -> None:
    if found := missed_escalation(inference, outcome, monitoring.for_model(inference.model_id).reporting.counting):
        for event in found:
            await emit(event)
        log.warning("worker.escalation_missed", model_id=inference.model_id, event_id=str(inference.event_id))


async def _judge_performance(model_id: str, version: str, state: PerformanceState) -> None:
    model = _registered(model_id)
    assert model is not None
    policy = monitoring.for_model(model_id).performance
    rules = policy.rules(model.risk_class)
    days = state.window(policy.window_days)
    keys = (table_key(model_id, version, d.isoformat()) for d in days)
    table = window_table(day.counts for key in keys if (day := cached(performance_days, key, decode_day)))
    for (label, subgroup), counts in table.items():
        if len(subgroup) <= 1 and (value := counts.value(rules.metric)) is not None:
            PERFORMANCE.labels(model_id, version, label, rules.metric, name_of(subgroup)).set(value)
    for signal in performance_transitions(state, model_id, version, table, rules, policy.window_days):
        await emit(signal)
        await emit(performance_alert(signal))
        if isinstance(signal, ThresholdBreached) and (
            candidate := breach_candidate(signal, model, monitoring.for_model(model_id).reporting.counting)
        ):
            await emit(candidate)
        log.warning("worker.performance", model_id=model_id, model_version=version, event_type=signal.event_type)
