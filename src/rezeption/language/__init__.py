"""German (and English) appointment language: the caller's words -> dates, times, services, names, phones.

The phrase parser is our own: no library resolves spoken German dates well enough (see
``bench/language.py``: dateparser and ctparse side by side on the same cases), so ``text``, ``dates``
and ``times`` are a small hand-written grammar over speech-to-text output. Everything resolves on
the server against the salon's clock: ``now`` is always an aware datetime in the salon's zone.

Rules of ``resolve_when(date_text, time_text, now, *, opening_hours=None)``:

- Input is speech-to-text output: any case, umlauts as ue/oe/ae or missing, ß as ss, numbers as
  words, fillers ("äh", "so gegen", "wenn's geht") ignored; a time inside the date field or a date
  inside the time field is found ("morgen um 14 Uhr" in one field). German first, English second.
- heute, morgen, übermorgen; in drei Tagen, in zwei Wochen, in einem Monat (same day, clamped);
  "in acht Tagen" = +8 with +7 as an alternative; "Montag in einer Woche" = the first such day on or
  after today + 7 days. "am Wochenende", "Anfang/Mitte/Ende nächster Woche", "nächste Woche",
  "nächsten Monat", "im Dezember" are windows (date None, ``window`` set): ask, don't guess.
- A bare weekday or "nächsten <Tag>" = the next such day strictly after today; "diesen <Tag>"
  includes today; "nächste Woche <Tag>" / "<Tag> nächste Woche" = that day in the next calendar week
  (Mon-Sun); "übernächsten <Tag>" = one week later than "nächsten". Where "nächsten <Tag>" falls in
  the current calendar week, the day a week later is returned as an alternative.
- Dates: 5.11., 05.11.2025, 5.11.25, 5. November, am fünften November, der zwölfte Dezember,
  2025-11-05 (ISO from the LLM), "am fünften" (day of month). Year correction: a date whose year is
  past, or a day and month without a year that has already passed, rolls forward to the next
  occurrence on or after today; a future year is kept; the current year with a passed day is
  rejected (past_date). Never a date in the past. 30 Dec + "3. Januar" -> next year. A weekday that
  contradicts the date ("Freitag, der 6. November" when the 6th is a Thursday) is rejected with
  both readings as alternatives.
- Times: 14 Uhr, 14:30, 14.30 Uhr, vierzehn Uhr dreißig, um zwei, halb drei, viertel nach zehn,
  viertel vor vier, dreiviertel vier (15:45), zehn nach halb drei, nachmittags um drei, morgens um
  neun, mittags (12:00), abends um sechs, 3 pm, noon. Hours without a part of day: 1-6 mean 13-18,
  7-12 as said; when opening hours are given, the one reading inside them wins. "kurz nach drei",
  "gegen zehn" -> the round time, ``approximate=True``. "morgens", "vormittags", "nachmittags",
  "abends" alone -> a window of hours (narrowed to opening hours and, today, to what is ahead).
- Reject with a reason (the offending part is None, ``message`` is the German sentence), never
  guess: invalid_date (31. Februar), far_future (more than ten years ahead: "31.12.9999"),
  invalid_time (25 Uhr, 14:75), past_date (gestern, a passed day of this year), past_time (a time
  already past today), weekday_mismatch, nonexistent_time (skipped by the DST change),
  not_understood (nonsense words).
"""

from rezeption.language.names import name_score, normalize_name
from rezeption.language.phones import mask_phone, normalize_phone
from rezeption.language.services import Match, ServiceLike, match_service
from rezeption.language.speech import join_alternatives, speak_date, speak_time, speak_when
from rezeption.language.when import REASONS, OpeningHours, Reading, When, Window, resolve_when

__all__ = [
    "REASONS",
    "Match",
    "OpeningHours",
    "Reading",
    "ServiceLike",
    "When",
    "Window",
    "join_alternatives",
    "mask_phone",
    "match_service",
    "name_score",
    "normalize_name",
    "normalize_phone",
    "resolve_when",
    "speak_date",
    "speak_time",
    "speak_when",
]
