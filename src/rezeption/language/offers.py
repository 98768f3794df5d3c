"""What a caller hears about free times: the offered starts (each day named once, "Uhr" said once)
and the one true reason a time or a day cannot be booked ("Um 9 Uhr arbeitet leider niemand, der
Bartpflege anbietet."), from the salon's catalog.

Written here rather than taken from a library: no library speaks German appointment offers (the same
reason as the rest of this package).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

from rezeption.domain.errors import NOT_BOOKABLE_MESSAGES, BookingError
from rezeption.domain.model import Catalog, Slot
from rezeption.domain.schedule import opening_intervals
from rezeption.language.speech import WEEKDAY_NAMES, join_alternatives, speak_date, speak_time


def capitalized(text: str) -> str:
    """The text with a capital first letter, to start a sentence."""
    return text[:1].upper() + text[1:]


def speak_times(times: Sequence[time]) -> str:
    """Several clock times of one day, "Uhr" said once: "um 10, 10:15 oder 10:45 Uhr"."""
    spoken = [speak_time(t) for t in times]
    if all(s.endswith(" Uhr") for s in spoken):
        bare = [s.removesuffix(" Uhr") for s in spoken]
        return f"um {join_alternatives(bare)} Uhr"
    return f"um {join_alternatives(spoken)}"


def speak_slots(catalog: Catalog, slots: Sequence[Slot], today: date, day: date | None) -> str:
    """The offered starts grouped by day, each day named once: "um 14:30 oder 15:15 Uhr" on the day
    talked about (`day`), "am Freitag, dem 11. Dezember, um 10, 10:15 oder 10:45 Uhr" otherwise."""
    by_day: dict[date, list[time]] = {}
    for slot in sorted({s.start for s in slots}):
        local = slot.astimezone(catalog.tenant.zone)
        by_day.setdefault(local.date(), []).append(local.time())
    groups = []
    for on, times in by_day.items():
        clock = speak_times(times)
        if on == day:
            groups.append(clock)
            continue
        spoken = speak_date(on, today)
        groups.append(f"{spoken}, {clock}" if spoken.startswith("am ") else f"{spoken} {clock}")
    if len(groups) <= 2:
        return " oder ".join(groups)
    return f"{', '.join(groups[:-1])} oder {groups[-1]}"


def offer_sentence(catalog: Catalog, slots: Sequence[Slot], today: date, day: date | None) -> str:
    """ "Ich hätte um 14:30 oder 15:15 Uhr frei." (empty when there is nothing to offer)."""
    if not slots:
        return ""
    return f"Ich hätte {speak_slots(catalog, slots, today, day)} frei."


def hours_sentence(catalog: Catalog, day: date) -> str:
    """ "Am Donnerstag haben wir von 10 bis 20 Uhr geöffnet." (empty when closed that day)."""
    zone = catalog.tenant.zone
    spans = [
        f"von {speak_time(o.start.astimezone(zone).time()).removesuffix(' Uhr')} "
        f"bis {speak_time(o.end.astimezone(zone).time())}"
        for o in opening_intervals(catalog, day)
    ]
    if not spans:
        return ""
    return f"An dem Tag haben wir {join_alternatives(spans, 'und')} geöffnet."


def _closing_after(catalog: Catalog, day: date, at: time | None) -> time | None:
    """When the salon closes, if it is open at `at` on `day` (None otherwise)."""
    if at is None:
        return None
    zone = catalog.tenant.zone
    moment = datetime.combine(day, at, tzinfo=zone)
    for opening in opening_intervals(catalog, day):
        if opening.start <= moment < opening.end:
            return opening.end.astimezone(zone).time()
    return None


def why_not(
    catalog: Catalog,
    reason: str,
    *,
    service: str,
    day: date,
    at: time | None,
    today: date,
    whole_window: bool = False,
) -> str:
    """The one true reason a time (or a whole day, `at` None) cannot be booked, as a caller hears it.

    `whole_window` marks a question about several days ("nächste Woche"): the day is then not named.
    """
    on_day = capitalized(speak_date(day, today))
    if on_day.startswith("Am "):  # the apposition closes with a comma: "Am Dienstag, dem 9. Dezember, ..."
        on_day += ","
    clock = f"Um {speak_time(at)}" if at is not None else None
    special = catalog.special_days.get(day)
    match reason:
        case "slot_taken":
            return f"{clock} ist leider schon belegt." if clock else NOT_BOOKABLE_MESSAGES["day_full"]
        case "day_full" if whole_window:
            return f"In dieser Zeit ist für {service} leider schon alles ausgebucht."
        case "day_full":
            return f"{on_day} ist für {service} leider schon alles ausgebucht."
        case "nobody_then":
            when = clock or "Zu dieser Zeit"
            return f"{when} arbeitet leider niemand, der {service} anbietet."
        case "nobody_that_day":
            return f"{on_day} arbeitet leider niemand, der {service} anbietet."
        case "special_closure":
            why = f": {special.reason}" if special is not None and special.reason else ""
            return f"{on_day} bleibt der Salon leider geschlossen{why}."
        case "closed" if whole_window:
            return "In dieser Zeit haben wir leider geschlossen."
        case "closed" if not catalog.tenant.opening_hours.get(day.weekday()):  # closed every week
            return f"{WEEKDAY_NAMES[day.weekday()]}s haben wir leider geschlossen."
        case "closed":
            return f"{on_day} haben wir leider geschlossen."
        case "holiday":
            return f"{on_day} ist Feiertag, da haben wir geschlossen."
        case "outside_hours":
            closing = _closing_after(catalog, day, at)
            if at is not None and closing is not None:
                return (
                    f"Um {speak_time(at)} reicht die Zeit für {service} bis zum Ladenschluss "
                    f"um {speak_time(closing)} leider nicht."
                )
            when = clock or "Zu dieser Zeit"
            return f"{when} haben wir leider nicht geöffnet. {hours_sentence(catalog, day)}".strip()
    return NOT_BOOKABLE_MESSAGES.get(reason, "Dieser Termin ist leider nicht möglich.")


def refusal_sentence(catalog: Catalog, error: BookingError, today: date, day: date | None = None) -> str:
    """A refused booking as the caller hears it: a refused start (`start`, `service` in the error's
    details) gets its one true reason; then the nearest alternatives (times only on `day`)."""
    alternatives: Sequence[Slot] = error.details.get("alternatives", ())
    message = error.message
    start, service = error.details.get("start"), error.details.get("service")
    if isinstance(start, datetime) and isinstance(service, str):
        local = start.astimezone(catalog.tenant.zone)
        day = local.date()
        message = why_not(catalog, error.code, service=service, day=day, at=local.time(), today=today)
    offer = offer_sentence(catalog, alternatives, today, day)
    return f"{message} {offer}" if offer else message
