"""Event store: append-only events with a hash chain, tracking records, dead letters.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("model_id", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        # body is the canonical JSON the hash covers, byte for byte; payload is for queries.
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("payload", JSONB, sa.Computed("body::jsonb", persisted=True)),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
    )
    op.create_index("events_by_model_time", "events", ["model_id", "occurred_at"])
    op.create_index("events_by_type", "events", ["event_type", "seq"])
    # Append-only: the store refuses UPDATE, DELETE and TRUNCATE. Whoever disables this trigger
    # still cannot hide an edit from `vigil verify`, which recomputes the hash chain.
    # asyncpg runs one statement per execute.
    op.execute(
        """
        CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'events is append-only: % refused', TG_OP
            USING HINT = 'Correct an event by appending a new one.';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()"
    )
    op.create_table(
        "consumer_positions",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("dead_letter_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reason_kind", sa.Text, nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("source_topic", sa.Text, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("payload_sha256", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("source_topic", "source_partition", "source_offset", name="dead_letters_once_per_record"),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("consumer_positions")
    op.drop_table("events")
    op.execute("DROP FUNCTION events_append_only()")
