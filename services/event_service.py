"""What the API's and the CLI's services share: publish events through Kafka like every emitter,
and wait until the recorder has stored them, so that the caller reads its own write."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store import reads
from vigil.events import Event
from vigil.incidents import InvalidInput
from vigil.validation import outgoing
from vigil_runtime.settings import Settings


class NotYetRecorded(Exception):
    """The events are in Kafka, but the recorder has not stored them in time."""


class EventService:
    def __init__(self, settings: Settings, engine: AsyncEngine, producer: AIOKafkaProducer, wait: float = 15) -> None:
        self.settings, self.engine, self.producer, self.wait = settings, engine, producer, wait

    async def check_registered(self, model_id: str) -> None:
        async with self.engine.connect() as conn:
            registered = await reads.registered(conn)
        if model_id not in registered:
            known = ", ".join(sorted(registered)) or "none yet"
            raise InvalidInput(f"unknown model {model_id!r}; registered models: {known}")

    async def _publish(self, new: list[Event]) -> None:
        for event in new:
            record = outgoing(event)
            await self.producer.send_and_wait(self.settings.topic(record.topic), record.value, key=record.key)

    async def _publish_and_wait(self, new: list[Event]) -> None:
        await self._publish(new)
        ids = [str(e.event_id) for e in new]
        deadline = time.monotonic() + self.wait
        async with self.engine.connect() as reader:
            while True:
                if await reads.recorded_count(reader, ids) == len(ids):
                    return
                if time.monotonic() > deadline:
                    raise NotYetRecorded(
                        f"{len(ids)} event(s) are in Kafka but not yet recorded after {self.wait:.0f} s; "
                        "read them again shortly"
                    )
                await asyncio.sleep(0.1)
                await reader.rollback()
