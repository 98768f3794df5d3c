"""The correctness set (tests/data/lookup_cases.yaml) on both databases: zero wrong matches, high recall.

A wrong match is any found appointment the case does not expect (another person's, another salon's,
a cancelled or past one). Recall counts the cases with appointments to find whose answer is exactly
right: all expected appointments and the right kind (one / several).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from tests.integration.lookup.world import build_world

from rezeption.booking.lookup import AppointmentFinder, LookupQuery
from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database

CASES_FILE = Path(__file__).resolve().parents[2] / "data" / "lookup_cases.yaml"
DATA: dict[str, Any] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
MIN_RECALL = 0.95


def test_the_correctness_set_is_big_and_adversarial() -> None:
    cases = DATA["cases"]
    assert len(cases) >= 100
    assert sum(1 for c in cases if not c["expect"]) >= 30
    assert {c.get("tenant", "a") for c in cases} == {"a", "b"}


async def test_lookup_cases_have_no_wrong_match_and_high_recall(
    database: Database, clock: FixedClock, salon_id: int, other_salon_id: int, finder: AppointmentFinder
) -> None:
    tenants = {"a": salon_id, "b": other_salon_id}
    world = await build_world(database, tenants, DATA["people"], clock.now())
    wrong: list[str] = []
    missed: list[str] = []
    positives = exact = 0
    for case in DATA["cases"]:
        result = await finder.find_appointments(
            LookupQuery(
                tenant_id=tenants[case.get("tenant", "a")],
                call_id=case.get("call"),
                caller_number=case.get("phone"),
                name=case.get("name"),
                date_words=case.get("date", ""),
                time_words=case.get("time", ""),
                service_words=case.get("service", ""),
            )
        )
        found = {world.key_of(a.appointment_id) for a in result.appointments}
        expected = set(case["expect"])
        kind = {0: "none", 1: "one"}.get(len(expected), "several")
        assert result.message, case
        if found - expected:
            wrong.append(f"{case} -> {sorted(found)}")
        if expected:
            positives += 1
            if found == expected and result.kind == kind:
                exact += 1
            else:
                missed.append(f"{case} -> {result.kind} {sorted(found)}: {result.message}")
        elif result.kind != "none":
            wrong.append(f"{case} -> {result.kind}")
    recall = exact / positives
    print(
        f"\nlookup correctness: {len(DATA['cases'])} cases, wrong matches {len(wrong)}, recall {recall:.1%}"
    )
    assert wrong == [], "\n".join(wrong)
    assert recall >= MIN_RECALL, "\n".join(missed)
