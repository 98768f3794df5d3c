"""Redacting one person out of text others share: names in every spelling, numbers in every writing."""

from __future__ import annotations

import pytest

from rezeption.language.redaction import REDACTED, Redactor

JUERGEN = Redactor.build(["Jürgen Müller"], ["+4915122222222"], emails=["j.mueller@example.org"])


@pytest.mark.parametrize(
    "said",
    [
        "Jürgen Müller",
        "juergen mueller",
        "JÜRGEN MUELLER",
        "Jurgen Muller",  # speech-to-text without umlauts
        "Müller, Jürgen",
        "Herrn Müllers",  # genitive
    ],
)
def test_every_spelling_of_the_name_goes(said: str) -> None:
    assert "ller" not in JUERGEN.text(said).casefold() and "rgen" not in JUERGEN.text(said).casefold()
    assert REDACTED in JUERGEN.text(said)


@pytest.mark.parametrize(
    "written",
    [
        "+4915122222222",
        "+49 151 22222222",
        "+49 (0)151 22222222",
        "004915122222222",
        "0151 22222222",
        "015122222222",
        "0151-222 222 22",
        "0151/22222222",
        "(0151) 22222222",
    ],
)
def test_every_writing_of_the_number_goes(written: str) -> None:
    redacted = JUERGEN.text(f"Rückruf unter {written}, danke.")
    assert redacted.startswith("Rückruf unter ") and redacted.endswith(", danke.")
    assert "2222" not in redacted and REDACTED in redacted


def test_other_numbers_words_and_times_stay() -> None:
    text = "Termin um 14:30 am 04.11.2025, Rückruf 0151 22222223 oder 030 12345670, Frau Weiß."
    assert JUERGEN.text(text) == text


def test_particles_titles_and_the_names_of_people_who_stay_are_kept() -> None:
    tom = Redactor.build(["Dr. Tom von Becker"], [], keep=["Anna Becker"])
    assert tom.text("Dr. Tom von Becker und Frau Anna Becker") == (
        f"Dr. {REDACTED} von Becker und Frau Anna Becker"
    )
    alone = Redactor.build(["Dr. Tom von Becker"], [])
    assert alone.text("Termin von Tom Becker, Herr Dr. Becker") == (
        f"Termin von {REDACTED} {REDACTED}, Herr Dr. {REDACTED}"
    )


def test_e_mail_addresses_go_whatever_their_case() -> None:
    assert JUERGEN.text("Mail an J.Mueller@Example.org bitte") == f"Mail an {REDACTED} bitte"


def test_json_keeps_its_keys_structure_and_non_text_values() -> None:
    doc = {
        "name": "Jürgen Müller",
        "booked": [12, 13],
        "ok": True,
        "analysis": {"summary": ["Jürgen ruft an", "Nummer 0151 22222222"], "score": 0.5},
    }
    assert JUERGEN.json(doc) == {
        "name": f"{REDACTED} {REDACTED}",
        "booked": [12, 13],
        "ok": True,
        "analysis": {"summary": [f"{REDACTED} ruft an", f"Nummer {REDACTED}"], "score": 0.5},
    }


def test_an_empty_redactor_changes_nothing() -> None:
    nobody = Redactor.build([None, ""], [None])
    assert not nobody and nobody.text("Jürgen 0151 22222222") == "Jürgen 0151 22222222"
