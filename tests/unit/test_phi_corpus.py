"""The PHI corpus: every Safe Harbor identifier a machine can recognise, put in every string field
and every nested map of every event type an emitter sends, is refused with its kind named and its
value never echoed."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.events import INPUT_EVENTS
from vigil.phi import _typed_fields, find_phi
from vigil.validation import Rejected, parse

from .test_validation import NOW, hospital_events

# (kind named in the reason, value) — identifiers inside ordinary text, under an innocuous key.
IN_TEXT = [
    ("e-mail", "write to jane.doe@example.org"),
    ("URL", "see https://portal.example-hospital.de/patient/4711"),
    ("URL", "www.janedoe-family.net"),
    ("IP address", "client 192.168.10.24"),
    ("IP address", "from 2001:db8:85a3::8a2e:370:7334"),
    ("date finer than a year", "born 14/03/1957"),
    ("date finer than a year", "admitted 1957-03-14"),
    ("date finer than a year", "seen on March 14, 1957"),
    ("date finer than a year", "geboren am 14. März 1957"),
    ("telephone", "call (555) 123-4567"),
    ("telephone", "Rückruf +49 30 1234 5678"),
    ("telephone", "fax 030/12345678"),
    ("social security", "SSN 123-45-6789"),
    ("medical record", "MRN: 00123456"),
    ("health-plan", "insurance no. A123456789"),
    ("account", "IBAN DE89 3704 0044 0532 0130 00"),
    ("account", "account #: 12345678"),
    ("licence", "licence no: B072RRE2I55"),
    ("vehicle", "car 1HGCM82633A004352"),
    ("serial", "pump S/N: 4Y7-88213"),
    ("serial", "IMEI: 490154203237518"),
    ("street address", "lives at 221 Baker Street"),
    ("street address", "Hauptstraße 5"),
]
# (kind, key, value) — the key says what the value is.
UNDER_KEY = [
    ("name", "patient", "John Smith"),
    ("name", "clinician", "Dr Anna Meyer"),
    ("name", "emergency_contact", "Maria"),
    ("name", "fullName", "Jane Doe"),
    ("birth date", "dob", "1961"),
    ("telephone", "fax", "12345"),
    ("health-plan", "member_id", "X1"),
    ("IP address", "client_ip", "10.0.0.7"),
    ("serial", "serial_number", "A"),
]


def samples() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in hospital_events(12):
        found.setdefault(event["event_type"], event)
    common = {"event_id": str(uuid.uuid4()), "occurred_at": NOW.isoformat()}
    found["IncidentReported"] = {
        **common, "event_type": "IncidentReported", "incident_id": str(uuid.uuid4()), "reporter_role": "nurse",
        "model_id": "ed-triage", "model_version": "1.5.0", "harm": "temporary", "description": "late escalation",
        "country": "DE", "aware_at": NOW.isoformat(),
    }  # fmt: skip
    found["GuidelineChanged"] = {
        **common, "event_type": "GuidelineChanged", "guideline_id": "sepsis-2026", "title": "Sepsis bundle",
        "effective_at": NOW.isoformat(), "affected_use_cases": ["ed_triage"], "summary": "lactate at 2 mmol/l",
    }  # fmt: skip
    found["DriftReferenceSet"] = {
        **common, "event_type": "DriftReferenceSet", "model_id": "ed-triage", "model_version": "1.5.0",
        "source": "upload", "source_name": "reference.csv",
        "profiles": [{"feature": "arrival_mode", "kind": "categorical", "n": 2, "missing": 0,
                      "categories": ["walk_in"], "counts": [2, 0, 0], "std": 0}],
    }  # fmt: skip
    found["ModelRetired"] = {
        **common, "event_type": "ModelRetired", "model_id": "ed-triage", "retired_at": NOW.isoformat(),
        "reason": "replaced after the 2026 sepsis guideline", "replaced_by": "ed-triage-2",
    }  # fmt: skip
    assert set(found) == set(INPUT_EVENTS)
    return found


def string_places(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Paths to every string, and to every map (where a new key can be added)."""
    if isinstance(value, dict):
        if path:
            yield (*path, None)  # None: add a key here
        for key, item in value.items():
            yield from string_places(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from string_places(item, (*path, i))
    elif isinstance(value, str):
        yield path


def planted(event: dict, place: tuple, key: str, value: str) -> dict:
    out = copy.deepcopy(event)
    node = out
    for part in place[:-1]:
        node = node[part]
    node[key if place[-1] is None else place[-1]] = value
    return out


CASES = [
    (event_type, place)
    for event_type, event in samples().items()
    for place in string_places(event)
    if place not in (("event_type",), ("event_id",), ("schema_version",))
]


def schema_path(place: tuple) -> str:
    return ".".join(str(p) for p in place if isinstance(p, str))


@pytest.mark.parametrize(
    ("event_type", "place"), CASES, ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else v
)
def test_every_identifier_in_every_field_is_refused_by_kind_without_its_value(event_type: str, place: tuple) -> None:
    event = samples()[event_type]
    corpus = [(kind, "note", value) for kind, value in IN_TEXT]
    if place[-1] is None:  # a map: identifiers under telling keys too
        corpus += UNDER_KEY
    for kind, key, value in corpus:
        bad = planted(event, place, key, value)
        with pytest.raises(Rejected) as caught:
            parse(bad)
        assert value not in caught.value.reason
        if schema_path(place) in _typed_fields(event_type):  # a UUID, a time, a fixed word: the schema refuses it
            assert caught.value.kind == "schema", (place, value, caught.value.reason)
            continue
        assert caught.value.kind == "phi", (place, value, caught.value.reason)
        if place != ("patient_ref",):  # patient_ref is refused as not being a pseudonym at all
            assert kind in caught.value.reason, (place, value, caught.value.reason)


def test_a_key_that_is_itself_an_identifier_is_refused_and_not_echoed() -> None:
    event = samples()["InferenceMade"] | {"subgroup": {"jane.doe@example.org": "F"}}
    finding = find_phi(event)
    assert finding is not None and finding.path == "subgroup.<key>" and "e-mail" in finding.kind


@pytest.mark.parametrize(
    "text",
    ["model 1.5.0 at st-mary", "lactate above 2 mmol/l within 3 h", "score 0.8123", "2026Q4 release",
     "dose 12.5 mg twice", "ward 3, bed 12", "triage_nurse", "vendor_c scanner", "version 10.2.3"],
)  # fmt: skip
def test_ordinary_clinical_text_passes(text: str) -> None:
    event = samples()["InferenceMade"] | {"features": {"note": text}}
    assert find_phi(event) is None, text


@given(st.uuids(), st.integers(min_value=0, max_value=10**9))
def test_ids_and_counts_in_vigils_own_text_are_not_identifiers(an_id: uuid.UUID, n: int) -> None:
    summary = f"eu-mdr report for incident {an_id} is overdue (due 2026-12-11T23:00:00+01:00), {n} cases"
    alert = {"event_type": "AlertRaised", "event_id": str(an_id), "occurred_at": NOW.isoformat(),
             "alert_name": "IncidentReportOverdue", "severity": "critical", "summary": summary,
             "labels": {"incident_id": str(an_id)}, "caused_by": str(an_id)}  # fmt: skip
    assert find_phi(alert) is None
    assert find_phi(samples()["OutcomeObserved"] | {"inference_id": str(an_id), "event_id": str(an_id)}) is None


def test_a_thousand_hospital_events_pass() -> None:
    assert [e for e in hospital_events(1000) if find_phi(e)] == []
