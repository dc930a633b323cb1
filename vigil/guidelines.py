"""When a clinical guideline changes, which of a model's recommendations need a second look (WHO:
audit past recommendations when guidelines change).

Two kinds, per model whose use case the guideline names:
- made under the old guideline, in the `lookback_days` before it took effect, whose outcome is not
  known yet: the patient's care may still follow them;
- made since it took effect by a version released before it: the model has not been revalidated
  against the new guideline, so each of these may follow the old one.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel

from vigil.alerts import alert_for
from vigil.events import (
    AlertRaised,
    GuidelineChanged,
    InferenceMade,
    ModelRegistered,
    ModelVersionReleased,
    RiskClass,
)


def affected(guideline: GuidelineChanged, models: Iterable[ModelRegistered]) -> list[ModelRegistered]:
    return sorted((m for m in models if m.use_case in guideline.affected_use_cases), key=lambda m: m.model_id)


def guideline_alert(guideline: GuidelineChanged, model: ModelRegistered) -> AlertRaised | None:
    """A warning for a registered model whose use case the guideline names: run the audit."""
    if model.use_case not in guideline.affected_use_cases:
        return None
    return alert_for(
        guideline,
        "GuidelineChanged",
        "warning",
        f"Guideline {guideline.guideline_id} ({guideline.title}), effective {guideline.effective_at:%Y-%m-%d}, "
        f"concerns {model.model_id}'s use case {model.use_case}: `vigil guideline audit {guideline.guideline_id}` "
        "lists the recommendations to re-review",
        model_id=model.model_id,
        labels={"guideline_id": guideline.guideline_id},
        about=model.model_id,
    )


Reason = Literal["open_under_old_guideline", "made_since_by_unrevalidated_version"]
OPEN: Reason = "open_under_old_guideline"
UNREVALIDATED: Reason = "made_since_by_unrevalidated_version"


class Case(BaseModel):
    """A recommendation to look at again. The pseudonymous patient token is what lets the care team
    find the patient; this list is for them and never goes to a log, a metric or an alert."""

    inference_id: str
    model_id: str
    model_version: str
    deployment: str
    occurred_at: str
    label: str | None
    patient_ref: str
    reason: Reason


class AffectedModel(BaseModel):
    model_id: str
    use_case: str
    risk_class: RiskClass
    revalidated_versions: list[str]
    open_under_old_guideline: int
    made_since_by_unrevalidated_version: int
    labels: dict[str, int]
    deployments: dict[str, int]


class GuidelineAudit(BaseModel):
    guideline_id: str
    title: str
    effective_at: str
    affected_use_cases: list[str]
    lookback_days: int
    models: list[AffectedModel]
    cases: list[Case]
    verdict: list[str]


def audit(
    guideline: GuidelineChanged,
    models: Iterable[ModelRegistered],
    releases: Iterable[ModelVersionReleased],
    inferences: Iterable[InferenceMade],
    followed_up: set[uuid.UUID],
    lookback_days: int,
) -> GuidelineAudit:
    """The recommendations to re-review, per model, and the verdict in words. `inferences` are the
    affected models' since `lookback_days` before the change; `followed_up`, those with an outcome."""
    affected_models = affected(guideline, models)
    effective, since = guideline.effective_at, guideline.effective_at - timedelta(days=lookback_days)
    revalidated: dict[str, list[str]] = {m.model_id: [] for m in affected_models}
    for release in releases:
        if release.model_id in revalidated and release.released_at >= effective:
            revalidated[release.model_id].append(release.model_version)
    cases: list[Case] = []
    for inference in sorted(inferences, key=lambda i: i.occurred_at):
        if inference.model_id not in revalidated or inference.occurred_at < since:
            continue
        reason: Reason | None
        if inference.occurred_at < effective:
            reason = None if inference.event_id in followed_up else OPEN
        else:
            reason = None if inference.model_version in revalidated[inference.model_id] else UNREVALIDATED
        if reason:
            cases.append(_case(inference, reason))
    rows = [_row(m, revalidated[m.model_id], [c for c in cases if c.model_id == m.model_id]) for m in affected_models]
    return GuidelineAudit(
        guideline_id=guideline.guideline_id,
        title=guideline.title,
        effective_at=effective.isoformat(),
        affected_use_cases=guideline.affected_use_cases,
        lookback_days=lookback_days,
        models=rows,
        cases=cases,
        verdict=[line for row in rows if (line := _verdict(row))] or ["no recommendation needs a second look"],
    )


def _case(inference: InferenceMade, reason: Reason) -> Case:
    return Case(
        inference_id=str(inference.event_id),
        model_id=inference.model_id,
        model_version=inference.model_version,
        deployment=inference.deployment,
        occurred_at=inference.occurred_at.isoformat(),
        label=inference.output.label,
        patient_ref=inference.patient_ref,
        reason=reason,
    )


def _row(model: ModelRegistered, revalidated: list[str], cases: list[Case]) -> AffectedModel:
    reasons = Counter(c.reason for c in cases)
    return AffectedModel(
        model_id=model.model_id,
        use_case=model.use_case,
        risk_class=model.risk_class,
        revalidated_versions=sorted(revalidated),
        open_under_old_guideline=reasons[OPEN],
        made_since_by_unrevalidated_version=reasons[UNREVALIDATED],
        labels=dict(Counter(c.label or "(none)" for c in cases).most_common()),
        deployments=dict(Counter(c.deployment for c in cases).most_common()),
    )


def _verdict(row: AffectedModel) -> str | None:
    parts = []
    if row.open_under_old_guideline:
        parts.append(f"{row.open_under_old_guideline} recommendations made under the old guideline are still open")
    if row.made_since_by_unrevalidated_version:
        parts.append(
            f"{row.made_since_by_unrevalidated_version} made since it took effect by a version released before it "
            "(release a revalidated version)"
        )
    return f"{row.model_id}: " + "; ".join(parts) if parts else None
