"""outbox: a reminder whose session was cancelled is 'skipped' (not needed), not 'failed'

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NEW = "status IN ('pending', 'sent', 'failed', 'skipped')"
OLD = "status IN ('pending', 'sent', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_outbox_message_status_allowed"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_message_status_allowed"), NEW)


def downgrade() -> None:
    op.execute("UPDATE outbox_message SET status = 'failed' WHERE status = 'skipped'")
    with op.batch_alter_table("outbox_message", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_outbox_message_status_allowed"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_message_status_allowed"), OLD)
