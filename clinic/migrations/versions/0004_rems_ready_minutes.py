"""reports: the REMS "ready to leave" minutes (a checklist item) and the seriousness criteria of an adverse event

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BEFORE = ("consent_current", "escort_confirmed", "fasting_confirmed", "interacting_medications", "weight_today",
          "baseline_vitals", "baseline_cadss", "baseline_moaas", "symptom_scale", "bp_gate_decision",
          "nausea_controlled", "escort_present", "instructions_given")
AFTER = (*BEFORE, "rems_ready_minutes")


def _check(items) -> str:
    return "item IN ({})".format(", ".join(f"'{i}'" for i in items))


def upgrade() -> None:
    with op.batch_alter_table("checklist_entry", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_checklist_entry_item_allowed"), type_="check")
        batch.create_check_constraint(op.f("ck_checklist_entry_item_allowed"), _check(AFTER))
    with op.batch_alter_table("adverse_event", recreate="auto") as batch:
        batch.add_column(sa.Column("seriousness_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("adverse_event", recreate="auto") as batch:
        batch.drop_column("seriousness_json")
    op.execute("DELETE FROM checklist_entry WHERE item = 'rems_ready_minutes'")
    with op.batch_alter_table("checklist_entry", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_checklist_entry_item_allowed"), type_="check")
        batch.create_check_constraint(op.f("ck_checklist_entry_item_allowed"), _check(BEFORE))
