"""Fault rules of the Cal.com emulator: which faults a request gets.

Owns the live rule list (from the config and ``POST /_emulator/faults``), the per-rule counters
(``seen`` matching requests, ``fired`` injections) and the seeded RNG behind ``probability``, so a
run is deterministic for a given seed and request order. What each mode *does* lives with the
code it affects (middleware for transport faults, state for booking faults).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from rezeption.emulators.calcom.config import FaultRule

__all__ = ["ActiveFault", "FaultBook"]


@dataclass
class _LiveRule:
    id: int
    rule: FaultRule
    seen: int = 0
    fired: int = 0

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, **self.rule.model_dump(), "seen": self.seen, "fired": self.fired}


@dataclass(frozen=True)
class ActiveFault:
    """One fault chosen for one request."""

    mode: str
    params: dict[str, Any] = field(default_factory=dict)
    rule_id: int = 0


class FaultBook:
    """The rules and their counters."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[_LiveRule] = []
        self._next_id = 1
        self.rng = random.Random(seed)

    def reset(self, seed: int, rules: list[FaultRule]) -> None:
        """Forget all rules and counters; start over with ``rules`` and a fresh RNG."""
        self._rules = []
        self._next_id = 1
        self.rng = random.Random(seed)
        self.add(rules)

    def add(self, rules: list[FaultRule]) -> list[dict[str, Any]]:
        """Append rules; return their descriptions (with ids)."""
        added = []
        for rule in rules:
            live = _LiveRule(id=self._next_id, rule=rule)
            self._next_id += 1
            self._rules.append(live)
            added.append(live.describe())
        return added

    def clear(self) -> None:
        """Remove every rule."""
        self._rules = []

    def describe(self) -> list[dict[str, Any]]:
        """All rules with their counters."""
        return [live.describe() for live in self._rules]

    def select(self, method: str, path: str) -> list[ActiveFault]:
        """The faults this request gets; advances counters and the RNG."""
        chosen: list[ActiveFault] = []
        for live in self._rules:
            rule = live.rule
            if rule.method not in ("*", method.upper()) or not fnmatchcase(path, rule.path):
                continue
            live.seen += 1
            if rule.nth is not None and live.seen != rule.nth:
                continue
            if rule.count is not None and live.fired >= rule.count:
                continue
            if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                continue
            live.fired += 1
            chosen.append(ActiveFault(mode=rule.mode, params=dict(rule.params), rule_id=live.id))
        return chosen
