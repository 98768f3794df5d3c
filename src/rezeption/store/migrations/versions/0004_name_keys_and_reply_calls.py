"""Every surname part is searchable; idempotent replies know their call (for GDPR erasure).

- `customer_name_keys` (tenant_id, key) -> customer_id replaces `customers.name_phonetic`, which held
  the sound of the last word only, so "Gisela Schuster" never found "Gisela Schuster-Wendt". A
  customer now has one key per surname (or middle) part and one for neighbouring parts written
  together (`language.names.search_keys`). Filled here for existing customers.
- `idempotency_records.call_id`: a stored reply may hold a caller's name for 48 h; erasing a customer
  now erases the replies of their calls too.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _surname_key_0003(name: str) -> str | None:
    """The key migration 0003 stored: the sound of the last word (see 0003_lookup_indexes)."""
    from rezeption.language.names import PARTICLES, normalize_name
    from rezeption.language.phonetics import cologne_code

    words = normalize_name(name).split()
    words = [w for w in words if w not in PARTICLES] or words
    if not words:
        return None
    last = words[-1][:-2] + "a" if words[-1].endswith("er") else words[-1]
    return cologne_code(last) or None


def _customers(*columns: str) -> sa.TableClause:
    return sa.table("customers", *(sa.column(c) for c in columns))


def upgrade() -> None:
    from rezeption.language.names import search_keys

    op.create_table(
        "customer_name_keys",
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_name_keys_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customer_name_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "key", name=op.f("pk_customer_name_keys")),
    )
    op.create_index(
        "ix_customer_name_keys_tenant_key", "customer_name_keys", ["tenant_id", "key", "customer_id"]
    )
    bind = op.get_bind()
    customers = _customers("id", "tenant_id", "name")
    rows = bind.execute(sa.select(customers).where(customers.c.name.is_not(None))).all()
    keys = [
        {"customer_id": row.id, "tenant_id": row.tenant_id, "key": key}
        for row in rows
        for key in search_keys(row.name)
    ]
    if keys:
        name_keys = sa.table(
            "customer_name_keys", *(sa.column(c) for c in ("customer_id", "tenant_id", "key"))
        )
        bind.execute(name_keys.insert(), keys)
    op.drop_index("ix_customers_tenant_name_phonetic", table_name="customers")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("name_phonetic")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("call_id", sa.String(length=128), nullable=True))
    op.create_index("ix_idempotency_records_call_id", "idempotency_records", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_records_call_id", table_name="idempotency_records")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_column("call_id")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_phonetic", sa.String(length=32), nullable=True))
    op.create_index("ix_customers_tenant_name_phonetic", "customers", ["tenant_id", "name_phonetic"])
    bind = op.get_bind()
    customers = _customers("id", "name", "name_phonetic")
    rows = bind.execute(sa.select(customers.c.id, customers.c.name).where(customers.c.name.is_not(None)))
    updates = [{"key_id": row.id, "key": _surname_key_0003(row.name)} for row in rows]
    if updates:
        bind.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("key_id"))
            .values(name_phonetic=sa.bindparam("key")),
            updates,
        )
    op.drop_index("ix_customer_name_keys_tenant_key", table_name="customer_name_keys")
    op.drop_table("customer_name_keys")
