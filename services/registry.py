"""Model registry commands and queries over the event store. The API and the CLI both use this.

A command holds its model (an advisory lock) while it folds the model's registry events, checks
the new one against them (vigil.registry) and publishes it through Kafka like every other event,
then waits until the recorder has stored it, so the caller reads its own write.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.event_service import EventService
from services.store import reads
from vigil.events import ModelRegistered, ModelRetired, ModelVersionReleased
from vigil.registry import (
    ModelRecord,
    UnknownModel,
    check_registration,
    check_release,
    check_retirement,
)


class RegistryService(EventService):
    async def models(self, as_of: datetime | None = None) -> list[ModelRecord]:
        async with self.engine.connect() as conn:
            return sorted((await reads.registry(conn, as_of=as_of)).values(), key=lambda m: m.model_id)

    async def model(self, model_id: str, as_of: datetime | None = None) -> ModelRecord:
        async with self.engine.connect() as conn:
            found = (await reads.registry(conn, model_id, as_of)).get(model_id)
        if found is None:
            when = f" as of {as_of.isoformat()}" if as_of else ""
            raise UnknownModel(f"no model {model_id!r} is registered{when}")
        return found

    async def register(self, event: ModelRegistered) -> ModelRecord:
        return await self._decide(event, lambda known: check_registration(event, known))

    async def release(self, event: ModelVersionReleased) -> ModelRecord:
        return await self._decide(event, lambda known: check_release(event, known))

    async def retire(self, event: ModelRetired, now: datetime) -> ModelRecord:
        return await self._decide(event, lambda known: check_retirement(event, known, now))

    async def _decide(
        self, event: ModelRegistered | ModelVersionReleased | ModelRetired, check: Callable[[ModelRecord | None], None]
    ) -> ModelRecord:
        async with self.engine.begin() as conn:
            await reads.hold_model(conn, event.model_id)
            check((await reads.registry(conn, event.model_id)).get(event.model_id))
            await self._publish_and_wait([event])
        return await self.model(event.model_id)
