"""The receptionist's decisions, turn by turn: what the caller wants, what is still missing, what to
ask, which function to run and what to say.

Every write (book, cancel, move) goes through the agent's functions (the `Functions` port: the
same handlers, validation and idempotency by call and arguments as the HTTP functions) and only
after the caller said yes to a read-back. What the functions answer is spoken as they word it;
the manager adds only the dialog around it (greeting, questions, read-backs, repair, goodbye).
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, Protocol

from rezeption.dialog.hearing import Heard, hear
from rezeption.domain.clock import Clock
from rezeption.domain.model import Catalog, Service, Staff
from rezeption.language import join_alternatives
from rezeption.language.speech import speak_date, speak_day, speak_time

Reply = dict[str, Any]

GOODBYE = "Vielen Dank für Ihren Anruf, auf Wiederhören!"
ANYTHING_ELSE = "Kann ich sonst noch etwas für Sie tun?"
HOW_CAN_I_HELP = "Wie kann ich Ihnen helfen?"
NOT_UNDERSTOOD = "Entschuldigung, das habe ich nicht verstanden."
MAX_REPAIRS = 2
CALL_BACK = "Der Salon ruft Sie zurück, sobald es wieder geht."
MAX_BUSY_TRIES = 3  # bookings tried while the calendar is busy, before only a call back is offered
RETRY_AFTER = 10.0  # seconds to wait before trying a busy calendar again (its budget refills)
QUESTIONS = {
    "service": "Welche Leistung möchten Sie buchen?",
    "day": "An welchem Tag möchten Sie kommen?",
    "new_time": "Auf wann möchten Sie den Termin verlegen?",
    "choose_offer": "Passt Ihnen eine dieser Zeiten?",
    "name": "Auf welchen Namen darf ich den Termin eintragen?",
}
"""What to ask when a function's answer leaves the caller without a question."""


class Functions(Protocol):
    """The agent's functions for this call (name, arguments -> the reply the HTTP route would give)."""

    async def __call__(self, name: str, args: dict[str, Any]) -> Reply: ...


@dataclass(frozen=True)
class Say:
    """One answer: what to speak, then maybe end the call or put the caller through."""

    text: str
    end_call: bool = False
    transfer_number: str | None = None


@dataclass(frozen=True)
class Caller:
    """What caller ID lets us say: a name only for a known (consenting, unshared) number."""

    name: str | None = None


@dataclass
class DialogState:
    """What the call has established so far (kept for the whole call)."""

    intent: str | None = None  # "book", "cancel", "reschedule"
    service: Service | None = None
    last_service: Service | None = None  # of the job just finished ("Was kostet das?")
    candidates: tuple[Service, ...] = ()
    unknown_service: str | None = None
    day: date | None = None
    at: time | None = None
    span: str | None = None  # the caller's words for a part of a day or a span of days
    staff: Staff | None = None
    avoid: Staff | None = None
    name: str | None = None
    awaiting: str | None = None
    question: str = HOW_CAN_I_HELP
    offers: list[dict[str, str]] = field(default_factory=list)
    proposal: dict[str, str] | None = None
    appointments: list[dict[str, str]] = field(default_factory=list)
    day_options: list[date] = field(default_factory=list)
    target: dict[str, str] | None = None
    lookup: dict[str, str] = field(default_factory=dict)
    misunderstood: int = 0
    busy_tries: int = 0
    ended: bool = False
    done: list[str] = field(default_factory=list)  # what was booked/cancelled/moved, for the transcript

    def clear_job(self) -> None:
        """Forget the finished job's details; the caller's name stays for the whole call."""
        self.last_service = self.service or self.last_service
        self.intent = None
        self.service = None
        self.candidates = ()
        self.unknown_service = None
        self.day = self.at = None
        self.span = None
        self.staff = self.avoid = None
        self.offers = []
        self.proposal = None
        self.appointments = []
        self.target = None
        self.lookup = {}


class Dialog:
    """One call's receptionist."""

    def __init__(
        self,
        *,
        call_id: str,
        catalog: Callable[[], Awaitable[Catalog]],
        functions: Functions,
        clock: Clock,
        caller: Caller | None = None,
        transfer_number: str | None = None,
        speak: Callable[[str], Awaitable[None]] | None = None,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.call_id = call_id
        self._catalog = catalog
        self.functions = functions
        self.clock = clock
        self.caller = caller or Caller()
        self.transfer_number = transfer_number
        self.state = DialogState(name=self.caller.name)
        self.unsaid = ""  # an answer about a write that a newer request cut off: said next
        self._early: list[str] = []
        self.speak = speak or self._said_early  # a part of the answer said before the rest is ready
        self.pause = pause

    # -- the turns ---------------------------------------------------------------------------
    async def begin(self) -> Say:
        """The greeting (Retell's response 0): by name only when caller ID allows it."""
        catalog = await self._catalog()
        salon = catalog.tenant.name
        if self.caller.name:
            return Say(
                f"{salon}, guten Tag, {self.caller.name}! Sie sprechen mit der digitalen Rezeption. "
                f"{HOW_CAN_I_HELP}"
            )
        return Say(f"{salon}, guten Tag! Sie sprechen mit der digitalen Rezeption. {HOW_CAN_I_HELP}")

    async def reminder(self) -> Say:
        """The caller has been silent: ask once more."""
        return Say(f"Sind Sie noch da? {self.state.question}")

    async def respond(self, utterance: str) -> Say:
        """The answer to what the caller just said."""
        s = self.state
        if s.ended:
            return Say(GOODBYE, end_call=True)
        self.catalog = await self._catalog()
        self.now = self.clock.now().astimezone(self.catalog.tenant.zone)
        heard = hear(utterance, self.catalog, self.now, expecting_name=s.awaiting == "name")
        if heard.wants_person:
            return self._transfer()
        if heard.abandon and heard.intent not in {"cancel", "reschedule"}:
            s.clear_job()
            return self._ask(f"Gut, dann lassen wir das. {ANYTHING_ELSE}", "anything_else")
        if not heard.has_content:
            return self._repair()
        s.misunderstood = 0
        awaiting = s.awaiting
        handler = {
            "confirm_book": self._on_confirm_book,
            "choose_offer": self._on_choose_offer,
            "choose_day": self._on_choose_day,
            "name": self._on_name,
            "confirm_cancel": self._on_confirm_change,
            "confirm_reschedule": self._on_confirm_change,
            "choose_appointment": self._on_choose_appointment,
            "anything_else": self._on_anything_else,
            "offer_booking": self._on_offer_booking,
            "other_staff": self._on_other_staff,
            "retry_or_callback": self._on_retry_or_callback,
            "transfer": self._on_transfer,
        }.get(awaiting or "")
        answer = await handler(heard) if handler is not None else None
        if answer is None:
            answer = await self._general(heard)
        if self._early:
            answer = Say(" ".join([*self._early, answer.text]), answer.end_call, answer.transfer_number)
            self._early = []
        if heard.goodbye and not (answer.end_call or answer.transfer_number):
            text = answer.text.removesuffix(ANYTHING_ELSE).strip()
            if s.awaiting not in {None, "anything_else"} and not s.done:
                text = ""  # they hung up on a question: no need to read it out
            answer = Say(f"{text} {GOODBYE}".strip(), end_call=True)
            s.ended = True
        return answer

    async def _said_early(self, text: str) -> None:
        """Without a voice to speak early, words said early lead the final answer."""
        self._early.append(text.strip())

    # -- answers to a question we asked ------------------------------------------------------------
    async def _on_confirm_book(self, heard: Heard) -> Say | None:
        s = self.state
        changes = heard.when or heard.staff or heard.anyone or heard.service
        if heard.yes and not changes and s.proposal is not None:
            return await self._book(s.proposal)
        if changes:
            s.proposal = None
            return None  # corrections: applied and checked again below
        if heard.name and heard.name != s.name and s.proposal is not None:
            s.name = heard.name  # "nein, der Name ist ..."
            return self._read_back()
        if heard.no:
            s.proposal = None
            return self._ask("Was möchten Sie ändern: den Tag, die Uhrzeit oder die Mitarbeiterin?", "change")
        return None

    async def _on_choose_offer(self, heard: Heard) -> Say | None:
        s = self.state
        chosen = self._pick_offer(heard)
        if chosen is None and heard.no and heard.when is None and heard.staff is None:
            s.offers = []
            return self._ask("Welcher Tag oder welche Uhrzeit wäre Ihnen lieber?", "day")
        if chosen is None:
            if heard.yes and not heard.when and len(s.offers) > 1:
                return self._ask(f"Gern. {self._offer_question()}", "choose_offer")
            return None
        s.offers = []
        s.day = date.fromisoformat(chosen["datum"])
        s.at = time.fromisoformat(chosen["uhrzeit"])
        s.span = None
        if s.intent == "reschedule" and s.target is not None:
            return self._ask(
                f"Soll ich Ihren Termin ({s.target['dienstleistung']}) auf {self._spoken_new()} verlegen?",
                "confirm_reschedule",
            )
        who = chosen.get("mitarbeiter") or (s.staff.name if s.staff else "")
        s.proposal = self._proposal(who)
        return self._after_free()

    def _pick_offer(self, heard: Heard) -> dict[str, str] | None:
        offers = self.state.offers
        if not offers:
            return None
        if heard.choice is not None and -len(offers) <= heard.choice < len(offers):
            return offers[heard.choice]
        if heard.when is not None and heard.when.reason is None:
            matching = [
                o
                for o in offers
                if (heard.when.time is None or o["uhrzeit"] == heard.when.time.strftime("%H:%M"))
                and (heard.when.date is None or o["datum"] == heard.when.date.isoformat())
                and (heard.when.time is not None or heard.when.date is not None)
            ]
            if heard.staff is not None:
                matching = [o for o in matching if o.get("mitarbeiter") == heard.staff.name] or matching
            return matching[0] if matching else None
        if heard.staff is not None:
            matching = [o for o in offers if o.get("mitarbeiter") == heard.staff.name]
            return matching[0] if len(matching) == 1 else None
        if heard.yes and len(offers) == 1:
            return offers[0]
        return None

    async def _on_name(self, heard: Heard) -> Say | None:
        s = self.state
        if heard.name is None:
            return None
        s.name = heard.name
        s.awaiting = None
        if s.intent == "book" and s.proposal is not None:
            return self._read_back()
        if s.intent in {"cancel", "reschedule"}:
            return await self._progress_change()
        return None

    async def _on_confirm_change(self, heard: Heard) -> Say | None:
        s = self.state
        if s.target is None:
            return None
        if s.awaiting == "confirm_reschedule" and heard.when is not None and heard.when.reason is None:
            return None  # a (new) time, even after a "ja, aber": asked about below
        if heard.no and (heard.when is not None or heard.service is not None):
            s.target = None  # "nein, den am Mittwoch": another appointment than the one read out
            s.lookup = {}
            return None
        if heard.yes:
            if s.intent == "cancel":
                reply = await self.functions("cancel_appointment", {"referenz": s.target["referenz"]})
                if reply.get("storniert"):
                    s.done.append("storniert")
                    s.clear_job()
                    return self._ask(f"{reply['message']} {ANYTHING_ELSE}", "anything_else")
                return self._ask(f"{reply['message']} {ANYTHING_ELSE}", "anything_else")
            if s.day is not None and s.at is not None:
                return await self._move()
            return self._ask("Auf wann möchten Sie den Termin verlegen?", "new_time")
        if heard.no:
            s.clear_job()
            return self._ask(f"Gut, der Termin bleibt, wie er ist. {ANYTHING_ELSE}", "anything_else")
        return None

    async def _on_choose_appointment(self, heard: Heard) -> Say | None:
        s = self.state
        found = s.appointments
        pick: dict[str, str] | None = None
        if heard.choice is not None and -len(found) <= heard.choice < len(found):
            pick = found[heard.choice]
        elif heard.when is not None or heard.service is not None:
            matching = [
                a
                for a in found
                if (heard.service is None or a["dienstleistung"] == heard.service.name)
                and (
                    heard.when is None or heard.when.date is None or a["datum"] == heard.when.date.isoformat()
                )
                and (
                    heard.when is None
                    or heard.when.time is None
                    or a["uhrzeit"] == heard.when.time.strftime("%H:%M")
                )
            ]
            pick = matching[0] if len(matching) == 1 else None
            new_time = s.intent == "reschedule" and re.search(r"\b(?:auf|nach)\b", heard.folded)
            if pick is None and new_time and heard.when is not None and heard.when.reason is None:
                s.day, s.at = heard.when.date or s.day, heard.when.time or s.at  # "auf Donnerstag um 11"
                return self._ask(f"Gern. Welchen Termin meinen Sie? {self._appointments_listed()}",
                                 "choose_appointment")  # fmt: skip
        if pick is None:
            if heard.intent or heard.goodbye or heard.asks_prices or heard.asks_hours or heard.asks_services:
                return None
            if heard.no or heard.thanks:
                s.clear_job()
                return self._ask(f"Gut. {ANYTHING_ELSE}", "anything_else")
            return self._ask(
                f"Welchen Termin meinen Sie? {self._appointments_listed()}", "choose_appointment"
            )
        s.appointments = []
        s.target = pick
        return self._confirm_target()

    async def _on_choose_day(self, heard: Heard) -> Say | None:
        s = self.state
        options, s.day_options = s.day_options, []
        chosen = None
        if heard.choice is not None and -len(options) <= heard.choice < len(options):
            chosen = options[heard.choice]
        elif heard.when is not None and heard.when.date in options:
            chosen = heard.when.date
        if chosen is None:
            return None
        s.day, s.span = chosen, None
        if heard.when is not None and heard.when.time is not None:
            s.at = heard.when.time
        if s.intent in {"cancel", "reschedule"} and s.target is None:
            s.lookup["datum"] = chosen.isoformat()
            return await self._progress_change()
        if s.intent in {"cancel", "reschedule"}:
            return await self._progress_change()
        return await self._progress_booking()

    async def _on_offer_booking(self, heard: Heard) -> Say | None:
        if heard.yes:
            self.state.intent = "book"
            return None  # what else they said (a day, a time) is taken in below
        if heard.no and not (heard.intent or heard.when):
            return self._ask(f"Gut. {ANYTHING_ELSE}", "anything_else")
        return None

    async def _on_other_staff(self, heard: Heard) -> Say | None:
        if heard.yes and not (heard.staff or heard.when):
            return await self._progress_booking()
        if heard.no and not (heard.staff or heard.when):
            self.state.clear_job()
            return self._ask(f"Gut. {ANYTHING_ELSE}", "anything_else")
        return None

    async def _on_anything_else(self, heard: Heard) -> Say | None:
        if (heard.no or heard.thanks or heard.goodbye) and not (heard.intent or heard.service or heard.when):
            return self._goodbye()
        if heard.yes and not (heard.intent or heard.service or heard.when or heard.asks_hours):
            return self._ask("Gern, was kann ich für Sie tun?", None)
        return None

    async def _on_transfer(self, heard: Heard) -> Say | None:
        if heard.yes:
            return self._transfer()
        if heard.no:
            self.state.misunderstood = 0
            return self._ask(f"Gut, versuchen wir es noch einmal. {HOW_CAN_I_HELP}", None)
        return None

    # -- the general case: take in what was said and move the job on -----------------------------------
    async def _general(self, heard: Heard) -> Say:
        s = self.state
        info = await self._information(heard)
        if heard.intent in {"cancel", "reschedule"} and heard.intent != s.intent:
            s.clear_job()
            s.intent = heard.intent
        elif heard.intent == "book" and s.intent not in {"cancel", "reschedule"}:
            s.intent = "book"
        elif heard.intent == "book" and heard.books_explicitly:  # "doch lieber einen neuen Termin buchen"
            s.clear_job()
            s.intent = "book"
        if heard.name:
            s.name = heard.name
        if s.intent in {"cancel", "reschedule"}:
            refused = self._take_change_details(heard)
            if refused is not None:
                return refused
            return self._with(info, await self._progress_change())
        refused = self._take_booking_details(heard)
        if refused is not None:
            return self._with(info, refused)
        if s.intent is None and not info and (s.service or s.day or s.at or s.span or s.staff):
            s.intent = "book"
        if s.intent == "book":
            return self._with(info, await self._progress_booking())
        if info and s.service is not None:
            return self._ask(f"{info} Möchten Sie einen Termin für {s.service.name}?", "offer_booking")
        if info:
            return self._ask(f"{info} {ANYTHING_ELSE}", "anything_else")
        if heard.goodbye or (heard.thanks and s.done):
            return self._goodbye()
        if heard.greets and not (heard.yes or heard.no):
            return self._ask(f"Guten Tag! {HOW_CAN_I_HELP}", None)
        if heard.yes or heard.no or heard.thanks:
            return self._ask(f"Gern. {HOW_CAN_I_HELP}", None)
        return self._repair()

    def _take_booking_details(self, heard: Heard) -> Say | None:
        s = self.state
        if heard.service is not None:
            if s.service is not None and heard.service.id != s.service.id:
                s.offers, s.proposal = [], None
            s.service, s.candidates, s.unknown_service = heard.service, (), None
        elif heard.service_candidates:
            s.candidates = heard.service_candidates
        elif heard.unknown_service:
            s.unknown_service = heard.unknown_service
        if heard.not_staff is not None:
            s.avoid = heard.not_staff
            if s.staff is not None and s.staff.id == heard.not_staff.id:
                s.staff = None
        if heard.staff is not None:
            s.staff, s.avoid = heard.staff, None
        elif heard.anyone:
            s.staff = None
        return self._take_when(heard)

    def _take_when(self, heard: Heard) -> Say | None:
        s = self.state
        when = heard.when
        if when is None:
            return None
        options = [d for d in (when.date, *(a.date for a in when.alternatives)) if d is not None]
        if when.alternatives and options:
            s.day_options = options
            if when.time is not None:
                s.at = when.time
            question = when.message or (
                f"Meinen Sie {join_alternatives([speak_date(d, self.now.date()) for d in options])}?"
            )
            return self._ask(question, "choose_day")
        if when.reason is not None:
            return self._ask(when.message or "An welchem Tag meinen Sie?", s.awaiting)
        s.proposal = None
        if (when.window is not None and when.time is None) or (when.window is not None and when.date is None):
            s.span = heard.text
            s.day = when.date
            s.at = None
            return None
        if when.date is not None:
            s.day, s.span = when.date, None
        if when.time is not None:
            s.at = when.time
        return None

    def _take_change_details(self, heard: Heard) -> Say | None:
        """Before the appointment is found, a day, time or service describes it; after, the new time."""
        s = self.state
        if s.target is None:
            if heard.when is not None and heard.when.reason is None:
                if heard.when.date is not None:
                    s.lookup["datum"] = heard.when.date.isoformat()
                if heard.when.time is not None:
                    s.lookup["uhrzeit"] = heard.when.time.strftime("%H:%M")
            if heard.service is not None:
                s.lookup["dienstleistung"] = heard.service.name
            return None
        if s.intent == "reschedule":
            return self._take_when(heard)
        return None

    # -- booking ---------------------------------------------------------------------------------
    async def _progress_booking(self) -> Say:
        s = self.state
        if s.service is None:
            if s.unknown_service:
                reply = await self.functions("check_availability", {"dienstleistung": s.unknown_service})
                s.unknown_service = None
                return self._ask(reply["message"], "service")
            if s.candidates:
                names = [c.name for c in s.candidates]
                return self._ask(f"Gern. Meinen Sie {join_alternatives(names)}?", "service")
            return self._ask("Gern. Welche Leistung möchten Sie buchen?", "service")
        if s.day is None and s.span is None:
            return self._ask(f"Gern, {s.service.name}. An welchem Tag möchten Sie kommen?", "day")
        args: dict[str, Any] = {"dienstleistung": s.service.name}
        if s.staff is not None:
            args["mitarbeiter"] = s.staff.name
        if s.span is not None or s.at is None:
            args["datum"] = s.span if s.span is not None else s.day.isoformat() if s.day else ""
            if s.at is not None:
                args["uhrzeit"] = s.at.strftime("%H:%M")
            reply = await self.functions("check_availability", args)
            return self._offers_from(reply)
        assert s.day is not None
        args.update(datum=s.day.isoformat(), uhrzeit=s.at.strftime("%H:%M"))
        reply = await self.functions("check_availability", args)
        if not reply.get("frei"):
            return self._offers_from(reply)
        free: list[str] = list(reply.get("mitarbeiter_frei") or [])
        if s.staff is not None:
            who = s.staff.name
        else:
            preferred = [n for n in free if s.avoid is None or n != s.avoid.name] or free
            turn = zlib.crc32(f"{s.day}{s.at}".encode())  # the same slot, the same stylist: spread by slot
            who = preferred[turn % len(preferred)] if preferred else ""
        s.proposal = self._proposal(who)
        return self._after_free()

    def _offers_from(self, reply: Reply) -> Say:
        s = self.state
        if reply.get("reason") == "staff_does_not_offer_service":
            s.staff = None
            return self._ask(reply["message"], "other_staff")
        offers = list(reply.get("optionen") or reply.get("alternativen") or [])
        s.offers = offers
        s.at = None if not reply.get("ok") or offers else s.at
        if offers:
            return self._ask(reply["message"], "choose_offer")
        if reply.get("reason") in {
            "missing_date",
            "past_date",
            "invalid_date",
            "far_future",
            "weekday_mismatch",
        }:
            s.day = None
            s.span = None
        return self._ask(reply["message"], "day")

    def _proposal(self, who: str) -> dict[str, str]:
        s = self.state
        assert s.service is not None and s.day is not None and s.at is not None
        return {
            "dienstleistung": s.service.name,
            "datum": s.day.isoformat(),
            "uhrzeit": s.at.strftime("%H:%M"),
            "mitarbeiter": who,
        }

    def _after_free(self) -> Say:
        if not self.state.name:
            return self._ask(
                f"{self._spoken_proposal()} ist frei. Auf welchen Namen darf ich den Termin eintragen?",
                "name",
            )
        return self._read_back()

    def _spoken_proposal(self) -> str:
        p = self.state.proposal
        assert p is not None
        day, at = date.fromisoformat(p["datum"]), time.fromisoformat(p["uhrzeit"])
        with_whom = f" bei {p['mitarbeiter']}" if p.get("mitarbeiter") else ""
        return f"{p['dienstleistung']} am {speak_day(day, self.now.date())}, um {speak_time(at)}{with_whom}"

    def _read_back(self) -> Say:
        return self._ask(
            f"Ich fasse zusammen: {self._spoken_proposal()}, auf den Namen {self.state.name}. "
            "Soll ich den Termin so eintragen?",
            "confirm_book",
        )

    async def _book(self, proposal: dict[str, str]) -> Say:
        s = self.state
        args = dict(proposal, name=s.name or "")
        if not args.get("mitarbeiter"):
            args.pop("mitarbeiter", None)
        reply = await self.functions("book_appointment", args)
        if reply.get("reason") == "slot_taken" and s.staff is None and "mitarbeiter" in args:
            # the stylist we picked was taken a moment ago; the caller did not ask for one: anyone free
            reply = await self.functions(
                "book_appointment", {k: v for k, v in args.items() if k != "mitarbeiter"}
            )
        if reply.get("gebucht") or reply.get("angefragt"):
            s.done.append("gebucht" if reply.get("gebucht") else "angefragt")
            s.clear_job()
            return self._ask(f"{reply['message']} {ANYTHING_ELSE}", "anything_else")
        if reply.get("alternativen"):
            s.proposal = None
            return self._offers_from(reply)
        if reply.get("reason") in {"pending", "too_many_appointments", "too_many_in_call"}:  # no retry
            s.clear_job()
            return self._ask(f"{reply['message']} {ANYTHING_ELSE}", "anything_else")
        if reply.get("reason") in {"calendar_busy", "calendar_unavailable"}:
            s.busy_tries += 1
            if s.busy_tries > MAX_BUSY_TRIES:
                s.clear_job()
                return self._ask(
                    f"Es klappt gerade leider nicht. {CALL_BACK} {ANYTHING_ELSE}", "anything_else"
                )
            return self._ask(reply["message"], "retry_or_callback")  # the proposal stays for a retry
        s.proposal = None
        return self._ask(reply["message"], "day")

    async def _on_retry_or_callback(self, heard: Heard) -> Say | None:
        """After "Soll ich es in einer Minute noch einmal versuchen, oder sollen wir Sie zurückrufen?"
        (the saga has already stored the callback request): try again after a pause, or confirm."""
        s = self.state
        if s.proposal is not None and (heard.try_again or (heard.yes and not heard.call_back)):
            await self.speak("Gern, ich versuche es gleich noch einmal. ")
            await self.pause(RETRY_AFTER)
            return await self._book(s.proposal)
        if heard.call_back or heard.no or heard.yes:
            s.clear_job()
            return self._ask(f"Gut. {CALL_BACK} {ANYTHING_ELSE}", "anything_else")
        return None

    def _offer_question(self) -> str:
        times = [speak_time(time.fromisoformat(o["uhrzeit"])) for o in self.state.offers]
        return f"Welche Uhrzeit passt Ihnen: {join_alternatives(times)}?"

    # -- cancel and move ------------------------------------------------------------------------------
    async def _progress_change(self) -> Say:
        s = self.state
        if s.target is None:
            function = "cancel_appointment" if s.intent == "cancel" else "reschedule_appointment"
            args = dict(s.lookup)
            if s.name:
                args["name"] = s.name
            reply = await self.functions(function, args)
            reason = reply.get("reason")
            if reason in {"confirm_cancel", "confirm_reschedule"} and reply.get("referenz"):
                s.target = {
                    k: str(v)
                    for k, v in reply.items()
                    if k in {"referenz", "datum", "uhrzeit", "dienstleistung", "mitarbeiter"}
                }
                if s.intent == "cancel":
                    return self._ask(reply["message"], "confirm_cancel")
                return self._ask(reply["message"], "confirm_reschedule")
            if reason == "ambiguous_appointment":
                s.appointments = list(reply.get("termine") or [])
                return self._ask(reply["message"], "choose_appointment")
            if reason in {"need_name", "need_first_name"}:
                return self._ask(reply["message"], "name")
            return self._ask(reply["message"], None)
        if s.intent == "reschedule":
            if s.day is None and s.span is None:
                return self._ask("Auf wann möchten Sie den Termin verlegen?", "new_time")
            if s.at is None or s.span is not None:
                where = {
                    "dienstleistung": s.target["dienstleistung"],
                    "datum": s.span or (s.day.isoformat() if s.day else ""),
                }
                return self._offers_from(await self.functions("check_availability", where))
            return self._ask(
                f"Soll ich Ihren Termin ({s.target['dienstleistung']}) auf {self._spoken_new()} verlegen?",
                "confirm_reschedule",
            )
        return self._confirm_target()

    def _confirm_target(self) -> Say:
        s = self.state
        assert s.target is not None
        t = s.target
        day, at = date.fromisoformat(t["datum"]), time.fromisoformat(t["uhrzeit"])
        spoken = f"{t['dienstleistung']} am {speak_day(day, self.now.date())}, um {speak_time(at)}"
        if s.intent == "cancel":
            return self._ask(f"Ihr Termin: {spoken}. Soll ich ihn stornieren?", "confirm_cancel")
        if s.day is not None and s.at is not None:
            return self._ask(
                f"Ihr Termin: {spoken}. Soll ich ihn auf {self._spoken_new()} verlegen?", "confirm_reschedule"
            )
        return self._ask(f"Ihr Termin: {spoken}. Auf wann möchten Sie ihn verlegen?", "confirm_reschedule")

    def _spoken_new(self) -> str:
        s = self.state
        assert s.day is not None and s.at is not None
        return f"{speak_day(s.day, self.now.date())}, um {speak_time(s.at)}"

    async def _move(self) -> Say:
        s = self.state
        assert s.target is not None and s.day is not None and s.at is not None
        reply = await self.functions(
            "reschedule_appointment",
            {
                "referenz": s.target["referenz"],
                "neues_datum": s.day.isoformat(),
                "neue_uhrzeit": s.at.strftime("%H:%M"),
            },
        )
        if reply.get("verlegt"):
            s.done.append("verlegt")
            s.clear_job()
            return self._ask(f"{reply['message']} {ANYTHING_ELSE}", "anything_else")
        s.day = s.at = None
        if reply.get("alternativen"):
            return self._offers_from(reply)
        if reply.get("reason") == "move_in_doubt":  # the salon checks and calls back: no new time
            s.clear_job()
            return self._ask(f"{reply['message']} {ANYTHING_ELSE}", "anything_else")
        return self._ask(reply["message"], "new_time")

    def _appointments_listed(self) -> str:
        items = [
            f"{a['dienstleistung']} am {speak_day(date.fromisoformat(a['datum']), self.now.date())}, um "
            f"{speak_time(time.fromisoformat(a['uhrzeit']))}"
            for a in self.state.appointments
        ]
        return join_alternatives(items) + "?" if items else ""

    # -- information ------------------------------------------------------------------------------
    async def _information(self, heard: Heard) -> str:
        parts = []
        if heard.asks_prices:
            reply = await self.functions("list_services", {})
            parts.append(_prices(reply, heard.service or self.state.service or self.state.last_service))
        elif heard.asks_services:
            reply = await self.functions("list_services", {})
            parts.append(reply["message"].replace(" Was darf es für Sie sein?", ""))
        if heard.asks_hours:
            reply = await self.functions("get_opening_hours", {})
            parts.append(reply["message"])
        return " ".join(parts)

    # -- the dialog around it ---------------------------------------------------------------------------
    def _ask(self, text: str, awaiting: str | None) -> Say:
        if not text.rstrip().endswith("?") and awaiting in QUESTIONS:
            text = f"{text} {QUESTIONS[awaiting]}"
        self.state.awaiting = awaiting
        self.state.question = _last_question(text) or HOW_CAN_I_HELP
        return Say(text)

    def _with(self, info: str, answer: Say) -> Say:
        return Say(f"{info} {answer.text}", answer.end_call, answer.transfer_number) if info else answer

    def _repair(self) -> Say:
        s = self.state
        s.misunderstood += 1
        if s.misunderstood > MAX_REPAIRS and self.transfer_number:
            s.awaiting = "transfer"
            return Say(
                "Ich verstehe Sie leider nicht gut. Soll ich Sie mit einer Mitarbeiterin im Salon verbinden?"
            )
        if s.misunderstood > MAX_REPAIRS:
            s.misunderstood = 0
            return Say(
                f"Ich verstehe Sie leider nicht gut. Bitte rufen Sie uns später noch einmal an. {GOODBYE}",
                end_call=True,
            )
        if s.misunderstood == 2:
            return Say(f"Entschuldigung, ich habe Sie wieder nicht verstanden. {s.question}")
        return Say(f"{NOT_UNDERSTOOD} {s.question}")

    def _transfer(self) -> Say:
        if not self.transfer_number:
            return self._ask(
                f"Ich kann Sie leider gerade nicht mit dem Salon verbinden. {HOW_CAN_I_HELP}", None
            )
        self.state.ended = True
        return Say(
            "Einen Moment bitte, ich verbinde Sie mit dem Salon.", transfer_number=self.transfer_number
        )

    def _goodbye(self) -> Say:
        self.state.ended = True
        return Say(GOODBYE, end_call=True)


def _last_question(text: str) -> str | None:
    """The question a reply ends with (what to ask again after a misunderstanding or silence); a
    sentence ends at . ! ? before a capital letter, not at the dot of "5. November"."""
    if not text.rstrip().endswith("?"):
        return None
    sentences = _SENTENCE_END.split(text.strip())
    return sentences[-1].strip()


_SENTENCE_END = re.compile(r"(?<=[^\d\s][.!?])\s+(?=[A-ZÄÖÜ])")


def _euro(value: float) -> str:
    return f"{value:.0f} Euro" if value == int(value) else f"{value:.2f}".replace(".", ",") + " Euro"


def _prices(reply: Reply, service: Service | None) -> str:
    items = [s for s in reply.get("leistungen", []) if s.get("preis_euro") is not None]
    if service is not None:
        for item in items:
            if item["name"] == service.name:
                price, minutes = _euro(item["preis_euro"]), item["dauer_minuten"]
                return f"{item['name']} kostet {price} und dauert etwa {minutes} Minuten."
    listed = [f"{i['name']} {_euro(i['preis_euro'])}" for i in items]
    return f"Unsere Preise: {join_alternatives(listed, 'und')}."
