"""Every language fact nordpipe uses: codes, names, aliases, groups, detector names, default.

One module, imported by the quality filters, language identification, the pipeline checks, the
CLI and ingest/datasheets, so a code means the same thing everywhere (it used to be modelled
twice, and ``quality`` and ``langid`` imported each other).

Codes are ISO 639-1 (``da nb nn sv is fo fi en``): the labels ``LanguageIdentifier`` gives and
the names of the shipped settings files. Norwegian is two written languages, Bokmål ``nb`` and
Nynorsk ``nn``, with separate settings, stop words and detector models.

Aliases (case-insensitive; ``-`` and ``_`` alike; a ``_Script``/``-REGION`` suffix is ignored, so
FineWeb-2/FLORES ``dan_Latn`` and BCP-47 ``da-DK`` work):

- ISO 639-2/3: ``dan nob nno swe isl ice fao fin eng``; English names (``danish``, ``bokmal``,
  ``bokmål``, ``nynorsk``, ``swedish``, ``icelandic``, ``faroese``, ``finnish``, ``english``) and
  endonyms (``dansk``, ``svenska``, ``íslenska``, ``føroyskt``, ``suomi``).
- The group ``no`` (also ``nor``, ``norwegian``, ``norsk``, ``no_Latn``): *Norwegian*, both
  written forms. What it means depends on the question asked:

  - which languages to keep (``--languages``, YAML ``languages:``, ``--min-language-score``):
    ``nb`` and ``nn`` (``expand_languages``). It used to mean Bokmål alone, so
    ``--languages no`` removed every Nynorsk document as ``language:other``.
  - which settings judge a document (``normalize_language``, ``--default-language``, a
    source's ``metadata.language``): language identification runs first and labels each
    document ``nb`` or ``nn``, and that label wins; only without it (``--no-language-id``) does a
    source's ``no`` fall back to Bokmål's settings (``GROUP_SETTINGS``), the written form of
    most Norwegian text.
  - datasheets (Hugging Face ``language:``): ``no`` stays ``no``, the code the Hub uses for
    Norwegian in general (``datasheet_code``); ``nb``/``nn`` stay themselves.

Unknown codes are refused (``UnknownLanguage``, a ``ValueError`` listing the valid ones): a typo
such as ``--languages dk`` must not silently keep nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

LANGUAGES = ("da", "nb", "nn", "sv", "is", "fo", "fi", "en")
"""Languages with shipped settings and detector labels (ISO 639-1)."""

NORDIC_LANGUAGES = ("da", "nb", "nn", "sv", "is", "fo", "fi")
"""``LANGUAGES`` without English."""

DEFAULT_LANGUAGE = "da"
"""Settings for documents whose language is unknown (nordpipe's first corpora are Danish)."""

NAMES = {
    "da": "Danish", "nb": "Norwegian Bokmål", "nn": "Norwegian Nynorsk", "sv": "Swedish",
    "is": "Icelandic", "fo": "Faroese", "fi": "Finnish", "en": "English",
}

GROUPS = {"no": ("nb", "nn")}
"""Codes that stand for several languages when choosing which to keep."""

GROUP_SETTINGS = {"no": "nb"}
"""The settings a group's documents get when no language id tells its members apart."""

GROUP_NAMES = {"no": "Norwegian (Bokmål and Nynorsk)"}

ALIASES: dict[str, str] = {
    # ISO 639-2/3
    "dan": "da", "nob": "nb", "nno": "nn", "swe": "sv", "isl": "is", "ice": "is", "fao": "fo",
    "fin": "fi", "eng": "en", "nor": "no",
    # names
    "danish": "da", "dansk": "da", "bokmal": "nb", "bokmål": "nb", "nynorsk": "nn", "swedish": "sv",
    "svenska": "sv", "svensk": "sv", "icelandic": "is", "íslenska": "is", "faroese": "fo",
    "føroyskt": "fo", "finnish": "fi", "suomi": "fi", "english": "en", "norwegian": "no",
    "norsk": "no",
}
"""Alias -> ISO 639-1 code or group."""

DETECTOR_LANGUAGES = ("da", "nb", "nn", "sv", "is", "fi", "en")
"""Languages lingua tells apart in ``LanguageIdentifier`` (lingua has no Faroese model)."""

LINGUA_NAMES = {"da": "DANISH", "nb": "BOKMAL", "nn": "NYNORSK", "sv": "SWEDISH", "is": "ICELANDIC",
                "fi": "FINNISH", "en": "ENGLISH"}
"""Code -> ``lingua.Language`` member name."""

PY3LANGID_CODES = {"fo": "fo", "is": "is", "da": "da", "nb": "no", "nn": "nn", "sv": "sv", "fi": "fi", "en": "en"}
"""Code -> py3langid's label (py3langid calls Bokmål ``no``)."""

NORWEGIAN_FORM_WORDS = {
    "nb": frozenset(
        ["ikke", "jeg", "de", "en", "et", "hva", "hvordan", "fra", "bare", "mye", "hele", "noe", "noen", "selv", "ble", "være", "vært", "hos", "fikk", "mer", "senere", "hver", "hun", "sammen", "siden", "uten", "gjøre", "mulig"]
    ),
    "nn": frozenset(
        ["ikkje", "eg", "dei", "ein", "eit", "kva", "korleis", "frå", "berre", "mykje", "heile", "noko", "nokon", "sjølv", "vart", "vere", "vore", "hjå", "fekk", "meir", "seinare", "kvar", "ho", "me", "òg", "dykk", "sjå", "gjere", "gjer", "mogleg", "saman", "sidan", "difor", "utan"]
    ),
}
"""Frequent words whose Bokmål and Nynorsk standard forms differ (``ikke``/``ikkje``,
``jeg``/``eg``, ``hva``/``kva``, ``fra``/``frå``, ...): the evidence ``LanguageIdentifier`` uses
to tell the two apart once lingua has said "Norwegian". Written from the two standards'
grammar, not learned from the evaluation data; forms both allow (``vi``, ``også``, ``blei``,
``derfor``) are left out. Measured in ``benchmarks/results/langid.md``."""


class UnknownLanguage(ValueError):
    """A language code nordpipe does not know; the message lists the valid ones."""

    def __init__(self, code: object, what: str = "language"):
        # YAML 1.1 reads a bare `no` as false: the likeliest way a Norwegian code goes missing.
        hint = "; YAML reads a bare no as false, write 'no' in quotes" if str(code).lower() == "false" else ""
        super().__init__(f"unknown {what} {code!r} (valid: {valid_codes_text()}){hint}")
        self.code = code


def valid_codes_text() -> str:
    """``da, nb, nn, sv, is, fo, fi, en, no (= nb+nn)``: for error messages."""
    groups = ", ".join(f"{g} (= {'+'.join(m)})" for g, m in GROUPS.items())
    return f"{', '.join(LANGUAGES)}, {groups}; or an ISO 639-2/3 code, name or dan_Latn form"


def canonical_code(code: object) -> str | None:
    """``"dan_Latn"``/``"DA"``/``"nob"``/``"nor"``/``"sv-SE"`` -> ``da``/``da``/``nb``/``no``/``sv``:
    a member of ``LANGUAGES`` or a key of ``GROUPS``; None if unknown."""
    if not isinstance(code, str):
        return None
    key = code.strip().lower().replace("-", "_")
    if not key:
        return None
    if key not in ALIASES:
        key = key.split("_", 1)[0]
    key = ALIASES.get(key, key)
    return key if key in LANGUAGES or key in GROUPS else None


def normalize_language(code: object) -> str | None:
    """The language whose *settings* apply to ``code``: ``"dan_Latn"`` -> ``da``, ``"no"`` -> ``nb``
    (``GROUP_SETTINGS``); None if unknown."""
    key = canonical_code(code)
    return GROUP_SETTINGS.get(key, key) if key else None


def expand_language(code: object) -> tuple[str, ...]:
    """The languages ``code`` *keeps*: ``"da"`` -> (da,), ``"no"`` -> (nb, nn); raises ``UnknownLanguage``."""
    key = canonical_code(code)
    if key is None:
        raise UnknownLanguage(code)
    return GROUPS.get(key, (key,))


def expand_languages(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"da, no"`` or ``["da", "no"]`` -> (da, nb, nn), in order, without repeats; None/empty -> None;
    an unknown code raises ``UnknownLanguage``."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    out: list[str] = []
    for item in (i.strip() for i in items):
        if item:
            out += expand_language(item)
    return tuple(dict.fromkeys(out)) or None


def datasheet_code(code: object) -> str:
    """A source's language as its Hugging Face datasheet lists it: ISO 639-1, groups kept
    (``"nor"`` -> ``no``, ``"dan_Latn"`` -> ``da``); raises ``UnknownLanguage``."""
    key = canonical_code(code)
    if key is None:
        raise UnknownLanguage(code)
    return key


def aliases_text() -> str:
    """One line per code with its aliases: the README's and ``--help``'s list."""
    lines = []
    for code in (*LANGUAGES, *GROUPS):
        names = sorted(a for a, c in ALIASES.items() if c == code)
        label = NAMES.get(code) or GROUP_NAMES[code]
        lines.append(f"{code} ({label}): {', '.join(names)}")
    return "\n".join(lines)


def option_help() -> str:
    """The compact list for ``--languages``' help (the README's Languages section has them all)."""
    iso3 = ", ".join(a for a in ALIASES if len(a) == 3 and a != "nor")
    groups = "; ".join(
        f"{g} = {'+'.join(m)} (also {', '.join(sorted(a for a, c in ALIASES.items() if c == g))})" for g, m in GROUPS.items()
    )
    return (f"{', '.join(LANGUAGES)}; {groups}; ISO 639-2/3 codes ({iso3}), names (danish, bokmål, nynorsk, "
            "svenska, ...) and dan_Latn / da-DK forms")


DANISH_NORWEGIAN_WORDS = {
    "da": frozenset(["af", "efter", "sig", "mig", "dig", "blev", "bliver", "hvad", "noget", "nogen", "nogle", "mellem",
                     "uden", "ud", "op", "nu", "tilbage", "købe", "sagde", "gik", "været", "havde", "gør", "siger",
                     "lidt", "gennem", "næste", "nej", "hende", "fik", "ind", "igennem", "vej", "spørgsmål", "ligesom",
                     "derefter", "desuden", "kendt", "fortsat", "gælder", "uge", "penge", "muligt", "vigtig",
                     "vigtigt", "rigtig", "rigtigt", "gøre", "hedder", "selvom", "hjælp", "hjælpe", "øjeblik"]),
    "no": frozenset(["av", "etter", "seg", "meg", "deg", "ble", "blir", "hva", "noe", "noen", "mellom", "uten", "ut",
                     "opp", "nå", "kva", "noko", "nokon", "utan", "ikkje", "eg", "ein", "eit", "frå", "berre", "vart",
                     "sa", "gikk", "kor", "korleis", "tilbake", "kjøpe", "mykje", "mye", "vært", "hadde", "gjør",
                     "sier", "litt", "gjennom", "neste", "nei", "henne", "dere", "inn", "veldig", "løpet",
                     "gjelder", "penger", "uke", "våre", "kjent", "blei", "seier", "meir", "fekk", "sjølv", "saman",
                     "kvar", "kven", "kvifor", "desse", "sidan", "difor", "nokre", "fleire", "gjer", "gjere",
                     "mogleg", "heilt", "hjelp", "gjøre"]),
}
"""Frequent words whose Danish and Norwegian (Bokmål or Nynorsk) standard forms differ (``af``/``av``,
``efter``/``etter``, ``sig``/``seg``, ``blev``/``ble``, ``hvad``/``hva``/``kva``, ``noget``/``noe``/``noko``,
...): the check ``LanguageIdentifier``'s short first pass must pass before its Danish or Norwegian
answer is taken (otherwise lingua reads the whole sample). Written from the standards' spelling, not
learned from the evaluation data; forms both write (``ikke``, ``jeg``, ``også``, ``meget``, ``vil``, ``kunne``,
``hvor``, ``hvilket``/``hvilken``) are left out. Measured in ``benchmarks/results/quality_stage.md``."""

MARKER_WORDS = {
    "da": frozenset(["af", "hvad", "noget", "nogen", "nogle", "mellem", "uden", "ud", "op", "tilbage", "været",
                     "havde", "gør", "siger", "lidt", "gennem", "næste", "hende", "sagde", "gik", "måske", "lige",
                     "blevet", "vores", "hinanden", "endnu", "fik", "ind", "igennem", "vej", "spørgsmål",
                     "ligesom", "derefter", "desuden", "kendt", "fortsat", "gælder", "uge", "penge", "muligt",
                     "vigtig", "vigtigt", "rigtig", "rigtigt", "gøre", "hedder", "bliver", "selvom", "hjælp",
                     "hjælpe", "øjeblik", "købe"]),
    "no": frozenset(["etter", "seg", "meg", "deg", "ble", "hva", "noe", "noen", "mellom", "uten", "opp", "kva", "noko",
                     "nokon", "ikkje", "eg", "frå", "berre", "gikk", "korleis", "tilbake", "kjøpe", "mykje", "mye",
                     "vært", "hadde", "gjør", "sier", "litt", "gjennom", "neste", "dere", "blitt", "hverandre", "ennå",
                     "kanskje", "fikk", "enn", "dei", "hjå", "vere", "heile", "inn", "veldig", "løpet",
                     "gjelder", "penger", "uke", "våre", "kjent", "blei", "seier", "meir", "fekk", "sjølv", "saman",
                     "kvar", "kven", "kvifor", "desse", "sidan", "difor", "nokre", "fleire", "gjer", "gjere",
                     "mogleg", "heilt", "hjelp", "òg", "ho", "gjøre"]),
    "sv": frozenset(["och", "inte", "är", "att", "också", "från", "till", "för", "hon", "honom", "hade", "bara",
                     "något", "några", "någon", "när", "vad", "hur", "varför", "här", "där", "mycket", "jag", "alla",
                     "inom", "genom", "enligt", "eftersom", "därför", "samma", "även", "sedan", "mellan"]),
    "en": frozenset(["the", "and", "of", "is", "that", "with", "was", "are", "this", "which", "from", "be", "it",
                     "as", "not", "but", "they", "were", "has", "been", "their", "would", "there", "what", "when",
                     "who", "will", "or", "she", "his", "you", "about", "also", "more", "these"]),
    "fi": frozenset(["että", "hän", "mutta", "niin", "tai", "ovat", "oli", "myös", "joka", "jossa", "olla", "mikä",
                     "kuin", "sekä", "jotka", "vain", "kanssa", "tämä", "hänen", "olen", "ollut"]),
    "is": frozenset(["að", "ekki", "það", "hann", "hún", "ég", "fyrir", "með", "við", "þess", "þegar", "þá", "eða",
                     "verið", "sem", "um", "frá", "í", "á", "hefur", "eru"]),
}
"""Frequent words of one candidate language (``no``: Bokmål and Nynorsk together) that are not
words of the others in everyday text -- ``LanguageIdentifier``'s word first pass counts them
(issue 20). Written from the languages' grammar, not learned from evaluation data; words two of
them share are left out even when frequent (``sig``, ``efter``, ``mig``, ``blev``, ``nu`` are also
Swedish; ``ut``, ``av``, ``vart``, ``sa``, ``blir``, ``henne`` also Swedish; ``ja``, ``kun``, ``ole``
and ``nyt`` also Danish or Norwegian; ``ei`` is Nynorsk's article; ``at``, ``for``, ``to``, ``by``,
``have``, ``her`` are Danish or Norwegian words too; ``ein`` and ``eit`` are German; Bokmål's
``slik`` (such) is Danish for sweets)."""

OTHER_LANGUAGE_WORDS = frozenset(["und", "die", "das", "nicht", "ist", "von", "auf", "sich", "wird", "het", "een",
                                  "niet", "est", "une", "los", "las", "que", "por", "con", "il", "che", "non",
                                  "sono", "pour", "pas"])
"""Frequent words of languages outside ``DETECTOR_LANGUAGES`` (German, Dutch, French, Spanish,
Italian): a sample holding two of them skips the word first pass, so lingua judges it (one alone is
mostly part of a name: "Los Angeles", "von Trier"). ``del``
(part), ``les`` (reads), ``dans`` (dance) and ``per`` are Nordic words too and are left out."""
