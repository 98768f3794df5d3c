"""The disclosure policy's refusals come from what the caller said alone, never from stored rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rezeption.booking import disclosure
from rezeption.booking.disclosure import Claim
from rezeption.booking.lookup_model import AppointmentHit, CustomerHit

AT = datetime(2025, 11, 18, 9, tzinfo=UTC)


def hit(appointment_id: int, name: str, customer_id: int) -> AppointmentHit:
    return AppointmentHit(appointment_id, 1, customer_id, 1, 1, AT, "confirmed", None, name, name, "+49151")


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        (Claim(None, None, True, 0), "need_name"),
        (Claim("Wendt", None, True, 0), "need_full_name"),
        (Claim("G. Wendt", None, True, 0), "need_full_name"),
        (Claim("Gisela Wendt", None, False, 0), "need_detail"),
        (Claim(None, "+4915111111111", False, 0), "need_detail"),
        (Claim("Gisela Wendt", None, True, 3), "too_many_attempts"),
        (Claim(None, "+4915111111111", True, 7), "too_many_attempts"),
    ],
)
def test_an_incomplete_claim_is_refused_before_any_row_is_read(claim: Claim, reason: str) -> None:
    refusal = disclosure.claim_refusal(claim)
    assert refusal is not None and refusal.reason == reason and not refusal.missed


def test_a_complete_claim_searches() -> None:
    assert disclosure.claim_refusal(Claim("Gisela Wendt", None, True, 2)) is None
    assert disclosure.claim_refusal(Claim("Gisela", "+4915111111111", True, 0)) is None


def test_a_claim_by_name_needs_the_full_name_spelled_as_booked() -> None:
    rows = [hit(1, "Gisela Schuster-Wendt", 1), hit(2, "Gisela Becker-Wendt", 2), hit(3, "Karin Wendt", 3)]
    by_name = disclosure.claimed(Claim("Gisela Schuster", None, True, 0), rows)
    assert [h.id for h in by_name] == [1]
    assert [h.id for h in disclosure.claimed(Claim("Gisela Wendt", None, True, 0), rows)] == [1, 2]
    assert disclosure.claimed(Claim("Gisela Schusta", None, True, 0), rows) == []
    by_number = disclosure.claimed(Claim("Gisela", "+49151", True, 0), rows)
    assert [h.id for h in by_number] == [1, 2]  # a said number narrows by any agreeing name part


def test_one_fitting_appointment_is_read_out_none_or_several_are_not() -> None:
    one = [hit(1, "Gisela Schuster-Wendt", 1)]
    assert disclosure.claim_answer(one) is None
    missed = disclosure.claim_answer([])
    assert missed is not None and missed.reason == "not_found" and missed.missed
    several = disclosure.claim_answer([*one, hit(2, "Gisela Schuster-Wendt", 1)])
    assert several is not None and several.reason == "need_detail" and not several.missed


def test_the_own_line_asks_for_the_first_name_when_the_name_fits_several_people() -> None:
    family = [
        CustomerHit(1, "Anna Meier", None),
        CustomerHit(2, "Paul Meier", None),
        CustomerHit(3, None, None),
    ]
    assert disclosure.line_people("Meier", family) == {"anna meier", "paul meier"}
    assert disclosure.line_people("Paul Mayer", family) == {"paul meier"}
    assert disclosure.line_people("Paula Meier", family) == set()
