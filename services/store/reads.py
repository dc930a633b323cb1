"""The read side of the event store: every query of its tables outside the recorder's writes.

Each function takes the connection it reads on (the unit of work: a caller that needs several reads
to agree, or a lock held across them, passes one connection to all of them) and answers typed
values, never rows. Events are parsed by the core's own models.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import Field
from sqlalchemy import BigInteger, Float, Select, cast, func, select, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from services.store.tables import NAMES_AN_INCIDENT, dead_letters, events, incidents, payload
from vigil.events import (
    Clock,
    Event,
    GuidelineChanged,
    InferenceMade,
    ModelRegistered,
    ModelRetired,
    ModelVersionReleased,
    OutcomeObserved,
)
from vigil.incidents import Incident, IncidentSummary
from vigil.registry import ModelRecord, fold_registry
from vigil.validation import parse

E = TypeVar("E", bound=Event)


def type_name(kind: type[Event]) -> str:
    return str(kind.model_fields["event_type"].default)


# --- events ------------------------------------------------------------------------------------


async def of_type(
    conn: AsyncConnection,
    *kinds: type[E],
    model_id: str | None = None,
    model_ids: Iterable[str] | None = None,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    recorded_since: datetime | None = None,
    where: dict[str, str] | None = None,
    recorded_by: datetime | None = None,
    newest: int | None = None,
) -> list[E]:
    """Events of these types in the order they were recorded: of one model (or several), one
    version, occurred in [since, until), recorded since a moment (and by another: what Vigil knew
    then), with payload fields equal to `where`'s values; only the `newest` so many, if given."""
    by_name = {type_name(kind): kind for kind in kinds}
    query = select(events.c.event_type, events.c.body).where(events.c.event_type.in_(by_name))
    if model_id is not None:
        query = query.where(events.c.model_id == model_id)
    if model_ids is not None:
        query = query.where(events.c.model_id.in_(list(model_ids)))
    if version is not None:
        query = query.where(events.c.model_version == version)
    if since is not None:
        query = query.where(events.c.occurred_at >= since)
    if until is not None:
        query = query.where(events.c.occurred_at < until)
    if recorded_since is not None:
        query = query.where(events.c.recorded_at >= recorded_since)
    if recorded_by is not None:
        query = query.where(events.c.recorded_at <= recorded_by)
    for field, value in (where or {}).items():
        query = query.where(payload()[field].astext == value)
    if newest is not None:
        rows = list(await conn.execute(query.order_by(events.c.seq.desc()).limit(newest)))[::-1]
    else:
        rows = list(await conn.execute(query.order_by(events.c.seq)))
    return [by_name[event_type].model_validate_json(body) for event_type, body in rows]


async def registered(conn: AsyncConnection) -> dict[str, ModelRegistered]:
    """Every registered model, by its latest registration."""
    return {m.model_id: m for m in await of_type(conn, ModelRegistered)}


async def registry(
    conn: AsyncConnection, model_id: str | None = None, as_of: datetime | None = None
) -> dict[str, ModelRecord]:
    """Every model's record (or one model's) from its registry events recorded by `as_of`."""
    kinds = (ModelRegistered, ModelVersionReleased, ModelRetired)
    return fold_registry(await of_type(conn, *kinds, model_id=model_id, recorded_by=as_of))


async def hold_model(conn: AsyncConnection, model_id: str) -> None:
    """Holds a model until the transaction ends: one registry command decides on it at a time."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:id))"), {"id": f"model/{model_id}"})


async def registration(conn: AsyncConnection, model_id: str) -> ModelRegistered | None:
    found = await of_type(conn, ModelRegistered, model_id=model_id)
    return found[-1] if found else None


async def guideline(conn: AsyncConnection, guideline_id: str) -> GuidelineChanged | None:
    """The latest change of a guideline."""
    found = await of_type(conn, GuidelineChanged, where={"guideline_id": guideline_id})
    return found[-1] if found else None


async def incident_events(conn: AsyncConnection, incident_id: uuid.UUID, as_of: datetime | None) -> list[Event]:
    """An incident's events, or those Vigil had recorded by `as_of` ("what did we know, and when")."""
    query = (
        select(events.c.body)
        .where(payload()["incident_id"].astext == str(incident_id))
        .where(NAMES_AN_INCIDENT)
        .order_by(events.c.seq)
    )
    if as_of is not None:
        query = query.where(events.c.recorded_at <= as_of)
    return [parse(json.loads(body)) for (body,) in await conn.execute(query)]


def _outcome_of_inference(outcome: Any) -> Any:
    return cast(payload(outcome)["inference_id"].astext, UUID(as_uuid=False))


async def outcomes_joined(
    conn: AsyncConnection,
    model_id: str,
    version: str | None,
    since: datetime | None,
    recorded_by: datetime | None = None,
) -> list[tuple[InferenceMade, OutcomeObserved]]:
    """A model's inferences with their recorded outcomes, in the order the outcomes were recorded
    (those recorded by `recorded_by`, if given)."""
    inference, outcome = events.alias("inference"), events.alias("outcome")
    query = (
        select(inference.c.body, outcome.c.body)
        .join(outcome, _outcome_of_inference(outcome) == inference.c.event_id)
        .where(outcome.c.event_type == "OutcomeObserved", inference.c.event_type == "InferenceMade")
        .where(inference.c.model_id == model_id)
        .order_by(outcome.c.seq)
    )
    if version is not None:
        query = query.where(inference.c.model_version == version)
    if since is not None:
        query = query.where(inference.c.occurred_at >= since)
    if recorded_by is not None:
        query = query.where(inference.c.recorded_at <= recorded_by, outcome.c.recorded_at <= recorded_by)
    return [
        (InferenceMade.model_validate_json(i), OutcomeObserved.model_validate_json(o))
        for i, o in await conn.execute(query)
    ]


async def outcomes_without_inference(conn: AsyncConnection, model_id: str) -> int:
    inference, outcome = events.alias("inference"), events.alias("outcome")
    exists = select(inference.c.seq).where(
        inference.c.event_type == "InferenceMade", inference.c.event_id == _outcome_of_inference(outcome)
    )
    query = (
        select(func.count())
        .select_from(outcome)
        .where(outcome.c.event_type == "OutcomeObserved", outcome.c.model_id == model_id, ~exists.exists())
    )
    return int((await conn.execute(query)).scalar_one())


async def followed_up(conn: AsyncConnection, model_ids: Iterable[str], since: datetime) -> set[uuid.UUID]:
    """The inferences of these models with an outcome recorded since `since`."""
    query = select(cast(payload()["inference_id"].astext, UUID(as_uuid=True))).where(
        events.c.event_type == "OutcomeObserved", events.c.model_id.in_(list(model_ids)), events.c.occurred_at >= since
    )
    return set((await conn.execute(query)).scalars())


async def recorded_count(conn: AsyncConnection, event_ids: Sequence[str]) -> int:
    """How many of these events the store holds (asked 5,000 at a time: one statement's bound
    parameters are limited)."""
    total = 0
    for start in range(0, len(event_ids), 5000):
        chunk = list(event_ids[start : start + 5000])
        total += (
            await conn.execute(select(func.count()).select_from(events).where(events.c.event_id.in_(chunk)))
        ).scalar_one()
    return total


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str


async def head(conn: AsyncConnection) -> ChainHead | None:
    """The last event of the hash chain: what an export anchors."""
    row = (await conn.execute(select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1))).first()
    return ChainHead(row.seq, row.hash) if row else None


async def topics_since(conn: AsyncConnection, since: datetime) -> list[tuple[str, int]]:
    """Events recorded since `since`, per source topic."""
    query = (
        select(events.c.topic, func.count())
        .where(events.c.recorded_at >= since)
        .group_by(events.c.topic)
        .order_by(events.c.topic)
    )
    return [(topic, int(n)) for topic, n in await conn.execute(query)]


async def models_changed_after(conn: AsyncConnection, seq: int) -> tuple[set[str], int]:
    """The models whose inferences, outcomes or calibration references were recorded after store
    position `seq`, and the newest position: what an estimator that has seen up to `seq` must look
    at again."""
    query = select(events.c.model_id, func.max(events.c.seq)).where(
        events.c.seq > seq,
        events.c.event_type.in_(["InferenceMade", "OutcomeObserved", "CalibrationReferenceSet"]),
    )
    rows = list(await conn.execute(query.group_by(events.c.model_id)))
    return {m for m, _ in rows if m}, max((int(n) for _, n in rows), default=seq)


# --- the incident projection -------------------------------------------------------------------


class InboxEntry(IncidentSummary):
    last_seq: int = Field(description="the store position of the last event folded into the incident")
    open_clocks: list[Clock] = Field(default_factory=list, description="reporting clocks still running")


def _entries(rows: Iterable[Any]) -> list[InboxEntry]:
    return [
        InboxEntry.model_validate(
            {k: v for k, v in r._mapping.items() if k != "state"}
            | {"open_clocks": Incident.model_validate(r.state).open_clocks()}
        )
        for r in rows
    ]


async def inbox(
    conn: AsyncConnection, status: str | None = None, model_id: str | None = None, regime: str | None = None
) -> list[InboxEntry]:
    """Incidents, the most urgent first; of one status, model or reporting regime."""
    query = select(incidents).order_by(incidents.c.next_due_at.nulls_last(), incidents.c.aware_at)
    if status:
        query = query.where(incidents.c.status == status)
    if model_id:
        query = query.where(incidents.c.model_id == model_id)
    if regime:
        query = query.where(incidents.c.state["clocks"].contains([{"regime": regime}]))
    rows = await conn.execute(query)
    return _entries(rows)


async def awareness_of(
    conn: AsyncConnection, model_id: str, harms: Iterable[str], excluding: Iterable[str]
) -> list[datetime]:
    """When Vigil became aware of each incident of a model with one of `harms`, statuses excluded."""
    query = (
        select(incidents.c.aware_at)
        .where(incidents.c.model_id == model_id)
        .where(incidents.c.harm.in_(list(harms)))
        .where(incidents.c.status.not_in(list(excluding)))
    )
    return list((await conn.execute(query)).scalars())


async def hold_incident(conn: AsyncConnection, incident_id: uuid.UUID) -> None:
    """Holds an incident until the transaction ends: one command decides on it at a time."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:id))"), {"id": str(incident_id)})


async def candidates_naming(conn: AsyncConnection, inference_id: str) -> list[InboxEntry]:
    """Incident candidates raised about an inference."""
    query = (
        select(incidents)
        .where(incidents.c.source == "candidate")
        .where(incidents.c.state["inference_ids"].contains([inference_id]))
    )
    rows = await conn.execute(query)
    return _entries(rows)


# --- dead letters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDeadLetter:
    reason_kind: str
    reason: str
    path: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    payload: bytes | None
    dead_lettered_at: datetime


async def dead_letters_of(
    conn: AsyncConnection, kinds: Iterable[str] | None = None, since: datetime | None = None
) -> list[StoredDeadLetter]:
    """Dead letters (of these reason kinds, since a moment) in the order of their source offsets."""
    query = select(*(dead_letters.c[f] for f in StoredDeadLetter.__dataclass_fields__))
    if kinds is not None:
        query = query.where(dead_letters.c.reason_kind.in_(list(kinds)))
    if since is not None:
        query = query.where(dead_letters.c.dead_lettered_at >= since)
    rows = await conn.execute(query.order_by(dead_letters.c.source_offset))
    return [StoredDeadLetter(**r._mapping) for r in rows]


# --- a period, for the export ------------------------------------------------------------------


@dataclass(frozen=True)
class ChainEntry:
    seq: int
    recorded_at: datetime
    prev_hash: str
    hash: str
    body: str


@dataclass(frozen=True)
class Usage:
    """A model's inferences in a period and the resources they reported."""

    model_id: str
    inferences: int
    energy_reported: int
    energy_wh: float
    tokens_in: int
    tokens_out: int


class InPeriod:
    """What the store holds about the events that occurred in [start, end)."""

    def __init__(self, conn: AsyncConnection, start: datetime, end: datetime) -> None:
        self.conn, self.start, self.end = conn, start, end
        self.within = (events.c.occurred_at >= start) & (events.c.occurred_at < end)

    async def count(self) -> int:
        return int((await self.conn.execute(select(func.count()).select_from(events).where(self.within))).scalar_one())

    async def chain(self) -> AsyncIterator[ChainEntry]:
        """The period's events with their links in the hash chain, in store order (streamed)."""
        columns = (events.c.seq, events.c.recorded_at, events.c.prev_hash, events.c.hash, events.c.body)
        result = await self.conn.stream(select(*columns).where(self.within).order_by(events.c.seq))
        async for row in result:
            yield ChainEntry(**row._mapping)

    async def bodies(self, event_types: Iterable[str]) -> list[dict[str, Any]]:
        query = select(events.c.body).where(self.within, events.c.event_type.in_(list(event_types)))
        return [json.loads(b) for b in (await self.conn.execute(query.order_by(events.c.seq))).scalars()]

    async def types_by_model(self) -> list[tuple[str | None, str]]:
        query = select(events.c.model_id, events.c.event_type).where(self.within)
        return [(model_id, event_type) for model_id, event_type in await self.conn.execute(query)]

    async def types_of(self, model_id: str) -> dict[str, int]:
        """One model's events of the period, counted by type in the database."""
        query = (
            select(events.c.event_type, func.count())
            .where(self.within, events.c.model_id == model_id)
            .group_by(events.c.event_type)
        )
        return {str(kind): int(n) for kind, n in await self.conn.execute(query)}

    async def incidents(self) -> list[InboxEntry]:
        """The incidents Vigil became aware of in the period."""
        query = (
            select(incidents)
            .where((incidents.c.aware_at >= self.start) & (incidents.c.aware_at < self.end))
            .order_by(incidents.c.aware_at)
        )
        rows = await self.conn.execute(query)
        return _entries(rows)

    async def usage(self, version: str | None = None, model_id: str | None = None) -> list[Usage]:
        """Per model (or one), its inferences of the period (of one version, if given) and their resources."""
        resources = payload()["resources"]
        energy = resources["energy_wh"].astext.cast(Float)
        query: Select[Any] = (
            select(
                events.c.model_id, func.count(), func.count(energy), func.coalesce(func.sum(energy), 0.0),
                func.coalesce(func.sum(resources["tokens_in"].astext.cast(BigInteger)), 0),
                func.coalesce(func.sum(resources["tokens_out"].astext.cast(BigInteger)), 0),
            )
            .where(self.within, events.c.event_type == "InferenceMade")
            .group_by(events.c.model_id)
            .order_by(events.c.model_id)
        )  # fmt: skip
        if model_id is not None:
            query = query.where(events.c.model_id == model_id)
        if version is not None:
            query = query.where(events.c.model_version == version)
        rows = await self.conn.execute(query)  # PostgreSQL sums bigints as numeric
        return [Usage(m, int(n), int(e), float(wh), int(ti), int(to)) for m, n, e, wh, ti, to in rows]

    async def inference_mix(self, model_id: str) -> tuple[dict[str, int], dict[str, int], dict[str, dict[str, int]]]:
        """A model's inferences of the period by deployment, by country, and by each subgroup value."""
        made = self.within & (events.c.event_type == "InferenceMade") & (events.c.model_id == model_id)
        out: list[dict[str, int]] = []
        for field in ("deployment", "country"):
            value = func.coalesce(payload()[field].astext, "unknown")
            rows = await self.conn.execute(select(value, func.count()).where(made).group_by(value).order_by(value))
            out.append({str(v): int(n) for v, n in rows})
        pairs = func.jsonb_each_text(payload()["subgroup"]).table_valued("key", "value").alias("pair")
        query = (
            select(pairs.c.key, pairs.c.value, func.count())
            .select_from(events.join(pairs, text("true")))
            .where(made)
            .group_by(pairs.c.key, pairs.c.value)
            .order_by(pairs.c.key, pairs.c.value)
        )
        mix: dict[str, dict[str, int]] = {}
        for key, value, n in await self.conn.execute(query):
            mix.setdefault(str(key), {})[str(value)] = int(n)
        return out[0], out[1], mix

    async def dead_letters(self) -> list[tuple[str, int]]:
        """Dead letters per reason kind, of the period (by when they were dead-lettered)."""
        query = (
            select(dead_letters.c.reason_kind, func.count())
            .where((dead_letters.c.dead_lettered_at >= self.start) & (dead_letters.c.dead_lettered_at < self.end))
            .group_by(dead_letters.c.reason_kind)
        )
        return [(kind, int(n)) for kind, n in await self.conn.execute(query)]
