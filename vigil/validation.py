"""Decoding raw records into events: the one gate that the API, the worker and the recorder share.

`decode` either returns a valid event or raises `Rejected` with a reason a person can act on:
what was wrong and where (the dotted field path). Nothing a sender can put in a record makes it
raise anything else: not its size, its nesting, its encoding or its timestamps.

Timestamps are judged against the moment the record was sent (`sent_at`: the Kafka record's own
timestamp, or the API's clock), not against the clock of whoever reads it later, so the worker,
the recorder and a replay next year all give the same verdict on the same record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple, get_args

import orjson
from pydantic import AwareDatetime, ValidationError

from vigil.events import EVENT_TYPES, INPUT_EVENTS, SCHEMA_VERSION, TOPIC_OF, DeadLetter, Event, partition_key
from vigil.phi import find_phi

MAX_EVENT_BYTES = 256 * 1024
# The deepest schema nests four levels (InferenceMade.output.class_scores.<label>); anything far
# deeper is an attack or a bug, and refusing it early keeps every recursive walk below it safe.
MAX_DEPTH = 32
# How far a sender's clock may run ahead of the moment its record was sent.
DEFAULT_SKEW = timedelta(minutes=5)


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


def parse(
    obj: Any,
    topic: str | None = None,
    sent_at: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
    accepted: Mapping[str, type[Event]] = EVENT_TYPES,
    bounded: bool = False,
) -> Event:
    """Validate a decoded JSON value as an event of one of the `accepted` types (and, if given,
    check it came on its topic and that none of its times lies more than `skew` after `sent_at`).
    `bounded`: its bytes showed it nests within bounds and holds no NUL (`surely_bounded`)."""
    if not bounded:
        check_depth(obj)
    if not isinstance(obj, dict):
        raise Rejected(f"an event must be a JSON object, got {type(obj).__name__}", "not_an_object")
    event_type = obj.get("event_type")
    if not isinstance(event_type, str) or (cls := accepted.get(event_type)) is None:
        known = ", ".join(sorted(accepted))
        if isinstance(event_type, str) and event_type in EVENT_TYPES:  # one of Vigil's own: the worker states it
            raise Rejected(f"{event_type} is derived by Vigil, not sent; send one of: {known}", "unknown_type",
                           "event_type")  # fmt: skip
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
        event = cls.model_validate(obj)
    except ValidationError as error:
        raise describe(error) from None
    if sent_at is not None and event_type in INPUT_EVENTS:
        check_not_future(event, sent_at, skew)
    return event


def check_depth(obj: Any) -> None:
    """Refuse values nested deeper than MAX_DEPTH, and strings with a NUL character (PostgreSQL's
    text cannot hold one, and a dead letter naming such a key could not be stored either). The walk
    does not recurse: it must be safe on exactly the records it refuses."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise Rejected("a string holds a NUL character (\\u0000), which no event may carry", "schema")
            continue
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise Rejected(f"nested deeper than {MAX_DEPTH} levels; events nest at most a few", "too_deep")
        stack.extend((child, depth + 1) for child in children)


def check_not_future(event: Event, sent_at: datetime, skew: timedelta = DEFAULT_SKEW) -> None:
    """Every time an emitter states (when it happened, was observed, reviewed, known) must have
    passed when it was sent: one event dated years ahead would otherwise carry its stream's clock
    past the present and close every window of its model."""
    latest = sent_at + skew
    for name in _times_of(type(event)):
        value = getattr(event, name)
        if value is not None and value > latest:
            raise Rejected(
                f"{name} {value.isoformat()} lies {_ahead(value - sent_at)} after the record was sent "
                f"({sent_at.isoformat()}); at most {_ahead(skew)} of clock skew is allowed",
                "future_timestamp",
                name,
            )


@cache  # by event type: a fixed set
def _times_of(cls: type[Event]) -> tuple[str, ...]:
    """The fields of an event type that hold a time (looked up once per type: on every record's path)."""
    return tuple(
        name for name, field in cls.model_fields.items()
        if AwareDatetime in (field.annotation, *get_args(field.annotation))
    )  # fmt: skip


def _ahead(gap: timedelta) -> str:
    seconds = gap.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:,.0f} days"
    if seconds >= 7200:
        return f"{seconds / 3600:,.0f} hours"
    return f"{seconds / 60:,.0f} minutes"


def loads(raw: bytes | None, max_bytes: int = MAX_EVENT_BYTES) -> Any:
    """Bytes to a JSON value, or Rejected: too large, not UTF-8 JSON, or nested too deep."""
    if raw is None:
        raise Rejected("empty record (no value)", "not_json")
    if len(raw) > max_bytes:
        raise Rejected(f"record of {len(raw)} bytes exceeds the limit of {max_bytes} bytes", "oversized")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass  # json says why (the reason people read), and decides what orjson is stricter about
    try:
        return json.loads(raw)
    except RecursionError:
        raise Rejected(f"nested deeper than {MAX_DEPTH} levels; events nest at most a few", "too_deep") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Rejected(f"not valid UTF-8 JSON: {error}", "not_json") from None


def decode(
    raw: bytes | None, topic: str | None = None, sent_at: datetime | None = None, skew: timedelta = DEFAULT_SKEW
) -> Event:
    """Bytes from Kafka or HTTP to a valid event, or Rejected."""
    obj = loads(raw)
    assert raw is not None  # refused by loads
    return parse(obj, topic, sent_at, skew, bounded=surely_bounded(raw))


def surely_bounded(raw: bytes) -> bool:
    """What `check_depth` checks, seen in the bytes when it is plain: with no more than MAX_DEPTH
    opening brackets a value cannot nest deeper, and a NUL can only reach a decoded string as the
    escape \\u0000 (JSON refuses raw control characters). Conservative: brackets inside strings
    count too, and an escaped backslash before "u0000" sends the value to the full walk."""
    return raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH and b"\\u0000" not in raw


def canonical_json(event: Event) -> str:
    """The one serialisation that is hashed, stored and sent: sorted keys, no whitespace, UTF-8.
    orjson writes it (measured: more than twice as fast as `json.dumps`, on the recorder's and the
    API's path for every event); what it cannot write (integers beyond 64 bits, lone surrogates),
    `json.dumps` does. Stored bodies are hashed as stored, so the form may change between versions
    (orjson writes 1e-05 as 0.00001) without breaking the chain."""
    value = event.model_dump(mode="json")
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Outgoing(NamedTuple):
    """An event as it goes to Kafka: its (logical) topic, its partition key and its bytes."""

    topic: str
    key: bytes
    value: bytes


def outgoing(event: Event) -> Outgoing:
    """The one way an event is written to Kafka, by the API, the services and the worker alike."""
    return Outgoing(TOPIC_OF[event.event_type], partition_key(event), canonical_json(event).encode())


DEAD_LETTER_NAMESPACE = uuid.UUID("6f1c0de5-5a1e-4c2b-9a57-7d3c1f0e0b11")


def dead_letter(
    rejected: Rejected,
    topic: str,
    partition: int,
    offset: int,
    raw: bytes | None,
    now: datetime,
    agent: str | None = None,
) -> DeadLetter:
    """The dead-letter record for a refused Kafka record.

    Its id is derived from the record's position (and the agent that failed on it, for a record
    refused by one agent only), so a record processed twice (after a crash) yields the same dead
    letter. Bytes refused for carrying PHI are withheld: the dead-letter topic
    must not become a store of identifiers. The digest and position still find the original.
    """
    raw = raw or b""
    withheld = rejected.kind == "phi"
    return DeadLetter(
        dead_letter_id=uuid.uuid5(
            DEAD_LETTER_NAMESPACE, f"{topic}/{partition}/{offset}" + (f"/{agent}" if agent else "")
        ),
        reason=rejected.reason,
        reason_kind=rejected.kind,
        path=rejected.path,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        payload_base64=None if withheld else base64.b64encode(raw).decode(),
        dead_lettered_at=now,
    )
