"""Which free stylist a booking for "anyone" tries first (`booking.bookings.StylistTurns`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


def test_callers_racing_for_one_time_each_try_another_stylist_first() -> None:
    turns = StylistTurns()
    firsts = [turns.order(STAFF, request(f"k{n}"))[0] for n in range(len(STAFF))]
    assert sorted(firsts) == sorted(STAFF)  # four callers, four different first claims
    again = turns.order(STAFF, request("k9"))
    assert again[0] == firsts[0]  # the fifth goes round again
    assert sorted(again) == sorted(STAFF)  # and still tries everyone


def test_the_first_caller_of_a_time_starts_where_the_key_points() -> None:
    assert StylistTurns().order(STAFF, request("same")) == StylistTurns().order(STAFF, request("same"))
    starts = {StylistTurns().order(STAFF, request(f"key-{n}"))[0] for n in range(40)}
    assert len(starts) > 1  # not everyone on the first stylist: another process starts elsewhere


def test_times_and_salons_take_turns_apart_and_a_named_stylist_stays() -> None:
    turns = StylistTurns()
    first = turns.order(STAFF, request("a"))
    other_time = StylistTurns().order(STAFF, request("b", start=TEN + timedelta(minutes=30)))
    assert turns.order(STAFF, request("b", start=TEN + timedelta(minutes=30))) == other_time
    assert turns.order(STAFF, request("c", tenant=2)) == StylistTurns().order(STAFF, request("c", tenant=2))
    assert turns.order((12,), request("d")) == (12,)
    assert turns.order(STAFF, request("e", staff="Ben")) == STAFF
    assert turns.order(STAFF, request("f"))[0] != first[0]  # the turn of the first time went on
