"""The web admin's accounts in the database: users (argon2 hashes), their salons, server-side
sessions (only the sha256 of the cookie's token is stored, so a copy of the table opens nothing) and
failed logins for the rate limit. What a page may show is decided in `rezeption.admin`; this module
only reads and writes these rows.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update

from rezeption.domain.clock import require_aware
from rezeption.store.db import Database
from rezeption.store.tables import (
    ADMIN_ROLES,
    AdminLoginAttemptRow,
    AdminSessionRow,
    AdminUserRow,
    AdminUserSalonRow,
    TenantRow,
)

HASHER = PasswordHasher()
SESSION_IDLE = timedelta(hours=2)
SESSION_MAX = timedelta(hours=12)
MIN_PASSWORD = 10


class AdminUserError(ValueError):
    """An account that cannot be created as asked (the message says why)."""


@dataclass(frozen=True)
class AdminUser:
    """A logged-in person: role and the salons (id -> slug) they may see."""

    id: int
    email: str
    role: str
    salons: dict[int, str]

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


@dataclass(frozen=True)
class Session:
    """A valid session: who, and the CSRF secret its forms carry."""

    user: AdminUser
    csrf: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(
    database: Database, email: str, password: str, *, role: str, salons: list[str], now: datetime
) -> int:
    """A new user for these salons (slugs); refused for a taken e-mail, an unknown salon, a weak
    password or an unknown role, with nothing written."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise AdminUserError(f"not an e-mail address: {email!r}")
    if role not in ADMIN_ROLES:
        raise AdminUserError(f"role must be one of {', '.join(ADMIN_ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise AdminUserError(f"the password needs at least {MIN_PASSWORD} characters")
    hashed = HASHER.hash(password)
    async with database.write() as session, session.begin():
        if await session.scalar(select(AdminUserRow.id).where(AdminUserRow.email == email)) is not None:
            raise AdminUserError(f"a user {email} exists already")
        found = dict(
            (
                await session.execute(select(TenantRow.slug, TenantRow.id).where(TenantRow.slug.in_(salons)))
            ).all()
        )
        missing = [s for s in salons if s not in found]
        if missing or not salons:
            known = ", ".join((await session.scalars(select(TenantRow.slug).order_by(TenantRow.slug))).all())
            raise AdminUserError(
                f"no salon {', '.join(missing) or '(none given)'} (salons: {known or 'none'})"
            )
        user = AdminUserRow(
            email=email, password_hash=hashed, role=role, active=True, created_at=require_aware(now)
        )
        session.add(user)
        await session.flush()
        session.add_all([AdminUserSalonRow(user_id=user.id, tenant_id=found[s]) for s in salons])
        return int(user.id)


async def failures(database: Database, *, email: str, address: str, since: datetime) -> tuple[int, int]:
    """Failed logins since `since`: for this account, and from this address."""
    async with database.statement() as conn:
        by_email = await conn.scalar(
            select(func.count()).where(
                AdminLoginAttemptRow.email == normalize_email(email), AdminLoginAttemptRow.at >= since
            )
        )
        by_address = await conn.scalar(
            select(func.count()).where(
                AdminLoginAttemptRow.address == address, AdminLoginAttemptRow.at >= since
            )
        )
    return int(by_email or 0), int(by_address or 0)


async def record_failure(database: Database, *, email: str, address: str, at: datetime) -> None:
    async with database.write() as session, session.begin():
        session.add(
            AdminLoginAttemptRow(
                email=normalize_email(email)[:254], address=address[:64], at=require_aware(at)
            )
        )


async def check_password(database: Database, email: str, password: str) -> int | None:
    """The user's id when the password is right (and the account active), else None. A missing
    account costs the same hash as a wrong password (no timing hint that it exists)."""
    async with database.statement() as conn:
        row = (
            await conn.execute(
                select(AdminUserRow.id, AdminUserRow.password_hash, AdminUserRow.active).where(
                    AdminUserRow.email == normalize_email(email)
                )
            )
        ).first()
    stored = row[1] if row is not None else _dummy_hash()
    try:
        HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    return int(row[0]) if row is not None and row[2] else None


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches, made once on first use (not at import: every command imports this)."""
    return HASHER.hash("no such user, never matches " + secrets.token_hex(8))


async def open_session(database: Database, user_id: int, *, now: datetime) -> str:
    """A new session for the user; the cookie's token (only its hash is stored)."""
    now = require_aware(now)
    token = secrets.token_urlsafe(32)
    async with database.write() as session, session.begin():
        session.add(
            AdminSessionRow(
                token_hash=token_hash(token),
                user_id=user_id,
                csrf=secrets.token_urlsafe(32),
                created_at=now,
                seen_at=now,
                expires_at=now + SESSION_MAX,
            )
        )
    return token


async def session_for(database: Database, token: str, *, now: datetime) -> Session | None:
    """The session of this cookie token, if it exists, is not over and its user is active."""
    now = require_aware(now)
    hashed = token_hash(token)
    async with database.statement() as conn:
        row = (
            await conn.execute(
                select(
                    AdminSessionRow.csrf,
                    AdminSessionRow.seen_at,
                    AdminSessionRow.expires_at,
                    AdminUserRow.id,
                    AdminUserRow.email,
                    AdminUserRow.role,
                    AdminUserRow.active,
                )
                .join(AdminUserRow, AdminUserRow.id == AdminSessionRow.user_id)
                .where(AdminSessionRow.token_hash == hashed)
            )
        ).first()
        if row is None:
            return None
        csrf, seen_at, expires_at, user_id, email, role, active = row
        if not active or now >= expires_at or now - seen_at >= SESSION_IDLE:
            return None
        salons = dict(
            (
                await conn.execute(
                    select(TenantRow.id, TenantRow.slug)
                    .join(AdminUserSalonRow, AdminUserSalonRow.tenant_id == TenantRow.id)
                    .where(AdminUserSalonRow.user_id == user_id)
                    .order_by(TenantRow.slug)
                )
            ).all()
        )
    if now - seen_at > timedelta(minutes=1):  # idle clock, written at most once a minute
        async with database.write() as session, session.begin():
            await session.execute(
                update(AdminSessionRow).where(AdminSessionRow.token_hash == hashed).values(seen_at=now)
            )
    return Session(
        AdminUser(int(user_id), str(email), str(role), {int(k): str(v) for k, v in salons.items()}), str(csrf)
    )


async def close_session(database: Database, token: str) -> None:
    async with database.write() as session, session.begin():
        await session.execute(delete(AdminSessionRow).where(AdminSessionRow.token_hash == token_hash(token)))
