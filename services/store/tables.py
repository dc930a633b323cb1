"""The event store's tables as SQLAlchemy Core objects, for queries. Migrations create them."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("model_id", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("payload", JSONB, Computed("body::jsonb", persisted=True)),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
)

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
