"""Vigil's access and incident audit trail as FHIR AuditEvents, for a hospital's audit repository.

Each access to incident data (a read, a report prepared, a console sign-in) and each command that
changes an incident becomes an AuditEvent following IHE BALP's basic profiles (Read, Create,
Update, Login): type and subtype, action, recorded, outcome, the agent (who and their role), the
source observer (Vigil), and an entity pointing at the incident, never at a patient. Resources are
built and validated by fhir.resources (FHIR R4: its R4B model, whose AuditEvent is R4's).
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from vigil.events import (
    ConsoleSignedIn,
    Event,
    IncidentCandidateRaised,
    IncidentClosed,
    IncidentReported,
    IncidentTriaged,
    IncidentViewed,
    ReportabilityDecided,
    ReportSubmitted,
)

AUDITED: tuple[type[Event], ...] = (IncidentReported, IncidentCandidateRaised, IncidentTriaged, ReportabilityDecided,
                                    ReportSubmitted, IncidentClosed, IncidentViewed, ConsoleSignedIn)  # fmt: skip
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
REST_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
             "display": "Restful Operation"}  # fmt: skip
INTERACTION = "http://hl7.org/fhir/restful-interaction"
APPLICATION_SERVER = {"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                      "display": "Application Server"}  # fmt: skip
SYSTEM_OBJECT = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                 "display": "System Object"}  # fmt: skip
# Vigil's own identifiers: its people (staff identifiers from the token), roles and incidents.
PERSON, ROLE, INCIDENT = "urn:vigil:person", "urn:vigil:role", "urn:vigil:incident"
# What each event is to an auditor: (BALP profile, action, subtype).
KINDS: dict[type[Event], tuple[str, str, dict[str, str]]] = {
    IncidentViewed: ("Read", "R", {"system": INTERACTION, "code": "read", "display": "read"}),
    IncidentReported: ("Create", "C", {"system": INTERACTION, "code": "create", "display": "create"}),
    IncidentCandidateRaised: ("Create", "C", {"system": INTERACTION, "code": "create", "display": "create"}),
    **{kind: ("Update", "U", {"system": INTERACTION, "code": "update", "display": "update"})
       for kind in (IncidentTriaged, ReportabilityDecided, ReportSubmitted, IncidentClosed)},
    ConsoleSignedIn: ("Login", "E", {"system": DICOM, "code": "110122", "display": "Login"}),
}  # fmt: skip


def audit_event(event: Event) -> AuditEvent:
    """The AuditEvent of one audited event (its id is the event's)."""
    profile, action, subtype = KINDS[type(event)]
    by, role = getattr(event, "by", None), getattr(event, "role", None)
    if isinstance(event, IncidentReported):  # the report names the reporter's role, not the person
        agent = {"who": {"display": f"the reporting {event.reporter_role}"}, "requestor": True,
                 "type": {"coding": [{"system": ROLE, "code": event.reporter_role}]}}  # fmt: skip
    elif by is None:  # a candidate Vigil raised itself: the worker is the agent
        agent = {"who": {"display": "Vigil worker"}, "requestor": False,
                 "type": {"coding": [{"system": ROLE, "code": "vigil"}]}}  # fmt: skip
    else:
        agent = {"who": {"identifier": {"system": PERSON, "value": by}, "display": by}, "requestor": True,
                 "type": {"coding": [{"system": ROLE, "code": role}]}}  # fmt: skip
    fields: dict[str, object] = {
        "id": str(event.event_id),
        "meta": {"profile": [BALP + profile]},
        "type": {"system": DICOM, "code": "110114", "display": "User Authentication"}
        if isinstance(event, ConsoleSignedIn) else REST_TYPE,
        "subtype": [subtype],
        "action": action,
        "recorded": event.occurred_at,
        "outcome": "0",
        "agent": [agent],
        "source": {"observer": {"display": "Vigil"}, "type": [APPLICATION_SERVER]},
    }  # fmt: skip
    incident_id = getattr(event, "incident_id", None)
    if incident_id is not None:
        entity: dict[str, object] = {"what": {"identifier": {"system": INCIDENT, "value": str(incident_id)}},
                                     "type": SYSTEM_OBJECT, "description": f"incident {incident_id}"}  # fmt: skip
        if isinstance(event, IncidentViewed) and event.document:
            entity["description"] = f"incident {incident_id}: {event.document} report prepared"
        fields["entity"] = [entity]
    return AuditEvent.model_validate(fields)


def bundle(events: Iterable[Event]) -> Bundle:
    """A collection Bundle of the events' AuditEvents, as an auditor downloads it."""
    entries = [{"fullUrl": f"urn:uuid:{e.event_id}", "resource": audit_event(e)} for e in events]
    return Bundle.model_validate({"type": "collection", "entry": entries})


def ndjson(events: Iterable[Event]) -> Iterable[str]:
    """One AuditEvent per line (FHIR bulk data's NDJSON)."""
    for event in events:
        yield audit_event(event).model_dump_json(exclude_none=True) + "\n"
