"""A worker that stays alive and stops making progress (here: its process stopped with SIGSTOP while
records keep coming) is found by its watchdog from the group's committed offsets, stopped and
started again; the new one takes over from the committed offsets and every pair is counted once
(the derived sensitivity equals scikit-learn's on what was sent). Its tables are in RocksDB.

The worker runs on topics and a group of its own (as the demo does), so that the session's
pipeline and its state are left alone and the restarts are quick."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.metrics import recall_score
from vigil_sdk import AsyncEmitter

from services.processes import Background
from services.worker_watchdog import group_position
from tests.conftest import RUN
from tests.integration.helpers import emit_all, wait_until
from tests.integration.test_two_workers import model_events, shown_on
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics, ensure_topics

pytestmark = pytest.mark.integration
PORT = 19112


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in found.split()]


async def test_a_worker_that_stops_making_progress_is_started_again_and_counts_once(
    settings: Settings, tmp_path: Path
) -> None:
    own = settings.model_copy(update={"topic_prefix": f"stall{RUN}.", "worker_id": f"vigil-stall-{RUN}"})
    await ensure_topics(own)
    env = {"VIGIL_TOPIC_PREFIX": own.topic_prefix, "VIGIL_WORKER_ID": own.worker_id, "VIGIL_HOME": str(tmp_path),
           "VIGIL_WORKER_METRICS_PORT": str(PORT), "VIGIL_WORKER_STALL_SECONDS": "15",
           "VIGIL_WORKER_STALL_CHECK": "1",
           # RocksDB here (the session's worker keeps its tables in memory): the new worker restores
           # them from disk, and every read must find keys of any partition (streams/stores.py).
           "VIGIL_WORKER_STORE": "rocksdb"}  # fmt: skip
    worker = Background("stall-worker", [sys.executable, "-m", "services.cli", "worker"], tmp_path, env)
    worker.start()
    try:
        model = f"stall-{RUN}"
        events, pairs = model_events(model, 200, random.Random(31))
        events = [e for e in events if e["event_type"] != "ReviewRecorded"]  # registration, then pairs
        half = 1 + 2 * 100

        def sensitivity_of(upto: int) -> float:
            return float(recall_score([t for t, _ in pairs[:upto]], [p for _, p in pairs[:upto]], pos_label="urgent"))

        async with AsyncEmitter(kafka=own.kafka_bootstrap, topic_prefix=own.topic_prefix, spool_dir=tmp_path) as sdk:
            await emit_all(sdk, events[:half])
            first = sensitivity_of(100)
            await wait_until(lambda: _shows(model, first), 120, "the first half derived")
            # The watchdog calls a worker stalled only once it has seen it commit (before, it may be restoring).
            await wait_until(lambda: _committed(own), 60, "the first half committed")
            await asyncio.sleep(3)

            supervisor = worker.pid()
            assert supervisor is not None
            [stuck] = children(supervisor)
            os.kill(stuck, signal.SIGSTOP)  # alive, holding its partitions, doing nothing
            await emit_all(sdk, events[half:])

        await wait_until(lambda: _logged(worker.logfile, "worker.stalled"), 90, "the watchdog finding the stall")
        await wait_until(lambda: _shows(model, sensitivity_of(200)), 120, "every pair derived, once")
        assert worker.pid() == supervisor and children(supervisor) != [stuck]
    finally:
        worker.stop()
        await delete_topics(own, (own.topic_prefix, own.worker_id))


async def _shows(model: str, sensitivity: float) -> bool:
    shown, _ = shown_on(PORT, model)
    return shown == pytest.approx(sensitivity, abs=1e-12)


async def _committed(settings: Settings) -> bool:
    committed, ends = await group_position(settings)
    inputs = [p for p in committed if p[0] in (settings.topic("inference.v1"), settings.topic("outcome.v1"))]
    return bool(inputs) and all(committed[p] == ends[p] for p in inputs)


async def _logged(log: Path, event: str) -> bool:
    return log.exists() and f'"{event}"' in log.read_text()
