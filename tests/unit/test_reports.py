"""Report builders produce JSON valid against the committed schemas, and a PDF."""

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from services.rendering.incident_pdf import render_pdf
from tests.unit.test_incidents import OFFICER, SERIOUS, run
from vigil.incidents import DecideReportability, SubmitReport
from vigil.reports.builders import build_fda_3500a, build_mir
from vigil.reports.models import ModelCard

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 7, tzinfo=UTC)
CARD = ModelCard(model_id="symptom-chat", version="0.9.1", name="AskNurse", manufacturer="Example Health Chat")


def test_mir_and_3500a_validate_against_their_schemas() -> None:
    decided = DecideReportability(**OFFICER, reportable=True, rationale="probable causal link")
    sent = SubmitReport(**OFFICER, regime="eu-mdr", report_type="initial", reference="BfArM-1")
    state, _ = run([SERIOUS, decided, sent])
    mir = build_mir(state, CARD, "initial", "so-017", NOW).model_dump(mode="json")
    jsonschema.validate(mir, json.loads((ROOT / "schemas/MirReport.v1.json").read_text()))
    assert mir["administrative"]["classification"] == "death_or_serious_deterioration"
    assert mir["administrative"]["competent_authority_reference"] == "BfArM-1"
    assert [c["satisfied"] for c in mir["clocks"]] == [True, False]

    us, _ = run([SERIOUS, decided], start=run([], start=None)[1][0].model_copy(update={"country": "US"}))
    fda = build_fda_3500a(us, CARD, "initial", "so-017", NOW).model_dump(mode="json")
    jsonschema.validate(fda, json.loads((ROOT / "schemas/Fda3500aReport.v1.json").read_text()))
    assert fda["g_manufacturer"]["report_type"] == "30-day"
    assert fda["h_device_manufacturer"]["reportable_event_type"] == "serious injury"


def test_pdf_renders() -> None:
    state, _ = run([SERIOUS])
    pdf = render_pdf(build_mir(state, CARD, "initial", "so-017", NOW), str(state.incident_id))
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
