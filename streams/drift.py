"""Drift: each inference's signals handed on by the first stage; in the second, into windows per
model version against its reference, and closed windows judged.

Where order matters: a version's events reach its second stage in the order of each input
partition, but the partitions interleave as they are read; each handover's events are put in the
order of their event time. Windows by time are judged the same however the partitions interleave
(an event is late only past the window's grace). Windows by count, and a reference made of a
version's first events, take the events in the order they reach the second stage: live, that is
event time to within a batch (half a second); in a burst read faster than it was made (a replay,
a catch-up), batches of different partitions may cover different hours, and which events make
the reference or a window can differ from one run to another. Where that matters, set the
reference from a file (`vigil drift reference set`) and use windows by time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from streams.app import (
    STARTED,
    Item,
    app,
    concern,
    each,
    emit,
    hand_over,
    log,
    monitoring,
    send_changelogs,
    table_key,
    writing_for,
)
from vigil.data_quality import count_unreferenced, quality_alert, quality_of, quality_transitions
from vigil.drift_monitor import (
    DATASET,
    OWN_SIGNALS,
    MonitorState,
    Span,
    already_taken,
    closable,
    drift_alert,
    first_events,
    judge,
    let_time_pass,
    new_reference,
    place,
    signals,
    transitions,
    woke,
)
from vigil.drift_windows import Profile, Window, from_record
from vigil.events import HANDOVER_TOPIC, DriftReferenceSet, InferenceMade
from vigil.handover import DriftInput
from vigil_runtime.observability import DRIFT_ACTIVE, DRIFT_SCORE, DRIFT_SKIPPED, MISSING_SHARE, QUALITY_ACTIVE

# Second stage: handovers and references are keyed by model_id, so the tables are co-partitioned.
drift_state = app.Table("drift-state", default=None, key_type=bytes, value_type=bytes)
drift_windows = app.Table("drift-windows", default=None, key_type=bytes, value_type=bytes)
_profiles: dict[uuid.UUID, dict[str, Profile]] = {}


def profiles_of(state: MonitorState) -> dict[str, Profile] | None:
    """The state's reference as profiles, made once per reference."""
    if state.reference is None:
        return None
    if state.reference.event_id not in _profiles:
        _profiles[state.reference.event_id] = {p.feature: from_record(p) for p in state.reference.profiles}
    return _profiles[state.reference.event_id]


def window_key(model_id: str, version: str, reference: uuid.UUID | None, window_id: str, feature: str) -> bytes:
    return table_key(model_id, version, str(reference), window_id, feature)


@concern("hand_over_drift", "inference.v1")
async def hand_over_drift(items: list[Item]) -> None:
    """First stage: each inference's signals, to its model's second stage."""
    for item in items:
        if isinstance(event := item.event, InferenceMade):
            values = signals(event)
            drift_input = DriftInput(
                model_version=event.model_version,
                occurred_at=event.occurred_at,
                at=item.position,
                values=values,
                deployment=event.deployment,
            )
            hand_over(event.model_id).inferences.append(drift_input)


@concern("watch_drift", HANDOVER_TOPIC, "model.v1")
async def watch_drift(items: list[Item]) -> None:
    """Inferences into windows against their version's reference; closed windows judged.

    A batch's table changes are delivered in three steps, so that a crash between any two leaves
    nothing that the records read again after it would count twice or miss: the windows' new values
    (each window keeps the offset of the last handover it took values from, and takes only later
    ones), then the versions' states (with their references, windows placed and closed, and how far
    in each input partition the events taken have come: those are skipped when handed on again),
    then the removal of the windows they closed (a crash before it leaves a closed window behind,
    never read again)."""
    states: dict[tuple[str, str], MonitorState] = {}
    added: dict[bytes, list[tuple[int, float | str | None]]] = {}  # window and feature -> (offset, value)
    last_of: dict[str, Item] = {}  # model_id -> its latest record in the batch
    ticks: list[Item] = []
    closed: dict[str, list[bytes]] = {}  # model_id -> windows to remove once its state is delivered

    async def handle(item: Item) -> None:
        event = item.event
        if isinstance(event, DriftReferenceSet):
            last_of[event.model_id] = item
            _set_reference(event, states, added, closed)
            _state(event.model_id, event.model_version, states).partition = item.message.partition
        elif item.handover is not None:
            model_id = item.handover.model_id
            last_of[model_id] = item
            for drift_input in _new_in_time_order(model_id, item, states):
                await _window_inference(model_id, drift_input, item, states, added, closed)
        elif item.is_tick:
            ticks.append(item)

    await each(items, "watch_drift", handle)
    for key, values in added.items():
        model_id, version, _, _, feature = key.decode().split("\x1f")
        profile = (profiles_of(states[(model_id, version)]) or {})[feature]
        writing_for(last_of[model_id].record)
        stored = json.loads(drift_windows.get(key) or "null")
        fresh = [value for offset, value in values if stored is None or offset > stored["through"]]
        if not fresh:
            continue
        window = profile.window()
        window.add_all(profile, fresh)
        if window.mismatched:
            DRIFT_SKIPPED.labels(model_id, "type_mismatch").inc(window.mismatched)
        merged = Window.from_dict(stored).merge(window) if stored else window
        drift_windows[key] = json.dumps({**merged.to_dict(), "through": values[-1][0]}).encode()
    if added:
        await send_changelogs(drift_windows)
    for tick in ticks:
        _let_time_pass(tick, states, last_of)
    for (model_id, version), state in states.items():
        writing_for(last_of[model_id].record)
        await _close_windows(model_id, version, state, closed)
        drift_state[table_key(model_id, version)] = state.model_dump_json().encode()
    if closed:
        await send_changelogs(drift_state)
    for model_id, keys in closed.items():
        writing_for(last_of[model_id].record)
        for key in keys:
            drift_windows.pop(key, None)


def _let_time_pass(tick: Item, states: dict[tuple[str, str], MonitorState], last_of: dict[str, Item]) -> None:
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


def _state(model_id: str, version: str, states: dict[tuple[str, str], MonitorState]) -> MonitorState:
    if (model_id, version) not in states:
        stored = drift_state.get(table_key(model_id, version))
        states[(model_id, version)] = MonitorState.model_validate_json(stored) if stored else MonitorState()
        woke(states[(model_id, version)], STARTED)
    return states[(model_id, version)]


def _set_reference(
    event: DriftReferenceSet,
    states: dict[tuple[str, str], MonitorState],
    added: dict[bytes, list],
    closed: dict[str, list[bytes]],
) -> None:
    state = _state(event.model_id, event.model_version, states)
    if state.reference is not None and state.reference.event_id == event.event_id:
        return  # our own first-events reference, read back
    features, before = profiles_of(state) or {}, state.reference_id
    for window_id in new_reference(state, event):
        for feature in features:
            key = window_key(event.model_id, event.model_version, before, window_id, feature)
            added.pop(key, None)
            closed.setdefault(event.model_id, []).append(key)
    log.info("worker.drift_reference", model_id=event.model_id, model_version=event.model_version, source=event.source)


def _new_in_time_order(model_id: str, item: Item, states: dict[tuple[str, str], MonitorState]) -> list[DriftInput]:
    """The handover's inferences not taken before, in the order of their event time: what the
    partitions interleaved within one batch is put back in the order it happened."""
    assert item.handover is not None
    new = []
    for drift_input in item.handover.inferences:  # in the order of each input partition, as taking needs
        state = _state(model_id, drift_input.model_version, states)
        state.partition = item.message.partition  # the second stage's: where the ticks that close its windows come
        if already_taken(state, drift_input.at):
            DRIFT_SKIPPED.labels(model_id, "repeat").inc()
        else:
            new.append(drift_input)
    return sorted(new, key=lambda drift_input: drift_input.occurred_at)


async def _window_inference(
    model_id: str,
    event: DriftInput,
    item: Item,
    states: dict[tuple[str, str], MonitorState],
    added: dict[bytes, list],
    closed: dict[str, list[bytes]],
) -> None:
    version = event.model_version
    state = _state(model_id, version, states)
    offset, values = item.message.offset, event.values
    profiles = profiles_of(state)
    if profiles is None:
        policy = monitoring.for_model(model_id).drift
        if reference := first_events(state, model_id, version, values, policy, event.occurred_at):
            _set_reference(reference, states, added, closed)
            await emit(reference)
        return
    window_id = place(state, monitoring.for_model(model_id).drift, event.occurred_at, datetime.now(UTC))
    if window_id is None:
        DRIFT_SKIPPED.labels(model_id, "late").inc()
        return
    unreferenced = [feature for feature, value in values.items() if feature not in profiles and value is not None]
    if unreferenced:
        DRIFT_SKIPPED.labels(model_id, "no_reference").inc(len(unreferenced))
        count_unreferenced(state.open[window_id].unreferenced, [f for f in unreferenced if f not in OWN_SIGNALS])
    for feature, value in values.items():
        if feature not in profiles:
            continue
        key = window_key(model_id, version, state.reference_id, window_id, feature)
        added.setdefault(key, []).append((offset, value))


async def _close_windows(model_id: str, version: str, state: MonitorState, closed: dict[str, list[bytes]]) -> None:
    """Judges the windows that take no more events; they are removed once the state is delivered."""
    policy = monitoring.for_model(model_id).drift
    profiles = profiles_of(state) or {}
    for window_id in closable(state, policy):
        span = state.open.pop(window_id)
        windows = {}
        for feature in profiles:
            key = window_key(model_id, version, state.reference_id, window_id, feature)
            closed.setdefault(model_id, []).append(key)
            if stored := drift_windows.get(key):
                windows[feature] = Window.from_dict(json.loads(stored))
        result = judge(profiles, windows, policy)
        for verdict in result.features:
            DRIFT_SCORE.labels(model_id, version, verdict.name, verdict.method).set(verdict.score)
        for change in transitions(state, model_id, version, window_id, span, result):
            await emit(change)
            await emit(drift_alert(change))
            log.warning(
                "worker.drift", model_id=model_id, model_version=version, feature=change.feature,
                event_type=change.event_type, window=window_id,
            )  # fmt: skip
        # From the state, so that a worker that took the model over shows what stands.
        for feature in [*(verdict.name for verdict in result.features), *([DATASET] if result.features else [])]:
            DRIFT_ACTIVE.labels(model_id, version, feature).set(int(feature in state.drifting))
        await _judge_quality(model_id, version, state, window_id, span, profiles, windows)


async def _judge_quality(
    model_id: str,
    version: str,
    state: MonitorState,
    window_id: str,
    span: Span,
    profiles: dict[str, Profile],
    windows: dict[str, Window],
) -> None:
    """Each feature's missing share in the closed window against the reference's (vigil.data_quality)."""
    policy = monitoring.for_model(model_id).drift
    if policy.max_missing_change is None or span.events < policy.min_sample:
        return
    verdicts = quality_of(profiles, windows, span.unreferenced, span.events, policy.max_missing_change, state.quality)
    changes = quality_transitions(
        state.quality, verdicts, model_id, version, state.reference_id, window_id, span.start, span.end, span.events,
        policy.max_missing_change,
    )  # fmt: skip
    for change in changes:
        await emit(change)
        await emit(quality_alert(change))
        log.warning(
            "worker.data_quality", model_id=model_id, model_version=version, feature=change.feature,
            kind=change.kind, event_type=change.event_type, window=window_id,
        )  # fmt: skip
    for verdict in verdicts:
        MISSING_SHARE.labels(model_id, version, verdict.feature).set(verdict.window_missing)
        QUALITY_ACTIVE.labels(model_id, version, verdict.feature).set(int(verdict.feature in state.quality))
