"""Subgroup performance on the real broker: late outcomes, out of order, become exact confusion
counts in the worker and in the API, a confirmed ThresholdBreached with an incident candidate, and
a DisparityDetected for the low-resource site. Bad outcomes become dead letters with the reason."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from vigil_sdk import AsyncEmitter

from services.export import write_export
from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import emit_all, wait_recorded, wait_until
from vigil.events import DisparityDetected, IncidentCandidateRaised, ThresholdBreached
from vigil.export import quarter
from vigil.policy import Policy

pytestmark = pytest.mark.integration
MODEL = "perf-probe"  # tests/policy.yml: subgroups by site only
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
# (true positives of 60 positives, true negatives of 60 negatives) per site
SITES = {"st-mary": (53, 54), "north-valley": (55, 54), "city-east": (52, 54), "riverside-rural": (45, 54)}


def registry() -> list[dict]:
    return [
        {
            "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
            "model_id": MODEL, "name": "Perf probe", "manufacturer": "Vigil tests", "use_case": "ed_triage",
            "risk_class": "high", "intended_use": "Exercises performance monitoring.",
            "labels": ["urgent", "non_urgent"], "critical_labels": ["urgent"], "countries": ["DE"],
        }
    ]  # fmt: skip


def cases(version: str) -> tuple[list[dict], list[dict]]:
    inferences, outcomes = [], []
    i = 0
    for site, (tp, tn) in SITES.items():
        for truth, predicted in (
            [("urgent", "urgent")] * tp
            + [("urgent", "non_urgent")] * (60 - tp)
            + [("non_urgent", "non_urgent")] * tn
            + [("non_urgent", "urgent")] * (60 - tn)
        ):
            at = T0 + timedelta(minutes=i)
            inference_id = str(uuid.uuid4())
            inferences.append(
                {
                    "event_type": "InferenceMade", "event_id": inference_id, "occurred_at": at.isoformat(),
                    "model_id": MODEL, "model_version": version, "deployment": site, "use_case": "ed_triage",
                    "patient_ref": "pt_" + uuid.uuid4().hex[:24], "subgroup": {"site": site},
                    "output": {"label": predicted, "score": 0.8 if predicted == "urgent" else 0.2},
                }
            )  # fmt: skip
            outcomes.append(
                {
                    "event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()),
                    "occurred_at": (at + timedelta(days=2)).isoformat(), "inference_id": inference_id,
                    "model_id": MODEL, "observed_at": (at + timedelta(days=2)).isoformat(), "label": truth,
                    "critical_condition": truth == "urgent", "source": "follow_up",
                }
            )  # fmt: skip
            i += 1
    return inferences, outcomes


async def signals(db, version: str) -> list[dict]:
    async with db.connect() as conn:
        found = await reads.of_type(
            conn, ThresholdBreached, DisparityDetected, IncidentCandidateRaised, model_id=MODEL, version=version
        )
        return [e.model_dump(mode="json") for e in found]


async def test_late_outcomes_out_of_order_give_exact_counts_and_signals(pipeline: Pipeline, db, tmp_path: Path):
    version = f"v-{RUN}"
    headers = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    registered = registry()
    assert httpx.post(pipeline.api_url + "/v1/events", json=registered, headers=headers).status_code == 202
    await wait_recorded(db, [e["event_id"] for e in registered], 30)

    inferences, outcomes = cases(version)
    shuffle = random.Random(3).shuffle
    shuffle(inferences)
    shuffle(outcomes)
    early, late = outcomes[:200], outcomes[200:]  # 200 outcomes arrive before their inferences
    stray = dict(late[0], event_id=str(uuid.uuid4()), label="maybe")  # outside the label set
    # A model that never registers: its joined pair waits VIGIL_REGISTRY_GRACE (2 s here), then a
    # dead letter; a later record of its partition runs that check.
    ghost_inference = dict(inferences[0], event_id=str(uuid.uuid4()), model_id="ghost-model")
    ghost = dict(late[1], event_id=str(uuid.uuid4()), model_id="ghost-model", inference_id=ghost_inference["event_id"])
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, [*early, *inferences, *late, stray, ghost_inference, ghost])
    await asyncio.sleep(4)
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, [dict(ghost_inference, event_id=str(uuid.uuid4()))])
    await wait_recorded(db, [e["event_id"] for e in [*inferences, *outcomes]], 60)

    metrics_url = f"http://127.0.0.1:{s.worker_metrics_port}/metrics"

    def gauge(subgroup: str) -> str:
        return (
            f'vigil_performance_value{{label="urgent",metric="sensitivity",model_id="{MODEL}",'
            f'model_version="{version}",subgroup="{subgroup}"}}'
        )

    async def all_counted() -> bool:
        text = httpx.get(metrics_url).text
        return f"{gauge('everyone')} {205 / 240}" in text and f"{gauge('site=riverside-rural')} 0.75" in text

    await wait_until(all_counted, 60, "the worker to count all 480 joined outcomes")
    text = httpx.get(metrics_url).text
    for site, (tp, _) in SITES.items():
        assert f"{gauge('site=' + site)} {tp / 60}" in text

    found = await wait_until(lambda: _with_disparity(db, version), 30, "DisparityDetected, breach and candidate")
    disparity = next(e for e in found if e["event_type"] == "DisparityDetected")
    assert disparity["worst"]["subgroup"] == {"site": "riverside-rural"} and disparity["attributes"] == ["site"]
    breaches = [e for e in found if e["event_type"] == "ThresholdBreached"]
    rural = [b for b in breaches if b["estimate"]["subgroup"] == {"site": "riverside-rural"}]
    assert rural and rural[-1]["level"] == "confirmed" and rural[-1]["threshold"] == 0.95
    candidates = [e for e in found if e["event_type"] == "IncidentCandidateRaised"]
    assert candidates and all(c["source"] == "threshold_breach" for c in candidates)

    # The API computes the same from the event store: exact confusion counts per site.
    answer = httpx.get(
        f"{pipeline.api_url}/v1/models/{MODEL}/performance",
        params={"by": "site", "window": "all", "version": version},
        headers={"Authorization": f"Bearer {TOKENS['safety_officer']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = {r["subgroup"].get("site", "everyone"): r for r in body["rows"]}
    for site, (tp, tn) in SITES.items():
        assert (rows[site]["tp"], rows[site]["fn"], rows[site]["tn"], rows[site]["fp"]) == (tp, 60 - tp, tn, 60 - tn)
    assert rows["everyone"]["n"] == 480 and body["outcomes"] == 480
    assert rows["riverside-rural"]["verdict"] == "confirmed breach"
    (gap,) = body["disparity"]
    assert gap["worst"]["subgroup"] == {"site": "riverside-rural"} and gap["significant"]

    async def refused() -> list:
        async with db.connect() as conn:
            rows = await reads.dead_letters_of(conn, kinds=["unknown_label", "unknown_model"])
            found = [r for r in rows if "maybe" in r.reason or "ghost-model" in r.reason]
        return found if {r.reason_kind for r in found} == {"unknown_label", "unknown_model"} else []

    await wait_until(refused, 30, "dead letters for both bad outcomes")

    # The quarter's export still comes out with an unregistered model's inferences in it.
    folder = await write_export(db, Policy({}), quarter("2026Q4"), tmp_path, lambda *_: None, T0 + timedelta(days=30))
    reports = json.loads((folder / "performance.json").read_text())
    assert "no model 'ghost-model' is registered" in reports["ghost-model"]["unregistered"]
    assert reports[MODEL]["outcomes"] >= 480


async def _with_disparity(db, version: str) -> list[dict]:
    """The signals, once the disparity, the rural site's confirmed breach and a candidate are all
    recorded (they travel in different batches and partitions)."""
    found = await signals(db, version)
    kinds = {e["event_type"] for e in found}
    rural = [
        e for e in found
        if e["event_type"] == "ThresholdBreached" and e["estimate"]["subgroup"] == {"site": "riverside-rural"}
    ]  # fmt: skip
    complete = {"DisparityDetected", "IncidentCandidateRaised"} <= kinds and rural and rural[-1]["level"] == "confirmed"
    return found if complete else []


def test_performance_query_errors(pipeline: Pipeline) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['safety_officer']}"}
    url = f"{pipeline.api_url}/v1/models"
    assert httpx.get(f"{url}/nope/performance", headers=headers).status_code == 404
    bad = httpx.get(f"{url}/{MODEL}/performance", params={"window": "a week"}, headers=headers)
    assert bad.status_code == 422 and "'30d' or 'all'" in bad.text
    emitter = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    assert httpx.get(f"{url}/{MODEL}/performance", headers=emitter).status_code == 403
    # A grouping attribute no recorded inference carries is a typo, not an empty table.
    for query in ("performance", "oversight"):
        params = {"by": "an_unknown_attribute", "window": "all"}  # its inferences are weeks old
        typo = httpx.get(f"{url}/{MODEL}/{query}", params=params, headers=headers)
        assert typo.status_code == 422 and "an_unknown_attribute" in typo.text and "known: " in typo.text, typo.text
        assert "site" in typo.json()["detail"]
