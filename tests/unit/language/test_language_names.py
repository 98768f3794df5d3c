"""Spoken names: normalization and the phonetic + spelling score used to find an appointment."""

from __future__ import annotations

import pytest

from rezeption.language import name_score, normalize_name
from rezeption.language.names import (
    LIKELY_SAME,
    Role,
    match_name,
    parse_name,
    said_keys,
    search_keys,
    usable_name,
)
from rezeption.language.phonetics import cologne_code


@pytest.mark.parametrize(
    ("word", "code"),
    [
        ("Müller-Lüdenscheidt", "65752682"),
        ("Meier", "67"),
        ("Mayer", "67"),
        ("Maier", "67"),
        ("Schuster", "8827"),
        ("Schusta", "882"),
        ("Wikipedia", "3412"),
        ("Breschnew", "17863"),
        ("Christoph", "47823"),
        ("Xaver", "4837"),
        ("Axel", "0485"),
        ("", ""),
    ],
)
def test_cologne_phonetics_matches_the_published_table(word: str, code: str) -> None:
    assert cologne_code(word) == code


def test_normalize_folds_case_umlauts_sharp_s_and_hyphens() -> None:
    assert normalize_name("  Hans-Jürgen  GROSSE ") == "hans juergen grosse"
    assert normalize_name("Anna Größe") == "anna groesse"
    assert normalize_name("van der Berg") == "van der berg"


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("Schusta", "Schuster"),
        ("Meier", "Mayer"),
        ("Maier", "Meyer"),
        ("Müller", "Mueller"),
        ("Muller", "Müller"),
        ("schmitt", "Schmidt"),
        ("Weizsaecker", "von Weizsäcker"),
        ("Vanessa van Dyk", "Vanessa Van Dijk"),
        ("Schuster", "Hans Schuster"),
        ("hans schuster", "Hans Schuster"),
        ("Strauss", "Strauß"),
    ],
)
def test_the_same_name_said_differently_scores_as_likely_same(said: str, stored: str) -> None:
    assert name_score(said, stored) >= LIKELY_SAME


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("Schuster", "Schneider"),
        ("Meier", "Müller"),
        ("Becker", "Wagner"),
        ("Hans Schuster", "Hans Schneider"),
        ("Koch", "Krause"),
        ("", "Meier"),
    ],
)
def test_different_names_score_below_likely_same(said: str, stored: str) -> None:
    assert name_score(said, stored) < LIKELY_SAME


def test_the_score_is_symmetric_in_range_and_exact_names_score_one() -> None:
    assert name_score("Meier", "Mayer") == pytest.approx(name_score("Mayer", "Meier"))
    assert name_score("Schuster", "Schuster") == 1.0
    assert 0.0 <= name_score("Schuster", "Xylophon") < 0.5


# --- who is who: parse_name, match_name, search keys -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "given", "family"),
    [
        ("Gisela Schuster-Wendt", ["gisela"], ["schuster", "wendt"]),
        ("Schuster-Wendt, Gisela", ["gisela"], ["schuster", "wendt"]),
        ("Dr. med. Hans-Peter von der Heide", ["hans", "peter"], ["heide"]),
        ("Frau Ute Koch", ["ute"], ["koch"]),
        ("Thi Le", ["thi"], ["le"]),
        ("H. Müller", ["h"], ["mueller"]),
        ("José García", ["jose"], ["garcia"]),
    ],
)
def test_a_name_is_taken_apart_into_first_name_and_surname(
    name: str, given: list[str], family: list[str]
) -> None:
    parts = parse_name(name).parts
    assert [p.text for p in parts if p.role is Role.GIVEN] == given
    assert [p.text for p in parts if p.role is Role.FAMILY] == family


def test_a_one_word_name_could_be_either_and_a_middle_word_is_set_apart() -> None:
    assert [p.role for p in parse_name("Schuster").parts] == [Role.EITHER]
    assert [p.role for p in parse_name("Hans Müller Lüdenscheidt").parts] == [
        Role.GIVEN,
        Role.MIDDLE,
        Role.FAMILY,
    ]


@pytest.mark.parametrize(
    "junk", ["A", "Dr.", "Frau", "von der", "1234", "😀", "  ", "H. M.", "-", "Prof. Dr."]
)
def test_names_without_anything_to_search_by_are_not_usable(junk: str) -> None:
    assert not usable_name(junk)


@pytest.mark.parametrize("name", ["Ute", "Dr. Koch", "von der Heide", "Thi Le", "O'Brien", "Anna-Lena"])
def test_short_and_unusual_names_are_usable(name: str) -> None:
    assert usable_name(name)


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("Gisela Becker-Wendt", "Gisela Schuster-Wendt"),  # a said part matches nothing stored
        ("Gisela Maria Schuster-Wendt", "Gisela Schuster-Wendt"),  # a part added
        ("Maria Schuster", "Peter Schuster"),
        ("Petra Schuster", "Peter Schuster"),  # same sound, another ending
        ("Michaela Wolf", "Michael Wolf"),
        ("Paula Braun", "Paul Braun"),
        ("Jana Fischer", "Jan Fischer"),
        ("Christiane Koch", "Christian Koch"),
        ("Marvin Schuster", "Martin Schuster"),
        ("Lina Schmidt", "Lena Schmidt"),
        ("Schneider", "Peter Schuster"),
        ("M. Müller", "Hans Müller"),  # an initial that fits no first name
    ],
)
def test_a_contradicting_part_rules_a_match_out_even_by_sound(said: str, stored: str) -> None:
    assert match_name(said, stored) is None
    assert match_name(said, stored, strict=True) is None


@pytest.mark.parametrize(
    ("said", "stored", "full"),
    [
        ("Gisela Schuster", "Gisela Schuster-Wendt", True),
        ("Gisela Wendt", "Gisela Schuster-Wendt", True),
        ("Schuster, Gisela", "Gisela Schuster-Wendt", True),
        ("Gisela Schusterwendt", "Gisela Schuster-Wendt", True),
        ("Gisela Schuster Wendt", "Gisela Schuster-Wendt", True),
        ("Eva Weiss", "Eva Weiß", True),
        ("Juergen Muller", "Jürgen Müller", True),
        ("Stephan Becker", "Stefan Becker", True),
        ("Richard Weizsäcker", "Richard von Weizsäcker", True),
        ("Dr. Ute Koch", "Ute Koch", True),
        ("Wendt", "Gisela Schuster-Wendt", False),
        ("Gisela", "Gisela Schuster-Wendt", False),
        ("Schuster-Wendt", "Gisela Schuster-Wendt", False),
        ("G. Schuster-Wendt", "Gisela Schuster-Wendt", False),
        ("Hans Peter", "Hans Peter Müller", False),  # first names only
        ("Hans Müller", "Hans Müller Lüdenscheidt", False),  # "Müller" may be a second first name
        ("Müller Lüdenscheidt", "Hans Müller-Lüdenscheidt", False),
    ],
)
def test_parts_may_be_left_out_and_full_says_whether_first_and_surname_were_said(
    said: str, stored: str, full: bool
) -> None:
    match = match_name(said, stored, strict=True)
    assert match is not None and match.full is full


@pytest.mark.parametrize(
    ("said", "stored"),
    [("Klaus Mayer", "Klaus Meier"), ("Peter Schusta", "Peter Schuster"), ("Anna Schmitt", "Anna Schmidt")],
)
def test_sound_alikes_count_on_the_own_line_but_not_when_spelling_must_match(said: str, stored: str) -> None:
    assert match_name(said, stored) is not None
    assert match_name(said, stored, strict=True) is None


def test_stored_keys_cover_every_surname_part_and_said_keys_every_part() -> None:
    stored = search_keys("Gisela Schuster-Wendt")
    assert set(said_keys("Gisela Schuster")) & set(stored)
    assert set(said_keys("Wendt")) & set(stored)
    assert set(said_keys("Gisela Schusterwendt")) & set(stored)
    assert not set(search_keys("Gisela Schuster-Wendt")) & set(
        said_keys("Gisela")
    )  # first names are not keys
    assert search_keys("Meier") == search_keys("Mayer") == search_keys("Hans Maier")
    assert search_keys(None) == [] and search_keys("Dr.") == []
