"""Streaming drift per model version: what is measured, which window an event falls in, and when a
window's verdicts become DriftDetected / DriftResolved events.

The worker keeps one `MonitorState` per (model, version), with its reference, and one `Window` per
(model, version, reference, window, feature); everything here is pure, so the rules are tested
without a broker.

- Until a version has a reference, its first `reference_size` events are kept as rows; then they
  become its `DriftReferenceSet` (an uploaded reference replaces it the same way).
- Time windows are tumbling in event time. A window closes when an event of the same version at
  least `grace_seconds` past its end arrives; events for a closed window are counted as late.
- Count windows close when they hold `size` events.
- A feature is judged only with `min_sample` values in the window. A detection stands until a
  judged window no longer drifts; event ids derive from (model, version, feature, window), so a
  reprocessed window raises nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from pydantic import BaseModel

from vigil.alerts import alert_for
from vigil.drift import DatasetDrift, DriftInputError, FeatureDrift, drifted, kind_of
from vigil.drift_windows import MAX_FEATURES, Profile, Window, profiles_of, score, to_record
from vigil.events import AlertRaised, DriftDetected, DriftReferenceSet, DriftResolved, InferenceMade
from vigil.join import Position, takes
from vigil.policy import DriftPolicy

NAMESPACE = uuid.UUID("8f2d6c1a-3b5e-4f7d-9a0c-2e4b6d8f1a3c")
DATASET = "(dataset)"
Value = float | int | str | None


# What Vigil measures of every output besides its input features (`signals`): an uploaded
# reference of input features lacks them, which is not a feature that appeared.
OWN_SIGNALS = frozenset(
    {"output.score", "output.label", "output.refusal", "output.length", "output.escalated", "resources.latency_ms",
     "resources.tokens_in", "resources.tokens_out"}
)  # fmt: skip


def signals(inference: InferenceMade) -> dict[str, Value]:
    """What drift is measured on: the input features, and the output and its costs."""
    output, resources, facing = inference.output, inference.resources, inference.patient_facing
    measured: dict[str, Value] = {
        "output.score": output.score,
        "output.label": output.label,
        "output.refusal": str(output.refusal).lower(),
        "output.length": output.text_length,
        "output.escalated": None if facing is None else str(facing.escalated).lower(),
        "resources.latency_ms": resources.latency_ms,
        "resources.tokens_in": resources.tokens_in,
        "resources.tokens_out": resources.tokens_out,
    }
    return {**inference.features, **measured}


class Span(BaseModel):
    start: datetime
    end: datetime
    events: int = 0  # placed in the window: what its features' missing shares are shares of
    unreferenced: dict[str, int] = {}  # values of features its reference lacks (vigil.data_quality)


class MonitorState(BaseModel):
    """What the worker remembers of one model version between events."""

    reference_rows: list[dict[str, Value]] = []
    # What windows are judged against. In the state, not beside it: a crash can then never leave a
    # reference without the state that knows which events made it, or the other way round.
    reference: DriftReferenceSet | None = None
    reference_id: uuid.UUID | None = None  # part of event ids: windows of another reference are other windows
    position: int = 0  # events placed in windows since the reference
    watermark: datetime | None = None  # event time: how far the version's stream has come
    heard: datetime | None = None  # wall-clock time of its last event, or of the last tick that moved the watermark
    partition: int | None = None  # the partition of the model's second stage, where the worker's ticks reach it
    taken: dict[str, int] = {}  # how far in each input stream its events have been taken (vigil.join.takes)
    open: dict[str, Span] = {}
    drifting: dict[str, uuid.UUID] = {}  # feature -> the DriftDetected that stands
    quality: dict[str, uuid.UUID] = {}  # feature -> the DataQualityChanged that stands
    late: int = 0


def already_taken(state: MonitorState, at: Position) -> bool:
    """Whether the event read at this position was taken before: handed on again after a crash
    that came after the state was written with it. A version's events come in order within each
    input partition, so the offset of the last one taken from each says which were. Otherwise the
    state moves on to this one."""
    return not takes(state.taken, at)


def place(state: MonitorState, policy: DriftPolicy, at: datetime, now: datetime) -> str | None:
    """The id of the window the event at `at` (received `now`) falls in, updating the state; None
    when it is late."""
    window = policy.window
    if window.kind == "count":
        window_id = f"count:{state.position // window.size}"
        span = state.open.get(window_id)
        state.open[window_id] = (
            span.model_copy(update={"start": min(span.start, at), "end": max(span.end, at)})
            if span
            else Span(start=at, end=at)
        )
    else:
        epoch = int(at.timestamp()) // window.seconds * window.seconds
        start = datetime.fromtimestamp(epoch, UTC)
        window_id = start.isoformat()
        if window_id not in state.open:
            if state.watermark and start + timedelta(seconds=window.seconds + policy.grace_seconds) <= state.watermark:
                state.late += 1
                return None
            state.open[window_id] = Span(start=start, end=start + timedelta(seconds=window.seconds))
    state.open[window_id].events += 1
    state.position += 1
    state.watermark = max(state.watermark or at, at)
    state.heard = now
    return window_id


def first_events(
    state: MonitorState, model_id: str, version: str, values: dict[str, Value], policy: DriftPolicy, at: datetime
) -> DriftReferenceSet | None:
    """A version without a reference collects its first `reference_size` events' signals; the
    reference they make, once there are enough (its id is derived, so a replay makes the same)."""
    state.reference_rows.append(values)
    if len(state.reference_rows) < policy.reference_size:
        return None
    made = profiles_of(state.reference_rows, policy.bins, policy.max_categories)
    return reference_event(model_id, version, made, "first_events", None, at)


def new_reference(state: MonitorState, reference: DriftReferenceSet) -> list[str]:
    """Starts the version over against a new reference; returns the open windows to drop, since
    counts over the old bins cannot be compared with the new ones."""
    dropped = list(state.open)
    state.open, state.position, state.reference_rows = {}, 0, []
    state.reference, state.reference_id = reference, reference.event_id
    return dropped


def let_time_pass(state: MonitorState, now: datetime) -> None:
    """Event time is taken to pass as wall-clock time does while no events come: the watermark moves
    on by the time since the version was last heard from. So the last windows of a stream that
    stops still close, an hour and the grace period after they end, as if traffic had gone on.
    A replay, whose events come faster than wall-clock time, is not overtaken."""
    if state.watermark is not None and state.heard is not None and now > state.heard:
        state.watermark += now - state.heard
        state.heard = now


def woke(state: MonitorState, at: datetime) -> None:
    """The worker started at `at`: what the stream sent while it was down is still to be read, so
    its silence counts from then, not from its last event before the worker stopped."""
    if state.heard is not None and state.heard < at:
        state.heard = at


def closable(state: MonitorState, policy: DriftPolicy) -> list[str]:
    """Windows that take no more events, oldest first."""
    window = policy.window
    if window.kind == "count":
        current = f"count:{state.position // window.size}"
        done = [w for w in state.open if w != current]
    else:
        grace = timedelta(seconds=policy.grace_seconds)
        done = [w for w, span in state.open.items() if state.watermark and span.end + grace <= state.watermark]
    return sorted(done, key=lambda w: state.open[w].start)


def judge(profiles: Mapping[str, Profile], windows: Mapping[str, Window], policy: DriftPolicy) -> DatasetDrift:
    """Verdicts for the features with enough values; the dataset drifts when their drifted share
    reaches the policy's share."""
    verdicts = []
    for name, profile in sorted(profiles.items()):
        window = windows.get(name)
        rule = policy.features.get(name)
        if window is None or window.n < policy.min_sample or (rule and rule.ignore):
            continue
        assert profile.reference is not None
        method, threshold = policy.rule(name, profile.kind, profile.reference.n)
        value = score(profile, window, method)
        verdicts.append(
            FeatureDrift(
                name,
                profile.kind,
                method,
                value,
                threshold,
                drifted(method, value, threshold),
                profile.reference.n,
                window.n,
            )
        )
    share = sum(v.drifted for v in verdicts) / len(verdicts) if verdicts else 0.0
    return DatasetDrift(verdicts, share, policy.drift_share, bool(verdicts) and share >= policy.drift_share)


def transitions(
    state: MonitorState, model_id: str, version: str, window_id: str, span: Span, result: DatasetDrift
) -> list[DriftDetected | DriftResolved]:
    """DriftDetected for what starts drifting, DriftResolved for what stops; updates `state.drifting`."""
    reference_size = max((f.reference_size for f in result.features), default=0)
    current_size = max((f.current_size for f in result.features), default=0)
    dataset = FeatureDrift(
        DATASET, "categorical", "share_drifted", result.share_drifted, result.drift_share,
        result.dataset_drift, reference_size, current_size,
    )  # fmt: skip
    events: list[DriftDetected | DriftResolved] = []
    for verdict in [*result.features, *([dataset] if result.features else [])]:
        standing = state.drifting.get(verdict.name)
        if verdict.drifted == (standing is not None):
            continue
        fields = {
            "occurred_at": span.end,
            "model_id": model_id,
            "model_version": version,
            "feature": verdict.name,
            "method": verdict.method,
            "score": verdict.score,
            "threshold": verdict.threshold,
            "window": window_id,
            "window_start": span.start,
            "window_end": span.end,
            "reference_size": verdict.reference_size,
            "current_size": verdict.current_size,
        }
        key = f"{model_id}/{version}/{state.reference_id}/{verdict.name}/{window_id}"
        if standing is None:
            detected = DriftDetected(event_id=uuid.uuid5(NAMESPACE, f"detected/{key}"), **fields)
            state.drifting[verdict.name] = detected.event_id
            events.append(detected)
        else:
            events.append(
                DriftResolved(event_id=uuid.uuid5(NAMESPACE, f"resolved/{key}"), detected_event_id=standing, **fields)
            )
            del state.drifting[verdict.name]
    return events


def drift_alert(event: DriftDetected | DriftResolved) -> AlertRaised:
    dataset = event.feature == DATASET
    what = "the share of drifted features" if dataset else f"feature {event.feature!r}"
    verb = "no longer drifts" if isinstance(event, DriftResolved) else "drifted"
    return alert_for(
        event,
        "DatasetDrift" if dataset else "FeatureDrift",
        "critical" if dataset else "warning",
        f"{event.model_id} {event.model_version}: {what} {verb} in window {event.window} "
        f"({event.method} {event.score:.4g}, threshold {event.threshold:g}, "
        f"{event.current_size} vs {event.reference_size} reference values)",
        model_id=event.model_id,
        model_version=event.model_version,
        labels={"feature": event.feature, "method": event.method},
        resolved=isinstance(event, DriftResolved),
    )


def reference_event(
    model_id: str, version: str, profiles: list[Profile], source: str, source_name: str | None, at: datetime
) -> DriftReferenceSet:
    name = source_name or "first-events"
    return DriftReferenceSet(
        event_id=uuid.uuid5(NAMESPACE, f"reference/{model_id}/{version}/{source}/{name}/{at.isoformat()}"),
        occurred_at=at,
        model_id=model_id,
        model_version=version,
        source=source,
        source_name=source_name,
        profiles=[to_record(p) for p in profiles],
    )


def rows_of(frame: pd.DataFrame) -> list[dict[str, Value]]:
    """A reference file's rows as event-like values: numbers stay numbers, the rest becomes text,
    missing cells become None. Infinite values and more features than a profile holds are refused."""
    if frame.empty:
        raise DriftInputError("the reference file has no rows")
    if len(frame.columns) > MAX_FEATURES:
        raise DriftInputError(
            f"the reference file has {len(frame.columns)} columns; at most {MAX_FEATURES} are profiled"
        )
    columns: dict[str, list[Value]] = {}
    for name in frame.columns:
        column = frame[name]
        if kind_of(column) == "numeric":
            values = column.to_numpy(dtype=float, na_value=np.nan)
            if np.isinf(values).any():
                row = int(np.flatnonzero(np.isinf(values))[0])
                raise DriftInputError(f"column {name!r}, row {row + 1}: infinite value")
            columns[str(name)] = [None if np.isnan(v) else float(v) for v in values]
        else:
            columns[str(name)] = [None if pd.isna(v) else str(v) for v in column]
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
