"""The live model card: Mitchell et al.'s *Model Cards for Model Reporting* sections, filled from
the registry and from what the store holds after deployment.

WHO asks that every clinical model have a card with its intended and out-of-scope uses, its
training data, its performance overall and by subgroup, its known limitations and failure modes,
and a version history kept up to date. A card written once at release says what the model was
meant to do; this one also says what it did: subgroup performance with intervals and the
policy's verdict, drift episodes, human oversight, incidents, energy, and the guideline changes
since its release with whether a later version answered them. `as_of` gives the card as Vigil
could have written it at that moment (only what was recorded by then).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from vigil.drift import P_VALUE_METHODS
from vigil.events import DriftDetected, DriftResolved, Event, GuidelineChanged, ModelVersionReleased, TrainingData
from vigil.export import signal_row
from vigil.footprint import Footprint
from vigil.incidents import Incident
from vigil.oversight import ModelOversightReport
from vigil.performance import ModelPerformance
from vigil.plan import PlanEntry
from vigil.readers import ModelReaders
from vigil.registry import ModelRecord


class Details(BaseModel):
    model_id: str
    name: str
    manufacturer: str
    version: str | None
    released_at: datetime | None
    use_case: str
    risk_class: str
    countries: list[str]
    status: str = Field(description="in service, or retired with its date and reason")


class IntendedUse(BaseModel):
    intended_use: str
    out_of_scope_uses: list[str]
    patient_facing: bool
    labels: list[str]
    critical_labels: list[str]


class DriftEpisode(BaseModel):
    """From a DriftDetected to the DriftResolved that names it (open while there is none)."""

    feature: str
    method: str
    threshold: float
    started: datetime = Field(description="the first drifted window's start")
    resolved: datetime | None = Field(description="the end of the window in which it resolved")
    worst: float = Field(description="the score furthest past its threshold while it lasted (a p-value: the lowest)")
    windows: int = Field(description="windows judged drifted")


class Signal(BaseModel):
    occurred_at: str
    event_type: str
    detail: str


class IncidentLine(BaseModel):
    incident_id: UUID
    status: str
    source: str
    harm: str | None
    reportable: bool | None
    aware_at: datetime


class GuidelineReview(BaseModel):
    """A guideline change of the model's use case after the version's release, and the release that
    answered it, if any (a version released on or after it took effect)."""

    guideline_id: str
    title: str
    effective_at: datetime
    summary: str
    revalidated_by: str | None


class LiveModelCard(BaseModel):
    generated_at: datetime
    as_of: datetime | None = Field(description="only what was recorded by then; none: everything so far")
    details: Details
    intended_use: IntendedUse
    factors: list[str] = Field(description="the subgroup attributes its performance is shown by")
    metrics: str = Field(description="which metric is judged, against what, and how disparity is bounded")
    training_data: TrainingData | None
    training_data_summary: str
    evaluation_data: str = Field(description="the release's validation summary")
    performance: ModelPerformance | None = Field(description="post-market, since the version's release")
    oversight: ModelOversightReport | None
    readers: ModelReaders | None = Field(description="the model alone against the clinician with it")
    drift: list[DriftEpisode]
    signals: list[Signal]
    footprint: Footprint | None
    incidents: list[IncidentLine]
    guideline_changes: list[GuidelineReview]
    caveats: list[str] = Field(description="the version's known limitations")
    version_history: list[ModelVersionReleased]
    plan: dict[str, PlanEntry] = Field(
        description="who owns each alert of the model, how often it is reviewed, the action"
    )


def drift_episodes(events: Iterable[DriftDetected]) -> list[DriftEpisode]:
    """Detections joined to their resolutions, per feature and method, in the order they began."""
    open_: dict[tuple[str, str], DriftEpisode] = {}
    done: list[DriftEpisode] = []
    for event in sorted(events, key=lambda e: e.window_start):
        key = (event.feature, event.method)
        if isinstance(event, DriftResolved):
            if (episode := open_.pop(key, None)) is not None:
                done.append(episode.model_copy(update={"resolved": event.window_end}))
        elif key in open_:
            episode = open_[key]
            further = min if event.method in P_VALUE_METHODS else max
            open_[key] = episode.model_copy(update={"worst": further(episode.worst, event.score),
                                                    "windows": episode.windows + 1})  # fmt: skip
        else:
            open_[key] = DriftEpisode(
                feature=event.feature, method=event.method, threshold=event.threshold, started=event.window_start,
                resolved=None, worst=event.score, windows=1,
            )  # fmt: skip
    return sorted([*done, *open_.values()], key=lambda e: e.started)


def guideline_reviews(
    changes: Iterable[GuidelineChanged], use_case: str, version: ModelVersionReleased | None, record: ModelRecord
) -> list[GuidelineReview]:
    """The changes of the use case's guidelines since the version was released (all of them without
    a version), each with the first later release."""
    since = version.released_at if version else None
    reviews = []
    for change in changes:
        if use_case not in change.affected_use_cases or (since and change.effective_at < since):
            continue
        later = next((v.model_version for v in record.versions if v.released_at >= change.effective_at), None)
        reviews.append(GuidelineReview(guideline_id=change.guideline_id, title=change.title,
                                       effective_at=change.effective_at, summary=change.summary,
                                       revalidated_by=later))  # fmt: skip
    return reviews


def incident_line(state: Incident) -> IncidentLine:
    harm = state.triage.harm if state.triage else state.reported_harm
    return IncidentLine(incident_id=state.incident_id, status=state.status, source=state.source, harm=harm,
                        reportable=state.reportable, aware_at=state.aware_at)  # fmt: skip


def build_card(
    record: ModelRecord,
    version: str | None,
    *,
    performance: ModelPerformance | None,
    oversight: ModelOversightReport | None,
    readers: ModelReaders | None,
    drift: Sequence[DriftDetected],
    signals: Sequence[Event],
    footprint: Footprint | None,
    incidents: Sequence[Incident],
    guidelines: Sequence[GuidelineChanged],
    plan: dict[str, PlanEntry],
    as_of: datetime | None,
    now: datetime,
) -> LiveModelCard:
    """The card of one version (the current one without `version`) from what the store holds."""
    r = record.registration
    release = record.version(version) if version else (record.versions[-1] if record.versions else None)
    retired = record.retired
    status = f"retired {retired.retired_at:%Y-%m-%d}: {retired.reason}" if retired else "in service"
    rules = performance.policy if performance else None
    metrics = (
        f"{rules.metric} of each critical label ({', '.join(r.critical_labels) or 'none'}) judged one-vs-rest, "
        f"threshold {rules.threshold if rules.threshold is not None else 'none'} for {r.risk_class} risk; "
        f"best-minus-worst subgroup gap at most {rules.disparity:.0%} (Fisher's exact test); 95% Wilson intervals"
        if rules
        else "no outcomes recorded yet"
    )
    factors = sorted({k for row in performance.rows for k in row.subgroup}) if performance else []
    return LiveModelCard(
        generated_at=now,
        as_of=as_of,
        details=Details(
            model_id=record.model_id,
            name=r.name,
            manufacturer=r.manufacturer,
            version=release.model_version if release else version,
            released_at=release.released_at if release else None,
            use_case=r.use_case,
            risk_class=r.risk_class,
            countries=r.countries,
            status=status,
        ),
        intended_use=IntendedUse(
            intended_use=r.intended_use,
            out_of_scope_uses=r.out_of_scope_uses,
            patient_facing=r.patient_facing,
            labels=r.labels,
            critical_labels=r.critical_labels,
        ),
        factors=factors,
        metrics=metrics,
        training_data=release.training_data if release else None,
        training_data_summary=release.training_data_summary if release else "",
        evaluation_data=release.validation_summary if release else "",
        performance=performance,
        oversight=oversight,
        readers=readers,
        drift=drift_episodes(drift),
        signals=[Signal(**signal_row(_as_dict(s))) for s in signals],
        footprint=footprint,
        incidents=[incident_line(i) for i in incidents],
        guideline_changes=guideline_reviews(guidelines, r.use_case, release, record),
        caveats=release.limitations if release else [],
        version_history=record.versions,
        plan=plan,
    )


def _as_dict(event: Event) -> dict[str, Any]:
    return {**event.model_dump(mode="json"), "event_type": event.event_type}
