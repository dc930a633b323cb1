"""The emitter a model service holds: `emit` returns at once; delivery happens in batches.

Undeliverable batches go to a local spool and are sent again on the next flush, so a Vigil or
Kafka outage costs a model service nothing but disk space.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from vigil_sdk.spool import Spool
from vigil_sdk.transports import HttpTransport, InvalidEvents, KafkaTransport, Transport, Unavailable

__all__ = ["AsyncEmitter", "Emitter", "InvalidEvents"]

log = logging.getLogger("vigil_sdk")
T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class AsyncEmitter:
    """asyncio emitter. Give it `api_url` and `token` (HTTP) or `kafka` (bootstrap servers)."""

    def __init__(
        self,
        *,
        api_url: str | None = None,
        token: str | None = None,
        kafka: str | None = None,
        topic_prefix: str = "",
        spool_dir: str | Path = ".vigil-spool",
        batch_size: int = 200,
        flush_interval: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        if (api_url is None) == (kafka is None):
            raise ValueError("give exactly one of api_url (with token) or kafka")
        if api_url is not None and not token:
            raise ValueError("api_url needs a token")
        self.transport: Transport = (
            HttpTransport(api_url, token or "", timeout)
            if api_url
            else KafkaTransport(kafka or "", timeout, topic_prefix)
        )
        self.spool = Spool(spool_dir)
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.buffer: list[dict[str, Any]] = []
        self.delivered = 0
        self.rejected = 0
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncEmitter:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def emit(self, event_type: str, **fields: Any) -> str:
        """Queue one event; returns its event_id. Fields follow Vigil's event schema v1."""
        event = {"event_type": event_type, "schema_version": 1, **fields}
        event.setdefault("event_id", str(uuid.uuid4()))
        event.setdefault("occurred_at", _now())
        self.buffer.append(event)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        if len(self.buffer) >= self.batch_size:
            await self.flush()
        return str(event["event_id"])

    async def inference(self, **fields: Any) -> str:
        return await self.emit("InferenceMade", **fields)

    async def outcome(self, **fields: Any) -> str:
        return await self.emit("OutcomeObserved", **fields)

    async def review(self, **fields: Any) -> str:
        return await self.emit("ReviewRecorded", **fields)

    async def incident(self, **fields: Any) -> str:
        return await self.emit("IncidentReported", **fields)

    @property
    def pending(self) -> int:
        """Events not yet delivered: buffered in memory or waiting in the spool."""
        return len(self.buffer) + len(self.spool)

    async def flush(self) -> bool:
        """Try to deliver everything; True when nothing is left waiting."""
        async with self._lock:
            batch, self.buffer = self.buffer, []
            if batch:
                self.spool.append(batch)
            with contextlib.suppress(Unavailable):
                with self.spool.draining() as waiting:
                    if waiting:
                        await self._deliver(waiting)
                return True
            return False

    async def _deliver(self, events: list[dict[str, Any]]) -> None:
        try:
            await self.transport.send(events)
            self.delivered += len(events)
        except InvalidEvents as invalid:
            # Keep the valid ones going; park the refused ones with their reasons.
            bad = {p["index"]: p["reason"] for p in invalid.problems if p.get("index") is not None}
            self.spool.reject([events[i] for i in bad], list(bad.values()))
            self.rejected += len(bad)
            log.warning("vigil: %d event(s) refused as invalid, kept in %s", len(bad), self.spool.rejected_path)
            good = [e for i, e in enumerate(events) if i not in bad]
            if good and len(good) < len(events):
                await self._deliver(good)
        except Unavailable as error:
            log.warning("vigil unreachable (%s); %d event(s) kept in %s", error, len(events), self.spool.path)
            raise

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.flush()
        await self.transport.close()


class Emitter:
    """The same emitter for synchronous code: an event loop in a background thread does the I/O."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vigil-emitter", daemon=True)
        self._thread.start()
        self._async: AsyncEmitter = self._run(self._create(options))

    @staticmethod
    async def _create(options: dict[str, Any]) -> AsyncEmitter:
        return AsyncEmitter(**options)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def emit(self, event_type: str, **fields: Any) -> str:
        return self._run(self._async.emit(event_type, **fields))

    def inference(self, **fields: Any) -> str:
        return self.emit("InferenceMade", **fields)

    def outcome(self, **fields: Any) -> str:
        return self.emit("OutcomeObserved", **fields)

    def review(self, **fields: Any) -> str:
        return self.emit("ReviewRecorded", **fields)

    def incident(self, **fields: Any) -> str:
        return self.emit("IncidentReported", **fields)

    def flush(self) -> bool:
        return self._run(self._async.flush())

    @property
    def pending(self) -> int:
        return self._async.pending

    @property
    def delivered(self) -> int:
        return self._async.delivered

    @property
    def rejected(self) -> int:
        return self._async.rejected

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._async.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
