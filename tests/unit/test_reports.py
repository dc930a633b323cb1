"""Report builders produce JSON valid against the committed schemas, and a PDF."""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from services.rendering.incident_pdf import render_pdf
from tests.unit.test_incidents import OFFICER, SERIOUS, run
from vigil.corrective_actions import fold_actions
from vigil.events import CorrectiveActionChecked, CorrectiveActionStarted, FieldSafetyNoticeIssued, IncidentTriaged
from vigil.incidents import DecideReportability, InvalidInput, SubmitReport, Triage
from vigil.reports.builders import build_fda_3500a, build_mir
from vigil.reports.models import ModelCard

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 7, tzinfo=UTC)
CARD = ModelCard(model_id="symptom-chat", version="0.9.1", name="AskNurse", manufacturer="Example Health Chat")


def test_mir_and_3500a_validate_against_their_schemas() -> None:
    decided = DecideReportability(**OFFICER, reportable=True, rationale="probable causal link")
    sent = SubmitReport(**OFFICER, regime="eu-mdr", report_type="initial", reference="BfArM-1")
    state, _ = run([SERIOUS, decided, sent])
    mir = build_mir(state, CARD, "initial", "so-017", NOW, []).model_dump(mode="json")
    jsonschema.validate(mir, json.loads((ROOT / "schemas/MirReport.v1.json").read_text()))
    assert mir["administrative"]["classification"] == "death_or_serious_deterioration"
    assert mir["administrative"]["competent_authority_reference"] == "BfArM-1"
    assert [c["satisfied"] for c in mir["clocks"]] == [True, False]

    us, _ = run([SERIOUS, decided], start=run([], start=None)[1][0].model_copy(update={"country": "US"}))
    fda = build_fda_3500a(us, CARD, "initial", "so-017", NOW, []).model_dump(mode="json")
    jsonschema.validate(fda, json.loads((ROOT / "schemas/Fda3500aReport.v1.json").read_text()))
    assert fda["g_manufacturer"]["report_type"] == "30-day"
    assert fda["h_device_manufacturer"]["reportable_event_type"] == "serious injury"


def test_pdf_renders() -> None:
    state, _ = run([SERIOUS])
    pdf = render_pdf(build_mir(state, CARD, "initial", "so-017", NOW, []), str(state.incident_id))
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_corrective_actions_and_imdrf_codes_fill_the_mir_and_the_3500a() -> None:
    coded = Triage(**OFFICER, harm="serious_deterioration", causality="probable", expected=False, rationale="r",
                   device_problem_codes=("A0601",), health_effect_codes=("E0123", "F0801"))  # fmt: skip
    decided = DecideReportability(**OFFICER, reportable=True, rationale="probable causal link")
    state, _ = run([coded, decided])
    at = datetime(2026, 3, 8, tzinfo=UTC)
    who = {"by": "so-017", "role": "safety_officer", "model_id": "symptom-chat"}
    action_id = uuid.uuid4()
    actions = fold_actions([
        CorrectiveActionStarted(event_id=uuid.uuid4(), occurred_at=at, action_id=action_id, kind="fsca",
                                title="Escalate all chest pain", description="d", incident_ids=[state.incident_id],
                                **who),
        FieldSafetyNoticeIssued(event_id=uuid.uuid4(), occurred_at=at, action_id=action_id, reference="FSN-2026-01",
                                summary="s", **who),
        CorrectiveActionChecked(event_id=uuid.uuid4(), occurred_at=at, action_id=action_id, effective=True,
                                evidence="no missed escalation in 4 weeks", **who),
    ])  # fmt: skip
    mir = build_mir(state, CARD, "final_non_reportable", "so-017", NOW, list(actions.values())).model_dump(mode="json")
    jsonschema.validate(mir, json.loads((ROOT / "schemas/MirReport.v1.json").read_text()))
    assert mir["administrative"]["report_type"] == "final_non_reportable"
    assert mir["administrative"]["reportability_known_date"] is not None
    assert mir["manufacturer_analysis"]["imdrf_device_problem_codes"] == "A0601"
    assert mir["manufacturer_analysis"]["imdrf_health_effect_codes"] == "E0123, F0801"
    assert mir["corrective_actions"]["field_safety_notices"] == "FSN-2026-01"
    assert "'Escalate all chest pain'" in mir["corrective_actions"]["actions"]
    assert "checked effective" in mir["corrective_actions"]["actions"]
    fda = build_fda_3500a(state, CARD, "initial", "so-017", NOW, list(actions.values())).model_dump(mode="json")
    assert fda["h_device_manufacturer"]["remedial_action"] == "yes"
    assert fda["h_device_manufacturer"]["device_problem_codes"] == "A0601"
    with pytest.raises(InvalidInput, match="no final \\(non-reportable\\) report"):
        build_fda_3500a(state, CARD, "final_non_reportable", "so-017", NOW, [])


def test_imdrf_codes_are_format_checked() -> None:
    with pytest.raises(ValidationError, match="device_problem_codes"):
        IncidentTriaged(event_id=uuid.uuid4(), occurred_at=NOW, incident_id=uuid.uuid4(), by="x", role="r",
                        harm="none", causality="possible", expected=True, rationale="r",
                        device_problem_codes=["E0123"])  # fmt: skip
