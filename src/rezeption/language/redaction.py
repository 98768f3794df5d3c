"""Cut one person's name and phone number out of text and JSON we keep about other people (GDPR).

Owns ``Redactor``. A call several people share (a mother books for herself and her son) keeps its
transcript, memory and function-call traces when one of them is erased; only the erased person's
words go. ``Redactor.build(names, phones)`` takes their names and numbers and replaces, with
``[gelöscht]``:

- every word of 2+ letters of their names, case-insensitive and umlaut-folded both ways ("Müller",
  "MUELLER", "muller"; "Weiß", "Weiss"), also with a genitive "s" ("Müllers"). Name particles and
  titles ("von", "de", "Frau") are no one's name and stay, and so do words another person in the
  same text is called (``keep``): the surname a family shares stays for the one not erased;
- their numbers as written in speech-to-text and by hand: "+49 151 12345678", "0049151...",
  "0151 12345678", "015112345678", "0151-123 456 78", "+49 (0)151 ..." (digits with spaces,
  dashes, slashes, dots or brackets between them). Digits spoken as words are not recognised;
- literal strings given as ``emails``, case-insensitive.

Pure: no database, no logging.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers

from rezeption.language.names import PARTICLES, TITLES

REDACTED = "[gelöscht]"

_WORD = re.compile(r"[^\W\d_]+")
_DIGIT_RUN = re.compile(r"\+?\d(?:[ \t\-/().]{0,3}\d)*")
_GERMAN_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_SKIPPED = PARTICLES | TITLES


def fold_word(word: str) -> str:
    """A word as it compares: casefolded, umlauts as ae/oe/ue, ß as ss, other accents dropped."""
    folded = word.casefold().translate(_GERMAN_FOLD)
    return "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))


def _word_forms(word: str) -> set[str]:
    """The folded forms a name word matches: "Müller" -> mueller and muller (umlaut dropped)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", word.casefold()) if not unicodedata.combining(c))
    return {fold_word(word), fold_word(plain)}


def name_words(names: Iterable[str | None]) -> set[str]:
    """The folded words of `names` that identify someone (2+ letters, no particles or titles)."""
    words: set[str] = set()
    for name in names:
        for match in _WORD.finditer(name or ""):
            word = match.group()
            if len(word) >= 2 and fold_word(word) not in _SKIPPED:
                words |= _word_forms(word)
    return words


def phone_digit_forms(e164: str) -> set[str]:
    """The digit strings a number is written as: 4915112345678, 004915112345678, 015112345678, ..."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        digits = re.sub(r"\D", "", e164)
        return {digits} if len(digits) >= 6 else set()
    country = str(number.country_code)
    significant = phonenumbers.national_significant_number(number)
    national = re.sub(r"\D", "", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    forms = {country + significant, "00" + country + significant, country + "0" + significant}
    if len(national) >= 6:
        forms.add(national)
    return forms


@dataclass(frozen=True)
class Redactor:
    """Replaces one person's name words, phone numbers and e-mail addresses with ``[gelöscht]``."""

    words: frozenset[str] = frozenset()
    digit_forms: tuple[str, ...] = ()
    literals: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        names: Iterable[str | None],
        phones: Iterable[str | None],
        *,
        emails: Iterable[str | None] = (),
        keep: Iterable[str | None] = (),
    ) -> Redactor:
        """Redact the words of `names`, the numbers `phones` (E.164) and `emails`; never the words of
        `keep` (names of people in the same text who stay)."""
        words = name_words(names) - name_words(keep)
        forms = {form for phone in phones if phone for form in phone_digit_forms(phone)}
        literals = {e.strip().casefold() for e in emails if e and e.strip()}
        return cls(
            frozenset(words),
            tuple(sorted(forms, key=len, reverse=True)),
            tuple(sorted(literals, key=len, reverse=True)),
        )

    def __bool__(self) -> bool:
        return bool(self.words or self.digit_forms or self.literals)

    def text(self, value: str) -> str:
        """`value` with the person's e-mails, numbers and name words replaced."""
        for literal in self.literals:
            value = re.sub(re.escape(literal), REDACTED, value, flags=re.IGNORECASE)
        if self.digit_forms:
            value = _DIGIT_RUN.sub(self._numbers, value)
        if self.words:
            value = _WORD.sub(self._word, value)
        return value

    def _word(self, match: re.Match[str]) -> str:
        """A name word, also with the genitive "s" ("Müllers Termin"), redacted; other words stay."""
        folded = fold_word(match.group())
        if folded in self.words or (folded.endswith("s") and folded[:-1] in self.words):
            return REDACTED
        return match.group()

    def json(self, value: Any) -> Any:
        """`value` (a JSON document) with every string in it redacted; keys and structure stay."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value

    def _numbers(self, run: re.Match[str]) -> str:
        """One run of digits (with separators): the parts that spell one of the numbers, replaced."""
        text = run.group()
        positions = [i for i, c in enumerate(text) if c.isdigit()]
        digits = "".join(text[i] for i in positions)
        spans: list[tuple[int, int]] = []
        for form in self.digit_forms:
            start = digits.find(form)
            while start != -1:
                spans.append((positions[start], positions[start + len(form) - 1] + 1))
                start = digits.find(form, start + 1)
        if not spans:
            return text
        merged: list[tuple[int, int]] = []
        for begin, end in sorted(spans):
            if begin == 1 and text.startswith("+"):
                begin = 0
            if merged and begin <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((begin, end))
        out, last = [], 0
        for begin, end in merged:
            out += [text[last:begin], REDACTED]
            last = end
        out.append(text[last:])
        return "".join(out)
