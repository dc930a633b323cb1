"""The either-order join, pairs parked until their model registers, and the index of what falls due.

Two streams name the same key: an inference and its outcome, an inference and its review. Whichever
comes first waits under the key for the other. Everything here is pure: a state and an arrival (or
the time) in, the new state and what to do out. The worker's agents keep only the I/O around it.

The rules, for every concern that joins:
- the first arrival of a side decides; a repeat of a side already seen changes nothing, also after
  the pair has met (the entry stays, marked paired, until it falls due), so a record read twice
  after a crash is not counted twice;
- a paired entry keeps the side that waited and where the record that completed the pair was read
  (`met_at`): when exactly that record is read again after a crash (and, if it brings both sides,
  its completing side), the pair is given again, for
  the concern to tell from its own counts whether they took it before the crash (the entry may
  have reached its changelog and the counts not);
- the right side (an outcome, a review) must name the model its inference was made by; one that
  does not is refused with a reason, and the inference keeps waiting for a right one;
- an entry is forgotten when it falls due; what it still held unpaired is reported, for the
  concern to count (an inference never reviewed) or drop (an outcome never matched).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from vigil.validation import Rejected

L = TypeVar("L", bound=BaseModel)  # the left side: what the join keeps of an inference
R = TypeVar("R", bound=BaseModel)  # the right side: an outcome or a review
K = TypeVar("K", bound=Hashable)
Lane = tuple[int, str]  # (partition, a name within it: "" or a model id)


class Position(NamedTuple):
    """Where a record was read: a refused right side is dead-lettered at its own position."""

    topic: str
    partition: int
    offset: int


class Entry(BaseModel, Generic[L, R]):
    """What waits under one join key, and where each side's record was read: the record that put
    a side here, or completed the pair, read again after a crash is told from a repeat (`again`)."""

    model_id: str
    partition: int  # the changelog partition it lives on: expiry runs for one partition at a time
    due: datetime  # when it is forgotten, on the clock the concern expires by
    left: L | None = None
    left_from: Position | None = None  # set with `left`
    right: R | None = None
    right_from: Position | None = None  # set with `right`
    paired: bool = False  # met: the side that waited stays, to absorb repeats and give the pair again
    met_at: Position | None = None  # set with `paired`: where the record that completed the pair was read
    # Set by a concern that counts what falls due: the tick that did, read again, counts it again.
    # The entry stays a while (a new due time) to absorb late repeats.
    expired_at: Position | None = None

    def holding(self, at: Position, left: L | None = None, right: R | None = None) -> Entry[L, R]:
        """This entry's key, partition and due time, holding the given side, read at `at`."""
        update = {
            "left": left,
            "left_from": at if left is not None else None,
            "right": right,
            "right_from": at if right is not None else None,
        }
        return self.model_copy(update=update)

    def expired(self, at: Position, keep_until: datetime) -> Entry[L, R]:
        return self.model_copy(update={"expired_at": at, "due": keep_until})


class Met(NamedTuple, Generic[L, R]):
    left: L
    right: R
    right_from: Position
    at: Position  # where the record that completed the pair was read: the pair's place in its stream


class Refusal(NamedTuple, Generic[R]):
    why: Rejected
    right: R
    right_from: Position


class Arrival(NamedTuple, Generic[L, R]):
    entry: Entry[L, R]  # what stays under the key (the same object when nothing changed)
    met: Met[L, R] | None = None  # the pair, when this arrival completes it (or completed it: `again`)
    repeat: bool = False  # this side had come already: the entry does not change
    again: bool = False  # a repeat that is the very record that set a side or completed the pair
    refused: Refusal[R] | None = None  # the right side names another model than its inference

    @property
    def to_queue(self) -> bool:
        """Whether the entry's due time goes into its queue (vigil.due_queue): it was written, or
        the record that wrote it is read again after a crash, and its place in the queue may not
        have reached the changelog."""
        return not self.repeat or self.again


def arrive(
    entry: Entry[L, R] | None, new: Entry[L, R], at: Position, right_name: str, counted_in: str
) -> Arrival[L, R]:
    """`new` holds one side, read at `at`; `entry` is what waited under its key, if anything. A
    right side is judged against its inference's model when they meet: before that, two right
    sides of one key cannot tell which is wrong, and the first one waits."""
    if entry is None:
        return Arrival(new)
    again = at in (entry.left_from, entry.right_from, entry.met_at)
    if entry.expired_at is not None:  # counted as it fell due: what comes late changes nothing
        return Arrival(entry, repeat=True, again=again)
    knows_model = entry.left is not None or entry.paired
    if new.right is not None and knows_model and new.model_id != entry.model_id:
        return Arrival(entry, refused=_refusal(new, entry.model_id, right_name, counted_in))
    if entry.paired:
        # Given again only for the side that completed the pair: one record can bring both sides
        # (the second stage's handovers carry an inference's pair and its review at one place).
        completing = (new.left is not None) == (entry.left is None)
        met = _met(entry, new, at) if at == entry.met_at and completing else None
        return Arrival(entry, met=met, repeat=True, again=again)
    if (entry.left if new.left is not None else entry.right) is not None:
        return Arrival(entry, repeat=True, again=again)
    left, right = (new, entry) if new.left is not None else (entry, new)
    if left.model_id != right.model_id:  # the inference takes the key, to wait for a right one
        return Arrival(left, refused=_refusal(right, left.model_id, right_name, counted_in))
    kept = entry.model_copy(update={"paired": True, "met_at": at, "due": max(entry.due, new.due)})
    return Arrival(kept, met=_met(entry, new, at))


def _met(waited: Entry[L, R], new: Entry[L, R], at: Position) -> Met[L, R]:
    left, right = (new, waited) if new.left is not None else (waited, new)
    assert left.left is not None and right.right is not None and right.right_from is not None
    return Met(left.left, right.right, right.right_from, at)


def _refusal(right: Entry[L, R], inference_model: str, right_name: str, counted_in: str) -> Refusal[R]:
    assert right.right is not None and right.right_from is not None
    why = Rejected(
        f"{right_name} names model {right.model_id!r}, but its inference was made by {inference_model!r}; "
        f"not counted in {counted_in}",
        "model_mismatch",
        "model_id",
    )
    return Refusal(why, right.right, right.right_from)


def takes(through: dict[str, int], at: Position) -> bool:
    """Whether counts that have taken their streams' records up to `through` ("topic/partition" ->
    offset) have yet to take the record read at `at`, marking it taken if so. Counts take each
    record's effects as the record is read, so in the order of its stream: what a record read again
    after a crash adds, they took before the crash if they reached that far."""
    stream = f"{at.topic}/{at.partition}"
    if at.offset <= through.get(stream, -1):
        return False
    through[stream] = at.offset
    return True


# --- pairs parked until their model registers --------------------------------------------------


class ParkedPair(BaseModel, Generic[L, R]):
    left: L
    right: R
    right_from: Position
    at: Position  # the pair's place in its stream (Met.at)
    since: datetime

    def met(self) -> Met[L, R]:
        return Met(self.left, self.right, self.right_from, self.at)


class Parked(BaseModel, Generic[L, R]):
    """The pairs of one model that no registration names yet (on a fresh start, topics are read in
    parallel, so a model's outcomes may come before its registration)."""

    partition: int  # the model's: where its pairs are parked and expired
    pairs: list[ParkedPair[L, R]] = []

    def park(self, met: Met[L, R], now: datetime) -> None:
        """Parks a pair once: the record that completed it may be read again after a crash."""
        if all(pair.at != met.at for pair in self.pairs):
            pair: ParkedPair[L, R] = ParkedPair(
                left=met.left, right=met.right, right_from=met.right_from, at=met.at, since=now
            )
            self.pairs.append(pair)

    def overstayed(self, now: datetime, grace: timedelta) -> list[ParkedPair[L, R]]:
        """Removes and returns the pairs that waited longer than `grace`."""
        gone = [p for p in self.pairs if now - p.since > grace]
        self.pairs = [p for p in self.pairs if now - p.since <= grace]
        return gone


# --- what falls due when ----------------------------------------------------------------------


class DueIndex(Generic[K]):
    """When each key falls due, per lane (a partition, or one model's entries on a partition), so
    that expiry reads only what is due rather than every entry. Not stored: a concern rebuilds a
    partition's lanes from its table (`fill`) the first time it expires there after the partition
    was assigned. Popped keys are candidates: the entry may have moved its due time or gone since,
    which the caller checks against the entry itself."""

    def __init__(self) -> None:
        self._heaps: dict[Lane, list[tuple[datetime, int, K]]] = {}
        self._filled: set[int] = set()
        self._order = 0  # ties broken by insertion, so keys need not be comparable
        self._marks: dict[Position, set[K]] = {}  # the tick that expired them -> keys (Entry.expired_at)

    def add(self, lane: Lane, due: datetime, key: K) -> None:
        self._order += 1
        heapq.heappush(self._heaps.setdefault(lane, []), (due, self._order, key))

    def due(self, lane: Lane, now: datetime) -> list[K]:
        heap = self._heaps.get(lane, [])
        out = []
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out

    def lanes(self, partition: int) -> list[Lane]:
        return [lane for lane in self._heaps if lane[0] == partition]

    def filled(self, partition: int) -> bool:
        return partition in self._filled

    def fill(self, partition: int, entries: Iterable[tuple[int, str | None, datetime, K, Position | None]]) -> None:
        """The table's entries as (partition, lane name, due, key, the tick that expired it if one
        did), read once: `partition` and every partition they name are filled (one scan of the
        table serves all of them); an entry without a lane name is only marked with its tick.
        Partitions filled before are skipped: their lanes are up to date, and a second copy of each
        key would only be popped in vain."""
        before = set(self._filled)
        for on, name, due, key, expired_at in entries:
            if on in before:
                continue
            if name is not None:
                self.add((on, name), due, key)
            if expired_at is not None:
                self._marks.setdefault(expired_at, set()).add(key)
            self._filled.add(on)
        self._filled.add(partition)

    def expired_by(self, tick: Position) -> set[K]:
        """The keys of entries this tick expired before they were restored: read again, it counts
        them again (the counts say whether that is a repeat). Marks of earlier ticks of its
        partition are dropped: ticks are read in order, so those will not come again."""
        found = self._marks.pop(tick, set())
        for at in [at for at in self._marks if at[:2] == tick[:2] and at.offset < tick.offset]:
            del self._marks[at]
        return found

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions taken away by a rebalance: their lanes are rebuilt if they come back."""
        gone = set(partitions)
        self._filled -= gone
        for lane in [lane for lane in self._heaps if lane[0] in gone]:
            del self._heaps[lane]
        for at in [at for at in self._marks if at.partition in gone]:
            del self._marks[at]
