"""The audit trail as FHIR AuditEvents: each audited event maps to its BALP profile, and every
resource parses back through fhir.resources' own model of the specification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from services.audit_fhir import AUDITED, audit_event, bundle, ndjson
from tests.unit.test_incidents import OFFICER, SERIOUS, run
from vigil.events import ConsoleSignedIn, IncidentViewed
from vigil.incidents import Close, DecideReportability, SubmitReport

NOW = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def trail() -> list:
    _, events = run([SERIOUS, DecideReportability(**OFFICER, reportable=True, rationale="r"),
                     SubmitReport(**OFFICER, regime="eu-mdr", report_type="initial", reference="B-1"),
                     SubmitReport(**OFFICER, regime="eu-ai-act", report_type="combined_initial_final", reference="A"),
                     SubmitReport(**OFFICER, regime="eu-mdr", report_type="final", reference="B-1"),
                     Close(**OFFICER, rationale="done")])  # fmt: skip
    incident_id = events[0].incident_id
    viewed = IncidentViewed(event_id=uuid.uuid4(), occurred_at=NOW, incident_id=incident_id, document="mir",
                            **OFFICER)  # fmt: skip
    return [*events, viewed, ConsoleSignedIn(event_id=uuid.uuid4(), occurred_at=NOW, by="audit-kim", role="auditor")]


@pytest.mark.parametrize(
    ("event_type", "profile", "action", "subtype"),
    [
        ("IncidentReported", "Create", "C", "create"),
        ("IncidentTriaged", "Update", "U", "update"),
        ("ReportabilityDecided", "Update", "U", "update"),
        ("ReportSubmitted", "Update", "U", "update"),
        ("IncidentClosed", "Update", "U", "update"),
        ("IncidentViewed", "Read", "R", "read"),
        ("ConsoleSignedIn", "Login", "E", "110122"),
    ],
)
def test_each_audited_event_follows_its_balp_profile(event_type: str, profile: str, action: str, subtype: str) -> None:
    event = next(e for e in trail() if e.event_type == event_type)
    resource = audit_event(event).model_dump(mode="json", exclude_none=True)
    assert resource["meta"]["profile"] == [
        f"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.{profile}"
    ]
    assert (resource["action"], resource["subtype"][0]["code"], resource["outcome"]) == (action, subtype, "0")
    assert resource["id"] == str(event.event_id)
    assert datetime.fromisoformat(resource["recorded"]) == event.occurred_at
    agent = resource["agent"][0]
    if event_type == "IncidentReported":  # a report names its reporter's role only
        assert agent["type"]["coding"][0]["code"] == event.reporter_role and "identifier" not in agent["who"]
    else:
        assert agent["who"]["identifier"]["value"] == event.by and agent["type"]["coding"][0]["code"] == event.role
    if event_type == "ConsoleSignedIn":
        assert resource["type"]["code"] == "110114" and "entity" not in resource
    else:
        assert [e["what"]["identifier"]["value"] for e in resource["entity"]] == [str(event.incident_id)]


def test_the_trail_parses_back_as_fhir_and_names_no_patient() -> None:
    events = trail()
    assert {type(e) for e in events} <= set(AUDITED)
    lines = list(ndjson(events))
    parsed = [AuditEvent.model_validate_json(line).model_dump(mode="json", exclude_none=True) for line in lines]
    assert [p["id"] for p in parsed] == [str(e.event_id) for e in events]
    assert "patient" not in "".join(lines).lower()
    found = Bundle.model_validate_json(bundle(events).model_dump_json(exclude_none=True))
    assert found.model_dump(mode="json", exclude_none=True)["type"] == "collection"
    assert len(found.model_dump(mode="json", exclude_none=True)["entry"]) == len(events)
    read = next(p for p in parsed if p["action"] == "R")
    assert "mir report prepared" in read["entity"][0]["description"]


def test_a_candidate_raised_by_vigil_has_the_worker_as_its_agent() -> None:
    from vigil.alerts import incident_candidate

    candidate = incident_candidate("trend", uuid.uuid4(), occurred_at=NOW, model_id="symptom-chat",
                                   model_version="0.9.1", summary="s", country="DE",
                                   counting="elapsed_days")  # fmt: skip
    agent = audit_event(candidate).model_dump(mode="json", exclude_none=True)["agent"][0]
    assert agent["who"]["display"] == "Vigil worker" and agent["requestor"] is False
