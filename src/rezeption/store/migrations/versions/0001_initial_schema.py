"""Initial schema: salons, services, staff, customers, appointments, calls, traces, outbox, flags.

No double booking is enforced by the database on both backends, by hand-written DDL below:
PostgreSQL gets an exclusion constraint (btree_gist) over the stylist and the appointment's block
(buffers included) for active rows; SQLite gets triggers that abort an overlapping insert or update.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 12:03:55.560074
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

PG_NO_OVERLAP = """
ALTER TABLE appointments ADD CONSTRAINT appointments_no_overlap
EXCLUDE USING gist (
    staff_id WITH =,
    tstzrange(block_starts_at, block_ends_at, '[)') WITH &&
) WHERE (status IN ('pending', 'confirmed'))
"""

SQLITE_OVERLAP_CHECK = """
CREATE TRIGGER appointments_no_overlap_{op}
BEFORE {event} ON appointments
WHEN NEW.status IN ('pending', 'confirmed')
BEGIN
    SELECT RAISE(ABORT, 'appointments_no_overlap')
    WHERE EXISTS (
        SELECT 1 FROM appointments AS other
        WHERE other.staff_id = NEW.staff_id
          AND other.id IS NOT NEW.id
          AND other.status IN ('pending', 'confirmed')
          AND other.block_starts_at < NEW.block_ends_at
          AND NEW.block_starts_at < other.block_ends_at
    );
END
"""


def _create_no_overlap() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(PG_NO_OVERLAP)
    else:
        op.execute(SQLITE_OVERLAP_CHECK.format(op="insert", event="INSERT"))
        op.execute(
            SQLITE_OVERLAP_CHECK.format(
                op="update", event="UPDATE OF staff_id, status, block_starts_at, block_ends_at"
            )
        )


def _drop_no_overlap() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE appointments DROP CONSTRAINT appointments_no_overlap")
    else:
        op.execute("DROP TRIGGER appointments_no_overlap_insert")
        op.execute("DROP TRIGGER appointments_no_overlap_update")


def upgrade() -> None:
    op.create_table(
        "feature_flags",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_feature_flags")),
    )
    op.create_table(
        "tenants",
        sa.Column("id", ID, nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("holiday_state", sa.String(length=8), nullable=False),
        sa.Column("opening_hours", JSON_DOC, nullable=False),
        sa.Column("settings", JSON_DOC, nullable=False),
        sa.Column("calendar_provider", sa.String(length=32), nullable=False),
        sa.Column("calendar_settings", JSON_DOC, nullable=False),
        sa.Column("catalog_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )
    op.create_table(
        "customers",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("name_normalized", sa.String(length=200), nullable=True),
        sa.Column("phone_e164", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("caller_id_consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_call_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_customers_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index("ix_customers_tenant_phone", ["tenant_id", "phone_e164"], unique=False)

    op.create_table(
        "function_call_traces",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=True),
        sa.Column("retell_call_id", sa.String(length=128), nullable=True),
        sa.Column("function", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("args", JSON_DOC, nullable=False),
        sa.Column("reply", JSON_DOC, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_function_call_traces_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_function_call_traces")),
    )
    with op.batch_alter_table("function_call_traces", schema=None) as batch_op:
        batch_op.create_index("ix_function_call_traces_call", ["retell_call_id"], unique=False)

    op.create_table(
        "outbox_jobs",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(length=128), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'dead')", name=op.f("ck_outbox_jobs_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_outbox_jobs_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_jobs")),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_jobs_dedupe_key"),
    )
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_jobs_due", ["status", "run_after"], unique=False)

    op.create_table(
        "services",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("aliases", JSON_DOC, nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_before_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_after_minutes", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0", name=op.f("ck_services_buffers")
        ),
        sa.CheckConstraint("duration_minutes > 0", name=op.f("ck_services_positive_duration")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_services_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_services_tenant_key"),
    )
    op.create_table(
        "staff",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("working_hours", JSON_DOC, nullable=False),
        sa.Column("breaks", JSON_DOC, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_staff_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_staff_tenant_key"),
    )
    op.create_table(
        "tenant_routes",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.CheckConstraint("kind IN ('agent', 'number')", name=op.f("ck_tenant_routes_kind")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_routes_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_routes")),
        sa.UniqueConstraint("kind", "value", name="uq_tenant_routes_kind_value"),
    )
    with op.batch_alter_table("tenant_routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenant_routes_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "appointments",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("service_id", ID, nullable=False),
        sa.Column("staff_id", ID, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("block_starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("block_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("external_uid", sa.String(length=128), nullable=True),
        sa.Column("call_id", sa.String(length=128), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("spoken_name", sa.String(length=200), nullable=True),
        sa.Column("rescheduled_from_id", ID, nullable=True),
        sa.Column("pending_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'cancelled', 'failed')", name=op.f("ck_appointments_status")
        ),
        sa.CheckConstraint(
            "block_starts_at <= starts_at AND block_ends_at >= ends_at",
            name=op.f("ck_appointments_block_covers"),
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_appointments_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_appointments_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rescheduled_from_id"],
            ["appointments.id"],
            name=op.f("fk_appointments_rescheduled_from_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_appointments_service_id_services")
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_appointments_staff_id_staff")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_appointments_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_appointments_idempotency_key")),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_appointments_tenant_staff_block", ["tenant_id", "staff_id", "block_starts_at"], unique=False
        )

    op.create_table(
        "calls",
        sa.Column("id", ID, nullable=False),
        sa.Column("retell_call_id", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", ID, nullable=True),
        sa.Column("agent_id", sa.String(length=128), nullable=True),
        sa.Column("from_number", sa.String(length=32), nullable=True),
        sa.Column("to_number", sa.String(length=32), nullable=True),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("memory", JSON_DOC, nullable=False),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_calls_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_calls_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("retell_call_id", name=op.f("uq_calls_retell_call_id")),
    )
    op.create_table(
        "service_staff",
        sa.Column("service_id", ID, nullable=False),
        sa.Column("staff_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_staff_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_service_staff_staff_id_staff"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("service_id", "staff_id", name=op.f("pk_service_staff")),
    )
    op.create_table(
        "staff_absences",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("staff_id", ID, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_staff_absences_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_absences_staff_id_staff"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_staff_absences_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_absences")),
    )
    with op.batch_alter_table("staff_absences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_absences_staff_id"), ["staff_id"], unique=False)

    op.create_table(
        "appointment_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("appointment_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recovery_point", sa.String(length=32), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("data", JSON_DOC, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_appointment_events_appointment_id_appointments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_appointment_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_events")),
    )
    with op.batch_alter_table("appointment_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appointment_events_appointment_id"), ["appointment_id"], unique=False
        )
    _create_no_overlap()


def downgrade() -> None:
    _drop_no_overlap()
    with op.batch_alter_table("appointment_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_events_appointment_id"))

    op.drop_table("appointment_events")
    with op.batch_alter_table("staff_absences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_absences_staff_id"))

    op.drop_table("staff_absences")
    op.drop_table("service_staff")
    op.drop_table("calls")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_appointments_tenant_staff_block")

    op.drop_table("appointments")
    with op.batch_alter_table("tenant_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_routes_tenant_id"))

    op.drop_table("tenant_routes")
    op.drop_table("staff")
    op.drop_table("services")
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_jobs_due")

    op.drop_table("outbox_jobs")
    with op.batch_alter_table("function_call_traces", schema=None) as batch_op:
        batch_op.drop_index("ix_function_call_traces_call")

    op.drop_table("function_call_traces")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_tenant_phone")

    op.drop_table("customers")
    op.drop_table("tenants")
    op.drop_table("feature_flags")
