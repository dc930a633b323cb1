"""When join entries fall due, kept in a table beside the join rather than in memory.

An entry of the outcome join or of the readers' join falls due a fixed delay after it was written,
on the wall clock: the model's horizon for a side waiting for its other one, an hour for a pair
that has met (`vigil.readers.KEEP_MET`) and for an oversight entry counted as it fell due. Within
one partition and one delay, keys therefore fall due in the order they were added, and a queue
per (partition, delay) -- a lane -- holds them: adding writes at the lane's tail, expiry reads
from its head only what is due. The queue lives in a table (a `MutableMapping` of bytes: the
worker's Faust table, a dict in the tests), so the worker's memory does not grow with the entries
that wait when its tables are on disk (RocksDB); `vigil.join.DueIndex`, rebuilt in memory from the
table, stays for the oversight join's review deadlines, which are on each model's event-time
clock and come in any order.

Every key of a lane names its partition: a worker owning the partition reads and writes it, and
its changes go to that partition's changelog. A popped key is a candidate: the entry may have
moved its due time or gone since, which the caller checks against the entry itself (as with
`DueIndex`). Across a crash: a lane's ends are written with every change, so they may be
delivered without some of the items they count; an item missing from its place is passed over.
The records of the lost items are read again (their offsets were not committed), and the caller
adds each again, also when the join sees it as a repeat (`Arrival.again`): a key may then be in a
lane twice, and is popped in vain the second time. A place read whose removal was lost while the
head that passed it was delivered stays in the table, never read again: a crash can leave a few."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from datetime import datetime, timedelta

from pydantic import BaseModel


class Lane(BaseModel):
    head: int = 0  # the first place not yet read
    tail: int = 0  # the next place to add at


class Lanes(BaseModel):
    """One partition's lanes, by their delay in milliseconds."""

    lanes: dict[int, Lane] = {}


class Waiting(BaseModel):
    key: str
    due: datetime


class DueQueue:
    def __init__(self, name: str, table: MutableMapping[bytes, bytes]) -> None:
        self.name = name
        self.table = table
        self._lanes: dict[int, Lanes] = {}  # partition -> its lanes as last written, read once

    def add(self, partition: int, delay: timedelta, due: datetime, key: bytes) -> None:
        """`key` falls due at `due`, which is about `delay` after now: the lane it joins."""
        lanes = self._of(partition)
        lane_id = int(delay / timedelta(milliseconds=1))
        lane = lanes.lanes.setdefault(lane_id, Lane())
        waiting = Waiting(key=key.decode(), due=due)
        self.table[self._key(partition, lane_id, lane.tail)] = waiting.model_dump_json().encode()
        lane.tail += 1
        self.table[self._key(partition)] = lanes.model_dump_json().encode()

    def due(self, partition: int, now: datetime) -> list[bytes]:
        """Removes and returns the keys of `partition` due by `now`, each lane from its head."""
        lanes = self._of(partition)
        found: list[bytes] = []
        moved = False
        for lane_id, lane in lanes.lanes.items():
            while lane.head < lane.tail:
                place = self._key(partition, lane_id, lane.head)
                raw = self.table.get(place)
                if raw is not None:
                    waiting = Waiting.model_validate_json(raw)
                    if waiting.due > now:
                        break
                    found.append(waiting.key.encode())
                    del self.table[place]
                lane.head += 1
                moved = True
        if moved:
            self.table[self._key(partition)] = lanes.model_dump_json().encode()
        return found

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions taken away by a rebalance: their lanes are read from the table if they come back."""
        for partition in partitions:
            self._lanes.pop(partition, None)

    def _of(self, partition: int) -> Lanes:
        if partition not in self._lanes:
            raw = self.table.get(self._key(partition))
            self._lanes[partition] = Lanes() if raw is None else Lanes.model_validate_json(raw)
        return self._lanes[partition]

    def _key(self, partition: int, *place: int) -> bytes:
        return "\x1f".join(["due", self.name, str(partition), *map(str, place)]).encode()
