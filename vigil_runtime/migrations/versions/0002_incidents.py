"""Incidents: an index to fold one incident's events, and the incidents projection.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX events_by_incident ON events ((payload->>'incident_id'), seq) WHERE payload ? 'incident_id'"
    )
    # A projection: dropped and rebuilt from the events by `vigil replay`.
    op.create_table(
        "incidents",
        sa.Column("incident_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("aware_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("harm", sa.Text),
        sa.Column("reportable", sa.Boolean),
        sa.Column("next_due_at", sa.DateTime(timezone=True)),
        sa.Column("overdue", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("state", JSONB, nullable=False),
    )
    op.create_index("incidents_by_status", "incidents", ["status", "next_due_at"])


def downgrade() -> None:
    op.drop_table("incidents")
    op.execute("DROP INDEX events_by_incident")
