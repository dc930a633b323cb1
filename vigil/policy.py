"""The monitoring policy: what Vigil measures per model and when it speaks up, from one YAML file.

`defaults` apply to every model; `models.<model_id>` overrides any part of them (dictionaries
merge key by key, everything else replaces). An unknown key is an error that names its path, so
a typo cannot silently switch a safeguard off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vigil.drift import ALLOWED, THRESHOLDS, Method, method_for
from vigil.events import Counting, RiskClass, TransparencyKind
from vigil.performance import Metric, Rules
from vigil.plan import DEFAULT_PLAN, PlanEntry, plan_of


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureRule(Strict):
    method: Method | None = None
    threshold: float | None = None
    ignore: bool = False


class DriftWindow(Strict):
    kind: Literal["time", "count"] = "time"
    seconds: int = Field(default=3600, ge=60, description="time windows: length")
    size: int = Field(default=1000, ge=10, description="count windows: events per window")


class DriftPolicy(Strict):
    reference_size: int = Field(default=1000, ge=20, description="events of a new version that become its reference")
    window: DriftWindow = DriftWindow()
    grace_seconds: int = Field(default=300, ge=0, description="time windows: how late an event may still count")
    min_sample: int = Field(default=200, ge=1, description="values a window needs before it is judged")
    drift_share: float = Field(default=0.5, gt=0, le=1, description="share of drifted features for dataset drift")
    bins: int = Field(default=20, ge=2, le=200)
    max_categories: int = Field(default=50, ge=1, le=200)
    thresholds: dict[Method, float] = Field(default={}, description="per method, instead of Evidently's defaults")
    features: dict[str, FeatureRule] = {}
    max_missing_change: float | None = Field(
        default=0.1, gt=0, lt=1, description="largest change of a missing share (vigil.data_quality); none: off"
    )

    def rule(self, feature: str, kind: Literal["numeric", "categorical"], reference_size: int) -> tuple[Method, float]:
        """The method and threshold for a feature: its override, else Evidently's choice by size."""
        rule = self.features.get(feature, FeatureRule())
        method = rule.method or method_for(kind, reference_size)
        if method not in ALLOWED[kind]:
            raise ValueError(f"policy: method {method!r} does not apply to {kind} feature {feature!r}")
        default = self.thresholds.get(method, THRESHOLDS[method])
        return method, default if rule.threshold is None else rule.threshold


# Sensitivity on critical labels by WHO risk class. 0.95 for high risk is the seed's safety rule;
# 0.90 and 0.80 for medium and low risk are Vigil's defaults, to be set per deployment.
DEFAULT_THRESHOLDS: dict[RiskClass, dict[Metric, float]] = {
    "high": {"sensitivity": 0.95},
    "medium": {"sensitivity": 0.90},
    "low": {"sensitivity": 0.80},
}


class PerformancePolicy(Strict):
    risk_class: RiskClass | None = Field(default=None, description="overrides the registry's risk class")
    attributes: list[str] = ["sex", "age_band", "site", "language", "resource_setting"]
    depth: int = Field(default=2, ge=1, le=3, description="intersections of up to this many attributes")
    max_values: int = Field(default=20, ge=1, le=200, description="values per attribute; later ones are 'other'")
    window_days: int = Field(default=30, ge=1, le=365)
    horizon_days: int = Field(default=90, ge=1, le=730, description="how long an inference waits for its outcome")
    primary_metric: Metric = "sensitivity"
    thresholds: dict[RiskClass, dict[Metric, float]] = DEFAULT_THRESHOLDS
    disparity: float = Field(default=0.05, gt=0, lt=1, description="largest allowed best-minus-worst gap")
    min_positives: int = Field(default=20, ge=1)
    min_negatives: int = Field(default=20, ge=0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    estimate_max_ece: float = Field(
        default=0.05, gt=0, lt=1, description="performance estimates (CBPE) only from a calibration this good"
    )
    estimate_chunk: int = Field(default=500, ge=50, description="outputs per estimate (CBPE)")
    estimate_reference: int = Field(
        default=1000, ge=50, description="a version's first outcomes, the reference its scores are calibrated on"
    )

    def rules(self, registered_risk_class: RiskClass) -> Rules:
        risk_class = self.risk_class or registered_risk_class
        return Rules(
            metric=self.primary_metric,
            threshold=self.thresholds.get(risk_class, {}).get(self.primary_metric),
            disparity=self.disparity,
            min_positives=self.min_positives,
            min_negatives=self.min_negatives,
            confidence=self.confidence,
        )


class OversightPolicy(Strict):
    """WHO: a clinician reviews every clinical output before it is acted on; no autonomous diagnosis.
    Patient-facing outputs reach the patient unreviewed by design: their safeguard is escalation."""

    review_required: bool = Field(default=True, description="suggestions that are not patient-facing need a review")
    review_within_minutes: int = Field(default=1440, ge=1, description="a review later than this does not count")
    min_coverage: float = Field(default=0.99, gt=0, le=1, description="share of due outputs reviewed in time")
    autonomous_allowed: bool = Field(default=False, description="whether output_kind autonomous_action is allowed")
    max_acted_before_review: int = Field(default=0, ge=0, description="outputs acted on before their review")
    max_override_share: float = Field(default=0.2, gt=0, le=1, description="overridden or rejected share of reviews")
    window_days: int = Field(default=7, ge=1, le=365)
    min_due: int = Field(default=50, ge=1, description="decided outputs (or reviews) before shares are judged")
    grace_minutes: int = Field(
        default=60, ge=0, description="how long after a deadline a review, or after a review its inference, may arrive"
    )


class TransparencyPolicy(Strict):
    """WHO: a patient talking to an AI is told so, outputs come with an explanation and a confidence,
    consent is recorded where the deployment asks for it. Each is the lowest share of a version's
    outputs over the oversight window that carry it; none: not judged. Shares are judged from
    `min_outputs` outputs on (patient-facing ones for the disclaimer). `risk_classes` sets other
    shares for models of a WHO risk class (a high-risk imaging model may have to explain every
    output, a low-risk scheduling bot not)."""

    min_disclaimer_shown: float | None = Field(default=1.0, gt=0, le=1, description="of patient-facing outputs")
    min_explanation_present: float | None = Field(default=None, gt=0, le=1)
    min_consent_recorded: float | None = Field(default=None, gt=0, le=1)
    min_score_present: float | None = Field(default=None, gt=0, le=1)
    min_outputs: int = Field(default=20, ge=1)
    risk_classes: dict[RiskClass, dict[str, float | None]] = Field(
        default={}, description="per WHO risk class, any of the min_* shares above instead of these"
    )

    @field_validator("risk_classes")
    @classmethod
    def _known_shares(cls, value: dict[RiskClass, dict[str, float | None]]) -> dict[RiskClass, dict[str, float | None]]:
        shares = {name for name in cls.model_fields if name.startswith("min_") and name != "min_outputs"}
        for risk_class, limits in value.items():
            for name, limit in limits.items():
                if name not in shares:
                    raise ValueError(f"{risk_class}: {name!r} is not one of {', '.join(sorted(shares))}")
                if limit is not None and not 0 < limit <= 1:
                    raise ValueError(f"{risk_class}.{name}: a share in (0, 1], or null for not judged")
        return value

    def for_risk_class(self, risk_class: RiskClass | None) -> TransparencyPolicy:
        """The shares that apply to a model of this risk class (the registry's)."""
        overrides = self.risk_classes.get(risk_class, {}) if risk_class else {}
        return self.model_copy(update=overrides) if overrides else self

    def limits(self) -> dict[TransparencyKind, float | None]:
        """Each kind's lowest share; None where it is not judged."""
        return {
            "disclaimer_shown": self.min_disclaimer_shown,
            "explanation_present": self.min_explanation_present,
            "consent_recorded": self.min_consent_recorded,
            "score_present": self.min_score_present,
        }


class ReadersPolicy(Strict):
    """The model alone against the clinician with it (vigil.readers), over the performance window."""

    alpha: float = Field(default=0.05, gt=0, lt=1, description="McNemar: clinicians significantly less sensitive")
    max_wrong_accepted: float = Field(default=0.5, gt=0, le=1, description="share of wrong suggestions accepted")
    min_wrong: int = Field(default=10, ge=1, description="wrong suggestions before their acceptance is judged")


class SourcesPolicy(Strict):
    """System integrity: a deployment that stops sending. Silent when no inference has come for
    longer than `gap_factor` times its median gap between inferences over the last day, and at
    least `min_silence_seconds`."""

    min_silence_seconds: float = Field(default=900, gt=0)
    gap_factor: float = Field(default=6.0, gt=1)
    max_deployments: int = Field(default=50, ge=1, description="deployments watched per model; later ones are not")


class FootprintPolicy(Strict):
    # Around the EU-27 average of recent years (EEA); set the grid the model runs on.
    grid_g_co2e_per_kwh: float = Field(default=250.0, ge=0, description="carbon intensity of the deployment's grid")


class ReportingPolicy(Strict):
    # Elapsed calendar days never give more time than a competent authority would; Regulation
    # 1182/71's extension is the latest legally arguable day (vigil/regulatory.py). The rule is
    # stated on each new incident: changing it here changes how later incidents are counted.
    counting: Counting = "elapsed_days"
    # How many calendar years a PSUR covers; unset: 1 for high-risk models, 2 otherwise (vigil/psur.py).
    psur_years: int | None = Field(None, ge=1, le=5)


class ModelPolicy(Strict):
    drift: DriftPolicy = DriftPolicy()
    performance: PerformancePolicy = PerformancePolicy()
    oversight: OversightPolicy = OversightPolicy()
    transparency: TransparencyPolicy = TransparencyPolicy()
    sources: SourcesPolicy = SourcesPolicy()
    readers: ReadersPolicy = ReadersPolicy()
    footprint: FootprintPolicy = FootprintPolicy()
    reporting: ReportingPolicy = ReportingPolicy()
    plan: dict[str, PlanEntry] = Field(default_factory=lambda: dict(DEFAULT_PLAN), description="vigil/plan.py")

    @field_validator("plan", mode="before")
    @classmethod
    def _with_defaults(cls, value: Any) -> dict[str, PlanEntry]:
        """The file names only what it changes; the rest of each entry and every other alert keep the defaults."""
        if not isinstance(value, dict):
            raise ValueError("plan: a mapping from alert names to owner, cadence and action")
        return plan_of(value)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the path of the problem."""


class Policy:
    def __init__(self, raw: dict[str, Any], source: str = "<policy>") -> None:
        self.source = source
        self.raw = raw
        self._cache: dict[str, ModelPolicy] = {}
        unknown = set(raw) - {"defaults", "models"}
        if unknown:
            raise PolicyError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
        self.for_model("*")  # fail at load time, not at the first event
        for model_id in raw.get("models") or {}:
            self.for_model(model_id)

    def for_model(self, model_id: str) -> ModelPolicy:
        if model_id not in self._cache:
            self._cache[model_id] = self._build(model_id)
        return self._cache[model_id]

    def _build(self, model_id: str) -> ModelPolicy:
        merged = _merge(self.raw.get("defaults") or {}, (self.raw.get("models") or {}).get(model_id) or {})
        try:
            return ModelPolicy.model_validate(merged)
        except ValidationError as error:
            where = "defaults" if model_id == "*" else f"models.{model_id}"
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise PolicyError(f"{self.source} ({where}): {problems}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy({})
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(f"{path}: {error}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: expected a mapping at the top level")
    return Policy(raw, str(path))
