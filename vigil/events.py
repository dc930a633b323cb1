"""Event schemas, version 1: the one definition the SDK, the API, the worker and the recorder share.

Every event is a JSON object with an envelope (`event_type`, `schema_version`, `event_id`,
`occurred_at`) and the fields of its type. `vigil schema export` writes these as JSON Schema for
emitters in other languages.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION: Literal[1] = 1

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=10_000)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
FeatureValue = float | Annotated[str, Field(max_length=200)] | None


class Record(BaseModel):
    """Base for every nested block: unknown fields are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Event(Record):
    event_id: UUID
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime
    if TYPE_CHECKING:  # each event type declares its own, as a Literal field with its name
        event_type: str


# --- what deployed models emit -----------------------------------------------------------------


class InferenceOutput(Record):
    label: Label | None = None
    score: float | None = Field(
        default=None, ge=0, le=1, description="binary models: the probability of the positive (critical) label"
    )
    class_scores: dict[Label, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict, max_length=100)
    text_length: int | None = Field(default=None, ge=0, description="characters of free text, never the text")
    refusal: bool = False


class PatientFacing(Record):
    disclaimer_shown: bool
    emergency_detected: bool
    escalated: bool


class Resources(Record):
    latency_ms: float | None = Field(default=None, ge=0)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    energy_wh: float | None = Field(default=None, ge=0)


class InferenceMade(Event):
    event_type: Literal["InferenceMade"] = "InferenceMade"
    model_id: Text
    model_version: Text
    deployment: Text = Field(description="site or deployment the model runs at")
    country: CountryCode | None = Field(default=None, description="where the deployment is: decides the regimes")
    use_case: Text
    patient_ref: str = Field(max_length=128, description="pseudonymous token only, never an identifier")
    subgroup: dict[Text, Text] = Field(default_factory=dict, max_length=32)
    features: dict[Text, FeatureValue] = Field(default_factory=dict, max_length=512)
    output: InferenceOutput
    output_kind: Literal["suggestion", "autonomous_action"] = "suggestion"
    patient_facing: PatientFacing | None = None
    explanation_present: bool = False
    consent_recorded: bool = False
    resources: Resources = Field(default_factory=Resources)


class OutcomeObserved(Event):
    event_type: Literal["OutcomeObserved"] = "OutcomeObserved"
    inference_id: UUID
    model_id: Text
    observed_at: AwareDatetime
    label: Label
    critical_condition: bool = False
    source: Literal["pathology", "follow_up", "chart_review", "clinician_report", "other"]
    emergency: bool | None = Field(default=None, description="for patient-facing interactions")


class ReviewRecorded(Event):
    event_type: Literal["ReviewRecorded"] = "ReviewRecorded"
    inference_id: UUID
    model_id: Text
    reviewer_role: Text
    decision: Literal["accepted", "modified", "overridden", "rejected"]
    reviewed_at: AwareDatetime
    acted_before_review: bool = False
    final_label: Label | None = Field(
        default=None, description="the clinician's own answer after the review, from the model's label set"
    )


Harm = Literal["none", "temporary", "serious_deterioration", "death"]
# How calendar-day reporting periods are counted (vigil/regulatory.py): the policy's choice, stated
# by the event that opens an incident so that a replay next year counts as Vigil counted then.
Counting = Literal["elapsed_days", "regulation_1182_71"]


class IncidentReported(Event):
    event_type: Literal["IncidentReported"] = "IncidentReported"
    incident_id: UUID
    reporter_role: Text
    model_id: Text
    model_version: Text
    inference_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    harm: Harm
    public_health_threat: bool = False
    description: LongText
    country: CountryCode
    aware_at: AwareDatetime
    counting: Counting = Field("elapsed_days", description="the rule its reporting clocks are counted by")
    incident_date: date | None = Field(None, description="when the incident happened, if known (MIR 2.1)")


RiskClass = Literal["high", "medium", "low"]


class ModelRegistered(Event):
    event_type: Literal["ModelRegistered"] = "ModelRegistered"
    model_id: Text
    name: Text = Field(description="the model's product name")
    manufacturer: Text
    use_case: Text
    risk_class: RiskClass
    intended_use: LongText
    out_of_scope_uses: list[Text] = Field(default_factory=list)
    patient_facing: bool = False
    labels: list[Label] = Field(default_factory=list, description="the model's label set")
    critical_labels: list[Label] = Field(default_factory=list)
    countries: list[CountryCode] = Field(default_factory=list)


class TrainingData(Record):
    """What a version was trained on: WHO asks whether it represents the people it will serve."""

    populations: list[Text] = Field(default_factory=list, max_length=50, description="e.g. 'women 50-69, screening'")
    sites: list[Text] = Field(default_factory=list, max_length=200)
    period_start: date | None = None
    period_end: date | None = None
    size: int | None = Field(default=None, ge=0, description="training examples")


class ModelVersionReleased(Event):
    event_type: Literal["ModelVersionReleased"] = "ModelVersionReleased"
    model_id: Text
    model_version: Text
    released_at: AwareDatetime
    training_data_summary: LongText = ""
    training_data: TrainingData | None = None
    validation_summary: LongText = Field(default="", description="how and on whom the version was validated")
    limitations: list[Text] = Field(default_factory=list)
    changes: LongText = ""


class ModelRetired(Event):
    """A model taken out of service: its later inferences are refused, its record is kept."""

    event_type: Literal["ModelRetired"] = "ModelRetired"
    model_id: Text
    retired_at: AwareDatetime
    reason: LongText
    replaced_by: Text | None = Field(default=None, description="the model_id that takes over, if any")


class GuidelineChanged(Event):
    event_type: Literal["GuidelineChanged"] = "GuidelineChanged"
    guideline_id: Text
    title: Text
    effective_at: AwareDatetime
    affected_use_cases: list[Text] = Field(default_factory=list)
    summary: LongText = ""


class FeatureProfile(Record):
    """One feature's reference for streaming drift: fixed bins, the reference's counts, its sketch."""

    feature: Text
    kind: Literal["numeric", "categorical"]
    edges: list[float] = Field(default_factory=list, max_length=200, description="numeric: interior bin edges")
    categories: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=200, description="categorical: kept categories (then 'rarer', 'unseen')"
    )
    counts: list[Annotated[int, Field(ge=0)]] = Field(max_length=202)
    n: int = Field(ge=1)
    missing: int = Field(ge=0)
    std: float = Field(ge=0, description="numeric: the reference's standard deviation, for Wasserstein")
    sketch: str | None = Field(default=None, max_length=20_000, description="numeric: KLL sketch, base64")


class DriftReferenceSet(Event):
    """The reference drift is measured against, per model version: from its first events or a file."""

    event_type: Literal["DriftReferenceSet"] = "DriftReferenceSet"
    model_id: Text
    model_version: Text
    source: Literal["first_events", "upload"]
    source_name: Text | None = Field(default=None, description="the uploaded file's name")
    profiles: list[FeatureProfile] = Field(min_length=1, max_length=64)


# --- what Vigil derives --------------------------------------------------------------------------

Severity = Literal["info", "warning", "critical"]


class AlertRaised(Event):
    event_type: Literal["AlertRaised"] = "AlertRaised"
    alert_name: Text
    severity: Severity
    model_id: Text | None = None
    model_version: Text | None = None
    summary: LongText
    labels: dict[Text, Text] = Field(default_factory=dict, description="bounded, never patient data")
    caused_by: UUID | None = Field(default=None, description="event_id of the derived event behind it")
    resolved: bool = False


# --- the incident aggregate (vigil/incidents.py) ------------------------------------------------
Causality = Literal["not_related", "possible", "probable", "established"]
ReportType = Literal["initial", "follow_up", "combined_initial_final", "final"]
RegimeName = Literal["eu-mdr", "eu-ai-act", "fda-803"]


class Actor(Record):
    by: Text = Field(description="staff identifier of the person (never a patient)")
    role: Text


CandidateSource = Literal["threshold_breach", "missed_escalation", "trend"]


class IncidentCandidateRaised(Event):
    event_type: Literal["IncidentCandidateRaised"] = "IncidentCandidateRaised"
    incident_id: UUID
    model_id: Text
    model_version: Text
    source: CandidateSource
    summary: LongText
    inference_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    country: CountryCode
    aware_at: AwareDatetime
    counting: Counting = Field("elapsed_days", description="the rule its reporting clocks are counted by")


# IMDRF adverse event terminology (IMDRF/AE WG/N43): a device problem code of Annex A (A + 4, 6 or 8
# digits, e.g. A0601) and health effect codes of Annexes E (clinical signs) and F (health impact).
# Vigil checks their form; their meaning is the user's, from the IMDRF tables.
DeviceProblemCode = Annotated[str, StringConstraints(pattern=r"^A\d{4}(\d{2}){0,2}$")]
HealthEffectCode = Annotated[str, StringConstraints(pattern=r"^[EF]\d{4}(\d{2}){0,2}$")]


class IncidentTriaged(Event, Actor):
    event_type: Literal["IncidentTriaged"] = "IncidentTriaged"
    incident_id: UUID
    harm: Harm
    public_health_threat: bool = False
    widespread_or_critical_infra: bool = False
    remedial_action_needed: bool = False
    causality: Causality
    expected: bool = Field(description="an expected (anticipated) side effect documented for the model")
    rationale: LongText
    device_problem_codes: list[DeviceProblemCode] = Field(default_factory=list, max_length=20,
                                                          description="IMDRF Annex A codes")  # fmt: skip
    health_effect_codes: list[HealthEffectCode] = Field(default_factory=list, max_length=20,
                                                        description="IMDRF Annex E and F codes")  # fmt: skip


CorrectiveKind = Literal["fsca", "capa"]


class CorrectiveActionStarted(Event, Actor):
    """A field safety corrective action (MDR Art. 2(68): to reduce a risk of a device already on the
    market) or a CAPA (a corrective and preventive action of the quality system), linked to the
    incidents, model versions and deployments it concerns."""

    event_type: Literal["CorrectiveActionStarted"] = "CorrectiveActionStarted"
    action_id: UUID
    kind: CorrectiveKind
    title: Text
    description: LongText
    model_id: Text
    model_versions: list[Text] = Field(default_factory=list, max_length=50)
    deployments: list[Text] = Field(default_factory=list, max_length=200)
    incident_ids: list[UUID] = Field(default_factory=list, max_length=200)


class FieldSafetyNoticeIssued(Event, Actor):
    """The notice that tells users of the action (MDR Art. 89(8))."""

    event_type: Literal["FieldSafetyNoticeIssued"] = "FieldSafetyNoticeIssued"
    action_id: UUID
    model_id: Text
    reference: Text
    countries: list[CountryCode] = Field(default_factory=list, max_length=60)
    summary: LongText


class CorrectiveActionChecked(Event, Actor):
    """Whether the action worked, and on what evidence."""

    event_type: Literal["CorrectiveActionChecked"] = "CorrectiveActionChecked"
    action_id: UUID
    model_id: Text
    effective: bool
    evidence: LongText


class Clock(Record):
    regime: RegimeName
    category: Text
    citation: Text
    trigger: Text
    last_day: date
    due_at: AwareDatetime
    provisional: bool = Field(description="true until reportability is decided: the worst case that may apply")
    counting: Counting | None = Field(
        None, description="the rule last_day follows; none on clocks recorded before Vigil named it (1182/71)"
    )
    other_last_day: date | None = Field(None, description="the last day under the other counting rule")


class ReportabilityDecided(Event, Actor):
    event_type: Literal["ReportabilityDecided"] = "ReportabilityDecided"
    incident_id: UUID
    reportable: bool
    clocks: list[Clock] = Field(default_factory=list)
    rationale: LongText


class ReportSubmitted(Event, Actor):
    event_type: Literal["ReportSubmitted"] = "ReportSubmitted"
    incident_id: UUID
    regime: RegimeName
    report_type: ReportType
    reference: Text = Field(description="the competent authority's or FDA's reference for the submission")


class IncidentClosed(Event, Actor):
    event_type: Literal["IncidentClosed"] = "IncidentClosed"
    incident_id: UUID
    rationale: LongText


class ClockFlagged(Event):
    """What a reporting clock says when it nears or passes its deadline (the two events below)."""

    incident_id: UUID
    regime: RegimeName
    category: Text
    due_at: AwareDatetime


class ReportDueSoon(ClockFlagged):
    event_type: Literal["ReportDueSoon"] = "ReportDueSoon"


class ReportOverdue(ClockFlagged):
    event_type: Literal["ReportOverdue"] = "ReportOverdue"


class IncidentViewed(Event, Actor):
    """Access audit: every read of an incident by a person is itself recorded."""

    event_type: Literal["IncidentViewed"] = "IncidentViewed"
    incident_id: UUID
    as_of: AwareDatetime | None = None
    document: Literal["mir", "fda-3500a"] | None = Field(None, description="the report prepared, if one was")


class ConsoleSignedIn(Event, Actor):
    """Access audit: a person signed in to the console (the token's role and person, never the token)."""

    event_type: Literal["ConsoleSignedIn"] = "ConsoleSignedIn"


class TrendDetected(Event):
    event_type: Literal["TrendDetected"] = "TrendDetected"
    model_id: Text
    week_start: date
    count: int
    expected: float = Field(description="mean weekly count over the baseline weeks")
    baseline_weeks: int
    p_value: float
    method: Text


class DriftDetected(Event):
    """A feature (or, with feature "(dataset)", the share of drifted features) drifted in a window."""

    event_type: Literal["DriftDetected"] = "DriftDetected"
    model_id: Text
    model_version: Text
    feature: Text
    method: Text
    score: float
    threshold: float
    window: Text = Field(description="the window's id: its start time, or count:<index>")
    window_start: AwareDatetime
    window_end: AwareDatetime
    reference_size: int
    current_size: int


class DriftResolved(DriftDetected):
    event_type: Literal["DriftResolved"] = "DriftResolved"  # type: ignore[assignment]
    detected_event_id: UUID


class SubgroupEstimate(Record):
    subgroup: dict[Text, Text] = Field(description="attribute -> value; empty for everyone")
    value: float
    ci_low: float
    ci_high: float
    successes: int
    trials: int


class ThresholdBreached(Event):
    """A subgroup's primary metric is below the policy's threshold: a warning when the point
    estimate is, confirmed when the whole interval is."""

    event_type: Literal["ThresholdBreached"] = "ThresholdBreached"
    model_id: Text
    model_version: Text
    label: Label = Field(description="the critical label judged one-vs-rest")
    metric: Text
    threshold: float
    level: Literal["warning", "confirmed"]
    estimate: SubgroupEstimate
    window_days: int
    window_end: AwareDatetime


class ThresholdRestored(ThresholdBreached):
    event_type: Literal["ThresholdRestored"] = "ThresholdRestored"  # type: ignore[assignment]
    level: Literal["restored"] = "restored"  # type: ignore[assignment]
    breach_event_id: UUID


class DisparityDetected(Event):
    """The best and the worst subgroups of an attribute set differ by more than the policy allows."""

    event_type: Literal["DisparityDetected"] = "DisparityDetected"
    model_id: Text
    model_version: Text
    label: Label
    metric: Text
    attributes: list[Text]
    best: SubgroupEstimate
    worst: SubgroupEstimate
    gap: float
    limit: float
    p_value: float = Field(description="Fisher's exact test, best against worst")
    significant: bool
    window_days: int
    window_end: AwareDatetime


class DisparityResolved(DisparityDetected):
    event_type: Literal["DisparityResolved"] = "DisparityResolved"  # type: ignore[assignment]
    detected_event_id: UUID


OversightKind = Literal["review_coverage", "acted_before_review", "autonomous_action", "override_rate"]


class OversightViolation(Event):
    """Human oversight of a model version fell short of the policy over its rolling window: too few
    outputs reviewed in time, outputs acted on before review, autonomous actions where only
    suggestions are allowed, or clinicians overriding more outputs than the policy tolerates."""

    event_type: Literal["OversightViolation"] = "OversightViolation"
    model_id: Text
    model_version: Text
    kind: OversightKind
    value: float = Field(description="coverage or override share (0-1), or a count of cases")
    limit: float = Field(description="the policy's bound the value is on the wrong side of")
    cases: int = Field(ge=0, description="outputs behind it: unreviewed or late, acted on, autonomous, overridden")
    of: int = Field(ge=0, description="outputs it is a share of: due for review, reviewed, or made")
    inference_ids: list[UUID] = Field(default_factory=list, max_length=100, description="examples, for the audit")
    window_days: int
    window_end: AwareDatetime


class OversightRestored(OversightViolation):
    event_type: Literal["OversightRestored"] = "OversightRestored"  # type: ignore[assignment]
    violation_event_id: UUID


class SourceSilent(Event):
    """A deployment of a model stopped sending inferences for longer than its policy allows: its
    outputs may go unmonitored (a broken integration, a site gone offline), or the model is no
    longer used there."""

    event_type: Literal["SourceSilent"] = "SourceSilent"
    model_id: Text
    deployment: Text
    last_seen: AwareDatetime = Field(description="when Vigil last received one of its inferences")
    limit_seconds: float = Field(description="the silence the policy allows, from its recent gaps")


class SourceResumed(SourceSilent):
    event_type: Literal["SourceResumed"] = "SourceResumed"  # type: ignore[assignment]
    silent_event_id: UUID
    silent_seconds: float


QualityKind = Literal["missing_rate", "vanished", "appeared"]


class DataQualityChanged(Event):
    """A feature of a model version's input is missing far more or far less often in a window than
    in its reference: a field an upstream system stopped filling (`vanished`: never present in the
    window), one it fills only sometimes (`missing_rate`), or one the reference never had
    (`appeared`). Drift tests only the values that are there; this is about the ones that are not."""

    event_type: Literal["DataQualityChanged"] = "DataQualityChanged"
    model_id: Text
    model_version: Text
    feature: Text
    kind: QualityKind
    reference_missing: float = Field(ge=0, le=1, description="share of the reference's events without a value")
    window_missing: float = Field(ge=0, le=1, description="share of the window's events without a value")
    p_value: float = Field(ge=0, le=1, description="Fisher's exact test of the two shares")
    limit: float = Field(description="the largest change in the missing share the policy allows")
    window: Text
    window_start: AwareDatetime
    window_end: AwareDatetime
    events: int = Field(ge=0, description="events in the window")


class DataQualityRestored(DataQualityChanged):
    event_type: Literal["DataQualityRestored"] = "DataQualityRestored"  # type: ignore[assignment]
    changed_event_id: UUID


class ReaderFindingRaised(Event):
    """The model as a second reader, over the performance window: clinicians with the model are
    significantly less sensitive for a critical label than the model alone
    (`clinician_less_sensitive`, exact McNemar), or they accept too many of its wrong suggestions
    (`wrong_suggestions_accepted`, automation bias)."""

    event_type: Literal["ReaderFindingRaised"] = "ReaderFindingRaised"
    model_id: Text
    model_version: Text
    kind: Literal["clinician_less_sensitive", "wrong_suggestions_accepted"]
    label: Label
    subgroup: dict[Text, Text] = Field(default_factory=dict, description="empty: everyone")
    model_sensitivity: float | None
    clinician_sensitivity: float | None
    sensitivity_p: float | None = Field(description="exact McNemar on the truth-positive discordant pairs")
    wrong_accepted: float | None = Field(description="share of the model's wrong suggestions clinicians accepted")
    wrong_suggestions: int = Field(ge=0)
    cases: int = Field(ge=0, description="reviewed outputs with a final label and a known truth")
    summary: LongText
    window_days: int
    window_end: AwareDatetime


class EstimatedValue(Record):
    value: float
    low: float
    high: float


class PerformanceEstimated(Event):
    """ESTIMATED, not realised: a model version's performance on outputs still waiting for their
    outcome, from scores calibrated on its first outcomes (CBPE, vigil.performance_estimate).
    Never an incident candidate; realised outcomes supersede it."""

    event_type: Literal["PerformanceEstimated"] = "PerformanceEstimated"
    estimated: Literal[True] = True
    model_id: Text
    model_version: Text
    label: Label
    outputs: int = Field(ge=0, description="pending outputs of the window it estimates")
    window_days: int | None
    estimates: dict[Text, EstimatedValue] = Field(description="sensitivity, specificity, ppv, npv")
    metric: Text = Field(description="the policy's primary metric")
    threshold: float | None
    below_threshold: bool = Field(description="the primary metric's estimate below the threshold")
    reference_size: int
    reference: str = Field(default="", max_length=300, description="what the calibration was fitted on")
    calibration_ece: float
    backtest_outputs: int = Field(ge=0, description="outputs whose outcome came after the reference")
    backtest_error: dict[Text, float] = Field(description="estimate minus realised, weighted by outputs")
    summary: LongText


Probability = Annotated[float, Field(ge=0, le=1)]


class CalibrationReferenceSet(Event):
    """The reference a model version's estimated performance (CBPE) is calibrated on, from an
    uploaded file of scores with known outcomes: the isotonic map fitted on it (its points, not the
    file's rows) and its held-out calibration error. From then on it replaces the version's first
    outcomes as the reference, and every outcome of the version shows how far the estimate was off."""

    event_type: Literal["CalibrationReferenceSet"] = "CalibrationReferenceSet"
    model_id: Text
    model_version: Text
    label: Label = Field(description="the critical label whose probability the scores are")
    source_name: Text | None = Field(default=None, description="the uploaded file's name")
    file_sha256: str = Field(pattern="^[0-9a-f]{64}$", description="of the file as uploaded")
    scores: list[Probability] = Field(min_length=1, max_length=10_000, description="the fit's points, increasing")
    probabilities: list[Probability] = Field(min_length=1, max_length=10_000)
    reference_size: int = Field(ge=1, description="rows of the file")
    calibration_ece: float = Field(ge=0, description="expected calibration error on held-out folds")


class ReaderFindingResolved(ReaderFindingRaised):
    event_type: Literal["ReaderFindingResolved"] = "ReaderFindingResolved"  # type: ignore[assignment]
    raised_event_id: UUID


TransparencyKind = Literal["disclaimer_shown", "explanation_present", "consent_recorded", "score_present"]


class TransparencyViolation(Event):
    """Outputs of a model version carried what WHO asks them to carry less often than the policy
    requires, over its rolling window: a disclaimer (patient-facing outputs), an explanation, a
    recorded consent, or a score (the model's confidence)."""

    event_type: Literal["TransparencyViolation"] = "TransparencyViolation"
    model_id: Text
    model_version: Text
    kind: TransparencyKind
    value: float = Field(description="the share of outputs that carried it (0-1)")
    limit: float = Field(description="the policy's lowest allowed share")
    cases: int = Field(ge=0, description="outputs without it")
    of: int = Field(ge=0, description="outputs it applies to (patient-facing ones for a disclaimer)")
    inference_ids: list[UUID] = Field(default_factory=list, max_length=100, description="examples, for the audit")
    window_days: int
    window_end: AwareDatetime


class TransparencyRestored(TransparencyViolation):
    event_type: Literal["TransparencyRestored"] = "TransparencyRestored"  # type: ignore[assignment]
    violation_event_id: UUID


INCIDENT_EVENTS = (
    IncidentReported,
    IncidentCandidateRaised,
    IncidentTriaged,
    ReportabilityDecided,
    ReportSubmitted,
    IncidentClosed,
    ReportDueSoon,
    ReportOverdue,
)

INPUT_EVENTS: dict[str, type[Event]] = {
    cls.model_fields["event_type"].default: cls
    for cls in (
        InferenceMade,
        OutcomeObserved,
        ReviewRecorded,
        IncidentReported,
        ModelRegistered,
        ModelVersionReleased,
        ModelRetired,
        GuidelineChanged,
        DriftReferenceSet,
    )
}
DERIVED_EVENTS: dict[str, type[Event]] = {
    cls.model_fields["event_type"].default: cls
    for cls in (
        AlertRaised,
        IncidentCandidateRaised,
        IncidentTriaged,
        ReportabilityDecided,
        ReportSubmitted,
        IncidentClosed,
        ReportDueSoon,
        ReportOverdue,
        IncidentViewed,
        ConsoleSignedIn,
        TrendDetected,
        DriftDetected,
        DriftResolved,
        ThresholdBreached,
        ThresholdRestored,
        DisparityDetected,
        DisparityResolved,
        OversightViolation,
        OversightRestored,
        TransparencyViolation,
        TransparencyRestored,
        SourceSilent,
        SourceResumed,
        DataQualityChanged,
        DataQualityRestored,
        ReaderFindingRaised,
        ReaderFindingResolved,
        PerformanceEstimated,
        CalibrationReferenceSet,
        CorrectiveActionStarted,
        FieldSafetyNoticeIssued,
        CorrectiveActionChecked,
    )
}
EVENT_TYPES: dict[str, type[Event]] = {**INPUT_EVENTS, **DERIVED_EVENTS}

# Which topic carries which event type; emitters and the API route by this.
TOPIC_OF: dict[str, str] = {
    "InferenceMade": "inference.v1",
    "OutcomeObserved": "outcome.v1",
    "ReviewRecorded": "review.v1",
    "IncidentReported": "incident.v1",
    "ModelRegistered": "model.v1",
    "ModelVersionReleased": "model.v1",
    "ModelRetired": "model.v1",
    "GuidelineChanged": "model.v1",
    "DriftReferenceSet": "model.v1",
    "AlertRaised": "alert.v1",
    **{name: "surveillance.v1" for name in DERIVED_EVENTS if name != "AlertRaised"},
}
INPUT_TOPICS: tuple[str, ...] = ("inference.v1", "outcome.v1", "review.v1", "incident.v1", "model.v1")
ALERT_TOPIC = "alert.v1"
SURVEILLANCE_TOPIC = "surveillance.v1"
DEADLETTER_TOPIC = "deadletter.v1"
# Ticks of wall-clock time, one per partition, from the worker to itself: a partition without
# traffic still closes its drift windows and expires its outcome joins. Not events; not recorded.
CLOCK_TOPIC = "clock.v1"
# From the worker's first stage (keyed by inference) to its second (keyed by model): vigil.handover.
# Not events; not recorded.
HANDOVER_TOPIC = "handover.v1"
ALL_TOPICS: tuple[str, ...] = (
    *INPUT_TOPICS, ALERT_TOPIC, SURVEILLANCE_TOPIC, DEADLETTER_TOPIC, CLOCK_TOPIC, HANDOVER_TOPIC
)  # fmt: skip
RECORDED_TOPICS: tuple[str, ...] = (*INPUT_TOPICS, ALERT_TOPIC, SURVEILLANCE_TOPIC)


def partition_key(event: Event) -> bytes:
    """An inference, its outcome and its reviews share a partition (the inference id), where the
    worker joins them, so one model's stream spreads over all partitions; the events of one
    incident, else of one model, stay in one partition, so their order is kept."""
    if isinstance(event, InferenceMade):
        return str(event.event_id).encode()
    if isinstance(event, OutcomeObserved | ReviewRecorded):
        return str(event.inference_id).encode()
    key = getattr(event, "incident_id", None) or getattr(event, "model_id", None) or event.event_id
    return str(key).encode()


class DeadLetter(Record):
    """What the worker writes to `deadletter.v1` for a record it could not accept."""

    dead_letter_id: UUID
    reason: str
    reason_kind: Literal[
        "oversized",
        "not_json",
        "too_deep",
        "future_timestamp",
        "worker_error",
        "recorder_error",
        "not_an_object",
        "unknown_type",
        "unsupported_version",
        "wrong_topic",
        "schema",
        "phi",
        "unknown_model",
        "unknown_label",
        "model_mismatch",
        "retired_model",
    ]
    path: str | None = Field(description="dotted path of the offending field, where there is one")
    source_topic: str
    source_partition: int
    source_offset: int
    payload_sha256: str
    payload_base64: str | None = Field(
        description="the original bytes; withheld (null) when the record was refused for carrying PHI"
    )
    dead_lettered_at: AwareDatetime
