"""The event store keeps each event once: its canonical body, without a stored JSONB copy.

Queries read fields as `body::jsonb` (`services.store.tables.payload`). Measured on 100,000 events
of the hospital's mix (`python -m benchmarks.recorder_throughput`'s events, COPY in batches of
1,000): the stored copy and its indexes made the append take 3.05 s, without them 1.93 s; the
recorder's chain is what caps how fast events are stored, and queries on fields are the
console's and the reports', not every event's. The two field indexes stay, on the expression, and
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
    op.execute("DROP INDEX events_by_incident")
    op.execute("DROP INDEX outcomes_by_inference")
    op.execute("ALTER TABLE events DROP COLUMN payload")
    op.execute(
        "CREATE INDEX events_by_incident ON events (((body::jsonb)->>'incident_id'), seq) "
        """WHERE body LIKE '%"incident_id":%'"""
    )
    op.execute(
        "CREATE INDEX outcomes_by_inference ON events (((body::jsonb)->>'inference_id'), seq) "
        "WHERE event_type = 'OutcomeObserved'"
    )


def downgrade() -> None:
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
