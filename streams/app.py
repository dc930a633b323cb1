"""The Faust worker: topics and thin agents. Each agent decodes, calls the core, emits."""

from __future__ import annotations

import json
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import faust.streams as faust_streams
import structlog
from faust.types import Message

from services.observability import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    DRIFT_ACTIVE,
    DRIFT_SCORE,
    DRIFT_SKIPPED,
    EVENTS_IN,
    EVENTS_OUT,
    INCIDENTS,
    JOIN_EXPIRED,
    LATENCY,
    OVERSIGHT,
    OVERSIGHT_ACTIVE,
    PERFORMANCE,
    PROCESSING_ERRORS,
    REPORT_NEXT_DUE,
    REPORTS_OVERDUE,
    REVIEWS_UNMATCHED,
)
from services.settings import get_settings
from vigil.drift_monitor import (
    MonitorState,
    closable,
    drift_alert,
    judge,
    let_time_pass,
    place,
    reference_event,
    signals,
    transitions,
    woke,
)
from vigil.drift_windows import Profile, Window, from_record, profiles_of
from vigil.events import (
    ALERT_TOPIC,
    CLOCK_TOPIC,
    DEADLETTER_TOPIC,
    EVENT_TYPES,
    INCIDENT_EVENTS,
    INPUT_TOPICS,
    SURVEILLANCE_TOPIC,
    TOPIC_OF,
    DriftReferenceSet,
    DriftResolved,
    Event,
    InferenceMade,
    ModelRegistered,
    OutcomeObserved,
    OversightRestored,
    ReviewRecorded,
    ThresholdBreached,
    partition_key,
)
from vigil.incidents import Inbox, Incident, clock_alert, clock_events, evolve, inbox
from vigil.oversight import (
    Awaiting,
    ModelOversight,
    OversightClock,
    Tally,
    assess,
    awaiting,
    count_inference,
    count_review,
    count_unreviewed,
    missed_escalation,
    overdue,
    oversight_alert,
    unmatched,
)
from vigil.oversight import transitions as oversight_transitions
from vigil.performance import Counts, name_of
from vigil.performance_monitor import (
    Bucket,
    PerformanceState,
    add_pair,
    breach_candidate,
    join_key,
    meet,
    mismatched,
    pair_of,
    performance_alert,
    refused,
    waiting_form,
    window_table,
)
from vigil.performance_monitor import decode as decode_bucket
from vigil.performance_monitor import encode as encode_bucket
from vigil.performance_monitor import (
    transitions as performance_transitions,
)
from vigil.policy import load_policy
from vigil.rolling import RollingState
from vigil.validation import Rejected, canonical_json, dead_letter, decode

settings = get_settings()
log = structlog.get_logger("worker")
STARTED = datetime.now(UTC)  # streams silent since before this were not heard because the worker was down
T = TypeVar("T")

monitoring = load_policy(settings.policy_file)
app = faust.App(
    settings.worker_id,
    datadir=str(settings.home / "worker-data"),
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    web_enabled=False,
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    value_serializer="raw",
    key_serializer="raw",
)

inputs = app.topic(*settings.topics(INPUT_TOPICS), value_serializer="raw", key_serializer="raw")
deadletters = app.topic(settings.topic(DEADLETTER_TOPIC), value_serializer="raw", key_serializer="raw")


async def each_record(stream: faust.StreamT, agent: str, handle: Callable[[Message], Awaitable[None]]) -> None:
    """Runs `handle` on every record. An unexpected error is logged with the record's position and
    counted, and the agent goes on: one bad record must not stop a stream."""
    async for record in stream.events():
        message = record.message
        try:
            await handle(message)
        except Exception:
            _failed(agent, message)


async def each_in_batch(
    records: list[faust.EventT], agent: str, handle: Callable[[faust.EventT, Event | None], Awaitable[None]]
) -> None:
    """`each_record` for a batch from `take_events`: the record's table writes go to its partition."""
    for record in records:
        message = record.message
        try:
            _writing_for(record)
            await handle(record, _decoded(message.value, message.topic))
        except Exception:
            _failed(agent, message)


async def each_batch(
    stream: faust.StreamT, agent: str, process: Callable[[list[faust.EventT]], Awaitable[None]]
) -> None:
    """Batches of up to 500 records, so that each table key is written once per batch. `process`
    handles the records one by one (`each_in_batch`), then writes and judges what they changed; an
    error there is logged with the batch's positions and counted, and the agent goes on, as after a
    bad record, instead of crashing and being restarted over and over by Faust."""
    async for batch in stream.take_events(500, within=1.0):
        try:
            await process(batch)
        except Exception:
            PROCESSING_ERRORS.labels(agent, "batch").inc()
            positions = sorted({(settings.logical_topic(r.message.topic), r.message.partition) for r in batch})
            log.exception("worker.batch_error", agent=agent, records=len(batch), partitions=positions,
                          first_offset=batch[0].message.offset, last_offset=batch[-1].message.offset)  # fmt: skip


def _failed(agent: str, message: Message) -> None:
    topic = settings.logical_topic(message.topic)
    PROCESSING_ERRORS.labels(agent, topic).inc()
    log.exception(
        "worker.processing_error", agent=agent, topic=topic, partition=message.partition, offset=message.offset
    )


@app.agent(inputs)
async def validate(stream: faust.StreamT) -> None:
    """Every input record is either a valid event or a dead letter with its reason; never a crash."""
    await each_record(stream, "validate", _validate)


async def _validate(message: Message) -> None:
    topic = settings.logical_topic(message.topic)
    EVENTS_IN.labels("worker", topic).inc()
    try:
        decode(message.value, topic)
    except Rejected as rejected:
        await _dead_letter(rejected, message.topic, message.partition, message.offset, message.value)
    LATENCY.labels("worker").observe(max(0.0, time.time() - message.timestamp))


@app.timer(interval=5.0)
async def report_lag() -> None:
    consumer = app.consumer
    for tp in consumer.assignment():
        position = await consumer.position(tp)
        if position is not None:
            lag = max(0, consumer.highwater(tp) - position)
            CONSUMER_LAG.labels("worker", settings.logical_topic(tp.topic), str(tp.partition)).set(lag)


clock = app.topic(settings.topic(CLOCK_TOPIC), value_serializer="raw", key_serializer="raw")


@app.timer(interval=settings.clock_interval, on_leader=True)
async def tick() -> None:
    """A tick on every partition: agents that wait on wall-clock time get it where their state lives."""
    now = json.dumps({"at": datetime.now(UTC).isoformat()}).encode()
    for partition in range(settings.topic_partitions):
        await clock.send(value=now, partition=partition)


def _is_tick(record: faust.EventT) -> bool:
    return record.message.topic == clock.get_topic_name()


# --- incidents: regulatory clocks ---------------------------------------------------------------
# Incident events are keyed by incident_id on both topics, so the table is co-partitioned.
incident_events = app.topic(
    *settings.topics(("incident.v1", SURVEILLANCE_TOPIC)), value_serializer="raw", key_serializer="raw"
)
incident_table = app.Table("incidents", default=None, key_type=bytes, value_type=bytes)
outputs = {
    name: app.topic(settings.topic(name), value_serializer="raw", key_serializer="raw")
    for name in (ALERT_TOPIC, SURVEILLANCE_TOPIC, "model.v1")
}


def _decoded(value: bytes, topic: str) -> Event | None:
    try:
        return decode(value, settings.logical_topic(topic))
    except Rejected:
        return None  # the validating agent dead-letters it


async def emit(event: Event) -> None:
    topic = TOPIC_OF[event.event_type]  # type: ignore[attr-defined]
    await outputs[topic].send(key=partition_key(event), value=canonical_json(event).encode())
    EVENTS_OUT.labels("worker", topic).inc()


@app.agent(incident_events)
async def track_incidents(stream: faust.StreamT) -> None:
    await each_record(stream, "track_incidents", _track_incident)


async def _track_incident(message: Message) -> None:
    event = _decoded(message.value, message.topic)
    if not isinstance(event, INCIDENT_EVENTS):
        return
    key = str(event.incident_id).encode()  # type: ignore[attr-defined]
    stored = incident_table.get(key)
    state = evolve(Incident.model_validate_json(stored) if stored else None, event)
    if state is not None:
        incident_table[key] = state.model_dump_json().encode()


@app.timer(interval=settings.clock_interval)
async def run_clocks() -> None:
    """Raise ReportDueSoon / ReportOverdue (and an alert) for every open clock that is due; show the inbox."""
    now = datetime.now(UTC)
    states = []
    for key, value in list(incident_table.items()):
        try:
            state = Incident.model_validate_json(value)
            states.append(state)
            for event in clock_events(state, now):
                await emit(event)
                await emit(clock_alert(event, state.model_id))  # type: ignore[arg-type]
                log.info("worker.clock", incident_id=str(state.incident_id), event_type=event.event_type)
        except Exception:
            PROCESSING_ERRORS.labels("run_clocks", SURVEILLANCE_TOPIC).inc()
            log.exception("worker.clock_error", incident_id=key.decode())
    _show_inbox(inbox(states, now))


def _show_inbox(summary: Inbox) -> None:
    for (model_id, status), n in summary.by_status.items():
        INCIDENTS.labels(model_id, status).set(n)
    for regime, n in summary.overdue.items():
        REPORTS_OVERDUE.labels(regime).set(n)
    REPORT_NEXT_DUE.clear()
    for regime, seconds in summary.next_due.items():
        REPORT_NEXT_DUE.labels(regime).set(seconds)


# --- outcomes: joined to their inferences, for oversight and subgroup performance ---------------
# Inferences, outcomes and registry events are keyed by model_id, so the tables are co-partitioned.
join_events = app.topic(
    *settings.topics(("inference.v1", "outcome.v1", "model.v1", CLOCK_TOPIC)),
    value_serializer="raw",
    key_serializer="raw",
)
registry = app.Table("models", default=None, key_type=bytes, value_type=bytes)  # model_id -> ModelRegistered
waiting = app.Table("outcome-join", default=None, key_type=bytes, value_type=bytes)  # inference_id -> one side
performance_state = app.Table("performance-state", default=None, key_type=bytes, value_type=bytes)
performance_days = app.Table("performance-days", default=None, key_type=bytes, value_type=bytes)
_swept: dict[int, float] = {}  # partition -> when its waiting entries were last checked for expiry


@app.agent(join_events)
async def join_outcomes(stream: faust.StreamT) -> None:
    """Outcome joined to inference in either order; then the escalation check and the performance buckets."""
    await each_batch(stream, "join_outcomes", _join_batch)


class _Batch:
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], PerformanceState] = {}
        self.buckets: dict[bytes, Bucket] = {}
        self.last_of: dict[str, faust.EventT] = {}


async def _join_batch(records: list[faust.EventT]) -> None:
    batch = _Batch()

    async def handle(record: faust.EventT, event: Event | None) -> None:
        message = record.message
        if isinstance(event, ModelRegistered):
            registry[event.model_id.encode()] = canonical_json(event).encode()
            batch.last_of[event.model_id] = record
            await _release_parked(event.model_id, message, batch)
        elif isinstance(event, InferenceMade | OutcomeObserved):
            batch.last_of[event.model_id] = record
            await _join(event, message, batch)
        elif _is_tick(record) and time.monotonic() - _swept.get(message.partition, 0.0) > min(
            60.0, settings.registry_grace
        ):
            await _sweep(message.partition)

    await each_in_batch(records, "join_outcomes", handle)
    for key, bucket in batch.buckets.items():
        _writing_for(batch.last_of[_model_of(key)])
        stored = decode_bucket(performance_days.get(key))
        for name, counts in bucket.items():
            stored[name] = stored.get(name, Counts()) + counts
        performance_days[key] = encode_bucket(stored)
    for (model_id, version), state in batch.states.items():
        _writing_for(batch.last_of[model_id])
        await _judge_performance(model_id, version, state)
        performance_state[_key(model_id, version)] = state.model_dump_json().encode()


def _registered(model_id: str) -> ModelRegistered | None:
    return _cached(registry, model_id.encode(), ModelRegistered.model_validate_json)


_decoded_values: dict[tuple[str, bytes], tuple[bytes, Any]] = {}


def _cached(table: faust.Table, key: bytes, decode_value: Callable[[bytes], T]) -> T | None:
    """A table value decoded once, while the stored bytes stay the same object: these are read for
    every event, and change only when a model registers or gets a new reference."""
    raw = table.get(key)
    if raw is None:
        return None
    hit = _decoded_values.get((table.name, key))
    if hit is None or hit[0] is not raw:
        hit = (raw, decode_value(raw))
        _decoded_values[(table.name, key)] = hit
    return hit[1]


async def _join(event: InferenceMade | OutcomeObserved, message: Message, batch: _Batch) -> None:
    key = join_key(event).encode()
    position = (message.topic, message.partition, message.offset)
    if isinstance(event, OutcomeObserved) and (model := _registered(event.model_id)) and (why := refused(event, model)):
        await _dead_letter(why, *position, message.value)  # a label outside the set; unknown models wait
        return
    stored = json.loads(raw) if (raw := waiting.get(key)) else None
    other = EVENT_TYPES[stored["side"]].model_validate_json(stored["event"]) if stored else None
    pair = meet(other, event)  # type: ignore[arg-type]
    if pair is None:
        if stored is None:
            kept = waiting_form(event) if isinstance(event, InferenceMade) else event
            waiting[key] = _entry(
                event.event_type, event.model_id, message, event=canonical_json(kept), position=position
            )
        return
    del waiting[key]
    inference, outcome = pair
    where = position if isinstance(event, OutcomeObserved) else tuple(stored["position"])  # type: ignore[index]
    if why := mismatched(inference, outcome):  # its buckets would sit in another model's partition
        await _dead_letter(why, *where, canonical_json(outcome).encode())
        return
    await _check_escalation(inference, outcome)
    await _count_pair(inference, outcome, where, message, batch)


def _entry(side: str, model_id: str, message: Message, **content: object) -> bytes:
    """A waiting entry. `partition` is the changelog partition it is written to (the current
    record's): the sweep deletes only entries of the partition it runs for."""
    head = {"side": side, "model_id": model_id, "at": time.time(), "partition": message.partition}
    return json.dumps(head | content).encode()


def _parked_key(model_id: str, inference_id: str) -> bytes:
    return _key("parked", model_id, inference_id)


async def _count_pair(
    inference: InferenceMade, outcome: OutcomeObserved, where: tuple, message: Message, batch: _Batch
) -> None:
    """Adds a joined pair to its day's bucket. A pair of a model whose registration the worker has
    not seen yet (on a fresh start, topics are read in parallel) waits for it."""
    model = _registered(inference.model_id)
    if model is None:
        parked = {"inference": canonical_json(inference), "outcome": canonical_json(outcome), "position": where}
        waiting[_parked_key(inference.model_id, str(inference.event_id))] = _entry(
            "pair", inference.model_id, message, **parked
        )
        return
    if why := refused(outcome, model):
        await _dead_letter(why, *where, canonical_json(outcome).encode())
        return
    policy = monitoring.for_model(model.model_id).performance
    version = inference.model_version
    if (model.model_id, version) not in batch.states:
        stored = performance_state.get(_key(model.model_id, version))
        batch.states[(model.model_id, version)] = (
            PerformanceState.model_validate_json(stored) if stored else PerformanceState()
        )
    state = batch.states[(model.model_id, version)]
    attributes = state.capped(policy.max_values).apply(inference.subgroup, policy.attributes)
    day = inference.occurred_at.date()
    bucket = batch.buckets.setdefault(_key(model.model_id, version, day.isoformat()), {})
    add_pair(bucket, pair_of(inference, outcome, attributes), model, policy.attributes, policy.depth)
    state.counted(inference.occurred_at, inference.event_id)


async def _release_parked(model_id: str, message: Message, batch: _Batch) -> None:
    prefix = _parked_key(model_id, "")
    for key, value in list(waiting.items()):
        if key.startswith(prefix):
            del waiting[key]
            entry = json.loads(value)
            inference = InferenceMade.model_validate_json(entry["inference"])
            outcome = OutcomeObserved.model_validate_json(entry["outcome"])
            await _count_pair(inference, outcome, tuple(entry["position"]), message, batch)


async def _sweep(partition: int) -> None:
    """Forget entries older than the horizon (inferences never followed up, outcomes never matched),
    counted; dead-letter pairs whose model is still not registered after the grace period. Only
    this partition's entries: their changelog partition is the current record's."""
    _swept[partition] = time.monotonic()
    now = time.time()
    for key, value in list(waiting.items()):
        entry = json.loads(value)
        if entry["partition"] != partition:
            continue
        if entry["side"] == "pair" and now - entry["at"] > settings.registry_grace:
            del waiting[key]
            why = Rejected(
                f"outcome for model {entry['model_id']!r}, which no ModelRegistered event names "
                f"(waited {settings.registry_grace:g} s); not counted in performance",
                "unknown_model",
                "model_id",
            )
            await _dead_letter(why, *entry["position"], entry["outcome"].encode())
        elif now - entry["at"] > monitoring.for_model(entry["model_id"]).performance.horizon_days * 86_400:
            del waiting[key]
            JOIN_EXPIRED.labels(entry["model_id"], entry["side"]).inc()


async def _dead_letter(why: Rejected, topic: str, partition: int, offset: int, raw: bytes) -> None:
    letter = dead_letter(why, topic, partition, offset, raw, datetime.now(UTC))
    await deadletters.send(key=topic.encode(), value=letter.model_dump_json().encode())
    logical = settings.logical_topic(topic)
    DEAD_LETTERS.labels(logical, why.kind).inc()
    EVENTS_OUT.labels("worker", DEADLETTER_TOPIC).inc()
    log.info("worker.dead_lettered", topic=logical, partition=partition, offset=offset, reason_kind=why.kind,
             path=why.path)  # fmt: skip


async def _check_escalation(inference: InferenceMade, outcome: OutcomeObserved) -> None:
    if found := missed_escalation(inference, outcome):
        for event in found:
            await emit(event)
        log.warning("worker.escalation_missed", model_id=inference.model_id, event_id=str(inference.event_id))


async def _judge_performance(model_id: str, version: str, state: PerformanceState) -> None:
    model = _registered(model_id)
    assert model is not None
    policy = monitoring.for_model(model_id).performance
    rules = policy.rules(model.risk_class)
    days = state.window(policy.window_days)
    table = window_table(decode_bucket(performance_days.get(_key(model_id, version, d.isoformat()))) for d in days)
    for (label, subgroup), counts in table.items():
        if len(subgroup) <= 1 and (value := counts.value(rules.metric)) is not None:
            PERFORMANCE.labels(model_id, version, label, rules.metric, name_of(subgroup)).set(value)
    for signal in performance_transitions(state, model_id, version, table, rules, policy.window_days):
        await emit(signal)
        await emit(performance_alert(signal))
        if isinstance(signal, ThresholdBreached) and (candidate := breach_candidate(signal, model)):
            await emit(candidate)
        log.warning("worker.performance", model_id=model_id, model_version=version, event_type=signal.event_type)


# --- drift: windows per model version against its reference -------------------------------------
# Inferences and references are keyed by model_id on both topics, so the tables are co-partitioned.
drift_events = app.topic(
    *settings.topics(("inference.v1", "model.v1", CLOCK_TOPIC)), value_serializer="raw", key_serializer="raw"
)
drift_state = app.Table("drift-state", default=None, key_type=bytes, value_type=bytes)
drift_references = app.Table("drift-references", default=None, key_type=bytes, value_type=bytes)
drift_windows = app.Table("drift-windows", default=None, key_type=bytes, value_type=bytes)


def _key(*parts: str) -> bytes:
    return "\x1f".join(parts).encode()


def _model_of(key: bytes) -> str:
    return key.split(b"\x1f")[0].decode()


def profiles_for(version_key: bytes) -> dict[str, Profile] | None:
    return _cached(
        drift_references,
        version_key,
        lambda raw: {p.feature: from_record(p) for p in DriftReferenceSet.model_validate_json(raw).profiles},
    )


@app.agent(drift_events)
async def watch_drift(stream: faust.StreamT) -> None:
    """Inferences into windows against their version's reference; closed windows judged."""
    await each_batch(stream, "watch_drift", _drift_batch)


async def _drift_batch(batch: list[faust.EventT]) -> None:
    states: dict[tuple[str, str], MonitorState] = {}
    added: dict[bytes, Window] = {}
    last_of: dict[str, faust.EventT] = {}  # model_id -> its latest record in the batch

    ticks: list[faust.EventT] = []

    async def handle(record: faust.EventT, event: Event | None) -> None:
        if isinstance(event, DriftReferenceSet):
            _set_reference(event, states)
        elif isinstance(event, InferenceMade):
            await _window_inference(event, record.message.partition, states, added)
        elif _is_tick(record):
            ticks.append(record)
        if isinstance(event, DriftReferenceSet | InferenceMade):
            last_of[event.model_id] = record

    await each_in_batch(batch, "watch_drift", handle)
    for key, window in added.items():
        _writing_for(last_of[_model_of(key)])
        stored = drift_windows.get(key)
        merged = Window.from_dict(json.loads(stored)).merge(window) if stored else window
        drift_windows[key] = json.dumps(merged.to_dict()).encode()
    for record in ticks:
        _let_time_pass(record, states, last_of)
    for (model_id, version), state in states.items():
        _writing_for(last_of[model_id])
        await _close_windows(model_id, version, state)
        drift_state[_key(model_id, version)] = state.model_dump_json().encode()


def _let_time_pass(tick: faust.EventT, states: dict[tuple[str, str], MonitorState], last_of: dict) -> None:
    """Moves on the watermarks of the versions on the tick's partition. Those with a window to close
    stay among the batch's states, to be closed and written as after an event."""
    now = datetime.now(UTC)
    for key in list(drift_state.keys()):
        model_id, version = key.decode().split("\x1f")
        state = _state(model_id, version, states)
        if state.partition == tick.message.partition:
            let_time_pass(state, now)
            if closable(state, monitoring.for_model(model_id).drift):
                last_of.setdefault(model_id, tick)
        if model_id not in last_of:  # untouched: its watermark follows again from `heard` next time
            del states[(model_id, version)]


def _writing_for(record: faust.EventT) -> None:
    """Faust writes a table change to the changelog partition of the event being processed, which
    `take_events` leaves unset (faust-streaming issue #497). Every key written here belongs to the
    record's model, and a model's records share one partition, so the record's is the right one."""
    faust_streams._current_event.set(weakref.ref(record))


def _state(model_id: str, version: str, states: dict[tuple[str, str], MonitorState]) -> MonitorState:
    if (model_id, version) not in states:
        stored = drift_state.get(_key(model_id, version))
        states[(model_id, version)] = MonitorState.model_validate_json(stored) if stored else MonitorState()
        woke(states[(model_id, version)], STARTED)
    return states[(model_id, version)]


def _set_reference(event: DriftReferenceSet, states: dict[tuple[str, str], MonitorState]) -> None:
    version_key = _key(event.model_id, event.model_version)
    stored = drift_references.get(version_key)
    if stored and DriftReferenceSet.model_validate_json(stored).event_id == event.event_id:
        return  # our own first-events reference, read back
    state = _state(event.model_id, event.model_version, states)
    old = profiles_for(version_key) or {}
    for window_id in state.open:  # counts over the old bins cannot be compared with the new ones
        for feature in old:
            drift_windows.pop(_key(event.model_id, event.model_version, window_id, feature), None)
    state.open, state.position, state.reference_rows = {}, 0, []
    state.reference_id = event.event_id
    drift_references[version_key] = canonical_json(event).encode()
    log.info("worker.drift_reference", model_id=event.model_id, model_version=event.model_version, source=event.source)


async def _window_inference(
    event: InferenceMade, partition: int, states: dict[tuple[str, str], MonitorState], added: dict[bytes, Window]
) -> None:
    model_id, version = event.model_id, event.model_version
    state = _state(model_id, version, states)
    state.partition = partition
    values = signals(event)
    profiles = profiles_for(_key(model_id, version))
    if profiles is None:
        policy = monitoring.for_model(model_id).drift
        state.reference_rows.append(values)
        if len(state.reference_rows) >= policy.reference_size:
            made = profiles_of(state.reference_rows, policy.bins, policy.max_categories)
            reference = reference_event(model_id, version, made, "first_events", None, event.occurred_at)
            _set_reference(reference, states)
            await emit(reference)
        return
    window_id = place(state, monitoring.for_model(model_id).drift, event.occurred_at, datetime.now(UTC))
    if window_id is None:
        DRIFT_SKIPPED.labels(model_id, "late").inc()
        return
    for feature, value in values.items():
        profile = profiles.get(feature)
        if profile is None:
            if value is not None:
                DRIFT_SKIPPED.labels(model_id, "no_reference").inc()
            continue
        key = _key(model_id, version, window_id, feature)
        window = added.get(key) or added.setdefault(key, profile.window())
        before = window.mismatched
        window.add(profile, value)
        if window.mismatched > before:
            DRIFT_SKIPPED.labels(model_id, "type_mismatch").inc()


async def _close_windows(model_id: str, version: str, state: MonitorState) -> None:
    policy = monitoring.for_model(model_id).drift
    profiles = profiles_for(_key(model_id, version)) or {}
    for window_id in closable(state, policy):
        span = state.open.pop(window_id)
        windows = {}
        for feature in profiles:
            stored = drift_windows.pop(_key(model_id, version, window_id, feature), None)
            if stored:
                windows[feature] = Window.from_dict(json.loads(stored))
        result = judge(profiles, windows, policy)
        for verdict in result.features:
            DRIFT_SCORE.labels(model_id, version, verdict.name, verdict.method).set(verdict.score)
        for change in transitions(state, model_id, version, window_id, span, result):
            await emit(change)
            await emit(drift_alert(change))
            DRIFT_ACTIVE.labels(model_id, version, change.feature).set(0 if isinstance(change, DriftResolved) else 1)
            log.warning(
                "worker.drift", model_id=model_id, model_version=version, feature=change.feature,
                event_type=change.event_type, window=window_id,
            )  # fmt: skip


# --- oversight: reviews joined to their inferences ----------------------------------------------
# Inferences and reviews are keyed by model_id, so the tables are co-partitioned.
oversight_events = app.topic(
    *settings.topics(("inference.v1", "review.v1", CLOCK_TOPIC)), value_serializer="raw", key_serializer="raw"
)
oversight_join = app.Table("oversight-join", default=None, key_type=bytes, value_type=bytes)  # inference_id -> side
oversight_state = app.Table("oversight-state", default=None, key_type=bytes, value_type=bytes)  # model_id -> state
oversight_days = app.Table("oversight-days", default=None, key_type=bytes, value_type=bytes)  # version, day -> Tally


@app.agent(oversight_events)
async def watch_oversight(stream: faust.StreamT) -> None:
    """Reviews joined to their inferences, outputs past their review time counted; windows judged."""
    await each_batch(stream, "watch_oversight", _oversight_batch)


class _Oversight:
    def __init__(self) -> None:
        self.models: dict[str, ModelOversight] = {}
        self.tallies: dict[bytes, Tally] = {}  # counted in this batch, per (model, version, day)
        self.last_of: dict[str, faust.EventT] = {}

    def model(self, model_id: str) -> ModelOversight:
        if model_id not in self.models:
            self.models[model_id] = _stored_oversight(model_id)
        return self.models[model_id]

    def tally(self, model_id: str, version: str, at: datetime, inference_id: uuid.UUID) -> Tally:
        self.model(model_id).versions.setdefault(version, RollingState()).counted(at, inference_id)
        return self.tallies.setdefault(_key(model_id, version, at.date().isoformat()), Tally())


def _stored_oversight(model_id: str) -> ModelOversight:
    stored = oversight_state.get(model_id.encode())
    model = ModelOversight.model_validate_json(stored) if stored else ModelOversight()
    model.clock.woke(STARTED)
    return model


async def _oversight_batch(records: list[faust.EventT]) -> None:
    batch = _Oversight()
    now = datetime.now(UTC)

    async def handle(record: faust.EventT, event: Event | None) -> None:
        if isinstance(event, InferenceMade):
            batch.last_of[event.model_id] = record
            _oversee_inference(event, record.message, batch, now)
        elif isinstance(event, ReviewRecorded):
            batch.last_of[event.model_id] = record
            await _oversee_review(event, record.message, batch, now)
        elif _is_tick(record):
            _expire_reviews(record, batch, now)

    await each_in_batch(records, "watch_oversight", handle)
    for key, tally in batch.tallies.items():
        _writing_for(batch.last_of[_model_of(key)])
        if stored := oversight_days.get(key):
            tally = Tally.model_validate_json(stored) + tally
        oversight_days[key] = tally.model_dump_json().encode()
    for model_id, version in sorted({tuple(key.decode().split("\x1f")[:2]) for key in batch.tallies}):
        _writing_for(batch.last_of[model_id])
        await _judge_oversight(model_id, version, batch.models[model_id].versions[version])
    for model_id, model in batch.models.items():
        _writing_for(batch.last_of[model_id])
        oversight_state[model_id.encode()] = model.model_dump_json().encode()


def _join_entry(side: str, model_id: str, message: Message, body: str) -> bytes:
    return json.dumps({"side": side, "model_id": model_id, "partition": message.partition, "body": body}).encode()


def _oversee_inference(inference: InferenceMade, message: Message, batch: _Oversight, now: datetime) -> None:
    policy = monitoring.for_model(inference.model_id).oversight
    model = batch.model(inference.model_id)
    model.clock.partition = message.partition
    model.clock.saw_inference(inference, now)
    key = str(inference.event_id).encode()
    stored = json.loads(raw) if (raw := oversight_join.get(key)) else None
    if stored and stored["side"] == "inference":
        return  # a repeat of an inference still within its review time
    tally = batch.tally(inference.model_id, inference.model_version, inference.occurred_at, inference.event_id)
    count_inference(tally, inference, policy)
    output = awaiting(inference, policy)
    if output is None:
        if stored:  # a review of a patient-facing output: nothing to count it against
            del oversight_join[key]
            REVIEWS_UNMATCHED.labels(inference.model_id).inc()
        return
    if stored:
        count_review(tally, output, ReviewRecorded.model_validate_json(stored["body"]), policy)
        output.reviewed = True
    oversight_join[key] = _join_entry("inference", inference.model_id, message, output.model_dump_json())


async def _oversee_review(review: ReviewRecorded, message: Message, batch: _Oversight, now: datetime) -> None:
    model = batch.model(review.model_id)
    model.clock.partition = message.partition
    model.clock.saw_review(review, now)
    key = str(review.inference_id).encode()
    stored = json.loads(raw) if (raw := oversight_join.get(key)) else None
    if stored is None:
        oversight_join[key] = _join_entry("review", review.model_id, message, canonical_json(review))
        return
    if stored["model_id"] != review.model_id:
        why = Rejected(
            f"review names model {review.model_id!r}, but its inference was made by {stored['model_id']!r}; "
            "not counted in oversight",
            "model_mismatch",
            "model_id",
        )
        await _dead_letter(why, message.topic, message.partition, message.offset, message.value)
        return
    if stored["side"] == "review":
        return  # the first review of an output decides; a repeat or a second opinion does not count again
    output = Awaiting.model_validate_json(stored["body"])
    if output.reviewed:
        return
    policy = monitoring.for_model(review.model_id).oversight
    count_review(batch.tally(review.model_id, output.model_version, output.made_at, output.inference_id), output,
                 review, policy)  # fmt: skip
    output.reviewed = True
    oversight_join[key] = _join_entry("inference", review.model_id, message, output.model_dump_json())


def _expire_reviews(tick: faust.EventT, batch: _Oversight, now: datetime) -> None:
    """On the tick's partition: counts outputs past their review time as unreviewed and forgets
    reviews whose inference did not come."""
    partition = tick.message.partition
    clocks: dict[str, OversightClock] = {}
    for key, raw in list(oversight_join.items()):
        entry = json.loads(raw)
        if entry["partition"] != partition:
            continue
        model_id = entry["model_id"]
        if model_id not in clocks:
            clocks[model_id] = (batch.models.get(model_id) or _stored_oversight(model_id)).clock
        clock, policy = clocks[model_id], monitoring.for_model(model_id).oversight
        if entry["side"] == "inference":
            output = Awaiting.model_validate_json(entry["body"])
            if overdue(output, clock, policy, now):
                del oversight_join[key]
                if output.due and not output.reviewed:
                    batch.last_of.setdefault(model_id, tick)
                    count_unreviewed(batch.tally(model_id, output.model_version, output.made_at, output.inference_id),
                                     output)  # fmt: skip
        elif unmatched(ReviewRecorded.model_validate_json(entry["body"]), clock, policy, now):
            del oversight_join[key]
            REVIEWS_UNMATCHED.labels(model_id).inc()


async def _judge_oversight(model_id: str, version: str, state: RollingState) -> None:
    policy = monitoring.for_model(model_id).oversight
    window = Tally()
    for day in state.window(policy.window_days):
        if stored := oversight_days.get(_key(model_id, version, day.isoformat())):
            window += Tally.model_validate_json(stored)
    findings = assess(window, policy)
    for finding in findings:
        OVERSIGHT.labels(model_id, version, finding.kind).set(finding.value)
    for signal in oversight_transitions(state, model_id, version, window, findings, policy.window_days):
        await emit(signal)
        await emit(oversight_alert(signal))
        OVERSIGHT_ACTIVE.labels(model_id, version, signal.kind).set(0 if isinstance(signal, OversightRestored) else 1)
        log.warning("worker.oversight", model_id=model_id, model_version=version, kind=signal.kind,
                    event_type=signal.event_type)  # fmt: skip
