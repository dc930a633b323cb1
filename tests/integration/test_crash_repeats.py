"""Exactly once: the worker SIGKILLed again and again while a model's stream arrives, and every drift
window it judges holds exactly the values that were sent for it, no more, no fewer: each window
starts at its first event and holds 200, the changes of drift are those scipy finds on what was
sent, with the same chi-square p-values of the scanner counts.

The stream is sent on one partition, as windows by count need (below). Sent over four, as it was
from 2026-12-02, when inferences came to be keyed by their own id, it failed about one run in
three: a worker catching up after a kill read the partitions' records in another order than they
were sent, which windows by count take as they come."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy.stats import chisquare
from vigil_sdk import AsyncEmitter

from tests.conftest import RUN, Pipeline
from tests.integration.helpers import emit_all, ids_on_partition, wait_until
from tests.integration.test_drift import T0, drift_events, inferences, registry

pytestmark = pytest.mark.integration
WINDOWS = 8  # of 200 (tests/policy.yml), after a reference of 300: odd ones from the new scanner


async def test_sigkills_mid_stream_neither_lose_nor_repeat_a_value_of_any_drift_window(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    version = f"eos-{RUN}"
    rng = np.random.default_rng(9)
    reference = inferences(rng, version, 300, 0)
    windows = [inferences(rng, version, 200, 300 + 200 * k, shifted=k % 2 == 1) for k in range(WINDOWS)]
    opener = inferences(rng, version, 1, 300 + 200 * WINDOWS)  # closes the last window
    sent = [*reference, *(e for w in windows for e in w), *opener]
    # On one partition: windows by count, and a first-events reference, take the events in the
    # order they reach the second stage, which is the order sent only within a partition
    # (streams/drift.py). Spread over four, a worker catching up after a kill reads the
    # partitions' records in another order, and each window holds others than were sent for it.
    for event, event_id in zip(sent, ids_on_partition(0, pipeline.settings.topic_partitions, len(sent)), strict=True):
        event["event_id"] = event_id
    stream = [*registry(version), *sent]

    s = pipeline.settings
    kills = random.Random(3)
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        for start in range(0, len(stream), 400):
            chunk = stream[start : start + 400]
            await emit_all(emitter, chunk)
            # Read and derived by the worker, and (Faust commits every 2.8 s) most likely not yet
            # committed: what a crash makes a worker read again.
            n = sum(e["event_type"] == "InferenceMade" for e in chunk)
            await wait_until(functools.partial(read_at_least, s.worker_metrics_port, n), 60, "the chunk read")
            await asyncio.sleep(kills.uniform(0.1, 1.5))
            pipeline.kill("worker")
            pipeline.start("worker")

    # Scanner counts are exact, so scipy on what was sent says which windows drift and by how
    # much: one value read twice or lost changes a p-value. (Contrast shifts are plain to see.)
    before = Counter(e["features"]["scanner"] for e in reference)
    kinds = sorted({*before, "vendor_c"})
    p_scanner = [chisquare_p([Counter(e["features"]["scanner"] for e in w)[c] for c in kinds],
                             [before[c] * 200 / 300 for c in kinds]) for w in windows]  # fmt: skip
    drifted = {"scanner": [p < 0.05 for p in p_scanner], "image_contrast": [k % 2 == 1 for k in range(WINDOWS)]}
    expected = {
        (feature, "DriftDetected" if now else "DriftResolved", f"count:{k}")
        for feature, flags in drifted.items()
        for k, (was, now) in enumerate(zip([False, *flags], flags, strict=False))
        if was != now
    }

    async def judged() -> list[dict]:
        found = [e for e in await drift_events(db, version) if e.get("feature") in drifted]
        return found if {(e["feature"], e["event_type"], e["window"]) for e in found} >= expected else []

    with contextlib.suppress(AssertionError):  # the comparison below says what differs
        await wait_until(judged, 120, "every change of drift judged")
    await asyncio.sleep(5)  # nothing more may come
    found = [e for e in await drift_events(db, version) if e.get("feature") in drifted]
    assert sorted((e["feature"], e["event_type"], e["window"]) for e in found) == sorted(expected)
    for event in found:
        k = int(event["window"].removeprefix("count:"))
        assert datetime.fromisoformat(event["window_start"]) == T0 + timedelta(minutes=300 + 200 * k)
        assert (event["reference_size"], event["current_size"]) == (300, 200)
        if event["feature"] == "scanner":
            assert event["score"] == pytest.approx(p_scanner[k], rel=1e-9, abs=1e-300)


def chisquare_p(observed: list[int], expected: list[float]) -> float:
    """scipy's chi-square p-value over the categories seen in either (an unseen one gives 0)."""
    seen = [i for i, (o, e) in enumerate(zip(observed, expected, strict=True)) if o or e]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare([observed[i] for i in seen], [expected[i] for i in seen]).pvalue)


async def read_at_least(port: int, n: int) -> bool:
    """Whether the running worker has read n inferences since it started (none while it starts)."""
    try:
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
    except httpx.TransportError:
        return False
    found = re.search(r'vigil_events_in_total\{component="worker",topic="inference.v1"\} (\S+)', metrics)
    return found is not None and float(found.group(1)) >= n
