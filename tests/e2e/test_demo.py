"""The README's first command: the demo brings the stack up and streams the synthetic hospital."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from services.audit_fhir import AUDITED
from services.processes import services
from services.store import reads
from tests.conftest import ROOT, Settings
from vigil_runtime.database import engine_for
from vigil_runtime.topics import delete_topics

pytestmark = pytest.mark.integration


def test_demo_streams_records_dead_letters_and_verifies(settings: Settings, tmp_path) -> None:
    run = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "VIGIL_HOME": str(tmp_path),  # its own pid files, logs and spool
        "VIGIL_TOPIC_PREFIX": f"demo{run}.",
        "VIGIL_WORKER_ID": f"vigil-demo-{run}",
        "VIGIL_API_PORT": "28000",
        "VIGIL_WORKER_METRICS_PORT": "29101",
        "VIGIL_RECORDER_METRICS_PORT": "29102",
        "VIGIL_API_TOKENS": "{}",
        "VIGIL_CLOCK_INTERVAL": "1",
        "VIGIL_POLICY_FILE": str(ROOT / "deploy" / "policy.yml"),
        "COLUMNS": "200",
    }
    started = datetime.now(UTC)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "demo", "--inferences", "6000", "--out", str(tmp_path / "out")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert "What flowed where" in out and "inference.v1" in out
        # A person can try the API with the tokens the demo wrote down.
        tokens = json.loads((tmp_path / "demo-tokens.json").read_text())
        assert str(tmp_path / "demo-tokens.json") in out and set(tokens) == {"emitter", "safety_officer", "auditor"}
        inbox = httpx.get(
            "http://127.0.0.1:28000/v1/incidents", headers={"Authorization": f"Bearer {tokens['auditor']}"}
        )
        assert inbox.status_code == 200, inbox.text
        # ... and sign in to the console with the token it prints.
        assert "http://127.0.0.1:28000/console/" in out and tokens["safety_officer"] in out
        with httpx.Client(base_url="http://127.0.0.1:28000/console", follow_redirects=True) as browser:
            signed_in = browser.post("/sign-in", data={"token": tokens["safety_officer"]})
            assert signed_in.status_code == 200 and "demo-safety-officer" in signed_in.text
            card = browser.get("/models/mammo-screen")
            assert card.status_code == 200 and 'src="/console/models/mammo-screen/chart.svg"' in card.text
            chart = browser.get("/models/mammo-screen/chart.svg")
            assert chart.headers["content-type"] == "image/svg+xml" and b"<svg" in chart.content
        # The demo's audit trail as FHIR: every AuditEvent parses (fhir.resources) and they equal the
        # audited events in the store one for one (the console sign-in above among them).
        trail = tmp_path / "audit.ndjson"
        command = [sys.executable, "-m", "services.cli", "export", "audit-fhir", "--since", started.isoformat(),
                   "--out", str(trail)]  # fmt: skip
        exported = subprocess.run(command, env=env, capture_output=True, text=True)
        assert exported.returncode == 0, exported.stderr
        resources = [AuditEvent.model_validate_json(line) for line in trail.read_text().splitlines()]

        async def audited() -> set[str]:
            engine = engine_for(settings)
            async with engine.connect() as conn:
                found = await reads.of_type(conn, *AUDITED, recorded_since=started)
            await engine.dispose()
            return {str(e.event_id) for e in found}

        expected = asyncio.run(audited())
        assert {r.id for r in resources} == expected and any(r.action == "E" for r in resources)
        assert len(resources) == len(expected) and "patient" not in trail.read_text().lower()
        assert "hash chain intact" in out
        for kind in ("not_json", "unsupported_version", "schema", "unknown_type", "phi"):
            assert kind in out
        assert "EscalationMissed" in out and "IncidentReportOverdue" in out
        drift = out[out.index("Drift of mammo-screen") :]
        assert "DriftDetected" in drift and "DriftResolved" in drift and "image_contrast" in drift, drift[:3000]
        equity = out[out.index("Equity signal of ed-triage") :]
        assert "resource_setting=low" in equity and "site=riverside-rural" in equity
        assert "confirmed breach: sensitivity for 'urgent' in site=riverside-rural" in equity
        oversight = out[out.index("Human oversight: violations") :]
        for kind in ("review_coverage", "acted_before_review", "autonomous_action"):
            assert kind in oversight
        transparency = out[out.index("Transparency: violations") :]
        assert "symptom-chat" in transparency and "disclaimer_shown" in transparency
        # CBPE: the screens estimated while their pathology is held back, then the realised figures beside it.
        estimated = out[out.index("before any pathology is back") :]
        assert "validation study (1,500 screens)" in out and "is back (7 days after each)" in estimated
        assert "backtest 0" in estimated and "calibrated on an uploaded reference" in estimated
        # The rural scanner's drop: estimated (the estimator warns, as an estimate) before the pathology confirms it.
        assert "ESTIMATED (not realised) sensitivity" in estimated and "alert PerformanceEstimateLow" in estimated
        assert "site=riverside-rural: estimated sensitivity" in estimated and "confirmed by the pathology" in estimated
        audit = out[out.index("Guideline triage-protocol-2026-2") :]
        assert "made under the old guideline are still open" in audit
        with open(tmp_path / "out" / "guideline-triage-protocol-2026-2-cases.csv", encoding="utf-8") as f:
            cases = list(csv.DictReader(f))
        # Other tests' triage models share this database and the use case; the demo's is one of them.
        reasons = {c["reason"] for c in cases if c["model_id"] == "ed-triage"}
        assert reasons == {"open_under_old_guideline", "made_since_by_unrevalidated_version"}
        [export] = (tmp_path / "out").glob("vigil-export-*")
        manifest = json.loads((export / "manifest.json").read_text())
        for name, digest in manifest["files"].items():
            assert hashlib.sha256((export / name).read_bytes()).hexdigest() == digest, name
        # The span the demo streamed, whatever the date: all of its own events are in it.
        assert manifest["events_in_period"] > 14_000 and manifest["chain"]["verified"] >= manifest["events_in_period"]
        summary = subprocess.run(["pdftotext", str(export / "summary.pdf"), "-"], capture_output=True, text=True).stdout
        assert "Surveillance report" in summary and "DisparityDetected" in summary
        assert "Human oversight of the period" in summary and "OversightViolation" in summary
        assert "Transparency of the period" in summary and "TransparencyViolation" in summary
        # The footprint equals the energy and tokens summed from the exported events themselves.
        lines = (json.loads(line)["event"] for line in (export / "events.jsonl").open(encoding="utf-8"))
        made = [e for e in lines if e["event_type"] == "InferenceMade"]
        footprints = json.loads((export / "footprint.json").read_text())
        for model_id, f in footprints.items():
            used = [e["resources"] for e in made if e["model_id"] == model_id]
            energy = sum(r["energy_wh"] for r in used if r.get("energy_wh") is not None)
            assert f["inferences"] == len(used) and f["energy_kwh"] == pytest.approx(energy / 1000)
            assert f["tokens_out"] == sum(r.get("tokens_out") or 0 for r in used)
            assert f["co2e_kg"] == pytest.approx(energy / 1000 * 0.25)
        assert footprints["mammo-screen"]["energy_kwh"] > 0 and footprints["symptom-chat"]["tokens_out"] > 0
        assert "carbon footprint" in summary
        triage = json.loads((export / "oversight.json").read_text())["ed-triage"]
        rural = next(r for r in triage["rows"] if r["group"] == "riverside-rural")
        assert rural["unreviewed"] == triage["rows"][0]["unreviewed"] > 0 and rural["acted_before_review"] == 3
        card = json.loads((export / "cards" / "mammo-screen.json").read_text())
        assert "cards/mammo-screen.md" in manifest["files"] and card["details"]["version"] == "2.3.0"
        assert any(e["feature"] == "image_contrast" for e in card["drift"]) and card["training_data"]["sites"]
        assert "radiologist alone 85 %" in card["evaluation_data"]  # the seed's reader study, beside the live table
        shown = out[out.index("Model card of mammo-screen") :]
        assert "drift episode" in shown and "image_contrast" in shown
        assert "the model alone and the radiologist with it, in use" in shown and "McNemar p" in shown
        card_text = subprocess.run(["pdftotext", str(tmp_path / "out" / "model-card-mammo-screen.pdf"), "-"],
                                   capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "Intended use" in card_text and "Version history" in card_text
        [pdf] = (tmp_path / "out").glob("mir-initial-*.pdf")
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert pdf.stem.removeprefix("mir-initial-") in text and "MDR Art. 87(5)" in text
    finally:
        for process in services(tmp_path).values():
            process.stop()
        asyncio.run(delete_topics(settings, (f"demo{run}.", f"vigil-demo-{run}")))
