"""The live model card's own rules: drift episodes from their signals, guideline changes answered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from vigil.events import DriftDetected, DriftResolved, GuidelineChanged
from vigil.model_card import drift_episodes, guideline_reviews
from vigil.registry import fold_registry

from .test_registry import registered, released

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def drift(kind: type[DriftDetected], hour: int, score: float, feature: str = "contrast", method: str = "ks",
          **extra) -> DriftDetected:  # fmt: skip
    start = T0 + timedelta(hours=hour)
    return kind(event_id=uuid.uuid4(), occurred_at=start, model_id="m", model_version="1", feature=feature,
                method=method, score=score, threshold=0.05 if method == "ks" else 0.2, window=start.isoformat(),
                window_start=start, window_end=start + timedelta(hours=1), reference_size=300, current_size=200,
                **extra)  # fmt: skip


def test_an_episode_runs_from_its_first_detection_to_its_resolution_with_its_worst_score() -> None:
    first = drift(DriftDetected, 1, 0.01)
    events = [
        drift(DriftDetected, 2, 0.001), first, drift(DriftResolved, 3, 0.4, detected_event_id=first.event_id),
        drift(DriftDetected, 1, 0.3, feature="age", method="psi"), drift(DriftDetected, 2, 0.5, feature="age",
                                                                          method="psi"),
    ]  # fmt: skip
    contrast, age = drift_episodes(events)
    assert (contrast.feature, contrast.windows, contrast.worst) == ("contrast", 2, 0.001)  # a p-value: the lowest
    assert contrast.started == T0 + timedelta(hours=1) and contrast.resolved == T0 + timedelta(hours=4)
    assert (age.feature, age.worst, age.resolved) == ("age", 0.5, None)  # a distance: the highest; still open


def test_a_guideline_change_is_answered_by_the_first_version_released_after_it() -> None:
    record = fold_registry([registered(use_case="screening"), released("1.0", T0),
                            released("1.1", T0 + timedelta(days=40))])["mammo-screen"]  # fmt: skip
    change = GuidelineChanged(event_id=uuid.uuid4(), occurred_at=T0, guideline_id="g", title="interval",
                              effective_at=T0 + timedelta(days=30), affected_use_cases=["screening"])  # fmt: skip
    other = change.model_copy(update={"guideline_id": "h", "affected_use_cases": ["triage"]})
    before = change.model_copy(update={"guideline_id": "old", "effective_at": T0 - timedelta(days=1)})
    [review] = guideline_reviews([change, other, before], "screening", record.version("1.0"), record)
    assert (review.guideline_id, review.revalidated_by) == ("g", "1.1")
    # Changed before 1.1 was released: not a change since its release.
    assert guideline_reviews([change], "screening", record.version("1.1"), record) == []
