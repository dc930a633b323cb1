"""Every Grafana dashboard query returns data from a real Prometheus scraping real Vigil processes.

Grafana itself cannot be installed here, so the panels' PromQL is what is tested.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import hospital_events, wait_until
from tests.integration.test_drift import shift_stream
from tests.integration.test_oversight import NOBODY
from tests.integration.test_oversight import day as oversight_day
from vigil.incidents import latest_awareness_overdue
from vigil_hospital import Hospital, missed_chest_pain

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PORT = 19090


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((path.name, panel["title"], target["expr"]))
    return out


@pytest.fixture(scope="module")
def prometheus(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus of the test's own, scraping this session's worker, recorder and API every second."""
    s = pipeline.settings
    home = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "vigil-worker", "static_configs": [{"targets": [f"127.0.0.1:{s.worker_metrics_port}"]}]},
            {"job_name": "vigil-recorder", "static_configs": [{"targets": [f"127.0.0.1:{s.recorder_metrics_port}"]}]},
            {"job_name": "vigil-api", "static_configs": [{"targets": [f"127.0.0.1:{s.api_port}"]}]},
            {"job_name": "vigil-estimator", "static_configs": [{"targets": [f"127.0.0.1:{s.estimator_metrics_port}"]}]},
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{PORT}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{PORT}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/-/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "prometheus did not start"
        time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(10)


async def test_every_dashboard_query_returns_data(pipeline: Pipeline, prometheus: str) -> None:
    s = pipeline.settings
    events = hospital_events(300, seed=707)
    headers = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    # Traffic for every panel: events, a duplicate, and a dead letter.
    for _ in range(3):
        assert httpx.post(pipeline.api_url + "/v1/events", json=events, headers=headers).status_code == 202
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap)
        await producer.start()
        await producer.send_and_wait(s.topic("inference.v1"), b"not json")
        await producer.stop()

    # The chatbot's transparency share is judged over its version's window, which the missed
    # escalation below (the same version, months later) moves past these outputs: it is read first.
    async def transparency_judged() -> bool:
        metrics = httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
        return 'vigil_transparency_share{kind="disclaimer_shown",model_id="symptom-chat"' in metrics

    await wait_until(transparency_judged, 60, "the chatbot's transparency share")

    # A drift episode that does not recover, for the drift dashboard.
    shift = shift_stream(f"dashboard-{RUN}", s.topic_partitions, recover=False)
    for start in range(0, len(shift), 500):
        batch = shift[start : start + 500]
        assert httpx.post(pipeline.api_url + "/v1/events", json=batch, headers=headers).status_code == 202

    # Outputs nobody reviewed, one of them autonomous, for the safety dashboard.
    inferences, reviews = oversight_day(f"dashboard-{RUN}", datetime(2026, 11, 9, 8, tzinfo=UTC), 100, NOBODY)
    inferences[10]["output_kind"] = "autonomous_action"
    assert httpx.post(pipeline.api_url + "/v1/events", json=[*inferences, *reviews], headers=headers).status_code == 202

    # A radiologist's report nobody triages, its clocks run out whatever the weekday, and a missed
    # escalation that raises a candidate, for the incidents dashboard.
    aware = latest_awareness_overdue(datetime.now(UTC), "DE")
    report = {
        "event_type": "IncidentReported", "event_id": str(uuid.uuid4()), "occurred_at": aware.isoformat(),
        "incident_id": str(uuid.uuid4()), "reporter_role": "radiologist", "model_id": "mammo-screen",
        "model_version": "2.3.0", "harm": "temporary", "description": "Missed lesion found at follow-up.",
        "country": "DE", "aware_at": aware.isoformat(),
    }  # fmt: skip
    missed = list(missed_chest_pain(Hospital(seed=5, start=aware), aware))
    assert httpx.post(pipeline.api_url + "/v1/events", json=[report, *missed], headers=headers).status_code == 202

    # Screens of a model of its own, made within the window and waiting for their pathology, calibrated
    # by an uploaded study: the estimator's gauge, for the estimated-performance panel.
    model = f"dash-mammo-{RUN}"
    hospital = Hospital(seed=708, start=datetime.now(UTC) - timedelta(hours=3))
    made = [e for e in [*hospital.registry(), *hospital.stream(150)] if e.get("model_id") == "mammo-screen"]
    screens = [{**e, "model_id": model} for e in made if e["event_type"] != "OutcomeObserved"]
    assert httpx.post(pipeline.api_url + "/v1/events", json=screens, headers=headers).status_code == 202
    study = "score,truth\n" + "".join(f"{score},{truth}\n" for score, truth in hospital.validation_study())

    async def calibrated() -> bool:  # the model's registration recorded first
        answer = httpx.put(f"{pipeline.api_url}/v1/models/{model}/versions/2.3.0/calibration-reference",
                           params={"label": "malignant"}, content=study.encode(),
                           headers={**headers, "Content-Type": "text/csv"})  # fmt: skip
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200

    await wait_until(calibrated, 60, "the dashboard model's calibration reference")

    queries = dashboard_queries()
    assert queries, "no dashboards found"

    async def all_have_data() -> bool:
        async with httpx.AsyncClient() as client:
            for _, _, expr in queries:
                body = (await client.get(prometheus + "/api/v1/query", params={"query": expr})).json()
                assert body["status"] == "success", f"{expr}: {body}"
                if not body["data"]["result"]:
                    return False
        return True

    try:
        await wait_until(all_have_data, 90, "data behind every dashboard panel")
    except AssertionError:
        empty = []
        for name, title, expr in queries:
            body = httpx.get(prometheus + "/api/v1/query", params={"query": expr}).json()
            if not body["data"]["result"]:
                empty.append(f"{name} / {title}: {expr}")
        raise AssertionError("panels without data:\n" + "\n".join(empty)) from None
