"""A batch of records in slices of bounded size: what the worker decodes and holds at once.

The worker's batches count records, but records differ in weight by hundreds of times: an input
record is under a kilobyte, a handover from the first stage up to 200 items of each kind (about
400 KB). A batch of 2,000 records caught up on handovers held hundreds of thousands of items at once
(P4 in BENCHMARKS.md). Slices bound what a batch holds by bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def slices(items: Iterable[T], size: Callable[[T], int], most: int) -> Iterator[list[T]]:
    """`items` in order, in runs of at most `most` in total `size`; an item larger than `most`
    makes a run of its own. No run is empty."""
    run: list[T] = []
    total = 0
    for item in items:
        weight = size(item)
        if run and total + weight > most:
            yield run
            run, total = [], 0
        run.append(item)
        total += weight
    if run:
        yield run
