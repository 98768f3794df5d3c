"""Offers and closures as the caller hears them: each day named once, "Uhr" said once."""

from __future__ import annotations

import dataclasses
from datetime import date, time, timedelta

import pytest
from tests.conftest import DEMO_SALON, berlin
from tests.unit.test_schedule import hours, make_catalog, stylist

from rezeption.domain.model import Catalog, Closure, Slot, SpecialDay, TimeRange
from rezeption.language.offers import speak_slots, why_not
from rezeption.store.salon_file import SalonFileError, parse_salon, read_salon


def catalog_of() -> Catalog:
    """Open Tuesday to Saturday 9-18 (closed Sunday and Monday), one stylist."""
    return make_catalog(hours("09:00", "18:00", range(1, 6)), (stylist(),))


def slot(*at: int) -> Slot:
    start = berlin(*at)
    return Slot(start, start + timedelta(minutes=30), 1)


def test_three_starts_on_another_day_name_the_day_once() -> None:
    catalog = catalog_of()
    slots = [slot(2025, 12, 12, 10, 0), slot(2025, 12, 12, 10, 15), slot(2025, 12, 12, 10, 45)]
    spoken = speak_slots(catalog, slots, today=date(2025, 12, 8), day=date(2025, 12, 11))
    assert spoken == "am Freitag, dem 12. Dezember, um 10, 10:15 oder 10:45 Uhr"


def test_starts_on_the_day_talked_about_are_times_only_and_days_are_kept_apart() -> None:
    catalog = catalog_of()
    slots = [slot(2025, 12, 11, 9, 0), slot(2025, 12, 11, 14, 30), slot(2025, 12, 13, 9, 0)]
    spoken = speak_slots(catalog, slots, today=date(2025, 12, 8), day=date(2025, 12, 11))
    assert spoken == "um 9 oder 14:30 Uhr oder am Samstag, dem 13. Dezember, um 9 Uhr"


def test_a_yearly_closure_repeats_and_a_leap_day_falls_back_to_the_28th() -> None:
    eve = Closure(
        date(2026, 12, 24), date(2026, 12, 24), (TimeRange(time(9), time(13)),), "Heiligabend", True
    )
    assert eve.days(2025, 2027) == [date(2025, 12, 24), date(2026, 12, 24), date(2027, 12, 24)]
    leap = Closure(date(2028, 2, 29), date(2028, 3, 1), yearly=True)
    assert leap.days(2027, 2027) == [date(2027, 2, 28), date(2027, 3, 1)]
    once = Closure(date(2026, 7, 27), date(2026, 7, 31), reason="Betriebsferien")
    assert once.days(2020, 2030) == [date(2026, 7, 27) + timedelta(days=n) for n in range(5)]


def test_a_special_closure_gives_its_reason_and_a_weekly_closed_day_says_so() -> None:
    catalog = catalog_of()
    today = date(2025, 12, 5)
    monday = why_not(catalog, "closed", service="Färben", day=date(2025, 12, 8), at=None, today=today)
    assert monday == "Montags haben wir leider geschlossen."
    away = dataclasses.replace(catalog, special_days={date(2025, 12, 9): SpecialDay((), "Betriebsferien")})
    tuesday = why_not(away, "special_closure", service="Färben", day=date(2025, 12, 9), at=None, today=today)
    assert tuesday == "Am Dienstag, dem 9. Dezember, bleibt der Salon leider geschlossen: Betriebsferien."


def test_the_salon_file_refuses_a_closure_that_ends_before_it_starts() -> None:
    text = DEMO_SALON.read_text(encoding="utf-8").replace(
        "closures:\n", "closures:\n  - {date: 2026-08-10, until: 2026-08-01, reason: Betriebsferien}\n"
    )
    with pytest.raises(SalonFileError, match="until"):
        parse_salon(text)
    assert [c.reason for c in read_salon(DEMO_SALON).closures] == ["Heiligabend", "Silvester"]
