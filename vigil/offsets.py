"""Each input partition read in order and without gaps.

The worker's counts take a record's effects in the order of its partition (vigil.join.takes), so
a record skipped would be lost, and one handed over after a later one taken for a repeat. Faust
has been seen to skip a record of a partition the worker kept through a rebalance (measured in
the two-worker test: one inference of 1,800 never handed over; faust-streaming issues #216 and
#221 describe this class of gap). `Reading` watches each partition's offsets: records after a gap
are dropped and the partition sought back to the missing one, so they all come again in order.

Faust also commits past such a gap: it counts offsets it never handed over as done (its "gaps",
meant for transaction markers) and acknowledges the records a batch dropped after one. A commit
there, then a crash before the records came again, would lose them for good (seen in the
two-worker test: ten pairs of one model never counted). `committable` holds each commit back to
the first record not yet taken in order."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)  # a topic-partition
# How long a gap may stand, sought back to after every batch, before the worker takes what comes
# whatever its offset (records gone from the log by retention never come). Not a number of seeks:
# records fetched before a seek keep coming for a few batches after it (Faust buffers thousands),
# and in the two-worker test three seeks in 0.6 s were all spent on them, the gap was given up
# before the first seek took effect, and three pairs were lost.
PATIENCE_SECONDS = 30.0


class Reading(Generic[P]):
    def __init__(self) -> None:
        self.expected: dict[P, int] = {}  # the offset each partition should hand over next
        self._since: dict[P, float] = {}  # partitions with a gap -> when it was first seen
        self._dropped: set[P] = set()  # partitions with records dropped since the last `to_seek`
        self._kept: dict[P, int] = {}  # between a revocation and the next assignment

    def admit(self, partition: P, offset: int) -> bool:
        """Whether to take the record; if not, a record before it has not come yet."""
        expected = self.expected.get(partition)
        if expected is None or offset <= expected:  # the first, the next, or one read again
            self.expected[partition] = offset + 1
            self._since.pop(partition, None)
            return True
        self._dropped.add(partition)
        return False

    def committable(self, partition: P, offset: int | None) -> int | None:
        """The offset to commit of what Faust would: no further than the next record to take."""
        expected = self.expected.get(partition)
        if offset is None or expected is None:
            return offset
        return min(offset, expected)

    def to_seek(self, now: float) -> tuple[dict[P, int], list[P]]:
        """After a batch, at `now` (monotonic seconds): where to seek the partitions whose records
        it dropped, and those of them whose gap has stood for PATIENCE_SECONDS (given up on: their
        next record is taken whatever its offset)."""
        where, given_up = {}, []
        for partition in self._dropped:
            since = self._since.setdefault(partition, now)
            if now - since >= PATIENCE_SECONDS:
                given_up.append(partition)
                del self.expected[partition], self._since[partition]
            else:
                where[partition] = self.expected[partition]
        self._dropped.clear()
        return where, given_up

    def revoke(self, partitions: Iterable[P]) -> None:
        """Partitions taken away by a rebalance: those that come back continue where they were."""
        for partition in partitions:
            if partition in self.expected:
                self._kept[partition] = self.expected.pop(partition)
            self._since.pop(partition, None)
            self._dropped.discard(partition)

    def assign(self, partitions: Iterable[P]) -> None:
        """The partitions after a rebalance. One kept through it continues at its offset; one new
        to this worker starts wherever it is handed over from (its committed offset)."""
        for partition in partitions:
            if partition in self._kept:
                self.expected[partition] = self._kept[partition]
        self._kept.clear()
