"""call_inbound's dynamic variables: German, strings only, in the salon's zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from rezeption.booking.caller_id import CallerMatch
from rezeption.domain.model import BookingPolicy, Catalog, Tenant, TimeRange
from rezeption.retell.inbound import inbound_response
from rezeption.retell.salon_functions import speak_opening_hours


def catalog(hours: dict[int, tuple[TimeRange, ...]]) -> Catalog:
    tenant = Tenant(1, "friseur1", "Friseur 1", "Europe/Berlin", "BE", hours, BookingPolicy())
    return Catalog(tenant=tenant, services=(), staff=())


def nine_to(end: int) -> tuple[TimeRange, ...]:
    return (TimeRange(time(9), time(end)),)


def test_variables_are_german_strings_in_the_salons_zone_across_midnight_utc() -> None:
    # 23:30 UTC on Tuesday 4 November is already Wednesday 00:30 in Berlin.
    body = inbound_response(catalog({1: nine_to(18)}), datetime(2025, 11, 4, 23, 30, tzinfo=UTC))
    variables = body["call_inbound"]["dynamic_variables"]
    assert all(isinstance(v, str) for v in variables.values())
    assert variables["heute"] == "Mittwoch, 5. November 2025"
    assert variables["datum_iso"] == "2025-11-05" and variables["jahr"] == "2025"
    assert variables["wochentag"] == "Mittwoch" and variables["uhrzeit"] == "00:30"
    days = variables["naechste_14_tage"].split("; ")
    assert len(days) == 14
    assert (
        days[0] == "Mittwoch, 5. November 2025 (heute)" and days[1] == "Donnerstag, 6. November 2025 (morgen)"
    )
    assert days[-1] == "Dienstag, 18. November 2025"
    assert variables["customer_known"] == "false"
    assert body["call_inbound"]["agent_override"]["agent"]["timezone"] == "Europe/Berlin"


def test_a_recognized_callers_variables_go_with_the_salons() -> None:
    peter = CallerMatch("known", "+4915123456789", 7, "Peter Schuster", "Herrenhaarschnitt morgen um 10 Uhr")
    body = inbound_response(catalog({1: nine_to(18)}), datetime(2025, 11, 4, 9, 0, tzinfo=UTC), peter)
    variables = body["call_inbound"]["dynamic_variables"]
    assert variables["customer_known"] == "true" and variables["customer_name"] == "Peter Schuster"
    assert variables["next_appointments"] == "Herrenhaarschnitt morgen um 10 Uhr"
    assert variables["heute"] == "Dienstag, 4. November 2025"


def test_the_year_turns_in_the_fourteen_days() -> None:
    body = inbound_response(catalog({}), datetime(2025, 12, 25, 12, 0, tzinfo=UTC))
    days = body["call_inbound"]["dynamic_variables"]["naechste_14_tage"].split("; ")
    assert days[7] == "Donnerstag, 1. Januar 2026"
    assert datetime(2025, 12, 25, tzinfo=UTC) + timedelta(days=7) == datetime(2026, 1, 1, tzinfo=UTC)


def test_opening_hours_group_equal_neighbouring_days() -> None:
    hours = {
        0: nine_to(18),
        1: nine_to(18),
        2: nine_to(18),
        3: (TimeRange(time(10), time(20)),),
        5: nine_to(14),
    }
    assert speak_opening_hours(hours) == (
        "Montag bis Mittwoch von 9 bis 18 Uhr, Donnerstag von 10 bis 20 Uhr und Samstag von 9 bis 14 Uhr"
    )
    split = {1: (TimeRange(time(9), time(12, 30)), TimeRange(time(14), time(18)))}
    assert speak_opening_hours(split) == "Dienstag von 9 bis 12:30 Uhr und von 14 bis 18 Uhr"
    assert speak_opening_hours({}) == ""
