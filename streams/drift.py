"""Drift: inferences into windows per model version against its reference; closed windows judged."""

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
    log,
    monitoring,
    send_changelogs,
    table_key,
    writing_for,
)
from vigil.drift_monitor import (
    MonitorState,
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
from vigil.events import DriftReferenceSet, DriftResolved, InferenceMade
from vigil_runtime.observability import DRIFT_ACTIVE, DRIFT_SCORE, DRIFT_SKIPPED

# Inferences and references are keyed by model_id on both topics, so the tables are co-partitioned.
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


@concern("watch_drift", "inference.v1", "model.v1")
async def watch_drift(items: list[Item]) -> None:
    """Inferences into windows against their version's reference; closed windows judged.

    A batch's table changes are delivered in three steps, so that a crash between any two leaves
    nothing that the records read again after it would count twice or miss: the windows' new values
    (each window keeps the offset of the last value it took, and takes only later ones), then the
    versions' states (with their references, windows placed and closed, and the offset of the last
    event taken: records up to it are skipped when read again), then the removal of the windows
    they closed (a crash before it leaves a closed window behind, never read again)."""
    states: dict[tuple[str, str], MonitorState] = {}
    added: dict[bytes, list[tuple[int, float | str | None]]] = {}  # window and feature -> (offset, value)
    last_of: dict[str, Item] = {}  # model_id -> its latest record in the batch
    ticks: list[Item] = []
    closed: dict[str, list[bytes]] = {}  # model_id -> windows to remove once its state is delivered

    async def handle(item: Item) -> None:
        event = item.event
        if isinstance(event, DriftReferenceSet):
            _set_reference(event, states, added, closed)
        elif isinstance(event, InferenceMade):
            await _window_inference(event, item, states, added, closed)
        elif item.is_tick:
            ticks.append(item)
        if isinstance(event, DriftReferenceSet | InferenceMade):
            last_of[event.model_id] = item

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


async def _window_inference(
    event: InferenceMade,
    item: Item,
    states: dict[tuple[str, str], MonitorState],
    added: dict[bytes, list],
    closed: dict[str, list[bytes]],
) -> None:
    model_id, version = event.model_id, event.model_version
    state = _state(model_id, version, states)
    offset = item.message.offset
    if already_taken(state, item.message.partition, offset):
        DRIFT_SKIPPED.labels(model_id, "repeat").inc()
        return
    values = signals(event)
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
    for feature, value in values.items():
        profile = profiles.get(feature)
        if profile is None:
            if value is not None:
                DRIFT_SKIPPED.labels(model_id, "no_reference").inc()
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
            DRIFT_ACTIVE.labels(model_id, version, change.feature).set(0 if isinstance(change, DriftResolved) else 1)
            log.warning(
                "worker.drift", model_id=model_id, model_version=version, feature=change.feature,
                event_type=change.event_type, window=window_id,
            )  # fmt: skip
