"""A local file that keeps events the emitter could not deliver yet.

Appends are flushed to disk before the emitter lets go of the events; a drain sends them and only
then empties the file. A crash between the two resends some events, which Vigil drops as
duplicates by their event_id: nothing is lost and nothing is doubled.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Spool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "pending.jsonl"
        self.rejected_path = self.directory / "rejected.jsonl"
        self._depth = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Several processes of one model service may share a spool directory. Reentrant: rejecting
        # events while draining appends under the lock the drain holds (a second flock on a new
        # file descriptor would wait for ourselves forever).
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, events: list[dict[str, Any]], path: Path | None = None) -> None:
        with self._locked(), open(path or self.path, "a", encoding="utf-8") as f:
            for event in events:
                f.write(json.dumps(event, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def reject(self, events: list[dict[str, Any]], reasons: list[str]) -> None:
        """Events Vigil refused as invalid: kept for the model team to inspect, never resent."""
        self.append([{"reason": r, "event": e} for e, r in zip(events, reasons, strict=True)], self.rejected_path)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())

    @contextmanager
    def draining(self) -> Iterator[list[dict[str, Any]]]:
        """Yields the pending events; the file is emptied only if the block finishes without error."""
        with self._locked():
            if not self.path.exists():
                yield []
                return
            with open(self.path, encoding="utf-8") as f:
                # A torn last line (crash mid-append) is skipped, not fatal.
                pending = []
                for line in f:
                    try:
                        pending.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
            yield pending
            self.path.unlink()
