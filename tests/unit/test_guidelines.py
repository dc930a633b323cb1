"""The guideline audit: open recommendations made under the old guideline, and those made since by
a version released before it, for the models whose use case the guideline names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from vigil.events import GuidelineChanged, InferenceMade, ModelRegistered, ModelVersionReleased
from vigil.guidelines import OPEN, UNREVALIDATED, audit, guideline_alert

EFFECTIVE = datetime(2026, 11, 20, tzinfo=UTC)
GUIDELINE = GuidelineChanged(
    event_id=uuid.uuid4(), occurred_at=EFFECTIVE, guideline_id="mts-2026", title="Chest pain triage",
    effective_at=EFFECTIVE, affected_use_cases=["ed_triage"],
)  # fmt: skip


def model(model_id: str, use_case: str) -> ModelRegistered:
    return ModelRegistered(
        event_id=uuid.uuid4(), occurred_at=EFFECTIVE, model_id=model_id, name=model_id, manufacturer="m",
        use_case=use_case, risk_class="medium", intended_use="tests",
    )  # fmt: skip


def release(model_id: str, version: str, at: datetime) -> ModelVersionReleased:
    return ModelVersionReleased(
        event_id=uuid.uuid4(), occurred_at=at, model_id=model_id, model_version=version, released_at=at
    )


def inference(model_id: str, version: str, days: float, label: str = "non_urgent") -> InferenceMade:
    return InferenceMade(
        event_id=uuid.uuid4(), occurred_at=EFFECTIVE + timedelta(days=days), model_id=model_id,
        model_version=version, deployment="st-mary", use_case="x", patient_ref="pt_abc", output={"label": label},
    )  # fmt: skip


MODELS = [model("ed-triage", "ed_triage"), model("mammo-screen", "mammography_screening")]


def test_open_recommendations_before_and_unrevalidated_ones_since_are_to_be_reviewed() -> None:
    before = [inference("ed-triage", "1.5.0", -d, label) for d, label in ((1, "non_urgent"), (2, "urgent"), (3, "x"))]
    too_old = inference("ed-triage", "1.5.0", -40)
    since_old = [inference("ed-triage", "1.5.0", 0.5), inference("ed-triage", "1.5.0", 1)]
    since_new = inference("ed-triage", "1.6.0", 2)
    imaging = inference("mammo-screen", "2.3.0", -1)
    releases = [release("ed-triage", "1.5.0", EFFECTIVE - timedelta(days=60)), release("ed-triage", "1.6.0", EFFECTIVE)]
    result = audit(
        GUIDELINE, MODELS, releases, [*before, too_old, *since_old, since_new, imaging], {before[2].event_id}, 30
    )
    [row] = result.models
    assert (
        row.model_id,
        row.open_under_old_guideline,
        row.made_since_by_unrevalidated_version,
        row.revalidated_versions,
    ) == (
        "ed-triage",
        2,
        2,
        ["1.6.0"],
    )
    assert row.labels == {"non_urgent": 3, "urgent": 1}
    reviewed = {c.inference_id: c.reason for c in result.cases}
    assert reviewed == {
        str(before[0].event_id): OPEN, str(before[1].event_id): OPEN,
        str(since_old[0].event_id): UNREVALIDATED, str(since_old[1].event_id): UNREVALIDATED,
    }  # fmt: skip
    assert [c.occurred_at for c in result.cases] == sorted(c.occurred_at for c in result.cases)
    assert result.verdict == [
        "ed-triage: 2 recommendations made under the old guideline are still open; 2 made since it took effect "
        "by a version released before it (release a revalidated version)"
    ]


def test_a_guideline_naming_no_deployed_use_case_asks_for_nothing() -> None:
    other = GUIDELINE.model_copy(update={"affected_use_cases": ["dermatology"]})
    result = audit(other, MODELS, [], [inference("ed-triage", "1.5.0", -1)], set(), 30)
    assert result.models == [] and result.cases == []
    assert result.verdict == ["no recommendation needs a second look"]


def test_a_warning_goes_to_each_model_the_guideline_concerns_once() -> None:
    triage, imaging = MODELS
    alert = guideline_alert(GUIDELINE, triage)
    assert alert is not None and alert.model_id == "ed-triage" and alert.severity == "warning"
    assert alert.caused_by == GUIDELINE.event_id and alert.labels == {"guideline_id": "mts-2026"}
    assert "vigil guideline audit mts-2026" in alert.summary
    assert guideline_alert(GUIDELINE, triage) == alert  # the same id when the worker reprocesses it
    assert guideline_alert(GUIDELINE, imaging) is None
