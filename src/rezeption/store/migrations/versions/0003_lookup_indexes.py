"""Lookup indexes: find a caller's appointments by number, name, day or call; a surname search key.

Appointments carry neither phone nor name (those live on customers), so "tenant + phone + start" and
"tenant + name + start" are two index steps: customers (tenant_id, phone_e164) [exists since 0001]
or (tenant_id, name_phonetic), then appointments (customer_id, starts_at). Further: appointments
(tenant_id, starts_at, status) for day windows and (call_id) for "the appointments of this call".
`customers.name_phonetic` is filled for existing rows here and by every customer write after.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_customers_tenant_name_phonetic", "customers", ["tenant_id", "name_phonetic"]),
    ("ix_appointments_customer_start", "appointments", ["customer_id", "starts_at"]),
    ("ix_appointments_tenant_start_status", "appointments", ["tenant_id", "starts_at", "status"]),
    ("ix_appointments_call", "appointments", ["call_id"]),
)


def surname_key(name: str) -> str | None:
    """The 0003 search key: the Kölner Phonetik code of the last word, a final "-er" read as "-a".

    Kept here as it was: migration 0004 replaced it with `customer_name_keys`."""
    from rezeption.language.names import PARTICLES, normalize_name
    from rezeption.language.phonetics import cologne_code

    words = normalize_name(name).split()
    words = [w for w in words if w not in PARTICLES] or words
    if not words:
        return None
    last = words[-1][:-2] + "a" if words[-1].endswith("er") else words[-1]
    return cologne_code(last) or None


def _backfill() -> None:
    bind = op.get_bind()
    customers = sa.table("customers", sa.column("id"), sa.column("name"), sa.column("name_phonetic"))
    rows = bind.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.name.is_not(None)))
    updates = [{"key_id": row.id, "key": surname_key(row.name)} for row in rows]
    if updates:
        bind.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("key_id"))
            .values(name_phonetic=sa.bindparam("key")),
            updates,
        )


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_phonetic", sa.String(length=32), nullable=True))
    _backfill()
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("name_phonetic")
