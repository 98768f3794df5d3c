"""SQL implementation of the booking store (`booking.ports.BookingTx`) on one AsyncSession.

Repositories never commit on their own: the use case that opened the transaction decides. Claims
that the database refuses (overlap) surface as `SlotClaimFailed`. The statements of a booking,
cancellation or availability check run as Core statements on the session's connection: the ORM's
unit of work cost about half of a booking request's CPU and buys nothing for single-row writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from rezeption.booking.ports import Asker, Held, KeyAlreadyUsed, NewAppointment, NewEvent, SlotClaimFailed
from rezeption.domain.errors import UnknownTenant
from rezeption.domain.model import ACTIVE_STATUSES, Appointment, AppointmentStatus, Catalog, Interval
from rezeption.language.names import search_keys
from rezeption.ops.metrics import DEADLOCKS
from rezeption.store import direct, outbox
from rezeption.store.mapping import (
    appointment_from_row,
    closure_from_row,
    service_from_row,
    staff_from_row,
    tenant_from_row,
)
from rezeption.store.tables import (
    AppointmentEventRow,
    AppointmentRow,
    ClosureRow,
    CustomerNameKeyRow,
    CustomerRow,
    OutboxJobRow,
    ServiceRow,
    ServiceStaffRow,
    StaffAbsenceRow,
    StaffRow,
    TenantRow,
    table,
)

APPOINTMENTS = table(AppointmentRow)
EVENTS = table(AppointmentEventRow)
CUSTOMERS = table(CustomerRow)
NAME_KEYS = table(CustomerNameKeyRow)
TENANTS = table(TenantRow)
OVERLAP_CONSTRAINT = "appointments_no_overlap"
ACTIVE = [s.value for s in ACTIVE_STATUSES]
# The active statuses as a constant list in the SQL (no bound list: see store.direct).
IS_ACTIVE = APPOINTMENTS.c.status.op("IN")(literal_column("(" + ", ".join(f"'{s}'" for s in ACTIVE) + ")"))

# The hot statements, built once with placeholders: a statement built per call spent more CPU on
# its cache key than the database spent executing it.
_BUSY_WHERE = (
    APPOINTMENTS.c.tenant_id == bindparam("tenant_id"),
    IS_ACTIVE,
    APPOINTMENTS.c.block_starts_at < bindparam("window_end"),
    APPOINTMENTS.c.block_ends_at > bindparam("window_start"),
)
_HALF_OPEN: Any = literal_column("'[)'")
_BUSY_WHERE_PG = (
    APPOINTMENTS.c.tenant_id == bindparam("tenant_id"),
    IS_ACTIVE,
    # The no-overlap constraint's own GiST index (its expression and its partial predicate), so the
    # blocks overlapping the window are found directly. The two comparisons above take a B-tree
    # from the stylist's first appointment ever up to the window: a cost that grows with history.
    func.tstzrange(APPOINTMENTS.c.block_starts_at, APPOINTMENTS.c.block_ends_at, _HALF_OPEN).op("&&")(
        func.tstzrange(
            bindparam("window_start", type_=APPOINTMENTS.c.block_starts_at.type),
            bindparam("window_end", type_=APPOINTMENTS.c.block_ends_at.type),
            _HALF_OPEN,
        )
    ),
)
BUSY = select(APPOINTMENTS.c.staff_id, APPOINTMENTS.c.block_starts_at, APPOINTMENTS.c.block_ends_at).where(
    APPOINTMENTS.c.staff_id.in_(bindparam("staff_ids", expanding=True)), *_BUSY_WHERE
)
BUSY_BY_ARRAY = select(
    APPOINTMENTS.c.staff_id, APPOINTMENTS.c.block_starts_at, APPOINTMENTS.c.block_ends_at
).where(APPOINTMENTS.c.staff_id == any_(bindparam("staff_ids", type_=ARRAY(BigInteger))), *_BUSY_WHERE_PG)
"""BUSY for PostgreSQL's direct path: the stylists as one array parameter."""
APPOINTMENT_BY_ID = select(APPOINTMENTS).where(APPOINTMENTS.c.id == bindparam("id"))
APPOINTMENT_BY_KEY = select(APPOINTMENTS).where(APPOINTMENTS.c.idempotency_key == bindparam("key"))
INSERT_APPOINTMENT = insert(APPOINTMENTS).returning(*APPOINTMENTS.c)
_NEW_FIELDS = tuple(f.name for f in fields(NewAppointment))
_CLAIMED = [*_NEW_FIELDS, "version", "created_at", "updated_at"]
CLAIM_APPOINTMENT = (
    pg_insert(APPOINTMENTS)
    .values({name: bindparam(name, type_=APPOINTMENTS.c[name].type) for name in _CLAIMED})
    .on_conflict_do_nothing()
    .returning(*APPOINTMENTS.c)
)


def _events_of(claimed: Any, count: int) -> Any:
    """The first `count` events of the appointment the CTE `claimed` returns, as one INSERT CTE
    (the steps get their ids in order); nothing is written when `claimed` returns no row."""
    steps = [
        select(
            claimed.c.tenant_id,
            claimed.c.id,
            bindparam(f"kind_{n}", type_=EVENTS.c.kind.type),
            bindparam(f"recovery_point_{n}", type_=EVENTS.c.recovery_point.type),
            bindparam(f"idempotency_key_{n}", type_=EVENTS.c.idempotency_key.type),
            bindparam(f"data_{n}", type_=EVENTS.c.data.type),
            bindparam("created_at", type_=EVENTS.c.at.type),
        )
        for n in range(count)
    ]
    return (
        insert(EVENTS)
        .from_select(
            ["tenant_id", "appointment_id", "kind", "recovery_point", "idempotency_key", "data", "at"],
            union_all(*steps) if count > 1 else steps[0],
        )
        .cte("events")
    )


@cache
def _claim_with_events(count: int) -> Any:
    """PostgreSQL: CLAIM_APPOINTMENT and its first `count` events in one statement (data-modifying
    CTEs): an event is written only when the claim returns its row."""
    if count == 0:
        return CLAIM_APPOINTMENT
    claimed = CLAIM_APPOINTMENT.cte("claimed")
    return select(claimed).add_cte(_events_of(claimed, count))


INSERT_EVENT = insert(EVENTS)
CUSTOMER_BY_PHONE_AND_NAME = (
    select(CUSTOMERS.c.id)
    .where(
        CUSTOMERS.c.tenant_id == bindparam("tenant_id"),
        CUSTOMERS.c.phone_e164 == bindparam("phone"),
        CUSTOMERS.c.name_normalized == bindparam("normalized"),
    )
    .limit(1)
)
INSERT_CUSTOMER = insert(CUSTOMERS).returning(CUSTOMERS.c.id)


def _new_customer(condition: Any, *, at: str, drawn_id: Any | None = None) -> tuple[Any, Any]:
    """PostgreSQL CTEs writing a new customer when `condition` holds (with `drawn_id`, an id drawn
    beforehand, else the sequence's next), and its name's search keys: (`created`, `keys`); a
    statement that adds `keys` writes both. The time is the parameter named `at`."""
    tenant = bindparam("tenant_id", type_=CUSTOMERS.c.tenant_id.type)
    when = bindparam(at, type_=CUSTOMERS.c.created_at.type)
    columns = ["tenant_id", "name", "name_normalized", "phone_e164", "created_at", "updated_at"]
    values: list[Any] = [
        tenant,
        bindparam("name", type_=CUSTOMERS.c.name.type),
        bindparam("normalized", type_=CUSTOMERS.c.name_normalized.type),
        bindparam("phone", type_=CUSTOMERS.c.phone_e164.type),
        when,
        when,
    ]
    if drawn_id is not None:
        columns, values = ["id", *columns], [drawn_id, *values]
    created = (
        insert(CUSTOMERS)
        .from_select(columns, select(*values).where(condition))
        .returning(CUSTOMERS.c.id)
        .cte("created")
    )
    keys = (
        insert(NAME_KEYS)
        .from_select(
            ["customer_id", "tenant_id", "key"],
            select(created.c.id, tenant, func.unnest(bindparam("keys", type_=ARRAY(String)))),
        )
        .cte("keys")
    )
    return created, keys


def _customer_in_one_statement() -> Any:
    """PostgreSQL: find the customer by number and name, or create it with its name's search keys,
    in one round trip (data-modifying CTEs) instead of three."""
    found = CUSTOMER_BY_PHONE_AND_NAME.cte("found")
    created, keys = _new_customer(~exists(select(found.c.id)), at="at")
    return select(found.c.id).union_all(select(created.c.id)).add_cte(keys)


CUSTOMER_IN_ONE_STATEMENT = _customer_in_one_statement()


def _claim_for_customer(
    count: int, seen: Any | None = None, guard: Any | None = None, staff: Any | None = None
) -> tuple[Any, list[Any]]:
    """PostgreSQL CTEs: the customer (found by number and name, or a new one's id drawn from its
    sequence), the claim (an INSERT from `seen`'s row, when `guard` holds on it, for `staff`'s
    stylist when given) and, written only when the claim returns its row, the new customer with
    its name's search keys and the claim's first `count` events: (`claimed`, the CTEs to add).

    A caller whose claim is refused leaves no customer behind. The appointment's foreign key is
    checked at the end of the statement, when both rows are in."""
    found = CUSTOMER_BY_PHONE_AND_NAME.cte("found")
    fresh = (
        select(func.nextval(func.pg_get_serial_sequence(CUSTOMERS.name, "id")).label("id"))
        .where(~exists(select(found.c.id)))
        .cte("fresh")
    )
    customer = select(found.c.id).union_all(select(fresh.c.id)).scalar_subquery()
    columns: dict[str, Any] = {name: bindparam(name, type_=APPOINTMENTS.c[name].type) for name in _CLAIMED}
    columns["customer_id"] = customer
    if staff is not None:
        columns["staff_id"] = staff
    values = select(*columns.values())
    if seen is not None:
        values = values.select_from(seen).where(guard if guard is not None else true())
    claimed = (
        pg_insert(APPOINTMENTS)
        .from_select(list(columns), values)
        .on_conflict_do_nothing()
        .returning(*APPOINTMENTS.c)
        .cte("claimed")
    )
    _, keys = _new_customer(exists(select(claimed.c.id)), at="created_at", drawn_id=fresh.c.id)
    return claimed, [keys, _events_of(claimed, count)] if count else [keys]


@cache
def _claim_as_customer(count: int) -> Any:
    """PostgreSQL: the customer (found by number and name, or created with its name's search keys),
    the claim and its first `count` events, in one statement that commits on its own
    (`_claim_for_customer`)."""
    claimed, written = _claim_for_customer(count)
    return select(claimed).add_cte(*written)


_BY_PHONE = CUSTOMERS.c.phone_e164 == bindparam("phone")
_BY_NAME = CUSTOMERS.c.name_normalized == bindparam("normalized")
_ACTIVE_FUTURE = (
    IS_ACTIVE,
    APPOINTMENTS.c.starts_at > bindparam("now"),
)


def _held_by(customer_match: Any) -> Any:
    """Active future appointments of the salon's customers matching `customer_match`: an index
    step on customers, then appointments (customer_id, starts_at). The salon is the customers'
    (an appointment's customer is of its salon); a filter on appointments' own tenant_id let the
    planner walk the salon's whole future by (tenant_id, starts_at) instead (1.5 s per booking on
    a fresh table with 2,000 appointments)."""
    customers = select(CUSTOMERS.c.id).where(CUSTOMERS.c.tenant_id == bindparam("tenant_id"), customer_match)
    return (
        select(func.count())
        .select_from(APPOINTMENTS)
        .where(APPOINTMENTS.c.customer_id.in_(customers), *_ACTIVE_FUTURE)
        .scalar_subquery()
    )


HELD_BY_CALLER = select(
    # One statement for both booking limits, each count on its own index: by number, by name, and
    # booked in this call (whose appointments may belong to other customers: a withheld number and
    # a new name each time; Retell's call ids are unique and signed, so the call id alone decides).
    # One OR over all three read every active appointment of the salon.
    _held_by(_BY_PHONE).label("by_phone"),
    _held_by(_BY_NAME).label("by_name"),
    select(func.count())
    .select_from(APPOINTMENTS)
    .where(APPOINTMENTS.c.call_id == bindparam("call_id"), *_ACTIVE_FUTURE)
    .scalar_subquery()
    .label("in_call"),
    # and the retry's question, asked in the same round trip: was this key's booking made already?
    exists().where(APPOINTMENTS.c.idempotency_key == bindparam("key")).label("key_used"),
)
_BUSY_ARRAYS = (
    select(
        func.array_agg(APPOINTMENTS.c.staff_id).label("busy_staff"),
        func.array_agg(APPOINTMENTS.c.block_starts_at).label("busy_starts"),
        func.array_agg(APPOINTMENTS.c.block_ends_at).label("busy_ends"),
    )
    .where(APPOINTMENTS.c.staff_id == any_(bindparam("staff_ids", type_=ARRAY(BigInteger))), *_BUSY_WHERE_PG)
    .subquery("busy")
)
HELD_AND_BUSY = HELD_BY_CALLER.add_columns(
    _BUSY_ARRAYS.c.busy_staff, _BUSY_ARRAYS.c.busy_starts, _BUSY_ARRAYS.c.busy_ends
)
"""PostgreSQL: HELD_BY_CALLER and BUSY_BY_ARRAY in one round trip (the blocks as three arrays)."""


_INT4: Any = literal_column("2147483647")  # a stylist's id as the advisory lock's second key


def _chosen_stylist(choices: int) -> Any:
    """The first of the parameters `choice_0`.. (`choices` stylists' ids, in the order to try them)
    who is not busy in HELD_AND_BUSY's read and whose claim at this time nobody else is making
    right now: a transaction-level advisory lock on (the start's minute, the stylist), tried,
    never waited for. NULL when there is none.

    Two claims at once for one time racing for one stylist: without the lock, the second one's
    insert waits for the first one's commit and is then refused, and the booking is read and
    claimed again (a second statement, and every stylist's rules in Python). With it, the second
    claim takes its next choice. The lock only steers: the no-overlap constraint still decides,
    and a lock taken in vain (the caller's limits, a stylist busy if PostgreSQL evaluated the AND
    the other way round) only steers others elsewhere until its transaction ends: the statement
    itself, as `uow.claiming()` runs it. A CASE tries the choices in order and stops at the first,
    so no further lock is taken; a NULL choice (padding) is never taken. These are our only
    advisory locks."""
    minute = bindparam("lock_minute", type_=Integer)
    busy = _BUSY_ARRAYS.c.busy_staff
    whens = []
    for n in range(choices):
        stylist = bindparam(f"choice_{n}", type_=BigInteger)
        free_now = and_(
            func.array_position(busy, stylist).is_(None),
            func.pg_try_advisory_xact_lock(minute, cast(stylist.op("%")(_INT4), Integer)),
        )
        whens.append((free_now, stylist))
    return case(*whens, else_=null()).label("chosen")


@cache
def _claim_or_read(count: int, choices: int) -> Any:
    """PostgreSQL: `_claim_as_customer` tried at once, beside HELD_AND_BUSY (its first columns), in
    one statement, for the first of `choices` stylists free then (`_chosen_stylist`).

    The claim is written only within the caller's limits (`max_active` by number and by name,
    `max_in_call` in this call) as HELD_AND_BUSY counts them; the no-overlap constraint and the
    unique idempotency key refuse it as they refuse any claim. One row comes back either way: what
    the caller held and who was busy before the claim (the same snapshot), and the claimed
    appointment's columns, all NULL when nothing was claimed. `seen` is read twice, so PostgreSQL
    evaluates it, and the choice with its lock, once."""
    seen = HELD_AND_BUSY.add_columns(_chosen_stylist(choices)).cte("seen")
    within = and_(
        seen.c.by_phone < bindparam("max_active", type_=Integer),
        seen.c.by_name < bindparam("max_active", type_=Integer),
        seen.c.in_call < bindparam("max_in_call", type_=Integer),
        seen.c.chosen.is_not(None),
    )
    claimed, written = _claim_for_customer(count, seen, within, staff=seen.c.chosen)
    return select(seen, claimed).select_from(seen.outerjoin(claimed, true())).add_cte(*written)


CATALOG_VERSION = select(TENANTS.c.catalog_version).where(TENANTS.c.id == bindparam("id"))


def is_overlap_violation(error: IntegrityError) -> bool:
    """Whether the database refused a row because of the no-overlap rule (either backend)."""
    return OVERLAP_CONSTRAINT in str(error.orig)


def is_deadlock(error: DBAPIError) -> bool:
    """PostgreSQL's deadlock (40P01). Two concurrent inserts that each conflict with the other under
    an exclusion constraint wait for each other (unlike a unique index), and PostgreSQL aborts one:
    for that one the slot was taken, exactly as with a plain overlap."""
    return getattr(error.orig, "sqlstate", None) == "40P01" or "deadlock detected" in str(error.orig)


def _normalized(name: str | None) -> str | None:
    """A customer name as stored for matching: case-folded, single spaces."""
    return " ".join(name.casefold().split()) if name else None


def _held_params(tenant_id: int, asker: Asker) -> dict[str, Any]:
    """The parameters of HELD_BY_CALLER (and HELD_AND_BUSY): what is not known matches nothing."""
    return {
        "tenant_id": tenant_id,
        "phone": asker.phone_e164 or "",
        "normalized": _normalized(asker.name) or "",
        "call_id": asker.call_id or "",
        "now": asker.now,
        "key": asker.idempotency_key or "",
    }


def _busy_by_staff(blocks: Iterable[tuple[int, datetime, datetime]]) -> dict[int, list[Interval]]:
    """(stylist, block start, block end) rows as each stylist's busy intervals."""
    busy: dict[int, list[Interval]] = defaultdict(list)
    for staff_id, start, end in blocks:
        busy[staff_id].append(Interval(start, end))
    return busy


def _busy_of(row: Any) -> dict[int, list[Interval]]:
    """Each stylist's busy intervals from HELD_AND_BUSY's three arrays."""
    blocks = zip(row.busy_staff or (), row.busy_starts or (), row.busy_ends or (), strict=True)
    return _busy_by_staff(blocks)


def _held(row: Any) -> Held:
    """A caller's holdings from the columns of HELD_BY_CALLER."""
    return Held(
        by_caller=max(int(row[0] or 0), int(row[1] or 0)), in_call=int(row[2] or 0), key_used=bool(row[3])
    )


def _claim_values(new: NewAppointment, at: datetime, events: Sequence[NewEvent]) -> dict[str, Any]:
    """The values of a claim of `new` (and, on PostgreSQL, of its `events`: `_claim_with_events`)."""
    values = {name: getattr(new, name) for name in _NEW_FIELDS}  # asdict() deep-copies every value
    values.update(status=new.status.value, version=1, created_at=at, updated_at=at)
    for n, step in enumerate(events):
        values.update(
            {
                f"kind_{n}": step.kind,
                f"recovery_point_{n}": step.recovery_point,
                f"idempotency_key_{n}": step.idempotency_key,
                f"data_{n}": {},
            }
        )
    return values


class SqlBookingTx:
    """The booking store inside one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._events: list[dict[str, Any]] = []  # written in one statement at commit (or before a read)

    async def _conn(self) -> AsyncConnection:
        """The session's connection, in its transaction, for Core statements."""
        return await self.session.connection()

    @property
    def claims_with_read(self) -> bool:
        """Whether `claim_or_read` claims (PostgreSQL) or only reads (elsewhere)."""
        bind = self.session.bind
        return bind is not None and bind.dialect.name == "postgresql"

    async def load_catalog(self, tenant_id: int) -> Catalog:
        """The salon with its services and staff (holidays are added by the booking layer)."""
        tenant_row = await self.session.get(TenantRow, tenant_id)
        if tenant_row is None:
            raise UnknownTenant(str(tenant_id))
        staff_rows = (
            await self.session.scalars(
                select(StaffRow)
                .where(StaffRow.tenant_id == tenant_id)
                .order_by(StaffRow.position, StaffRow.id)
            )
        ).all()
        absences: dict[int, list[Interval]] = defaultdict(list)
        for absence in await self.session.scalars(
            select(StaffAbsenceRow).where(StaffAbsenceRow.tenant_id == tenant_id)
        ):
            absences[absence.staff_id].append(Interval(absence.starts_at, absence.ends_at))
        offered: dict[int, set[int]] = defaultdict(set)
        links = await self.session.execute(
            select(ServiceStaffRow.service_id, ServiceStaffRow.staff_id)
            .join(ServiceRow, ServiceRow.id == ServiceStaffRow.service_id)
            .where(ServiceRow.tenant_id == tenant_id)
        )
        for service_id, staff_id in links:
            offered[service_id].add(staff_id)
        service_rows = (
            await self.session.scalars(
                select(ServiceRow)
                .where(ServiceRow.tenant_id == tenant_id)
                .order_by(ServiceRow.position, ServiceRow.id)
            )
        ).all()
        closure_rows = await self.session.scalars(
            select(ClosureRow)
            .where(ClosureRow.tenant_id == tenant_id)
            .order_by(ClosureRow.origin.desc(), ClosureRow.id)  # 'file' first, 'command' wins
        )
        return Catalog(
            tenant=tenant_from_row(tenant_row),
            services=tuple(service_from_row(r, frozenset(offered[r.id])) for r in service_rows),
            staff=tuple(staff_from_row(r, absences[r.id]) for r in staff_rows),
            closures=tuple(closure_from_row(r) for r in closure_rows),
        )

    async def catalog_version(self, tenant_id: int) -> int:
        """The salon's catalog version (bumped by every salon-file load); UnknownTenant if none."""
        conn = await self._conn()
        version = await conn.scalar(CATALOG_VERSION, {"id": tenant_id})
        if version is None:
            raise UnknownTenant(str(tenant_id))
        return int(version)

    async def tenant_id_by_slug(self, slug: str) -> int | None:
        """The id of the salon with this slug."""
        return (await self.session.scalars(select(TenantRow.id).where(TenantRow.slug == slug))).first()

    async def busy(
        self, tenant_id: int, staff_ids: Sequence[int], window: Interval
    ) -> dict[int, list[Interval]]:
        """Blocks of active appointments per stylist overlapping `window`."""
        conn = await self._conn()
        postgres = conn.dialect.name == "postgresql"
        rows = await direct.rows(
            conn,
            BUSY_BY_ARRAY if postgres else BUSY,
            {
                "tenant_id": tenant_id,
                "staff_ids": list(staff_ids),
                "window_start": window.start,
                "window_end": window.end,
            },
        )
        return _busy_by_staff(rows)

    async def appointment(self, tenant_id: int, appointment_id: int) -> Appointment | None:
        """The salon's appointment with this id (None for another salon's)."""
        conn = await self._conn()
        row = (await conn.execute(APPOINTMENT_BY_ID, {"id": appointment_id})).first()
        if row is None or row.tenant_id != tenant_id:
            return None
        return appointment_from_row(row)

    async def appointment_by_key(self, idempotency_key: str) -> Appointment | None:
        """The appointment created under this idempotency key."""
        conn = await self._conn()
        row = await direct.first(conn, APPOINTMENT_BY_KEY, {"key": idempotency_key})
        return appointment_from_row(row) if row else None

    async def insert_appointment(
        self, new: NewAppointment, *, at: datetime, events: Sequence[NewEvent] = ()
    ) -> Appointment:
        """Claim the slot, with `events` when it is claimed; SlotClaimFailed on overlap,
        KeyAlreadyUsed on a duplicate key.

        PostgreSQL: INSERT ... ON CONFLICT DO NOTHING, which takes the no-overlap exclusion
        constraint and the unique key as arbiters: a refused claim returns no row instead of an
        error, so no savepoint (two round trips) is needed, and the speculative insertion waits for
        a concurrent claimant instead of deadlocking with it; the events go in the same statement.
        SQLite: its triggers abort only the statement; the savepoint keeps the transaction clean
        either way.
        """
        conn = await self._conn()
        if conn.dialect.name == "postgresql":
            values = _claim_values(new, at, events)
            return await self._claimed(new, await direct.first(conn, _claim_with_events(len(events)), values))
        values = _claim_values(new, at, ())
        try:
            async with conn.begin_nested():
                row = (await conn.execute(INSERT_APPOINTMENT, values)).one()
        except IntegrityError as error:
            if is_overlap_violation(error):
                raise SlotClaimFailed(str(new.staff_id)) from error
            if "idempotency_key" in str(error.orig):
                raise KeyAlreadyUsed() from error
            raise
        claimed = appointment_from_row(row)
        for step in events:
            await self.add_event(
                claimed,
                step.kind,
                at=at,
                idempotency_key=step.idempotency_key,
                recovery_point=step.recovery_point,
            )
        return claimed

    async def claim_as_customer(
        self,
        new: NewAppointment,
        *,
        name: str | None,
        phone_e164: str | None,
        at: datetime,
        events: Sequence[NewEvent] = (),
    ) -> Appointment:
        """`insert_appointment` for the customer with this number and name, found or created with
        the claim; `new.customer_id` is ignored. PostgreSQL: one statement (`_claim_as_customer`),
        atomic without a transaction around it. Elsewhere: the customer, then the claim."""
        conn = await self._conn()
        if conn.dialect.name != "postgresql":
            customer_id = await self.upsert_customer(new.tenant_id, name=name, phone_e164=phone_e164, at=at)
            return await self.insert_appointment(replace(new, customer_id=customer_id), at=at, events=events)
        values = _claim_values(new, at, events)
        values.update(name=name, normalized=_normalized(name), phone=phone_e164, keys=search_keys(name))
        return await self._claimed(new, await direct.first(conn, _claim_as_customer(len(events)), values))

    async def _claimed(self, new: NewAppointment, row: Any | None) -> Appointment:
        """The claimed appointment from a PostgreSQL claim's row; if it returned none, KeyAlreadyUsed
        when the key's booking exists, else SlotClaimFailed (the slot is taken)."""
        if row is not None:
            return appointment_from_row(row)
        if new.idempotency_key and await self.appointment_by_key(new.idempotency_key) is not None:
            raise KeyAlreadyUsed()
        raise SlotClaimFailed(str(new.staff_id))

    async def set_status(
        self, appointment: Appointment, status: AppointmentStatus, *, at: datetime
    ) -> Appointment:
        """Move the appointment to `status` if nobody changed it since it was read."""
        return await self._versioned_update(appointment, at, status=status.value)

    async def _versioned_update(self, appointment: Appointment, at: datetime, **values: Any) -> Appointment:
        """Update the row if it is still at `appointment.version`, inside a savepoint.

        SlotClaimFailed when the database refuses the new state (overlap, or a deadlock between two
        conflicting claims) or when someone changed the row since it was read.
        """
        conn = await self._conn()
        try:
            async with conn.begin_nested():
                result = await conn.execute(
                    update(APPOINTMENTS)
                    .where(APPOINTMENTS.c.id == appointment.id, APPOINTMENTS.c.version == appointment.version)
                    .values(**values, version=appointment.version + 1, updated_at=at)
                    .returning(*APPOINTMENTS.c)
                )
                row = result.first()
        except IntegrityError as error:
            if is_overlap_violation(error):
                raise SlotClaimFailed(str(appointment.staff_id)) from error
            raise
        except DBAPIError as error:
            if is_deadlock(error):
                DEADLOCKS.labels("handled").inc()
                raise SlotClaimFailed(str(appointment.staff_id)) from error
            raise
        if row is None:
            raise SlotClaimFailed(f"appointment {appointment.id} changed concurrently")
        return appointment_from_row(row)

    async def add_event(
        self,
        appointment: Appointment,
        kind: str,
        *,
        at: datetime,
        idempotency_key: str | None = None,
        recovery_point: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one step to the appointment's life story (stored at commit, with the others)."""
        self._events.append(
            {
                "tenant_id": appointment.tenant_id,
                "appointment_id": appointment.id,
                "kind": kind,
                "recovery_point": recovery_point,
                "idempotency_key": idempotency_key,
                "data": dict(data or {}),
                "at": at,
            }
        )

    async def _write_events(self) -> None:
        """Store the events added so far in one statement (a booking adds two)."""
        if self._events:
            events, self._events = self._events, []
            conn = await self._conn()
            await conn.execute(INSERT_EVENT, events)

    async def last_event(self, appointment_id: int, kind: str) -> tuple[str | None, dict[str, Any]] | None:
        """Key and data of the newest event of `kind` for the appointment."""
        await self._write_events()
        conn = await self._conn()
        row = (
            await conn.execute(
                select(EVENTS.c.idempotency_key, EVENTS.c.data)
                .where(EVENTS.c.appointment_id == appointment_id, EVENTS.c.kind == kind)
                .order_by(EVENTS.c.id.desc())
                .limit(1)
            )
        ).first()
        return (row.idempotency_key, dict(row.data)) if row else None

    async def held_by_caller(self, tenant_id: int, asker: Asker) -> Held:
        """Active future appointments at this salon held by the asker's number, by their name (each
        counted on its own) and booked in their call (a move keeps the call of the booking it
        moves, so it does not count twice); and whether one exists under their idempotency key."""
        if (
            not asker.phone_e164
            and not _normalized(asker.name)
            and not asker.call_id
            and not asker.idempotency_key
        ):
            return Held(0, 0)
        conn = await self._conn()
        row = await direct.first(conn, HELD_BY_CALLER, _held_params(tenant_id, asker))
        assert row is not None  # one row of scalar subqueries, always
        return _held(row)

    async def held_and_busy(
        self, tenant_id: int, asker: Asker, *, staff_ids: Sequence[int], window: Interval
    ) -> tuple[Held, dict[int, list[Interval]]]:
        """What the asker holds (`held_by_caller`) and who is busy then (`busy`): in one round
        trip on PostgreSQL (HELD_AND_BUSY)."""
        conn = await self._conn()
        if conn.dialect.name != "postgresql":
            return await self.held_by_caller(tenant_id, asker), await self.busy(tenant_id, staff_ids, window)
        params = _held_params(tenant_id, asker)
        params.update(staff_ids=list(staff_ids), window_start=window.start, window_end=window.end)
        row = await direct.first(conn, HELD_AND_BUSY, params)
        assert row is not None  # one row: scalar subqueries and one aggregate
        return _held(row), _busy_of(row)

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
        """`claim_as_customer` of `new` tried at once (for its stylist, else the first of `or_else`
        free then: `_chosen_stylist`), when the asker holds fewer than `limits` (active future
        appointments by number or name, bookings in this call), and `held_and_busy` as it was
        before the claim: one round trip on PostgreSQL (`_claim_or_read`). Elsewhere nothing is
        claimed here, and only the read is done."""
        conn = await self._conn()
        if conn.dialect.name != "postgresql":
            held, busy = await self.held_and_busy(new.tenant_id, asker, staff_ids=staff_ids, window=window)
            return None, held, busy
        values = _claim_values(new, at, events)
        values.update(
            name=name, normalized=_normalized(name), phone=phone_e164, keys=search_keys(name),
            now=asker.now, key=asker.idempotency_key or "", staff_ids=list(staff_ids),
            window_start=window.start, window_end=window.end,
            max_active=limits[0], max_in_call=limits[1] if asker.call_id else 2**31 - 1,
            lock_minute=int(new.starts_at.timestamp()) // 60,
        )  # fmt: skip
        choices = (new.staff_id, *(s for s in or_else if s != new.staff_id))
        size = 1 << (len(choices) - 1).bit_length()  # padded: a few statements, not one per count
        values.update({f"choice_{n}": choices[n] if n < len(choices) else None for n in range(size)})
        row = await direct.first(conn, _claim_or_read(len(events), size), values)
        assert row is not None  # one row: the read, and the claim's columns
        claimed = appointment_from_row(row) if row.id is not None else None
        return claimed, _held(row), _busy_of(row)

    async def upsert_customer(
        self, tenant_id: int, *, name: str | None, phone_e164: str | None, at: datetime
    ) -> int:
        """The customer with this phone and name at this salon, created when new (with its search keys)."""
        from rezeption.store.lookup import write_name_keys  # the keys lookups use (migration 0004)

        normalized = _normalized(name)
        conn = await self._conn()
        if conn.dialect.name == "postgresql":
            values = {"tenant_id": tenant_id, "name": name, "normalized": normalized, "phone": phone_e164}
            keys = search_keys(name)
            found = await direct.scalar(conn, CUSTOMER_IN_ONE_STATEMENT, {**values, "at": at, "keys": keys})
            assert found is not None  # found or created
            return int(found)
        if phone_e164:
            existing = await conn.scalar(
                CUSTOMER_BY_PHONE_AND_NAME,
                {"tenant_id": tenant_id, "phone": phone_e164, "normalized": normalized},
            )
            if existing is not None:
                return int(existing)
        created = await conn.scalar(
            INSERT_CUSTOMER,
            {
                "tenant_id": tenant_id,
                "name": name,
                "name_normalized": normalized,
                "phone_e164": phone_e164,
                "created_at": at,
                "updated_at": at,
            },
        )
        await write_name_keys(conn, int(created), tenant_id, name)
        return int(created)

    async def confirm_external(
        self, appointment: Appointment, *, external_uid: str, at: datetime
    ) -> Appointment:
        """Pending -> confirmed with the provider's uid, if nobody changed the row since it was read
        and it is still pending: a row cancelled or failed meanwhile is never confirmed back, whatever
        the caller read (SlotClaimFailed)."""
        conn = await self._conn()
        result = await conn.execute(
            update(APPOINTMENTS)
            .where(
                APPOINTMENTS.c.id == appointment.id,
                APPOINTMENTS.c.version == appointment.version,
                APPOINTMENTS.c.status == AppointmentStatus.PENDING.value,
            )
            .values(
                status=AppointmentStatus.CONFIRMED.value,
                external_uid=external_uid,
                pending_until=None,
                version=appointment.version + 1,
                updated_at=at,
            )
            .returning(*APPOINTMENTS.c)
        )
        row = result.first()
        if row is None:
            raise SlotClaimFailed(f"appointment {appointment.id} changed concurrently")
        return appointment_from_row(row)

    async def rebind_external(
        self, appointment: Appointment, *, external_uid: str, at: datetime
    ) -> Appointment:
        """A confirmed row's provider uid replaced; SlotClaimFailed if it changed or is not confirmed."""
        if appointment.status is not AppointmentStatus.CONFIRMED:
            raise SlotClaimFailed(f"appointment {appointment.id} is not confirmed")
        return await self._versioned_update(appointment, at, external_uid=external_uid)

    async def set_block(self, appointment: Appointment, block: Interval, *, at: datetime) -> Appointment:
        """Change the claimed block; SlotClaimFailed on an overlap or a concurrent change."""
        return await self._versioned_update(
            appointment, at, block_starts_at=block.start, block_ends_at=block.end
        )

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
        """Store an outbox job in this transaction; a duplicate dedupe key keeps the first job."""
        await outbox.enqueue(
            self.session,
            kind,
            payload,
            at=at,
            tenant_id=tenant_id,
            dedupe_key=dedupe_key,
            run_after=run_after,
        )

    async def finish_job(self, dedupe_key: str, *, at: datetime) -> None:
        """Mark the pending job with this dedupe key done (its work was done inline)."""
        await self.session.execute(
            update(OutboxJobRow)
            .where(OutboxJobRow.dedupe_key == dedupe_key, OutboxJobRow.status == "pending")
            .values(status="done", updated_at=at)
        )

    async def pending_due(self, tenant_id: int, now: datetime) -> list[Appointment]:
        """Pending appointments whose deadline (`pending_until`, else creation) has passed."""
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(
                AppointmentRow.tenant_id == tenant_id,
                AppointmentRow.status == AppointmentStatus.PENDING.value,
                func.coalesce(AppointmentRow.pending_until, AppointmentRow.created_at) <= now,
            )
            .order_by(AppointmentRow.id)
        )
        return [appointment_from_row(r) for r in rows]

    async def appointments_by_uid(self, tenant_id: int, uids: Sequence[str]) -> dict[str, Appointment]:
        """The salon's appointments carrying these provider uids."""
        if not uids:
            return {}
        rows = await self.session.scalars(
            select(AppointmentRow).where(
                AppointmentRow.tenant_id == tenant_id, AppointmentRow.external_uid.in_(list(uids))
            )
        )
        return {r.external_uid: appointment_from_row(r) for r in rows if r.external_uid}

    async def external_tenants(self) -> list[int]:
        """Ids of the salons whose bookings live in an external calendar."""
        rows = await self.session.scalars(
            select(TenantRow.id).where(TenantRow.calendar_provider != "local").order_by(TenantRow.id)
        )
        return list(rows)

    async def commit(self) -> None:
        """Store the pending events and commit the transaction."""
        await self._write_events()
        await self.session.commit()
