"""Drift: inferences into windows per model version against its reference; closed windows judged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.observability import DRIFT_ACTIVE, DRIFT_SCORE, DRIFT_SKIPPED
from streams.app import (
    STARTED,
    Item,
    app,
    cached,
    concern,
    each,
    emit,
    log,
    monitoring,
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
from vigil.validation import canonical_json

# Inferences and references are keyed by model_id on both topics, so the tables are co-partitioned.
drift_state = app.Table("drift-state", default=None, key_type=bytes, value_type=bytes)
drift_references = app.Table("drift-references", default=None, key_type=bytes, value_type=bytes)
drift_windows = app.Table("drift-windows", default=None, key_type=bytes, value_type=bytes)


def profiles_for(version_key: bytes) -> dict[str, Profile] | None:
    return cached(
        drift_references,
        version_key,
        lambda raw: {p.feature: from_record(p) for p in DriftReferenceSet.model_validate_json(raw).profiles},
    )


@concern("watch_drift", "inference.v1", "model.v1")
async def watch_drift(items: list[Item]) -> None:
    """Inferences into windows against their version's reference; closed windows judged."""
    states: dict[tuple[str, str], MonitorState] = {}
    added: dict[bytes, list[float | str | None]] = {}  # window and feature -> values in this batch
    last_of: dict[str, Item] = {}  # model_id -> its latest record in the batch
    ticks: list[Item] = []

    async def handle(item: Item) -> None:
        event = item.event
        if isinstance(event, DriftReferenceSet):
            _set_reference(event, states, added)
        elif isinstance(event, InferenceMade):
            await _window_inference(event, item, states, added)
        elif item.is_tick:
            ticks.append(item)
        if isinstance(event, DriftReferenceSet | InferenceMade):
            last_of[event.model_id] = item

    await each(items, "watch_drift", handle)
    for key, values in added.items():
        model_id, version, _, feature = key.decode().split("\x1f")
        profile = (profiles_for(table_key(model_id, version)) or {})[feature]
        window = profile.window()
        window.add_all(profile, values)
        if window.mismatched:
            DRIFT_SKIPPED.labels(model_id, "type_mismatch").inc(window.mismatched)
        writing_for(last_of[model_id].record)
        stored = drift_windows.get(key)
        merged = Window.from_dict(json.loads(stored)).merge(window) if stored else window
        drift_windows[key] = json.dumps(merged.to_dict()).encode()
    for tick in ticks:
        _let_time_pass(tick, states, last_of)
    for (model_id, version), state in states.items():
        writing_for(last_of[model_id].record)
        await _close_windows(model_id, version, state)
        drift_state[table_key(model_id, version)] = state.model_dump_json().encode()


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
    event: DriftReferenceSet, states: dict[tuple[str, str], MonitorState], added: dict[bytes, list]
) -> None:
    version_key = table_key(event.model_id, event.model_version)
    stored = drift_references.get(version_key)
    if stored and DriftReferenceSet.model_validate_json(stored).event_id == event.event_id:
        return  # our own first-events reference, read back
    state = _state(event.model_id, event.model_version, states)
    for window_id in new_reference(state, event):
        for feature in profiles_for(version_key) or {}:
            drift_windows.pop(table_key(event.model_id, event.model_version, window_id, feature), None)
            added.pop(table_key(event.model_id, event.model_version, window_id, feature), None)
    drift_references[version_key] = canonical_json(event).encode()
    log.info("worker.drift_reference", model_id=event.model_id, model_version=event.model_version, source=event.source)


async def _window_inference(
    event: InferenceMade, item: Item, states: dict[tuple[str, str], MonitorState], added: dict[bytes, list]
) -> None:
    model_id, version = event.model_id, event.model_version
    state = _state(model_id, version, states)
    if already_taken(state, item.message.partition, item.message.offset):
        DRIFT_SKIPPED.labels(model_id, "repeat").inc()
        return
    values = signals(event)
    profiles = profiles_for(table_key(model_id, version))
    if profiles is None:
        policy = monitoring.for_model(model_id).drift
        if reference := first_events(state, model_id, version, values, policy, event.occurred_at):
            _set_reference(reference, states, added)
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
        added.setdefault(table_key(model_id, version, window_id, feature), []).append(value)


async def _close_windows(model_id: str, version: str, state: MonitorState) -> None:
    policy = monitoring.for_model(model_id).drift
    profiles = profiles_for(table_key(model_id, version)) or {}
    for window_id in closable(state, policy):
        span = state.open.pop(window_id)
        windows = {}
        for feature in profiles:
            stored = drift_windows.pop(table_key(model_id, version, window_id, feature), None)
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
