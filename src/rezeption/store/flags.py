"""Feature-flag rules in the database (table `feature_flags`): read them all, set one, list them.

A row is one rule: a scope ("global" or a salon's slug), a flag, on/off and an optional percentage.
What a rule means for a call is decided in `domain.flags`; this module only stores rules, and
refuses what it cannot store sensibly (an unknown flag or salon, a percentage outside 0-100)
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from rezeption.domain.clock import require_aware
from rezeption.domain.errors import UnknownTenant
from rezeption.domain.flags import FLAGS, GLOBAL, FlagBook, Rule, RulesByTenant, flag
from rezeption.ops.metrics import FLAG_DECISIONS
from rezeption.store.db import Database
from rezeption.store.tables import FeatureFlagRow, TenantRow


@dataclass(frozen=True)
class FlagRow:
    """One stored rule, for `rezeption flags list`."""

    flag: str
    scope: str
    rule: Rule
    updated_at: datetime


async def load_rules(database: Database) -> RulesByTenant:
    """Every rule by flag and scope, and every salon's slug by id (two small reads)."""
    async with database.statement() as conn:
        rows = await conn.execute(
            select(FeatureFlagRow.key, FeatureFlagRow.scope, FeatureFlagRow.enabled, FeatureFlagRow.percent)
        )
        rules: dict[str, dict[str, Rule]] = {}
        for key, scope, enabled, percent in rows:
            if key in FLAGS:  # a row of a flag this version no longer has is ignored
                rules.setdefault(key, {})[scope] = Rule(bool(enabled), percent)
        slugs = {
            tenant_id: slug for tenant_id, slug in await conn.execute(select(TenantRow.id, TenantRow.slug))
        }
    return rules, slugs


def flag_book(database: Database, *, ttl: float = 5.0) -> FlagBook:
    """The process's flag cache over this database; decisions are counted in /metrics."""

    async def load() -> RulesByTenant:
        return await load_rules(database)

    return FlagBook(
        load, ttl=ttl, on_decision=lambda d: FLAG_DECISIONS.labels(d.flag, str(d.on).lower()).inc()
    )


async def set_rule(database: Database, name: str, rule: Rule, *, at: datetime, scope: str = GLOBAL) -> None:
    """Store `rule` for flag `name` in `scope` ("global" or a salon's slug). An unknown flag or salon
    is refused (UnknownFlag, UnknownTenant) and nothing is written."""
    flag(name)
    at = require_aware(at)
    async with database.write() as session, session.begin():
        if scope != GLOBAL:
            found = await session.scalar(select(TenantRow.id).where(TenantRow.slug == scope))
            if found is None:
                raise UnknownTenant(scope)
        row = await session.get(FeatureFlagRow, (scope, name))
        if row is None:
            session.add(
                FeatureFlagRow(
                    scope=scope, key=name, enabled=rule.enabled, percent=rule.percent, updated_at=at
                )
            )
        else:
            row.enabled, row.percent, row.updated_at = rule.enabled, rule.percent, at


async def clear_rule(database: Database, name: str, *, scope: str) -> bool:
    """Remove the rule of `name` in `scope` (the global rule or the default then decides)."""
    flag(name)
    async with database.write() as session, session.begin():
        result = await session.execute(
            delete(FeatureFlagRow).where(FeatureFlagRow.key == name, FeatureFlagRow.scope == scope)
        )
    return bool(getattr(result, "rowcount", 0))


async def list_rules(database: Database) -> list[FlagRow]:
    """Every stored rule, by flag then scope (global first)."""
    async with database.statement() as conn:
        rows = await conn.execute(
            select(
                FeatureFlagRow.key,
                FeatureFlagRow.scope,
                FeatureFlagRow.enabled,
                FeatureFlagRow.percent,
                FeatureFlagRow.updated_at,
            )
        )
        found = [FlagRow(k, s, Rule(bool(e), p), u) for k, s, e, p, u in rows]
    return sorted(found, key=lambda r: (r.flag, r.scope != GLOBAL, r.scope))
