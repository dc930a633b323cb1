"""Data quality on the real broker: a site stops sending a feature, DataQualityChanged (vanished)
follows with its alert in Alertmanager (owner, action, runbook); when the feature is back, the
change is restored and the alert resolved."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from vigil_sdk import AsyncEmitter

from services.store import reads
from tests.conftest import RUN, Pipeline
from tests.integration.helpers import emit_all, ids_on_partition, wait_until
from tests.integration.test_drift import registry
from vigil.events import AlertRaised, DataQualityChanged, DataQualityRestored

pytestmark = pytest.mark.integration
MODEL = "quality-probe"  # the test policy's defaults: a reference of 300 events, windows of 200, judged from 150


def window(rng: np.random.Generator, version: str, n: int, start: datetime, lactate: bool) -> list[dict]:
    return [
        {
            "event_type": "InferenceMade", "event_id": str(uuid.uuid4()),
            "occurred_at": (start + timedelta(seconds=i)).isoformat(), "model_id": MODEL, "model_version": version,
            "deployment": "site-a", "use_case": "triage", "patient_ref": "pt_" + uuid.uuid4().hex[:24],
            "features": {"spo2": round(float(rng.normal(96, 2)), 1),
                         **({"lactate": round(float(rng.gamma(2, 0.8)), 2)} if lactate else {})},
            "output": {"label": "routine", "score": round(float(rng.uniform()), 3)},
        }
        for i in range(n)
    ]  # fmt: skip


async def test_a_feature_that_stops_arriving_is_reported_and_restored(pipeline: Pipeline, db, tmp_path: Path) -> None:
    version = f"q-{RUN}"
    rng = np.random.default_rng(3)
    # Recent event times: Alertmanager shows an alert only while it is active (vigil's alerts last 24 h).
    start = datetime.now(UTC) - timedelta(hours=1)
    stream = [
        *window(rng, version, 300, start, lactate=True),  # the reference
        *window(rng, version, 200, start + timedelta(minutes=10), lactate=True),  # count:0, as before
        *window(rng, version, 200, start + timedelta(minutes=20), lactate=False),  # count:1, lactate gone
        *window(rng, version, 200, start + timedelta(minutes=30), lactate=True),  # count:2, back
        *window(rng, version, 1, start + timedelta(minutes=40), lactate=True),  # opens count:3: count:2 closes
    ]
    # Count windows take events in the order they reach the second stage: one partition keeps it.
    s = pipeline.settings
    for event, event_id in zip(stream, ids_on_partition(0, s.topic_partitions, len(stream)), strict=True):
        event["event_id"] = event_id
    first = len(stream) - 200  # through count:2's first event, which closes count:1
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, [*registry(version, MODEL), *stream[:first]])

        async def changed() -> list:
            async with db.connect() as conn:
                return await reads.of_type(conn, DataQualityChanged, version=version)

        [event] = await wait_until(changed, 90, "DataQualityChanged for lactate")
        assert (event.feature, event.kind, event.window) == ("lactate", "vanished", "count:1")
        assert (event.reference_missing, event.window_missing, event.events) == (0.0, 1.0, 200)
        assert event.p_value < 0.01 and event.limit == 0.1

        def paged() -> list[dict]:
            active = httpx.get(f"{s.alertmanager_url}/api/v2/alerts").json()
            return [a for a in active if a["labels"].get("alertname") == "DataQualityChanged"
                    and a["labels"].get("model_version") == version]  # fmt: skip

        async def in_alertmanager() -> list[dict]:
            return paged()

        [alert] = await wait_until(in_alertmanager, 60, "the change in Alertmanager")
        assert alert["labels"]["owner"] == "ml-engineering" and alert["labels"]["feature"] == "lactate"
        assert alert["annotations"]["runbook_url"].endswith("/DataQualityChanged.md")
        assert "upstream system" in alert["annotations"]["action"]

        await emit_all(emitter, stream[first:])

    async def restored() -> list:
        async with db.connect() as conn:
            found = await reads.of_type(conn, DataQualityRestored, AlertRaised, version=version)
        back = [e for e in found if isinstance(e, DataQualityRestored)]
        ended = [e for e in found if isinstance(e, AlertRaised) and e.resolved and e.alert_name == "DataQualityChanged"]
        return found if back and ended else []

    found = await wait_until(restored, 90, "DataQualityRestored for lactate, and the alert resolved")
    [back] = [e for e in found if isinstance(e, DataQualityRestored)]
    assert back.changed_event_id == event.event_id and back.window == "count:2" and back.window_missing == 0.0
    metrics = httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
    labels = f'feature="lactate",model_id="{MODEL}",model_version="{version}"'
    assert f"vigil_data_quality_changed_active{{{labels}}} 0.0" in metrics
    assert f"vigil_feature_missing_share{{{labels}}} 0.0" in metrics
