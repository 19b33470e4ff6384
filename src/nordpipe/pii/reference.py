"""The validators of ``recognizers`` written plainly with the libraries: the reference.

nordpipe's validators (``recognizers.validate_*``) decide the common cases with fast paths
(the check-digit and date rules in place, phonenumbers' metadata patterns matched directly,
IBAN layouts cached per country, e-mail domains cached). The functions here make the same
decisions by calling python-stdnum, phonenumbers and tldextract on every candidate, the way a
presidio recognizer's ``validate_result`` would. The tests check that both grade the same, and
the benchmark runs presidio with these (``presidio.offline_analyzer(validators="library")``).

``REFERENCE_VALIDATORS`` maps a ``PatternSpec.name`` to its reference validator; specs whose
validator already is a plain library call (Norwegian account, IP) are not listed.
"""

from __future__ import annotations

from collections.abc import Callable

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.fi import hetu as std_hetu
from stdnum.is_ import kennitala as std_kennitala
from stdnum.no import fodselsnummer as std_fnr
from stdnum.se import personnummer as std_personnummer

from nordpipe.pii.recognizers import REJECT, STRONG, WEAK, _digits, _tld_extractor, grade_cpr_with_stdnum, grade_phone


def cpr(value: str) -> int:
    """Danish CPR with ``stdnum.dk.cpr``: a past birth date; modulus 11 makes it STRONG."""
    number = _digits(value)
    return grade_cpr_with_stdnum(number) if len(number) == 10 else REJECT


def fodselsnummer(value: str) -> int:
    """Norwegian fødselsnummer, D- and H-number with ``stdnum.no.fodselsnummer``."""
    return STRONG if std_fnr.is_valid(_digits(value)) else REJECT


def personnummer(value: str) -> int:
    """Swedish personnummer and samordningsnummer with ``stdnum.se.personnummer``: the Luhn digit
    over the ten digits as written, the birth date from stdnum (a samordningsnummer's day has 60
    added, which stdnum does not know: it is taken off before the date is read)."""
    number = _digits(value)
    if len(number) not in (10, 12) or (len(number) == 12 and number[:2] not in ("18", "19", "20")):
        return REJECT
    if not luhn.is_valid(number[-10:]):
        return REJECT
    day = int(number[-6:-4])
    if day > 60:
        number = f"{number[:-6]}{day - 60:02d}{number[-4:]}"
    try:
        std_personnummer.get_birth_date(f"{number[:-4]}-{number[-4:]}")
    except Exception:
        return REJECT
    return STRONG


def _national_ok(national: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(national, region))
    except phonenumbers.NumberParseException:
        return False


def _international_ok(raw: str, digits: str) -> bool:
    full = digits[2:] if raw.startswith("00") else digits
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + full if raw.startswith("00") else raw, None))
    except phonenumbers.NumberParseException:
        return False


def phone(value: str) -> int:
    """The same phone rules (groupings, dates and years rejected) with phonenumbers' own
    ``parse`` + ``is_valid_number`` for every candidate, uncached."""
    return grade_phone(value, _national_ok, _international_ok)


def email(value: str) -> int:
    """A domain under a known public suffix, one tldextract call per address (as presidio's
    ``EmailRecognizer`` does)."""
    return STRONG if _tld_extractor()(value.rsplit("@", 1)[-1]).fqdn else REJECT


def iban(value: str) -> int:
    """``stdnum.iban.is_valid`` (mod 97, the country's BBAN layout, national checks)."""
    return STRONG if std_iban.is_valid(value) else REJECT


def hetu(value: str) -> int:
    """Finnish HETU with ``stdnum.fi.hetu`` (temporary numbers allowed); the CPR-shaped
    ``DDMMYY-NNNC`` form with a digit check character is WEAK."""
    if not std_hetu.is_valid(value.upper(), allow_temporary=True):
        return REJECT
    return WEAK if value[6] == "-" and value[-1].isdigit() else STRONG


def kennitala(value: str) -> int:
    """Icelandic kennitala of a person (day below 32, century digit 8, 9 or 0) with
    ``stdnum.is_.kennitala``."""
    number = _digits(value)
    if len(number) != 10 or int(number[0:2]) > 31 or number[9] not in "890":
        return REJECT
    return STRONG if std_kennitala.is_valid(number) else REJECT


def card(value: str) -> int:
    """Payment card: 13-19 digits starting 2-6 with a valid Luhn digit (``stdnum.luhn``)."""
    number = _digits(value)
    if not 13 <= len(number) <= 19 or number[0] not in "23456":
        return REJECT
    return STRONG if luhn.is_valid(number) else REJECT


REFERENCE_VALIDATORS: dict[str, Callable[[str], int]] = {
    "dk_cpr": cpr,
    "no_fodselsnummer": fodselsnummer,
    "se_personnummer": personnummer,
    "fi_hetu": hetu,
    "is_kennitala": kennitala,
    "phone": phone,
    "email": email,
    "iban": iban,
    "card": card,
}
