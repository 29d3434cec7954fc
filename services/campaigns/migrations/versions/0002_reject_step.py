"""a reject decision's outcome is recorded like the approve saga's steps

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE saga_steps DROP CONSTRAINT saga_steps_step_check")
    op.execute("""ALTER TABLE saga_steps ADD CONSTRAINT saga_steps_step_check
                  CHECK (step IN ('reserve', 'release', 'approve', 'reject'))""")


def downgrade() -> None:
    op.execute("DELETE FROM saga_steps WHERE step = 'reject'")
    op.execute("ALTER TABLE saga_steps DROP CONSTRAINT saga_steps_step_check")
    op.execute("""ALTER TABLE saga_steps ADD CONSTRAINT saga_steps_step_check
                  CHECK (step IN ('reserve', 'release', 'approve'))""")
