"""What the worker's first stage hands to its second, for one model.

The worker runs in two stages, so that one model's stream can be spread over every partition and
every worker (Kafka Streams' repartition-and-aggregate shape):

1. Keyed by inference: an inference, its outcome and its reviews share the inference id, which
   producers key them by, so they meet on one partition wherever the model's other inferences
   are. This stage decodes and checks each record, joins, expires what falls due, and hands on,
   per model, what the joins produced: each inference's drift signals, each joined pair, each
   record's oversight counts.
2. Keyed by model: a `Handover` travels on `handover.v1` keyed by model id, the partition of the
   model's registry events, where its day counts, drift windows and rolling verdicts live.

Every item keeps the position of the input record it came from. Within one input partition they
come in order, so the second stage takes each item once however often the first stage hands it
on (after a crash, `vigil.join.takes`): what a model's counts and windows hold does not depend on
how the partitions are shared among workers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from vigil.events import InferenceMade, OutcomeObserved
from vigil.join import ParkedPair, Position
from vigil.oversight import Tally
from vigil.readers import ReviewedOutput

Value = float | int | str | None
JoinedPair = ParkedPair[InferenceMade, OutcomeObserved]  # `since`: when it met


class DriftInput(BaseModel):
    """One inference's drift signals (vigil.drift_monitor.signals), and where it came from (vigil.sources)."""

    model_version: str
    occurred_at: datetime
    at: Position
    values: dict[str, Value]
    deployment: str = ""


class OversightCount(BaseModel):
    """What one record (an inference, a review, a tick) counted of one output's oversight."""

    model_version: str
    made_at: datetime
    inference_id: uuid.UUID
    at: Position
    tally: Tally


class Handover(BaseModel):
    """One first-stage batch's items of one model, each list in the order its records were read."""

    model_id: str
    inferences: list[DriftInput] = []
    pairs: list[JoinedPair] = []
    counts: list[OversightCount] = []
    reviews: list[ReviewedOutput] = []  # each output's first review, for the readers' join

    def pieces(self, most: int = 200) -> list[Handover]:
        """This handover in records of about `most` items of each kind, in order: a batch of a
        busy model would otherwise pass Kafka's largest record (1 MiB by default). The items of
        one record (a tick counts many outputs) stay in one piece: the second stage takes a
        record's items once, from the first piece that holds any."""
        inferences, pairs, counts, reviews = (
            _chunks(items, most) for items in (self.inferences, self.pairs, self.counts, self.reviews)
        )
        return [
            Handover(
                model_id=self.model_id,
                inferences=inferences[n] if n < len(inferences) else [],
                pairs=pairs[n] if n < len(pairs) else [],
                counts=counts[n] if n < len(counts) else [],
                reviews=reviews[n] if n < len(reviews) else [],
            )
            for n in range(max(len(inferences), len(pairs), len(counts), len(reviews)))
        ]


Item = TypeVar("Item", DriftInput, JoinedPair, OversightCount, ReviewedOutput)


def _chunks(items: list[Item], most: int) -> list[list[Item]]:
    """`items` in runs of `most`, each run extended to the end of the last record's items."""
    chunks: list[list[Item]] = []
    for item in items:
        if not chunks or (len(chunks[-1]) >= most and chunks[-1][-1].at != item.at):
            chunks.append([])
        chunks[-1].append(item)
    return chunks
