"""Spoken names: normalization and the phonetic + spelling score used to find an appointment."""

from __future__ import annotations

import pytest

from rezeption.language import name_score, normalize_name
from rezeption.language.names import LIKELY_SAME
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
