"""Which free stylist a booking for "anyone" tries first (`booking.bookings.StylistTurns`)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_schedule import at, hours, make_catalog, service, stylist

from rezeption.booking.bookings import BookingRequest, StylistTurns, WorkingStylists
from rezeption.domain.model import Interval
from rezeption.domain.schedule import staff_free

TEN = datetime(2025, 11, 4, 9, 0, tzinfo=UTC)
STAFF = (11, 12, 13, 14)


def request(key: str, *, start: datetime = TEN, staff: str | None = None, tenant: int = 1) -> BookingRequest:
    return BookingRequest(
        tenant_id=tenant,
        service="Herrenhaarschnitt",
        start=start,
        staff=staff,
        customer_name="Kunde",
        call_id=f"call-{key}",
        idempotency_key=key,
    )


def test_callers_whose_free_lists_differ_still_try_different_stylists_first() -> None:
    """Racing callers read who is free at slightly different moments: each here has seen every
    earlier caller's booking but the one just before its own. A turn counted in the free list
    (not in the salon's list of stylists) sent two of them to the same stylist."""
    staff = tuple(range(11, 19))
    for first_key in (f"key-{n}" for n in range(12)):
        turns = StylistTurns()
        firsts: list[int] = []
        for n in range(len(staff)):
            seen = set(firsts[:-1])
            free = tuple(s for s in staff if s not in seen)
            firsts.append(turns.order(free, request(first_key if n == 0 else f"{first_key}-{n}"), staff)[0])
        assert len(set(firsts)) == len(staff), (first_key, firsts)


def test_with_some_stylists_booked_racing_callers_still_spread_over_the_free_ones() -> None:
    """Found in review: the next turn went on from the turn's place in the salon's list, not from
    the stylist it chose, so with the first stylists booked most turns landed on one free stylist."""
    staff = (11, 12, 13, 14)
    for first_key in (f"key-{n}" for n in range(12)):
        turns = StylistTurns()
        firsts = [turns.order((13, 14), request(f"{first_key}-{n}"), staff)[0] for n in range(8)]
        assert all(a != b for a, b in pairwise(firsts)), (first_key, firsts)


def test_callers_racing_for_one_time_each_try_another_stylist_first() -> None:
    turns = StylistTurns()
    firsts = [turns.order(STAFF, request(f"k{n}"), STAFF)[0] for n in range(len(STAFF))]
    assert sorted(firsts) == sorted(STAFF)  # four callers, four different first claims
    again = turns.order(STAFF, request("k9"), STAFF)
    assert again[0] == firsts[0]  # the fifth goes round again
    assert sorted(again) == sorted(STAFF)  # and still tries everyone


def test_the_first_caller_of_a_time_starts_where_the_key_points() -> None:
    assert StylistTurns().order(STAFF, request("same"), STAFF) == StylistTurns().order(
        STAFF, request("same"), STAFF
    )
    starts = {StylistTurns().order(STAFF, request(f"key-{n}"), STAFF)[0] for n in range(40)}
    assert len(starts) > 1  # not everyone on the first stylist: another process starts elsewhere


def test_times_and_salons_take_turns_apart_and_a_named_stylist_stays() -> None:
    turns = StylistTurns()
    first = turns.order(STAFF, request("a"), STAFF)
    other_time = StylistTurns().order(STAFF, request("b", start=TEN + timedelta(minutes=30)), STAFF)
    assert turns.order(STAFF, request("b", start=TEN + timedelta(minutes=30)), STAFF) == other_time
    assert turns.order(STAFF, request("c", tenant=2), STAFF) == StylistTurns().order(
        STAFF, request("c", tenant=2), STAFF
    )
    assert turns.order((12,), request("d"), STAFF) == (12,)
    assert turns.order(STAFF, request("e", staff="Ben"), STAFF) == STAFF
    assert turns.order(STAFF, request("f"), STAFF)[0] != first[0]  # the turn of the first time went on


def test_the_stylists_at_work_are_remembered_per_catalog_and_a_changed_salon_asks_again() -> None:
    """A claim at once for "anyone" is offered everyone the salon's rules let work then
    (`WorkingStylists`), worked out once per catalog and time: a changed salon (a new catalog: an
    absence entered) must not be answered from memory."""
    members = tuple(stylist(n) for n in (11, 12, 13))
    before = make_catalog(hours("09:00", "18:00"), members)
    ten = at(2025, 11, 4, 10, 0)
    working = WorkingStylists()
    assert working.at(before, service(), ten, members) == (11, 12, 13)
    off = dataclasses.replace(
        members[1], absences=(Interval(ten - timedelta(hours=1), ten + timedelta(hours=8)),)
    )
    after = dataclasses.replace(before, staff=(members[0], off, members[2]))
    assert working.at(after, service(), ten, after.staff) == (11, 13)
    assert working.at(after, service(), ten, (off,)) == ()  # who was asked about is part of the question
    assert working.at(before, service(), ten + timedelta(hours=9), members) == ()  # after hours


class FewRemembered(WorkingStylists):
    REMEMBERED = 2


@settings(max_examples=200, deadline=None)
@given(
    questions=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 40), st.sets(st.integers(0, 3))), max_size=20
    )
)
def test_what_is_remembered_is_what_the_rules_say(questions: list[tuple[int, int, set[int]]]) -> None:
    """Any order of questions, two catalogs, times past closing, a memory too small to keep them:
    the answer is always the rules' own."""
    members = (
        stylist(1),
        stylist(2, working=hours("12:00", "18:00")),
        stylist(3, breaks=hours("13:00", "14:00")),
        stylist(4, absences=(Interval(at(2025, 11, 4, 9, 0), at(2025, 11, 4, 12, 0)),)),
    )
    catalogs = (
        make_catalog(hours("09:00", "18:00"), members),
        make_catalog(hours("10:00", "16:00"), members),
    )
    working = FewRemembered()
    for which, quarter, asked in questions:
        catalog, start = catalogs[which], at(2025, 11, 4, 8, 0) + timedelta(minutes=15 * quarter)
        group = tuple(m for n, m in enumerate(members) if n in asked)
        expected = tuple(m.id for m in group if staff_free(catalog, m, service(), start))
        assert working.at(catalog, service(), start, group) == expected


def test_a_claim_that_got_a_later_choice_sends_the_next_caller_on_after_it() -> None:
    """Another process booked the first stylists in this one's turn, and the claim at once skipped
    them: the next caller here starts after the stylist this one got, not on the busy ones."""
    ring = tuple(range(11, 19))
    turns = StylistTurns()
    tried = turns.order(ring, request("a"), ring)
    turns.landed(request("a"), ring, tried, tried[2])
    assert turns.order(ring, request("b"), ring)[0] == ring[(ring.index(tried[2]) + 1) % 8]


def test_a_late_claim_does_not_turn_the_turn_back() -> None:
    """Claims of this process that raced the late one moved the turn past what it got: it stays."""
    ring = tuple(range(11, 19))
    turns = StylistTurns()
    late = turns.order(ring, request("a"), ring)
    for n in range(4):
        turns.order(ring, request(f"racing-{n}"), ring)
    before = dict(turns._next)
    turns.landed(request("a"), ring, late, late[1])
    assert turns._next == before
    named = turns.order((12, 13), request("c", staff="Ben"), (12, 13))
    turns.landed(request("c", staff="Ben"), (12, 13), named, 13)
    assert turns._next == before  # a named stylist takes no turn
