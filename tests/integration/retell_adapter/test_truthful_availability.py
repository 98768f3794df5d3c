"""Availability that tells the truth, through the real HTTP functions: one true reason per refusal,
always the nearest alternatives, windows of hours and days, salon-wide closures and special hours.

The clock stands on Monday 3 November 2025, 08:00 in Berlin. Friseur 1: closed Sunday and Monday;
Ben (the only one for Bartpflege) starts at 12:00 on Tuesdays; Clara (the only colourist) is off on
Tuesdays; Heiligabend the salon opens 9-13 (a yearly closure in the demo salon file).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from tests.conftest import DEMO_SALON
from tests.integration.retell_adapter.conftest import RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.salon_file import read_salon
from rezeption.store.salon_import import import_salon


async def check(retell: RetellClient, service: str, day: str, at: str | None = None) -> dict[str, object]:
    args = {"dienstleistung": service, "datum": day}
    if at is not None:
        args["uhrzeit"] = at
    return await retell.function("check_availability", args)


def starts(answer: dict[str, object], key: str = "alternativen") -> list[tuple[str, str]]:
    items = answer.get(key)
    assert isinstance(items, list)
    return [(item["datum"], item["uhrzeit"]) for item in items]


async def test_beard_before_the_only_barber_starts_is_not_called_taken(retell: RetellClient) -> None:
    answer = await check(retell, "Bartpflege", "Dienstag", "9 Uhr")
    assert answer["ok"] is False and answer["reason"] == "nobody_then"
    message = str(answer["message"])
    assert "belegt" not in message
    assert message.startswith("Um 9 Uhr arbeitet leider niemand, der Bartpflege anbietet.")
    assert starts(answer)[0] == ("2025-11-04", "12:00")  # Ben's first start that day
    assert "um 12" in message


async def test_colour_on_the_colourists_day_off_names_that_and_offers_her_next_days(
    retell: RetellClient,
) -> None:
    at_ten = await check(retell, "Färben", "Dienstag", "10 Uhr")
    assert at_ten["reason"] == "nobody_then"
    assert "Färben" in str(at_ten["message"]) and "belegt" not in str(at_ten["message"])
    assert starts(at_ten) and all(day != "2025-11-04" for day, _ in starts(at_ten))
    whole_day = await check(retell, "Färben", "Dienstag")
    assert whole_day["ok"] is False and whole_day["reason"] == "nobody_that_day"
    assert str(whole_day["message"]).startswith("Morgen arbeitet leider niemand, der Färben anbietet.")
    assert len(starts(whole_day)) == 3


async def test_a_closed_day_without_a_time_is_closed_with_three_alternatives(retell: RetellClient) -> None:
    for day in ("nächsten Montag", "Sonntag"):
        answer = await check(retell, "Färben", day)
        assert answer["ok"] is False and answer["reason"] == "closed", answer
        assert "haben wir leider geschlossen" in str(answer["message"])
        assert "nichts mehr frei" not in str(answer["message"])
        assert len(starts(answer)) == 3


async def test_a_booked_out_day_is_said_to_be_booked_out(retell: RetellClient) -> None:
    # Ben is the only one for Bartpflege; on Saturday 8 Nov he works 9-14: fill his day on the hour.
    for n, at in enumerate(["9 Uhr", "10 Uhr", "11 Uhr", "12 Uhr", "13 Uhr"]):
        booked = await retell.function(
            "book_appointment",
            {
                "name": f"Kunde {'ABCDE'[n]}",
                "dienstleistung": "Kinderhaarschnitt",
                "datum": "8.11.",
                "uhrzeit": at,
                "mitarbeiter": "Ben",
            },
            call_id=f"call_fill_{n}",
            from_number=f"+4917000000{n:02d}",  # five callers: one number holds at most four
        )
        assert booked["gebucht"] is True, booked
    # the 25-minute gaps left do not hold a 20-minute beard on the 15-minute grid
    answer = await check(retell, "Bartpflege", "Samstag")
    assert answer["ok"] is False and answer["reason"] == "day_full", answer
    assert "ausgebucht" in str(answer["message"])
    assert starts(answer)  # the next days Ben works


async def test_a_part_of_next_week_is_answered_from_that_week(retell: RetellClient) -> None:
    answer = await check(retell, "Herrenhaarschnitt", "nächste Woche", "vormittags")
    assert answer["ok"] is True, answer
    options = starts(answer, "optionen")
    assert options and all("2025-11-10" <= day <= "2025-11-16" for day, _ in options)
    assert all(at < "12:00" for _, at in options)
    weekend = await check(retell, "Herrenhaarschnitt", "am Wochenende")
    assert weekend["ok"] is True, weekend
    assert {day for day, _ in starts(weekend, "optionen")} == {"2025-11-08"}  # Sunday closed


async def test_a_morning_on_a_day_the_only_barber_starts_at_noon_says_so(retell: RetellClient) -> None:
    answer = await check(retell, "Bartpflege", "Dienstag", "vormittags")
    assert answer["ok"] is False and answer["reason"] == "nobody_then", answer
    assert starts(answer)[0] == ("2025-11-04", "12:00")


async def test_a_start_too_late_for_the_service_names_the_closing_time(retell: RetellClient) -> None:
    answer = await check(retell, "Färben", "Samstag", "13 Uhr")
    assert answer["reason"] == "outside_hours"
    assert str(answer["message"]).startswith(
        "Um 13 Uhr reicht die Zeit für Färben bis zum Ladenschluss um 14 Uhr leider nicht."
    )


async def test_alternatives_on_another_day_name_that_day_once(retell: RetellClient) -> None:
    answer = await check(retell, "Färben", "nächsten Montag", "10 Uhr")
    assert answer["reason"] == "closed"
    message = str(answer["message"])
    for day, _ in starts(answer):
        spoken = f"{int(day[8:])}. November"
        assert message.count(spoken) == 1, message


async def test_christmas_eve_is_open_only_in_the_morning(retell: RetellClient) -> None:
    late = await check(retell, "Herrenhaarschnitt", "24.12.", "15 Uhr")
    assert late["ok"] is False and late["reason"] == "outside_hours", late
    assert "von 9 bis 13 Uhr geöffnet" in str(late["message"])
    whole = await check(retell, "Herrenhaarschnitt", "24.12.")
    assert whole["ok"] is True
    assert all(at < "13:00" for _, at in starts(whole, "optionen"))
    early = await check(retell, "Herrenhaarschnitt", "24.12.", "10 Uhr")
    assert early["ok"] is True


async def test_a_closure_in_the_salon_file_applies_at_once(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    before = await check(retell, "Herrenhaarschnitt", "Donnerstag", "11 Uhr")
    assert before["ok"] is True
    salon = read_salon(DEMO_SALON)
    closure = {"date": "2025-11-06", "until": "2025-11-07", "reason": "Betriebsausflug"}
    changed = salon.model_validate({**salon.model_dump(), "closures": [closure]})
    await import_salon(database, changed, now=clock.now())
    for _ in range(40):  # each process re-reads the catalog version at most every second
        after = await check(retell, "Herrenhaarschnitt", "Donnerstag", "11 Uhr")
        if after["ok"] is False:
            break
        await asyncio.sleep(0.1)
    assert after["ok"] is False and after["reason"] == "special_closure", after
    assert "bleibt der Salon leider geschlossen: Betriebsausflug." in str(after["message"])
    assert all(day not in ("2025-11-06", "2025-11-07") for day, _ in starts(after))
    assert datetime.fromisoformat(starts(after)[0][0]).weekday() == 5  # Saturday comes next
    hours = await retell.function("get_opening_hours", {})
    assert (
        "Abweichend davon: Betriebsausflug, vom Donnerstag, dem 6. November, bis Freitag, dem 7. November, "
        "geschlossen." in str(hours["message"])
    )
    assert [a["datum"] for a in hours["ausnahmen"]] == ["2025-11-06", "2025-11-07"]
