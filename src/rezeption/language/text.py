"""Speech-to-text output -> one canonical phrase the date and time grammars read.

Owns the folding of a caller's words: lowercase; ä/ö/ü -> ae/oe/ue and ß -> ss (and the forms
without umlauts mapped back); number words -> digits ("vierzehn" -> "14", "fünften" -> "5.");
filler words dropped ("äh", "bitte", "wenn's geht"); spelling variants and English words mapped to
one German keyword ("nächsten"/"naechster"/"next" -> "naechste", "tomorrow" -> "morgen");
"morgen" after "heute" or a weekday read as the part of day ("heute morgen" -> "heute morgens").
Also `strip_controls`, which the edge applies to every string a request brings.
"""

from __future__ import annotations

import re

from rezeption.language.numbers import NUMBER_WORDS, spellings

WEEKDAYS = ("montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag")
MONTHS = (
    "januar",
    "februar",
    "maerz",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "dezember",
)

_CANONICAL: dict[str, tuple[str, ...]] = {
    # weekdays
    "montag": ("montags", "monday"),
    "dienstag": ("dienstags", "tuesday"),
    "mittwoch": ("mittwochs", "wednesday"),
    "donnerstag": ("donnerstags", "thursday"),
    "freitag": ("freitags", "friday"),
    "samstag": ("samstags", "sonnabend", "sonnabends", "saturday"),
    "sonntag": ("sonntags", "sunday"),
    # months
    "januar": ("jaenner", "jänner", "january", "jan"),
    "februar": ("feber", "february", "feb"),
    "märz": ("march", "mrz"),
    "april": ("apr",),
    "juni": ("juno", "june", "jun"),
    "juli": ("julei", "july", "jul"),
    "august": ("aug",),
    "september": ("sept", "sep"),
    "oktober": ("october", "okt", "oct"),
    "november": ("nov",),
    "dezember": ("december", "dez", "dec"),
    # relative days
    "heute": ("today", "heut"),
    "morgen": ("tomorrow",),
    "übermorgen": (),
    "gestern": ("yesterday",),
    "vorgestern": (),
    # modifiers
    "nächste": ("nächsten", "nächster", "nächstes", "nächstem", "kommende", "kommenden", "kommender", "next"),
    "übernächste": ("übernächsten", "übernächster", "übernächstes"),
    "diese": ("diesen", "dieser", "dieses", "diesem", "this"),
    "letzte": ("letzten", "letzter", "letztes", "vergangenen", "vergangene", "last"),
    "woche": ("week", "kalenderwoche"),
    "wochen": ("weeks",),
    "tagen": ("tage", "days"),
    "tag": ("day",),
    "monat": ("month",),
    "monaten": ("monate", "months"),
    "wochenende": ("weekend",),
    "anfang": ("beginning", "early"),
    "ende": ("end", "late"),
    "mitte": ("middle", "mid"),
    # parts of the day
    "morgens": ("früh", "frühmorgens"),
    "vormittags": ("vormittag", "morning", "forenoon"),
    "mittags": ("mittag", "noon", "midday", "mittagszeit", "mittagspause"),
    "nachmittags": ("nachmittag", "afternoon"),
    "abends": ("abend", "evening", "tonight"),
    "nachts": ("nacht", "night"),
    # clock words
    "uhr": ("o'clock", "oclock", "h"),
    "um": ("at",),
    "nach": ("past", "after"),
    "vor": ("to", "before"),
    "halb": ("half", "halbe"),
    "viertel": ("quarter",),
    "dreiviertel": ("dreivirtel",),
    "gegen": ("around", "about", "approximately", "ungefähr", "etwa", "circa", "ca", "ca.", "zirka"),
    "minuten": ("minute", "minutes"),
    "pm": ("p.m",),
    "am": ("a.m",),
}

_FILLERS = frozenset(
    [
        "äh",
        "ähm",
        "ähem",
        "öh",
        "ah",
        "eh",
        "ehm",
        "hm",
        "hmm",
        "hmmm",
        "also",
        "bitte",
        "wenns",
        "geht",
        "gehts",
        "ginge",
        "vielleicht",
        "eventuell",
        "eher",
        "gerne",
        "gern",
        "mal",
        "ja",
        "na",
        "nun",
        "dann",
        "denn",
        "doch",
        "halt",
        "eben",
        "ok",
        "okay",
        "schon",
        "so",
        "the",
        "on",
        "of",
        "for",
        "please",
        "maybe",
        "uh",
        "like",
        "and",
        "ich",
        "hätte",
        "möchte",
        "wäre",
        "würde",
        "gut",
        "passt",
    ]
)

_LOOKUP: dict[str, str] = {}
for _canonical in _CANONICAL:  # the canonical form is always the ae/oe/ue/ss spelling
    _folded = _canonical.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    for _word in (_canonical, *_CANONICAL[_canonical]):
        for _spelling in spellings(_word):
            _LOOKUP[_spelling] = _folded
_FILLER_SPELLINGS = frozenset(s for word in _FILLERS for s in spellings(word))

_FOLD = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "’": "", "'": "", "`": "", "´": ""}
    | dict.fromkeys(',;!?"()[]', " ")
)
_WORD_PHRASES = (  # (a word that must be present, the pattern, its replacement)
    ("tomorrow", re.compile(r"\b(?:the )?day after tomorrow\b"), "uebermorgen"),
    ("this", re.compile(r"\bthis (morning|afternoon|evening)\b"), r"heute \1"),
    ("am vormittag", re.compile(r"\bam vormittag\b"), "vormittags"),
    ("tonight", re.compile(r"\btonight\b"), "heute abends"),
)
_HAS_DIGIT = re.compile(r"\d")
_DIGIT_PHRASES = (
    (re.compile(r"(\d)(uhr|h|pm|am)\b"), r"\1 \2"),
    (re.compile(r"\b(\d{4}-\d\d-\d\d)t(\d)"), r"\1 \2"),
    (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b"), r"\1."),
    (re.compile(r"(\d)\s*:\s*(\d)"), r"\1:\2"),
)
_MORNING_AFTER = frozenset({"heute", "morgen", "uebermorgen", "gestern", *WEEKDAYS})
_TENS = frozenset({"20", "30", "40", "50"})


def normalize(text: str) -> str:
    """Fold a caller's words into the canonical phrase the grammars read."""
    if not text:
        return ""
    folded = text.lower().translate(_FOLD)
    for keyword, pattern, replacement in _WORD_PHRASES:
        if keyword in folded:
            folded = pattern.sub(replacement, folded)
    if _HAS_DIGIT.search(folded):
        for pattern, replacement in _DIGIT_PHRASES:
            folded = pattern.sub(replacement, folded)
    out: list[str] = []
    for token in folded.split():
        word = token.rstrip(".")
        number = NUMBER_WORDS.get(word)
        if number is not None:
            value, ordinal = number
            if str(value) in _TENS and len(out) >= 2 and out[-1] == "und":
                # "fünf und zwanzig" written apart
                unit = out[-2]
                if unit.isdigit() and 1 <= int(unit) <= 9:
                    del out[-2:]
                    value += int(unit)
            if out and out[-1] == "2000" and value < 100:
                out.pop()
                value += 2000
            out.append(f"{value}." if ordinal else str(value))
            continue
        canonical = _LOOKUP.get(word)
        if canonical is None and word in _FILLER_SPELLINGS:
            continue
        if canonical == "morgen" and out and out[-1] in _MORNING_AFTER:
            canonical = "morgens"
        out.append(canonical if canonical is not None else token)
    return " ".join(out)


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_controls(text: str) -> str:
    """`text` without control characters (NUL and the like); tab, newline and return stay."""
    return _CONTROLS.sub("", text)
