"""Pattern recognizers for Nordic personal data: national identifiers with check digits,
phone numbers, e-mail addresses, IBAN and Nordic bank accounts, IP addresses and payment cards.

Each recognizer is a ``PatternSpec``: a regular expression that proposes candidates, a
validator that grades them, context words, and a cheap prefilter that decides whether the
expression needs to run on a text at all. The same specs drive nordpipe's own scanner
(``engine.PiiScanner``) and the presidio recognizers (``presidio.py``), so both find the same
things.

Validation uses python-stdnum (dk.cpr, no.fodselsnummer, se.personnummer, fi.hetu,
is_.kennitala, iban, no.kontonr, luhn), phonenumbers (the library presidio's PhoneRecognizer
uses) and the standard library's ``ipaddress``. See REFERENCE §5 for the rules.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn, numdb
from stdnum.dk import cpr as std_cpr
from stdnum.fi import hetu as std_hetu
from stdnum.is_ import kennitala as std_kennitala
from stdnum.no import fodselsnummer as std_fnr
from stdnum.no import kontonr as std_kontonr

# Entity types (also the tags written in ``tag`` mode: ``<CPR>``).
CPR = "CPR"
FODSELSNUMMER = "FODSELSNUMMER"
PERSONNUMMER = "PERSONNUMMER"
HETU = "HETU"
KENNITALA = "KENNITALA"
PHONE = "PHONE"
EMAIL = "EMAIL"
IBAN = "IBAN"
BANK_ACCOUNT = "BANK_ACCOUNT"
IP_ADDRESS = "IP_ADDRESS"
CARD = "CARD"
NAME = "NAME"

NATIONAL_IDS = (CPR, FODSELSNUMMER, PERSONNUMMER, HETU, KENNITALA)
ALL_ENTITIES = (*NATIONAL_IDS, PHONE, EMAIL, IBAN, BANK_ACCOUNT, IP_ADDRESS, CARD, NAME)

# Validator grades
STRONG = 2  # check digits (or structure) prove it
WEAK = 1  # plausible; accepted only with a context word nearby
REJECT = 0

CONTEXT_WINDOW = 60
"""Characters before a candidate searched for context words."""


@dataclass(frozen=True)
class PatternSpec:
    """One recognizer: candidates by regex, graded by ``validate``.

    Attributes:
        name: recognizer name (reported in audits).
        entity: entity type.
        regex: candidate expression; group ``v`` (if present) is the value, else the match.
        validate: ``str -> STRONG | WEAK | REJECT``.
        context: lower-case words that make a WEAK candidate acceptable and raise the score.
        negative_context: words right before a candidate that reject it (``sagsnr``).
        prefilter: quick test on the whole text; the regex runs only when it is true.
        score: base score of a STRONG match (overlaps are resolved by score, then length).
        language: language whose documents prefer this recognizer on ties.
    """

    name: str
    entity: str
    regex: re.Pattern[str]
    validate: Callable[[str], int]
    context: tuple[str, ...] = ()
    negative_context: tuple[str, ...] = ()
    prefilter: Callable[[str], bool] = field(default=lambda text: True)
    score: float = 0.9
    language: str | None = None
    weak_ok_in_language: bool = False
    """Accept WEAK candidates without context in documents of ``language``."""
    in_numbers: bool = True
    """Every match lies inside a run of digits and separators (see ``engine.NUMBER_RUN``), and
    ``regex`` begins with ``_WB``, so a match begins only at a run's start or after a space,
    bracket or colon in it (the tests check every such spec)."""
    run_digits: int = 0
    """Fewest digits a match has: the scanner skips runs of digits with fewer."""
    run_dots: int = 0
    """Fewest dots a match has (``3`` for IPv4): the scanner skips runs with fewer."""
    run_group: int = 0
    """Longest unbroken group of digits every match has (``6`` for ``DDMMYY``): the scanner
    skips runs without such a group."""
    anchor: str | None = None
    """A character every match contains, where no match crosses whitespace or holds two of
    them (``@`` for e-mail): the scanner runs the regex only around each occurrence."""
    scan_regex: re.Pattern[str] | None = None
    """An expression with the same matches as ``regex`` that the scanner runs instead over
    whole texts: it starts with a character class, which lets the regex engine skip ahead,
    where ``regex`` starts with a lookbehind tried at every position. Tests check both find
    the same spans."""
    starts: Callable[[str], list[int]] | None = None
    """Where in a text a match can start: the scanner tries ``regex`` only at those positions
    (``regex.match``) instead of scanning the whole text."""
    context_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)
    """``context`` as one expression (set from ``context``)."""
    negative_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)
    """``negative_context`` as one expression (set from ``negative_context``)."""
    scores: dict[tuple[bool, bool, bool], float] = field(init=False, repr=False, compare=False, default_factory=dict)
    """The score of an accepted candidate by ``(weak, has_context, document_in_language)``:
    ``score`` - 0.1 for a WEAK grade + 0.1 with a context word + 0.02 in the recognizer's
    language (set from ``score``)."""

    def __post_init__(self) -> None:
        # one C-level search instead of a substring test per word
        object.__setattr__(self, "context_regex", _words_regex(self.context))
        object.__setattr__(self, "negative_regex", _words_regex(self.negative_context))
        object.__setattr__(self, "scores", {
            (weak, context, in_language): round(self.score - (0.1 if weak else 0.0) + (0.1 if context else 0.0)
                                                + (0.02 if in_language else 0.0), 4)
            for weak in (False, True) for context in (False, True) for in_language in (False, True)
        })



def _words_regex(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """One expression finding any of ``words`` (None for no words), written as a trie
    (``c(?:ard|pr|vr)|...``): at each position the regex engine follows one branch instead of
    trying every word (3-5x faster on the 45 negative words). It finds an occurrence exactly
    where the plain alternation ``words_alternation(words)`` does; the tests compare the two."""
    if not words:
        return None
    return re.compile(_trie_expression(sorted(set(words))))


def words_alternation(words: tuple[str, ...]) -> re.Pattern[str]:
    """The plain expression for "any of ``words``": the definition ``_words_regex`` speeds up."""
    return re.compile("|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)))


def _trie_expression(words: list[str]) -> str:
    """A regular expression matching exactly ``words`` (sorted, distinct), factored by
    common first characters; an alternation comes back as one group, so it can be appended to
    a literal."""
    by_first: dict[str, list[str]] = {}
    ends_here = False
    for word in words:
        if word:
            by_first.setdefault(word[0], []).append(word[1:])
        else:
            ends_here = True
    branches = [re.escape(first) + _trie_expression(rests) for first, rests in by_first.items()]
    if ends_here:
        # a word ends here and longer ones go on: the longer ones first, then nothing
        return f"(?:{'|'.join(branches)})?" if branches else ""
    return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


_NON_DIGITS = re.compile(r"\D+")


def decimal_digits_regex(value: str) -> str:
    """The decimal digits of ``value``. The definition; ``_loops.decimal_digits`` (compiled)
    is the same loop in C."""
    return _NON_DIGITS.sub("", value)


def iban_mod97_py(number: str) -> int:
    """The IBAN check remainder of ``number`` (ASCII capitals and digits): its first four
    characters moved to the end, letters as 10..35, the whole as an integer mod 97 (1 when
    valid); -1 for any other character. The definition of ``_loops.iban_mod97``."""
    if len(number) < 4 or not number.isascii() or not number.isalnum() or number.upper() != number:
        return -1
    return _iban_remainder(number)


def _iban_remainder(number: str) -> int:
    """The IBAN mod-97 remainder of letters and (any Unicode) digits, as stdnum computes it."""
    return int((number[4:] + number[:4]).translate(_IBAN_TO_DIGITS)) % 97


_IBAN_TO_DIGITS = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})

try:
    from nordpipe.pii._loops import decimal_digits as _digits
    from nordpipe.pii._loops import iban_mod97
except ImportError:  # not compiled: same results, slower
    _digits = decimal_digits_regex
    iban_mod97 = iban_mod97_py


@functools.cache
def _has_digits(min_run: int) -> Callable[[str], bool]:
    expr = re.compile(rf"\d{{{min_run}}}")
    return lambda text: expr.search(text) is not None


# --------------------------------------------------------------------------------------------
# National identifiers


def validate_cpr(value: str) -> int:
    """Danish CPR: a real date always; modulus 11 proves it (numbers before 2007-10-01); a
    number with a valid date but no modulus-11 check needs context (REFERENCE §5)."""
    number = _digits(value)
    if len(number) != 10:
        return REJECT
    if number.isascii():
        # the rules of stdnum.dk.cpr, without its per-call overhead (tests compare the two)
        birth = _cpr_birth_date(number)
        if birth is None or birth > dt.date.today():
            return REJECT
        weighted = sum(w * (ord(c) - 48) for w, c in zip(_CPR_WEIGHTS, number, strict=True))
        return STRONG if weighted % 11 == 0 else WEAK
    return grade_cpr_with_stdnum(number)


def grade_cpr_with_stdnum(number: str) -> int:
    """The CPR grade of 10 digits by ``stdnum.dk.cpr`` itself: REJECT without a past birth
    date, STRONG with a valid modulus-11 check, WEAK otherwise."""
    try:
        birth = std_cpr.get_birth_date(number)
    except Exception:
        return REJECT
    if birth > dt.date.today():
        return REJECT
    return STRONG if std_cpr.checksum(number) == 0 else WEAK


_CPR_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def _cpr_birth_date(number: str) -> dt.date | None:
    """The birth date of a 10-digit CPR number: DDMMYY, the century from the 7th digit and
    the year (REFERENCE §5); None when it is no date."""
    year = int(number[4:6])
    seventh = number[6]
    if seventh in "5678" and year >= 58:
        year += 1800
    elif seventh in "0123" or (seventh in "49" and year >= 37):
        year += 1900
    else:
        year += 2000
    try:
        return dt.date(year, int(number[2:4]), int(number[0:2]))
    except ValueError:
        return None


_FNR_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_FNR_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _fnr_check_digits_ok(number: str) -> bool:
    """The two mod-11 check digits of an 11-digit ASCII number (a necessary condition of
    ``stdnum.no.fodselsnummer``; half the candidates fail it, so stdnum runs on fewer)."""
    if len(number) != 11 or not number.isascii() or not number.isdigit():
        return True  # not decided here
    values = [ord(c) - 48 for c in number]
    first = (11 - sum(w * v for w, v in zip(_FNR_WEIGHTS_1, values[:9], strict=True))) % 11
    second = (11 - sum(w * v for w, v in zip(_FNR_WEIGHTS_2, values[:10], strict=True))) % 11
    return first == values[9] and second == values[10]


def validate_fodselsnummer(value: str) -> int:
    """Norwegian fødselsnummer / D-number / H-number: two mod-11 check digits and a date."""
    number = _digits(value)
    if not _fnr_check_digits_ok(number):
        return REJECT
    if len(number) == 11 and number.isascii():
        # the date rules of stdnum.no.fodselsnummer, without its per-call overhead
        birth = _fnr_birth_date(number)
        return STRONG if birth is not None and birth <= dt.date.today() else REJECT
    return STRONG if std_fnr.is_valid(number) else REJECT


def _fnr_birth_date(number: str) -> dt.date | None:
    """Birth date of an 11-digit fødselsnummer: D-numbers add 40 to the day, H-numbers 40 to
    the month, the individual number (digits 7-9) and the year give the century; None when
    there is no valid date (or it is an FH-number, day >= 80)."""
    day, month, year, individual = int(number[0:2]), int(number[2:4]), int(number[4:6]), int(number[6:9])
    if day >= 80:
        return None
    if day > 40:
        day -= 40
    if month > 40:
        month -= 40
    if individual < 500:
        year += 1900
    elif individual < 750 and year >= 54:
        year += 1800
    elif individual < 1000 and year < 40:
        year += 2000
    elif 900 <= individual < 1000 and year >= 40:
        year += 1900
    else:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _luhn_ok(number: str) -> bool:
    """``stdnum.luhn.is_valid`` for a string of digits, without its per-call overhead."""
    if not number.isascii() or not number.isdigit():
        return luhn.is_valid(number)
    total = 0
    for i, c in enumerate(reversed(number)):
        v = ord(c) - 48
        if i % 2:
            v *= 2
            if v > 9:
                v -= 9
        total += v
    return total % 10 == 0


def _swedish_date_ok(number: str) -> bool:
    """YYMMDD or YYYYMMDD; samordningsnummer add 60 to the day."""
    ymd = number[-10:-4]
    year, month, day = int(ymd[0:2]), int(ymd[2:4]), int(ymd[4:6])
    if day > 60:
        day -= 60
    full_year = int(number[:4]) if len(number) == 12 else 2000 + year
    try:
        dt.date(full_year, month, day)
    except ValueError:
        return False
    return True


def validate_personnummer(value: str) -> int:
    """Swedish personnummer / samordningsnummer: a date (day + 60 for samordningsnummer) and
    the Luhn digit over the last 10 digits."""
    number = _digits(value)
    if len(number) not in (10, 12) or (len(number) == 12 and number[:2] not in ("18", "19", "20")):
        return REJECT
    if not _swedish_date_ok(number):
        return REJECT
    return STRONG if _luhn_ok(number[-10:]) else REJECT


def validate_hetu(value: str) -> int:
    """Finnish HETU (including the 2023 century signs); temporary numbers (900-999) accepted.
    ``DDMMYY-NNNC`` with a digit for C has the shape of a CPR, personnummer or kennitala and
    passes the mod-31 check by chance once in 31: such numbers need Finnish context or a
    Finnish document."""
    upper = value.upper()
    # stdnum's check character first, on the digits as the candidate has them: 30 in 31
    # candidates fail it, and stdnum.fi.hetu costs ~5 µs a call (a necessary condition only:
    # stdnum decides the rest)
    if len(upper) == 11 and upper[:6].isdecimal() and upper[7:10].isdecimal() and (
        _HETU_CHECK_CHARACTERS[int(upper[:6] + upper[7:10]) % 31] != upper[10]
    ):
        return REJECT
    if not std_hetu.is_valid(upper, allow_temporary=True):
        return REJECT
    return WEAK if value[6] == "-" and value[-1].isdigit() else STRONG


_HETU_CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def validate_kennitala(value: str) -> int:
    """Icelandic kennitala of a person (day < 40): date and mod-11 check digit."""
    number = _digits(value)
    if len(number) != 10 or int(number[0:2]) > 31 or number[9] not in "890":
        return REJECT
    # stdnum's mod-11 checksum first (10 in 11 candidates fail it); stdnum decides the rest
    if sum(w * int(c) for w, c in zip(_KENNITALA_WEIGHTS, number, strict=True)) % 11:
        return REJECT
    return STRONG if std_kennitala.is_valid(number) else REJECT


_KENNITALA_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2, 1, 0)


# --------------------------------------------------------------------------------------------
# Phones

_PHONE_REGIONS = ("DK", "NO", "SE", "FI", "IS")
# groupings of a national number written without country code that people use for phones
_PHONE_GROUPINGS = {
    (8,), (2, 2, 2, 2), (4, 4), (3, 2, 3),  # DK/NO
    (3, 4), (7,),  # IS
}
_DATE_LIKE = re.compile(r"^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$|^\d{4}[-./]\d{1,2}[-./]\d{1,2}$")
_YEAR = re.compile(r"^(?:1[89]|20)\d\d$")


def _trunk_grouping_ok(groups: tuple[str, ...]) -> bool:
    """Swedish/Finnish numbers with a trunk 0: an area code of 2-4 digits first (``08-``,
    ``040 ``), or an unbroken mobile number (``0701234567``)."""
    if len(groups) == 1:
        return groups[0][:2] in ("07", "04", "05") and len(groups[0]) == 10
    return 2 <= len(groups[0]) <= 4 and all(len(g) <= 8 for g in groups[1:])


_PHONE_SEPARATORS = re.compile(r"[\s.\-/()]+")
_PLAIN_INTERNATIONAL = re.compile(r"(?:\+|00)\d[\d \-.]*")
# country codes whose numbers the fast international path checks: regions without a
# national prefix to strip (DK, NO, IS), or with trunk "0" that the path leaves to phonenumbers
_FAST_COUNTRY_CODES = {45: "DK", 47: "NO", 46: "SE", 358: "FI", 354: "IS"}


@functools.lru_cache(maxsize=4096)
def validate_phone(value: str) -> int:
    """A number phonenumbers accepts as valid for a Nordic region (or any region with a
    country code), written in a grouping people use for phones."""
    return grade_phone(value, is_valid_national_number, _valid_international)


def grade_phone(value: str, national_ok: Callable[[str, str], bool], international_ok: Callable[[str, str], bool]) -> int:
    """The phone rules, with the validity tests passed in: ``national_ok(national, region)``
    for a national significant number, ``international_ok(raw, digits)`` for a number with a
    country code (nordpipe's fast tests, or phonenumbers itself in ``pii.reference``)."""
    raw = value.strip()
    digits = _digits(raw)
    if raw.startswith(("+", "00")):
        return STRONG if not _DATE_LIKE.match(raw) and international_ok(raw, digits) else REJECT
    # the cheap length tests first (most candidates are other numbers): without a trunk 0
    # only 7 (IS) or 8 (DK/NO) digits, with one 8 to 11 (SE/FI)
    count = len(digits)
    trunk = digits.startswith("0")
    if (trunk and not 8 <= count <= 11) or (not trunk and count not in (7, 8)) or _DATE_LIKE.match(raw):
        return REJECT
    parts = tuple(g for g in _PHONE_SEPARATORS.split(raw) if g)
    if all(_YEAR.match(g) for g in parts) or (len(parts) == 2 and "-" in raw and _YEAR.match(parts[0])):
        return REJECT  # "2019-2023", case numbers "2019-2567"
    if trunk:
        # trunk prefix: Sweden and Finland write 08-123 456 78, 040 123 4567
        if not _trunk_grouping_ok(parts):
            return REJECT
        regions: tuple[str, ...] = ("SE", "FI")
    else:
        if tuple(len(g) for g in parts) not in _PHONE_GROUPINGS:
            return REJECT
        regions = ("DK", "NO") if count == 8 else ("IS",)
    national = digits[1:] if trunk else digits
    return STRONG if any(national_ok(national, region) for region in regions) else REJECT


def _valid_international(raw: str, digits: str) -> bool:
    """``phonenumbers.is_valid_number(parse(number))`` for a number with a country code.
    Nordic numbers written plainly (no brackets, no trunk 0 after the country code) are
    checked against the metadata patterns directly (~40 µs less a number); the tests compare
    this with phonenumbers on random numbers."""
    full = digits[2:] if raw.startswith("00") else digits
    if not full or full[0] == "0":
        # No country code starts with 0: phonenumbers raises NumberParseException here (tested).
        # Zero-padded numbers in ids and file names ("00017") are such candidates, and each
        # exception cost ~15 us and left a reference cycle of ~13 frames behind (next comment).
        return False
    if _PLAIN_INTERNATIONAL.fullmatch(raw):
        code = next((int(full[:i]) for i in (1, 2, 3) if int(full[:i]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE), None)
        region = _FAST_COUNTRY_CODES.get(code) if code is not None else None
        national = full[len(str(code)) :] if code is not None else ""
        if region is not None and not national.startswith("0"):
            return is_valid_national_number(national, region)
    try:
        parsed = phonenumbers.parse("+" + full if raw.startswith("00") else raw, None)
    except phonenumbers.NumberParseException as err:
        # phonenumbers keeps the exception in a local of its own frames (``sys.exc_info()``), a
        # cycle only the garbage collector frees; clearing the frames frees it now.
        traceback.clear_frames(err.__traceback__)
        return False
    return phonenumbers.is_valid_number(parsed)


_NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip",
                 "pager", "uan", "voicemail")


@functools.cache
def _region_pattern(region: str) -> re.Pattern[str] | None:
    """One expression for every number type phonenumbers' metadata allows in ``region`` and
    the regions sharing its country code (Svalbard with Norway, Åland with Finland)."""
    patterns = []
    code = phonenumbers.country_code_for_region(region)
    for shared_region in phonenumbers.region_codes_for_country_code(code):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(shared_region)
        if metadata is None:
            continue
        for kind in _NUMBER_TYPES:
            desc = getattr(metadata, kind, None)
            if desc is not None and desc.national_number_pattern:
                patterns.append(desc.national_number_pattern)
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def is_valid_national_number(national: str, region: str) -> bool:
    """Fast equivalent of ``phonenumbers.is_valid_number(parse(national, region))`` for a
    national significant number (no trunk 0): the library's own metadata patterns, matched
    directly (parse + is_valid_number cost ~40 µs a candidate). The tests compare the two."""
    pattern = _region_pattern(region)
    return bool(pattern is not None and pattern.fullmatch(national))


# --------------------------------------------------------------------------------------------
# E-mail, IBAN, accounts, IP, cards


@functools.lru_cache(maxsize=1)
def _tld_extractor():  # type: ignore[no-untyped-def]
    import tldextract

    # suffix_list_urls=() -> use the snapshot bundled with tldextract, never fetch
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def validate_email(value: str) -> int:
    """An address whose domain ends in a known public suffix (tldextract's bundled list)."""
    return STRONG if _known_domain(value.rsplit("@", 1)[-1]) else REJECT


@functools.lru_cache(maxsize=4096)
def _known_domain(domain: str) -> bool:
    # cached per domain: addresses differ, their domains repeat
    return bool(_tld_extractor()(domain).fqdn)


_IBAN_PLAIN = re.compile(r"[A-Z]{2}\d\d[A-Z0-9]+")
_IBAN_STRUCTURE_PART = re.compile(r"([1-9][0-9]*)!([nac])")
_IBAN_CLASSES = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}
# countries with an extra national check in python-stdnum (stdnum/<cc>/iban.py) left to
# stdnum; Norway's (the account number's mod 11, stdnum.no.iban) is done here
_IBAN_COUNTRY_CHECKS = frozenset(("BE", "ES", "ME"))


@functools.cache
def _iban_bban(country: str) -> re.Pattern[str] | None:
    """The BBAN layout python-stdnum's IBAN registry gives ``country`` (None: unknown)."""
    info = numdb.get("iban").info(country)
    if not info or not info[0][1]:
        return None
    layout = info[0][1].get("bban", "")
    return re.compile(_IBAN_STRUCTURE_PART.sub(lambda m: f"{_IBAN_CLASSES[m.group(2)]}{{{m.group(1)}}}", layout) + r"\Z")


def validate_iban(value: str) -> int:
    """``stdnum.iban.is_valid``: mod 97, the country's BBAN layout and (NO, BE, ES, ME) the
    national check. The common case is done here (stdnum's registry lookup costs ~50 µs an
    IBAN); the tests compare the two on random IBANs."""
    number = value.replace(" ", "")
    if not _IBAN_PLAIN.fullmatch(number) or number[:2] in _IBAN_COUNTRY_CHECKS:
        return STRONG if std_iban.is_valid(value) else REJECT
    remainder = iban_mod97(number) if number.isascii() else -1
    if remainder < 0:  # Unicode digits: the integer of the digits, as stdnum computes it
        remainder = _iban_remainder(number)
    if remainder != 1:
        return REJECT
    layout = _iban_bban(number[:2])
    if layout is None or not layout.match(number, 4):
        return REJECT
    if number[:2] == "NO" and not _no_account_ok(number[4:]):
        return REJECT
    return STRONG


_NO_ACCOUNT_WEIGHTS = (6, 7, 8, 9, 4, 5, 6, 7, 8, 9)


def _no_account_ok(bban: str) -> bool:
    """``stdnum.no.kontonr.is_valid`` for the 11 ASCII digits of a Norwegian BBAN (the layout
    check before guarantees them): the mod-11 check digit, or the Luhn digit of a postgiro
    number (``0000`` + 7 digits). The tests compare the two."""
    if not (len(bban) == 11 and bban.isascii() and bban.isdigit()):
        return std_kontonr.is_valid(bban)
    if bban.startswith("0000"):
        return _luhn_ok(bban[4:])
    return sum(w * (ord(c) - 48) for w, c in zip(_NO_ACCOUNT_WEIGHTS, bban, strict=False)) % 11 == ord(bban[10]) - 48


def validate_no_account(value: str) -> int:
    """Norwegian account number ``1234.56.78903``: mod-11 check digit."""
    return STRONG if std_kontonr.is_valid(value) else REJECT


def validate_dk_account(value: str) -> int:
    """Danish ``reg.nr.-kontonr.``: 4-digit registration number and up to 10 digits. No
    public check digit, so only with context."""
    return WEAK


def validate_ip(value: str) -> int:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return REJECT
    if isinstance(address, ipaddress.IPv4Address) and value.count(".") != 3:
        return REJECT
    return STRONG


def validate_card(value: str) -> int:
    number = _digits(value)
    if not 13 <= len(number) <= 19 or number[0] not in "23456":
        return REJECT
    return STRONG if _luhn_ok(number) else REJECT


_IBAN_START = re.compile(r"[A-Z](?<![\w].)[A-Z]\d\d")


def iban_starts_regex(text: str) -> list[int]:
    """Where an IBAN can start (two capitals and two digits after a non-word character). The
    definition; ``_loops.iban_starts`` (compiled) does the same in a C loop."""
    return [m.start() for m in _IBAN_START.finditer(text)]


try:
    from nordpipe.pii._loops import iban_starts
except ImportError:  # not compiled: same result, slower
    iban_starts = iban_starts_regex


# --------------------------------------------------------------------------------------------
# Structured numbers: section numbers, law references, versions (not IP addresses or phones)

# Words right before a number that make it a reference into a text, a law or a release:
# "kap. 3.5.2.2", "§ 12", "jf. 11.3.1", "stk. 2", "version 10.2.0.1" (lower case; the number
# may follow after spaces and one "nr."). "nr." alone is not one: "tlf. nr. 33 44 55 66".
_REFERENCE_WORDS = (
    "§", "§§", "stk.", "stk", "styk", "afsnit", "afsnittet", "avsnitt", "avsnittet", "kapitel", "kapitlet",
    "kapittel", "kapitlet", "kap.", "kap", "punkt", "punktet", "pkt.", "pkt", "ledd", "leddet", "litra", "jf.", "jf",
    "jfr.", "jfr", "jævnfør", "jamfør", "section", "sektion", "sec.", "version", "versjon", "versio",
    "ver.", "v.", "udgave", "utgave", "utgåve", "release", "build", "firmware", "bilag", "vedlegg", "figur",
    "fig.", "tabel", "tabell", "afs.",
)
_REFERENCE_BEFORE = re.compile(
    r"(?:^|[\s(])(?:" + "|".join(re.escape(w) for w in sorted(set(_REFERENCE_WORDS), key=len, reverse=True))
    + r")(?:\s+nr\.?)?\s*$"
)
# a section number heading: at a line start, small parts, then a capitalised heading word
_SECTION_PARTS = re.compile(r"\d{1,2}(?:\.\d{1,2})+\.?")
_HEADING_AFTER = re.compile(r"\.?[ \t]+(\w)")


def structured_number(text: str, start: int, end: int) -> bool:
    """``text[start:end]`` is a section number, a law/text reference or a version, not an IP
    address or phone number: a reference word (``kap.``, ``§``, ``stk.``, ``afsnit``,
    ``punkt``, ``ledd``, ``jf.``, ``version``...) right before it on its line, or a dotted
    number of parts <= 99 at a line start followed by a capitalised heading (``3.5.4.1 Nytt
    fagråd``). Trade-off: a private IP such as ``10.0.0.1`` written at a line start and
    followed by a word is taken for a heading (with a context word such as "IP" before it,
    it is not at a line start)."""
    line_start = text.rfind("\n", 0, start) + 1
    before = text[max(line_start, start - 30) : start].lower()
    if before and _REFERENCE_BEFORE.search(before):
        return True
    if not before.strip() and _SECTION_PARTS.fullmatch(text, start, end):
        heading = _HEADING_AFTER.match(text, end)
        return heading is not None and heading.group(1).isupper()
    return False


# --------------------------------------------------------------------------------------------
# The specs

# an IPv6 address has "::" or eight groups; the hint starts with a literal ":" so the regex
# engine can skip ahead
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{1,4}:")
_ID_NEGATIVE = ("sagsnr", "sagsnummer", "journalnummer", "ärendenummer", "saksnummer", "ordrenummer", "fakturanummer", "sags nr", "sag nr", "j.nr", "journalnr", "journal nr", "ordrenr", "ordre nr",
                "fakturanr", "faktura nr", "varenr", "varenummer", "vare nr", "cvr", "se-nr", "ean", "isbn", "løbenr",
                "ärendenr", "diarienr", "dnr", "saksnr", "sak nr", "saksnummer", "ordernr", "artikelnr",
                "konto", "kontonr", "reg.nr", "regnr", "bankkonto", "kort", "card", "referencenr", "ref.")
_PHONE_CONTEXT = ("tlf", "telefon", "mobil", "mob.", "ring", "sms", "phone", "tel.", "tel:", "nummer", "puh",
                  "puhelin", "sími", "telefonnummer", "mobilnummer")
CPR_CONTEXT = ("cpr", "personnummer", "personnr", "cpr-nr", "cpr-nummer", "personnummer", "fødselsdato")

_WB = r"(?<![\w\-+/.,])"  # start: not inside a word, number or another identifier
_WE = r"(?![\w\-+/]|[.,]\d)"  # end: likewise

SPECS: tuple[PatternSpec, ...] = (
    PatternSpec(
        "dk_cpr", CPR, re.compile(_WB + r"(?P<v>[0-3]\d[01]\d\d\d[- ]?\d{4})" + _WE), validate_cpr,
        context=CPR_CONTEXT, prefilter=_has_digits(4), score=0.95, language="da", run_digits=10, run_group=6,
    ),
    PatternSpec(
        "no_fodselsnummer", FODSELSNUMMER, re.compile(_WB + r"(?P<v>[0-7]\d[0-5]\d\d\d ?\d{5})" + _WE),
        validate_fodselsnummer, context=("fødselsnummer", "fødselsnr", "personnummer", "d-nummer", "fnr"),
        prefilter=_has_digits(5), score=0.95, language="nb", run_digits=11, run_group=6,
    ),
    PatternSpec(
        "se_personnummer", PERSONNUMMER,
        re.compile(_WB + r"(?P<v>(?:1[89]|20)?\d\d[01]\d[0-9]\d[-+ ]?\d{4})" + _WE), validate_personnummer,
        context=("personnummer", "personnr", "samordningsnummer", "pnr"), prefilter=_has_digits(4), score=0.93,
        language="sv", run_digits=10, run_group=6,
    ),
    PatternSpec(
        "fi_hetu", HETU, re.compile(_WB + r"(?P<v>[0-3]\d[01]\d\d\d[-+A-FU-Y]\d{3}[0-9A-Ya-y])" + _WE), validate_hetu,
        context=("hetu", "henkilötunnus", "sotu"), prefilter=_has_digits(3), score=0.95, language="fi",
        weak_ok_in_language=True, run_digits=9, run_group=6,
    ),
    PatternSpec(
        "is_kennitala", KENNITALA, re.compile(_WB + r"(?P<v>[0-3]\d[01]\d\d\d-?\d{4})" + _WE), validate_kennitala,
        context=("kennitala", "kt."), prefilter=_has_digits(4), score=0.92, language="is", run_digits=10, run_group=6,
    ),
    PatternSpec(
        "phone", PHONE,
        re.compile(
            _WB
            + r"(?P<v>(?:(?:\+|00)\d{2,3}[ \-.]?(?:\(0\)[ ]?)?)?(?:\(0?\d{1,3}\)[ \-]?)?\d{1,10}(?:[ \-.]\d{1,8}){0,4})"
            + _WE
        ),
        validate_phone, context=_PHONE_CONTEXT, negative_context=_ID_NEGATIVE, prefilter=_has_digits(2), score=0.7,
    ),
    PatternSpec(
        "email", EMAIL,
        re.compile(r"(?<![\w.+-])(?P<v>[\w][\w.+'-]*@[\w-]+(?:\.[\w-]+)+)(?<!\.)"), validate_email,
        prefilter=lambda text: "@" in text, score=0.9, in_numbers=False, anchor="@",
    ),
    PatternSpec(
        "iban", IBAN,
        re.compile(r"(?<![\w])(?P<v>[A-Z]{2}\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)(?![\w])"), validate_iban,
        context=("iban",), prefilter=_has_digits(4), score=0.95, in_numbers=False,
        scan_regex=re.compile(r"(?P<v>[A-Z](?<![\w].)[A-Z]\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)(?![\w])"),
        starts=iban_starts,
    ),
    PatternSpec(
        "no_account", BANK_ACCOUNT, re.compile(_WB + r"(?P<v>\d{4}[. ]\d{2}[. ]\d{5})" + _WE), validate_no_account,
        context=("konto", "kontonummer", "kontonr"), prefilter=_has_digits(4), score=0.85, language="nb",
        run_digits=11, run_group=4,
    ),
    PatternSpec(
        "dk_account", BANK_ACCOUNT, re.compile(_WB + r"(?P<v>\d{4}[- ]\d{6,10})" + _WE), validate_dk_account,
        context=("konto", "kontonr", "reg.nr", "regnr", "reg. nr", "bankkonto", "registreringsnummer"),
        prefilter=_has_digits(4), score=0.85, language="da", run_digits=10, run_group=6,
    ),
    PatternSpec(
        "ipv4", IP_ADDRESS, re.compile(_WB + r"(?P<v>(?:\d{1,3}\.){3}\d{1,3})" + _WE), validate_ip,
        prefilter=lambda text: "." in text, score=0.8, run_dots=3,
    ),
    PatternSpec(
        "ipv6", IP_ADDRESS,
        re.compile(r"(?<![\w:])(?P<v>(?:[0-9A-Fa-f]{1,4}:){1,7}:?(?::?[0-9A-Fa-f]{1,4}){1,7}|::1)(?![\w:])"),
        validate_ip, prefilter=lambda text: "::" in text or (":" in text and _IPV6_HINT.search(text) is not None),
        score=0.8, in_numbers=False,
    ),
    PatternSpec(
        "card", CARD, re.compile(_WB + r"(?P<v>\d{4}(?:[ \-]?\d{4}){2}[ \-]?\d{1,4}(?:[ \-]?\d{3})?|\d{4}[ \-]?\d{6}[ \-]?\d{5})" + _WE),
        validate_card, context=("kort", "card", "visa", "mastercard", "dankort", "kreditkort", "betalingskort"),
        prefilter=_has_digits(4), score=0.9, run_digits=13, run_group=4,
    ),
)


def specs_for(entities: set[str] | None = None) -> tuple[PatternSpec, ...]:
    """The specs for the given entity types (all when None)."""
    return tuple(s for s in SPECS if entities is None or s.entity in entities)
