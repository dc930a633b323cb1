"""When a worker has stopped making progress: the rule its watchdog restarts it by.

A worker can stay alive and do nothing: once, after a broker restart, aiokafka's consumer looped
on metadata refreshes and never rejoined its group, while every other process recovered. Kafka
itself shows it: the group's committed offsets stand still while records wait behind them. The
watchdog (`services/worker_watchdog.py`) looks at the group from outside, as an operator would
with `kafka-consumer-groups --describe`, and hands what it sees to `StallWatch.observe`.

A group is stalled when, for `limit` seconds on end, records wait behind its committed offsets and
none of those offsets moves. Three things are not a stall: an idle group (nothing waits), a worker
that has not committed anything since it started (it may be restoring its tables from their
changelogs, which can take long), and a moment the broker could not be asked (`unknown`: the clock
starts again once it answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Partition = tuple[str, int]


@dataclass
class StallWatch:
    limit: float  # seconds without progress while behind
    armed: bool = False  # the worker has committed since it started
    committed: dict[Partition, int] = field(default_factory=dict)
    stuck_since: float | None = None

    def observe(self, committed: Mapping[Partition, int], ends: Mapping[Partition, int], now: float) -> float | None:
        """Seconds the group has been stalled, once that reaches the limit; else None."""
        moved = bool(self.committed) and any(self.committed.get(p) != o for p, o in committed.items())
        first = not self.committed
        self.committed = dict(committed)
        if moved:
            self.armed = True
        behind = any(end > committed.get(p, 0) for p, end in ends.items())
        if first or moved or not behind or not self.armed:
            self.stuck_since = None
            return None
        if self.stuck_since is None:
            self.stuck_since = now
        waited = now - self.stuck_since
        return waited if waited >= self.limit else None

    def unknown(self) -> None:
        """The broker did not answer: whatever was standing still may not be any more."""
        self.stuck_since = None

    def restarted(self) -> None:
        """A new worker process: it must commit once before it can be called stalled."""
        self.armed, self.committed, self.stuck_since = False, {}, None

    def lag(self, ends: Mapping[Partition, int]) -> int:
        return sum(max(0, end - self.committed.get(p, 0)) for p, end in ends.items())
