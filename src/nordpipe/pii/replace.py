"""Replacing found personal data: ``tag`` (``<CPR>``) or ``fake`` (a fictional value of the
same type and format).

Fake values:

- keep the original's layout (separators, grouping, letter case, country code, possessive
  ``s``), so text statistics stay realistic;
- carry valid check digits where the type has them (CPR modulus 11, fødselsnummer, Luhn for
  personnummer and cards, HETU check character, kennitala, IBAN mod 97, Norwegian accounts);
- are consistent within a document: the same original value (same digits, same name word)
  gets the same fake everywhere in the document, so references still line up;
- never equal the original, nor any other original value of the same document;
- fit the document's language (``Replacer.replace(..., language)``, from
  ``metadata.nordpipe.language`` / ``metadata.language``, default ``da``): names and the
  names in fake e-mail addresses come from that language's Faker lists (da_DK, no_NO for
  nb/nn, sv_SE, fi_FI, is_IS with ``-son``/``-dóttir`` patronymics), a given name keeps the
  original's gender when a gendered list knows it, and a national phone number valid in the
  language's region (NO for nb/nn) gets a fake valid there. The scanner finds no addresses or
  cities, so no fake cities are drawn;
- are drawn from a random generator seeded by the document id, keyed when the stage has a key
  (``--key-file``/``--key-env``: HMAC-SHA256 of the id, ``keys.keyed_hex``): with a key,
  reproducible across runs and corpora for that key and unpredictable without it; without a
  key, seeded by the id alone (consistent within the document and reproducible, but anyone can
  replay the draws; the draws never depend on the original values, so they reveal none). E-mail domains are the reserved ``example.*`` domains and
  IP addresses come from the documentation ranges, so a fake never points at a real party.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import random
import string
from collections.abc import Callable
from typing import NamedTuple

from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.dk import cpr as std_cpr
from stdnum.fi import hetu as std_hetu
from stdnum.is_ import kennitala as std_kennitala
from stdnum.no import fodselsnummer as std_fnr
from stdnum.no import kontonr as std_kontonr

from nordpipe.pii import recognizers as r
from nordpipe.pii.engine import Span
from nordpipe.pii.names import name_lists

MODES = ("tag", "fake")
_HETU_TABLE = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def tag_for(entity: str) -> str:
    return f"<{entity}>"


def _reformat(template: str, digits: str) -> str:
    """Put ``digits`` into the digit positions of ``template`` (separators kept)."""
    out = []
    it = iter(digits)
    for ch in template:
        out.append(next(it) if ch.isdigit() else ch)
    return "".join(out)


def _random_date(rng: random.Random, start_year: int = 1940, end_year: int = 2005) -> dt.date:
    start = dt.date(start_year, 1, 1).toordinal()
    end = dt.date(end_year, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(start, end))


def _rand_digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


# --------------------------------------------------------------------------------------------
# Fake generators: (original, rng) -> fake of the same format


def fake_cpr(original: str, rng: random.Random) -> str:
    for _ in range(1000):
        birth = _random_date(rng, 1937, 1999)
        # 7th digit 0-3 means 1900-1999 for any year (REFERENCE §5 / stdnum)
        number = birth.strftime("%d%m%y") + str(rng.randint(0, 3)) + _rand_digits(rng, 3)
        if std_cpr.checksum(number) == 0:
            return _reformat(original, number)
    raise RuntimeError("no CPR number found")  # pragma: no cover - 1 in 11 succeed


def fake_fodselsnummer(original: str, rng: random.Random) -> str:
    d_number = int(r._digits(original)[0]) >= 4
    for _ in range(1000):
        birth = _random_date(rng, 1940, 1999)
        day = birth.day + (40 if d_number else 0)
        base = f"{day:02d}{birth:%m%y}{rng.randint(0, 499):03d}"
        k1 = std_fnr.calc_check_digit1(base)
        if len(k1) != 1:
            continue
        k2 = std_fnr.calc_check_digit2(base + k1)
        if len(k2) != 1:
            continue
        number = base + k1 + k2
        if std_fnr.is_valid(number):
            return _reformat(original, number)
    raise RuntimeError("no fødselsnummer found")  # pragma: no cover


def fake_personnummer(original: str, rng: random.Random) -> str:
    digits = r._digits(original)
    coordination = int(digits[-6:-4]) > 60
    birth = _random_date(rng, 1940, 2005)
    day = birth.day + (60 if coordination else 0)
    body = f"{birth:%y%m}{day:02d}{_rand_digits(rng, 3)}"
    number = body + luhn.calc_check_digit(body)
    if len(digits) == 12:
        number = f"{birth.year // 100}" + number
    return _reformat(original, number)


def fake_hetu(original: str, rng: random.Random) -> str:
    sign = original[6]
    century = {"+": 1800, "-": 1900, "Y": 1900, "X": 1900, "W": 1900, "V": 1900, "U": 1900}.get(sign.upper(), 2000)
    birth = _random_date(rng, max(century, 1940), min(century + 99, 2005)) if century != 1800 else _random_date(rng, 1880, 1899)
    individual = rng.randint(2, 899)
    body = f"{birth:%d%m%y}{individual:03d}"
    check = _HETU_TABLE[int(body) % 31]
    fake = f"{body[:6]}{sign}{body[6:]}{check}"
    if original[-1].islower():
        fake = fake[:-1] + fake[-1].lower()
    assert std_hetu.is_valid(fake.upper(), allow_temporary=True)
    return fake


def fake_kennitala(original: str, rng: random.Random) -> str:
    for _ in range(1000):
        birth = _random_date(rng, 1940, 1999)
        base = f"{birth:%d%m%y}{_rand_digits(rng, 2)}"
        for check in "0123456789":
            number = base + check + "9"
            if std_kennitala.is_valid(number):
                return _reformat(original, number)
    raise RuntimeError("no kennitala found")  # pragma: no cover


# the phone region of a document language: a national number valid there gets a fake valid there
PHONE_REGION = {"da": "DK", "nb": "NO", "nn": "NO", "no": "NO", "sv": "SE", "fi": "FI", "is": "IS"}


def _national(digits: str) -> str:
    return digits[1:] if digits.startswith("0") else digits


def fake_phone(original: str, rng: random.Random, language: str | None = None) -> str:
    """A valid phone number in the original's layout, keeping its country code and first
    digit; when the original is a valid national number of the document language's region
    (8 digits in a Norwegian text: NO, not DK), so is the fake."""
    digits = r._digits(original)
    region = PHONE_REGION.get(language or DEFAULT_LANGUAGE)
    national = not original.lstrip().startswith(("+", "00"))
    in_region = bool(region and national and r.is_valid_national_number(_national(digits), region))
    # keep the country code (+45 / 0045) and the first digit of the national number so the
    # fake stays a number of the same kind (mobile, Stockholm landline...)
    if original.lstrip().startswith("+"):
        keep = len(original.split()[0]) if " " in original else 3
        keep_digits = len(r._digits(original[:keep])) + 1
    elif original.startswith("00"):
        keep_digits = 5
    elif digits.startswith("0"):
        keep_digits = 2
    else:
        keep_digits = 1
    for _ in range(200):
        number = digits[:keep_digits] + _rand_digits(rng, len(digits) - keep_digits)
        fake = _reformat(original, number)
        if number != digits and r.validate_phone(fake) == r.STRONG and (
            not in_region or r.is_valid_national_number(_national(number), region)  # type: ignore[arg-type]
        ):
            return fake
    return _reformat(original, digits[:keep_digits] + _rand_digits(rng, len(digits) - keep_digits))


def fake_email(original: str, rng: random.Random, language: str | None = None) -> str:
    pools = name_pools(language)
    local = f"{rng.choice(pools.first)}.{rng.choice(pools.last)}".lower()
    local = local.translate(str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "ä": "a", "ö": "o", "ü": "u", "é": "e",
                                           "á": "a", "í": "i", "ó": "o", "ú": "u", "ý": "y", "ð": "d", "þ": "th"}))
    local = "".join(c for c in local if c.isascii() and (c.isalnum() or c == "."))
    return f"{local}{rng.randint(1, 99)}@example.{rng.choice(('com', 'org', 'net'))}"


def fake_iban(original: str, rng: random.Random) -> str:
    compact = std_iban.compact(original)
    country = compact[:2]
    for _ in range(1000):
        bban = "".join(
            rng.choice(string.digits) if c.isdigit() else rng.choice(string.ascii_uppercase) for c in compact[4:]
        )
        number = country + "00" + bban
        number = country + std_iban.calc_check_digits(number) + bban
        if std_iban.is_valid(number):
            return _layout_like(original, number)
    raise RuntimeError("no IBAN found")  # pragma: no cover


def _layout_like(original: str, compact: str) -> str:
    """Write ``compact`` with the spaces of ``original``."""
    out = []
    it = iter(compact)
    for ch in original:
        out.append(ch if ch == " " else next(it))
    return "".join(out)


def fake_account(original: str, rng: random.Random) -> str:
    digits = r._digits(original)
    if len(digits) == 11 and std_kontonr.is_valid(digits):
        for _ in range(1000):
            base = _rand_digits(rng, 10)
            for check in "0123456789":
                if std_kontonr.is_valid(base + check):
                    return _reformat(original, base + check)
    return _reformat(original, str(rng.randint(1, 9)) + _rand_digits(rng, len(digits) - 1))


def fake_ip(original: str, rng: random.Random) -> str:
    if ":" in original:
        return f"2001:db8::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"
    net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))  # RFC 5737 documentation ranges
    return f"{net}.{rng.randint(1, 254)}"


def fake_card(original: str, rng: random.Random) -> str:
    digits = r._digits(original)
    body = digits[0] + _rand_digits(rng, len(digits) - 2)
    return _reformat(original, body + luhn.calc_check_digit(body))


DEFAULT_LANGUAGE = "da"
"""The language of a document whose metadata names none (the fakes' names and phone region)."""

# Faker locale of each document language whose names fakes are drawn from
NAME_LOCALES = {"da": "da_DK", "nb": "no_NO", "nn": "no_NO", "no": "no_NO", "sv": "sv_SE", "fi": "fi_FI", "is": "is_IS"}


class NamePools(NamedTuple):
    """Names of one language to draw fakes from: given names by gender (``first``: all) and
    surnames by gender (the same list but for Icelandic ``-son``/``-dóttir``)."""

    first: tuple[str, ...]
    first_male: tuple[str, ...]
    first_female: tuple[str, ...]
    last: tuple[str, ...]
    last_male: tuple[str, ...]
    last_female: tuple[str, ...]


@functools.cache
def name_pools(language: str | None) -> NamePools:
    """The name pools of ``language`` (``da`` for an unknown or missing one)."""
    locale = NAME_LOCALES.get((language or DEFAULT_LANGUAGE).lower().split("-")[0].split("_")[0], NAME_LOCALES[DEFAULT_LANGUAGE])
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    male = tuple(sorted(set(provider.first_names_male)))
    female = tuple(sorted(set(provider.first_names_female) - set(male)))
    male = tuple(n for n in male if n not in set(provider.first_names_female))
    if locale == "is_IS":
        stems = sorted(set(provider.last_names_without_suffix))
        last_male = tuple(f"{stem}son" for stem in stems)
        last_female = tuple(f"{stem}dóttir" for stem in stems)
        last = last_male + last_female
    else:
        last = last_male = last_female = tuple(sorted(set(provider.last_names)))
    return NamePools(male + female, male, female, last, last_male, last_female)


@functools.cache
def given_name_genders() -> dict[str, str]:
    """Given name -> ``"m"`` or ``"f"``, from the gendered lists of every Faker locale the name
    finder knows and the US Census lists; a name on both sides of any list has no entry."""
    from nordpipe.pii.names import INTERNATIONAL_LOCALES, NORDIC_LOCALES

    sides: dict[str, set[str]] = {}
    for locale in NORDIC_LOCALES + INTERNATIONAL_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr, gender in (("first_names_male", "m"), ("first_names_female", "f")):
            for name in getattr(provider, attr, ()) or ():
                sides.setdefault(name, set()).add(gender)
    return {name: next(iter(genders)) for name, genders in sides.items() if len(genders) == 1}


def name_gender(words: list[str]) -> str | None:
    """The gender of a name from its first known given name, or from an Icelandic
    patronymic (``-son``/``-dóttir``); None when unknown."""
    genders = given_name_genders()
    for word in words:
        gender = genders.get(word) or genders.get(word.title())
        if gender is not None:
            return gender
    for word in words:
        lower = word.lower()
        if lower.endswith(("dóttir", "dottir", "dotter")):
            return "f"
        if lower.endswith("son") and len(lower) > 4:
            return "m"
    return None


FAKERS: dict[str, Callable[..., str]] = {
    r.CPR: fake_cpr,
    r.FODSELSNUMMER: fake_fodselsnummer,
    r.PERSONNUMMER: fake_personnummer,
    r.HETU: fake_hetu,
    r.KENNITALA: fake_kennitala,
    r.PHONE: fake_phone,
    r.EMAIL: fake_email,
    r.IBAN: fake_iban,
    r.BANK_ACCOUNT: fake_account,
    r.IP_ADDRESS: fake_ip,
    r.CARD: fake_card,
}


# fakers that take the document language as a third argument
_LANGUAGE_FAKERS = frozenset((r.PHONE, r.EMAIL))


def _normalise(entity: str, value: str) -> str:
    """The identity of a value for consistency: digits for numbers, lower case for e-mails."""
    if entity in (r.EMAIL, r.NAME):
        return value.lower()
    if entity in (r.IBAN, r.HETU):
        return value.replace(" ", "").upper()
    if entity == r.IP_ADDRESS:
        return value.lower()
    return r._digits(value)


class Replacer:
    """Replace spans in one document's text, per-entity mode, consistent fakes.

    Args:
        modes: entity -> ``tag`` or ``fake``; entities not listed use ``default_mode``.
        default_mode: ``tag`` (default) or ``fake``.
        salt: mixed into the per-document random seed of fake values (unkeyed; for tests).
        key: the stage's secret key: the seed is then HMAC-SHA256(key, salt, document id).
    """

    def __init__(self, modes: dict[str, str] | None = None, default_mode: str = "tag", salt: str = "",
                 key: bytes | None = None):
        for mode in [default_mode, *(modes or {}).values()]:
            if mode not in MODES:
                raise ValueError(f"unknown mode {mode!r} (use tag or fake)")
        self.modes = dict(modes or {})
        self.default_mode = default_mode
        self.salt = salt
        self._key = key
        first, last = name_lists(True)
        self._first_names = first
        self._last_names = last

    def mode_for(self, entity: str) -> str:
        if entity != r.NAME and entity not in FAKERS:
            return "tag"  # a user's own entity type (presidio engine): no faker knows its format
        return self.modes.get(entity, self.default_mode)

    def replace(self, text: str, spans: list[Span], doc_id: str = "", language: str | None = None) -> tuple[str, list[str]]:
        """(new text, the replacement written for each span). ``language``: the document's
        language (``da``, ``nb``, ``nn``, ``sv``, ``fi``, ``is``; default ``da``), which fake
        names, e-mail names and phone regions are drawn for."""
        if not spans:
            return text, []
        if self.default_mode == "tag" and "fake" not in self.modes.values():
            # tags only: no random generator, no bookkeeping of originals
            pieces: list[str] = []
            written: list[str] = []
            pos = 0
            for span in spans:
                new = tag_for(span.entity)
                pieces.append(text[pos : span.start])
                pieces.append(new)
                written.append(new)
                pos = span.end
            pieces.append(text[pos:])
            return "".join(pieces), written
        seed = f"{self.salt}\x00{doc_id}"
        if self._key:
            from nordpipe.pii.keys import keyed_hex

            seed = keyed_hex(self._key, "seed", seed, 64)
        rng = random.Random(seed)
        originals: dict[str, set[str]] = {}
        for span in spans:
            originals.setdefault(span.entity, set()).add(_normalise(span.entity, text[span.start : span.end]))
        name_words: set[str] = set()
        if r.NAME in originals:
            for span in spans:
                if span.entity == r.NAME:
                    name_words.update(_name_word_key(w) for w in _split_name(text[span.start : span.end]) if w.strip())
        mapping: dict[tuple[str, str], str] = {}
        word_map: dict[str, str] = {}
        pieces = []
        written = []
        pos = 0
        for span in spans:
            value = text[span.start : span.end]
            if self.mode_for(span.entity) == "tag":
                new = tag_for(span.entity)
            elif span.entity == r.NAME:
                new = self._fake_name(value, rng, word_map, name_words, language)
            else:
                key = (span.entity, _normalise(span.entity, value))
                fake_key = mapping.get(key)
                if fake_key is None:
                    fake_key = self._fresh_fake(span.entity, value, rng, originals.get(span.entity, set()), mapping,
                                                language)
                    mapping[key] = fake_key
                new = _render_like(span.entity, value, fake_key)
            pieces.append(text[pos : span.start])
            pieces.append(new)
            written.append(new)
            pos = span.end
        pieces.append(text[pos:])
        return "".join(pieces), written

    def _fresh_fake(self, entity: str, value: str, rng: random.Random, originals: set[str],
                    mapping: dict[tuple[str, str], str], language: str | None = None) -> str:
        used = {v for (e, _), v in mapping.items() if e == entity}
        faker = FAKERS[entity]
        for _ in range(100):
            fake = faker(value, rng, language) if entity in _LANGUAGE_FAKERS else faker(value, rng)
            norm = _normalise(entity, fake)
            if norm not in originals and norm not in used:
                return norm if entity not in (r.EMAIL, r.IP_ADDRESS) else fake
        raise RuntimeError(f"could not make a fake {entity} different from the originals")  # pragma: no cover

    def _fake_name(self, value: str, rng: random.Random, word_map: dict[str, str], originals: set[str],
                   language: str | None = None) -> str:
        """A fake name for ``value``, word by word: given names from the document language's
        given names of the original's gender (when a list knows it), surnames from its
        surnames; the same original word gets the same fake word in the whole document."""
        pools = name_pools(language)
        pieces = _split_name(value)
        gender = name_gender([p for p in pieces if p.strip() and p not in "- "])
        first_pool = pools.first_male if gender == "m" else pools.first_female if gender == "f" else pools.first
        last_pool = pools.last_male if gender == "m" else pools.last_female if gender == "f" else pools.last
        out = []
        for piece in pieces:
            if not piece.strip() or piece in ("-", " ") or piece.lower() in ("von", "van", "de", "af", "der", "den"):
                out.append(piece)
                continue
            if len(piece) == 2 and piece[1] == ".":
                key = piece
                fake = word_map.get(key)
                if fake is None:
                    letters = [c for c in "ABDEFGHIJKLMNOPRSTUV" if c != piece[0]]
                    fake = word_map[key] = rng.choice(letters) + "."
                out.append(fake)
                continue
            suffix = ""
            core = piece
            if core.endswith(("'", "’")):
                suffix, core = core[-1], core[:-1]
            elif core.endswith("s") and len(core) > 3 and core not in self._first_names and core not in self._last_names \
                    and (core[:-1] in self._first_names or core[:-1] in self._last_names):
                suffix, core = "s", core[:-1]
            key = _name_word_key(core)
            fake = word_map.get(key)
            if fake is None:
                pool = first_pool if (core in self._first_names or core.title() in self._first_names) else last_pool
                for _ in range(100):
                    fake = rng.choice(pool)
                    if _name_word_key(fake) not in originals and fake not in word_map.values():
                        break
                word_map[key] = fake
            if core.isupper() and len(core) > 1:
                fake = fake.upper()
            out.append(fake + suffix)
        return "".join(out)


def _name_word_key(word: str) -> str:
    return word.rstrip("'’").lower()


def _split_name(value: str) -> list[str]:
    """``"Axel Juhl-Jørgensen"`` -> ``["Axel", " ", "Juhl", "-", "Jørgensen"]``."""
    parts: list[str] = []
    current = ""
    for ch in value:
        if ch in " -\u00a0\t\n":
            if current:
                parts.append(current)
                current = ""
            parts.append(ch)
        else:
            current += ch
            if ch == "." and len(current) == 2:
                parts.append(current)
                current = ""
    if current:
        parts.append(current)
    return parts


def _render_like(entity: str, original: str, fake_norm: str) -> str:
    """Write the consistent fake value in the layout of this occurrence."""
    if entity in (r.EMAIL, r.IP_ADDRESS):
        return fake_norm
    if entity in (r.IBAN,):
        return _layout_like(original, fake_norm) if len(original.replace(" ", "")) == len(fake_norm) else fake_norm
    if entity == r.HETU:
        return fake_norm if original[-1].isupper() or original[-1].isdigit() else fake_norm[:-1] + fake_norm[-1].lower()
    if sum(c.isdigit() for c in original) == len(fake_norm):
        return _reformat(original, fake_norm)
    return fake_norm

