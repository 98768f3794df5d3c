"""Service matching: the caller's words -> one service, the candidates to ask about, or the list to offer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from rezeption.language import match_service


@dataclass(frozen=True)
class Service:
    key: str
    name: str
    aliases: Sequence[str] = field(default_factory=tuple)


SALON = [
    Service("herren", "Herrenhaarschnitt", ("Herrenschnitt", "Männerschnitt")),
    Service("damen", "Damenhaarschnitt", ("Damenschnitt",)),
    Service("kinder", "Kinderhaarschnitt"),
    Service("faerben", "Färben", ("Coloration", "Farbe")),
    Service("straehnen", "Strähnen", ("Highlights", "Balayage")),
    Service("foehnen", "Waschen und Föhnen", ("Föhnen",)),
    Service("bart", "Bartpflege", ("Bart trimmen", "Rasur")),
]


@pytest.mark.parametrize(
    ("words", "key"),
    [
        ("Männerhaarschnitt", "herren"),
        ("Haare schneiden für Herren", "herren"),
        ("herrenhaarschnitt bitte", "herren"),
        ("Herenhaarschnit", "herren"),
        ("einmal färben bitte", "faerben"),
        ("faerben", "faerben"),
        ("Coloration", "faerben"),
        ("Damenschnitt", "damen"),
        ("Haarschnitt für meine Tochter, also Kinder", "kinder"),
        ("Strähnchen", "straehnen"),
        ("balayage", "straehnen"),
        ("waschen föhnen", "foehnen"),
        ("den Bart trimmen", "bart"),
        ("Rasur", "bart"),
    ],
)
def test_the_callers_words_match_one_service(words: str, key: str) -> None:
    result = match_service(words, SALON)
    assert result.kind == "matched", result
    assert result.service is not None
    assert result.service.key == key


def test_a_haircut_without_saying_for_whom_asks_between_the_haircuts() -> None:
    result = match_service("Haarschnitt", SALON)
    assert result.kind == "ambiguous"
    assert {service.key for service in result.candidates} >= {"herren", "damen"}
    assert "faerben" not in {service.key for service in result.candidates}


@pytest.mark.parametrize("words", ["Maniküre", "Ölwechsel", "Zahnreinigung", "", "äh bitte"])
def test_nothing_close_offers_the_list_of_services(words: str) -> None:
    result = match_service(words, SALON)
    assert result.kind == "none"
    assert result.service is None
    assert result.offer == tuple(service.name for service in SALON)


def test_a_salon_without_services_matches_nothing() -> None:
    assert match_service("Herrenhaarschnitt", []).kind == "none"
