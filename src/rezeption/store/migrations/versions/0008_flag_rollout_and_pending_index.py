"""Operations: flag rollouts by call id, flag decisions in traces, indexes for metrics and the monitor.

`function_call_traces.flags` keeps the flag decisions taken for each function call.
`feature_flags.percent` (0-100, null: the row's on/off decides) lets an operator roll a feature out
to part of the calls. The partial index on pending appointments keeps the metrics scrape cheap at a
million appointments (it counts pending rows and finds the oldest); the index on the traces' time
serves `rezeption monitor`'s last hour.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("function_call_traces") as batch:
        batch.add_column(sa.Column("flags", JSON_DOC, nullable=True))
    op.create_index("ix_function_call_traces_at", "function_call_traces", ["at"])
    with op.batch_alter_table("feature_flags") as batch:
        batch.add_column(sa.Column("percent", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_feature_flags_percent_range"), "percent IS NULL OR (percent >= 0 AND percent <= 100)"
        )
    op.create_index(
        "ix_appointments_pending",
        "appointments",
        ["created_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_appointments_pending", table_name="appointments")
    op.drop_index("ix_function_call_traces_at", table_name="function_call_traces")
    with op.batch_alter_table("function_call_traces") as batch:
        batch.drop_column("flags")
    with op.batch_alter_table("feature_flags") as batch:
        batch.drop_constraint(op.f("ck_feature_flags_percent_range"), type_="check")
        batch.drop_column("percent")
