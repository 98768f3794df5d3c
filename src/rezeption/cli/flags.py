"""`rezeption flags list|set|clear`: feature flags for operators, without a deploy.

`set NAME --on|--off|--percent N [--salon SLUG]` stores one rule (global without --salon); every
server process follows within the flag cache's few seconds. A salon's own rule wins over the global
one. Bad input (an unknown flag or salon, a percentage outside 0-100, no or two choices) is one line
on stderr, exit 2, and nothing is changed.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rezeption.cli.support import fail, load_settings, run_command, services_ready
from rezeption.domain.errors import UnknownTenant
from rezeption.domain.flags import FLAGS, GLOBAL, Rule, UnknownFlag
from rezeption.store import flags as flag_store
from rezeption.store.operator import salon_slugs

flags_app = typer.Typer(
    help="Feature flags: list, set (on, off, a percentage of calls), clear.", no_args_is_help=True
)
console = Console()


@flags_app.command("list")
def flags_list() -> None:
    """Every flag with its default, and every stored rule (global and per salon)."""
    settings = load_settings()

    async def run() -> list[flag_store.FlagRow]:
        async with services_ready(settings) as services:
            return await flag_store.list_rules(services.database)

    rows = run_command(run)
    table = Table(title="Feature-Flags")
    for column in ("Flag", "Standard", "Regeln", "Wofür"):
        table.add_column(column)
    for name, known in sorted(FLAGS.items()):
        rules = [f"{r.scope}: {r.rule.describe()}" for r in rows if r.flag == name]
        table.add_row(name, "an" if known.default else "aus", "\n".join(rules) or "—", known.description)
    console.print(table)


@flags_app.command("set")
def flags_set(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(sorted(FLAGS))}.")],
    on: Annotated[bool, typer.Option("--on", help="On for every call.")] = False,
    off: Annotated[bool, typer.Option("--off", help="Off for every call.")] = False,
    percent: Annotated[int | None, typer.Option(help="On for this share of calls, 0-100.")] = None,
    salon: Annotated[str | None, typer.Option(help="Only this salon (its slug); default: global.")] = None,
) -> None:
    """Store a rule: --on, --off or --percent N, globally or for one --salon."""
    rule = _rule(name, on, off, percent)
    scope = salon or GLOBAL
    settings = load_settings()

    async def run() -> list[str]:
        async with services_ready(settings) as services:
            try:
                await flag_store.set_rule(services.database, name, rule, at=services.clock.now(), scope=scope)
            except UnknownTenant as error:
                known = ", ".join(await salon_slugs(services.database)) or "none"
                raise fail(f"rezeption: no salon {scope!r} (salons: {known}); nothing changed") from error
            rows = await flag_store.list_rules(services.database)
        return [f"{r.scope} ({r.rule.describe()})" for r in rows if r.flag == name and r.scope != GLOBAL]

    overrides = run_command(run)
    console.print(f"{name} für {'alle Salons' if scope == GLOBAL else scope}: {rule.describe()}")
    if scope == GLOBAL and overrides:
        console.print(f"Salons mit eigener Regel (gehen vor): {', '.join(overrides)}")


@flags_app.command("clear")
def flags_clear(
    name: Annotated[str, typer.Argument(help="The flag.")],
    salon: Annotated[str | None, typer.Option(help="The salon's rule; default: the global rule.")] = None,
) -> None:
    """Remove a rule: then the global rule (or the flag's default) decides."""
    _known(name)
    settings = load_settings()

    async def run() -> bool:
        async with services_ready(settings) as services:
            return await flag_store.clear_rule(services.database, name, scope=salon or GLOBAL)

    removed = run_command(run)
    console.print(f"{name} ({salon or GLOBAL}): {'Regel entfernt' if removed else 'keine Regel vorhanden'}")


def _known(name: str) -> None:
    if name not in FLAGS:
        raise fail(f"rezeption: {UnknownFlag(name).message}; nothing changed")


def _rule(name: str, on: bool, off: bool, percent: int | None) -> Rule:
    """The one rule asked for, or a one-line refusal before anything is opened."""
    _known(name)
    chosen = [c for c, given in (("--on", on), ("--off", off), ("--percent", percent is not None)) if given]
    if len(chosen) != 1:
        raise fail("rezeption: say exactly one of --on, --off, --percent N; nothing changed")
    if percent is not None and not 0 <= percent <= 100:
        raise fail(f"rezeption: --percent must be between 0 and 100, not {percent}; nothing changed")
    return Rule(enabled=percent is not None or on, percent=percent)
