"""The event store keeps each event once: its canonical body, without a stored JSONB copy; the
field read most, `model_version`, gets a column of its own.

Queries read fields as `body::jsonb` (`services.store.tables.payload`). Measured on 100,000 events
of the hospital's mix (`python -m benchmarks.recorder_throughput`'s events, COPY in batches of
1,000): the stored copy and its indexes made the append take 3.05 s, without them 1.93 s; the
recorder's chain is what caps how fast events are stored, and queries on fields are the
console's and the reports', not every event's (parsing the bodies made a version's count 8 times
slower on 300,000 events, hence the column). The two field indexes stay, on the expression, and
parse only the rows they hold: one an outcome's, the other those that name an incident (a plain
text test of the canonical body, where a key is always written `"incident_id":`).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN model_version TEXT")
    # The events stored before get theirs from the JSONB copy of their bodies, parsed already. The
    # append-only trigger refuses every UPDATE and is held off for this one statement, in this
    # transaction: it writes a column derived from the body and changes no body and no hash
    # (`vigil verify` walks the same chain).
    op.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
    op.execute("UPDATE events SET model_version = payload->>'model_version' WHERE payload ? 'model_version'")
    op.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")
    op.execute("DROP INDEX events_by_incident")
    op.execute("DROP INDEX outcomes_by_inference")
    op.execute("ALTER TABLE events DROP COLUMN payload")
    # JSONB cannot hold the NUL character: a body with one would be stored as text and then break
    # every query that reads it as JSONB. The gate refuses NUL; the store goes on refusing it too,
    # as the copy did, with a plain text test (conservative: a text that spells a backslash and
    # "u0000" is refused as well).
    op.execute("ALTER TABLE events ADD CONSTRAINT body_reads_as_jsonb CHECK (strpos(body, '\\u0000') = 0)")
    op.execute(
        "CREATE INDEX events_by_incident ON events (((body::jsonb)->>'incident_id'), seq) "
        """WHERE body LIKE '%"incident_id":%'"""
    )
    op.execute(
        "CREATE INDEX outcomes_by_inference ON events (((body::jsonb)->>'inference_id'), seq) "
        "WHERE event_type = 'OutcomeObserved'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP CONSTRAINT body_reads_as_jsonb")
    op.execute("ALTER TABLE events DROP COLUMN model_version")
    op.execute("DROP INDEX outcomes_by_inference")
    op.execute("DROP INDEX events_by_incident")
    op.execute("ALTER TABLE events ADD COLUMN payload JSONB GENERATED ALWAYS AS (body::jsonb) STORED")
    op.execute(
        "CREATE INDEX events_by_incident ON events ((payload->>'incident_id'), seq) WHERE payload ? 'incident_id'"
    )
    op.execute(
        "CREATE INDEX outcomes_by_inference ON events ((payload->>'inference_id'), seq) "
        "WHERE event_type = 'OutcomeObserved'"
    )
