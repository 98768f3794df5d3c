"""The database schema as SQLAlchemy 2 models: one class per table, every row scoped by tenant.

Invariants the database itself keeps: unique idempotency keys, foreign keys, CHECKs on statuses, and
no overlapping active appointments per stylist (PostgreSQL: an exclusion constraint; SQLite:
triggers) — both written by hand in the migrations, since autogenerate cannot express them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rezeption.store.types import JSONDoc, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

APPOINTMENT_STATUSES = ("pending", "confirmed", "cancelled", "failed")
OUTBOX_STATUSES = ("pending", "running", "done", "dead")

# SQLite has no BIGSERIAL: BigInteger primary keys must be INTEGER there to autoincrement.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (migrations rely on it)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONDoc, list[Any]: JSONDoc, datetime: UTCDateTime}  # noqa: RUF012


class TenantRow(Base):
    """A salon: zone, holiday state, opening hours, booking policy, calendar provider."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    holiday_state: Mapped[str] = mapped_column(String(8))
    opening_hours: Mapped[dict[str, Any]]
    settings: Mapped[dict[str, Any]]
    calendar_provider: Mapped[str] = mapped_column(String(32), default="local")
    calendar_settings: Mapped[dict[str, Any]]
    transfer_number: Mapped[str | None] = mapped_column(String(20))
    catalog_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TenantRouteRow(Base):
    """How a call finds its salon: a Retell agent id or a called phone number (E.164)."""

    __tablename__ = "tenant_routes"
    __table_args__ = (
        UniqueConstraint("kind", "value", name="uq_tenant_routes_kind_value"),
        CheckConstraint("kind IN ('agent', 'number')", name="kind"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(128))


class StaffRow(Base):
    """A stylist with weekly hours and breaks (wall-clock, salon zone)."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_staff_tenant_key"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    working_hours: Mapped[dict[str, Any]]
    breaks: Mapped[dict[str, Any]]
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_ref: Mapped[str | None] = mapped_column(String(128))


class StaffAbsenceRow(Base):
    """A span when a stylist is away (vacation, sickness, training), aware UTC."""

    __tablename__ = "staff_absences"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16), default="file")  # 'file' or 'command' (blocked time)


class ClosureRow(Base):
    """A salon-wide exception: closed (no hours) or different hours on a local day or range of days.

    `yearly` repeats the month and day every year (Heiligabend); `origin` says who owns the row: the
    salon file (replaced by each load) or the command line (kept across loads).
    """

    __tablename__ = "salon_closures"
    __table_args__ = (
        CheckConstraint("last_day >= first_day", name="ordered"),
        CheckConstraint("origin IN ('file', 'command')", name="origin"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    hours: Mapped[list[Any]]
    reason: Mapped[str | None] = mapped_column(String(200))
    yearly: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(16), default="file")


class ServiceRow(Base):
    """A service with spoken aliases, duration and buffers."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", name="uq_services_tenant_key"),
        CheckConstraint("duration_minutes > 0", name="positive_duration"),
        CheckConstraint("buffer_before_minutes >= 0 AND buffer_after_minutes >= 0", name="buffers"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list[Any]]
    duration_minutes: Mapped[int] = mapped_column(Integer)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    price_cents: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    external_ref: Mapped[str | None] = mapped_column(String(128))


class ServiceStaffRow(Base):
    """Which stylist offers which service."""

    __tablename__ = "service_staff"
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True)


class CustomerRow(Base):
    """A person who booked; caller-ID recognition only with recorded consent."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_tenant_phone", "tenant_id", "phone_e164"),
        Index("ix_customers_name_normalized_tenant", "name_normalized", "tenant_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    name_normalized: Mapped[str | None] = mapped_column(String(200))
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    caller_id_consent_at: Mapped[datetime | None]
    consent_call_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CustomerNameKeyRow(Base):
    """A sound key a customer is found by: one per surname (or middle) part (`names.search_keys`)."""

    __tablename__ = "customer_name_keys"
    __table_args__ = (Index("ix_customer_name_keys_tenant_key", "tenant_id", "key", "customer_id"),)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(32), primary_key=True)


class AppointmentRow(Base):
    """A booking; `block_*` include the service's buffers and are what may not overlap."""

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint(f"status IN {APPOINTMENT_STATUSES!r}", name="status"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("block_starts_at <= starts_at AND block_ends_at >= ends_at", name="block_covers"),
        Index("ix_appointments_tenant_staff_block", "tenant_id", "staff_id", "block_starts_at"),
        Index("ix_appointments_customer_start", "customer_id", "starts_at"),
        Index("ix_appointments_tenant_start_status", "tenant_id", "starts_at", "status"),
        Index(
            "ix_appointments_pending",
            "created_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_appointments_call", "call_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    block_starts_at: Mapped[datetime]
    block_ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(32))
    external_uid: Mapped[str | None] = mapped_column(String(128))
    call_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    spoken_name: Mapped[str | None] = mapped_column(String(200))
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    pending_until: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AppointmentEventRow(Base):
    """One step of an appointment's life (reserved, confirmed, cancelled, ...) with its recovery point."""

    __tablename__ = "appointment_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    recovery_point: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]]
    at: Mapped[datetime]


class CallRow(Base):
    """A Retell call: who called which number, whom we recognized, and what they told us."""

    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    retell_call_id: Mapped[str] = mapped_column(String(128), unique=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    agent_id: Mapped[str | None] = mapped_column(String(128))
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(32), default="inbound")
    memory: Mapped[dict[str, Any]]
    transcript: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class FunctionCallTraceRow(Base):
    """One function call from the voice agent: arguments, reply, outcome and latency."""

    __tablename__ = "function_call_traces"
    __table_args__ = (
        Index("ix_function_call_traces_call", "retell_call_id"),
        Index("ix_function_call_traces_at", "at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    retell_call_id: Mapped[str | None] = mapped_column(String(128))
    function: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    args: Mapped[dict[str, Any]]
    reply: Mapped[dict[str, Any]]
    ok: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    flags: Mapped[dict[str, Any] | None]
    """The feature-flag decisions of the call ({flag: {"on", "why"}}), null when none was asked."""


class OutboxJobRow(Base):
    """Work that must happen eventually (compensations, reconciliation), retried with backoff."""

    __tablename__ = "outbox_jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {OUTBOX_STATUSES!r}", name="status"),
        Index("ix_outbox_jobs_due", "status", "run_after"),
        UniqueConstraint("dedupe_key", name="uq_outbox_jobs_dedupe_key"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    dedupe_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FeatureFlagRow(Base):
    """A switch an operator can flip without a deploy; scope 'global' or a tenant slug (store.flags)."""

    __tablename__ = "feature_flags"
    __table_args__ = (
        CheckConstraint("percent IS NULL OR (percent >= 0 AND percent <= 100)", name="percent_range"),
    )
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    percent: Mapped[int | None] = mapped_column(Integer)
    """A rollout: on for this share of calls (by call id); null: `enabled` decides."""
    updated_at: Mapped[datetime]


class IdempotencyRecordRow(Base):
    """A write request's key and its stored reply: retries and concurrent duplicates get the first answer."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        CheckConstraint("state IN ('running', 'done')", name="state"),
        Index("ix_idempotency_records_expires_at", "expires_at"),
        Index("ix_idempotency_records_call_id", "call_id"),
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str | None] = mapped_column(String(128))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    locked_until: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class SeenRequestRow(Base):
    """A signed request's signature digest, kept past its freshness window: replays are not run twice."""

    __tablename__ = "seen_requests"
    __table_args__ = (Index("ix_seen_requests_expires_at", "expires_at"),)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]


def table(model: type[Base]) -> Table:
    """The Core table behind a model, for hot paths that skip the ORM (see `store.db`)."""
    return cast(Table, model.__table__)


ADMIN_ROLES = ("owner", "staff")


class AdminUserRow(Base):
    """A person who logs in to the web admin: an argon2 hash, never the password; a role."""

    __tablename__ = "admin_users"
    __table_args__ = (CheckConstraint(f"role IN {ADMIN_ROLES!r}", name="role"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class AdminUserSalonRow(Base):
    """Which salons a web-admin user may see and change."""

    __tablename__ = "admin_user_salons"
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)


class AdminSessionRow(Base):
    """A logged-in browser: the sha256 of its cookie token (the token itself is never stored), its
    CSRF secret, and when it ends (idle or absolute)."""

    __tablename__ = "admin_sessions"
    __table_args__ = (Index("ix_admin_sessions_user", "user_id"),)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AdminLoginAttemptRow(Base):
    """A failed login, by account (normalized e-mail) and address: the rate limit counts these."""

    __tablename__ = "admin_login_attempts"
    __table_args__ = (
        Index("ix_admin_login_attempts_email", "email", "at"),
        Index("ix_admin_login_attempts_address", "address", "at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
