"""Two workers in one group share the partitions; one SIGKILLed mid-stream, the other takes over its
partitions and their state, and every model's derived sensitivity and override share are exact:
nothing lost, nothing counted twice, the same as one worker would derive (checked against
scikit-learn and numpy on what was sent)."""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import recall_score
from vigil_sdk import AsyncEmitter

from services.processes import Background
from tests.conftest import RUN, Pipeline
from tests.integration.helpers import emit_all, wait_recorded, wait_until

pytestmark = pytest.mark.integration
T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
MODELS = [f"pair-{RUN}-{n}" for n in range(6)]  # spread over the partitions by their keys
SECOND_PORT = 19111


def model_events(model: str, n: int, rng: random.Random) -> tuple[list[dict], list[tuple[str, str]]]:
    """A high-risk model's registration, n inferences each with its outcome and its review, and
    (truth, predicted)."""
    events: list[dict] = [{
        "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
        "model_id": model, "name": "Pair probe", "manufacturer": "Vigil tests", "use_case": "ed_triage",
        "risk_class": "high", "intended_use": "Exercises two workers.", "labels": ["urgent", "non_urgent"],
        "critical_labels": ["urgent"], "countries": ["DE"],
    }]  # fmt: skip
    pairs = []
    for i in range(n):
        truth, predicted = rng.choice(["urgent", "non_urgent"]), rng.choice(["urgent", "urgent", "non_urgent"])
        at, inference_id = T0 + timedelta(minutes=i), str(uuid.uuid4())
        events.append({
            "event_type": "InferenceMade", "event_id": inference_id, "occurred_at": at.isoformat(),
            "model_id": model, "model_version": "1", "deployment": "st-mary", "use_case": "ed_triage",
            "patient_ref": "pt_" + uuid.uuid4().hex[:24], "output": {"label": predicted, "score": 0.5},
        })  # fmt: skip
        events.append({
            "event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()),
            "occurred_at": (at + timedelta(hours=3)).isoformat(), "inference_id": inference_id, "model_id": model,
            "observed_at": (at + timedelta(hours=3)).isoformat(), "label": truth,
            "critical_condition": truth == "urgent", "source": "follow_up",
        })  # fmt: skip
        seen = (at + timedelta(minutes=5)).isoformat()
        events.append({
            "event_type": "ReviewRecorded", "event_id": str(uuid.uuid4()), "occurred_at": seen,
            "inference_id": inference_id, "model_id": model, "reviewer_role": "triage_nurse",
            "decision": rng.choice(["accepted", "accepted", "overridden"]), "reviewed_at": seen,
        })  # fmt: skip
        pairs.append((truth, predicted))
    return events, pairs


def shown_on(port: int, model: str) -> tuple[float | None, float | None]:
    """The worker's gauges of the model's sensitivity for everyone and its override share, if it shows them."""
    try:
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return None, None
    sensitivity = overrides = None
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.labels.get("model_id") != model:
                continue
            wanted = {"metric": "sensitivity", "label": "urgent", "subgroup": "everyone"}
            if sample.name == "vigil_performance_value" and wanted.items() <= sample.labels.items():
                sensitivity = sample.value
            if sample.name == "vigil_oversight_value" and sample.labels.get("kind") == "override_rate":
                overrides = sample.value
    return sensitivity, overrides


async def test_a_worker_killed_mid_stream_hands_its_partitions_and_state_to_the_other(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    s = pipeline.settings
    env = {"VIGIL_WORKER_METRICS_PORT": str(SECOND_PORT), "VIGIL_HOME": str(tmp_path / "second")}
    second = Background("worker-2", [sys.executable, "-m", "services.cli", "worker"], s.home / "test-processes", env)
    second.start()
    try:
        rng = random.Random(17)
        streams = {model: model_events(model, 300, rng) for model in MODELS}
        expected = {
            model: (
                recall_score([t for t, _ in pairs], [p for _, p in pairs], pos_label="urgent"),
                np.mean([e["decision"] == "overridden" for e in events if e["event_type"] == "ReviewRecorded"]),
            )
            for model, (events, pairs) in streams.items()
        }
        registrations = [events[0] for events, _ in streams.values()]
        rest = [e for events, _ in streams.values() for e in events[1:] if e["event_type"] != "ReviewRecorded"]
        rng.shuffle(rest)  # outcomes may come before their inferences
        # Each review just after its inference, and a model's inferences a minute apart in the order
        # sent: the model's oversight clock (event time) then never lets a review go unmatched
        # (one seen an hour of inferences before its own would be, by a single worker as well).
        reviews = {e["inference_id"]: e for events, _ in streams.values() for e in events if "reviewer_role" in e}
        rest = [x for e in rest for x in ([e, reviews[e["event_id"]]] if e["event_type"] == "InferenceMade" else [e])]
        sent = dict.fromkeys(MODELS, 0)
        for event in rest:
            if event["event_type"] == "InferenceMade":
                at = T0 + timedelta(minutes=sent[event["model_id"]])
                sent[event["model_id"]] += 1
                event["occurred_at"] = at.isoformat()
                review = reviews[event["event_id"]]
                review["occurred_at"] = review["reviewed_at"] = (at + timedelta(minutes=5)).isoformat()
        await asyncio.sleep(15)  # both workers in the group, the partitions shared
        async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
            await emit_all(emitter, registrations + rest[: len(rest) // 2])
            await asyncio.sleep(4)  # some of it read and derived by both
            pipeline.kill("worker")  # SIGKILL: its partitions and their state go to the other
            await emit_all(emitter, rest[len(rest) // 2 :])
        await wait_recorded(db, [e["event_id"] for e in rest], 120)

        shown: dict[str, tuple[float | None, float | None]] = {}

        async def all_exact() -> bool:
            shown.update({model: shown_on(SECOND_PORT, model) for model in MODELS})
            return all(shown[model] == pytest.approx(expected[model], abs=1e-12) for model in MODELS)

        try:
            await wait_until(all_exact, 240, "sensitivity and override share exact on the surviving worker")
        except AssertionError:
            tail = second.logfile.read_text()[-3000:] if second.logfile.exists() else "(no log)"
            killed = pipeline.processes["worker"].logfile
            gaps = [line for line in killed.read_text().splitlines() if "worker.gap" in line] if killed.exists() else []
            assert shown == expected, (
                f"the killed worker's gaps:\n{gaps[-20:]}\nthe surviving worker's log ends:\n{tail}"
            )
            raise
    finally:
        second.stop()
        pipeline.start("worker")
