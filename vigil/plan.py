"""The monitoring plan: for every alert Vigil can raise, who owns it, how often it is reviewed, and
what is done when it fires (the Stanford Health Care monitoring framework, Keyes et al. 2025,
gives every metric an owner, a review cadence and a follow-up action).

The defaults below are a starting point; the policy file overrides them per model (`plan:` under
`defaults:` or a model). Every alert carries its owner and action to Alertmanager, which routes by
owner, and links its runbook (`docs/runbooks/<alert>.md`).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

# What the worker raises on alert.v1 (vigil.alerts.alert_for) and what Prometheus raises from the
# processes' metrics (deploy/prometheus/rules.yml).
AlertName = Literal[
    "FeatureDrift", "DatasetDrift", "SafetyThresholdBreached", "EquityDisparity", "OversightViolation",
    "TransparencyViolation", "EscalationMissed", "GuidelineChanged", "IncidentReportDueSoon",
    "IncidentReportOverdue", "IncidentTrendDetected", "SourceSilent", "DataQualityChanged",
    "ClinicianLessSensitive", "WrongSuggestionsAccepted", "PerformanceEstimateLow",
]  # fmt: skip
RuleName = Literal[
    "VigilRecorderLagging", "VigilDeadLettersRising", "VigilProcessingErrors", "VigilDependencyDown",
    "VigilComponentDown", "VigilActingWithoutClinician", "VigilOversightShort", "VigilTransparencyShort",
    "VigilDriftStanding", "VigilReportOverdue",
]  # fmt: skip
ALERT_NAMES: tuple[str, ...] = (*get_args(AlertName), *get_args(RuleName))

Owner = Literal["clinical-safety", "ml-engineering", "vigil-operators"]


class PlanEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(description="the team or role that acts on it; Alertmanager routes by it")
    cadence: str = Field(description="how often the owner reviews the signal, firing or not")
    action: str = Field(description="what the owner does when it fires")


def _entry(owner: Owner, cadence: str, action: str) -> PlanEntry:
    return PlanEntry(owner=owner, cadence=cadence, action=action)


DEFAULT_PLAN: dict[str, PlanEntry] = {
    "FeatureDrift": _entry("ml-engineering", "weekly", "Find the upstream change behind the feature (device, site, "
                           "pipeline); recalibrate or retrain, or set a new reference if the change is intended."),
    "DatasetDrift": _entry("ml-engineering", "daily", "Many features drifted at once: check the input pipeline and "
                           "the sites first; ask clinical safety to suspend the model if its inputs are broken."),
    "SafetyThresholdBreached": _entry("clinical-safety", "daily", "Read the subgroup's performance with its interval; "
                                      "triage the incident candidate of a confirmed breach; restrict use if needed."),
    "EquityDisparity": _entry("clinical-safety", "weekly", "Compare the worst subgroup with the best; involve the "
                              "model team and the site; record the decision and any restriction of use."),
    "OversightViolation": _entry("clinical-safety", "daily", "Ask the deployment why outputs went unreviewed or were "
                                 "acted on first; stop autonomous actions at once; restore the review workflow."),
    "TransparencyViolation": _entry("clinical-safety", "weekly", "Ask the deployment's product team to restore the "
                                    "disclaimer, explanation, consent or score; check the release that removed it."),
    "EscalationMissed": _entry("clinical-safety", "on arrival", "Triage the incident candidate now: contact the care "
                               "team for the patient; decide reportability; review the bot's escalation rules."),
    "GuidelineChanged": _entry("clinical-safety", "on arrival", "Run the guideline audit; have the care team re-review "
                               "its open cases; ask the manufacturer to revalidate the version."),
    "IncidentReportDueSoon": _entry("clinical-safety", "daily", "Prepare and submit the report before its deadline "
                                    "(vigil incident report)."),
    "IncidentReportOverdue": _entry("clinical-safety", "daily", "Submit the report now and record why it was late; "
                                    "tell the competent authority if required."),
    "IncidentTrendDetected": _entry("clinical-safety", "weekly", "Review the week's non-serious incidents together; "
                                    "file a trend report (MDR Art. 88) if the increase is significant."),
    "SourceSilent": _entry("ml-engineering", "daily", "Ask the site whether the model still runs there and why its "
                           "events stopped (integration, network, the SDK's spool); its outputs go unmonitored."),
    "DataQualityChanged": _entry("ml-engineering", "weekly", "Find which upstream system stopped (or started) "
                                 "filling the field; fix the integration, or set a new reference if it is intended."),
    "ClinicianLessSensitive": _entry("clinical-safety", "weekly", "Clinicians reviewing the model miss more of the "
                                     "critical label than the model alone: review the cases with the reviewers; "
                                     "check how the output is shown to them; decide whether to change the workflow."),
    "WrongSuggestionsAccepted": _entry("clinical-safety", "weekly", "Clinicians accept many of the model's wrong "
                                       "suggestions (automation bias): review cases with them; retrain reviewers; "
                                       "show the score and explanation; consider a second, independent read."),
    "PerformanceEstimateLow": _entry("clinical-safety", "weekly", "An ESTIMATE from calibrated scores, before the "
                                     "outcomes: check the backtest's error and the drift of the same period; "
                                     "prioritise follow-up of the pending cases; act on the realised figures."),
    "VigilRecorderLagging": _entry("vigil-operators", "daily", "Check the recorder's log and PostgreSQL; add a "
                                   "recorder (VIGIL_RECORDER_SHARE) if it cannot keep up."),
    "VigilDeadLettersRising": _entry("vigil-operators", "daily", "Read the dead letters' reasons (the dead_letters "
                                     "table) and tell the emitting team what to fix."),
    "VigilProcessingErrors": _entry("vigil-operators", "daily", "Read the worker's log for the error and its record; "
                                    "fix the cause; the records are dead letters with the reason."),
    "VigilDependencyDown": _entry("vigil-operators", "on arrival", "Bring Kafka or PostgreSQL back; Vigil waits it out "
                                  "and catches up by itself."),
    "VigilComponentDown": _entry("vigil-operators", "on arrival", "Restart the component (vigil up); read its log for "
                                 "why it stopped."),
    "VigilActingWithoutClinician": _entry("clinical-safety", "on arrival", "Outputs are acted on without a clinician: "
                                          "stop it at the deployment; see OversightViolation."),
    "VigilOversightShort": _entry("clinical-safety", "daily", "Review coverage or overrides stay outside the policy: "
                                  "see OversightViolation."),
    "VigilTransparencyShort": _entry("clinical-safety", "weekly", "A transparency share stays below the policy: see "
                                     "TransparencyViolation."),
    "VigilDriftStanding": _entry("ml-engineering", "daily", "Drift has lasted hours: decide between recalibration, a "
                                 "new reference and suspension; see FeatureDrift."),
    "VigilReportOverdue": _entry("clinical-safety", "daily", "A regulatory report is overdue: see "
                                 "IncidentReportOverdue."),
}  # fmt: skip
FALLBACK = _entry("vigil-operators", "on arrival", "An alert without a plan entry: add one to the policy file.")


def plan_of(overrides: dict[str, dict[str, str]] | None) -> dict[str, PlanEntry]:
    """The default plan with a policy's overrides, field by field (an override may change only the owner)."""
    plan = dict(DEFAULT_PLAN)
    for name, fields in (overrides or {}).items():
        if name not in plan:
            raise ValueError(f"no alert is named {name!r}; the plan's alerts: {', '.join(sorted(plan))}")
        plan[name] = PlanEntry.model_validate((plan.get(name) or FALLBACK).model_dump() | dict(fields))
    return plan
