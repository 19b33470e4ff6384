"""Offline person-name recognition for Nordic text.

The built-in method (``NameFinder``) needs no model and no download:

- Gazetteers: first and last names from Faker's person providers (a registry package) for
  da_DK, no_NO, sv_SE, fi_FI and is_IS, plus (``international=True``, the default) the
  English, German, French, Italian, Spanish and Dutch lists and the US Census 1990 given
  names and 30,000 most frequent surnames (the ``names`` package, MIT), because Nordic news
  text names foreign people too ("Hillary", "Rushdie"). A given name only the Census list has
  does not make a sentence-initial word a name ("Enda", "Les", "Masse" are Nordic words).
  Double given names count when every part is one ("Poul-Erik", "Odd-Bjørn").
- Places: countries and large cities as Nordic text writes them (``MAJOR_PLACES``: "Hellas",
  "Paris", "London") are places even when a name list has them; Faker's city lists too.
  Organisation endings ("-departementet", "-tilsyn", "Senter", "United") make a chain an
  organisation.
- Morphology: Nordic patronymic surnames (``-sen``, ``-son``, ``-dóttir``, ...).
- Capitalisation: only capitalised tokens (or initials) can be names; a capitalised token at
  the start of a sentence that is a function word (spaCy's bundled stop words for da/nb/sv/fi,
  no model needed) or that the document also uses in lower case is not a name there.
- Context: titles (``hr.``, ``fru``, ``direktør``, ``dommar``, ``Foto``...) and reporting
  verbs (``siger``, ``säger``, ``sier``, Nynorsk ``seier``, ``meiner``, ``fortalde``...)
  before a capitalised token, or an age in brackets after it (which alone makes even unknown
  words a name: "Bulat Atabajev (52)").
- A verb of saying right after a lone unknown word in mid-sentence ("seier Valle" and
  "Epiktet skriv:"; not at a sentence start, where "Eg meiner", "Kilden understreker" are a
  pronoun and a noun), and a lower-case role noun in the definite form right before one
  ("israelaren Ofer", "socialdemokraten Scheidemann"), make it a name.
- Traditional Nordic given names Faker lacks (``NORDIC_GIVEN_NAMES_EXTRA``: "Aslaug",
  "Trygve") and Nynorsk function words spaCy lacks (``NYNORSK_FUNCTION_WORDS``: "Eg",
  "Medan").
- A capitalised word before a first name that ends the chain is its given name
  ("Micheál Martin", "Euna Lee"); before a first name followed by more ("Erfarne Ivan
  Nielsen") it is not.
- Chains: a name extends over the capitalised tokens, initials and particles (``von``,
  ``af``...) that follow a first name or initial.
- Document memory: a surname seen in a full name marks later lone uses in the same document.

Measured 2026-12-07 on real NER sentences (``benchmarks/bench_pii_names.py``; tuned on DDT
train-10k and the first halves of NorNE dev, reported on DDT dev and the second halves),
span precision / recall, one sentence per text, before -> after the issue 18 changes:
Danish DDT dev 0.924/0.853 -> 0.888/0.865, Bokmål 0.722/0.684 -> 0.611/0.774, Nynorsk
0.892/0.544 -> 0.891/0.662. The target of issue 18 (recall >= 0.92 at precision >= 0.85) is
not reached: most misses are surnames used alone with no first mention in the same text
("Stoltenberg", "Epiktet"), which gazetteers and context rules cannot tell from places and
organisations. The Census surnames cost precision on English-looking titles ("Rock Band",
"World Tour"); ``CENSUS_SURNAMES`` is the knob. ``NameModel`` (a small logistic model over
the undecided chains, off by default) did not generalise from ~700 training names.
Speed: the larger gazetteers send more lone words through the chain rules (prose: ~70 ->
~80 µs a document for names; the whole scan +6%).

Opt-in trained tagger (issue 18, ``NameFinder(tagger="shipped")``, ``nordpipe pii --ner-model
tagger``): ``name_model.NameTagger``, an averaged perceptron over the capitalised words with the
rules' spans as features, shipped as package data (~50 KB). Measured 2026-12-07 on the held-out
splits, span P / R one sentence per text, rules -> rules + tagger: DDT dev 0.888/0.865 ->
0.852/0.846, NorNE Bokmål B 0.611/0.774 -> 0.835/0.838, Nynorsk B 0.891/0.662 -> 0.915/0.713
(10-sentence texts: nb 0.620/0.846 -> 0.812/0.910, nn 0.877/0.732 -> 0.904/0.798). It is not
the default: it costs Danish a little, the issue's target (recall >= 0.92 at precision >= 0.85)
is still not reached, and in pure Python it makes the whole scan ~3x slower (the fast engine
drops from ~9x to ~3.5x presidio's speed on the PII-dense corpus), against the ">= 10x
presidio" rule for the default scanner. ``DEFAULT_TAGGER`` is the switch.

Optionally, ``SpacyNameFinder`` and ``TransformersNameFinder`` wrap a user-given local spaCy
pipeline or Hugging Face token-classification model directory (nothing is downloaded).
"""

from __future__ import annotations

import bisect
import functools
import importlib
import importlib.util
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from nordpipe.pii.name_model import NameTagger

NORDIC_LOCALES = ("da_DK", "no_NO", "sv_SE", "fi_FI", "is_IS")
"""Faker locales whose name lists are always used."""

INTERNATIONAL_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL")
"""Faker locales added with ``international=True`` (foreign people in Nordic news)."""

STOPWORD_LANGUAGES = ("da", "nb", "sv", "fi", "is", "en")

# Patronymic and common Nordic surname endings; a capitalised token with one of these endings
# is a surname candidate even when the gazetteer misses it.
SURNAME_SUFFIXES = (
    "sen", "son", "dóttir", "dottir", "dotter", "gaard", "gård", "strøm", "ström", "qvist", "kvist",
)
# Endings of Danish/Norwegian nouns with the definite article ("Indbydelsen") that look
# patronymic; real surnames with these endings are in the gazetteers.
_NOT_SURNAME_SUFFIXES = ("elsen", "ssen", "gsen", "isen", "ysen")

# Words before a name that say a person follows (lower-cased; a trailing "." is kept where
# the abbreviation has one).
TITLE_WORDS = frozenset(
    ["hr.", "hr", "herr", "fru", "frk.", "frk", "frøken", "fröken", "dr.", "dr", "prof.", "prof", "professor", "pastor", "præst", "biskop", "direktør", "direktor", "direktören", "administrerende", "formand", "formanden", "ordförande", "styreleder", "leder", "ledaren", "minister", "ministeren", "statsminister", "statsministeren", "statsminister", "udenrigsminister", "finansminister", "justitsminister", "kulturminister", "borgmester", "borgmesteren", "borgarstjóri", "ordfører", "ordføreren", "kommunalbestyrelsesmedlem", "præsident", "præsidenten", "president", "presidenten", "kong", "kung", "kongen", "konge", "dronning", "drottning", "prins", "prinsesse", "prinsessan", "greve", "grevinde", "kaptajn", "kaptajnen", "kaptein", "kapten", "træner", "træneren", "landstræner", "tränare", "trener", "forfatter", "forfatteren", "författaren", "forfatteren", "sanger", "sangeren", "sångerskan", "skuespiller", "skuespilleren", "skådespelaren", "instruktør", "instruktøren", "redaktør", "redaktøren", "redaktör", "journalist", "journalisten", "advokat", "advokaten", "forsker", "forskeren", "forskaren", "chef", "chefen", "sekretær", "kollega", "kollegaen", "søn", "sønnen", "datter", "datteren", "hustru", "mand", "manden", "kone", "konen", "bror", "broren", "søster", "søsteren", "far", "faren", "mor", "moren", "onkel", "tante", "politiker", "politikeren", "folketingsmedlem", "riksdagsledamot", "stortingsrepresentant", "overlæge", "læge", "lægen", "doktor", "sygeplejerske", "ingeniør", "lektor", "adjunkt", "rektor", "herr.", "fr.", "mr.", "mrs.", "ms.", "mr", "mrs", "ms", "sir",
     # Bokmål and Nynorsk forms, and photo credits ("Foto Bent Are Iversen")
     "dommar", "dommer", "presten", "prest", "representant", "representanten", "ordføraren", "forfattaren", "leiar",
     "leiaren", "statsråd", "statsråden", "foto", "fotograf", "fotografen", "kompanjongen", "sambuaren", "kona",
     "mannen", "sonen", "dottera", "dotter", "bror", "syster", "venen", "venninna", "trenar", "trenaren", "sjef",
     "sjefen", "professoren", "rådgjevar", "rådgiver", "utvalsmedlem", "stortingsrepresentant", "biskop"]
)

# Reporting verbs: in news text a capitalised token right after one of these is the speaker.
REPORTING_VERBS = frozenset(
    ["siger", "sagde", "fortæller", "fortalte", "mener", "mente", "pointerer", "pointerede", "forklarer", "forklarede", "tilføjer", "tilføjede", "understreger", "understregede", "skriver", "skrev", "spørger", "spurgte", "svarer", "svarede", "oplyser", "oplyste", "påpeger", "påpegede", "konstaterer", "konstaterede", "erkender", "erkendte", "vurderer", "vurderede", "udtaler", "udtalte", "fastslår", "fastslog", "råber", "råbte", "tilstår", "indrømmer", "säger", "sade", "sa", "berättar", "berättade", "menar", "förklarar", "skriver", "svarar", "konstaterar", "sier", "sa", "forteller", "fortalte", "mener", "forklarer", "skriver", "svarer", "påpeker", "understreker", "sanoo", "kertoo", "ifølge", "enligt", "ifølge",
     # Bokmål and Nynorsk forms missing above (NorNE dev A: "seier Høybråten", "påpeikar Seierstad")
     "seier", "meiner", "fortel", "fortalde", "forklarar", "forklarte", "påpeikar", "påpeika", "understrekar",
     "skriv", "opplyser", "opplyste", "svarar", "konstaterer", "legg", "la", "hevdar", "hevder", "spør", "spurde",
     "innrømmer", "erkjenner", "tilføyer", "sukkar", "smiler", "ler"]
)

_DOTTED_TITLE_MAX = max(len(w) for w in TITLE_WORDS if w.endswith("."))

PARTICLES = frozenset(("von", "van", "der", "den", "de", "af", "la", "le", "di", "da", "du", "del", "ten", "zu"))

_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĴĶĹĻĽĿŁŃŅŇŊŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽ"
# A capitalised word (with inner hyphens/apostrophes and a possessive apostrophe), or one
# initial with its dot ("H." in "H.C. Andersen").
# The capital comes first and the "not inside a word" test is a lookbehind after it: an
# expression that starts with a character class lets the regex engine skip ahead to the next
# capital; one that starts with a lookbehind is tried at every position (4x slower).
_TOKEN = (
    rf"[{_UPPER}](?<![\w@/].)(?:\.(?=\s?[{_UPPER}])|(?<!\..)[^\W\d_]*(?:[-'’][^\W\d_]+)*['’]?)(?![\w@])"
)
_TOKEN_RE = re.compile(_TOKEN)
# A whole chain in one match: capitalised tokens separated by one space or by a particle
# (" von "), so the common case (a lone capitalised word) costs one match and one lookup.
_CHAIN_RE = re.compile(
    rf"{_TOKEN}(?: (?:\s*(?:{'|'.join(sorted(PARTICLES, key=len, reverse=True))})\s* )?{_TOKEN})*"
)
# the capitals of ``_UPPER`` one by one (for the compiled chain scanner's table)
_UPPER_CHARS = "".join(c for c in map(chr, range(0x250)) if re.fullmatch(f"[{_UPPER}]", c))


def name_chains_regex(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every chain of capitalised words in ``text``. The definition;
    ``_loops.NameChains`` (compiled) finds the same in one pass over the characters."""
    return [match.span() for match in _CHAIN_RE.finditer(text)]


def word_before_py(text: str, start: int, dotted_max: int) -> tuple[str, bool, bool] | None:
    """The word right before ``start`` (over spaces, tabs and commas) that may say a name
    follows: ``(lower-case word, after_dot, comma_in_gap)``. After a dot, the word with its
    dot and at most ``dotted_max`` characters long (an abbreviated title); otherwise the word
    (letters, digits, ``-``, ``_``; at most 39 characters). None when there is none. The
    definition; ``_loops.word_before`` (compiled) is the same loop in C."""
    i = start - 1
    comma = False
    while i >= 0 and text[i] in " ,\t\u00a0":
        comma = comma or text[i] == ","
        i -= 1
    if i < 0:
        return None
    if text[i] == ".":
        j = i - 1
        while j >= 0 and (text[j].isalnum() or text[j] in "-_"):
            if i - j >= dotted_max:
                return None
            j -= 1
        return text[j + 1 : i + 1].lower(), True, comma
    if not (text[i].isalnum() or text[i] in "-_"):
        return None
    word_end = i + 1
    while i >= 0 and (text[i].isalnum() or text[i] in "-_") and word_end - i < 40:
        i -= 1
    return text[i + 1 : word_end].lower(), False, comma


try:
    from nordpipe.pii._loops import NameChains, word_before
except ImportError:  # not compiled: the definitions above, same result, slower
    NameChains = None  # type: ignore[assignment,misc]
    word_before = word_before_py

_AGE_ADJECTIVE_RE = re.compile(r"\d+-?årig[ea]?$|\d+-vuotias$")
_AGE_AFTER_RE = re.compile(r"\s*[(,]\s*\d{1,3}(?:\s*år)?\)?")
# an age in brackets right after a word: a person even when no list knows the word
_AGE_BRACKET_RE = re.compile(r" ?\((?:[1-9]\d?|1[01]\d)(?: år)?\)")
_BRACKET_STARTS = ("(", " (")
_ROMAN_RE = re.compile(r"^[IVXL]{1,5}$")
_LOWER_INITIALS = frozenset("abcdefghijklmnopqrstuvwxyzæøåäöüéþð")
_LETTERS_RE = re.compile(r"[^\W\d_]+")
_SENTENCE_END = frozenset('.!?:;"«»“”„\'()[]—–-•*#|\n')
# A lone capitalised word after these is a place ("i Paris"), not a person.
_LOCATIVE_BEFORE = (" i ", " in ", " på ", " ved ", " vid ")
# A chain after these is a saint, a church or a place ("Sankt Markus Nat").
_SAINT_WORDS = frozenset(("Sankt", "Skt.", "St.", "Santa", "San", "Saint", "Sainte", "New", "Los", "Las", "El", "Rio",
                          "Fort", "Port", "Mount", "Lake", "Cape", "Costa", "Puerto", "Nova", "Nye", "Nya"))
# Endings of organisation names ("Justisdepartementet", "Forureiningstilsyn", "Anoreksi Senter")
ORGANISATION_SUFFIXES = ("departementet", "departement", "direktoratet", "direktorat", "tilsyn", "tilsynet", "senter",
                         "senteret", "sentret", "center", "centret", "hotell", "selskap", "selskapet", "selskab",
                         "selskabet", "foreningen", "forening", "forbundet", "partiet", "verket", "styrelsen",
                         "universitetet", "kommune", "kommunen", "fylkeskommune", "united", "city", "fc", "if", "bk")
_COORDINATION = frozenset((" og ", " och ", " eller ", " and ", " & ", ", "))
_COORDINATION_BY_SIZE = tuple((len(word), word) for word in _COORDINATION)

# Tokens that make a capitalised chain an organisation, place or work, not a person.
ORGANISATION_WORDS = frozenset(
    ["University", "Universitet", "Universitetet", "Universitat", "Universität", "College", "Institute", "Institut", "Instituttet", "Kommune", "Kommunes", "Amt", "Amts", "Region", "Regionen", "Hospital", "Hospitalet", "Sygehus", "Sygehuset", "Skole", "Skolen", "Gymnasium", "Kirke", "Kirken", "Kyrka", "Kyrkan", "Fond", "Fonden", "Bank", "Banken", "Sparekasse", "Group", "Gruppen", "Koncernen", "Holding", "Airport", "Lufthavn", "Stadion", "Park", "Parken", "Street", "Road", "Avenue", "Gade", "Gaden", "Vej", "Vejen", "Plads", "Pladsen", "Torv", "Torvet", "Gatan", "Vägen", "Church", "Company", "Corporation", "Inc", "Ltd", "Forlag", "Avis", "Avisen", "Tidende", "Posten", "Party", "Parti", "Partiet", "Klub", "Klubben", "Forening", "Foreningen", "Forbund", "Forbundet", "Ministeriet", "Departement", "Styrelsen", "Rådet", "Hotel", "Hotellet", "Teater", "Teatret", "Museum", "Museet", "Festival", "Cup", "Liga", "Ligaen", "Boulevard", "Allé"]
)

# Endings of nouns that name a person's role ("politimester", "landstræner") and so announce a
# name when written right before one.
TITLE_SUFFIXES = (
    "mester", "minister", "direktør", "direktor", "formand", "chef", "leder", "træner", "tränare",
    "sekretær", "præsident", "president", "general", "ordfører", "dommer", "betjent", "forfatter",
    "redaktør", "journalist", "advokat", "professor", "kaptajn", "kommissær", "ambassadør", "rådmand",
)


# rules whose lone-word verdicts the model may overrule ("Hellas" is a given name in a gazetteer)
_WEAK_RULES = frozenset(("first_name", "last_name", "coordination"))


# Endings of a lower-case role noun in the definite form right before a name ("israelaren
# Ofer", "socialdemokraten Scheidemann", "væbneren Aikin"): context only, never a token class
# (a capitalised "Karen" is a name).
_ROLE_ENDINGS = ("aren", "eren", "isten", "kraten", "venen", "venninnen", "paret", "rinsen", "essen")
# Reporting verbs in the present or past that follow a speaker ("Epiktet skriv:", "Steen Gade
# siger"): a lone unknown word right before one is a name.
_REPORTING_AFTER = frozenset(("siger", "sagde", "sier", "seier", "sa", "säger", "sade", "skriv", "skriver", "skrev",
                              "mener", "meiner", "menar", "fortæller", "forteller", "fortel", "berättar", "svarer",
                              "svarar", "svarede", "innrømmer", "indrømmer", "erkender", "understreger",
                              "understreker", "understrekar", "påpeger", "påpeker", "påpeikar", "forklarer",
                              "forklarar", "tilføjer", "konstaterer", "fastslår", "presenterer"))


_SPEAKER_AFTER_RE = re.compile(r" (?:" + "|".join(sorted(_REPORTING_AFTER, key=len, reverse=True)) + r")(?!\w)")


DEFAULT_TAGGER: str | None = None
"""What ``NameFinder()`` uses after its rules: None (the rules alone, the default) or "shipped"
(``name_model.NameTagger`` with the model in ``nordpipe/data/names``; ``--ner-model tagger``).
The tagger is opt-in: on the held-out splits it lifts Bokmål and Nynorsk but costs Danish a
little and makes the scan several times slower (``benchmarks/results/pii.md``)."""


class NameSpan(NamedTuple):
    start: int
    end: int
    rule: str


def _names_of(locale: str) -> tuple[set[str], set[str]]:
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    first: set[str] = set()
    last: set[str] = set()
    for attr in ("first_names", "first_names_male", "first_names_female"):
        first.update(getattr(provider, attr, ()) or ())
    for attr in ("last_names", "last_names_male", "last_names_female", "last_names_without_suffix"):
        last.update(getattr(provider, attr, ()) or ())
    last.discard("Doe")  # is_IS's placeholder
    return first, last


# Traditional Nordic given names Faker's short lists lack (no_NO has only 200): "Aslaug",
# "Trygve", "Dagfinn"; words that are also common nouns ("Sten", "Grim") are left out.
NORDIC_GIVEN_NAMES_EXTRA = frozenset(["Aslaug", "Halldis", "Haakon", "Trygve", "Ågot", "Sølvi", "Torstein", "Halvard", "Jostein", "Ingvild", "Magnhild", "Oddny", "Vigdis", "Eldbjørg", "Hallvard", "Audun", "Dagfinn", "Gaute", "Halfdan", "Jarle", "Njål", "Roald", "Torgeir", "Torleif", "Ådne", "Målfrid", "Oddbjørn", "Sigve", "Snorre", "Tarjei", "Tormod", "Vebjørn", "Ørjan", "Bård", "Betzy", "Bjarke", "Vibeke", "Aslak", "Asle", "Audhild", "Borghild", "Brynjulf", "Dagny", "Eilif", "Eyvind", "Gjermund", "Gudmund", "Gunvor", "Hallgeir", "Helga", "Herborg", "Hjalmar", "Idun", "Ingebjørg", "Ingolf", "Jorun", "Kolbjørn", "Ketil", "Lavrans", "Magnar", "Margit", "Oddleif", "Oddmund", "Olve", "Ottar", "Ragna", "Ragnvald", "Reidun", "Rønnaug", "Sigbjørn", "Signy", "Sigmund", "Sissel", "Solfrid", "Steingrim", "Svanhild", "Sveinung", "Synne", "Sylvi", "Tjostolv", "Torunn", "Torhild", "Torvald", "Trude", "Turi", "Ulf", "Unn", "Valborg", "Vemund", "Vårin", "Yngvild", "Åshild", "Åsmund", "Øydis", "Øystein", "Eskil", "Embla", "Frøydis", "Gudbrand", "Halstein", "Haldor", "Bendik", "Eldar", "Erlend", "Fridtjof", "Geirmund", "Gisle", "Gjert", "Guttorm", "Halvor", "Herleif", "Joar", "Oddvin", "Olaug", "Sjur", "Sølve", "Thorvald", "Tollef", "Torfinn", "Torkel", "Vetle", "Vilde", "Ylva", "Svenning", "Viggo", "Holger", "Aksel", "Valdemar", "Esben", "Asger", "Anker", "Agneta", "Barbro", "Birgitta", "Gunilla", "Ulla", "Göran", "Bengt", "Lennart", "Stig", "Torsten", "Sixten", "Sølvi", "Ragnhild", "Gunhild", "Jorunn", "Bjørg", "Turid", "Torill", "Eldbjørg", "Hulda", "Astrid", "Ingrid", "Sigrid", "Solveig"])

CENSUS_SURNAMES = 30_000
"""How many of the US Census 1990 surnames (by frequency, of 88,799) to know: below that rank
they are rarer than most capitalised words of Nordic text (measured on the tuning splits)."""


@functools.lru_cache(maxsize=1)
def census_names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames) of the US Census 1990 lists the ``names`` package ships (MIT),
    capitalised: foreign people in Nordic news ("Hillary", "Rushdie")."""
    from importlib.resources import files

    folder = files("names")

    def read(name: str, limit: int | None = None) -> set[str]:
        words = set()
        for i, line in enumerate(folder.joinpath(name).read_text(encoding="ascii").splitlines()):
            if limit is not None and i >= limit:
                break
            if line.strip():
                words.add(line.split()[0].capitalize())
        return words

    first = read("dist.male.first") | read("dist.female.first")
    last = read("dist.all.last", CENSUS_SURNAMES)
    return frozenset(first), frozenset(last)


@functools.lru_cache(maxsize=2)
def _faker_first_names(international: bool) -> frozenset[str]:
    """Given names of Faker's lists and ``NORDIC_GIVEN_NAMES_EXTRA`` (not the Census list)."""
    locales = NORDIC_LOCALES + (INTERNATIONAL_LOCALES if international else ())
    return frozenset(name for locale in locales for name in _names_of(locale)[0]) | NORDIC_GIVEN_NAMES_EXTRA


@functools.lru_cache(maxsize=4)
def name_lists(international: bool = True) -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names) from Faker's person providers (and, with ``international``,
    the US Census lists of ``census_names``), as written (capitalised)."""
    first: set[str] = set()
    last: set[str] = set()
    for locale in NORDIC_LOCALES + (INTERNATIONAL_LOCALES if international else ()):
        f, la = _names_of(locale)
        first |= f
        last |= la
    first |= NORDIC_GIVEN_NAMES_EXTRA
    if international:
        census_first, census_last = census_names()
        first |= census_first
        last |= census_last

    def keep(name: str) -> bool:
        return len(name) > 1 and name[0].isupper() and " " not in name

    return frozenset(filter(keep, first)), frozenset(filter(keep, last))


# Nynorsk function words (spaCy bundles no Nynorsk list; its Bokmål one lacks these)
NYNORSK_FUNCTION_WORDS = frozenset(["eg", "ho", "dei", "me", "oss", "dykk", "kva", "kvifor", "korleis", "kven", "kor", "kvar", "ikkje", "medan", "difor", "sidan", "berre", "òg", "enno", "heile", "nokon", "noko", "ingen", "mykje", "vart", "vert", "blei", "frå", "saman", "utan", "mellom", "etter", "då", "no", "her", "der", "dette", "desse", "slik", "elles", "framleis", "likevel"])


@functools.lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Lower-cased function words of the Nordic languages and English (spaCy's bundled lists)
    and ``NYNORSK_FUNCTION_WORDS``."""
    words: set[str] = set(NYNORSK_FUNCTION_WORDS)
    for lang in STOPWORD_LANGUAGES:
        words.update(w.lower() for w in _spacy_stop_words(lang))
    return frozenset(words)


def _spacy_stop_words(lang: str) -> frozenset[str]:
    """spaCy's bundled stop-word list for ``lang``, read without importing spaCy.

    ``import spacy.lang.da.stop_words`` runs ``spacy/__init__`` first, which imports thinc,
    confection, pydantic and the pipeline registry: 1.1 s CPU and ~80 MB in every PII worker
    for ~2,000 words (measured 2026-12-07). Each ``stop_words.py`` is a self-contained
    ``STOP_WORDS = set(...)``, so it is executed on its own from spaCy's installed folder; should
    a future spaCy make it import anything, the regular import is the fallback."""
    spec = importlib.util.find_spec("spacy")  # locates the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = os.path.join(folder, "lang", lang, "stop_words.py")
        if not os.path.exists(path):
            continue
        file_spec = importlib.util.spec_from_file_location(f"_nordpipe_spacy_stop_words_{lang}", path)
        if file_spec is None or file_spec.loader is None:
            break
        module = importlib.util.module_from_spec(file_spec)
        try:
            file_spec.loader.exec_module(module)
            return frozenset(module.STOP_WORDS)
        except Exception:  # anything the isolated file cannot do: the real import below
            break
    try:
        return frozenset(importlib.import_module(f"spacy.lang.{lang}.stop_words").STOP_WORDS)
    except ImportError:  # pragma: no cover - spaCy ships these
        return frozenset()


def _strip_possessive(token: str) -> str:
    if token.endswith(("'", "’")):
        return token[:-1]
    return token



# Countries and large cities as Nordic text writes them: a lone one is a place even when a
# name list also has it ("Hellas", "Paris", "Jordan"); in a chain with a surname it is still
# read as part of a name ("Paris Hilton").
MAJOR_PLACES = frozenset(
    ["Danmark", "Norge", "Noreg", "Sverige", "Finland", "Suomi", "Island", "Ísland", "Færøerne", "Færøyane", "Grønland", "Tyskland", "Frankrig", "Frankrike", "Frankrike", "England", "Skotland", "Irland", "Wales", "Storbritannien", "Storbritannia", "Holland", "Nederland", "Nederlandene", "Belgien", "Belgia", "Luxembourg", "Schweiz", "Sveits", "Østrig", "Østerrike", "Österrike", "Italien", "Italia", "Spanien", "Spania", "Portugal", "Grækenland", "Hellas", "Grekland", "Tyrkiet", "Tyrkia", "Turkiet", "Polen", "Tjekkiet", "Tsjekkia", "Ungarn", "Ungern", "Rumænien", "Romania", "Bulgarien", "Bulgaria", "Rusland", "Russland", "Ryssland", "Ukraine", "Ukraina", "Estland", "Letland", "Latvia", "Litauen", "Serbien", "Serbia", "Kroatien", "Kroatia", "Bosnien", "Kosovo", "Albanien", "Albania", "Israel", "Palæstina", "Palestina", "Libanon", "Syrien", "Syria", "Irak", "Iran", "Jordan", "Egypten", "Egypt", "Libyen", "Libya", "Tunesien", "Algeriet", "Marokko", "Kina", "Japan", "Korea", "Indien", "India", "Pakistan", "Afghanistan", "Thailand", "Vietnam", "Indonesien", "Australien", "Australia", "Canada", "Mexico", "Brasilien", "Brasil", "Argentina", "Chile", "Peru", "Cuba", "Afrika", "Europa", "Asien", "Asia", "Amerika", "Kenya", "Nigeria", "Somalia", "Etiopien", "Etiopia", "Sudan", "Sydafrika", "Sør-Afrika", "USA", "EU", "København", "Aarhus", "Århus", "Odense", "Aalborg", "Esbjerg", "Randers", "Kolding", "Horsens", "Vejle", "Roskilde", "Herning", "Silkeborg", "Næstved", "Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Drammen", "Kristiansand", "Fredrikstad", "Bodø", "Ålesund", "Førde", "Stockholm", "Göteborg", "Malmö", "Uppsala", "Helsinki", "Helsingfors", "Tampere", "Turku", "Reykjavík", "Reykjavik", "Tórshavn", "Nuuk", "London", "Paris", "Berlin", "Hamburg", "München", "Frankfurt", "Köln", "Rom", "Roma", "Madrid", "Barcelona", "Lissabon", "Wien", "Prag", "Warszawa", "Budapest", "Moskva", "Moskau", "Athen", "Bruxelles", "Brussel", "Amsterdam", "Rotterdam", "Haag", "Genève", "Zürich", "Milano", "Venedig", "Istanbul", "Ankara", "Jerusalem", "Beirut", "Damaskus", "Bagdad", "Teheran", "Kairo", "Kabul", "Delhi", "Mumbai", "Beijing", "Peking", "Shanghai", "Tokyo", "Seoul", "Hongkong", "Washington", "Chicago", "Boston", "Houston", "Dallas", "Miami", "Seattle", "Detroit", "Atlanta", "Denver", "Philadelphia", "Hollywood", "Texas", "Florida", "California", "Californien", "Virginia", "Georgia", "Toronto", "Sydney", "Melbourne", "Haifa", "Gaza", "Galilea", "Kiev", "Kyiv", "Minsk", "Riga", "Tallinn", "Vilnius"]
)


@functools.lru_cache(maxsize=1)
def place_names() -> frozenset[str]:
    """Cities, countries and regions from Faker's address providers (a name here is a place)."""
    places: set[str] = set()
    for locale in NORDIC_LOCALES + INTERNATIONAL_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        except ImportError:  # pragma: no cover
            continue
        attrs = ("countries", "states", "cities") if locale in NORDIC_LOCALES else ("countries", "states")
        for attr in attrs:
            values = getattr(provider, attr, ()) or ()
            places.update(v for v in values if isinstance(v, str) and " " not in v)
    return frozenset(places | MAJOR_PLACES | world_cities())


# token classes
INITIAL, TITLE, FIRST, LAST, FIRST_LAST, PLACE, ORG, COMMON, UNKNOWN = range(9)
_NAMEISH = (FIRST, LAST, FIRST_LAST, UNKNOWN, INITIAL, PLACE)
_CAN_START = frozenset((FIRST, LAST, FIRST_LAST, UNKNOWN, INITIAL, TITLE))
# classes that never make a name when they are the whole chain
_NEVER_ALONE = frozenset((COMMON, ORG, PLACE, TITLE, INITIAL))


def _split_chain(value: str, offset: int) -> list[tuple[int, int, str]]:
    """The tokens of a chain matched by ``_CHAIN_RE`` at ``offset`` (particles are lower
    case, tokens capitalised, both separated by whitespace)."""
    tokens = []
    pos = 0
    for part in value.split():
        pos = value.index(part, pos)
        if not part[0].islower():
            tokens.append((offset + pos, offset + pos + len(part), part))
        pos += len(part)
    return tokens


class NameFinder:
    """Find person names with gazetteers, capitalisation and context (no model, no download).

    Args:
        international: also use non-Nordic name lists (default True).
        extra_first_names / extra_last_names: more names to know (e.g. from a user's list).
        memory: mark lone later uses of a word seen in a full name in the same document
            (default True).
    """

    def __init__(
        self,
        international: bool = True,
        extra_first_names: Iterable[str] = (),
        extra_last_names: Iterable[str] = (),
        memory: bool = True,
        model: NameModel | None = None,
        tagger: NameTagger | str | None = "default",
    ):
        first, last = name_lists(international)
        self.model = model
        if tagger == "default":
            tagger = DEFAULT_TAGGER
        if tagger == "shipped":
            from nordpipe.pii.name_model import shipped_tagger

            tagger = shipped_tagger()
        elif isinstance(tagger, str):
            from nordpipe.pii.name_model import NameTagger

            tagger = NameTagger.load(tagger)
        self.tagger = tagger
        self.common = common_words()
        self.places = place_names()
        self.first = frozenset(first | set(extra_first_names))
        self.census_first = census_names()[0] if international else frozenset()
        self.faker_first = _faker_first_names(international) | frozenset(extra_first_names)
        self.last = frozenset(last | set(extra_last_names))
        self.memory = memory
        self._class_cache: dict[str, int] = {}
        self._title_memo: dict[str, bool] = {}
        self._chains = NameChains(_UPPER_CHARS, tuple(PARTICLES)) if NameChains is not None else None

    # -- token features -------------------------------------------------------------------

    def _classify(self, token: str) -> int:
        cls = self._class_cache.get(token)
        if cls is None:
            if len(self._class_cache) > 200_000:
                self._class_cache.clear()
            cls = self._class_cache[token] = self._classify_uncached(token)
        return cls

    def _classify_uncached(self, token: str) -> int:
        if len(token) == 2 and token[1] == ".":
            return INITIAL
        base = _strip_possessive(token)
        lower = base.lower()
        if base.isupper() and len(base) > 1:
            if len(base) < 4 or _ROMAN_RE.match(base):
                return COMMON  # acronyms and regnal numbers
            base = base.title()
        if base in ORGANISATION_WORDS or (len(lower) > 4 and lower.endswith(ORGANISATION_SUFFIXES)):
            return ORG
        if lower in TITLE_WORDS or lower.endswith(TITLE_SUFFIXES):
            return TITLE
        stem = base[:-1] if len(base) > 3 and base.endswith("s") else None
        first = base in self.first or (stem is not None and stem in self.first)
        if base in MAJOR_PLACES or (stem is not None and stem in MAJOR_PLACES and base not in self.last):
            return PLACE
        if not first and "-" in base:
            # double given names ("Poul-Erik", "Odd-Bjørn"): every part a given name
            parts = (stem or base).split("-")
            first = all(part in self.first for part in parts) or all(part in self.first for part in base.split("-"))
        if first:
            # a first name wins over the function word and place it may also be ("Per", "Lone")
            return FIRST_LAST if base in self.last else FIRST
        if lower in self.common:
            return COMMON
        if "-" in base and not all(part[:1].isupper() for part in base.split("-")):
            return COMMON  # a compound noun ("Norrmalm-kvarter"), not a double name
        if base in self.places or (stem is not None and stem in self.places):
            return PLACE
        last = base in self.last or (stem is not None and stem in self.last) or self._surname_shaped(stem or base)
        return LAST if last else UNKNOWN

    def _foreign_only(self, token: str) -> bool:
        """A given name only the US Census list has (not Faker's Nordic and European lists)."""
        base = _strip_possessive(token)
        return base in self.census_first and base not in self.faker_first

    @staticmethod
    def _surname_shaped(word: str) -> bool:
        if len(word) < 5 or "-" in word:
            return False
        lower = word.lower()
        if not lower.endswith(SURNAME_SUFFIXES) or lower.endswith(_NOT_SURNAME_SUFFIXES):
            return False
        return lower[-4] in "bdfklmnprtv" if lower.endswith(("sen", "son")) else True

    @staticmethod
    def _sentence_initial(text: str, start: int) -> bool:
        i = start - 1
        while i >= 0 and text[i] in " \t\r\u00a0":
            i -= 1
        return i < 0 or text[i] in _SENTENCE_END

    @staticmethod
    def _speaker(text: str, end: int) -> bool:
        """A reporting verb right after ``end`` (one space between): the word before it is the
        speaker. (One anchored expression: a C-level match, called for every lone unknown word.)"""
        return _SPEAKER_AFTER_RE.match(text, end) is not None

    def _context_before(self, text: str, start: int) -> bool:
        """A title word, role noun, age adjective or reporting verb right before ``start``."""
        found = word_before(text, start, _DOTTED_TITLE_MAX)
        if found is None:
            return False
        word, after_dot, comma = found
        if after_dot:
            # after a dot only an abbreviated title ("hr.", "dr.") counts
            return word in TITLE_WORDS
        if word in REPORTING_VERBS:
            return not comma
        # the same few words come before most capitals ("i", "og", "af"): remember the verdict
        verdict = self._title_memo.get(word)
        if verdict is None:
            if len(self._title_memo) > 100_000:
                self._title_memo.clear()
            verdict = self._title_memo[word] = (
                word in TITLE_WORDS or word.endswith(TITLE_SUFFIXES) or word.endswith(_ROLE_ENDINGS)
                or bool(_AGE_ADJECTIVE_RE.search(word))
            )
        return verdict

    # -- main ---------------------------------------------------------------------------

    def find(self, text: str) -> list[NameSpan]:
        """Name spans in ``text``, sorted and non-overlapping."""
        if not text or text.isspace():
            return []
        spans, undecided = self._rule_spans(text)
        if self.model is not None and undecided:
            spans = self._model_spans(text, spans, undecided)
        if self.tagger is not None:
            spans = self._tagger_spans(text, spans)
        return spans

    def _tagger_spans(self, text: str, rule_spans: list[NameSpan]) -> list[NameSpan]:
        """The tagger's names (``name_model.NameTagger``, which sees the rules' spans as
        features); a span equal to a rule's keeps that rule's name."""
        assert self.tagger is not None
        found = self.tagger.spans(text, self, rule_spans)
        rules = {(s.start, s.end): s.rule for s in rule_spans}
        return [NameSpan(start, end, rules.get((start, end), "tagger")) for start, end in found]

    def candidates(self, text: str) -> tuple[list[NameSpan], list[list[tuple[int, int, str]]]]:
        """The rules' spans and the chains they left undecided (what the model judges; the
        training script learns from these)."""
        if not text or text.isspace():
            return [], []
        return self._rule_spans(text)

    def _rule_spans(self, text: str) -> tuple[list[NameSpan], list[list[tuple[int, int, str]]]]:
        classes = self._class_cache
        classify = self._classify
        tokens: list[tuple[int, int, str]] = []
        spans: list[NameSpan] = []
        undecided: list[list[tuple[int, int, str]]] = []
        chains = self._chains.find(text) if self._chains is not None else None
        if chains is None:
            chains = name_chains_regex(text)
        for start, end in chains:
            value = text[start:end]
            if " " not in value:
                # a lone token, the common case: a function word, place, title or initial
                # alone is never a name (nor joined to one by "og"); an unknown word alone
                # is a name only with context before it
                token = (start, end, value)
                tokens.append(token)
                cls = classes.get(value)
                if cls is None:
                    cls = classify(value)
                if cls in _NEVER_ALONE:
                    continue
                chain = [token]
                if cls == UNKNOWN and not self._context_before(text, start) and not (
                    self._speaker(text, end) and not self._sentence_initial(text, start)
                ):
                    undecided.append(chain)
                    continue
            else:
                chain = _split_chain(value, start)
                tokens.extend(chain)
            span = self._chain_name(text, chain)
            if span is not None:
                spans.append(span)
            else:
                undecided.append(chain)
        if spans and undecided:
            spans = self._coordinated(text, spans, undecided)
        if self.memory and spans:
            spans = self._propagate(text, tokens, spans)
        return spans, undecided

    def _model_spans(self, text: str, spans: list[NameSpan], undecided: list[list[tuple[int, int, str]]]) -> list[NameSpan]:
        """Add the undecided chains the model (``NameModel``) takes for names; a chain
        overlapping a rule's span is left alone."""
        model = self.model
        assert model is not None
        kept: list[NameSpan] = []
        for span in spans:
            if span.rule in _WEAK_RULES and " " not in text[span.start : span.end]:
                chain = [(span.start, span.end, text[span.start : span.end])]
                if model.score(self.chain_features(text, chain, span.rule)) <= model.threshold:
                    continue
            kept.append(span)
        spans = kept
        covered = sorted((s.start, s.end) for s in spans)
        starts = [c[0] for c in covered]
        extra: list[NameSpan] = []
        for chain in undecided:
            chain = self._trim_chain(text, chain)
            if not chain:
                continue
            start, end = chain[0][0], chain[-1][1]
            i = bisect.bisect_right(starts, end) - 1
            if i >= 0 and covered[i][1] > start:
                continue
            if model.score(self.chain_features(text, chain)) > model.threshold:
                extra.append(NameSpan(start, end, "model"))
        if not extra:
            return spans
        return sorted(spans + extra, key=lambda s: s.start)

    def _trim_chain(self, text: str, chain: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
        """The chain without leading titles, function words and initials, and without a
        sentence-initial word the document also writes in lower case."""
        begin = 0
        while begin < len(chain):
            tok = chain[begin][2]
            cls = self._classify(tok)
            if cls in (TITLE, COMMON, INITIAL, ORG):
                begin += 1
                continue
            if begin == 0 and len(chain) > 1 and cls == UNKNOWN and self._sentence_initial(text, chain[0][0]):
                begin += 1  # "Medan Nansen": a sentence-initial unknown word before more capitals
                continue
            break
        end = len(chain)
        while end > begin and self._classify(chain[end - 1][2]) in (INITIAL, ORG):
            end -= 1
        return chain[begin:end]

    def chain_features(self, text: str, chain: list[tuple[int, int, str]], rule: str = "") -> list[str]:
        """Sparse features of a capitalised chain for ``NameModel``: gazetteer classes of
        its first and last word, their endings, the words around it, its position."""
        last = _strip_possessive(chain[-1][2])
        cls_first = self._classify(chain[0][2])
        cls_last = self._classify(chain[-1][2])
        lower = last.lower()
        before = _word_around(text, chain[0][0], -1)
        after = _word_around(text, chain[-1][1], 1)
        initial = self._sentence_initial(text, chain[0][0])
        features = [
            f"n={min(len(chain), 3)}", f"c0={cls_first}", f"c1={cls_last}", f"c0c1={cls_first},{cls_last}",
            f"s3={lower[-3:]}", f"s2={lower[-2:]}",
            f"p={before}", f"a={after}", f"i={initial}",
        ]
        if rule:
            features.append(f"rule={rule}")
        if last.isupper():
            features.append("caps")
        if "-" in last:
            features.append("hyphen")
        if chain[-1][2] != last or (lower.endswith("s") and last[:-1] in self.last):
            features.append("possessive")
        if last in self.places:
            features.append("place")
        if last in world_cities():
            features.append("city")
        if self._surname_shaped(last):
            features.append("surname_shaped")
        return features

    def _is_lowercase_elsewhere(self, text: str, word: str) -> bool:
        """The document also writes ``word`` in lower case, as a whole word (not after a
        hyphen): searched with ``str.find`` instead of collecting every word of the text."""
        lower = word.lower()
        if lower[:1] not in _LOWER_INITIALS or not _LETTERS_RE.fullmatch(lower):
            return False
        size = len(lower)
        i = text.find(lower)
        while i >= 0:
            if (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_-")) and not _LETTERS_RE.match(text, i + size):
                return True
            i = text.find(lower, i + 1)
        return False

    def _chain_name(self, text: str, chain: list[tuple[int, int, str]]) -> NameSpan | None:
        cache = self._class_cache
        classes = [cache[tok] if tok in cache else self._classify(tok) for _, _, tok in chain]
        if not any(c in _CAN_START for c in classes):
            return None  # only function words and places
        if ORG in classes or chain[0][2] in _SAINT_WORDS or text[max(0, chain[0][0] - 5) : chain[0][0]].endswith(("St. ", "Skt. ")):
            return None
        initial_pos = self._sentence_initial(text, chain[0][0])
        # a verb of saying after the chain, not at a sentence start ("Eg meiner", "Kilden
        # understreker": pronouns and nouns)
        context = self._context_before(text, chain[0][0]) or (not initial_pos and self._speaker(text, chain[-1][1]))
        # leading titles ("Fru Baumann", "Statsminister Poul Nyrup Rasmussen")
        lead = 0
        while lead < len(chain) and classes[lead] == TITLE:
            lead += 1
            context = True
            initial_pos = False
        if lead == len(chain):
            return None
        if initial_pos and classes[lead] != INITIAL:
            # a sentence-initial function word, or one the document also writes in lower case,
            # is a word -- unless it is a first name followed by more of a name ("Per Hansen")
            word = _strip_possessive(chain[lead][2])
            followed = lead + 1 < len(chain) and classes[lead + 1] in _NAMEISH
            if (word.lower() in self.common or self._is_lowercase_elsewhere(text, word)) and not (
                classes[lead] in (FIRST, FIRST_LAST) and followed
            ):
                classes[lead] = COMMON
        # the name part: the longest run of name-like tokens from ``lead``
        begin = lead
        while begin < len(chain) and classes[begin] not in _NAMEISH:
            begin += 1
        if begin == len(chain):
            return None
        end = begin
        while end + 1 < len(chain) and classes[end + 1] in _NAMEISH:
            end += 1
        if classes[end] == INITIAL:
            end -= 1
            if end < begin:
                return None
        # words in front of a first name or initial are not part of it ("Erfarne Ivan Nielsen",
        # "Ellington-saxofonisten Paul Gonsalves")
        # -- unless the first name ends the chain, where it is a surname ("Micheál Martin",
        # "Euna Lee")
        for i in range(begin, end + 1):
            if classes[i] in (FIRST, FIRST_LAST, INITIAL):
                ends_chain = i == end and classes[i] != INITIAL and not (initial_pos and begin == lead)
                if i > begin and not ends_chain and (
                    all(c in (UNKNOWN, PLACE) for c in classes[begin:i]) or (initial_pos and begin == lead and i == begin + 1)
                ):
                    begin = i
                break
        part = classes[begin : end + 1]
        if part == [PLACE]:
            return None
        at_sentence_start = initial_pos and begin == lead
        known = sum(c in (FIRST, LAST, FIRST_LAST) for c in part)
        if context and known == 0 and all(c != UNKNOWN for c in part):
            return None
        rule = ""
        if INITIAL in part and len(part) > 1:
            rule = "initials"
        elif context:
            rule = "context"
        elif len(part) > 1 and known:
            rule = "full_name"
            if at_sentence_start and known == 1 and part[0] == UNKNOWN and part[-1] != LAST:
                rule = ""
        elif len(part) == 1:
            c = part[0]
            if c in (FIRST, FIRST_LAST) and not (at_sentence_start and self._foreign_only(chain[begin][2])):
                # (a sentence-initial word that only the US lists know is a Nordic word more
                # often than not: "Enda", "Les", "Masse")
                rule = "first_name"
            elif c == LAST and (not at_sentence_start or self._patronymic(chain[begin][2])):
                rule = "last_name"
        if not rule and (
            (known and _AGE_AFTER_RE.match(text, chain[end][1]))
            or (text.startswith(_BRACKET_STARTS, chain[end][1]) and _AGE_BRACKET_RE.match(text, chain[end][1]))
        ) and not (len(part) == 1 and part[0] == PLACE):
            rule = "age"  # "Bulat Atabajev (52)", "Gulsum (28)"
        if rule in ("first_name", "last_name") and text[max(0, chain[begin][0] - 4) : chain[begin][0]].endswith(_LOCATIVE_BEFORE):
            return None
        if not rule:
            return None
        return NameSpan(chain[begin][0], chain[end][1], rule)

    @staticmethod
    def _patronymic(token: str) -> bool:
        lower = _strip_possessive(token).lower().rstrip("s")
        return lower.endswith(("se", "so", "ssen", "sson", "dóttir", "dottir", "dotter")) or lower.endswith(("sen", "son"))

    def _coordinated(self, text: str, spans: list[NameSpan], undecided: list[list[tuple[int, int, str]]]) -> list[NameSpan]:
        """``Henrik og Tommie``, ``Clinton og Gore``: a lone capitalised word joined to a name."""
        # look from the few names to the chains a coordination word away, instead of from
        # every undecided chain to the names
        by_start: dict[int, list[tuple[int, int, str]]] = {}
        by_end: dict[int, list[tuple[int, int, str]]] = {}
        for chain in undecided:
            if len(chain) <= 2:
                by_start[chain[0][0]] = chain
                by_end[chain[-1][1]] = chain
        joined: dict[int, list[tuple[int, int, str]]] = {}
        for span in spans:
            for size, word in _COORDINATION_BY_SIZE:
                # "<name> og <chain>"
                chain = by_start.get(span.end + size)
                if chain is not None and text.startswith(word, span.end):
                    joined[chain[0][0]] = chain
                # "<chain> og <name>" (not after a comma: a list before a name is no coordination)
                if word != ", ":
                    chain = by_end.get(span.start - size)
                    if chain is not None and text.startswith(word, span.start - size):
                        joined[chain[0][0]] = chain
        extra = []
        for start, chain in joined.items():
            classes = [self._classify(tok) for _, _, tok in chain]
            if all(c in (UNKNOWN, LAST, FIRST, FIRST_LAST) for c in classes) and not self._sentence_initial(text, start):
                extra.append(NameSpan(start, chain[-1][1], "coordination"))
        return sorted(spans + extra, key=lambda s: s.start) if extra else spans

    def _propagate(self, text: str, tokens: list[tuple[int, int, str]], spans: list[NameSpan]) -> list[NameSpan]:
        known: set[str] = set()
        for span in spans:
            parts = text[span.start : span.end].split()
            if len(parts) > 1 or span.rule == "context":
                for part in parts:
                    base = _strip_possessive(part)
                    if len(base) > 2 and not base.endswith(".") and base.lower() not in self.common:
                        known.add(base)
        if not known:
            return spans
        covered = sorted((s.start, s.end) for s in spans)
        starts = [c[0] for c in covered]
        extra: list[NameSpan] = []
        for start, end, token in tokens:
            base = token[:-1] if token[-1] in "'’" else token
            if base in known or (base[-1] == "s" and base[:-1] in known):
                i = bisect.bisect_right(starts, start) - 1
                if i >= 0 and covered[i][1] > start:
                    continue
                extra.append(NameSpan(start, end, "memory"))
        if not extra:
            return spans
        return sorted(spans + extra, key=lambda s: s.start)


def _word_around(text: str, pos: int, direction: int) -> str:
    """The lower-cased word right before (``direction`` -1) or after (+1) ``pos`` over spaces,
    or the punctuation mark there; ``^``/``$`` at the text's ends."""
    size = len(text)
    i = pos - 1 if direction < 0 else pos
    while 0 <= i < size and text[i] in " \t\u00a0":
        i += direction
    if i < 0:
        return "^"
    if i >= size:
        return "$"
    if not text[i].isalnum():
        return "\n" if text[i] == "\n" else text[i]
    j = i
    while 0 <= j + direction < size and text[j + direction].isalnum() and abs(j - i) < 30:
        j += direction
    return (text[j : i + 1] if direction < 0 else text[i : j + 1]).lower()


@functools.lru_cache(maxsize=1)
def world_cities() -> frozenset[str]:
    """One-word city names of Faker's non-Nordic address providers: a feature for the model
    (not a verdict: many are also surnames)."""
    cities: set[str] = set()
    for locale in INTERNATIONAL_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        except ImportError:  # pragma: no cover
            continue
        for attr in ("cities", "city_names", "capitals"):
            values = getattr(provider, attr, ()) or ()
            cities.update(v for v in values if isinstance(v, str) and " " not in v)
    return frozenset(cities)


class NameModel:
    """A logistic model over sparse string features (``NameFinder.chain_features``) that
    decides the capitalised chains the rules leave undecided and may overrule the rules'
    lone-word verdicts. Trained by ``benchmarks/train_pii_names.py`` on the tuning splits
    (DDT train-10k, the first halves of NorNE dev nb/nn).

    Not shipped and off by default: measured 2026-12-07 (benchmarks/results/pii.md) on top of
    the rules, it lifts recall on the tuning splits (nn A 0.713 -> 0.919) but little on the
    held-out ones (DDT dev 0.865 -> 0.872, NorNE nb B 0.774 -> 0.786, nn B 0.662 -> 0.688)
    and costs precision there (0.888 -> 0.819, 0.611 -> 0.565, 0.891 -> 0.842): ~700
    training names are too few. Kept for experiments (``NameFinder(model=NameModel.from_file(...))``)."""

    def __init__(self, weights: dict[str, float], bias: float, threshold: float = 0.0):
        self.weights = weights
        self.bias = bias
        self.threshold = threshold

    def score(self, features: Iterable[str]) -> float:
        weights = self.weights
        return self.bias + sum(weights.get(f, 0.0) for f in features)

    @classmethod
    def from_file(cls, path: str) -> NameModel:
        import json

        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return cls(data["weights"], data["bias"], data.get("threshold", 0.0))


class SpacyNameFinder:
    """Person names from a user-given local spaCy pipeline (a directory; nothing is downloaded).

    Texts longer than the pipeline's ``max_length`` are processed in pieces split at line
    breaks, so giant documents never make spaCy refuse.
    """

    LABELS = frozenset(("PER", "PERSON", "B-PER", "I-PER"))

    def __init__(self, path: str, chunk_chars: int = 100_000):
        import spacy

        self.nlp = spacy.load(path)
        self.chunk_chars = min(chunk_chars, self.nlp.max_length)

    def find(self, text: str) -> list[NameSpan]:
        if not text or text.isspace():
            return []
        spans: list[NameSpan] = []
        for offset, piece in _pieces(text, self.chunk_chars):
            for ent in self.nlp(piece).ents:
                if ent.label_ in self.LABELS:
                    spans.append(NameSpan(offset + ent.start_char, offset + ent.end_char, "spacy"))
        return spans


class TransformersNameFinder:
    """Person names from a local Hugging Face token-classification model directory.

    Needs the ``transformers`` package (and a backend such as torch); nothing is downloaded
    (``local_files_only``).
    """

    def __init__(self, path: str, chunk_chars: int = 2_000):
        try:
            from transformers import pipeline  # type: ignore[import-not-found]
        except ImportError as err:
            raise ValueError(
                f"{path} looks like a Hugging Face model directory, but the transformers package is not installed"
            ) from err
        self.pipe = pipeline("token-classification", model=path, tokenizer=path, aggregation_strategy="simple",
                             model_kwargs={"local_files_only": True})
        self.chunk_chars = chunk_chars

    def find(self, text: str) -> list[NameSpan]:
        if not text or text.isspace():
            return []
        spans: list[NameSpan] = []
        for offset, piece in _pieces(text, self.chunk_chars):
            for ent in self.pipe(piece):
                label = str(ent.get("entity_group") or ent.get("entity") or "")
                if label.split("-")[-1] in ("PER", "PERSON"):
                    spans.append(NameSpan(offset + int(ent["start"]), offset + int(ent["end"]), "transformers"))
        return spans


def _pieces(text: str, size: int) -> Iterable[tuple[int, str]]:
    """Split ``text`` into pieces of at most ``size`` characters, at line breaks or spaces."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind("\n", start + size // 2, end)
            if cut < 0:
                cut = text.rfind(" ", start + size // 2, end)
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end


def load_ner_model(path: str) -> NameFinder | SpacyNameFinder | TransformersNameFinder:
    """A name finder for ``--ner-model``: "tagger" (the rules and the shipped
    ``name_model.NameTagger``), a tagger model file (``*.json.gz``, from
    ``benchmarks/train_pii_name_tagger.py``), or a user-given model directory: a spaCy
    pipeline (``meta.json`` or ``config.cfg``) or a Hugging Face token-classification model
    (``config.json``)."""
    import os

    if path == "tagger":
        return NameFinder(tagger="shipped")
    if path.endswith(".json.gz") and os.path.isfile(path):
        return NameFinder(tagger=path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--ner-model {path}: no such directory")
    if os.path.exists(os.path.join(path, "config.cfg")) or os.path.exists(os.path.join(path, "meta.json")):
        return SpacyNameFinder(path)
    if os.path.exists(os.path.join(path, "config.json")):
        return TransformersNameFinder(path)
    raise ValueError(f"--ner-model {path}: neither a spaCy pipeline (config.cfg) nor a Hugging Face model (config.json)")
