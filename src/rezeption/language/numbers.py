"""Spoken number words: German and English cardinals and ordinals as a speech-to-text engine writes them.

Owns one table, ``NUMBER_WORDS``: a folded word ("vierzehn", "fuenften", "funften", "dreissig",
"zweitausendfuenfundzwanzig", "third") -> (value, is_ordinal). Words are folded the way
``rezeption.language.text`` folds input (ä -> ae, ß -> ss), and every word with an umlaut or ß is
also stored in the forms an engine writes when it drops them ("funf", "zwolf", "dreisig").
"""

from __future__ import annotations

from collections.abc import Iterator

_GERMAN_UNITS = {
    "null": 0,
    "eins": 1,
    "ein": 1,
    "eine": 1,
    "einen": 1,
    "einer": 1,
    "einem": 1,
    "zwei": 2,
    "zwo": 2,
    "drei": 3,
    "vier": 4,
    "fünf": 5,
    "sechs": 6,
    "sieben": 7,
    "acht": 8,
    "neun": 9,
    "zehn": 10,
    "elf": 11,
    "zwölf": 12,
    "dreizehn": 13,
    "vierzehn": 14,
    "fünfzehn": 15,
    "sechzehn": 16,
    "siebzehn": 17,
    "achtzehn": 18,
    "neunzehn": 19,
}
_GERMAN_TENS = {"zwanzig": 20, "dreißig": 30, "vierzig": 40, "fünfzig": 50}
_COMPOUND_UNITS = {
    "ein": 1,
    "zwei": 2,
    "drei": 3,
    "vier": 4,
    "fünf": 5,
    "sechs": 6,
    "sieben": 7,
    "acht": 8,
    "neun": 9,
}
_GERMAN_ORDINAL_STEMS = {
    1: "erst",
    2: "zweit",
    3: "dritt",
    4: "viert",
    5: "fünft",
    6: "sechst",
    7: "siebt",
    8: "acht",
    9: "neunt",
    10: "zehnt",
    11: "elft",
    12: "zwölft",
    13: "dreizehnt",
    14: "vierzehnt",
    15: "fünfzehnt",
    16: "sechzehnt",
    17: "siebzehnt",
    18: "achtzehnt",
    19: "neunzehnt",
}
_ORDINAL_ENDINGS = ("e", "en", "er", "es", "em")
_ENGLISH_CARDINALS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
}
_ENGLISH_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}


def spellings(word: str) -> set[str]:
    """Return the folded spellings of a word: umlauts as ae/oe/ue or dropped, ß as ss or s."""
    folded = set()
    for sharp in ("ss", "s"):
        base = word.replace("ß", sharp)
        folded.add(base.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue"))
        folded.add(base.replace("ä", "a").replace("ö", "o").replace("ü", "u"))
    return folded


def _german_cardinals() -> Iterator[tuple[str, int]]:
    yield from _GERMAN_UNITS.items()
    yield from _GERMAN_TENS.items()
    for tens_word, tens in _GERMAN_TENS.items():
        for unit_word, unit in _COMPOUND_UNITS.items():
            yield f"{unit_word}und{tens_word}", tens + unit


def _german_ordinals() -> Iterator[tuple[str, int]]:
    stems = dict(_GERMAN_ORDINAL_STEMS)
    stems[7] = "siebt"
    for word, value in _german_cardinals():
        if value >= 20 and value <= 31:
            stems[value] = word + "st"
    for value, stem in stems.items():
        for ending in _ORDINAL_ENDINGS:
            yield stem + ending, value
    for ending in _ORDINAL_ENDINGS:
        yield "siebent" + ending, 7


def _years() -> Iterator[tuple[str, int]]:
    yield "zweitausend", 2000
    for word, value in _german_cardinals():
        if 1 <= value <= 59 and word not in ("eine", "einen", "einer", "einem", "null"):
            yield f"zweitausend{word}", 2000 + value


def _build() -> dict[str, tuple[int, bool]]:
    table: dict[str, tuple[int, bool]] = {}
    for word, value in (*_german_cardinals(), *_years(), *_ENGLISH_CARDINALS.items()):
        for spelling in spellings(word):
            table[spelling] = (value, False)
    for word, value in (*_german_ordinals(), *_ENGLISH_ORDINALS.items()):
        for spelling in spellings(word):
            table[spelling] = (value, True)
    return table


NUMBER_WORDS: dict[str, tuple[int, bool]] = _build()
