"""JSON Schema of every event type, generated from vigil/events.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vigil.events import EVENT_TYPES, DeadLetter
from vigil.psur import Psur
from vigil.reports.builders import Fda3500aReport, MirReport


def json_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    models: dict[str, type[BaseModel]] = {
        **EVENT_TYPES,
        "DeadLetter": DeadLetter,
        "MirReport": MirReport,
        "Fda3500aReport": Fda3500aReport,
        "Psur": Psur,
    }
    for name, cls in models.items():
        schema = cls.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://vigil.dev/schemas/{name}.v1.json"
        schemas[name] = schema
    return schemas
