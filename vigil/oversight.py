"""Human oversight of clinical outputs: did a patient-facing bot escalate an emergency?"""

from __future__ import annotations

import uuid

from vigil.events import AlertRaised, IncidentCandidateRaised, InferenceMade, OutcomeObserved

NAMESPACE = uuid.UUID("0c3d5a7e-2b4f-4e1a-9d8c-6f5b3a2e1d40")
UNKNOWN_COUNTRY = "ZZ"  # ISO 3166 user-assigned: no regime applies until someone says where


def needs_escalation_watch(inference: InferenceMade) -> bool:
    """Only patient-facing outputs that did not escalate can miss an emergency."""
    return inference.patient_facing is not None and not inference.patient_facing.escalated


def missed_escalation(
    inference: InferenceMade, outcome: OutcomeObserved
) -> tuple[IncidentCandidateRaised, AlertRaised] | None:
    """An emergency the bot did not escalate becomes an incident candidate and a critical alert."""
    if not (needs_escalation_watch(inference) and outcome.emergency):
        return None
    incident_id = uuid.uuid5(NAMESPACE, f"missed-escalation/{inference.event_id}")
    candidate = IncidentCandidateRaised(
        event_id=uuid.uuid5(NAMESPACE, f"candidate/{incident_id}"),
        occurred_at=outcome.occurred_at,
        incident_id=incident_id,
        model_id=inference.model_id,
        model_version=inference.model_version,
        source="missed_escalation",
        summary=(
            f"A patient-facing output of {inference.model_id} {inference.model_version} at "
            f"{inference.deployment} was not escalated, but the follow-up ({outcome.source}) found an emergency."
        ),
        inference_ids=[inference.event_id],
        country=inference.country or UNKNOWN_COUNTRY,
        aware_at=outcome.occurred_at,
    )
    alert = AlertRaised(
        event_id=uuid.uuid5(NAMESPACE, f"alert/{incident_id}"),
        occurred_at=outcome.occurred_at,
        alert_name="EscalationMissed",
        severity="critical",
        model_id=inference.model_id,
        model_version=inference.model_version,
        summary=f"Emergency not escalated by {inference.model_id}; incident candidate {incident_id} awaits triage",
        labels={"incident_id": str(incident_id)},
        caused_by=candidate.event_id,
    )
    return candidate, alert
