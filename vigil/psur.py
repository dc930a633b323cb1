"""The periodic safety update report (MDR Art. 86) of one model, structured as MDCG 2022-21 Annex I.

`psur_period` says what a PSUR covers: a calendar year for high-risk models (their manufacturers
update it at least annually), two calendar years otherwise, unless the policy says
(`reporting.psur_years`). `build_psur` writes the report from what the store holds about the
period, gathered by the service: it counts, rates and concludes; it reads nothing itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from vigil.corrective_actions import CorrectiveAction
from vigil.events import RiskClass
from vigil.export import Period, QuarterError
from vigil.incidents import IncidentSummary
from vigil.oversight import ModelOversightReport
from vigil.performance import ModelPerformance
from vigil.registry import ModelRecord
from vigil.regulatory import EU_EEA

SERIOUS_HARMS = ("death", "serious_deterioration")
REGIONS = ("EEA", "rest of the world")


def psur_years(risk_class: RiskClass, configured: int | None) -> int:
    """Annual for high-risk models (MDR Art. 86(2), class IIb and III), every two years otherwise."""
    return configured or (1 if risk_class == "high" else 2)


def psur_period(year: str, years: int) -> Period:
    """The PSUR period ending with calendar year `year` (UTC): that year, or it and the years before."""
    if not (year.isdigit() and len(year) == 4):
        raise QuarterError(f"a PSUR period is named by its last calendar year, like 2026; not {year!r}")
    end = datetime(int(year) + 1, 1, 1, tzinfo=UTC)
    start = datetime(int(year) - years + 1, 1, 1, tzinfo=UTC)
    name = year if years == 1 else f"{start.year}-{year}"
    return Period(name, start, end, quarterly=False)


class Count(BaseModel):
    count: int
    per_1000_inferences: float | None = Field(description="none when the model made no inference in the period")


class Vigilance(BaseModel):
    serious_incidents: Count
    serious_by_harm: dict[str, Count]
    serious_by_region: dict[str, Count] = Field(description="EEA and the rest of the world")
    non_serious_incidents: Count
    open_serious_incidents: int
    trend_reports: int
    corrective_actions: list[str] = Field(description="each action started in the period, in a line")
    field_safety_notices: list[str]


class VolumeOfUse(BaseModel):
    inferences: int
    by_deployment: dict[str, int]
    by_country: dict[str, int]
    subgroup_mix: dict[str, dict[str, int]] = Field(description="attribute -> value -> inferences")


class OtherPostMarket(BaseModel):
    performance: ModelPerformance | None = Field(description="by subgroup against the policy, since release")
    drift_episodes: int
    oversight: ModelOversightReport | None
    signals: dict[str, int] = Field(description="derived signals of the period by type")


class Conclusions(BaseModel):
    benefit_risk_holds: bool
    concerns: list[str] = Field(description="what puts the benefit-risk determination in question")
    actions_taken: list[str]
    thresholds: list[str] = Field(description="the performance policy's verdict")


class Psur(BaseModel):
    form: str = "PSUR (MDR Art. 86; MDCG 2022-21 Annex I, aligned)"
    model_id: str
    period: dict[str, str]
    interval_years: int
    generated_at: str
    chain_head: dict[str, str | int] = Field(description="the store's chain head the report was built from")
    executive_summary: list[str]
    device: dict[str, str | bool | list[str] | None]
    volume_of_use: VolumeOfUse
    vigilance: Vigilance
    other_post_market_data: OtherPostMarket
    conclusions: Conclusions


def _rate(n: int, inferences: int) -> Count:
    return Count(count=n, per_1000_inferences=round(1000 * n / inferences, 4) if inferences else None)


def region_of(country: str) -> str:
    return "EEA" if country in EU_EEA else "rest of the world"


def build_psur(
    model: ModelRecord,
    period: Period,
    interval_years: int,
    volume: VolumeOfUse,
    incidents: Iterable[IncidentSummary],
    actions: Iterable[CorrectiveAction],
    trend_reports: int,
    signals: Mapping[str, int],
    performance: ModelPerformance | None,
    oversight: ModelOversightReport | None,
    chain_head: dict[str, str | int],
    now: datetime,
) -> Psur:
    """The report. `incidents`: those Vigil became aware of in the period; `actions`: those started in it."""
    r = model.registration
    found = list(incidents)
    n = volume.inferences
    serious = [i for i in found if i.harm in SERIOUS_HARMS]
    by_harm = {h: _rate(sum(i.harm == h for i in serious), n) for h in SERIOUS_HARMS}
    by_region = {g: _rate(sum(region_of(i.country) == g for i in serious), n) for g in REGIONS}
    open_serious = sum(i.status != "closed" for i in serious)
    actions = list(actions)
    notices = [f"{n.reference} ({n.occurred_at.date()})" for a in actions for n in a.notices]
    vigilance = Vigilance(
        serious_incidents=_rate(len(serious), n), serious_by_harm=by_harm, serious_by_region=by_region,
        non_serious_incidents=_rate(len(found) - len(serious), n), open_serious_incidents=open_serious,
        trend_reports=trend_reports, corrective_actions=[a.describe() for a in actions], field_safety_notices=notices,
    )  # fmt: skip
    breaches = signals.get("ThresholdBreached", 0) - signals.get("ThresholdRestored", 0)
    disparities = signals.get("DisparityDetected", 0) - signals.get("DisparityResolved", 0)
    not_effective = [a for a in actions if a.status == "not_effective"]
    concerns = [
        *([f"{breaches} safety threshold breach(es) not restored by the end of the period"] if breaches > 0 else []),
        *([f"{disparities} subgroup disparity(ies) not resolved"] if disparities > 0 else []),
        *([f"{open_serious} serious incident(s) still open"] if open_serious else []),
        *([f"{len(not_effective)} corrective action(s) checked not effective"] if not_effective else []),
        *([f"{trend_reports} trend report(s) (MDR Art. 88)"] if trend_reports else []),
    ]
    holds = not concerns
    released = [v.model_version for v in model.versions if v.released_at < period.end]
    summary = [
        f"{r.name} ({r.model_id}), WHO risk class {r.risk_class}, {n:,} inferences from "
        f"{period.start.date()} to {period.end.date()} (exclusive).",
        f"{len(serious)} serious incident(s) ({_per(len(serious), n)}), "
        f"{len(found) - len(serious)} non-serious; {len(actions)} corrective action(s) started.",
        "The benefit-risk determination still holds." if holds
        else "The benefit-risk determination needs review: " + "; ".join(concerns) + ".",
    ]  # fmt: skip
    device = {
        "name": r.name, "manufacturer": r.manufacturer, "use_case": r.use_case, "risk_class": r.risk_class,
        "intended_use": r.intended_use, "out_of_scope_uses": r.out_of_scope_uses,
        "patient_facing": r.patient_facing, "countries": r.countries, "versions_on_market": released,
        "retired": model.retired.occurred_at.isoformat() if model.retired else None,
    }  # fmt: skip
    other = OtherPostMarket(
        performance=performance, drift_episodes=signals.get("DriftDetected", 0), oversight=oversight,
        signals=dict(sorted(signals.items())),
    )  # fmt: skip
    return Psur(
        model_id=r.model_id,
        period={"name": period.name, "from": period.start.isoformat(), "to": period.end.isoformat()},
        interval_years=interval_years,
        generated_at=now.isoformat(),
        chain_head=chain_head,
        executive_summary=summary,
        device=device,
        volume_of_use=volume,
        vigilance=vigilance,
        other_post_market_data=other,
        conclusions=Conclusions(
            benefit_risk_holds=holds,
            concerns=concerns,
            actions_taken=[a.describe() for a in actions] or ["none started in the period"],
            thresholds=list(performance.verdict) if performance else ["no outcomes: performance not assessed"],
        ),
    )


def _per(count: int, inferences: int) -> str:
    return f"{1000 * count / inferences:.3f} per 1,000 inferences" if inferences else "no inferences"
