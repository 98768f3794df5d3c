"""An index for the per-name booking limit: customers (name_normalized, tenant_id).

The per-caller limit counts a caller's active future appointments by number and by name on every
booking. By number it had an index path (customers (tenant_id, phone_e164), then appointments
(customer_id, starts_at)); by name it had none, and the count read every active future
appointment of the salon: a booking's cost grew with the salon's calendar. The name leads: with
(tenant_id, name_normalized) a planner without statistics (autovacuum off, a fresh table) took it
for the number's count too, by tenant alone, and read every customer of the salon.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_customers_name_normalized_tenant", "customers", ["name_normalized", "tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_customers_name_normalized_tenant", table_name="customers")
