"""Outcomes: an index to join outcomes to their inferences, and inferences of a model by time.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX outcomes_by_inference ON events ((payload->>'inference_id'), seq) "
        "WHERE event_type = 'OutcomeObserved'"
    )
    op.execute("CREATE INDEX inferences_by_model ON events (model_id, occurred_at) WHERE event_type = 'InferenceMade'")


def downgrade() -> None:
    op.execute("DROP INDEX inferences_by_model")
    op.execute("DROP INDEX outcomes_by_inference")
