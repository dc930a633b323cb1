"""Human oversight: reviews joined to their inferences, outputs past their review time counted,
rolling windows judged against the policy.

Exactly once across a crash, as for outcomes (outcomes.py): a batch delivers its join entries
before the day tallies they made; each record's counts are kept apart in the batch, and a day
takes them unless it has taken that record before (vigil.join.takes). An output that falls due
unreviewed is not forgotten at once but marked with the tick that counted it, so that the tick,
read again after a crash, counts it again (or finds it counted); the mark goes an hour later."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from streams.app import (
    STARTED,
    Item,
    Stored,
    concern,
    due_index,
    each,
    emit,
    log,
    model_of,
    monitoring,
    send_changelogs,
    send_dead_letter,
    table_key,
    writing_for,
)
from vigil.events import InferenceMade, ReviewRecorded
from vigil.join import Arrival, Entry, Position, arrive
from vigil.oversight import (
    Awaiting,
    ModelOversight,
    OversightDay,
    Tally,
    assess,
    awaiting,
    clock_now,
    count_inference,
    count_review,
    count_unreviewed,
    oversight_alert,
    review_deadline,
    review_let_go,
    transitions,
)
from vigil.rolling import RollingState
from vigil.validation import canonical_json
from vigil_runtime.observability import OVERSIGHT, OVERSIGHT_ACTIVE, REVIEWS_UNMATCHED

ReviewJoin = Entry[Awaiting, ReviewRecorded]

# Inferences and reviews are keyed by model_id, so the tables are co-partitioned.
joins = Stored("oversight-join", ReviewJoin)  # inference_id -> what waits for its other side
oversight_state = Stored("oversight-state", ModelOversight)  # model_id -> clock and rolling windows
oversight_days = Stored("oversight-days", OversightDay)  # model, version, day -> its tally
# Join keys by when they fall due on their model's oversight clock (event time), per partition and
# model; entries counted as they fell due, by wall-clock time, in the partition's lane "".
due = due_index()
KEEP_EXPIRED = timedelta(hours=1)  # long past any record read again after a crash


class _Oversight:
    def __init__(self) -> None:
        self.models: dict[str, ModelOversight] = {}
        # Counted in this batch, per (model, version, day): each record's counts, in the order read.
        self.tallies: dict[bytes, dict[Position, Tally]] = {}
        self.last_of: dict[str, Item] = {}  # model_id -> its latest record: where its tables are written

    def model(self, model_id: str) -> ModelOversight:
        """The model's state, to change in this batch and write at its end."""
        if model_id not in self.models:
            self.models[model_id] = self.stored(model_id)
        return self.models[model_id]

    def stored(self, model_id: str) -> ModelOversight:
        """The model's state as it stands, to read."""
        if found := self.models.get(model_id):
            return found
        model = oversight_state.get(model_id.encode()) or ModelOversight()
        model.clock.woke(STARTED)
        return model

    def tally(self, model_id: str, version: str, at: datetime, inference_id: uuid.UUID, source: Item) -> Tally:
        """Where the record `source` counts an output made at `at`."""
        self.model(model_id).versions.setdefault(version, RollingState()).counted(at, inference_id)
        by_record = self.tallies.setdefault(table_key(model_id, version, at.date().isoformat()), {})
        return by_record.setdefault(source.position, Tally())


@concern("watch_oversight", "inference.v1", "review.v1")
async def watch_oversight(items: list[Item]) -> None:
    """Reviews joined to their inferences, outputs past their review time counted; windows judged."""
    batch = _Oversight()
    now = datetime.now(UTC)

    async def handle(item: Item) -> None:
        event = item.event
        if isinstance(event, InferenceMade):
            batch.last_of[event.model_id] = item
            await _oversee_inference(event, item, batch, now)
        elif isinstance(event, ReviewRecorded):
            batch.last_of[event.model_id] = item
            await _oversee_review(event, item, batch, now)
        elif item.is_tick:
            _expire_reviews(item, batch, now)

    await each(items, "watch_oversight", handle)
    if batch.tallies:  # the entries that made them before the tallies (see above)
        await send_changelogs(joins.table)
    for key, by_record in batch.tallies.items():
        writing_for(batch.last_of[model_of(key)].record)
        day = oversight_days.get(key) or OversightDay()
        day.add(by_record)
        oversight_days[key] = day
    for model_id, version in sorted({tuple(key.decode().split("\x1f")[:2]) for key in batch.tallies}):
        writing_for(batch.last_of[model_id].record)
        await _judge_oversight(model_id, version, batch.models[model_id].versions[version])
    for model_id, model in batch.models.items():
        writing_for(batch.last_of[model_id].record)
        oversight_state[model_id.encode()] = model


async def _oversee_inference(inference: InferenceMade, item: Item, batch: _Oversight, now: datetime) -> None:
    policy = monitoring.for_model(inference.model_id).oversight
    model = batch.model(inference.model_id)
    model.clock.partition = item.message.partition
    model.clock.saw_inference(inference, now)
    key = str(inference.event_id).encode()
    output = awaiting(inference, policy)
    if output is None:  # patient-facing: nothing to review, and a review waiting for it counts against nothing
        if joins.get(key) is not None:
            joins.pop(key)
            REVIEWS_UNMATCHED.labels(inference.model_id).inc()
        count_inference(batch.tally(inference.model_id, inference.model_version, inference.occurred_at,
                                    inference.event_id, item), inference, policy)  # fmt: skip
        return
    new = ReviewJoin(model_id=inference.model_id, partition=item.message.partition,
                     due=review_deadline(output, policy), left=output, left_from=item.position)  # fmt: skip
    arrival = await _arrive(key, new, item)
    if arrival.repeat and not arrival.again:
        return  # a repeat of an inference within its review time
    tally = batch.tally(inference.model_id, inference.model_version, inference.occurred_at, inference.event_id, item)
    count_inference(tally, inference, policy)
    if arrival.met:
        count_review(tally, arrival.met.left, arrival.met.right, policy)


async def _oversee_review(review: ReviewRecorded, item: Item, batch: _Oversight, now: datetime) -> None:
    policy = monitoring.for_model(review.model_id).oversight
    model = batch.model(review.model_id)
    model.clock.partition = item.message.partition
    model.clock.saw_review(review, now)
    new = ReviewJoin(model_id=review.model_id, partition=item.message.partition,
                     due=review_let_go(review, policy), right=review, right_from=item.position)  # fmt: skip
    arrival = await _arrive(str(review.inference_id).encode(), new, item)
    if met := arrival.met:  # the first review of an output decides; a repeat or a second opinion does not count
        output = met.left
        tally = batch.tally(review.model_id, output.model_version, output.made_at, output.inference_id, item)
        count_review(tally, output, met.right, policy)


async def _arrive(key: bytes, new: ReviewJoin, item: Item) -> Arrival[Awaiting, ReviewRecorded]:
    """The join's step for one record: what waits is written and indexed, a refused review dead-lettered."""
    arrival = arrive(joins.get(key), new, item.position, "review", "oversight")
    if arrival.repeat and arrival.entry.expired_at and new.right is not None:
        REVIEWS_UNMATCHED.labels(new.model_id).inc()  # came after its output was counted unreviewed
    if not arrival.repeat:
        joins[key] = arrival.entry
        due.add((item.message.partition, arrival.entry.model_id), arrival.entry.due, key)
    if refusal := arrival.refused:
        await send_dead_letter(refusal.why, *refusal.right_from, canonical_json(refusal.right).encode())
    return arrival


def _expire_reviews(tick: Item, batch: _Oversight, now: datetime) -> None:
    """On the tick's partition: counts outputs past their review time as unreviewed and forgets
    reviews whose inference did not come, each model by its own oversight clock."""
    partition = tick.message.partition
    if not due.filled(partition):
        due.fill(partition, (((e.partition, "" if e.expired_at else e.model_id), e.due, k, e.expired_at)
                             for k, e in joins.items()))  # fmt: skip
    for key in due.expired_by(tick.position):  # read again after a crash: count them again
        if (entry := joins.get(key)) is not None and entry.left is not None:
            _count_unreviewed(entry.model_id, entry.left, tick, batch)
    for lane in due.lanes(partition):
        model_id = lane[1]
        if not model_id:  # entries counted as they fell due, kept an hour
            for key in due.due(lane, now):
                if (entry := joins.get(key)) is not None and entry.expired_at and entry.due <= now:
                    joins.pop(key)
            continue
        policy = monitoring.for_model(model_id).oversight
        clock_time = clock_now(batch.stored(model_id).clock, policy, now)
        if clock_time is None:
            continue
        for key in due.due(lane, clock_time):
            entry = joins.get(key)
            if entry is None or entry.expired_at or entry.due > clock_time:  # gone, or moved on since it was indexed
                continue
            batch.last_of.setdefault(model_id, tick)
            if not entry.paired and entry.left is not None and entry.left.due:
                joins[key] = entry.expired(tick.position, keep_until=now + KEEP_EXPIRED)
                due.add((partition, ""), now + KEEP_EXPIRED, key)
                _count_unreviewed(model_id, entry.left, tick, batch)
                continue
            joins.pop(key)
            if not entry.paired and entry.right is not None:
                REVIEWS_UNMATCHED.labels(model_id).inc()


def _count_unreviewed(model_id: str, output: Awaiting, tick: Item, batch: _Oversight) -> None:
    batch.last_of.setdefault(model_id, tick)
    count_unreviewed(batch.tally(model_id, output.model_version, output.made_at, output.inference_id, tick), output)


async def _judge_oversight(model_id: str, version: str, state: RollingState) -> None:
    policy = monitoring.for_model(model_id).oversight
    window = Tally()
    for day in state.window(policy.window_days):
        if stored := oversight_days.read(table_key(model_id, version, day.isoformat())):
            window += stored.tally
    findings = assess(window, policy)
    for finding in findings:
        OVERSIGHT.labels(model_id, version, finding.kind).set(finding.value)
    for signal in transitions(state, model_id, version, window, findings, policy.window_days):
        await emit(signal)
        await emit(oversight_alert(signal))
        log.warning("worker.oversight", model_id=model_id, model_version=version, kind=signal.kind,
                    event_type=signal.event_type)  # fmt: skip
    for finding in findings:  # from the state, so that a restarted worker shows what stands
        OVERSIGHT_ACTIVE.labels(model_id, version, finding.kind).set(int(finding.kind in state.standing))
