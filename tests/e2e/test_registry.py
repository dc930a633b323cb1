"""The model registry on the real stack: routes, commands, refusals, and a retired model's inferences."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from vigil_sdk import AsyncEmitter

from services.store import reads
from tests.conftest import TOKENS, Pipeline
from tests.integration.helpers import emit_all, ids_on_partition, wait_recorded, wait_until
from vigil.events import DriftDetected, DriftResolved


def call(pipeline: Pipeline, method: str, path: str, role: str = "safety_officer", **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKENS[role]}"}
    return httpx.request(method, pipeline.api_url + path, headers=headers, timeout=30, **kwargs)


def new_model(model_id: str, **changes) -> dict:
    return {
        "model_id": model_id, "name": "Sepsis Sentinel", "manufacturer": "Acme Health", "use_case": "sepsis_alert",
        "risk_class": "high", "intended_use": "Flags adult inpatients at risk of sepsis for the rapid response team.",
        "out_of_scope_uses": ["paediatrics"], "labels": ["no_sepsis", "sepsis"], "critical_labels": ["sepsis"],
        "countries": ["DE"], **changes,
    }  # fmt: skip


def vigil(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, check=False)  # fmt: skip


def test_a_model_is_registered_released_read_as_of_and_retired_through_the_api(pipeline: Pipeline) -> None:
    model_id = f"sepsis-{uuid.uuid4().hex[:6]}"
    outside = call(pipeline, "POST", "/v1/models", json=new_model(model_id, critical_labels=["septic_shock"]))
    assert outside.status_code == 422 and "'septic_shock' are not in the label set" in outside.json()["detail"]
    assert call(pipeline, "POST", "/v1/models", json=new_model(model_id)).status_code == 201
    again = call(pipeline, "POST", "/v1/models", json=new_model(model_id))
    assert again.status_code == 409 and "registered already" in again.json()["detail"]

    unknown = call(pipeline, "POST", "/v1/models/no-such-model/versions", json={"model_version": "1.0"})
    assert unknown.status_code == 404 and "register it before" in unknown.json()["detail"]
    first = {"model_version": "1.0", "changes": "first release", "validation_summary": "retrospective, 2 sites",
             "training_data": {"populations": ["adult inpatients"], "sites": ["st-mary"],
                               "period_start": "2021-01-01", "period_end": "2024-12-31", "size": 50000},
             "limitations": ["not validated in intensive care"]}  # fmt: skip
    assert call(pipeline, "POST", f"/v1/models/{model_id}/versions", json=first).status_code == 201
    between = datetime.now(UTC)
    second = call(
        pipeline, "POST", f"/v1/models/{model_id}/versions", json={"model_version": "1.1", "changes": "recal"}
    )
    assert second.status_code == 201 and [v["model_version"] for v in second.json()["versions"]] == ["1.0", "1.1"]
    twice = call(pipeline, "POST", f"/v1/models/{model_id}/versions", json={"model_version": "1.1"})
    assert twice.status_code == 409 and "released already" in twice.json()["detail"]

    then = call(pipeline, "GET", f"/v1/models/{model_id}", role="auditor", params={"as_of": between.isoformat()})
    assert then.status_code == 200 and [v["model_version"] for v in then.json()["versions"]] == ["1.0"]
    assert then.json()["versions"][0]["training_data"]["sites"] == ["st-mary"]
    listed = call(pipeline, "GET", "/v1/models", role="auditor").json()
    assert model_id in {m["registration"]["model_id"] for m in listed}
    assert call(pipeline, "GET", "/v1/models/no-such-model", role="auditor").status_code == 404

    retire = {"reason": "replaced by the 2027 model", "replaced_by": "sepsis-2027"}
    assert call(pipeline, "POST", f"/v1/models/{model_id}/retire", role="emitter", json=retire).status_code == 403
    retired = call(pipeline, "POST", f"/v1/models/{model_id}/retire", json=retire)
    assert retired.status_code == 200 and retired.json()["retired"]["replaced_by"] == "sepsis-2027"
    late = call(pipeline, "POST", f"/v1/models/{model_id}/versions", json={"model_version": "2.0"})
    assert late.status_code == 409 and "was retired" in late.json()["detail"]


async def test_a_retired_models_later_inferences_become_dead_letters_with_the_reason(pipeline: Pipeline, db) -> None:
    model_id = f"sepsis-{uuid.uuid4().hex[:6]}"
    assert call(pipeline, "POST", "/v1/models", json=new_model(model_id)).status_code == 201
    assert call(pipeline, "POST", f"/v1/models/{model_id}/versions", json={"model_version": "1.0"}).status_code == 201
    retired_at = datetime.now(UTC) - timedelta(minutes=1)
    body = {"reason": "withdrawn after a field safety notice", "retired_at": retired_at.isoformat()}
    assert call(pipeline, "POST", f"/v1/models/{model_id}/retire", json=body).status_code == 200

    def inference(at: datetime) -> dict:
        return {"event_type": "InferenceMade", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
                "model_id": model_id, "model_version": "1.0", "deployment": "st-mary", "use_case": "sepsis_alert",
                "patient_ref": "pt_" + uuid.uuid4().hex[:24], "output": {"label": "sepsis", "score": 0.9}}  # fmt: skip

    before, after = inference(retired_at - timedelta(minutes=5)), inference(datetime.now(UTC))
    assert call(pipeline, "POST", "/v1/events", role="emitter", json=[before, after]).status_code == 202

    async def refused() -> list:
        async with db.connect() as conn:
            letters = await reads.dead_letters_of(conn)
        return [d for d in letters if d.reason_kind == "retired_model" and model_id in d.reason]

    letters = await wait_until(refused, 60, "the retired model's inference dead-lettered")
    assert len(letters) == 1 and "withdrawn after a field safety notice" in letters[0].reason
    assert letters[0].path == "model_id"


def test_the_registry_commands_register_release_list_and_show(pipeline: Pipeline) -> None:
    model_id = f"sepsis-{uuid.uuid4().hex[:6]}"
    registered = vigil("model", "register", model_id, "--name", "Sepsis Sentinel", "--manufacturer", "Acme",
                       "--use-case", "sepsis_alert", "--risk-class", "high", "--intended-use", "Adult inpatients.",
                       "--label", "no_sepsis", "--label", "sepsis", "--critical", "sepsis")  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    outside = vigil("model", "register", f"{model_id}-b", "--name", "n", "--manufacturer", "m", "--use-case", "u",
                    "--risk-class", "low", "--intended-use", "i", "--label", "a", "--critical", "b")  # fmt: skip
    assert outside.returncode == 2 and "'b' are not in the label set" in outside.stderr
    released = vigil("model", "release", model_id, "--version", "1.0", "--population", "adult inpatients",
                     "--site", "st-mary", "--period", "2021-01-01..2024-12-31",
                     "--limitation", "not in ICU")  # fmt: skip
    assert released.returncode == 0, released.stderr
    bad_period = vigil("model", "release", model_id, "--version", "1.1", "--period", "2021")
    assert bad_period.returncode == 2 and "FROM..TO" in bad_period.stderr
    unknown = vigil("model", "release", "no-such-model", "--version", "1.0")
    assert unknown.returncode == 1 and "register it before" in unknown.stderr

    listed = vigil("model", "list")
    assert listed.returncode == 0 and model_id in listed.stdout and "in service" in listed.stdout
    shown = vigil("model", "show", model_id, "--json")
    record = json.loads(shown.stdout)
    assert record["versions"][0]["training_data"]["period_end"] == "2024-12-31"
    assert record["versions"][0]["limitations"] == ["not in ICU"]
    table = vigil("model", "show", model_id)
    assert "Version history" in table.stdout and "not in ICU" in table.stdout


def card_stream(model_id: str, partitions: int) -> tuple[list[dict], list[dict]]:
    """Reference, a window as before, a window from a new scanner, one as before again, and an
    opener that closes the last window (the test policy's count windows of 200, reference of 300),
    on one partition so that each window holds the events meant for it; outcomes for a third."""
    rng = np.random.default_rng(11)
    made, outcomes = [], []
    ids = ids_on_partition(0, partitions, 901)
    for i, event_id in enumerate(ids):
        shifted = 500 <= i < 700
        at = CARD_T0 + timedelta(minutes=i)
        site = "st-mary" if i % 2 else "riverside-rural"
        malignant = rng.uniform() < 0.3
        score = float(np.clip(rng.normal(0.75 if malignant else 0.3, 0.15), 0, 1))
        made.append({
            "event_type": "InferenceMade", "event_id": event_id, "occurred_at": at.isoformat(), "model_id": model_id,
            "model_version": "1.0", "deployment": site, "use_case": "mammography_screening",
            "patient_ref": "pt_" + uuid.uuid4().hex[:24], "subgroup": {"site": site},
            "features": {"image_contrast": round(float(rng.normal(0.70 if shifted else 0.62, 0.05)), 4)},
            "output": {"label": "malignant" if score >= 0.5 else "benign", "score": round(score, 3)},
        })  # fmt: skip
        if i % 3 == 0:
            outcomes.append({
                "event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
                "inference_id": event_id, "model_id": model_id, "observed_at": (at + timedelta(days=3)).isoformat(),
                "label": "malignant" if malignant else "benign", "critical_condition": malignant,
                "source": "pathology",
            })  # fmt: skip
    return made, outcomes


CARD_T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


async def test_a_live_model_card_shows_post_market_evidence_and_its_history(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    model_id = f"card-{uuid.uuid4().hex[:6]}"
    registered = vigil("model", "register", model_id, "--name", "MammoScreen", "--manufacturer", "Acme Imaging",
                       "--use-case", "mammography_screening", "--risk-class", "high",
                       "--intended-use", "Second reader for screening mammograms of women 40-74.",
                       "--out-of-scope", "diagnostic mammography", "--label", "benign", "--label", "malignant",
                       "--critical", "malignant")  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    released = vigil("model", "release", model_id, "--version", "1.0", "--released-at", CARD_T0.isoformat(),
                     "--population", "women 40-74", "--site", "st-mary", "--period", "2019-01-01..2023-12-31",
                     "--validation", "retrospective, 12,000 screens at st-mary",
                     "--limitation", "not validated at low-resource sites")  # fmt: skip
    assert released.returncode == 0, released.stderr
    guideline = {"event_type": "GuidelineChanged", "event_id": str(uuid.uuid4()), "occurred_at": CARD_T0.isoformat(),
                 "guideline_id": f"screening-{model_id}", "title": "Screening interval",
                 "effective_at": (CARD_T0 + timedelta(days=1)).isoformat(),
                 "affected_use_cases": ["mammography_screening"], "summary": "biennial from 45"}  # fmt: skip
    made, outcomes = card_stream(model_id, pipeline.settings.topic_partitions)
    assert call(pipeline, "POST", "/v1/events", role="emitter", json=[guideline]).status_code == 202
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, made)
        await emit_all(emitter, outcomes)
    await wait_recorded(db, [e["event_id"] for e in made + outcomes], 120)

    async def episode() -> list:
        async with db.connect() as conn:
            found = await reads.of_type(conn, DriftDetected, DriftResolved, model_id=model_id)
        return found if any(isinstance(e, DriftResolved) for e in found) else []

    await wait_until(episode, 180, "the drift episode detected and resolved")
    between = datetime.now(UTC)
    second = vigil("model", "release", model_id, "--version", "1.1", "--changes", "recalibrated after the guideline")
    assert second.returncode == 0, second.stderr

    shown = vigil("performance", "show", "--model", model_id, "--version", "1.0", "--by", "site", "--window", "0",
                  "--json")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    expected = {(r["label"], tuple(sorted(r["subgroup"].items()))): r for r in json.loads(shown.stdout)["rows"]}
    got = vigil("model", "card", model_id, "--version", "1.0", "--format", "json")
    assert got.returncode == 0, got.stderr
    card = json.loads(got.stdout)
    rows = {(r["label"], tuple(sorted(r["subgroup"].items()))): r for r in card["performance"]["rows"]}
    assert rows and rows == expected, "the card's subgroup rows are those of `vigil performance show`"
    assert card["factors"] == ["site"] and card["details"]["status"] == "in service"
    contrast = [e for e in card["drift"] if e["feature"] == "image_contrast"]
    assert len(contrast) == 1 and contrast[0]["resolved"] and contrast[0]["windows"] == 1
    assert [v["model_version"] for v in card["version_history"]] == ["1.0", "1.1"]
    assert card["guideline_changes"][0]["revalidated_by"] == "1.1"
    assert card["training_data"]["sites"] == ["st-mary"]

    then = json.loads(vigil("model", "card", model_id, "--as-of", between.isoformat(), "--format", "json").stdout)
    assert [v["model_version"] for v in then["version_history"]] == ["1.0"]
    assert then["details"]["version"] == "1.0" and then["guideline_changes"][0]["revalidated_by"] is None

    markdown = vigil("model", "card", model_id, "--version", "1.0").stdout
    assert "## Version history" in markdown and "| 1.1 |" in markdown and "not validated at low-resource" in markdown
    page = call(pipeline, "GET", f"/v1/models/{model_id}/card", role="auditor", params={"format": "html",
                                                                                       "version": "1.0"})  # fmt: skip
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "image_contrast" in page.text
    assert not re.search(r"""(src|href)=["']https?:|<link|<script""", page.text), "nothing is fetched from elsewhere"
    pdf = tmp_path / "card.pdf"
    assert vigil("model", "card", model_id, "--version", "1.0", "--format", "pdf", "--out", str(pdf)).returncode == 0
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page*.png"))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"\s+", "", text)  # table cells wrap words
    assert "Versionhistory" in flat and "image_contrast" in flat and "riverside-rural" in flat
    wrong = call(pipeline, "GET", f"/v1/models/{model_id}/card", role="auditor", params={"version": "9.9"})
    assert wrong.status_code == 422 and "released: 1.0, 1.1" in wrong.json()["detail"]
