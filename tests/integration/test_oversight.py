"""Oversight on the real broker: outputs nobody reviewed, one acted on before review and one
autonomous action raise OversightViolation events with alerts and gauges; a later day reviewed in
full restores them. Reviews arrive before and after their inferences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from vigil_sdk import AsyncEmitter

from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import emit_all, ids_on_every_partition, wait_recorded, wait_until
from vigil.events import AlertRaised, OversightRestored, OversightViolation

pytestmark = pytest.mark.integration
MODEL = "oversight-probe"  # tests/policy.yml: reviews within 30 min (10 min grace), judged from 20, 1-day window
T0 = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)
NOBODY = range(40, 60)  # outputs of the first day nobody reviews


def day(version: str, start: datetime, n: int, skip: range = range(0)) -> tuple[list[dict], list[dict]]:
    """n inferences a minute apart, each reviewed five minutes later except those in `skip`."""
    inferences, reviews = [], []
    for i in range(n):
        at = start + timedelta(minutes=i)
        inference_id = str(uuid.uuid4())
        inferences.append(
            {
                "event_type": "InferenceMade", "event_id": inference_id, "occurred_at": at.isoformat(),
                "model_id": MODEL, "model_version": version, "deployment": "st-mary", "use_case": "ed_triage",
                "patient_ref": "pt_" + uuid.uuid4().hex[:24], "output": {"label": "urgent", "score": 0.8},
            }
        )  # fmt: skip
        if i not in skip:
            seen = (at + timedelta(minutes=5)).isoformat()
            reviews.append(
                {
                    "event_type": "ReviewRecorded", "event_id": str(uuid.uuid4()), "occurred_at": seen,
                    "inference_id": inference_id, "model_id": MODEL, "reviewer_role": "triage_nurse",
                    "decision": "accepted", "reviewed_at": seen,
                }
            )  # fmt: skip
    return inferences, reviews


def later_traffic(at: datetime, partitions: int) -> list[dict]:
    """An output of another version on each partition, with its review."""
    inferences, reviews = day(f"v-{RUN}-other", at, partitions)
    for inference, review, inference_id in zip(inferences, reviews, ids_on_every_partition(partitions), strict=True):
        inference["event_id"] = review["inference_id"] = inference_id
    return [*inferences, *reviews]


def registry() -> dict:
    return {
        "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
        "model_id": MODEL, "name": "Oversight probe", "manufacturer": "Vigil tests", "use_case": "ed_triage",
        "risk_class": "medium", "intended_use": "Exercises oversight monitoring.",
    }  # fmt: skip


async def signals(db, version: str) -> list[dict]:
    async with db.connect() as conn:
        found = await reads.of_type(
            conn, OversightViolation, OversightRestored, AlertRaised, model_id=MODEL, version=version
        )
        return [e.model_dump(mode="json") for e in found]


async def with_alerts(db, version: str, event_type: str) -> list[dict]:
    """The signals once three of the type are recorded, each with its alert (they travel on two
    topics, so one may be recorded before the other)."""
    found = await signals(db, version)
    alerted = {e["caused_by"] for e in found if e["event_type"] == "AlertRaised"}
    signals_of_type = [e for e in found if e["event_type"] == event_type and e["event_id"] in alerted]
    return found if len(signals_of_type) >= 3 else []


async def test_unreviewed_and_autonomous_outputs_raise_violations_that_a_reviewed_day_restores(
    pipeline: Pipeline, db, tmp_path: Path
):
    version = f"v-{RUN}"
    inferences, reviews = day(version, T0, 100, skip=NOBODY)
    inferences[10]["output_kind"] = "autonomous_action"  # not allowed by default: WHO, no autonomous diagnosis
    acted = next(r for r in reviews if r["inference_id"] == inferences[20]["event_id"])
    acted["acted_before_review"] = True
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        # A third of the reviews is sent before its inference: the join works in either order.
        await emit_all(emitter, [registry(), *reviews[:30], *inferences, *reviews[30:]])
        # The model's traffic goes on (another version) on every partition: each partition's oversight
        # clock, moved by its own records only, passes the due time of the last outputs above.
        await emit_all(emitter, later_traffic(T0 + timedelta(hours=3), s.topic_partitions))
    await wait_recorded(db, [e["event_id"] for e in [*inferences, *reviews]], 60)

    found = await wait_until(lambda: with_alerts(db, version, "OversightViolation"), 60, "three violations")
    violations = {e["kind"]: e for e in found if e["event_type"] == "OversightViolation"}
    assert set(violations) == {"review_coverage", "acted_before_review", "autonomous_action"}
    # Raised when the first outputs passed their review time; which ones, depends on when ticks came.
    coverage = violations["review_coverage"]
    unreviewed = {inferences[i]["event_id"] for i in NOBODY}
    assert 1 <= coverage["cases"] <= 20 and coverage["value"] < coverage["limit"] == 0.99
    assert coverage["inference_ids"] and set(coverage["inference_ids"]) <= unreviewed
    assert violations["autonomous_action"]["inference_ids"] == [inferences[10]["event_id"]]
    assert violations["acted_before_review"]["inference_ids"] == [inferences[20]["event_id"]]
    alerts = {e["caused_by"]: e for e in found if e["event_type"] == "AlertRaised"}
    severity = {kind: alerts[v["event_id"]]["severity"] for kind, v in violations.items()}
    assert severity == {
        "review_coverage": "warning",
        "acted_before_review": "critical",
        "autonomous_action": "critical",
    }
    assert not any("pt_" in a["summary"] for a in alerts.values())

    # In the end: 100 outputs, one autonomous (not due), so 99 due, 20 of them never reviewed.
    labels = f'kind="review_coverage",model_id="{MODEL}",model_version="{version}"'

    async def all_expired() -> bool:
        metrics = httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
        return f"vigil_oversight_value{{{labels}}} {79 / 99}" in metrics

    await wait_until(all_expired, 30, "coverage 79/99 on the worker's gauge")
    metrics = httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
    assert f"vigil_oversight_violation_active{{{labels}}} 1.0" in metrics

    # The event store's view, by the same core: long past its review time, every output is decided.
    answer = httpx.get(
        f"{pipeline.api_url}/v1/models/{MODEL}/oversight",
        params={"by": "deployment", "window": "all", "version": version},
        headers={"Authorization": f"Bearer {TOKENS['auditor']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    everyone = body["rows"][0]
    assert (everyone["group"], everyone["outputs"], everyone["in_time"], everyone["unreviewed"]) == (
        "everyone",
        100,
        79,
        20,
    )
    assert (everyone["acted_before_review"], everyone["autonomous"], everyone["reviews"]) == (1, 1, 80)
    assert [r["group"] for r in body["rows"]] == ["everyone", "st-mary"]
    assert {f["kind"] for f in body["findings"] if f["violated"]} == set(violations)
    command = ["oversight", "show", "--model", MODEL, "--version", version, "--by", "deployment", "--window", "0"]
    cli = subprocess.run([sys.executable, "-m", "services.cli", *command, "--json"], capture_output=True, text=True,
                         env=os.environ, check=True)  # fmt: skip
    assert json.loads(cli.stdout)["rows"] == body["rows"]
    bad = httpx.get(
        f"{pipeline.api_url}/v1/models/{MODEL}/oversight", params={"by": "site,sex"},
        headers={"Authorization": f"Bearer {TOKENS['auditor']}"},
    )  # fmt: skip
    assert bad.status_code == 422 and "one attribute at a time" in bad.text
    unknown = httpx.get(
        f"{pipeline.api_url}/v1/models/nobody/oversight", headers={"Authorization": f"Bearer {TOKENS['auditor']}"}
    )
    assert unknown.status_code == 404

    # Three days later every output is reviewed in time: the one-day window holds only that day.
    later, later_reviews = day(version, T0 + timedelta(days=3), 60)
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, [*later, *later_reviews])

    found = await wait_until(lambda: with_alerts(db, version, "OversightRestored"), 60, "three restorations")
    ended = {e["kind"]: e for e in found if e["event_type"] == "OversightRestored"}
    assert {k: e["violation_event_id"] for k, e in ended.items()} == {k: v["event_id"] for k, v in violations.items()}
    assert ended["review_coverage"]["value"] == 1.0
    resolved = [e for e in found if e["event_type"] == "AlertRaised" and e["resolved"]]
    assert {a["labels"]["kind"] for a in resolved} == set(violations)
