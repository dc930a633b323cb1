"""The PSUR of a model on the real stack: written by the CLI and the API, valid against its schema,
rendered as a PDF, and its volume, incident counts and rates equal to SQL counted over the store here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import text

from tests.conftest import Pipeline
from tests.e2e.test_incidents import call, new_incident, register
from tests.integration.helpers import hospital_events, wait_recorded
from vigil.regulatory import EU_EEA

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# symptom-chat is of WHO risk class low: its PSUR ending with 2026 covers 2025 and 2026.
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


async def counted(db, sql: str) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(text(sql), {"start": START, "end": END})).scalar_one())


async def test_a_psur_counts_what_the_store_holds_and_renders(pipeline: Pipeline, db, tmp_path: Path) -> None:
    events = hospital_events(400, seed=414)  # the hospital's March 2026: the registry first
    await register(pipeline, db, [e for e in events if e["event_type"].startswith("Model")])
    chats = [e for e in events if e["event_type"] == "InferenceMade" and e["model_id"] == "symptom-chat"]
    assert call(pipeline, "POST", "/v1/events", role="emitter", json=chats).status_code == 202
    await wait_recorded(db, [e["event_id"] for e in chats], 60, "the chatbot's inferences")
    for aware, harm, country in (("2026-03-10T09:00:00+01:00", "serious_deterioration", "DE"),
                                 ("2026-03-12T09:00:00+01:00", "death", "US"),
                                 ("2026-04-01T09:00:00+02:00", "temporary", "FR"),
                                 ("2024-06-01T09:00:00+02:00", "serious_deterioration", "DE")):  # fmt: skip
        body = new_incident(datetime.fromisoformat(aware), harm=harm, country=country)
        assert call(pipeline, "POST", "/v1/incidents", json=body).status_code == 201

    args = ["export", "psur", "--model", "symptom-chat", "--period", "2026", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads((tmp_path / "psur-symptom-chat-2025-2026.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "schemas/Psur.v1.json").read_text()))
    assert report["interval_years"] == 2 and report["period"]["from"].startswith("2025-01-01")

    # The same figures counted here, in SQL over the store (the whole test session's store).
    within = "occurred_at >= :start AND occurred_at < :end"
    inferences = await counted(db, f"SELECT count(*) FROM events WHERE event_type = 'InferenceMade' "
                                   f"AND model_id = 'symptom-chat' AND {within}")  # fmt: skip
    aware = "model_id = 'symptom-chat' AND aware_at >= :start AND aware_at < :end"
    serious = f"SELECT count(*) FROM incidents WHERE {aware} AND harm IN ('death', 'serious_deterioration')"
    eea = "(" + ", ".join(f"'{c}'" for c in sorted(EU_EEA)) + ")"
    expected = {
        "serious": await counted(db, serious),
        "death": await counted(db, f"SELECT count(*) FROM incidents WHERE {aware} AND harm = 'death'"),
        "EEA": await counted(db, serious + f" AND country IN {eea}"),
        "rest": await counted(db, serious + f" AND country NOT IN {eea}"),
        # Not serious: a harm below serious, or none stated yet (a candidate before triage).
        "non_serious": await counted(
            db,
            f"SELECT count(*) FROM incidents WHERE {aware} AND (harm IS NULL "
            "OR harm NOT IN ('death', 'serious_deterioration'))",
        ),
    }
    assert inferences >= len(chats) and expected["serious"] >= 2 and expected["rest"] >= 1
    v = report["vigilance"]
    assert report["volume_of_use"]["inferences"] == inferences
    assert sum(report["volume_of_use"]["by_deployment"].values()) == inferences
    got = {
        "serious": v["serious_incidents"]["count"],
        "death": v["serious_by_harm"]["death"]["count"],
        "EEA": v["serious_by_region"]["EEA"]["count"],
        "rest": v["serious_by_region"]["rest of the world"]["count"],
        "non_serious": v["non_serious_incidents"]["count"],
    }
    assert got == expected
    assert v["serious_incidents"]["per_1000_inferences"] == pytest.approx(1000 * expected["serious"] / inferences,
                                                                           abs=1e-4)  # fmt: skip

    # The PDF renders, and its text says what it is.
    pdf = tmp_path / "psur-symptom-chat-2025-2026.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page*.png"))
    shown = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Periodic safety update report" in shown and "4. Vigilance" in shown and "AskNurse" in shown

    # The API gives the same report; bad periods and unknown models are refused with the reason.
    api = call(pipeline, "GET", "/v1/models/symptom-chat/psur", role="auditor", params={"period": "2026"})
    assert api.status_code == 200 and api.json()["vigilance"]["serious_incidents"] == v["serious_incidents"]
    bad = call(pipeline, "GET", "/v1/models/symptom-chat/psur", params={"period": "last year"})
    assert bad.status_code == 422 and "like 2026" in bad.text
    assert call(pipeline, "GET", "/v1/models/nobody/psur", params={"period": "2026"}).status_code == 404
    assert call(pipeline, "GET", "/v1/models/symptom-chat/psur", role="emitter",
                params={"period": "2026"}).status_code == 403  # fmt: skip
