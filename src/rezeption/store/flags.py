"""Feature flags: switches an operator flips without a deploy (table `feature_flags`).

A flag row has a scope (``"global"`` or a tenant slug), a key and ``enabled``. Flags here are kill
switches: a feature is on unless a row turns it off. A global row that says off wins over every
salon; otherwise the salon's own row decides; with no row the caller's default applies.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from rezeption.domain.clock import require_aware
from rezeption.store.tables import FeatureFlagRow, TenantRow

GLOBAL = "global"
CALLER_ID = "caller_id"


FLAG_ROWS = select(FeatureFlagRow.scope, FeatureFlagRow.enabled).where(
    FeatureFlagRow.key == bindparam("key"), FeatureFlagRow.scope.in_(bindparam("scopes", expanding=True))
)

FLAG_ROWS_FOR_TENANT = select(FeatureFlagRow.scope, FeatureFlagRow.enabled).where(
    FeatureFlagRow.key == bindparam("key"),
    or_(
        FeatureFlagRow.scope == GLOBAL,
        FeatureFlagRow.scope
        == select(TenantRow.slug).where(TenantRow.id == bindparam("tenant_id")).scalar_subquery(),
    ),
)


async def flag_enabled(
    session: AsyncSession | AsyncConnection, key: str, *, tenant_slug: str | None = None, default: bool = True
) -> bool:
    """Whether `key` is on for the salon `tenant_slug` (global off wins; then the salon's row)."""
    scopes = [GLOBAL] if tenant_slug is None else [GLOBAL, tenant_slug]
    rows = await session.execute(FLAG_ROWS, {"key": key, "scopes": scopes})
    return _decide({scope: bool(enabled) for scope, enabled in rows}, default)


async def flag_enabled_for_tenant(
    conn: AsyncConnection, key: str, tenant_id: int, *, default: bool = True
) -> bool:
    """`flag_enabled` for the salon with this id, in one statement (the slug is looked up inside)."""
    rows = await conn.execute(FLAG_ROWS_FOR_TENANT, {"key": key, "tenant_id": tenant_id})
    return _decide({scope: bool(enabled) for scope, enabled in rows}, default)


def _decide(found: dict[str, bool], default: bool) -> bool:
    """Global off wins; then the salon's row (the only other scope asked for); then global or default."""
    if found.get(GLOBAL) is False:
        return False
    salon = [enabled for scope, enabled in found.items() if scope != GLOBAL]
    if salon:
        return salon[0]
    return found.get(GLOBAL, default)


async def set_flag(
    session: AsyncSession, key: str, enabled: bool, *, at: datetime, scope: str = GLOBAL
) -> None:
    """Turn `key` on or off for `scope` ("global" or a tenant slug); the caller commits."""
    row = await session.get(FeatureFlagRow, (scope, key))
    if row is None:
        session.add(FeatureFlagRow(scope=scope, key=key, enabled=enabled, updated_at=require_aware(at)))
    else:
        row.enabled = enabled
        row.updated_at = require_aware(at)
    await session.flush()
