"""Table-value codec: pydantic's JSON (what the worker's tables use, `streams.app.Stored`) against
msgspec on the same values, to decide whether moving the worker's state types to msgspec pays.

    python -m benchmarks.codec [--entries 20000]

The values are the oversight join's entries as the worker writes them (an output waiting for its
review, and the same entry once its review came), from the demo hospital's ED-triage inferences.
msgspec gets the same fields as `Struct`s (a copy of the types made for this measurement only).
Median of 3 runs each, same process, same values. Ratio = pydantic's time / msgspec's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import typer

from benchmarks.oversight_join import events
from benchmarks.throughput import report_table
from streams.oversight import ReviewJoin
from vigil.events import InferenceMade, ReviewRecorded
from vigil.join import Position
from vigil.oversight import awaiting
from vigil.policy import OversightPolicy


class AwaitingS(msgspec.Struct):
    inference_id: uuid.UUID
    model_version: str
    made_at: datetime
    due: bool


class ReviewS(msgspec.Struct):
    event_id: uuid.UUID
    occurred_at: datetime
    inference_id: uuid.UUID
    model_id: str
    reviewer_role: str
    decision: str
    reviewed_at: datetime
    event_type: str = "ReviewRecorded"
    schema_version: int = 1
    acted_before_review: bool = False


class PositionS(msgspec.Struct, array_like=True):
    topic: str
    partition: int
    offset: int


class EntryS(msgspec.Struct):
    model_id: str
    partition: int
    due: datetime
    left: AwaitingS | None = None
    right: ReviewS | None = None
    right_from: PositionS | None = None
    paired: bool = False


def entries(n: int) -> list[ReviewJoin]:
    inferences, reviews = events(n)
    policy = OversightPolicy()
    by_id = {r.inference_id: r for r in map(ReviewRecorded.model_validate_json, reviews)}
    out = []
    for raw in inferences[:n]:
        inference = InferenceMade.model_validate_json(raw)
        if (output := awaiting(inference, policy)) is None:
            continue
        entry = ReviewJoin(model_id=inference.model_id, partition=1, due=inference.occurred_at, left=output)
        out.append(entry)
        if review := by_id.get(inference.event_id):
            out.append(entry.model_copy(update={"right": review, "right_from": Position("review.v1", 1, 7)}))
    return out


def median_seconds(run: Callable[[Any], object], values: list[Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for value in values:
            run(value)
        times.append(time.perf_counter() - started)
    return sorted(times)[repeat // 2]


def main(n: int = typer.Option(20_000, "--entries", help="inferences to make entries of")) -> None:
    models = entries(n)
    encoded = [m.model_dump_json().encode() for m in models]
    structs = [msgspec.json.decode(raw, type=EntryS) for raw in encoded]
    assert [msgspec.json.decode(msgspec.json.encode(s), type=EntryS) for s in structs[:100]] == structs[:100]
    decoder, encoder = msgspec.json.Decoder(EntryS), msgspec.json.Encoder()
    times = {
        "decode": (median_seconds(ReviewJoin.model_validate_json, encoded), median_seconds(decoder.decode, encoded)),
        "encode": (median_seconds(lambda m: m.model_dump_json(), models), median_seconds(encoder.encode, structs)),
    }
    per = 1e6 / len(models)
    rows = [(step, f"{p * per:.2f}", f"{m * per:.2f}", f"{p / m:.1f}x") for step, (p, m) in times.items()]
    pydantic_us = sum(p for p, _ in times.values()) * per
    msgspec_us = sum(m for _, m in times.values()) * per
    report_table(
        "codec",
        f"Table-value codec: {len(models):,} oversight join entries",
        "Median of 3 runs, same process, same values: `python -m benchmarks.codec`. µs per entry; ratio = pydantic / "
        "msgspec.",
        ["", "pydantic (today)", "msgspec", "ratio"],
        rows,
        note=f"A decode and an encode take {pydantic_us:.1f} µs with pydantic, {msgspec_us:.1f} µs with msgspec. "
        "An inference costs the worker two of each (the outcome join's entry and the oversight join's).",
    )


if __name__ == "__main__":
    typer.run(main)
