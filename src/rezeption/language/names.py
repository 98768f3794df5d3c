"""Spoken person names: take them apart, compare them and search them the way a phone line hears them.

Owns:
- ``normalize_name``: case, umlauts as ae/oe/ue, ß as ss, other accents dropped, hyphens as spaces.
- ``parse_name`` -> ``PersonName``: titles ("Dr.", "Frau") and particles ("von der") set aside; the
  first name, middle names and the (double) surname told apart in "Gisela Schuster-Wendt",
  "Schuster-Wendt, Gisela", "Hans Müller Lüdenscheidt" and "H. Müller"; one letter is an initial.
- ``usable_name``: whether a said name holds anything to search by (not one letter, a title, only
  particles, digits or an emoji).
- ``match_name(said, stored, strict=...)`` -> ``NameMatch`` or None. Every part the caller says must
  match its own part of the stored name, or the names are different people: "Gisela Becker-Wendt" is
  not "Gisela Schuster-Wendt", "Petra" is not "Peter". Parts may be left out ("Gisela Schuster").
  ``NameMatch.full`` says whether the first name and a part of the surname were both said in full.
  First names compare by spelling variants only (Stefan/Stephan, Hanna/Hannah), never by a changed
  ending (Michael/Michaela, Paul/Paula, Jan/Jana). Surnames compare by sound (Kölner Phonetik plus
  edit distance: "Meier"/"Mayer", "Schuster"/"Schusta") or, with ``strict=True``, by spelling with
  only the written-out forms of umlauts and ß allowed ("Müller"/"Mueller", "Weiß"/"Weiss").
- ``search_keys`` / ``said_keys``: the Kölner Phonetik keys a stored name is found by (each surname
  part and the joined surname) and the keys a said name searches with (each part).
- ``name_score`` (0-1) for short names such as a stylist's.

Written here because no maintained library does this for German callers: nameparser and
probablepeople parse English names and know no double surnames or German particles, and the
phonetic libraries (jellyfish, abydos) give codes, not a rule for when two people are the same.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from rapidfuzz.distance import Levenshtein

from rezeption.language.phonetics import cologne_code

LIKELY_SAME = 0.8
"""Scores at or above this are the same name as far as a phone line can tell."""

PARTICLES = frozenset(
    {
        "von", "van", "vom", "de", "der", "den", "di", "da", "du", "zu", "zum", "zur", "ten", "ter",
        "le", "la", "del", "della", "dos", "das", "do", "af", "av", "op",
    }
)  # fmt: skip
"""Name particles: part of a surname's spelling, never a name of their own ("Ursula von der Leyen")."""

TITLES = frozenset(
    {
        "dr", "dres", "doktor", "prof", "professor", "herr", "herrn", "frau", "hr", "fr", "dipl",
        "ing", "med", "dent", "vet", "phil", "rer", "nat", "jur", "pol", "oec", "mag", "habil", "sen",
        "jun", "jr", "sr",
    }
)  # fmt: skip
"""Titles and forms of address: said, but never part of the name searched for."""

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "œ": "oe"})
_NOT_LETTERS = re.compile(r"[^a-z ]+")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*\.?")
_FINAL_ER = re.compile(r"er$")
_VOWELS = "aeiouy"


class Role(Enum):
    """Where a part stands in a name."""

    GIVEN = "given"  # the first name (all parts of "Hans-Peter")
    MIDDLE = "middle"  # between first name and surname: a second first name or a surname part
    FAMILY = "family"  # the surname (all parts of "Schuster-Wendt")
    EITHER = "either"  # a one-word name: first name or surname, nobody can tell


@dataclass(frozen=True)
class Part:
    """One word (or one part of a hyphenated word) of a name, folded to a-z."""

    text: str
    role: Role
    initial: bool = False


@dataclass(frozen=True)
class PersonName:
    """A name taken apart; `parts` in spoken order without titles and particles."""

    parts: tuple[Part, ...]

    @property
    def spelled(self) -> tuple[Part, ...]:
        """The parts that are more than an initial."""
        return tuple(p for p in self.parts if not p.initial)

    @property
    def ordered(self) -> bool:
        """Whether first name and surname can be told apart (two words or more, or a comma)."""
        return any(p.role is Role.FAMILY for p in self.parts)


@dataclass(frozen=True)
class NameMatch:
    """The said name fits the stored one; `full` when it names first name and surname in full."""

    full: bool


def _fold(text: str) -> str:
    folded = text.lower().translate(_FOLD)
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_name(name: str) -> str:
    """Fold a spoken or typed name: lowercase, umlauts as ae/oe/ue, ß as ss, hyphens as spaces."""
    folded = _fold(name).replace("-", " ")
    return " ".join(_NOT_LETTERS.sub("", folded).split())


def _words(side: str) -> list[tuple[list[str], bool]]:
    """(hyphen parts, ends with a period) of each word; apostrophes join ("O'Brien" -> obrien)."""
    cleaned = re.sub(r"['’`´]", "", _fold(side)).replace(".", ". ")
    cleaned = re.sub(r"\s*-\s*", "-", cleaned)
    words = []
    for match in _WORD.finditer(cleaned):
        token = match.group(0)
        parts = [p for p in token.rstrip(".").split("-") if p]
        if parts:
            words.append((parts, token.endswith(".")))
    return words


def _without_titles_and_particles(words: list[tuple[list[str], bool]]) -> list[list[str]]:
    kept = [parts for parts, _ in words if not (len(parts) == 1 and parts[0] in TITLES)]
    result: list[list[str]] = []
    for i, parts in enumerate(kept):
        is_particle = len(parts) == 1 and parts[0] in PARTICLES
        if not is_particle:
            result.append(parts)
            continue
        last = i == len(kept) - 1
        named_before = any(not (len(p) == 1 and p[0] in PARTICLES) for p in kept[:i])
        if last and named_before:  # "Thi Le", "Anna La": the last word is the surname itself
            result.append(parts)
    return result


def _role_parts(groups: list[list[str]], roles: list[Role]) -> list[Part]:
    return [Part(p, role, len(p) == 1) for parts, role in zip(groups, roles, strict=True) for p in parts]


@lru_cache(maxsize=8192)
def parse_name(name: str) -> PersonName:
    """Take a name apart: "Dr. Gisela Schuster-Wendt" -> gisela (given), schuster, wendt (family)."""
    if "," in name:
        before, after = name.split(",", 1)
        family = _without_titles_and_particles(_words(before))
        given = _without_titles_and_particles(_words(after))
        if family and given:
            roles = [Role.FAMILY] * len(family) + [Role.GIVEN] + [Role.MIDDLE] * (len(given) - 1)
            return PersonName(tuple(_role_parts(family + given, roles)))
        name = before + " " + after
    groups = _without_titles_and_particles(_words(name))
    if not groups:
        return PersonName(())
    if len(groups) == 1:
        return PersonName(tuple(_role_parts(groups, [Role.EITHER])))
    roles = [Role.GIVEN] + [Role.MIDDLE] * (len(groups) - 2) + [Role.FAMILY]
    return PersonName(tuple(_role_parts(groups, roles)))


def usable_name(name: str | None) -> bool:
    """Whether a said name has something to search by: a part of two letters or more."""
    return bool(name) and any(not p.initial for p in parse_name(name or "").parts)


# --- comparing parts ------------------------------------------------------------------------------


def _plain(token: str) -> str:
    """Spelling without umlaut digraphs, so "mueller" and "muller" compare equal."""
    return token.replace("ae", "a").replace("oe", "o").replace("ue", "u")


@lru_cache(maxsize=16384)
def _skeleton(token: str) -> str:
    """A first name's spelling with its written variants evened out: Stephan -> stefan, Hannah -> hana."""
    text = _plain(token)
    if text.startswith("chr"):
        text = "kr" + text[3:]
    text = text.replace("ph", "f").replace("th", "t").replace("ck", "k").replace("y", "i")
    text = re.sub(r"c(?=[aoulr]|$)", "k", text)
    text = re.sub(r"(?<=[aeiou])h(?![aeiou])", "", text)
    return re.sub(r"(.)\1+", r"\1", text)


def _ending(skeleton: str) -> str:
    """The last vowel group and what follows it: the part that tells Michael from Michaela."""
    match = re.search(r"[aeiou]+[^aeiou]*$", skeleton)
    return match.group(0) if match else skeleton


def _given_alike(a: str, b: str) -> bool:
    """Same first name, written differently at most: never a changed letter or ending (Martin/Marvin)."""
    return _skeleton(a) == _skeleton(b)


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


@lru_cache(maxsize=16384)
def _family_alike(a: str, b: str, strict: bool) -> bool:
    if _plain(a) == _plain(b):
        return True
    return not strict and _pair_score(a, b) >= LIKELY_SAME


def _parts_alike(said: Part, stored: Part, strict: bool) -> bool:
    if said.initial or stored.initial:
        return said.text[0] == stored.text[0]
    if stored.role is Role.GIVEN:
        return _given_alike(said.text, stored.text)
    if stored.role is Role.FAMILY:
        return _family_alike(said.text, stored.text, strict)
    same_ending = _ending(_skeleton(said.text)) == _ending(_skeleton(stored.text))
    return _given_alike(said.text, stored.text) or (
        same_ending and _family_alike(said.text, stored.text, strict)
    )


def _joined(parts: tuple[Part, ...]) -> Part:
    role = Role.FAMILY if any(p.role is Role.FAMILY for p in parts) else parts[0].role
    return Part("".join(p.text for p in parts), role)


def _units(parts: tuple[Part, ...], free: frozenset[int]) -> Iterator[tuple[frozenset[int], Part]]:
    """The free stored parts one said part may stand for: one part, or two neighbours written
    together ("Schusterwendt" for "Schuster-Wendt")."""
    for j in sorted(free):
        yield frozenset({j}), parts[j]
        if j + 1 in free and not parts[j].initial and not parts[j + 1].initial:
            yield frozenset({j, j + 1}), _joined(parts[j : j + 2])


def _assignments(
    said: tuple[Part, ...], stored: tuple[Part, ...], strict: bool, free: frozenset[int]
) -> Iterator[frozenset[int]]:
    """Every way to give each said part its own stored part(s); yields the stored parts matched by a
    said part in full (not by an initial). Two neighbouring said parts may also match one stored
    part ("Schuster Wendt" for "Schusterwendt")."""
    if not said:
        yield frozenset()
        return
    head, rest = said[0], said[1:]
    for unit, target in _units(stored, free):
        if (len(unit) == 1 or not head.initial) and _parts_alike(head, target, strict):
            spelled = frozenset() if head.initial or target.initial else unit
            for matched in _assignments(rest, stored, strict, free - unit):
                yield matched | spelled
    if rest and not head.initial and not rest[0].initial:
        together = _joined(said[:2])
        for j in sorted(free):
            if not stored[j].initial and _parts_alike(together, stored[j], strict):
                for matched in _assignments(rest[1:], stored, strict, free - {j}):
                    yield matched | {j}


def _names_in_full(stored: tuple[Part, ...], full: frozenset[int]) -> bool:
    first_given = next((j for j, p in enumerate(stored) if p.role is Role.GIVEN), None)
    if first_given is None or stored[first_given].initial or first_given not in full:
        return False
    return any(stored[j].role is Role.FAMILY for j in full)


@lru_cache(maxsize=16384)
def match_name(said: str, stored: str, *, strict: bool = False) -> NameMatch | None:
    """Whether `said` can be the person booked as `stored` (None: a said part contradicts it)."""
    said_parts, stored_parts = parse_name(said).parts, parse_name(stored).parts
    if not said_parts or not stored_parts or not any(not p.initial for p in said_parts):
        return None
    if len(said_parts) > len(stored_parts) + 1:
        return None
    found: NameMatch | None = None
    for full in _assignments(said_parts, stored_parts, strict, frozenset(range(len(stored_parts)))):
        if _names_in_full(stored_parts, full):
            return NameMatch(full=True)
        found = NameMatch(full=False)
    return found


def says_full_name(said: str) -> bool:
    """Whether a said name has two spelled-out parts (a first name and a surname, in some order)."""
    return len(parse_name(said).spelled) >= 2


# --- search keys ----------------------------------------------------------------------------------


def _key(token: str) -> str | None:
    return cologne_code(_FINAL_ER.sub("a", token)) or None


def search_keys(name: str | None) -> list[str]:
    """The keys a stored name is found by: each surname (and middle) part's sound, and the parts joined."""
    parts = parse_name(name or "").spelled
    if not parts:
        return []
    searchable = [p.text for p in parts if p.role is not Role.GIVEN] or [p.text for p in parts]
    joined = ["".join(searchable[i : i + 2]) for i in range(len(searchable) - 1)]
    return sorted({key for token in searchable + joined if (key := _key(token))})


def said_keys(name: str) -> list[str]:
    """The keys a said name searches with: every spelled part may be (a part of) the surname."""
    parts = [p.text for p in parse_name(name).spelled][:6]
    joined = ["".join(parts[i : i + 2]) for i in range(len(parts) - 1)]
    return sorted({key for token in parts + joined if (key := _key(token))})


def name_score(said: str, stored: str) -> float:
    """How alike two names are, 0.0-1.0; the surname weighs most, first names count when both give them."""
    a = [t for t in normalize_name(said).split() if t not in PARTICLES] or normalize_name(said).split()
    b = [t for t in normalize_name(stored).split() if t not in PARTICLES] or normalize_name(stored).split()
    if not a or not b:
        return 0.0
    surname = _pair_score(a[-1], b[-1])
    if len(a) == 1 or len(b) == 1:
        return max(surname, _pair_score("".join(a), "".join(b)))
    first_names = _pair_score(" ".join(a[:-1]), " ".join(b[:-1]))
    return 0.75 * surname + 0.25 * first_names
