"""Set-based bulk data for lookup plans and benchmarks (PostgreSQL): salons, customers, appointments.

Everything is INSERT ... SELECT over generate_series, so a million appointments take seconds, not
hours. Customers get names from a fixed list (with the search keys `store.lookup` would write),
phone numbers of which every seventh is shared with the one before (families), and consent for a
third of them. Appointments are spread over each salon's stylists 45 minutes apart (never
overlapping), from ten days before `now` onwards; every tenth is cancelled; two per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ClauseElement, Executable, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlalchemy.sql.compiler import SQLCompiler

from rezeption.language.names import search_keys
from rezeption.store.tables import AppointmentRow

NO_OVERLAP = """
ALTER TABLE appointments ADD CONSTRAINT appointments_no_overlap
EXCLUDE USING gist (staff_id WITH =, tstzrange(block_starts_at, block_ends_at, '[)') WITH &&)
WHERE (status IN ('pending', 'confirmed'))
"""  # as migration 0001 creates it

_SURNAME_TEXT = """
Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter
Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner
Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser
Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger
Winkler Roth Beck Lorenz Baumann Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin
Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß Seidel Heinrich Brandt Haas Schreiber Graf
Schulte Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch Bergmann Thomas Voigt Sauer Arnold Wolff
"""
_FIRST_TEXT = "Anna Peter Maria Thomas Julia Michael Laura Stefan Lena Jan Sophie Paul Emma Lukas Mia Felix"
SURNAMES = _SURNAME_TEXT.split()
FIRST_NAMES = _FIRST_TEXT.split()


@dataclass(frozen=True)
class Scale:
    """How much to generate."""

    tenants: int
    staff_per_tenant: int
    customers: int
    appointments: int


class Explain(Executable, ClauseElement):
    """EXPLAIN of a statement, with its parameters bound as usual (PostgreSQL)."""

    inherit_cache = False

    def __init__(self, statement: Any, analyze: bool = False) -> None:
        self.statement = statement
        self.analyze = analyze


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return ("EXPLAIN (ANALYZE, BUFFERS) " if element.analyze else "EXPLAIN ") + compiler.process(
        element.statement, **kw
    )


async def generate(conn: AsyncConnection, scale: Scale, now: datetime) -> dict[str, int]:
    """Fill an empty migrated database; returns the id bases (first tenant, customer)."""
    params = {"now": now, "t": scale.tenants, "s": scale.staff_per_tenant}
    await conn.execute(
        _sql(
            "INSERT INTO tenants (slug, name, timezone, holiday_state, opening_hours, settings, "
            "calendar_provider, calendar_settings, catalog_version, created_at, updated_at) "
            "SELECT 'bulk' || g, 'Bulk ' || g, 'Europe/Berlin', 'BE', "
            """'{"mon": [["00:00", "23:59"]], "tue": [["00:00", "23:59"]]}'::jsonb, '{}'::jsonb, """
            "'local', '{}'::jsonb, 1, :now, :now FROM generate_series(1, :t) g"
        ),
        params,
    )
    base_tenant = int(
        (await conn.execute(text("SELECT min(id) FROM tenants WHERE slug LIKE 'bulk%'"))).scalar_one()
    )
    await conn.execute(
        _sql(
            "INSERT INTO staff (tenant_id, key, name, working_hours, breaks, position, active) "
            "SELECT t.id, 's' || g, 'Stylist ' || g, '{}'::jsonb, '{}'::jsonb, g - 1, true "
            "FROM tenants t CROSS JOIN generate_series(1, :s) g WHERE t.slug LIKE 'bulk%'"
        ),
        params,
    )
    await conn.execute(
        _sql(
            "INSERT INTO services (tenant_id, key, name, aliases, duration_minutes, buffer_before_minutes, "
            "buffer_after_minutes, active, position) SELECT id, 'schnitt', 'Herrenhaarschnitt', '[]'::jsonb, "
            "30, 0, 0, true, 0 FROM tenants WHERE slug LIKE 'bulk%'"
        )
    )
    await conn.execute(
        _sql(
            "INSERT INTO customers (tenant_id, name, name_normalized, phone_e164, "
            "caller_id_consent_at, consent_call_id, created_at, updated_at) "
            "SELECT :bt + g % :t, n.full_name, lower(n.full_name), "
            "'+49151' || lpad((g - (g % 7 = 6)::int)::text, 8, '0'), "
            "CASE WHEN g % 3 = 0 THEN :now END, CASE WHEN g % 3 = 0 THEN 'consent_' || g END, :now, :now "
            "FROM generate_series(CAST(0 AS bigint), :c - 1) g "
            "JOIN (SELECT ord - 1 AS i, f || ' ' || s AS full_name "
            "      FROM unnest(CAST(:firsts AS text[]), CAST(:surnames AS text[])) "
            "      WITH ORDINALITY AS x(f, s, ord)) n ON n.i = (g * 31 + g / 97) % :names"
        ),
        {**params, **_names(), "bt": base_tenant, "c": scale.customers},
    )
    keyed = [(name, key) for name in {f"{f} {s}" for f, s in _full_names()} for key in search_keys(name)]
    await conn.execute(
        _sql(
            "INSERT INTO customer_name_keys (customer_id, tenant_id, key) "
            "SELECT c.id, c.tenant_id, k.key FROM customers c "
            "JOIN unnest(CAST(:key_names AS text[]), CAST(:keys AS text[])) AS k(name, key) "
            "ON k.name = c.name"
        ),
        {"key_names": [n for n, _ in keyed], "keys": [k for _, k in keyed]},
    )
    base_customer = int((await conn.execute(text("SELECT min(id) FROM customers"))).scalar_one())
    # Building indexes once after the load is much faster than keeping them up to date row by row.
    await conn.execute(text("ALTER TABLE appointments DROP CONSTRAINT appointments_no_overlap"))
    for index in AppointmentRow.__table__.indexes:
        await conn.execute(DropIndex(index))
    per_tenant = scale.customers // scale.tenants
    await conn.execute(
        _sql(
            "INSERT INTO appointments (tenant_id, customer_id, service_id, staff_id, starts_at, ends_at, "
            "block_starts_at, block_ends_at, status, source, provider, call_id, version, "
            "created_at, updated_at) "
            "SELECT st.tenant_id, :bc + (g % :t) + :t * ((g * 7919) % :pt), sv.id, st.id, "
            "  :now - interval '10 days' + (g / (:t * :s)) * interval '45 minutes', "
            "  :now - interval '10 days' + (g / (:t * :s)) * interval '45 minutes' + interval '30 minutes', "
            "  :now - interval '10 days' + (g / (:t * :s)) * interval '45 minutes', "
            "  :now - interval '10 days' + (g / (:t * :s)) * interval '45 minutes' + interval '30 minutes', "
            "  CASE WHEN g % 10 = 0 THEN 'cancelled' ELSE 'confirmed' END, 'phone', 'local', "
            "  'call_' || (g / 2), 1, :now, :now "
            "FROM generate_series(CAST(0 AS bigint), :a - 1) g "
            "JOIN staff st ON st.tenant_id = :bt + g % :t AND st.position = (g / :t) % :s "
            "JOIN services sv ON sv.tenant_id = st.tenant_id"
        ),
        {**params, "bt": base_tenant, "bc": base_customer, "pt": per_tenant, "a": scale.appointments},
    )
    for index in AppointmentRow.__table__.indexes:
        await conn.execute(CreateIndex(index))
    await conn.execute(text(NO_OVERLAP))
    await conn.execute(text("ANALYZE"))
    return {"tenant": base_tenant, "customer": base_customer}


def _sql(statement: str) -> Any:
    return text(statement.replace(":now", "CAST(:now AS timestamptz)"))


def _full_names() -> list[tuple[str, str]]:
    return [(f, s) for s in SURNAMES for f in FIRST_NAMES[: 3 + len(s) % 5]]


def _names() -> dict[str, Any]:
    full = _full_names()
    return {"firsts": [f for f, _ in full], "surnames": [s for _, s in full], "names": len(full)}
