"""The slot rules as a salon lives them: hours, breaks, buffers, absences, holidays, DST, UTC midnight."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from rezeption.domain.model import (
    BookingPolicy,
    Catalog,
    Interval,
    Service,
    SpecialDay,
    Staff,
    Tenant,
    TimeRange,
)
from rezeption.domain.schedule import ceil_to_grid, check_start, closed_reason, day_reason, free_slots

BERLIN = ZoneInfo("Europe/Berlin")
EVERY_DAY = range(7)


def hours(
    start: str, end: str, days: range | tuple[int, ...] = EVERY_DAY
) -> dict[int, tuple[TimeRange, ...]]:
    return {d: (TimeRange(time.fromisoformat(start), time.fromisoformat(end)),) for d in days}


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def make_catalog(
    opening: dict[int, tuple[TimeRange, ...]],
    staff: tuple[Staff, ...],
    holidays: frozenset[date] = frozenset(),
    policy: BookingPolicy | None = None,
) -> Catalog:
    tenant = Tenant(
        1, "t", "Salon", "Europe/Berlin", "BE", opening, policy or BookingPolicy(min_notice=timedelta(0))
    )
    return Catalog(tenant=tenant, services=(), staff=staff, holidays=holidays)


def service(minutes: int = 30, before: int = 0, after: int = 0) -> Service:
    return Service(
        1, "s", "Schnitt", (), timedelta(minutes=minutes), timedelta(minutes=before), timedelta(minutes=after)
    )


def stylist(
    staff_id: int = 1,
    working: dict[int, tuple[TimeRange, ...]] | None = None,
    breaks: dict[int, tuple[TimeRange, ...]] | None = None,
    absences: tuple[Interval, ...] = (),
) -> Staff:
    return Staff(
        staff_id,
        f"s{staff_id}",
        f"Stylist {staff_id}",
        working or hours("09:00", "18:00"),
        breaks or {},
        absences,
    )


def local_starts(slots: list, zone: ZoneInfo = BERLIN) -> list[str]:
    return [s.start.astimezone(zone).strftime("%H:%M") for s in slots]


def day_window(day: date) -> Interval:
    start = datetime.combine(day, time(0), tzinfo=BERLIN)
    return Interval(start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=BERLIN))


def test_a_plain_day_offers_every_quarter_hour_that_fits_before_closing() -> None:
    catalog = make_catalog(hours("09:00", "11:00"), (stylist(working=hours("09:00", "11:00")),))
    slots = free_slots(catalog, service(30), catalog.staff, {}, day_window(date(2025, 11, 4)))
    assert local_starts(slots) == ["09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30"]


def test_a_break_removes_every_start_whose_service_would_touch_it() -> None:
    member = stylist(breaks=hours("13:00", "13:30"))
    catalog = make_catalog(hours("12:00", "14:30"), (member,))
    starts = local_starts(
        free_slots(catalog, service(30, after=5), catalog.staff, {}, day_window(date(2025, 11, 4)))
    )
    assert "12:15" in starts  # 12:15-12:50 incl. buffer ends before the break
    assert "12:30" not in starts  # 12:30-13:05 runs into it
    assert "12:45" not in starts and "13:00" not in starts and "13:15" not in starts
    assert "13:30" in starts


def test_buffers_keep_the_stylist_busy_before_and_after_another_booking() -> None:
    colour = service(90, before=5, after=15)
    catalog = make_catalog(hours("09:00", "18:00"), (stylist(),))
    earlier = Interval(at(2025, 11, 4, 9, 25), at(2025, 11, 4, 11, 15))  # a 09:30 colour with its buffers
    starts = local_starts(
        free_slots(catalog, colour, catalog.staff, {1: [earlier]}, day_window(date(2025, 11, 4)))
    )
    assert starts[0] == "11:30"  # 11:20 is the first start whose 5-minute prep begins after 11:15
    assert "09:15" not in starts and "11:15" not in starts


def test_the_first_start_of_the_day_leaves_room_for_the_buffer_before() -> None:
    catalog = make_catalog(hours("09:00", "12:00"), (stylist(),))
    starts = local_starts(
        free_slots(catalog, service(30, before=5), catalog.staff, {}, day_window(date(2025, 11, 4)))
    )
    assert starts[0] == "09:15"


def test_back_to_back_bookings_touch_without_blocking() -> None:
    catalog = make_catalog(hours("10:00", "12:00"), (stylist(),))
    first = Interval(at(2025, 11, 4, 10, 0), at(2025, 11, 4, 10, 30))
    starts = local_starts(
        free_slots(catalog, service(30), catalog.staff, {1: [first]}, day_window(date(2025, 11, 4)))
    )
    assert starts[0] == "10:30"


def test_an_absent_stylist_has_no_slots_that_day_but_colleagues_do() -> None:
    away = Interval(at(2025, 11, 4, 0, 0), at(2025, 11, 5, 0, 0))
    catalog = make_catalog(hours("09:00", "10:00"), (stylist(1, absences=(away,)), stylist(2)))
    slots = free_slots(catalog, service(30), catalog.staff, {}, day_window(date(2025, 11, 4)))
    assert {s.staff_id for s in slots} == {2}
    assert (
        check_start(
            catalog,
            service(30),
            catalog.staff[:1],
            {},
            at(2025, 11, 4, 9, 0),
            at(2025, 11, 3, 9, 0),
            named=True,
        ).reason
        == "staff_absent"
    )


def test_public_holidays_close_the_salon() -> None:
    christmas = date(2025, 12, 25)
    catalog = make_catalog(hours("09:00", "18:00"), (stylist(),), holidays=frozenset({christmas}))
    assert free_slots(catalog, service(), catalog.staff, {}, day_window(christmas)) == []
    verdict = check_start(
        catalog, service(), catalog.staff, {}, at(2025, 12, 25, 10, 0), at(2025, 12, 1, 9, 0)
    )
    assert verdict.reason == "holiday"


def test_staff_hours_are_cut_to_the_salon_opening_hours() -> None:
    catalog = make_catalog(hours("10:00", "12:00"), (stylist(working=hours("08:00", "20:00")),))
    starts = local_starts(free_slots(catalog, service(60), catalog.staff, {}, day_window(date(2025, 11, 4))))
    assert starts[0] == "10:00" and starts[-1] == "11:00"


def test_spring_forward_day_has_no_slots_in_the_missing_hour_and_real_durations() -> None:
    # 2025-03-30: 02:00 CET jumps to 03:00 CEST. A night salon open 01:00-05:00 is open 3 real hours.
    catalog = make_catalog(hours("01:00", "05:00"), (stylist(working=hours("01:00", "05:00")),))
    slots = free_slots(catalog, service(30), catalog.staff, {}, day_window(date(2025, 3, 30)))
    starts = local_starts(slots)
    assert not any(s.startswith("02:") for s in starts)
    assert starts[:5] == ["01:00", "01:15", "01:30", "01:45", "03:00"]
    assert starts[-1] == "04:30"
    assert len(slots) == 11  # 00:00-02:30 UTC in 15-minute steps
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    crossing = next(s for s in slots if local_starts([s]) == ["01:45"])
    assert crossing.end.astimezone(BERLIN).strftime("%H:%M") == "03:15"


def test_fall_back_day_offers_the_repeated_hour_twice_as_distinct_instants() -> None:
    # 2025-10-26: 03:00 CEST falls back to 02:00 CET; 01:00-05:00 local is 5 real hours.
    catalog = make_catalog(hours("01:00", "05:00"), (stylist(working=hours("01:00", "05:00")),))
    slots = free_slots(catalog, service(30), catalog.staff, {}, day_window(date(2025, 10, 26)))
    starts = local_starts(slots)
    assert len(slots) == 19
    assert starts.count("02:00") == 2 and starts.count("02:45") == 2
    assert len({s.start for s in slots}) == len(slots)
    assert slots[0].start == datetime(2025, 10, 25, 23, 0, tzinfo=UTC)


def test_ordinary_hours_on_dst_days_stay_at_their_wall_clock_times() -> None:
    for day in (date(2025, 3, 30), date(2025, 10, 26)):
        catalog = make_catalog(hours("09:00", "10:00"), (stylist(working=hours("09:00", "10:00")),))
        starts = local_starts(free_slots(catalog, service(30), catalog.staff, {}, day_window(day)))
        assert starts == ["09:00", "09:15", "09:30"]


def test_a_local_day_that_starts_before_midnight_utc_is_one_day() -> None:
    # 00:00-01:00 Berlin on 5 Nov is 23:00-24:00 UTC on 4 Nov.
    catalog = make_catalog(hours("00:00", "01:00"), (stylist(working=hours("00:00", "01:00")),))
    slots = free_slots(catalog, service(30), catalog.staff, {}, day_window(date(2025, 11, 5)))
    assert [s.start for s in slots] == [datetime(2025, 11, 4, 23, m, tzinfo=UTC) for m in (0, 15, 30)]
    busy = {
        1: [Interval(datetime(2025, 11, 4, 23, 0, tzinfo=UTC), datetime(2025, 11, 4, 23, 30, tzinfo=UTC))]
    }
    assert local_starts(
        free_slots(catalog, service(30), catalog.staff, busy, day_window(date(2025, 11, 5)))
    ) == ["00:30"]


def test_grid_counts_from_local_midnight_in_a_half_hour_zone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    aligned = ceil_to_grid(datetime(2025, 1, 1, 3, 31, tzinfo=UTC), timedelta(minutes=15), kolkata)
    assert aligned.astimezone(kolkata).strftime("%H:%M") == "09:15"
    assert ceil_to_grid(at(2025, 1, 1, 9, 15), timedelta(minutes=15), BERLIN) == at(2025, 1, 1, 9, 15)


@pytest.mark.parametrize(
    ("start", "now", "reason"),
    [
        (at(2025, 11, 4, 9, 0), at(2025, 11, 4, 10, 0), "in_past"),
        (at(2025, 11, 4, 10, 30), at(2025, 11, 4, 10, 0), "too_short_notice"),
        (at(2026, 3, 1, 10, 0), at(2025, 11, 4, 10, 0), "beyond_horizon"),
        (at(2025, 11, 3, 10, 0), at(2025, 11, 2, 10, 0), "closed"),  # a Monday
        (at(2025, 11, 4, 19, 0), at(2025, 11, 2, 10, 0), "outside_hours"),
        (at(2025, 11, 4, 17, 45), at(2025, 11, 2, 10, 0), "outside_hours"),  # would end after closing
        (at(2025, 11, 4, 9, 0), at(2025, 11, 2, 10, 0), "staff_not_working"),
    ],
)
def test_each_unbookable_start_names_its_reason(start: datetime, now: datetime, reason: str) -> None:
    policy = BookingPolicy(min_notice=timedelta(hours=1), horizon_days=90)
    member = stylist(working=hours("10:00", "18:00"))
    catalog = make_catalog(hours("09:00", "18:00", (1, 2, 3, 4, 5)), (member,), policy=policy)
    verdict = check_start(catalog, service(30), catalog.staff, {}, start, now, named=True)
    assert not verdict.free
    assert verdict.reason == reason
    anyone = check_start(catalog, service(30), catalog.staff, {}, start, now)
    assert anyone.reason == ("nobody_then" if reason.startswith("staff_") else reason)


def test_a_free_start_lists_every_free_stylist_and_a_taken_one_says_so() -> None:
    catalog = make_catalog(hours("09:00", "18:00"), (stylist(1), stylist(2)))
    now = at(2025, 11, 3, 8, 0)
    taken = {1: [Interval(at(2025, 11, 4, 10, 0), at(2025, 11, 4, 11, 0))]}
    assert check_start(
        catalog, service(), catalog.staff, taken, at(2025, 11, 4, 10, 0), now
    ).free_staff_ids == (2,)
    both = {**taken, 2: [Interval(at(2025, 11, 4, 10, 15), at(2025, 11, 4, 10, 45))]}
    assert (
        check_start(catalog, service(), catalog.staff, both, at(2025, 11, 4, 10, 0), now).reason
        == "slot_taken"
    )
    off_grid = check_start(catalog, service(), catalog.staff, {}, at(2025, 11, 4, 10, 7), now)
    assert off_grid.free_staff_ids == (1, 2)


def test_slots_lie_exactly_on_the_grid_even_when_now_has_microseconds() -> None:
    catalog = make_catalog(hours("09:00", "12:00"), (stylist(),))
    busy = {1: [Interval(at(2025, 11, 4, 9, 0), at(2025, 11, 4, 9, 7, 33))]}
    window = Interval(at(2025, 11, 4, 9, 1, 2) + timedelta(microseconds=123_457), at(2025, 11, 5, 0, 0))
    slots = free_slots(catalog, service(30, before=5), catalog.staff, busy, window)
    assert slots[0].start == at(2025, 11, 4, 9, 15)
    assert all(s.start.second == 0 and s.start.microsecond == 0 and s.start.minute % 15 == 0 for s in slots)


def test_a_special_day_replaces_the_weekly_hours_and_wins_over_a_holiday() -> None:
    staff = (stylist(),)
    christmas_eve, boxing_day, closed_tuesday = date(2025, 12, 24), date(2025, 12, 26), date(2025, 12, 9)
    catalog = dataclasses.replace(
        make_catalog(hours("09:00", "18:00"), staff, holidays=frozenset({boxing_day})),
        special_days={
            christmas_eve: SpecialDay((TimeRange(time(9), time(13)),), "Heiligabend"),
            boxing_day: SpecialDay((TimeRange(time(10), time(12)),), "Sonderöffnung"),
            closed_tuesday: SpecialDay((), "Betriebsausflug"),
        },
    )
    cut = service(30)
    now = at(2025, 12, 1, 8, 0)
    assert check_start(catalog, cut, staff, {}, at(2025, 12, 24, 12, 30), now).free
    assert check_start(catalog, cut, staff, {}, at(2025, 12, 24, 13, 0), now).reason == "outside_hours"
    assert check_start(catalog, cut, staff, {}, at(2025, 12, 26, 10, 0), now).free
    assert check_start(catalog, cut, staff, {}, at(2025, 12, 9, 10, 0), now).reason == "special_closure"
    assert closed_reason(catalog, date(2025, 12, 25)) is None  # no holiday in this catalog's list
    assert closed_reason(catalog, closed_tuesday) == "special_closure"


def test_nobody_working_then_is_not_called_taken_but_a_busy_colleague_is() -> None:
    early, late = stylist(1, hours("12:00", "18:00")), stylist(2, hours("09:00", "18:00"))
    catalog = make_catalog(hours("09:00", "18:00"), (early, late))
    cut = service(30)
    now = at(2025, 12, 1, 8, 0)
    nine = at(2025, 12, 2, 9, 0)
    assert check_start(catalog, cut, (early,), {}, nine, now).reason == "nobody_then"
    busy = {2: [Interval(nine, nine + timedelta(minutes=30))]}
    assert check_start(catalog, cut, (early, late), busy, nine, now).reason == "slot_taken"
    assert day_reason(catalog, cut, (early,), date(2025, 12, 2)) == "day_full"
    away = dataclasses.replace(early, absences=(Interval(at(2025, 12, 2, 0, 0), at(2025, 12, 3, 0, 0)),))
    assert day_reason(catalog, cut, (away,), date(2025, 12, 2)) == "nobody_that_day"


def test_a_start_that_runs_into_a_break_says_break_not_taken() -> None:
    """Found by the model-based test: Damenhaarschnitt at 11:30 with Clara (break 12:30) on an empty
    day was refused as "schon alles vergeben"; nothing was booked, so that was untrue."""
    member = stylist(working=hours("09:00", "18:00"), breaks=hours("12:30", "13:00"))
    catalog = make_catalog(hours("09:00", "18:00"), (member,))
    now = at(2025, 11, 3, 8, 0)
    start = at(2025, 11, 4, 11, 30)
    assert (
        check_start(catalog, service(90), catalog.staff, {}, start, now, named=True).reason == "staff_break"
    )
    assert check_start(catalog, service(90), catalog.staff, {}, start, now).reason == "nobody_then"
    booked = {1: [Interval(at(2025, 11, 4, 12, 0), at(2025, 11, 4, 12, 30))]}
    assert (
        check_start(catalog, service(90), catalog.staff, booked, start, now, named=True).reason
        == "slot_taken"
    )
