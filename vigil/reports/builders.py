"""Report builders: an incident's state and its model card → an EU MIR or FDA 3500A-aligned report.

The structures follow the sections of the EU Manufacturer Incident Report form (MIR 7.3.1) and
of FDA Form 3500A. Patients appear only as counts and harm categories: Vigil holds no identifiers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from vigil.corrective_actions import CorrectiveAction
from vigil.events import Record
from vigil.incidents import HistoryEntry, Incident, InvalidInput
from vigil.reports.models import ModelCard

HARM_TEXT = {
    "none": "no harm",
    "temporary": "temporary harm",
    "serious_deterioration": "serious deterioration in state of health",
    "death": "death",
}


class Clock(Record):
    regime: str
    category: str
    citation: str
    due_at: AwareDatetime
    provisional: bool
    satisfied: bool
    counting: str = Field(description="the counting rule of due_at: elapsed_days or regulation_1182_71")
    other_last_day: date | None = Field(None, description="the last day under the other counting rule")


class MirReport(Record):
    form: Literal["EU MIR 7.3.1 (aligned)"] = "EU MIR 7.3.1 (aligned)"
    administrative: dict[str, str | None]
    submitter: dict[str, str]
    device: dict[str, str | None]
    incident: dict[str, str | int | None]
    patient_outcome: dict[str, str]
    manufacturer_analysis: dict[str, str | None]
    corrective_actions: dict[str, str | None]
    clocks: list[Clock]
    timeline: list[HistoryEntry]


class Fda3500aReport(Record):
    form: Literal["FDA 3500A (aligned)"] = "FDA 3500A (aligned)"
    a_patient: dict[str, str]
    b_adverse_event: dict[str, str | list[str] | None]
    d_suspect_device: dict[str, str | None]
    e_initial_reporter: dict[str, str | None]
    g_manufacturer: dict[str, str | None]
    h_device_manufacturer: dict[str, str | int | None]
    clocks: list[Clock]
    timeline: list[HistoryEntry]


def _clocks(incident: Incident, regime_prefix: str) -> list[Clock]:
    return [
        Clock(
            regime=c.regime,
            category=c.category,
            citation=c.citation,
            due_at=c.due_at,
            provisional=c.provisional,
            satisfied=incident.clock_satisfied(c),
            counting=c.counting or "regulation_1182_71",  # clocks recorded before the rule was named
            other_last_day=c.other_last_day,
        )
        for c in incident.clocks
        if c.regime.startswith(regime_prefix)
    ]


def _harm(incident: Incident) -> str:
    harm = incident.triage.harm if incident.triage else incident.reported_harm
    return HARM_TEXT.get(harm or "", "not yet assessed")


# The documents' types: a submission's (ReportType), and the MIR's "final (non-reportable
# incident)", which closes an initial report of an incident that turned out not reportable.
ReportKind = Literal["initial", "follow_up", "combined_initial_final", "final", "final_non_reportable"]


def _decided_at(incident: Incident) -> str | None:
    return next((h.occurred_at.isoformat() for h in incident.history if h.event_type == "ReportabilityDecided"), None)


def _codes(codes: list[str] | None) -> str | None:
    return ", ".join(codes) if codes else None


def build_mir(
    incident: Incident,
    card: ModelCard,
    report_type: ReportKind,
    submitter: str,
    now: datetime,
    actions: list[CorrectiveAction],
) -> MirReport:
    triage = incident.triage
    fscas = [a for a in actions if a.started.kind == "fsca"]
    mdr = next((c for c in incident.clocks if c.regime == "eu-mdr"), None)
    references = [r.reference for r in incident.reports if r.regime == "eu-mdr"]
    return MirReport(
        administrative={
            "report_date": now.date().isoformat(),
            "report_type": report_type,
            "manufacturer_reference": str(incident.incident_id),
            "competent_authority_reference": references[0] if references else None,
            "classification": mdr.category if mdr else None,
            "legal_basis": mdr.citation if mdr else None,
            "incident_date": incident.incident_date.isoformat() if incident.incident_date else None,
            "awareness_date": incident.aware_at.isoformat(),
            "reportability_known_date": _decided_at(incident),
            "reporting_deadline": mdr.due_at.isoformat() if mdr else None,
            "deadline_counted_by": mdr.counting if mdr and mdr.counting else None,
            "country": incident.country,
        },
        submitter={"status": "manufacturer", "organisation": card.manufacturer, "prepared_by": submitter},
        device={
            "name": card.name,
            "model_id": card.model_id,
            "software_version": incident.model_version,
            "risk_class": card.risk_class,
            "intended_use": card.intended_use,
            "udi_di": None,
            "version_released_at": card.released_at,
        },
        incident={
            "description": incident.description,
            "source": incident.source,
            "reported_by_role": incident.reporter_role,
            "inferences_involved": len(incident.inference_ids),
            "public_health_threat": "yes" if triage and triage.public_health_threat else "no",
        },
        patient_outcome={"harm": _harm(incident), "patients_involved": str(max(1, len(incident.inference_ids)))},
        manufacturer_analysis={
            "causality": triage.causality if triage else "not yet assessed",
            "expected": ("expected" if triage.expected else "unanticipated") if triage else None,
            "analysis": triage.rationale if triage else None,
            "reportability_rationale": incident.decision_rationale,
            "imdrf_device_problem_codes": _codes(triage.device_problem_codes if triage else None),
            "imdrf_health_effect_codes": _codes(triage.health_effect_codes if triage else None),
        },
        corrective_actions={
            "remedial_action_needed": "yes" if (triage and triage.remedial_action_needed) or actions else "no",
            "field_safety_corrective_action": "yes" if fscas else "no",
            "actions": "; ".join(a.describe() for a in actions) or None,
            "field_safety_notices": ", ".join(n.reference for a in fscas for n in a.notices) or None,
            "status": incident.closed_rationale,
        },
        clocks=_clocks(incident, "eu-"),
        timeline=incident.history,
    )


def build_fda_3500a(
    incident: Incident,
    card: ModelCard,
    report_type: ReportKind,
    submitter: str,
    now: datetime,
    actions: list[CorrectiveAction],
) -> Fda3500aReport:
    if report_type == "final_non_reportable":
        raise InvalidInput("the FDA 3500A has no final (non-reportable) report; that type is the EU MIR's")
    triage = incident.triage
    fda = next((c for c in incident.clocks if c.regime == "fda-803"), None)
    outcomes = {"death": ["death"], "serious_deterioration": ["required intervention to prevent permanent impairment"]}
    follow_ups = sum(r.report_type == "follow_up" for r in incident.reports if r.regime == "fda-803")
    return Fda3500aReport(
        a_patient={
            "identifier": "withheld: pseudonymous data only",
            "patients_involved": str(len(incident.inference_ids)),
        },
        b_adverse_event={
            "type": "adverse event",
            "outcomes": outcomes.get(triage.harm if triage else "", ["other"]),
            "event_date": incident.aware_at.date().isoformat(),
            "report_date": now.date().isoformat(),
            "description": incident.description,
        },
        d_suspect_device={
            "brand_name": card.name,
            "manufacturer": card.manufacturer,
            "model_number": card.model_id,
            "software_version": incident.model_version,
            "intended_use": card.intended_use,
        },
        e_initial_reporter={"occupation": incident.reporter_role, "country": incident.country},
        g_manufacturer={
            "date_received": incident.aware_at.date().isoformat(),
            "report_type": "5-day" if fda and fda.category == "remedial_action" else "30-day",
            "report_source": "user facility" if incident.source == "report" else "manufacturer surveillance",
            "manufacturer_report_number": str(incident.incident_id),
            "prepared_by": submitter,
        },
        h_device_manufacturer={
            "reportable_event_type": {"death": "death", "serious_deterioration": "serious injury"}.get(
                triage.harm if triage else "", "malfunction"
            ),
            "report_kind": report_type,
            "follow_up_number": follow_ups,
            "evaluation": triage.rationale if triage else None,
            "remedial_action": "yes" if (triage and triage.remedial_action_needed) or actions else "no",
            "remedial_actions_taken": "; ".join(a.describe() for a in actions) or None,
            "device_problem_codes": _codes(triage.device_problem_codes if triage else None),
            "health_effect_codes": _codes(triage.health_effect_codes if triage else None),
        },
        clocks=_clocks(incident, "fda-"),
        timeline=incident.history,
    )


ReportBuilder = Callable[
    [Incident, ModelCard, ReportKind, str, datetime, list[CorrectiveAction]], MirReport | Fda3500aReport
]
REPORT_FORMATS: dict[str, ReportBuilder] = {"mir": build_mir, "fda-3500a": build_fda_3500a}
