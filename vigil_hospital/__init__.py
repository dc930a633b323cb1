"""A synthetic hospital: three deployed models of different WHO risk classes and their events.

The same seed gives the same hospital (every draw, so every figure) whenever it starts; the start
only shifts the timestamps and, with the seed, decides the event ids, so a demo run later emits new
events rather than copies the store would drop. Patients appear only as pseudonymous tokens.

- mammo-screen (high risk): mammography screening, two sites, one of them low-resource.
- ed-triage (medium risk): emergency department triage from vital signs.
- symptom-chat (low risk): a patient-facing symptom chatbot in several languages.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

Event = dict[str, Any]

SITES = {"st-mary": "high", "north-valley": "high", "city-east": "high", "riverside-rural": "low"}
RURAL = "riverside-rural"
# The WHO example of an equity gap: ED triage sensitivity for urgent arrivals by site, near 0.89,
# 0.91 and 0.87 at the well-resourced sites and 0.76 at the low-resource one.
TRIAGE_SENSITIVITY = {"st-mary": 0.89, "north-valley": 0.91, "city-east": 0.87, RURAL: 0.76}
AGE_BANDS = ["18-39", "40-49", "50-59", "60-69", "70+"]

MODELS: list[Event] = [
    {
        "model_id": "mammo-screen",
        "name": "MammoAssist",
        "manufacturer": "Example Imaging AI",
        "use_case": "mammography_screening",
        "risk_class": "high",
        "intended_use": "Flags screening mammograms suspicious for malignancy for radiologist review.",
        "out_of_scope_uses": ["diagnostic work-up", "patients under 35"],
        "labels": ["malignant", "benign"],
        "critical_labels": ["malignant"],
        "countries": ["DE", "FR"],
    },
    {
        "model_id": "ed-triage",
        "name": "TriageLens",
        "manufacturer": "Example Clinical AI",
        "use_case": "ed_triage",
        "risk_class": "medium",
        "intended_use": "Suggests an acuity level for adult emergency department arrivals.",
        "out_of_scope_uses": ["paediatric patients", "mass-casualty triage"],
        "labels": ["urgent", "non_urgent"],
        "critical_labels": ["urgent"],
        "countries": ["DE"],
    },
    {
        "model_id": "symptom-chat",
        "name": "AskNurse",
        "manufacturer": "Example Health Chat",
        "use_case": "symptom_information",
        "risk_class": "low",
        "intended_use": "Answers patients' general health questions and directs emergencies to care.",
        "out_of_scope_uses": ["diagnosis", "prescribing"],
        "patient_facing": True,
        "labels": ["self_care", "see_gp", "emergency"],
        "critical_labels": ["emergency"],
        "countries": ["DE", "FR"],
    },
]
VERSIONS = {"mammo-screen": "2.3.0", "ed-triage": "1.5.0", "symptom-chat": "0.9.1"}
# What each version was trained on (synthetic, as everything here): the model card shows it.
TRAINING_DATA = {
    "mammo-screen": {"populations": ["women 40-74 in screening programmes"], "sites": ["st-mary", "north-valley"],
                     "period_start": "2019-01-01", "period_end": "2023-12-31", "size": 120_000},
    "ed-triage": {"populations": ["adults at emergency departments"], "sites": ["st-mary", "north-valley", "city-east"],
                  "period_start": "2020-01-01", "period_end": "2024-06-30", "size": 80_000},
    "symptom-chat": {"populations": ["adult patients asking general health questions, German and French"],
                     "period_start": "2022-01-01", "period_end": "2024-12-31", "size": 40_000},
}  # fmt: skip
# The seed's mammography example is a premarket reader study: the card states it, and the
# post-market readers' table (vigil performance show --readers) shows whether it holds in use.
VALIDATION = {
    "": "Retrospective validation on the demo hospital's synthetic population.",
    "mammo-screen": "Premarket reader study on screening mammograms (sensitivity for malignancy): radiologist "
    "alone 85 %, radiologist with the model as second reader 92 %, the model alone 88 %. Retrospective "
    "validation on the demo hospital's synthetic population.",
}


PREVALENCE, MEANS, SPREAD = 0.08, {True: 0.78, False: 0.18}, 0.15  # of malignancy and its scores


def _screen(r: random.Random) -> tuple[bool, float]:
    """A screening mammogram's truth and the model's score for malignancy."""
    malignant = r.random() < PREVALENCE
    return malignant, min(1.0, max(0.0, r.gauss(MEANS[malignant], SPREAD)))


def _malignancy(score: float) -> float:
    """The probability that a screen with this score is malignant, as `_screen` draws them (Bayes)."""
    weight = {m: math.exp(-0.5 * ((score - mean) / SPREAD) ** 2) for m, mean in MEANS.items()}
    return PREVALENCE * weight[True] / (PREVALENCE * weight[True] + (1 - PREVALENCE) * weight[False])


def _unsure_score(r: random.Random, malignant: bool, low: float = 0.40, high: float = 0.55) -> float:
    """A score of the new scanner's images, which leave the model unsure: between `low` and `high`,
    around its decision threshold, and drawn so that a score keeps nearly its meaning (each truth's
    scores weighted by `_malignancy`): the shift that estimated performance (CBPE) can see before
    any pathology, because the calibration nearly holds. Exactly only if the mean chance over the
    range were the prevalence; over 0.40-0.55 it is 0.109 against 0.08, so a score's odds of
    malignancy are about 0.7 times what they were, and the estimate runs a little high."""
    while True:  # rejection sampling: uniform scores, kept with the probability of the screen's truth
        score = r.uniform(low, high)
        chance = _malignancy(score)
        if r.random() < (chance if malignant else 1 - chance):
            return score


def _screen_output(score: float) -> dict[str, Any]:
    """What the screening model says of a score: malignant from 0.5."""
    return {"label": "malignant" if score >= 0.5 else "benign", "score": round(score, 4)}


def _final_label(model_id: str, suggested: str, truth: str, decision: str) -> str:
    """The clinician's own answer: the suggestion when accepted or modified; overriding it, the
    truth when the model was wrong and the other label when it was right (no new random draw, so
    the seed's figures stay as they were)."""
    if decision != "overridden":
        return suggested
    labels = next(m["labels"] for m in MODELS if m["model_id"] == model_id)
    return truth if suggested != truth else next(label for label in labels if label != suggested)


@dataclass
class Hospital:
    seed: int
    start: datetime

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._scanner = random.Random(f"{self.seed}/scanner")  # its own draws: the stream's stay as they were
        self._ids = random.Random(f"{self.seed}/{self.start.isoformat()}")

    def _id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _patient(self) -> str:
        # A keyed hash of a hospital-internal number: pseudonymous, stable, not reversible here.
        return "pt_" + hashlib.sha256(f"{self.seed}:{self.rng.randrange(50_000)}".encode()).hexdigest()[:24]

    def registry(self) -> Iterator[Event]:
        for model in MODELS:
            yield {
                "event_type": "ModelRegistered",
                "event_id": self._id(),
                "occurred_at": self.start.isoformat(),
                **model,
            }
            yield {
                "event_type": "ModelVersionReleased",
                "event_id": self._id(),
                "occurred_at": self.start.isoformat(),
                "model_id": model["model_id"],
                "model_version": VERSIONS[model["model_id"]],
                "released_at": self.start.isoformat(),
                "training_data_summary": "Synthetic training data summary for the demo.",
                "training_data": TRAINING_DATA[model["model_id"]],
                "validation_summary": VALIDATION.get(model["model_id"], VALIDATION[""]),
                "limitations": ["not validated outside the intended population"],
            }

    def stream(self, n: int, every: timedelta = timedelta(seconds=20)) -> Iterator[Event]:
        """n inferences spread over time, each followed by a review, some by an outcome."""
        makers = [self._mammo, self._triage, self._chat]
        # A drift episode: from 45 % to 75 % of the stream, the rural site's new mammography
        # scanner (an unseen vendor) produces images of higher contrast, until it is recalibrated;
        # on them the model is unsure, its scores near its threshold, and it misses cancers.
        new_scanner = range(int(n * 0.45), int(n * 0.75))
        # An oversight episode: from 55 % to 65 % of the stream the rural ED's night shift reviews
        # no triage suggestion, and its first three reviews after that record that the acuity was
        # acted on before review. From 80 %, an update of the imaging vendor switches on
        # auto-reporting at the rural site: three screens are reported without a radiologist.
        unreviewed, acted, autonomous = range(int(n * 0.55), int(n * 0.65)), 3, 3
        # A transparency episode: from 30 % to 40 % of the stream, a release of the chatbot's web
        # front end drops the AI disclaimer for patients writing in French.
        no_disclaimer = range(int(n * 0.30), int(n * 0.40))
        for i in range(n):
            at = self.start + every * i
            inference = makers[i % 3](at)
            # Taken out before the inference is yielded: a reader that sends each event as it
            # comes (not after the stream is made whole) would otherwise send the hidden truth.
            truth = inference.pop("_truth")
            model_id, rural = inference["model_id"], inference["deployment"] == RURAL
            if model_id == "mammo-screen" and i in new_scanner and rural:
                inference["features"] |= {
                    "scanner_vendor": "vendor_c",
                    "image_contrast": round(inference["features"]["image_contrast"] + 0.12, 4),
                }
                score = _unsure_score(self._scanner, truth == "malignant")
                inference["output"] = _screen_output(score)
            if model_id == "mammo-screen" and rural and i >= n * 0.8 and autonomous:
                inference["output_kind"], autonomous = "autonomous_action", autonomous - 1
            if model_id == "symptom-chat" and i in no_disclaimer and inference["subgroup"]["language"] == "fr":
                inference["patient_facing"]["disclaimer_shown"] = False
            yield inference
            for event in self._follow_ups(inference, at, truth):  # made whole, so the random draws stay the same
                if event["event_type"] == "ReviewRecorded" and model_id == "ed-triage" and rural:
                    if i in unreviewed:
                        continue
                    if i >= unreviewed.stop and acted:
                        event["acted_before_review"], acted = True, acted - 1
                yield event

    def _base(self, model_id: str, at: datetime, subgroup: dict[str, str], site: str) -> Event:
        return {
            "event_type": "InferenceMade",
            "event_id": self._id(),
            "occurred_at": at.isoformat(),
            "model_id": model_id,
            "model_version": VERSIONS[model_id],
            "deployment": site,
            "country": "DE",
            "patient_ref": self._patient(),
            "subgroup": {**subgroup, "site": site, "resource_setting": SITES[site]},
            "consent_recorded": True,
        }

    def validation_study(self, n: int = 1500) -> list[tuple[float, str]]:
        """mammo-screen's premarket validation set: (score, pathology) of n screens, drawn as the
        stream's screens are, from a generator of its own (the stream's draws stay as they are)."""
        r = random.Random(f"{self.seed}/validation")
        return [(score, "malignant" if malignant else "benign")
                for malignant, score in (_screen(r) for _ in range(n))]  # fmt: skip

    def _mammo(self, at: datetime) -> Event:
        r = self.rng
        site = r.choice(["st-mary", "north-valley", RURAL])
        malignant, score = _screen(r)
        return {
            **self._base("mammo-screen", at, {"sex": "F", "age_band": r.choice(AGE_BANDS[1:])}, site),
            "use_case": "mammography_screening",
            "features": {
                "breast_density": r.choice("ABCD"),
                "patient_age": round(r.gauss(58, 8), 1),
                "image_contrast": round(r.gauss(0.62, 0.05), 4),
                "lesion_size_mm": round(abs(r.gauss(9 if malignant else 4, 3)), 1),
                "scanner_vendor": r.choice(["vendor_a", "vendor_b"]),
            },
            "output": _screen_output(score),
            "explanation_present": True,
            "resources": {"latency_ms": round(r.uniform(300, 900), 1), "energy_wh": 0.8},
            "_truth": "malignant" if malignant else "benign",
        }

    def _triage(self, at: datetime) -> Event:
        r = self.rng
        site = r.choice(list(TRIAGE_SENSITIVITY))
        urgent = r.random() < 0.3
        said_urgent = r.random() < (TRIAGE_SENSITIVITY[site] if urgent else 0.12)
        hr = r.gauss(112 if urgent else 84, 12)
        return {
            **self._base(
                "ed-triage", at, {"sex": r.choice("FM"), "age_band": r.choice(AGE_BANDS), "language": "de"}, site
            ),
            "use_case": "ed_triage",
            "features": {
                "heart_rate": round(hr),
                "resp_rate": round(r.gauss(24 if urgent else 16, 3)),
                "spo2": round(min(100, r.gauss(92 if urgent else 97, 2)), 1),
                "systolic_bp": round(r.gauss(128, 18)),
                "chief_complaint": r.choice(["chest_pain", "dyspnoea", "abdominal_pain", "injury", "fever"]),
                "arrival_mode": r.choice(["ambulance", "walk_in"]),
            },
            "output": {
                "label": "urgent" if said_urgent else "non_urgent",
                "score": round(r.uniform(0.5, 0.97) if said_urgent else r.uniform(0.03, 0.5), 4),
            },
            "explanation_present": True,
            "resources": {"latency_ms": round(r.uniform(20, 80), 1), "energy_wh": 0.01},
            "_truth": "urgent" if urgent else "non_urgent",
        }

    def _chat(self, at: datetime) -> Event:
        r = self.rng
        emergency = r.random() < 0.03
        detected = emergency and r.random() < 0.9
        label = "emergency" if detected else r.choice(["self_care", "see_gp"])
        tokens_out = r.randint(80, 400)
        return {
            **self._base(
                "symptom-chat",
                at,
                {
                    "sex": r.choice("FM"),
                    "age_band": r.choice(AGE_BANDS),
                    "language": r.choice(["de", "fr", "en", "tr"]),
                },
                "st-mary",
            ),
            "use_case": "symptom_information",
            "features": {"message_length": r.randint(20, 600), "topic": r.choice(["cold", "pain", "skin", "sleep"])},
            "output": {"label": label, "text_length": tokens_out * 4, "refusal": r.random() < 0.02},
            "patient_facing": {"disclaimer_shown": True, "emergency_detected": detected, "escalated": detected},
            "resources": {
                "latency_ms": round(r.uniform(600, 2500), 1),
                "tokens_in": r.randint(30, 300),
                "tokens_out": tokens_out,
            },
            "_truth": "emergency" if emergency else label,
        }

    def _follow_ups(self, inference: Event, at: datetime, truth: str) -> Iterator[Event]:
        r = self.rng
        model_id = inference["model_id"]
        if not inference.get("patient_facing"):
            decision = r.choices(["accepted", "modified", "overridden"], [0.85, 0.1, 0.05])[0]
            yield {
                "event_type": "ReviewRecorded",
                "event_id": self._id(),
                "occurred_at": (at + timedelta(minutes=5)).isoformat(),
                "inference_id": inference["event_id"],
                "model_id": model_id,
                "reviewer_role": "radiologist" if model_id == "mammo-screen" else "triage_nurse",
                "decision": decision,
                "reviewed_at": (at + timedelta(minutes=5)).isoformat(),
                "final_label": _final_label(model_id, inference["output"]["label"], truth, decision),
            }
        # ED follow-up (admission or discharge) is nearly always known; pathology and chat outcomes less often.
        if r.random() < (0.9 if model_id == "ed-triage" else 0.6):
            observed = at + timedelta(days=7 if model_id == "mammo-screen" else 1)
            yield {
                "event_type": "OutcomeObserved",
                "event_id": self._id(),
                "occurred_at": observed.isoformat(),
                "inference_id": inference["event_id"],
                "model_id": model_id,
                "observed_at": observed.isoformat(),
                "label": truth,
                "critical_condition": truth in ("malignant", "urgent", "emergency"),
                "source": "pathology" if model_id == "mammo-screen" else "follow_up",
                **({"emergency": truth == "emergency"} if model_id == "symptom-chat" else {}),
            }


def malformed_records(seed: int) -> list[tuple[str, bytes]]:
    """A handful of records a careless emitter might send, as (topic, raw bytes)."""
    rng = random.Random(seed)
    good_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return [
        ("inference.v1", b"{not json"),
        ("inference.v1", b'{"event_type": "InferenceMade", "schema_version": 2}'),
        ("outcome.v1", b'{"event_type": "OutcomeObserved", "event_id": "' + good_id.encode() + b'", "label": 3}'),
        ("inference.v1", b'{"event_type": "InferenceMade", "patient_ref": "4711-0815"}'),
        ("review.v1", b'{"event_type": "Whatever"}'),
    ]


def missed_chest_pain(hospital: Hospital, at: datetime) -> tuple[Event, Event]:
    """The WHO example: a patient describes chest pain, the bot advises self-care, it was an emergency."""
    inference = hospital._chat(at)
    inference.pop("_truth")
    inference["features"] = {"message_length": 240, "topic": "chest_pain"}
    inference["output"] = {"label": "self_care", "text_length": 900, "refusal": False}
    inference["patient_facing"] = {"disclaimer_shown": True, "emergency_detected": False, "escalated": False}
    observed = at + timedelta(hours=5)
    outcome = {
        "event_type": "OutcomeObserved",
        "event_id": hospital._id(),
        "occurred_at": observed.isoformat(),
        "inference_id": inference["event_id"],
        "model_id": "symptom-chat",
        "observed_at": observed.isoformat(),
        "label": "emergency",
        "critical_condition": True,
        "source": "clinician_report",
        "emergency": True,
    }
    return inference, outcome
