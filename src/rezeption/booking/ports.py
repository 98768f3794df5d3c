"""The ports the booking use cases need, as small Protocols; adapters live elsewhere.

`UnitOfWork` opens a `BookingTx` for reading or writing (a writing one is the single writer on
SQLite and rolls back unless committed). `CalendarProvider` is where a booking really lives: our own
database (`calendars.local`) or an external calendar such as Cal.com (`calendars.calcom`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from rezeption.booking.lookup_model import CustomerHit
from rezeption.domain.clock import Clock
from rezeption.domain.errors import BookingError
from rezeption.domain.model import Appointment, AppointmentStatus, Catalog, Interval, Service, Slot, Staff

__all__ = [
    "BookingTx",
    "CalendarDirectory",
    "CalendarOutcomeUnknown",
    "CalendarProvider",
    "CalendarRefused",
    "CalendarUnavailable",
    "CallRecord",
    "CallStore",
    "Claim",
    "Clock",
    "ExternalBooking",
    "ExternalCalendar",
    "KeyAlreadyUsed",
    "MoveInDoubt",
    "NewAppointment",
    "OutboxJob",
    "ReplyStore",
    "SlotClaimFailed",
    "Trace",
    "UnitOfWork",
    "appointment_id_of_token",
    "booking_token",
]


class SlotClaimFailed(Exception):
    """The database refused the claim: another active appointment overlaps this stylist's block."""


class KeyAlreadyUsed(Exception):
    """A concurrent request committed an appointment under the same idempotency key first."""


class CalendarUnavailable(BookingError):
    """The external calendar cannot be reached (down, overloaded, refusing our key): nothing was booked.

    The caller hears an apology and the offer of a call back; a callback request is stored.
    """

    code = "calendar_unavailable"

    def __init__(self, detail: str = "", **details: Any) -> None:
        super().__init__(
            "Unser Terminkalender ist gerade leider nicht erreichbar, deshalb konnte ich nichts eintragen. "
            "Sollen wir Sie zurückrufen, sobald er wieder geht?",
            detail=detail,
            **details,
        )


class CalendarBusy(CalendarUnavailable):
    """The external calendar is too busy for us right now (its rate limit, or our budget for it):
    nothing was booked. Said differently from "down": it passes within a minute."""

    code = "calendar_busy"

    def __init__(self, detail: str = "", **details: Any) -> None:
        BookingError.__init__(
            self,
            "Bei unserem Terminkalender ist gerade sehr viel los, deshalb konnte ich noch nichts eintragen. "
            "Soll ich es in einer Minute noch einmal versuchen, oder sollen wir Sie zurückrufen?",
            detail=detail,
            **details,
        )


class AvailabilityUnchecked(CalendarUnavailable):
    """We could not look into the external calendar to answer a question about free times (nothing
    was asked to be booked, so nothing is said about booking)."""

    code = "availability_unchecked"

    def __init__(self, detail: str = "", **details: Any) -> None:
        BookingError.__init__(
            self,
            "Ich kann gerade leider nicht in unseren Terminkalender schauen. Einen Moment bitte, ich "
            "versuche es gleich noch einmal. Sonst kann Sie der Salon auch zurückrufen.",
            detail=detail,
            **details,
        )


class CalendarOutcomeUnknown(CalendarUnavailable):
    """The external calendar may or may not have applied a write; the reconciler settles it by token."""

    code = "calendar_unavailable"


class MoveInDoubt(CalendarOutcomeUnknown):
    """A move the external calendar may or may not have made: the appointment is kept (at the old
    time or the new one: the reconciler settles which), a callback request is stored. The caller is
    not told "not moved", which may be false (Cal.com's reschedule cancels the old booking)."""

    code = "move_in_doubt"

    def __init__(self, detail: str = "", **details: Any) -> None:
        BookingError.__init__(
            self,
            "Unser Terminkalender hat die Verlegung gerade nicht bestätigt, und ich kann nicht sicher "
            "sagen, ob sie schon eingetragen ist. Ihr Termin bleibt Ihnen auf jeden Fall erhalten. "
            "Der Salon prüft das und ruft Sie zurück.",
            detail=detail,
            **details,
        )


class CalendarRefused(Exception):
    """The external calendar answered and refused the time (taken, too soon, out of hours)."""


@dataclass(frozen=True)
class NewAppointment:
    """What a use case asks the store to insert."""

    tenant_id: int
    service_id: int
    staff_id: int
    customer_id: int | None
    starts_at: datetime
    ends_at: datetime
    block_starts_at: datetime
    block_ends_at: datetime
    status: AppointmentStatus
    source: str
    provider: str
    call_id: str | None
    idempotency_key: str | None
    spoken_name: str | None
    rescheduled_from_id: int | None = None
    pending_until: datetime | None = None


@dataclass(frozen=True)
class NewEvent:
    """A step of a new appointment's life story, stored with its claim (`insert_appointment`)."""

    kind: str
    idempotency_key: str | None = None
    recovery_point: str | None = None


@dataclass(frozen=True)
class Asker:
    """Who asks for a booking, as the caller-limit count sees them: their number, the name they
    gave, the call, the request's idempotency key, and the moment of asking. What is not known
    (None) matches nothing."""

    phone_e164: str | None
    name: str | None
    call_id: str | None
    now: datetime
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Held:
    """What a caller holds now: active future appointments by their number or name (the larger of
    the two counts), and booked in this very call."""

    by_caller: int
    in_call: int = 0
    key_used: bool = False
    """An appointment was already made under the request's idempotency key (a retry): read it."""


class BookingTx(Protocol):
    """One transaction's view of the store."""

    async def load_catalog(self, tenant_id: int) -> Catalog: ...

    async def catalog_version(self, tenant_id: int) -> int:
        """Bumped whenever the salon's catalog changes; UnknownTenant if there is no such salon."""
        ...

    async def tenant_id_by_slug(self, slug: str) -> int | None: ...

    async def busy(
        self, tenant_id: int, staff_ids: Sequence[int], window: Interval
    ) -> dict[int, list[Interval]]:
        """Blocks of active appointments per stylist that overlap `window`."""
        ...

    async def appointment(self, tenant_id: int, appointment_id: int) -> Appointment | None: ...

    async def appointment_by_key(self, idempotency_key: str) -> Appointment | None: ...

    async def held_and_busy(
        self, tenant_id: int, asker: Asker, *, staff_ids: Sequence[int], window: Interval
    ) -> tuple[Held, dict[int, list[Interval]]]:
        """Active future appointments held by the asker's number or name, and booked in their call;
        whether an appointment exists under their idempotency key; and `busy(tenant_id, staff_ids,
        window)`: in one round trip where it can."""
        ...

    @property
    def claims_with_read(self) -> bool:
        """Whether `claim_or_read` can claim here (else it only reads)."""
        ...

    async def claim_or_read(
        self,
        new: NewAppointment,
        *,
        name: str | None,
        phone_e164: str | None,
        at: datetime,
        events: Sequence[NewEvent],
        asker: Asker,
        limits: tuple[int, int],
        staff_ids: Sequence[int],
        window: Interval,
        or_else: Sequence[int] = (),
    ) -> tuple[Appointment | None, Held, dict[int, list[Interval]]]:
        """`claim_as_customer` of `new` at once, written only while the asker holds fewer than
        `limits` (by number or name, in this call), and `held_and_busy` as it was before the claim;
        in one round trip where it can, else only the read (the claim: None).

        The claim is for `new`'s stylist or, when that one is busy then or is being claimed at
        once for the same time by another request right now, for the first of `or_else` who is
        not (each one a stylist the salon's rules let work then). Meant for `claiming()`, where
        the statement commits on its own: in a transaction, the mark that a claim is being made
        stays until the transaction ends."""
        ...

    async def insert_appointment(
        self, new: NewAppointment, *, at: datetime, events: Sequence[NewEvent] = ()
    ) -> Appointment:
        """Insert, with `events` when it is in; SlotClaimFailed on an overlap, KeyAlreadyUsed on a
        duplicate idempotency key."""
        ...

    async def claim_as_customer(
        self,
        new: NewAppointment,
        *,
        name: str | None,
        phone_e164: str | None,
        at: datetime,
        events: Sequence[NewEvent] = (),
    ) -> Appointment:
        """`insert_appointment` for the customer with this phone and name (found, or created only
        when the claim is in); atomic on its own, so it needs no transaction around it."""
        ...

    async def set_status(
        self, appointment: Appointment, status: AppointmentStatus, *, at: datetime
    ) -> Appointment:
        """Change the status if the row is still at `appointment.version` (else SlotClaimFailed)."""
        ...

    async def add_event(
        self,
        appointment: Appointment,
        kind: str,
        *,
        at: datetime,
        idempotency_key: str | None = None,
        recovery_point: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def last_event(self, appointment_id: int, kind: str) -> tuple[str | None, dict[str, Any]] | None:
        """The idempotency key and data of the newest event of `kind`, if any."""
        ...

    async def upsert_customer(
        self, tenant_id: int, *, name: str | None, phone_e164: str | None, at: datetime
    ) -> int:
        """Find the customer with this phone and name (or create one); return the id."""
        ...

    async def confirm_external(
        self, appointment: Appointment, *, external_uid: str, at: datetime
    ) -> Appointment:
        """Pending -> confirmed with the provider's uid, if the row is still at `appointment.version`."""
        ...

    async def rebind_external(
        self, appointment: Appointment, *, external_uid: str, at: datetime
    ) -> Appointment:
        """A confirmed appointment's provider uid replaced (its booking there is another one now),
        if the row is still at `appointment.version` and confirmed (SlotClaimFailed otherwise)."""
        ...

    async def set_block(self, appointment: Appointment, block: Interval, *, at: datetime) -> Appointment:
        """Change the appointment's claimed block (SlotClaimFailed on overlap or a concurrent change)."""
        ...

    async def enqueue_job(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        at: datetime,
        tenant_id: int | None = None,
        dedupe_key: str | None = None,
        run_after: datetime | None = None,
    ) -> None:
        """Store a job for the outbox worker in this transaction (a duplicate dedupe key is a no-op)."""
        ...

    async def finish_job(self, dedupe_key: str, *, at: datetime) -> None:
        """Mark the job with this dedupe key done (its work was done inline)."""
        ...

    async def pending_due(self, tenant_id: int, now: datetime) -> list[Appointment]:
        """Pending appointments whose deadline has passed."""
        ...

    async def appointments_by_uid(self, tenant_id: int, uids: Sequence[str]) -> dict[str, Appointment]:
        """The salon's appointments carrying these provider uids."""
        ...

    async def external_tenants(self) -> list[int]:
        """Ids of the salons whose bookings live in an external calendar."""
        ...

    async def commit(self) -> None: ...


class UnitOfWork(Protocol):
    """Opens transactions; leaving the block without `commit()` rolls back."""

    def reading(self) -> AbstractAsyncContextManager[BookingTx]: ...

    def writing(self) -> AbstractAsyncContextManager[BookingTx]: ...

    def claiming(self) -> AbstractAsyncContextManager[BookingTx]:
        """For reads and writes that are each atomic on their own (`claim_as_customer`): no
        transaction where the database commits each statement alone; else as `writing()`."""
        ...


@dataclass(frozen=True)
class ExternalBooking:
    """What the calendar provider answered for a booking (uid None for our own calendar).

    `status` is the provider's word (accepted, pending, cancelled); `token` our own booking token
    when the booking carries one; `service_id`/`staff_id` what it maps to in the salon's catalog.
    """

    uid: str | None
    start: datetime
    end: datetime
    status: str = "accepted"
    token: str | None = None
    service_id: int | None = None
    staff_id: int | None = None
    rescheduled_to_uid: str | None = None
    rescheduled_from_uid: str | None = None  # the booking this one was moved from (Cal.com reschedule)
    created_at: datetime | None = None  # when the provider made it (its own clock)

    @property
    def active(self) -> bool:
        """Whether the booking holds its time at the provider."""
        return self.status in ("accepted", "pending")


@dataclass(frozen=True)
class OutboxJob:
    """Work that must happen eventually, claimed by one worker at a time."""

    id: int
    tenant_id: int | None
    kind: str
    payload: dict[str, Any]
    attempts: int


class SlotSource(Protocol):
    """Free starts read once for a span of time, asked for any window inside it."""

    def within(self, window: Interval) -> list[Slot]: ...


class CalendarProvider(Protocol):
    """Where bookings really live. `external` False means the local row itself is the booking."""

    name: str
    external: bool

    async def free_slots(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> list[Slot]: ...

    async def free_starts(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> SlotSource:
        """The free starts in `window`, read once (one database read, or Cal.com's answers for its
        days fetched together), to be asked for narrower windows inside it without reading again."""
        ...

    async def create(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking: ...

    async def cancel(self, catalog: Catalog, appointment: Appointment) -> None: ...


def booking_token(appointment: Appointment) -> str:
    """Our token for the appointment at an external calendar: its id plus a check of its creation.

    Deterministic, so every saga step and the reconciler compute the same one; the id is readable
    back with `appointment_id_of_token`.
    """
    digest = hashlib.sha256(f"{appointment.id}|{appointment.created_at.isoformat()}".encode()).hexdigest()
    return f"rz-{appointment.id}-{digest[:10]}"


def appointment_id_of_token(token: str | None) -> int | None:
    """The appointment id inside one of our tokens (None for anything else)."""
    if not token or not token.startswith("rz-"):
        return None
    parts = token.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


@runtime_checkable
class ExternalCalendar(CalendarProvider, Protocol):
    """An external calendar (Cal.com): what the saga and the reconciler need beyond the basic port.

    Errors: `CalendarRefused` (the time is not free there), `CalendarUnavailable` (nothing was
    written), `CalendarOutcomeUnknown` (a write may have happened; settle it by token later).
    """

    async def reschedule(
        self, catalog: Catalog, appointment: Appointment, start: datetime
    ) -> ExternalBooking: ...

    async def find(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking | None:
        """The booking carrying this appointment's token (any status), or None."""
        ...

    async def find_live(self, catalog: Catalog, appointment: Appointment) -> list[ExternalBooking]:
        """Every live booking carrying this appointment's token around its time."""
        ...

    async def get(self, catalog: Catalog, uid: str) -> ExternalBooking | None: ...

    async def bookings(self, catalog: Catalog, window: Interval) -> list[ExternalBooking]:
        """Every booking of the salon's mapped event types that starts inside `window` (any status)."""
        ...

    async def cancel_uid(
        self,
        catalog: Catalog,
        uid: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        staff_id: int | None = None,
    ) -> None:
        """Cancel by provider uid; done when it is cancelled there (also if it already was). With
        the booking's stylist, `start` and `end` its time is free again in the cached slots at
        once; with `start` only, that day's are read again; with neither, all of the salon's."""
        ...

    def forget_slots(self, catalog: Catalog, start: datetime | None = None) -> None:
        """Drop cached free slots (of the day of `start`, or all of the salon's)."""
        ...

    def note(self, catalog: Catalog, booking: ExternalBooking) -> None:
        """The cached free slots learn of a booking found there (active: its time is taken;
        cancelled: it is free again), without asking the calendar."""
        ...

    async def claim_reconcile(self, seconds: float) -> bool:
        """Whether this process runs the salon's scheduled reconcile pass now (one per `seconds`
        across the processes sharing the calendar's state)."""
        ...

    async def listing_due(self, every: float, *, hold: float) -> bool:
        """Whether this process lists the calendar's bookings now: none was listed within `every`
        seconds (across the processes), and this one claims the listing for `hold` seconds."""
        ...

    async def listed(self, every: float) -> None:
        """A listing succeeded: the next is due in `every` seconds (a failed one is tried again
        once its `hold` lapses)."""
        ...


class CalendarDirectory(Protocol):
    """Which calendar a salon's bookings live in (its salon file says: local or calcom)."""

    def for_tenant(self, catalog: Catalog) -> CalendarProvider: ...


ERASED = "_erased"
"""A key in the memory of a call someone was erased from (store.gdpr): a call event that comes
later (Retell sends call_analyzed after call_ended, and a webhook again after our 503) writes
nothing into it, so no transcript, summary or number comes back."""


@dataclass(frozen=True)
class CallRecord:
    """A phone call as the functions need it: its salon, numbers and what the caller told us."""

    retell_call_id: str
    tenant_id: int | None
    from_number: str | None
    memory: dict[str, Any] = field(default_factory=dict)
    agent_id: str | None = None
    to_number: str | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class Trace:
    """One function call's arguments, reply and latency, for operators."""

    tenant_id: int
    retell_call_id: str
    function: str
    args: dict[str, Any]
    reply: dict[str, Any]
    latency_ms: int
    at: datetime
    flags: dict[str, Any] | None = None
    """The feature-flag decisions taken for this call: {flag: {"on": bool, "why": rule}}."""


@dataclass(frozen=True)
class Claim:
    """Either we own an idempotency key (do the work), or here is the stored reply."""

    owned: bool
    reply: dict[str, Any] | None = None


@dataclass(frozen=True)
class RingIn:
    """What a call's ring-in learned: whether its signed request is new (False: a replay), and the
    salon's customers at the caller's number (for caller ID; empty when none was looked up)."""

    first: bool
    customers: list[CustomerHit]


class CallStore(Protocol):
    """Where calls, their memory, their events and the function-call traces are kept."""

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def ensure_call(
        self,
        call_id: str,
        *,
        tenant_id: int,
        at: datetime,
        agent_id: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
    ) -> CallRecord:
        """The call, recorded now if it was not (the first function call or call_inbound)."""

    async def tenant_for(self, *, agent_id: str | None, to_number: str | None) -> int | None:
        """The salon an agent id or a called number belongs to."""

    async def remember(self, call_id: str, facts: Mapping[str, Any]) -> None:
        """Merge facts into the call's memory (concurrent merges keep each other's facts)."""

    async def record_event(self, call_id: str, **event: Any) -> None:
        """Apply a call event (call_started, call_ended, call_analyzed) once."""

    async def record_agreeing_event(self, call_id: str, **event: Any) -> bool:
        """Apply a call event once if a call stored under `call_id` agrees with it (its salon
        `tenant_id`, the same agent id, called and calling number), in one step; False when it was
        not applied: a duplicate, an erased call, one that disagrees, or a store that cannot tell.
        The salons' routes are not checked here: only `Calls.record_if_agrees`, which checks them
        first, may call it."""

    async def end_call(self, call_id: str, *, ended_at: datetime) -> bool:
        """Mark the call ended at `ended_at`, writing nothing else, unless it already ended."""

    async def add_traces(self, traces: Sequence[Trace]) -> None:
        """Store a batch of function-call traces."""

    async def call_at_first_sight(
        self, call_id: str, digest: str, *, now: datetime
    ) -> tuple[CallRecord | None, bool]:
        """A read function's first step: the call (None: unknown) and whether its signed request
        `digest` is new, recorded now (False: seen before, a replay)."""

    async def ring_in(
        self,
        call_id: str | None,
        *,
        digest: str,
        now: datetime,
        tenant_id: int,
        agent_id: str | None,
        from_number: str | None,
        to_number: str | None,
        phone: str | None,
    ) -> RingIn:
        """call_inbound's writes and read at once: record the signature `digest` (a replay's was
        seen before), open the call `call_id` as `ensure_call` does (when it has one), and read
        salon `tenant_id`'s customers at `phone` (None: read none)."""


class ReplyStore(Protocol):
    """Replies of writes already made, by idempotency key, shared by every process."""

    async def wait(
        self,
        key: str,
        *,
        scope: str,
        tenant_id: int | None,
        call_id: str | None = None,
        patience: float = 15.0,
    ) -> Claim:
        """Own the key, or wait for its owner's reply (until `patience` runs out)."""

    async def claim_in_call(
        self,
        key: str | None,
        *,
        scope: str,
        call_id: str,
        tenant_id: int | None,
        agent_id: str | None,
        from_number: str | None,
        to_number: str | None,
        unless_remembered: str | None = None,
    ) -> tuple[CallRecord | None, bool]:
        """The call (found, or opened for salon `tenant_id` when new) and, when it is that salon's
        and its memory does not hold `unless_remembered`, the claim of `key`; returns the call and
        whether the key is now ours."""

    def holding(self, key: str) -> AbstractAsyncContextManager[None]:
        """Keep the key's lease alive while the work runs."""

    async def finish(
        self,
        key: str,
        reply: dict[str, Any],
        *,
        call_id: str | None = None,
        learned: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the reply; merge `learned` into the call's memory in the same transaction."""

    async def finish_soon(
        self,
        key: str,
        reply: dict[str, Any],
        *,
        call_id: str | None = None,
        learned: Mapping[str, Any] | None = None,
    ) -> None:
        """`finish`, now or a moment later in a batch with others (the key stays running, under
        its lease, until then)."""

    async def finish_now(
        self,
        key: str,
        reply: dict[str, Any],
        *,
        call_id: str,
        learned: Mapping[str, Any] | None = None,
        patience: float,
    ) -> None:
        """`finish` before returning, storing only a reply still running (as a batch does), unless
        a reply of the same call waits to be stored (its replies are stored in order) or it takes
        longer than `patience` seconds: then in the next batch."""

    async def settle(self, call_id: str) -> None:
        """Store now what waits to be stored for call `call_id`: its memory is read next."""

    async def close(self) -> None:
        """Store what waits, and stop."""

    async def release(self, key: str) -> None:
        """Give the key up without a reply (nothing was done, or it must be retried)."""
