"""checklist: the discharge items (nausea controlled, escort present, instructions given)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BEFORE = ("consent_current", "escort_confirmed", "fasting_confirmed", "interacting_medications", "weight_today",
          "baseline_vitals", "baseline_cadss", "baseline_moaas", "symptom_scale", "bp_gate_decision")
AFTER = (*BEFORE, "nausea_controlled", "escort_present", "instructions_given")


def _check(items) -> str:
    return "item IN ({})".format(", ".join(f"'{i}'" for i in items))


def upgrade() -> None:
    with op.batch_alter_table("checklist_entry", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_checklist_entry_item_allowed"), type_="check")
        batch.create_check_constraint(op.f("ck_checklist_entry_item_allowed"), _check(AFTER))


def downgrade() -> None:
    op.execute("DELETE FROM checklist_entry WHERE item IN ('nausea_controlled', 'escort_present', "
               "'instructions_given')")
    with op.batch_alter_table("checklist_entry", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_checklist_entry_item_allowed"), type_="check")
        batch.create_check_constraint(op.f("ck_checklist_entry_item_allowed"), _check(BEFORE))
