"""Each output and each pair counted exactly once across a crash, without a broker: the worker's
rule (join entries delivered before the day's counts; the record that set a side or completed a
pair, read again, is told from a repeat; the day takes a record's counts unless its `through`
says it has) run over a model of Kafka's failures.

The model: inferences and answers on two topic-partitions, read in an interleaving that differs
from run to run; batches whose changes are delivered entries first, then counts; a crash while a
batch is delivered, after which any subset of its entries has reached the changelog, and its counts
only if all of them have; offsets committed some batches behind; a second run that restores what
was delivered and reads again from the committed offsets, in another order."""

from __future__ import annotations

import random as random_module
from collections import Counter
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from vigil.join import Entry, Position, arrive, takes
from vigil.performance_monitor import Day, decode, encode

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Inference(BaseModel):
    key: str


class Answer(BaseModel):
    key: str


Join = Entry[Inference, Answer]
Record = tuple[Position, Inference | Answer]


def topics(keys: list[str], rng: random_module.Random) -> dict[str, list[Record]]:
    """Each key's inference and answer (some repeated), in a random order on each topic."""
    sides: dict[str, list[Inference | Answer]] = {"inferences": [], "answers": []}
    for key in keys:
        for topic, event in (("inferences", Inference(key=key)), ("answers", Answer(key=key))):
            sides[topic] += [event] * rng.choice([1, 1, 2])
    out = {}
    for topic, events in sides.items():
        rng.shuffle(events)
        out[topic] = [(Position(topic, 0, offset), event) for offset, event in enumerate(events)]
    return out


def interleaved(streams: dict[str, list[Record]], start: dict[str, int], rng: random_module.Random) -> list[Record]:
    """Both topics from their start offsets, merged as a consumer fetching them in parallel might."""
    left = {topic: records[start[topic] :] for topic, records in streams.items()}
    out = []
    while any(left.values()):
        topic = rng.choice([t for t, records in left.items() if records])
        out.append(left[topic].pop(0))
    return out


class Worker:
    """The worker's rule over plain dicts: an output counted when its inference first comes (as
    oversight counts outputs), a pair when it meets; each record's counts taken once."""

    def __init__(self, entries: dict[str, Join], day: Day) -> None:
        self.entries, self.day = dict(entries), copy(day)

    def batch(self, records: list[Record]) -> tuple[dict[str, Join], Day]:
        """The batch's changed entries, and the day as it would be after the batch."""
        changed: dict[str, Join] = {}
        by_record: dict[Position, list[str]] = {}
        for at, event in records:
            base = Join(model_id="m", partition=0, due=T0)
            new = base.holding(at, left=event) if isinstance(event, Inference) else base.holding(at, right=event)
            arrival = arrive(self.entries.get(event.key), new, at, "answer", "the test")
            if not arrival.repeat:
                self.entries[event.key] = changed[event.key] = arrival.entry
            if isinstance(event, Inference) and (not arrival.repeat or arrival.again):
                by_record.setdefault(at, []).append(f"output {event.key}")
            if arrival.met:
                by_record.setdefault(at, []).append(f"pair {event.key}")
        day = copy(self.day)
        for at, counted in by_record.items():
            if takes(day.through, at):
                for name in counted:  # the day's counts here: how often each was counted
                    day.counts[name] = day.counts.get(name, 0) + 1  # type: ignore[assignment,operator]
        return changed, day


def copy(day: Day) -> Day:
    return Day(dict(day.counts), dict(day.through))


@given(st.integers(1, 12), st.integers(1, 5), st.randoms(use_true_random=False), st.data())
def test_a_crash_while_a_batch_is_delivered_neither_loses_nor_doubles_a_pair(keys, size, rng, data) -> None:
    streams = topics([f"k{n}" for n in range(keys)], rng)
    first = interleaved(streams, {"inferences": 0, "answers": 0}, rng)
    batches = [first[i : i + size] for i in range(0, len(first), size)]
    crash_at = data.draw(st.integers(0, len(batches) - 1), label="crashing batch")
    committed_after = data.draw(st.integers(-1, crash_at - 1), label="last committed batch")

    # Run 1: every batch delivered in full until the crashing one, which delivers a part.
    delivered_entries: dict[str, Join] = {}
    delivered_day = Day()
    worker = Worker({}, Day())
    for n, records in enumerate(batches[: crash_at + 1]):
        changed, day = worker.batch(records)
        if n < crash_at:
            delivered_entries.update(changed)
            delivered_day = day
            worker.day = day
            continue
        reached = {k: v for k, v in changed.items() if data.draw(st.booleans(), label=f"entry {k} delivered")}
        delivered_entries.update(reached)
        if reached == changed and data.draw(st.booleans(), label="counts delivered"):
            delivered_day = day
    start = {topic: 0 for topic in streams}
    for records in batches[: committed_after + 1]:
        for at, _ in records:
            start[at.topic] = max(start[at.topic], at.offset + 1)

    # Run 2: restored from what was delivered, reading again from the committed offsets.
    worker = Worker(delivered_entries, delivered_day)
    second = interleaved(streams, start, rng)
    for i in range(0, len(second), size):
        _, worker.day = worker.batch(second[i : i + size])

    once = {f"{kind} k{n}": 1 for n in range(keys) for kind in ("output", "pair")}
    assert Counter(worker.day.counts) == Counter(once)


def test_the_stored_day_reads_back_with_how_far_it_has_counted() -> None:
    day = Day()
    assert day.new([("a", Position("answers", 2, 7)), ("b", Position("inferences", 2, 3))]) == ["a", "b"]
    assert day.new([("a", Position("answers", 2, 7)), ("c", Position("answers", 2, 8))]) == ["c"]
    assert decode(encode(day)) == day and decode(None) == Day()
