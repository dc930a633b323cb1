"""Decoding raw records into events: the one gate that the API, the worker and the recorder share.

`decode` either returns a valid event or raises `Rejected` with a reason a person can act on:
what was wrong and where (the dotted field path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from vigil.events import EVENT_TYPES, SCHEMA_VERSION, TOPIC_OF, DeadLetter, Event
from vigil.phi import find_phi

MAX_EVENT_BYTES = 256 * 1024


@dataclass
class Rejected(Exception):
    reason: str
    kind: str
    path: str | None = None

    def __str__(self) -> str:
        return self.reason


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(error: ValidationError) -> Rejected:
    """The first schema error as a Rejected; the rest are listed in the reason."""
    errors = error.errors(include_url=False)
    parts = [f"{_path(e['loc'])}: {e['msg']}" for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return Rejected("schema: " + "; ".join(parts) + more, "schema", _path(errors[0]["loc"]))


def parse(obj: Any, topic: str | None = None) -> Event:
    """Validate a decoded JSON value as an event (and, if given, check it came on its topic)."""
    if not isinstance(obj, dict):
        raise Rejected(f"an event must be a JSON object, got {type(obj).__name__}", "not_an_object")
    event_type = obj.get("event_type")
    cls = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        known = ", ".join(sorted(EVENT_TYPES))
        raise Rejected(f"unknown event_type {event_type!r}; known: {known}", "unknown_type", "event_type")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise Rejected(
            f"unsupported schema_version {version!r} for {event_type}; this Vigil reads version {SCHEMA_VERSION}",
            "unsupported_version",
            "schema_version",
        )
    if topic is not None and TOPIC_OF[event_type] != topic:
        raise Rejected(
            f"{event_type} belongs on topic {TOPIC_OF[event_type]}, not {topic}", "wrong_topic", "event_type"
        )
    finding = find_phi(obj)
    if finding:
        raise Rejected(finding.reason, "phi", finding.path)
    try:
        return cls.model_validate(obj)
    except ValidationError as error:
        raise describe(error) from None


def decode(raw: bytes | None, topic: str | None = None) -> Event:
    """Bytes from Kafka or HTTP to a valid event, or Rejected."""
    if raw is None:
        raise Rejected("empty record (no value)", "not_json")
    if len(raw) > MAX_EVENT_BYTES:
        raise Rejected(f"record of {len(raw)} bytes exceeds the limit of {MAX_EVENT_BYTES} bytes", "oversized")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Rejected(f"not valid UTF-8 JSON: {error}", "not_json") from None
    return parse(obj, topic)


def canonical_json(event: Event) -> str:
    """The one serialisation that is hashed, stored and sent: sorted keys, no whitespace."""
    return json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


DEAD_LETTER_NAMESPACE = uuid.UUID("6f1c0de5-5a1e-4c2b-9a57-7d3c1f0e0b11")


def dead_letter(
    rejected: Rejected, topic: str, partition: int, offset: int, raw: bytes | None, now: datetime
) -> DeadLetter:
    """The dead-letter record for a refused Kafka record.

    Its id is derived from the record's position, so a record processed twice (after a crash)
    yields the same dead letter. Bytes refused for carrying PHI are withheld: the dead-letter topic
    must not become a store of identifiers. The digest and position still find the original.
    """
    raw = raw or b""
    withheld = rejected.kind == "phi"
    return DeadLetter(
        dead_letter_id=uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{topic}/{partition}/{offset}"),
        reason=rejected.reason,
        reason_kind=rejected.kind,  # type: ignore[arg-type]
        path=rejected.path,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        payload_base64=None if withheld else base64.b64encode(raw).decode(),
        dead_lettered_at=now,
    )
