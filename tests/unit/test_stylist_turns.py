"""Which free stylist a booking for "anyone" tries first (`booking.bookings.StylistTurns`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from rezeption.booking.bookings import BookingRequest, StylistTurns

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


class FewTimesRemembered(StylistTurns):
    REMEMBERED = 2


@settings(max_examples=300, deadline=None)
@given(
    ring=st.lists(st.integers(1, 40), min_size=1, max_size=8, unique=True),
    steps=st.lists(
        st.tuples(
            st.integers(0, 5),  # the request's key
            st.integers(0, 2),  # one of three times (two remembered: the memory is cleared)
            st.booleans(),  # a named stylist
            st.sets(st.integers(0, 7)),  # the places in the ring that are free then
        ),
        max_size=25,
    ),
)
def test_asking_one_stylist_at_a_time_picks_who_the_whole_free_list_would_pick(
    ring: list[int], steps: list[tuple[int, int, bool, set[int]]]
) -> None:
    """The claim at once asks the salon's rules stylist by stylist (`first`) instead of for all
    of them (`order` over the free ones): the same stylist every time, the same turn left for the
    next caller, and never the whole ring when the first two in turn are free."""
    whole, lazy = FewTimesRemembered(), FewTimesRemembered()
    for key, time_index, named, places in steps:
        free = tuple(s for n, s in enumerate(ring) if n in places)
        asked: list[int] = []

        def is_free(stylist: int, free: tuple[int, ...] = free, asked: list[int] = asked) -> bool:
            asked.append(stylist)
            return stylist in free

        one = request(f"k{key}", start=TEN + timedelta(hours=time_index), staff="Anna" if named else None)
        expected = whole.order(free, one, ring)[0] if free else None
        assert lazy.first(one, ring, is_free) == expected
        assert lazy._next == whole._next
        if not named:  # the walk stops at the second free stylist; with fewer, it asks everyone
            assert len(asked) == len(set(asked))
            if len(free) >= 2:
                assert asked[-1] in free and sum(s in free for s in asked) == 2
            else:
                assert sorted(asked) == sorted(ring)
