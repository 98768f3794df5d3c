"""Kölner Phonetik (Cologne phonetics, Postel 1969): a German name -> a digit code by its sound.

Owns ``cologne_code``. "Meier", "Mayer" and "Maier" all give "67"; "Schuster" and "Schusta" give
"8827" and "882". Written here because no small, maintained package does it.
"""

from __future__ import annotations

_SIMPLE = {
    **dict.fromkeys("aeijouy", "0"),
    "h": "",
    "b": "1",
    "f": "3",
    "v": "3",
    "w": "3",
    **dict.fromkeys("gkq", "4"),
    "l": "5",
    **dict.fromkeys("mn", "6"),
    "r": "7",
    **dict.fromkeys("sz", "8"),
}
_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "s"})
_SIBILANTS = frozenset("csz")
_VELARS = frozenset("ckq")
_S_Z = frozenset("sz")
_C_HARD_AT_START = frozenset("ahkloqrux")
_C_HARD = frozenset("ahkoqux")


def _code(prev: str, char: str, nxt: str, first: bool) -> str:
    """The code of one letter given its neighbours (the rules of the 1969 table)."""
    if char in _SIMPLE:
        return _SIMPLE[char]
    if char == "p":
        return "3" if nxt == "h" else "1"
    if char in ("d", "t"):
        return "8" if nxt in _SIBILANTS else "2"
    if char == "x":
        return "8" if prev in _VELARS else "48"
    if char == "c":
        if first:
            return "4" if nxt in _C_HARD_AT_START else "8"
        if prev in _S_Z:
            return "8"
        return "4" if nxt in _C_HARD else "8"
    return ""


def cologne_code(word: str) -> str:
    """Return the Kölner Phonetik code of a word (letters other than a-z and umlauts are ignored)."""
    letters = [c for c in word.lower().translate(_FOLD) if "a" <= c <= "z"]
    raw = [
        _code(letters[i - 1] if i else "", c, letters[i + 1] if i + 1 < len(letters) else "", i == 0)
        for i, c in enumerate(letters)
    ]
    digits = "".join(raw)
    collapsed = [d for i, d in enumerate(digits) if i == 0 or d != digits[i - 1]]
    if not collapsed:
        return ""
    return collapsed[0] + "".join(d for d in collapsed[1:] if d != "0")
