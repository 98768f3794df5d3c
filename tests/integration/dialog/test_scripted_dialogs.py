"""Scripted calls (tests/data/dialogs.yaml): each line of the caller, what the receptionist must and
must not say, how the call ends, and what the salon's calendar holds afterwards.

The clock stands at Monday 3 November 2025, 08:00 in Berlin (the salon opens on Tuesday)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import text
from tests.integration.dialog.phone import Phone

from rezeption.booking.bookings import BookingRequest
from rezeption.bootstrap import Services

DATA = Path(__file__).parents[2] / "data"
DIALOGS = [
    *yaml.safe_load((DATA / "dialogs.yaml").read_text(encoding="utf-8")),
    *yaml.safe_load((DATA / "dialogs_holdout.yaml").read_text(encoding="utf-8")),
]
BERLIN = ZoneInfo("Europe/Berlin")
ON_POSTGRES = {d["name"] for d in DIALOGS if d.get("postgres")}


def _local(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=BERLIN)


async def _given(services: Services, tenant_id: int, given: dict[str, Any]) -> None:
    for item in given.get("appointments", []):
        await services.bookings.book(
            BookingRequest(
                tenant_id=tenant_id,
                service=item["service"],
                start=_local(item["start"]),
                staff=item.get("staff"),
                customer_name=item["name"],
                phone_e164=item.get("phone"),
                source="admin",
            )
        )
    for item in given.get("consent", []):
        await services.callers.record_consent(
            tenant_id, call_id=None, phone=item["phone"], name=item["name"], at=services.clock.now()
        )


async def _appointments(services: Services) -> list[dict[str, Any]]:
    query = text(
        "SELECT a.status, a.starts_at, s.name AS service, st.name AS staff, "
        "COALESCE(c.name, a.spoken_name) AS name FROM appointments a "
        "JOIN services s ON s.id = a.service_id JOIN staff st ON st.id = a.staff_id "
        "LEFT JOIN customers c ON c.id = a.customer_id ORDER BY a.starts_at, a.id"
    )
    async with services.database.statement() as conn:
        rows = (await conn.execute(query)).mappings().all()
    result = []
    for row in rows:
        starts = row["starts_at"]
        if isinstance(starts, str):
            starts = datetime.fromisoformat(starts)
        if starts.tzinfo is None:
            starts = starts.replace(tzinfo=ZoneInfo("UTC"))
        result.append(
            {
                "status": row["status"],
                "start": starts.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M"),
                "service": row["service"],
                "staff": row["staff"],
                "name": row["name"],
            }
        )
    return result


def _cases() -> list[Any]:
    cases = []
    for dialog in DIALOGS:
        cases.append(pytest.param(dialog, "sqlite", id=dialog["name"]))
        if dialog["name"] in ON_POSTGRES:
            cases.append(
                pytest.param(dialog, "postgres", id=f"{dialog['name']}-pg", marks=pytest.mark.postgres)
            )
    return cases


@pytest.mark.parametrize(("dialog", "database_url"), _cases(), indirect=["database_url"])
async def test_scripted_dialog(
    dialog: dict[str, Any], phone: Phone, services: Services, salon_id: int
) -> None:
    await _given(services, salon_id, dialog.get("given", {}))
    conversation = await phone.call(from_number=dialog.get("from", "+4915123456789"))
    transcript = [f"Rezeption: {conversation.greeting}"]
    for expected in dialog.get("greeting", []):
        assert expected in conversation.greeting, transcript
    for absent in dialog.get("greeting_not", []):
        assert absent not in conversation.greeting, transcript
    for turn in dialog["turns"]:
        if turn["caller"] == "<schweigen>":
            answer = (await conversation.dialog.reminder()).text
        else:
            answer = await conversation.say(turn["caller"])
        transcript += [f"Anrufer: {turn['caller']}", f"Rezeption: {answer}"]
        for expected in turn.get("says", []):
            assert expected in answer, "\n".join(transcript)
        for absent in turn.get("not", []):
            assert absent not in answer, "\n".join(transcript)
    last = conversation.last
    ends = dialog.get("ends")
    if ends == "goodbye":
        assert last is not None and last.end_call and last.transfer_number is None, "\n".join(transcript)
    elif ends == "transfer":
        assert last is not None and last.transfer_number == "+493012345678", "\n".join(transcript)
    else:
        assert last is not None and not last.end_call and last.transfer_number is None, "\n".join(transcript)
    held = await _appointments(services)
    if "then" in dialog:
        assert held == dialog["then"], "\n".join(transcript)
    for wanted in dialog.get("then_has", []):
        assert any(wanted.items() <= row.items() for row in held), (held, "\n".join(transcript))
    for status, count in dialog.get("then_count", {}).items():
        assert sum(row["status"] == status for row in held) == count, (held, "\n".join(transcript))
