"""What reports say about a model: taken from its ModelRegistered and ModelVersionReleased events."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from vigil.events import Event, ModelRegistered, ModelVersionReleased, Record


class ModelCard(Record):
    model_id: str
    name: str = "unknown (no ModelRegistered event)"
    manufacturer: str = "unknown"
    risk_class: str = "unknown"
    intended_use: str = ""
    version: str
    released_at: str | None = None
    limitations: list[str] = Field(default_factory=list)


def model_card(model_id: str, version: str, events: Iterable[Event]) -> ModelCard:
    card = ModelCard(model_id=model_id, version=version)
    for event in events:
        if isinstance(event, ModelRegistered) and event.model_id == model_id:
            card = card.model_copy(
                update={
                    "name": event.name,
                    "manufacturer": event.manufacturer,
                    "risk_class": event.risk_class,
                    "intended_use": event.intended_use,
                }
            )
        elif isinstance(event, ModelVersionReleased) and (event.model_id, event.model_version) == (model_id, version):
            card = card.model_copy(
                update={"released_at": event.released_at.isoformat(), "limitations": event.limitations}
            )
    return card
