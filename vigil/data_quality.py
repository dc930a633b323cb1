"""Data quality: is each input still filled as often as in the reference?

Drift compares the values a feature has; an upstream system that stops filling a field leaves
fewer values, not different ones, and drift sees nothing until too few remain to judge. So when a
drift window closes, each feature's missing share (the share of the window's events without a
value for it) is set against the reference's:

- `vanished`: the reference had it, the window has no value at all;
- `missing_rate`: the window misses it more (or less) often than the reference by more than the
  policy's `max_missing_change`, and significantly (Fisher's exact test at 1 %);
- `appeared`: the reference never had it, and enough of the window's events carry it.

A change stands until a judged window is back within the limit; ids derive from (model, version,
reference, feature, window), so a reprocessed window raises nothing twice. Pure: the drift
concern calls it with the window's counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from scipy import stats

from vigil.alerts import alert_for
from vigil.drift_windows import Profile, Window
from vigil.events import AlertRaised, DataQualityChanged, DataQualityRestored, QualityKind

NAMESPACE = uuid.UUID("5c7e9a1b-2d4f-4a6c-8e0b-3f5a7c9e1b2d")
MAX_UNREFERENCED = 16  # features without a reference counted per window: bounds the state and the labels


ALPHA = 0.01  # a change must also be significant: a feature filled half the time varies by chance


class FeatureQuality(NamedTuple):
    feature: str
    kind: QualityKind
    reference_missing: float
    window_missing: float
    p_value: float  # Fisher's exact test of the two missing shares
    changed: bool


def judged(
    feature: str, kind: QualityKind, missing: tuple[int, int], present: tuple[int, int], limit: float
) -> FeatureQuality:
    """Reference and window, each as (events without a value, events with one)."""
    before, now = missing[0] / (missing[0] + present[0]), missing[1] / (missing[1] + present[1])
    p = float(stats.fisher_exact([[missing[0], present[0]], [missing[1], present[1]]]).pvalue)
    return FeatureQuality(feature, kind, before, now, p, abs(now - before) > limit and p < ALPHA)


def reference_events(profiles: Mapping[str, Profile]) -> int:
    """Events in the reference: every event carries the output and resource signals, so the
    feature with the most values-or-gaps was counted in all of them."""
    return max((p.reference.n + p.reference.missing for p in profiles.values() if p.reference), default=0)


def quality_of(
    profiles: Mapping[str, Profile],
    windows: Mapping[str, Window],
    unreferenced: Mapping[str, int],
    events: int,
    limit: float,
    also: Iterable[str] = (),
) -> list[FeatureQuality]:
    """Each feature's missing share in a window of `events` events against the reference; `also`
    names features to judge even without a value (those whose change stands)."""
    total = reference_events(profiles)
    if events == 0 or total == 0:
        return []
    verdicts = []
    for name, profile in sorted(profiles.items()):
        assert profile.reference is not None
        window = windows.get(name)
        present = window.n + window.mismatched if window else 0  # a value of the wrong type is there
        kind: QualityKind = "vanished" if present == 0 else "missing_rate"
        reference = profile.reference.n
        verdicts.append(judged(name, kind, (total - reference, events - present), (reference, present), limit))
    for name in sorted({*unreferenced, *also} - set(profiles)):
        present = unreferenced.get(name, 0)
        verdicts.append(judged(name, "appeared", (total, events - present), (0, present), limit))
    return verdicts


def count_unreferenced(counts: dict[str, int], names: Iterable[str]) -> None:
    """Counts a window's values of features the reference does not have, for at most
    MAX_UNREFERENCED of them."""
    for name in names:
        if name in counts or len(counts) < MAX_UNREFERENCED:
            counts[name] = counts.get(name, 0) + 1


def quality_transitions(
    standing: dict[str, uuid.UUID],
    verdicts: Iterable[FeatureQuality],
    model_id: str,
    version: str,
    reference_id: uuid.UUID | None,
    window_id: str,
    start: datetime,
    end: datetime,
    events: int,
    limit: float,
) -> list[DataQualityChanged | DataQualityRestored]:
    """DataQualityChanged for what starts, DataQualityRestored for what ends; updates `standing`
    (feature -> the change that stands)."""
    out: list[DataQualityChanged | DataQualityRestored] = []
    for verdict in verdicts:
        was = standing.get(verdict.feature)
        if verdict.changed == (was is not None):
            continue
        fields = {
            "occurred_at": end, "model_id": model_id, "model_version": version, "feature": verdict.feature,
            "kind": verdict.kind, "reference_missing": round(verdict.reference_missing, 6),
            "window_missing": round(verdict.window_missing, 6), "p_value": verdict.p_value, "limit": limit,
            "window": window_id,
            "window_start": start, "window_end": end, "events": events,
        }  # fmt: skip
        key = f"{model_id}/{version}/{reference_id}/{verdict.feature}/{window_id}"
        if was is None:
            changed = DataQualityChanged(event_id=uuid.uuid5(NAMESPACE, f"changed/{key}"), **fields)
            standing[verdict.feature] = changed.event_id
            out.append(changed)
        else:
            restored = DataQualityRestored(event_id=uuid.uuid5(NAMESPACE, f"restored/{key}"), changed_event_id=was,
                                           **fields)  # fmt: skip
            del standing[verdict.feature]
            out.append(restored)
    return out


def quality_alert(event: DataQualityChanged | DataQualityRestored) -> AlertRaised:
    what = {
        "vanished": "has no value in any event",
        "missing_rate": "is missing in a changed share of events",
        "appeared": "appeared (the reference never had it)",
    }[event.kind]
    restored = isinstance(event, DataQualityRestored)
    summary = (
        f"{event.model_id} {event.model_version}: feature {event.feature!r} "
        f"{'is filled as in its reference again' if restored else what} in window {event.window} "
        f"(missing in {event.window_missing:.0%} of {event.events} events; reference {event.reference_missing:.0%}; "
        f"allowed change {event.limit:.0%})"
    )
    return alert_for(
        event, "DataQualityChanged", "warning", summary, model_id=event.model_id, model_version=event.model_version,
        labels={"feature": event.feature, "kind": event.kind}, resolved=restored,
    )  # fmt: skip
