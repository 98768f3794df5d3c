"""Feature flags: which flags exist, how a rule decides for one call, and the per-process cache.

A rule is on, off, or a percentage of calls. Rules live in the database (`store.flags`), one global
rule per flag and optional rules per salon: a salon's own rule wins over the global one (so "off
globally, on for friseur1" is an allow-list, and "on globally, off for friseur1" a deny-list); with
no rule the flag's default applies.

A percentage is decided by the call id: sha256(flag, call id) gives the call a bucket 0-99 and the
call is in when its bucket is below the percentage. The same call always gets the same answer, and
raising the percentage only adds calls (a call in at 10% is in at 30%). Flags have their own hash,
so the 10% of one rollout are not the 10% of another. Without a call id (a command, the worker) a
percentage rule counts as off: nothing is rolled out to calls nobody can name.

`FlagBook` keeps the rules of every salon in memory and reloads them when they are older than
`ttl` seconds (a switch takes effect in every process within that time); each decision taken while a
`recording()` is open is kept for the function call's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from rezeption.domain.errors import BookingError

log = logging.getLogger(__name__)

GLOBAL = "global"
CALLER_ID = "caller_id"
CALCOM_PROVIDER = "calcom_provider"
INTERIM_LINES = "interim_lines"
DIALOG_ENGINE = "dialog_engine"


@dataclass(frozen=True)
class Flag:
    """A flag we know: its default and what it switches."""

    name: str
    default: bool
    description: str


FLAGS: Mapping[str, Flag] = {
    flag.name: flag
    for flag in (
        Flag(CALLER_ID, True, "Anrufer an der Nummer erkennen und mit Namen begrüßen (mit Einwilligung)."),
        Flag(
            CALCOM_PROVIDER,
            True,
            "Cal.com für Salons, die es eingestellt haben; aus: während Anrufen keine Anfrage an Cal.com "
            "(Anrufer hören, dass der Kalender nicht erreichbar ist); Worker und Abgleich laufen weiter.",
        ),
        Flag(INTERIM_LINES, True, "Haltesätze der Dialog-Engine ('Einen Moment bitte ...'), wenn es dauert."),
        Flag(
            DIALOG_ENGINE,
            True,
            "Die eigene Dialog-Engine am Custom-LLM-Socket; aus: der Anruf wird zum Salon durchgestellt "
            "(oder höflich beendet).",
        ),
    )
}


class UnknownFlag(BookingError):
    """A flag name we do not have."""

    code = "unknown_flag"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown flag {name!r}; known: {', '.join(sorted(FLAGS))}", flag=name)


@dataclass(frozen=True)
class Rule:
    """On or off, or on for `percent` of calls."""

    enabled: bool
    percent: int | None = None

    def __post_init__(self) -> None:
        if self.percent is not None and not 0 <= self.percent <= 100:
            raise ValueError(f"percent must be 0-100, not {self.percent}")

    def describe(self) -> str:
        """'an', 'aus' or '30 %'."""
        if self.percent is not None:
            return f"{self.percent} %"
        return "an" if self.enabled else "aus"


@dataclass(frozen=True)
class Decision:
    """One flag's answer for one call and why (the rule that decided)."""

    flag: str
    on: bool
    why: str  # "default", "global", "salon", "global 30 %", "salon 30 %"


def flag(name: str) -> Flag:
    """The flag of this name, or UnknownFlag."""
    found = FLAGS.get(name)
    if found is None:
        raise UnknownFlag(name)
    return found


def bucket(name: str, call_id: str) -> int:
    """The call's place 0-99 in this flag's rollout (stable; independent between flags)."""
    digest = hashlib.sha256(f"{name}\x1f{call_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def decide(name: str, rules: Mapping[str, Rule], *, salon: str | None, call_id: str | None) -> Decision:
    """The answer of `rules` (scope -> rule) for this salon and call: the salon's rule, else the
    global one, else the flag's default."""
    known = flag(name)
    for scope, where in ((salon, "salon"), (GLOBAL, "global")):
        rule = rules.get(scope) if scope is not None else None
        if rule is None:
            continue
        if rule.percent is None:
            return Decision(name, rule.enabled, where)
        on = call_id is not None and bucket(name, call_id) < rule.percent
        return Decision(name, on, f"{where} {rule.percent} %")
    return Decision(name, known.default, "default")


_CALL_ID: ContextVar[str | None] = ContextVar("flag_call_id", default=None)
_DECISIONS: ContextVar[list[Decision] | None] = ContextVar("flag_decisions", default=None)


@contextlib.contextmanager
def recording(call_id: str | None) -> Iterator[list[Decision]]:
    """Within: decisions are taken for this call and collected in the yielded list (for the trace)."""
    decisions: list[Decision] = []
    call_token = _CALL_ID.set(call_id)
    list_token = _DECISIONS.set(decisions)
    try:
        yield decisions
    finally:
        _DECISIONS.reset(list_token)
        _CALL_ID.reset(call_token)


def current_call() -> str | None:
    """The call id of the open `recording()`, None outside a call (a command, the worker)."""
    return _CALL_ID.get()


def as_trace(decisions: list[Decision]) -> dict[str, object] | None:
    """{flag: {"on": bool, "why": str}} for a trace row (None when no flag was asked)."""
    if not decisions:
        return None
    return {d.flag: {"on": d.on, "why": d.why} for d in decisions}


RulesByTenant = tuple[dict[str, dict[str, Rule]], dict[int, str]]
"""Rules by flag then scope, and every salon's slug by id."""


class FlagBook:
    """Every salon's flag rules, kept `ttl` seconds per process; decisions for the current call."""

    def __init__(
        self,
        load: Callable[[], Awaitable[RulesByTenant]],
        *,
        ttl: float = 5.0,
        patience: float = 0.3,
        monotonic: Callable[[], float] = time.monotonic,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        self._load = load
        self.ttl = ttl
        self.patience = patience  # a hanging database must not hold a caller: the known rules answer
        self._monotonic = monotonic
        self._rules: dict[str, dict[str, Rule]] = {}
        self._slugs: dict[int, str] = {}
        self._loaded_at: float | None = None
        self._loading: asyncio.Future[None] | None = None
        self._on_decision = on_decision

    async def fresh(self) -> None:
        """Reload the rules when they are older than `ttl`. A failed or slow load (over `patience`
        seconds) keeps the rules known (a database that is away must not turn every flag back to
        its default, nor hold a caller) and is retried after `ttl` again."""
        now = self._monotonic()
        if self._loaded_at is not None and now - self._loaded_at < self.ttl:
            return
        if self._loading is None:
            self._loaded_at = now
            self._loading = asyncio.ensure_future(self._reload())
        # Not cancelled when slow: a load stuck on a dead connection unwinds only when that gives
        # up, and nobody waits for it; it lands later (or fails) in the background.
        await asyncio.wait({self._loading}, timeout=self.patience)

    async def _reload(self) -> None:
        try:
            self._rules, self._slugs = await self._load()
        except Exception as error:
            log.warning("flags: reload failed, keeping the rules known: %s", type(error).__name__)
        finally:
            self._loading = None

    def slug(self, tenant_id: int | None) -> str | None:
        """The salon's slug as last loaded (for labels and trace attributes)."""
        return self._slugs.get(tenant_id) if tenant_id is not None else None

    def forget(self) -> None:
        """Reload on the next `fresh()` (after this process changed a rule)."""
        self._loaded_at = None

    def decide(
        self,
        name: str,
        *,
        tenant_id: int | None = None,
        salon: str | None = None,
        call_id: str | None = None,
    ) -> Decision:
        """The flag's answer for the salon (by id or slug) and the call (default: the recording's)."""
        slug = salon if salon is not None else self._slugs.get(tenant_id) if tenant_id is not None else None
        chosen = decide(
            name, self._rules.get(name, {}), salon=slug, call_id=call_id if call_id else _CALL_ID.get()
        )
        recorded = _DECISIONS.get()
        if recorded is not None and all(d.flag != name for d in recorded):
            recorded.append(chosen)
        if self._on_decision is not None:
            self._on_decision(chosen)
        return chosen

    def on(
        self, name: str, *, tenant_id: int | None = None, salon: str | None = None, call_id: str | None = None
    ) -> bool:
        """`decide(...).on`."""
        return self.decide(name, tenant_id=tenant_id, salon=salon, call_id=call_id).on
