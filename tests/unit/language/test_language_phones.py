"""Phone numbers: E.164 for what is a real number, None for anything a caller-ID match must not trust."""

from __future__ import annotations

import pytest

from rezeption.language import mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+49 30 330 817 38", "+493033081738"),
        ("0049 30 33081738", "+493033081738"),
        ("030 33081738", "+493033081738"),
        ("(030) 330-817-38", "+493033081738"),
        ("0151/234 567 89", "+4915123456789"),
        ("+4915123456789", "+4915123456789"),
        ("+43 1 5323000", "+4315323000"),
        ("0043 664 1234567", "+436641234567"),
        ("+41 44 668 18 00", "+41446681800"),
        ("0041 79 123 45 67", "+41791234567"),
    ],
)
def test_real_numbers_become_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


def test_a_national_number_uses_the_given_region() -> None:
    assert normalize_phone("0664 1234567", region="AT") == "+436641234567"
    assert normalize_phone("044 668 18 00", region="CH") == "+41446681800"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "unknown",
        "restricted",
        "private",
        "unterdrückt",
        "sip:anonymous@example.invalid",
        "+266696687",  # keypad spelling of ANONYMOUS
        "+7378742833",  # RESTRICTED
        "+8656696",  # UNKNOWN
        "+2562533",  # BLOCKED
        "4915123456789",  # no "+": phonenumbers would read it as a German national number
        "15123456789",
        "030 FRISEUR",  # letters are not digits
        "03O 33081738",  # a letter O for a zero
        "+49 30 12",  # too short
        "0",
        "+49 30 330 817 38 +1",
        "+999 123456789",
    ],
)
def test_withheld_ambiguous_or_invalid_numbers_are_none(raw: str | None) -> None:
    assert normalize_phone(raw) is None


def test_mask_keeps_country_area_and_last_three_digits_only() -> None:
    assert mask_phone("+493033081738") == "+49 30 ****738"
    assert mask_phone("+4915123456789") == "+49 15 ****789"
    masked = mask_phone("+41446681800")
    assert masked.endswith("800")
    assert "668" not in masked


def test_mask_reveals_nothing_of_a_missing_or_broken_number() -> None:
    assert mask_phone(None) == "<none>"
    assert mask_phone("not a number") == "<invalid>"
    assert mask_phone("+49301") == "+49 ****"
