"""The event store's tables as SQLAlchemy Core objects, for queries. Migrations create them."""

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    cast,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("model_id", Text),
    Column("model_version", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
)


def payload(table: FromClause = events) -> ColumnElement[Any]:
    """An event's fields for queries: its body read as JSONB (the store keeps each event once, as
    hashed). Written so that the field indexes' expression, `(body::jsonb)->>'...'`, matches it."""
    return cast(table.c.body, JSONB)


# Names an incident: the predicate of the index `events_by_incident`, which a query repeats word
# for word so that PostgreSQL uses it (the canonical body writes a key as `"incident_id":`).
NAMES_AN_INCIDENT = text("""events.body LIKE '%"incident_id":%'""")

# Tracking records: the next Kafka offset to read, written in the same transaction as the rows.
consumer_positions = Table(
    "consumer_positions",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("dead_letter_id", UUID(as_uuid=False), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("reason_kind", Text, nullable=False),
    Column("path", Text),
    Column("source_topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("payload_sha256", Text, nullable=False),
    Column("payload", LargeBinary),
    Column("dead_lettered_at", DateTime(timezone=True), nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("incident_id", UUID(as_uuid=False), primary_key=True),
    Column("model_id", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("aware_at", DateTime(timezone=True), nullable=False),
    Column("harm", Text),
    Column("reportable", Boolean),
    Column("next_due_at", DateTime(timezone=True)),
    Column("overdue", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("state", JSONB, nullable=False),
)
