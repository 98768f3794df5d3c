"""One caller utterance -> what it says: intents, yes or no, service, day and time, stylist, name.

Hand-written on purpose: no library understands German receptionist talk from speech-to-text
(intent classifiers need training data we do not have and decide nothing we could test line by
line). Dates and times come from our resolver (`language.resolve_when`, the whole sentence at once),
services from the salon's names and aliases, stylists from the salon's staff list. What is not
recognised stays None: the manager asks, it never guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from rapidfuzz import fuzz

from rezeption.domain.model import Catalog, Service, Staff
from rezeption.language import When, resolve_when
from rezeption.language.names import usable_name
from rezeption.language.phonetics import cologne_code
from rezeption.language.when import weekly_pairs

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "-": " "})
_PUNCT = re.compile(r"[^\w\s]")


def fold(text: str) -> str:
    """Lower case, umlauts folded, punctuation gone, single spaces."""
    return " ".join(_PUNCT.sub(" ", text.lower().translate(_FOLD)).split())


def _any(text: str, phrases: tuple[str, ...]) -> bool:
    padded = f" {text} "
    return any(f" {phrase} " in padded for phrase in phrases)


def _stem(text: str, stems: tuple[str, ...]) -> bool:
    """A stem at the start of a word ("absagen", "verschieben"), never inside one ("Streicher")."""
    padded = f" {text}"
    return any(f" {stem}" in padded for stem in stems)


YES_FIRST = frozenset({"ja", "jawohl", "jep", "jo", "genau", "gerne", "gern", "richtig", "korrekt", "okay",
                       "ok", "klar", "passt", "perfekt", "prima", "super", "einverstanden", "stimmt",
                       "sicher", "gut"})  # fmt: skip
YES_PHRASES = ("das passt", "passt gut", "machen sie das", "buchen sie", "ja bitte", "sehr gern",
               "sehr gerne", "klingt gut", "so machen", "das ist richtig", "das stimmt")  # fmt: skip
NO_FIRST = frozenset({"nein", "nee", "ne", "noe", "falsch"})
NO_PHRASES = ("lieber nicht", "stimmt nicht", "auf keinen fall", "das passt nicht", "passt nicht",
              "passt mir nicht", "nicht so", "geht nicht", "kann ich nicht", "nein danke")  # fmt: skip
NAME_FILLERS = frozenset({"ja", "also", "aeh", "aehm", "das", "ist", "ich", "bin", "gerne", "bitte", "na",
                          "klar", "mein", "name"})  # fmt: skip
GOODBYE = ("tschuess", "auf wiederhoeren", "auf wiedersehen", "wiederhoeren", "ciao", "das wars",
           "das war es", "das war alles", "das wars schon", "nichts weiter", "nichts mehr", "schoenen tag",
           "bye", "ade", "adieu")  # fmt: skip
GREETINGS = ("hallo", "guten tag", "guten morgen", "guten abend", "gruess gott", "gruess sie", "moin",
             "servus", "hi", "gruezi")  # fmt: skip
THANKS = ("danke", "vielen dank", "dankeschoen", "danke schoen", "merci")
CANCEL = ("absag", "storn", "cancel", "streichen sie", "termin streichen", "nicht kommen", "nicht wahrnehmen",
          "abmeld", "sage ihn ab", "sage den termin ab", "sagen sie ihn ab")  # fmt: skip
RESCHEDULE = ("verschieb", "verleg", "umbuch", "umleg", "termin aendern", "termin umaendern")
BOOK = ("termin", "buch", "reservier", "vorbeikommen", "kommen", "schneiden", "haette gern", "moechte",
        "haerchen", "frisur")  # fmt: skip
PRICES = ("kost", "preis", "teuer", "euro", "guenstig")
SERVICES = ("was bieten", "welche leistungen", "was machen sie", "was kann man", "angebot",
            "was gibt es", "leistungen")  # fmt: skip
HOURS = ("oeffnungszeit", "geoeffnet", "offen", "wann haben sie", "bis wann", "ab wann", "wann kann man",
         "auf haben", "aufhaben", "zu haben")  # fmt: skip
PERSON = ("mit einem menschen", "einen menschen", "echten menschen", "mensch sprechen", "menschen sprechen",
          "mitarbeiter sprechen", "jemanden sprechen", "jemand sprechen", "person sprechen", "verbinden sie",
          "verbinden mich", "mich verbinden", "weiterleiten", "durchstellen", "den chef", "die chefin",
          "dem chef", "der chefin", "inhaber", "echte person", "echten person", "richtigen person",
          "mit jemandem", "kollegin sprechen", "kollegen sprechen")  # fmt: skip
ABANDON = ("lassen sie es", "lassen wir das", "lassen wir es", "vergessen sie es", "doch keinen termin",
           "abbrechen", "brauche keinen termin", "will keinen termin", "moechte keinen termin")  # fmt: skip
ANYONE = ("egal wer", "egal bei wem", "egal welche", "egal welcher", "irgendwer", "irgendjemand", "beliebig",
          "wer frei ist", "wer zeit hat", "ist mir egal", "egal", "keine vorliebe", "niemand bestimmtes",
          "jemand anderes", "jemand anderem", "wer auch immer")  # fmt: skip
UNKNOWN_SERVICES = ("dauerwelle", "hochsteck", "brautfrisur", "manikuere", "pedikuere", "massage", "wimpern",
                    "augenbrauen", "extension", "glaett", "naegel", "nagel", "kosmetik", "tattoo",
                    "piercing", "rasieren der beine", "waxing", "make up")  # fmt: skip
GENERIC_CUT = ("haarschnitt", "haare schneiden", "schneiden lassen", "haare kuerzen", "schnitt")
ORDINALS = {"ersten": 0, "erste": 0, "erster": 0, "zweiten": 1, "zweite": 1, "zweiter": 1, "dritten": 2,
            "dritte": 2, "dritter": 2, "letzten": -1, "letzte": -1, "letzter": -1,
            "1": 0, "2": 1, "3": 2}  # fmt: skip
_NAME_CUES = re.compile(
    r"(?:mein name ist|mein name|ich heiße|ich heisse|hier ist|hier spricht|auf den namen|"
    r"name ist|name lautet|der name ist|unter dem namen|für|ich bin)\s+(?P<name>[^\d,.!?;]+)",
    re.IGNORECASE,
)
_NAME_STOP = re.compile(
    r"\s+(?:und|ich|am|um|bitte|morgen|heute|nächste\w*|naechste\w*|gerne|danke|für|fuer|einen|eine|"
    r"der|die|das|zum|zur|bei|mit|von|im|in|ab|wegen)\b.*$",
    re.IGNORECASE,
)
_NEVER_NAMES = frozenset(
    [
        "wie",
        "was",
        "wann",
        "wo",
        "warum",
        "wieso",
        "welche",
        "welcher",
        "teuer",
        "kostet",
        "falsch",
        "richtig",
        "ersten",
        "erste",
        "zweiten",
        "zweite",
        "dritten",
        "dritte",
        "letzten",
        "letzte",
        "nochmal",
        "termin",
        "uhr",
        "moment",
        "nicht",
        "kein",
        "keine",
    ]
)
_NOT_THAT_DAY = re.compile(
    r"\bnicht\s+(?:am\s+|an\s+dem\s+|den\s+|um\s+)?(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|"
    r"sonntag|morgen|heute|übermorgen|uebermorgen|\d{1,2}(?::\d\d)?\s*uhr)\b",
    re.IGNORECASE,
)
_INSTEAD = re.compile(r"\b(?:sondern|lieber|stattdessen|besser)\b", re.IGNORECASE)
_ARTICLE_BEFORE_AM = re.compile(r"\b(?:einen|einem|eine|ein)\s+(?=am\b)", re.IGNORECASE)
_NAME_HERE = re.compile(r"(?P<name>[A-ZÄÖÜ][a-zäöüß'-]+ [A-ZÄÖÜ][a-zäöüß'-]+) hier\b")
_DAY_WORDS = re.compile(
    r"\b(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|morgen|heute|uebermorgen|woche)\b"
)
_CAPITALIZED = re.compile(r"^[A-ZÄÖÜ][a-zäöüß'-]+(?:\s+[A-ZÄÖÜ][a-zäöüß'-]+){1,2}$")
_NOT_NAMES = frozenset({"ja", "nein", "danke", "bitte", "hallo", "guten", "tag", "termin", "morgen",
                       "heute", "uhr", "gerne", "ok", "okay", "genau", "egal", "lieber", "doch",
                       "also", "na", "gut", "super", "moment", "friseur", "wochenende", "woche",
                       "nachmittag", "vormittag", "abend", "mittag"})  # fmt: skip


@dataclass
class Heard:
    """What one utterance says; None or False where it says nothing about a thing."""

    text: str
    folded: str
    yes: bool = False
    no: bool = False
    goodbye: bool = False
    greets: bool = False
    abandon: bool = False  # "lassen Sie es", "ich will doch keinen Termin"
    books_explicitly: bool = False  # "buchen", "einen neuen Termin"
    call_back: bool = False  # "rufen Sie mich zurück"
    try_again: bool = False  # "versuchen Sie es noch einmal"
    thanks: bool = False
    wants_person: bool = False
    intent: str | None = None  # "book", "cancel", "reschedule"
    asks_prices: bool = False
    asks_services: bool = False
    asks_hours: bool = False
    service: Service | None = None
    service_candidates: tuple[Service, ...] = ()
    unknown_service: str | None = None
    when: When | None = None  # a day and/or time said (or a day that was refused, with its reason)
    staff: Staff | None = None
    not_staff: Staff | None = None  # "doch nicht Anna"
    anyone: bool = False
    name: str | None = None
    choice: int | None = None  # "den ersten", "die zweite", "die letzte"

    @property
    def has_content(self) -> bool:
        """Whether the utterance said anything the dialog can use."""
        return any(
            (
                self.yes,
                self.no,
                self.goodbye,
                self.greets,
                self.abandon,
                self.call_back,
                self.try_again,
                self.thanks,
                self.wants_person,
                self.intent,
                self.asks_prices,
                self.asks_services,
                self.asks_hours,
                self.service,
                self.service_candidates,
                self.unknown_service,
                self.when,
                self.staff,
                self.not_staff,
                self.anyone,
                self.name,
                self.choice is not None,
            )
        )


def hear(text: str, catalog: Catalog, now: datetime, *, expecting_name: bool = False) -> Heard:
    """Understand one utterance against the salon (`now` aware, in the salon's zone)."""
    folded = fold(text)
    heard = Heard(text=text, folded=folded)
    if not folded:
        return heard
    words = folded.split()
    first = words[0]
    heard.yes = first in YES_FIRST or _any(folded, YES_PHRASES)
    heard.no = first in NO_FIRST or _any(folded, NO_PHRASES) or "nein" in words
    if heard.no or "aber" in words:  # "ja, aber …", "ja nein": a change, not a plain yes
        heard.yes = False
    heard.abandon = _any(folded, ABANDON)
    heard.books_explicitly = _stem(folded, ("buch", "reservier", "neuen termin", "einen neuen"))
    heard.goodbye = _any(folded, GOODBYE)
    heard.thanks = _any(folded, THANKS)
    heard.greets = _any(folded, GREETINGS)
    heard.call_back = _stem(
        folded, ("zurueckruf", "rueckruf", "zurueck rufen", "rufen sie mich", "melden sie sich")
    )
    heard.try_again = _stem(folded, ("versuch", "nochmal", "noch mal", "noch einmal", "warte"))
    heard.wants_person = _stem(folded, PERSON) or any(
        re.search(rf"\b{re.escape(fold(member.name))} (?:sprechen|ans telefon|an den apparat)", folded)
        for member in catalog.staff
    )
    if _stem(folded, CANCEL):
        heard.intent = "cancel"
    elif _stem(folded, RESCHEDULE):
        heard.intent = "reschedule"
    elif _stem(folded, BOOK):
        heard.intent = "book"
    heard.asks_prices = _stem(folded, PRICES)
    heard.asks_services = _stem(folded, SERVICES)
    heard.asks_hours = _stem(folded, HOURS) and not _stem(folded, ("termin frei", "frei"))
    _hear_service(heard, catalog)
    _hear_staff(heard, catalog)
    _hear_when(heard, catalog, now)
    _hear_name(heard, catalog, expecting_name)
    if heard.name and heard.staff and _named_after(heard.staff, heard.name):
        heard.staff = None  # "Anna Schmidt" / "Klara Meier" is the caller, not our Anna or Clara
    for word in words:
        if word in ORDINALS and (word.isalpha() or len(words) <= 3):
            heard.choice = ORDINALS[word]
            break
    asks = heard.asks_prices or heard.asks_services or heard.asks_hours
    if heard.service is not None and heard.intent is None and not asks:
        heard.intent = "book"
    return heard


def _phrases(service: Service) -> list[str]:
    return [fold(p) for p in (service.name, service.key.replace("-", " "), *service.aliases) if fold(p)]


def _hear_service(heard: Heard, catalog: Catalog) -> None:
    """The longest service name or alias said; a misspelt one by its sound; "Haarschnitt" alone ->
    the candidates to ask between; a service the salon does not offer -> its words."""
    active = [s for s in catalog.services if s.active]
    best: tuple[int, Service] | None = None
    for service in active:
        for phrase in _phrases(service):
            if _any(heard.folded, (phrase,)) and (best is None or len(phrase) > best[0]):
                best = (len(phrase), service)
    if best is None:
        for word in heard.folded.split():
            if len(word) < 7:
                continue
            for service in active:
                for phrase in _phrases(service):
                    if " " not in phrase and len(phrase) >= 7 and fuzz.ratio(word, phrase) >= 85:
                        best = (len(phrase), service)
    if best is not None:
        heard.service = best[1]
        return
    for stem in UNKNOWN_SERVICES:
        if stem in heard.folded:
            word = next(w for w in heard.folded.split() if stem.split()[0] in w)
            heard.unknown_service = word
            return
    if _stem(heard.folded, GENERIC_CUT):
        cuts = tuple(s for s in active if "schnitt" in fold(s.name))
        if len(cuts) == 1:
            heard.service = cuts[0]
        elif cuts:
            heard.service_candidates = cuts


def _hear_staff(heard: Heard, catalog: Catalog) -> None:
    segments = [fold(part).split() for part in re.split(r"[,;.!?]", heard.text)]
    for member in (s for s in catalog.staff if s.active):
        names = {fold(member.name), fold(member.key)}
        for words in segments:  # "nicht" counts within its part of the sentence: "nicht bei Anna, Klara …"
            for index, word in enumerate(words):
                if word in names or any(_sounds_like(word, n) for n in names):
                    if set(words[max(0, index - 3) : index]) & {"nicht", "keine", "kein", "ohne"}:
                        heard.not_staff = member
                        heard.anyone = True
                    else:
                        heard.staff = member
    if heard.staff is None and _any(heard.folded, ANYONE):
        heard.anyone = True


def _named_after(member: Staff, name: str) -> bool:
    staff = fold(member.name)
    return any(word == staff or _sounds_like(word, staff) for word in fold(name).split())


def _sounds_like(word: str, name: str) -> bool:
    """ "Klara" for Clara, as speech-to-text may write it; never "Hanna" for Anna."""
    same_start = word[:1] == name[:1] or {word[:1], name[:1]} <= {"c", "k"}
    return len(word) >= 4 and same_start and cologne_code(word) == cologne_code(name)


def _hear_when(heard: Heard, catalog: Catalog, now: datetime) -> None:
    text = heard.text
    if heard.staff is not None or heard.not_staff is not None:  # "Anna" is nobody's date
        for member in catalog.staff:
            text = re.sub(rf"\b{re.escape(member.name)}\b", " ", text, flags=re.IGNORECASE)
    text = _ARTICLE_BEFORE_AM.sub("", text)  # "einen am Freitag" is no "1 am" (a.m.)
    text = _NOT_THAT_DAY.sub(" ", text)  # "nicht am Mittwoch, sondern am Donnerstag"
    hours = weekly_pairs(catalog.tenant.opening_hours)
    wanted = _INSTEAD.split(text)
    when = resolve_when(wanted[-1], "", now, opening_hours=hours) if len(wanted) > 1 else None
    if when is None or when.reason == "not_understood":  # "lieber Donnerstag": what follows counts
        when = resolve_when(text, "", now, opening_hours=hours)
    if when.reason == "not_understood" or (
        when.date is None and when.time is None and when.window is None and when.reason is None
    ):
        return
    picks = re.search(r"\b(?:den|die|das|der) (?:ersten|erste|zweiten|zweite|dritten|dritte)\b", heard.folded)
    if picks and when.date is not None and when.time is None and when.date.day <= 3:
        return  # "den ersten" / "die zweite" is a pick from a list more often than a day of the month
    heard.when = when


def _clean_name(raw: str) -> str | None:
    name = _NAME_STOP.sub("", raw.strip()).strip(" .,!?")
    if any(fold(word) in _NEVER_NAMES for word in name.split()):
        return None  # "Wie bitte?", "Nein, der Name ist falsch", "den ersten"
    parts = [p for p in name.split() if p.lower() not in _NOT_NAMES]
    if not parts or len(parts) > 4:
        return None
    candidate = " ".join(p[:1].upper() + p[1:] for p in parts)
    return candidate if usable_name(candidate) else None


def _hear_name(heard: Heard, catalog: Catalog, expecting_name: bool) -> None:
    """ "Mein Name ist Hans Schuster", "…, Hans Schuster" (a trailing part of capitalised words that
    is nothing else), or the whole answer when the name was just asked for."""
    for match in _NAME_CUES.finditer(heard.text):
        cue = match.group(0).split()[0].lower()
        if cue in {"für", "fuer", "ich"} and not _CAPITALIZED.match(
            match["name"].strip().split(",")[0].strip()
        ):
            continue
        name = _clean_name(match["name"])
        if name and not _names_a_thing(name, catalog):
            heard.name = name
            return
    introduced = _NAME_HERE.search(heard.text)  # "Petra Lang hier"
    if introduced:
        name = _clean_name(introduced["name"])
        if name and not _names_a_thing(name, catalog):
            heard.name = name
            return
    parts = [p.strip() for p in re.split(r"[,;.!?]", heard.text) if p.strip()]
    if len(parts) > 1 and _CAPITALIZED.match(parts[0]):  # "Uwe Kern, ich möchte …"
        name = _clean_name(parts[0])
        if name and not _names_a_thing(name, catalog) and not _names_a_day(parts[0]):
            heard.name = name
            return
    if parts and _CAPITALIZED.match(parts[-1]) and (len(parts) > 1 or heard.when is None):
        name = _clean_name(parts[-1])
        if name and not _names_a_thing(name, catalog):
            heard.name = name
            return
    asking = heard.text.rstrip().endswith("?") or heard.asks_prices or heard.asks_hours or heard.asks_services
    if expecting_name and not (heard.no or asking or heard.intent in {"cancel", "reschedule"}):
        words = [w for w in re.split(r"[\s,]+", heard.text.strip(" .!?")) if w]
        kept = [w for w in words if fold(w) not in NAME_FILLERS]
        name = _clean_name(" ".join(kept))
        if name and not _names_a_thing(name, catalog) and heard.when is None:
            heard.name = name


def _names_a_day(words: str) -> bool:
    """Whether capitalised words are a day ("Am Mittwoch", "Nächsten Dienstag"), not a person."""
    return bool(_DAY_WORDS.search(fold(words)))


def _names_a_thing(name: str, catalog: Catalog) -> bool:
    """Whether the 'name' is really a service, a stylist or a date word."""
    folded = fold(name)
    for service in catalog.services:
        if folded in _phrases(service) or any(fold(service.name) == word for word in folded.split()):
            return True
    return any(fold(member.name) == folded for member in catalog.staff)
