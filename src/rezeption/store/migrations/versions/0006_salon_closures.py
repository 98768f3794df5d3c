"""Salon-wide closures and special hours (Heiligabend 9-13, Betriebsferien), from the salon file or
the command line; staff absences learn their origin, so time blocked by command survives a salon-file
load.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "salon_closures",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("hours", JSON_DOC, nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("yearly", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.CheckConstraint("last_day >= first_day", name=op.f("ck_salon_closures_ordered")),
        sa.CheckConstraint("origin IN ('file', 'command')", name=op.f("ck_salon_closures_origin")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_salon_closures_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_salon_closures")),
    )
    op.create_index("ix_salon_closures_tenant_id", "salon_closures", ["tenant_id"])
    with op.batch_alter_table("staff_absences") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="file"))


def downgrade() -> None:
    with op.batch_alter_table("staff_absences") as batch:
        batch.drop_column("origin")
    op.drop_index("ix_salon_closures_tenant_id", table_name="salon_closures")
    op.drop_table("salon_closures")
