"""The caller's words for a service -> one of the salon's services, the candidates to ask about, or none.

Owns ``match_service``. A service is anything with ``key``, ``name`` and ``aliases`` (``ServiceLike``).
Two scores, the better one counts: rapidfuzz over the name and aliases ("Herenhaarschnit"), and
shared meaning over German compounds ("Haare schneiden für Herren" and "Männerhaarschnitt" both say
*men* + *cut*, like "Herrenhaarschnitt").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from rapidfuzz import fuzz

from rezeption.language.numbers import spellings


class ServiceLike(Protocol):
    """What matching needs of a service."""

    @property
    def key(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Match:
    """One ``service``; or ``candidates`` to ask between; or neither, with the names to ``offer``."""

    service: ServiceLike | None = None
    candidates: tuple[ServiceLike, ...] = ()
    offer: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """ "matched", "ambiguous" or "none"."""
        if self.service is not None:
            return "matched"
        return "ambiguous" if self.candidates else "none"


_CONCEPTS: dict[str, tuple[str, ...]] = {
    "men": ("herren", "herr", "maenner", "maenn", "mann", "gentlemen", "jungs"),
    "women": ("damen", "dame", "frauen", "frau", "women", "lady", "ladies"),
    "children": ("kinder", "kind", "kids", "junge", "maedchen", "child"),
    "cut": ("schnitt", "schneid", "kuerz", "cut", "trim", "spitzen"),
    "colour": ("faerb", "farb", "color", "colour", "coloration", "toenung", "toen", "tint", "dye"),
    "highlights": ("straehn", "highlight", "balayage", "foil", "mesh"),
    "blowdry": ("foehn", "fohn", "blow", "styling"),
    "wash": ("wasch", "wash", "shampoo"),
    "beard": ("bart", "rasur", "rasier", "beard", "shave"),
    "perm": ("dauerwelle", "perm", "locken"),
    "updo": ("hochsteck", "braut", "updo", "bridal"),
}
_STEMS = tuple(
    (stem_spelling, concept)
    for concept, stems in _CONCEPTS.items()
    for stem in stems
    for stem_spelling in spellings(stem)
)
_FILLERS = frozenset(
    [
        "einmal",
        "ein",
        "eine",
        "einen",
        "bitte",
        "ich",
        "moechte",
        "mochte",
        "haette",
        "hatte",
        "gern",
        "gerne",
        "mal",
        "termin",
        "fuer",
        "fur",
        "und",
        "mit",
        "die",
        "der",
        "das",
        "den",
        "dem",
        "meine",
        "meinen",
        "mir",
        "lassen",
        "machen",
        "auch",
        "so",
        "aeh",
        "aehm",
        "also",
        "noch",
    ]
)
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "-": " ", "/": " ", ",": " "})


@lru_cache(maxsize=4096)
def _normalize(text: str) -> str:
    return " ".join(word for word in text.lower().translate(_FOLD).split() if word not in _FILLERS)


def _concepts(text: str) -> frozenset[str]:
    return frozenset(concept for stem, concept in _STEMS if stem in text)


@lru_cache(maxsize=4096)
def _score(query: str, query_concepts: frozenset[str], phrases: tuple[str, ...]) -> float:
    # Remembered: callers say the same few words for the same few services, and WRatio showed in a
    # booking's profile (a few per cent). Pure: it cannot go stale.
    best = 0.0
    for phrase in phrases:
        best = max(best, fuzz.WRatio(query, phrase))
        concepts = _concepts(phrase)
        if query_concepts and concepts:
            shared = len(query_concepts & concepts) / len(query_concepts)
            best = max(best, 100 * shared - 10 * len(concepts - query_concepts))
    return best


def match_service(
    words: str,
    services: Sequence[ServiceLike],
    *,
    threshold: float = 85.0,
    floor: float = 70.0,
    margin: float = 8.0,
) -> Match:
    """Match the caller's words to one service; near-ties are ``candidates``, nothing close -> ``offer``."""
    offer = tuple(service.name for service in services)
    query = _normalize(words)
    if not query:
        return Match(offer=offer)
    query_concepts = _concepts(query)
    scored = sorted(
        (
            (_score(query, query_concepts, tuple(_normalize(p) for p in (s.name, s.key, *s.aliases))), index)
            for index, s in enumerate(services)
        ),
        reverse=True,
    )
    if not scored or scored[0][0] < floor:
        return Match(offer=offer)
    top = scored[0][0]
    second = scored[1][0] if len(scored) > 1 else 0.0
    if top >= threshold and top - second >= margin:
        return Match(service=services[scored[0][1]], offer=offer)
    close = tuple(services[index] for score, index in scored if score >= max(floor, top - margin))
    return Match(candidates=close, offer=offer)
