"""Estimated performance from the store on the real stack (GET /v1/models/{id}/performance/estimate):
outputs still waiting for their outcome are estimated from scores calibrated on the version's first
outcomes, equal to scikit-learn's isotonic fit and the expected confusion matrix computed here;
outcomes that came later are a backtest whose realised figure and error are right; when the
pending outcomes arrive, they leave the estimate for the backtest."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import recall_score

from services.store import reads
from tests.conftest import RUN, Pipeline
from tests.e2e.test_incidents import call, register
from tests.integration.helpers import wait_recorded, wait_until
from vigil.events import AlertRaised, CalibrationReferenceSet, PerformanceEstimated

pytestmark = pytest.mark.integration
MODEL = f"cbpe-{RUN}"


def registration() -> dict:
    now = datetime.now(UTC).isoformat()
    return {"event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": now, "model_id": MODEL,
            "name": "Screening probe", "manufacturer": "Vigil tests", "use_case": "mammography",
            "risk_class": "high", "intended_use": "Exercises the estimate.", "labels": ["malignant", "benign"],
            "critical_labels": ["malignant"], "countries": ["DE"]}  # fmt: skip


def post(pipeline: Pipeline, events: list[dict]) -> None:
    for start in range(0, len(events), 1000):
        sent = call(pipeline, "POST", "/v1/events", role="emitter", json=events[start : start + 1000])
        assert sent.status_code == 202, sent.text


async def test_pending_outputs_are_estimated_then_superseded_by_their_outcomes(pipeline: Pipeline, db) -> None:
    await register(pipeline, db, [registration()])
    rng = np.random.default_rng(41)
    n = 1900  # 1,000 reference outcomes (the policy's), 400 later ones, 500 pending
    p = rng.beta(2, 3, n)
    truth, said = rng.random(n) < p, p >= 0.45
    start = datetime.now(UTC) - timedelta(days=3)
    inferences: list[dict] = []
    outcomes: list[dict] = []
    for i in range(n):
        at = start + timedelta(minutes=2 * i)
        inferences.append({
            "event_type": "InferenceMade", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
            "model_id": MODEL, "model_version": "2.0", "deployment": "st-mary", "use_case": "mammography",
            "patient_ref": "pt_" + uuid.uuid4().hex[:24],
            "output": {"label": "malignant" if said[i] else "benign", "score": float(p[i])},
        })  # fmt: skip
        outcomes.append({
            "event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
            "inference_id": inferences[-1]["event_id"], "model_id": MODEL, "observed_at": at.isoformat(),
            "label": "malignant" if truth[i] else "benign", "critical_condition": bool(truth[i]), "source": "pathology",
        })  # fmt: skip
    known = [*range(1400)]
    post(pipeline, inferences)
    post(pipeline, [outcomes[i] for i in known])
    await wait_recorded(db, [e["event_id"] for e in [*inferences, *(outcomes[i] for i in known)]], 120)

    answer = call(pipeline, "GET", f"/v1/models/{MODEL}/performance/estimate?window=30d")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["estimated"] is True and [v["model_version"] for v in found["versions"]] == ["2.0"]
    version = found["versions"][0]
    assert version["not_estimable"] is None and version["reference_size"] == 1000

    # Independently: scikit-learn's isotonic fit on the first 1,000 outcomes, the expected matrix by hand.
    iso = IsotonicRegression(out_of_bounds="clip").fit(p[:1000], truth[:1000])
    pending = iso.predict(p[1400:])
    [chunk] = version["pending"]
    assert chunk["n"] == 500
    expected = pending[said[1400:]].sum() / pending.sum()
    assert chunk["metrics"]["sensitivity"]["value"] == pytest.approx(expected, abs=1e-9)
    low, high = chunk["metrics"]["sensitivity"]["low"], chunk["metrics"]["sensitivity"]["high"]
    assert low < expected < high
    [test] = version["backtest"]  # the 400 outcomes after the reference
    realised = recall_score(truth[1000:1400], said[1000:1400])
    assert test["estimate"]["n"] == 400 and test["realised"]["sensitivity"] == pytest.approx(realised, abs=1e-12)
    guess = test["estimate"]["metrics"]["sensitivity"]["value"]
    assert test["error"]["sensitivity"] == pytest.approx(guess - realised, abs=1e-12)

    command = [sys.executable, "-m", "services.cli", "performance", "estimate", "--model", MODEL]
    ran = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, check=True)
    table = ran.stdout + ran.stderr
    assert "ESTIMATED (CBPE)" in table and "backtest 0" in table, table

    # The estimator (part of the stack) has sent it as an event, a gauge and a warning alert.
    async def recorded_estimate() -> list:
        async with db.connect() as conn:
            return await reads.of_type(conn, PerformanceEstimated, model_id=MODEL)

    [event] = await wait_until(recorded_estimate, 60, "the estimator's PerformanceEstimated recorded")
    assert event.estimated and event.outputs == 500 and event.below_threshold and event.threshold == 0.95
    assert event.estimates["sensitivity"].value == pytest.approx(version["overall"]["metrics"]["sensitivity"]["value"])
    assert event.backtest_outputs == 400 and event.backtest_error["sensitivity"] == pytest.approx(
        test["error"]["sensitivity"]
    )
    [alert] = await wait_until(lambda: _alerts(db), 60, "the estimate's warning alert")
    assert alert.severity == "warning" and alert.caused_by == event.event_id and "ESTIMATED" in alert.summary
    metrics = httpx.get(f"http://127.0.0.1:{pipeline.settings.estimator_metrics_port}/metrics").text
    shown = [
        line
        for line in metrics.splitlines()
        if line.startswith("vigil_performance_estimated{")
        and f'model_id="{MODEL}"' in line
        and 'metric="sensitivity"' in line
        and 'bound="estimate"' in line
    ]
    assert len(shown) == 1 and float(shown[0].split()[-1]) == pytest.approx(event.estimates["sensitivity"].value)

    # The outcomes of the pending outputs arrive: the realised figure supersedes the estimate.
    post(pipeline, outcomes[1400:])
    await wait_recorded(db, [e["event_id"] for e in outcomes[1400:]], 120)

    async def superseded() -> dict | None:
        version = call(pipeline, "GET", f"/v1/models/{MODEL}/performance/estimate?window=30d").json()["versions"][0]
        return version if not version["pending"] else None

    version = await wait_until(superseded, 30, "the pending outputs gone from the estimate")
    assert [t["estimate"]["n"] for t in version["backtest"]] == [500, 400]
    realised = recall_score(truth[1500:], said[1500:])
    assert version["backtest"][1]["realised"]["sensitivity"] == pytest.approx(realised, abs=1e-12)
    assert call(pipeline, "GET", "/v1/models/nobody/performance/estimate").status_code == 404


async def _alerts(db) -> list:
    async with db.connect() as conn:
        found = await reads.of_type(conn, AlertRaised, model_id=MODEL)
    return [a for a in found if a.alert_name == "PerformanceEstimateLow"]


async def test_an_uploaded_reference_calibrates_every_later_output_and_bad_files_are_refused(
    pipeline: Pipeline, db, tmp_path
) -> None:
    model = f"cbpe-upload-{RUN}"
    await register(pipeline, db, [registration() | {"model_id": model}])
    rng = np.random.default_rng(43)
    # The reference: a validation study's 800 outputs with their outcomes, none of them in the store.
    p_ref = rng.beta(2, 3, 800)
    truth_ref = rng.random(800) < p_ref
    reference = tmp_path / "validation-study.csv"
    reference.write_text("score,truth\n" + "".join(f"{s},{'malignant' if t else 'benign'}\n"
                                                   for s, t in zip(p_ref, truth_ref, strict=True)))  # fmt: skip
    command = [sys.executable, "-m", "services.cli", "performance", "reference", "--model", model, "--version", "2.0",
               "--file", str(reference), "--label", "malignant"]  # fmt: skip
    ran = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "800 rows" in ran.stdout + ran.stderr

    n = 600  # in use: the first 200 with their outcomes (all of them a backtest now), 400 pending
    p = rng.beta(2, 3, n)
    truth, said = rng.random(n) < p, p >= 0.45
    start = datetime.now(UTC) - timedelta(days=2)
    events: list[dict] = []
    for i in range(n):
        at = (start + timedelta(minutes=3 * i)).isoformat()
        inference = str(uuid.uuid4())
        events.append({
            "event_type": "InferenceMade", "event_id": inference, "occurred_at": at, "model_id": model,
            "model_version": "2.0", "deployment": "st-mary", "use_case": "mammography",
            "patient_ref": "pt_" + uuid.uuid4().hex[:24],
            "output": {"label": "malignant" if said[i] else "benign", "score": float(p[i])},
        })  # fmt: skip
        if i < 200:
            events.append({
                "event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()), "occurred_at": at,
                "inference_id": inference, "model_id": model, "observed_at": at,
                "label": "malignant" if truth[i] else "benign", "critical_condition": bool(truth[i]),
                "source": "pathology",
            })  # fmt: skip
    post(pipeline, events)
    await wait_recorded(db, [e["event_id"] for e in events], 120)

    version = call(pipeline, "GET", f"/v1/models/{model}/performance/estimate").json()["versions"][0]
    assert version["not_estimable"] is None and version["reference_size"] == 800
    assert "validation-study.csv" in version["reference"]
    iso = IsotonicRegression(out_of_bounds="clip").fit(p_ref, truth_ref)
    pending = iso.predict(p[200:])
    assert version["overall"]["n"] == 400
    expected = pending[said[200:]].sum() / pending.sum()
    assert version["overall"]["metrics"]["sensitivity"]["value"] == pytest.approx(expected, abs=1e-9)
    [test] = version["backtest"]
    assert test["estimate"]["n"] == 200
    assert test["realised"]["sensitivity"] == pytest.approx(recall_score(truth[:200], said[:200]), abs=1e-12)

    # Refused, with the reason, and nothing recorded.
    route = f"/v1/models/{model}/versions/2.0/calibration-reference"
    csv = {"content-type": "text/csv"}
    body, backwards = reference.read_bytes(), b"score,truth\n" + b"0.9,benign\n0.1,malignant\n" * 50
    cases = [
        (f"{route}?label=benign", body, csv, 422, "not a critical label"),
        (f"{route}?label=malignant", b"score,label\n0.2,benign\n", csv, 422, "no column 'truth'"),
        (f"{route}?label=malignant", backwards, csv, 422, "calibration error"),
        (f"{route}?label=malignant", body, {"content-type": "application/json"}, 415, "text/csv"),
        ("/v1/models/nobody/versions/2.0/calibration-reference?label=malignant", body, csv, 404, "nobody"),
    ]
    for path, content, headers, status, said_why in cases:
        answer = call(pipeline, "PUT", path, role="emitter", content=content, headers=headers)
        assert answer.status_code == status and said_why in answer.text, (path, answer.text)
    async with db.connect() as conn:
        assert len(await reads.of_type(conn, CalibrationReferenceSet, model_id=model)) == 1
