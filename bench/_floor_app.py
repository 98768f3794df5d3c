"""The floor of bench/capacity.py: a bare FastAPI + SQLAlchemy endpoint doing a booking's four
statements on our own schema, the plain way (an ORM session per request, no caches, no signature,
no idempotency, no call record, no event log, no trace):

1. the service and the stylist (SELECT),
2. the stylist's overlapping active appointments (SELECT),
3. the customer (INSERT ... RETURNING id),
4. the appointment (INSERT; PostgreSQL's exclusion constraint still refuses an overlap).

What our `book_appointment` does beyond it is what makes it safe: the signature and replay check,
the call and idempotency records, the rules of the salon, the per-caller limits, the event log.
Served by uvicorn: `uvicorn _floor_app:app --app-dir bench` with REZEPTION_DATABASE_URL set.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from rezeption.store.tables import AppointmentRow, CustomerRow, ServiceRow, StaffRow

engine = create_async_engine(
    os.environ["REZEPTION_DATABASE_URL"], pool_size=int(os.environ.get("REZEPTION_DB_POOL_SIZE", "20"))
)
sessions = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI()


class Booking(BaseModel):
    tenant_id: int
    service: str
    staff: str
    start: datetime
    name: str
    phone: str


@app.post("/book")
async def book(booking: Booking) -> dict[str, object]:
    async with sessions() as session, session.begin():
        found = (
            await session.execute(
                select(ServiceRow.id, ServiceRow.duration_minutes, StaffRow.id)
                .join(StaffRow, StaffRow.tenant_id == ServiceRow.tenant_id)
                .where(
                    ServiceRow.tenant_id == booking.tenant_id,
                    ServiceRow.key == booking.service,
                    StaffRow.key == booking.staff,
                )
            )
        ).one()
        service_id, minutes, staff_id = found
        end = booking.start + timedelta(minutes=minutes)
        taken = await session.scalar(
            select(AppointmentRow.id).where(
                AppointmentRow.tenant_id == booking.tenant_id,
                AppointmentRow.staff_id == staff_id,
                AppointmentRow.status.in_(("confirmed", "pending")),
                AppointmentRow.block_starts_at < end,
                AppointmentRow.block_ends_at > booking.start,
            )
        )
        if taken is not None:
            return {"ok": False, "reason": "slot_taken"}
        now = datetime.now(UTC)
        customer = CustomerRow(
            tenant_id=booking.tenant_id,
            name=booking.name,
            name_normalized=booking.name.lower(),
            phone_e164=booking.phone,
            created_at=now,
            updated_at=now,
        )
        session.add(customer)
        await session.flush()
        session.add(
            AppointmentRow(
                tenant_id=booking.tenant_id,
                customer_id=customer.id,
                service_id=service_id,
                staff_id=staff_id,
                starts_at=booking.start,
                ends_at=end,
                block_starts_at=booking.start,
                block_ends_at=end,
                status="confirmed",
                source="phone",
                provider="local",
                created_at=now,
                updated_at=now,
            )
        )
        try:
            await session.flush()
        except IntegrityError:
            return {"ok": False, "reason": "slot_taken"}
    return {"ok": True, "gebucht": True}
