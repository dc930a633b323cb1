"""The event store's hash chain: each row's hash covers the previous hash and the canonical event.

Altering a stored event changes its hash; deleting or inserting a row breaks the sequence or the
link to the previous hash. `first_break` walks rows in order and names the first row where the
chain does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64


def link(prev_hash: str, canonical_event: str) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_event.encode()).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    seq: int
    event_id: str
    canonical_event: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_id: str | None
    problem: str

    def __str__(self) -> str:
        where = f"row seq={self.seq}" + (f" (event_id {self.event_id})" if self.event_id else "")
        return f"{where}: {self.problem}"


@dataclass
class ChainWalk:
    """Checks rows one at a time, in sequence order, so a store of any size is verified in constant memory."""

    expected_seq: int = 1
    expected_prev: str = GENESIS

    def check(self, row: ChainRow) -> ChainBreak | None:
        if row.seq != self.expected_seq:
            if row.seq > self.expected_seq:
                return ChainBreak(
                    self.expected_seq, None, f"rows {self.expected_seq}..{row.seq - 1} are missing (deleted)"
                )
            return ChainBreak(
                row.seq, row.event_id, f"sequence number repeats or goes back (expected {self.expected_seq})"
            )
        if row.prev_hash != self.expected_prev:
            return ChainBreak(
                row.seq, row.event_id, "prev_hash does not match the previous row (row inserted or replaced)"
            )
        if link(row.prev_hash, row.canonical_event) != row.hash:
            return ChainBreak(row.seq, row.event_id, "stored event does not match its hash (row altered)")
        self.expected_seq, self.expected_prev = row.seq + 1, row.hash
        return None


def first_break(rows: Iterable[ChainRow]) -> ChainBreak | None:
    walk = ChainWalk()
    for row in rows:
        if problem := walk.check(row):
            return problem
    return None
