"""Feature-flag decisions: a percentage splits calls as asked and never flips a call's answer;
a salon's rule wins over the global one; the cache reloads after its ttl and survives a failed load."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rezeption.domain.flags import (
    CALLER_ID,
    DIALOG_ENGINE,
    INTERIM_LINES,
    FlagBook,
    Rule,
    RulesByTenant,
    UnknownFlag,
    as_trace,
    bucket,
    decide,
    recording,
)

CALL_IDS = [f"call_{random.Random(n).getrandbits(128):032x}" for n in range(1000)]  # Retell's form


def test_thirty_percent_splits_a_thousand_calls_thirty_percent_plus_minus_three() -> None:
    rules = {"global": Rule(True, percent=30)}
    first = [decide(INTERIM_LINES, rules, salon=None, call_id=c).on for c in CALL_IDS]
    again = [decide(INTERIM_LINES, rules, salon=None, call_id=c).on for c in CALL_IDS]
    assert 270 <= sum(first) <= 330, sum(first)
    assert first == again, "the same call always gets the same answer"


def test_raising_the_percentage_only_adds_calls() -> None:
    previous: set[str] = set()
    for percent in (0, 10, 30, 50, 100):
        rules = {"global": Rule(True, percent=percent)}
        now_in = {c for c in CALL_IDS if decide(CALLER_ID, rules, salon=None, call_id=c).on}
        assert previous <= now_in, percent
        previous = now_in
    assert len(previous) == len(CALL_IDS)


def test_two_rollouts_pick_different_calls() -> None:
    rules = {"global": Rule(True, percent=30)}
    one = {c for c in CALL_IDS if decide(CALLER_ID, rules, salon=None, call_id=c).on}
    other = {c for c in CALL_IDS if decide(DIALOG_ENGINE, rules, salon=None, call_id=c).on}
    assert one != other and 0.15 < len(one & other) / len(one) < 0.45  # about independent: ~30 %


@given(st.text(min_size=1, max_size=64))
def test_every_call_id_has_a_bucket_between_0_and_99(call_id: str) -> None:
    assert 0 <= bucket(CALLER_ID, call_id) <= 99


def test_the_salons_rule_wins_then_the_global_one_then_the_default() -> None:
    rules = {"global": Rule(False), "friseur1": Rule(True)}
    assert decide(CALLER_ID, rules, salon="friseur1", call_id="c").why == "salon"
    assert decide(CALLER_ID, rules, salon="friseur1", call_id="c").on is True
    assert decide(CALLER_ID, rules, salon="friseur2", call_id="c").on is False  # an allow-list
    assert decide(CALLER_ID, {}, salon="friseur2", call_id="c").why == "default"
    assert decide(CALLER_ID, {"global": Rule(True, 100)}, salon=None, call_id=None).on is False, (
        "a rollout needs a call to decide for"
    )


def test_bad_rules_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="0-100"):
        Rule(True, percent=101)
    with pytest.raises(ValueError, match="0-100"):
        Rule(True, percent=-1)
    with pytest.raises(UnknownFlag, match="known: calcom_provider, caller_id"):
        decide("caller_idd", {}, salon=None, call_id="c")


async def test_the_book_reloads_after_its_ttl_keeps_rules_when_a_load_fails_and_records_decisions() -> None:
    now = [0.0]
    loads: list[RulesByTenant | Exception] = [
        ({CALLER_ID: {"friseur1": Rule(False)}}, {1: "friseur1"}),
        RuntimeError("database away"),
        ({}, {1: "friseur1"}),
    ]

    async def load() -> RulesByTenant:
        result = loads.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    book = FlagBook(load, ttl=5, monotonic=lambda: now[0])
    await book.fresh()
    with recording("call_a") as decisions:
        assert book.on(CALLER_ID, tenant_id=1) is False
        assert book.on(CALLER_ID, tenant_id=1) is False  # asked twice, recorded once
    assert as_trace(decisions) == {CALLER_ID: {"on": False, "why": "salon"}}
    now[0] = 3
    await book.fresh()  # within the ttl: no load
    assert len(loads) == 2
    now[0] = 6
    await book.fresh()  # the load fails: the known rules stay
    assert book.on(CALLER_ID, tenant_id=1) is False
    now[0] = 12
    await book.fresh()
    assert book.on(CALLER_ID, tenant_id=1) is True and loads == []
    assert as_trace([]) is None
