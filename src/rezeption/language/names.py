"""Spoken person names: normalization and a similarity score for finding a caller's appointment.

Owns ``normalize_name`` (case, ü/ue, ß/ss, spacing, hyphens) and ``name_score`` (0.0-1.0): Kölner
Phonetik for how a name sounds ("Meier"/"Mayer"/"Maier") plus edit distance for how it is spelled
("Schuster"/"Schusta"). Name particles ("von", "van", "de", "zu") are kept in the normalized form but
ignored in the score, so "von Weizsäcker" finds "Weizsaecker". The caller chooses the threshold;
``LIKELY_SAME`` is the one we recommend.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import Levenshtein

from rezeption.language.phonetics import cologne_code

LIKELY_SAME = 0.8
"""Scores at or above this are the same name as far as a phone line can tell."""

_PARTICLES = frozenset(
    {"von", "van", "vom", "de", "der", "den", "di", "da", "du", "zu", "zum", "zur", "ten", "ter", "le", "la"}
)
_FOLD = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "á": "a", "ó": "o", "ç": "c"}
)
_NOT_LETTERS = re.compile(r"[^a-z ]+")
_FINAL_ER = re.compile(r"er$")


def normalize_name(name: str) -> str:
    """Fold a spoken or typed name: lowercase, umlauts as ae/oe/ue, ß as ss, hyphens as spaces."""
    folded = name.lower().translate(_FOLD).replace("-", " ")
    return " ".join(_NOT_LETTERS.sub("", folded).split())


def _core(normalized: str) -> list[str]:
    tokens = normalized.split()
    core = [token for token in tokens if token not in _PARTICLES]
    return core or tokens


def _plain(token: str) -> str:
    """Spelling without umlaut digraphs, so "mueller" and "muller" compare equal."""
    return token.replace("ae", "a").replace("oe", "o").replace("ue", "u")


def _sounded(a: str, b: str) -> float:
    """Similarity of the Kölner Phonetik codes, also with a final "-er" said as "-a" ("Schusta")."""
    best = 0.0
    for x, y in ((a, b), (_FINAL_ER.sub("a", a), _FINAL_ER.sub("a", b))):
        code_x, code_y = cologne_code(x), cologne_code(y)
        best = max(best, 1.0 if code_x == code_y else Levenshtein.normalized_similarity(code_x, code_y))
    return best


def _pair_score(a: str, b: str) -> float:
    spelled = Levenshtein.normalized_similarity(_plain(a), _plain(b))
    return 0.6 * _sounded(a, b) + 0.4 * spelled


def name_score(said: str, stored: str) -> float:
    """How alike two names are, 0.0-1.0; the surname weighs most, first names count when both give them."""
    a, b = _core(normalize_name(said)), _core(normalize_name(stored))
    if not a or not b:
        return 0.0
    surname = _pair_score(a[-1], b[-1])
    if len(a) == 1 or len(b) == 1:
        return max(surname, _pair_score("".join(a), "".join(b)))
    first_names = _pair_score(" ".join(a[:-1]), " ".join(b[:-1]))
    return 0.75 * surname + 0.25 * first_names
