"""Seeded, labelled test documents for the PII stage (tests and benchmark).

Danish, Norwegian and Swedish sentences with personal data embedded in the usual written
forms: national identifiers with valid check digits (computed here, checked with
python-stdnum by the tests) and with wrong check digits, phones with and without country code
and spacing, e-mails, IBANs, cards, IPs, and the look-alikes that must survive: dates, prices,
years, postal codes and case numbers. Every inserted item is recorded with its offsets and
whether it must be replaced.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.dk import cpr as std_cpr
from stdnum.no import fodselsnummer as std_fnr

from nordpipe.pii import recognizers as r


@dataclass
class Item:
    start: int
    end: int
    kind: str  # entity type, or "KEEP:<what>" for a look-alike that must survive
    value: str

    @property
    def must_replace(self) -> bool:
        return not self.kind.startswith("KEEP:")


@dataclass
class SyntheticDoc:
    id: str
    language: str
    text: str
    items: list[Item] = field(default_factory=list)


def _date(rng: random.Random) -> dt.date:
    return dt.date.fromordinal(rng.randint(dt.date(1940, 1, 1).toordinal(), dt.date(2005, 12, 31).toordinal()))


def valid_cpr(rng: random.Random) -> str:
    while True:
        d = _date(rng)
        if d.year >= 2000:
            continue
        number = d.strftime("%d%m%y") + str(rng.randint(0, 3)) + "".join(rng.choice("0123456789") for _ in range(3))
        if std_cpr.checksum(number) == 0:
            return number


def new_cpr(rng: random.Random) -> str:
    """A CPR number issued after 2007-10-01 that fails modulus 11 (valid; needs context)."""
    while True:
        d = dt.date.fromordinal(rng.randint(dt.date(2008, 1, 1).toordinal(), dt.date(2020, 12, 31).toordinal()))
        number = d.strftime("%d%m%y") + str(rng.randint(4, 9)) + "".join(rng.choice("0123456789") for _ in range(3))
        if std_cpr.checksum(number) != 0 and r.validate_cpr(number) == r.WEAK:
            return number


def invalid_cpr(rng: random.Random) -> str:
    """A real date but modulus 11 fails: not a CPR number without context."""
    while True:
        number = valid_cpr(rng)
        bad = number[:9] + str((int(number[9]) + rng.randint(1, 9)) % 10)
        if std_cpr.checksum(bad) != 0 and r.validate_personnummer(bad) == r.REJECT and r.validate_kennitala(bad) == r.REJECT:
            return bad


def valid_fnr(rng: random.Random, d_number: bool = False) -> str:
    while True:
        d = _date(rng)
        if d.year >= 2000:
            continue
        base = f"{d.day + (40 if d_number else 0):02d}{d:%m%y}{rng.randint(0, 499):03d}"
        k1 = std_fnr.calc_check_digit1(base)
        if len(k1) != 1:
            continue
        k2 = std_fnr.calc_check_digit2(base + k1)
        if len(k2) == 1:
            return base + k1 + k2


def invalid_fnr(rng: random.Random) -> str:
    number = valid_fnr(rng)
    return number[:10] + str((int(number[10]) + rng.randint(1, 9)) % 10)


def valid_pnr(rng: random.Random, coordination: bool = False) -> str:
    d = _date(rng)
    body = f"{d:%y%m}{d.day + (60 if coordination else 0):02d}{rng.randint(0, 999):03d}"
    return body + luhn.calc_check_digit(body)


def invalid_pnr(rng: random.Random) -> str:
    while True:
        number = valid_pnr(rng)
        bad = number[:9] + str((int(number[9]) + rng.randint(1, 9)) % 10)
        if r.validate_kennitala(bad) == r.REJECT and r.validate_cpr(bad) != r.STRONG:
            return bad


def _allocated(rng: random.Random, region: str, first: tuple[str, ...], length: int = 8) -> str:
    """A national number in a range the numbering plan allocates (phonenumbers' metadata):
    unallocated ranges are not anybody's phone number."""
    while True:
        number = rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(length - 1))
        if phonenumbers.is_valid_number(phonenumbers.parse(number, region)):
            return number


def dk_phone(rng: random.Random) -> str:
    number = _allocated(rng, "DK", ("2", "3", "4", "5", "6", "7", "8", "9"))
    form = rng.randrange(5)
    if form == 0:
        return number
    if form == 1:
        return " ".join(number[i : i + 2] for i in range(0, 8, 2))
    if form == 2:
        return "+45 " + " ".join(number[i : i + 2] for i in range(0, 8, 2))
    if form == 3:
        return "+45" + number
    return number[:4] + " " + number[4:]


def no_phone(rng: random.Random) -> str:
    number = _allocated(rng, "NO", ("4", "9", "2", "5"))
    form = rng.randrange(4)
    if form == 0:
        return f"{number[:3]} {number[3:5]} {number[5:]}"
    if form == 1:
        return "+47 " + f"{number[:3]} {number[3:5]} {number[5:]}"
    if form == 2:
        return "0047 " + " ".join(number[i : i + 2] for i in range(0, 8, 2))
    return number


def se_phone(rng: random.Random) -> str:
    rest = "".join(rng.choice("0123456789") for _ in range(7))
    mobile = "07" + rng.choice("0236") + rest
    form = rng.randrange(5)
    if form == 0:
        return f"{mobile[:3]}-{mobile[3:6]} {mobile[6:8]} {mobile[8:]}"
    if form == 1:
        return f"+46 {mobile[1:3]} {mobile[3:6]} {mobile[6:8]} {mobile[8:]}"
    if form == 2:
        return mobile
    if form == 3:
        return f"08-{rest[:3]} {rest[3:5]} {rest[5:]}"
    return f"+46 8 {rest[:3]} {rest[3:5]} {rest[5:]}"


def card(rng: random.Random) -> str:
    body = rng.choice(("4", "5")) + "".join(rng.choice("0123456789") for _ in range(14))
    number = body + luhn.calc_check_digit(body)
    return " ".join(number[i : i + 4] for i in range(0, 16, 4)) if rng.random() < 0.7 else number


def iban(rng: random.Random, country: str) -> str:
    length = {"DK": 18, "NO": 15, "SE": 24}[country]
    while True:
        bban = "".join(rng.choice("0123456789") for _ in range(length - 4))
        number = country + std_iban.calc_check_digits(country + "00" + bban) + bban
        if std_iban.is_valid(number):
            return std_iban.format(number)


FIRST = {"da": ["Mette", "Lars", "Søren", "Anne", "Jens", "Kirsten", "Henrik", "Camilla"],
         "nb": ["Kari", "Ola", "Ingrid", "Lars", "Sigrid", "Bjørn"],
         "sv": ["Anna", "Erik", "Karin", "Lars", "Maria", "Johan"]}
LAST = {"da": ["Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Kristensen"],
        "nb": ["Hansen", "Johansen", "Olsen", "Larsen", "Berg", "Haugen"],
        "sv": ["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson"]}

TEMPLATES = {
    "da": {
        "CPR": ["Borgerens CPR-nummer er {v}.", "Oplys venligst cpr.nr. {v} ved henvendelse.", "Sagen vedrører {v}, som er registreret i kommunen."],
        "CPR_NEW": ["Barnets CPR-nummer er {v}.", "Husk at oplyse cpr {v} på blanketten."],
        "CPR_BAD": ["Nummeret {v} stod på sedlen.", "Varenummer {v} er udsolgt."],
        "PHONE": ["Ring til os på {v} i åbningstiden.", "Du kan kontakte kundeservice på tlf. {v}.", "Skriv en sms til {v}, hvis du er forsinket."],
        "EMAIL": ["Send ansøgningen til {v} senest fredag.", "Spørgsmål kan sendes til {v}."],
        "IBAN": ["Beløbet overføres til IBAN {v}."],
        "CARD": ["Der blev betalt med kortnummer {v}."],
        "IP": ["Forespørgslen kom fra IP-adressen {v}."],
        "NAME": ["{v} var mødt op på rådhuset.", "Formanden, {v}, takkede for fremmødet."],
        "KEEP": [("Mødet blev holdt den {v}.", "date"), ("Huset blev solgt for {v} kr.", "price"), ("I {v} steg ledigheden.", "year"),
                 ("Adressen er Nørregade 12, {v} København K.", "postal"), ("Sagsnr. {v} blev afsluttet.", "case"),
                 ("Journalnummer {v} er vedlagt.", "case")],
        "FILLER": ["Kommunen har besluttet at bygge en ny skole.", "Vejret var godt, og mange gik en tur ved havnen.",
                   "Der er lagt op til en længere debat om sagen i byrådet.", "Børnene legede i parken hele eftermiddagen."],
    },
    "nb": {
        "FNR": ["Fødselsnummeret hans er {v}.", "Oppgi fødselsnummer {v} i skjemaet.", "Pasienten med nummer {v} ble innlagt."],
        "FNR_BAD": ["Koden {v} var feil."],
        "PHONE": ["Ring oss på {v} for mer informasjon.", "Du når henne på mobil {v}."],
        "EMAIL": ["Send e-post til {v}."],
        "IBAN": ["Pengene settes inn på {v}."],
        "NAME": ["{v} vant valget i kommunen."],
        "KEEP": [("Møtet var {v}.", "date"), ("Leiligheten kostet {v} kr.", "price"), ("Saksnummer {v} er behandlet.", "case")],
        "FILLER": ["Det har vært en kald vinter i hele landet.", "Mange reiser på hytta i påsken.", "Kommunen skal bygge ny barnehage."],
    },
    "sv": {
        "PNR": ["Hennes personnummer är {v}.", "Ange personnummer {v} vid inloggning.", "Han har samordningsnummer {v}."],
        "PNR_BAD": ["Ordernummer {v} har skickats."],
        "PHONE": ["Ring oss på {v} om du har frågor.", "Du når mig på telefon {v}."],
        "EMAIL": ["Mejla {v} för att anmäla dig."],
        "IBAN": ["Betala till {v}."],
        "NAME": ["{v} blev vald till ordförande."],
        "KEEP": [("Mötet hölls den {v}.", "date"), ("Huset såldes för {v} kr.", "price"), ("Ärendenummer {v} avslutades.", "case")],
        "FILLER": ["Det var en solig dag i Stockholm.", "Regeringen presenterade budgeten i går.", "Många barn spelar fotboll på sommaren."],
    },
}


def _keep_value(rng: random.Random, what: str) -> str:
    if what == "date":
        d = _date(rng)
        return rng.choice((f"{d:%d.%m.%Y}", f"{d:%d-%m-%Y}", f"{d:%Y-%m-%d}", f"{d.day}. {['januar', 'marts', 'juni'][d.month % 3]} {d.year}"))
    if what == "price":
        return rng.choice((f"{rng.randint(1, 999)}.{rng.randint(0, 999):03d},00", f"{rng.randint(1, 99)} {rng.randint(0, 999):03d}",
                           f"{rng.randint(1, 9)}.{rng.randint(0, 999):03d}.{rng.randint(0, 999):03d}"))
    if what == "year":
        return str(rng.randint(1950, 2024))
    if what == "postal":
        return str(rng.randint(1000, 9990))
    # case numbers
    return rng.choice((f"{rng.randint(2015, 2024)}-{rng.randint(1000, 99999)}", f"{rng.randint(10, 99)}/{rng.randint(10000, 99999)}",
                       f"{rng.randint(2015, 2024)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"))


def _value(rng: random.Random, kind: str, language: str) -> tuple[str, str]:
    """(value, entity or KEEP:...)"""
    if kind == "CPR":
        n = valid_cpr(rng)
        return rng.choice((f"{n[:6]}-{n[6:]}", n, f"{n[:6]} {n[6:]}")), r.CPR
    if kind == "CPR_NEW":
        n = new_cpr(rng)
        return f"{n[:6]}-{n[6:]}", r.CPR
    if kind == "CPR_BAD":
        n = invalid_cpr(rng)
        return f"{n[:6]}-{n[6:]}", "KEEP:invalid_cpr"
    if kind == "FNR":
        n = valid_fnr(rng, d_number=rng.random() < 0.2)
        return rng.choice((n, f"{n[:6]} {n[6:]}")), r.FODSELSNUMMER
    if kind == "FNR_BAD":
        return invalid_fnr(rng), "KEEP:invalid_fnr"
    if kind == "PNR":
        n = valid_pnr(rng, coordination=rng.random() < 0.2)
        return rng.choice((f"{n[:6]}-{n[6:]}", n, f"19{n[:6]}-{n[6:]}" if int(n[:2]) > 24 else f"{n[:6]}-{n[6:]}")), r.PERSONNUMMER
    if kind == "PNR_BAD":
        n = invalid_pnr(rng)
        return f"{n[:6]}-{n[6:]}", "KEEP:invalid_pnr"
    if kind == "PHONE":
        return {"da": dk_phone, "nb": no_phone, "sv": se_phone}[language](rng), r.PHONE
    if kind == "EMAIL":
        first = rng.choice(FIRST[language]).lower().replace("ø", "o").replace("ö", "o")
        return f"{first}.{rng.choice(LAST[language]).lower()}@{rng.choice(('firma', 'post', 'mail'))}.{rng.choice(('dk', 'no', 'se', 'com'))}", r.EMAIL
    if kind == "IBAN":
        return iban(rng, {"da": "DK", "nb": "NO", "sv": "SE"}[language]), r.IBAN
    if kind == "CARD":
        return card(rng), r.CARD
    if kind == "IP":
        return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", r.IP_ADDRESS
    if kind == "NAME":
        return f"{rng.choice(FIRST[language])} {rng.choice(LAST[language])}", r.NAME
    raise ValueError(kind)


def make_documents(count: int, seed: int = 0, sentences_per_doc: int = 12, filler: list[str] | None = None,
                   labelled_share: float = 0.55) -> list[SyntheticDoc]:
    """``count`` documents cycling through Danish, Norwegian and Swedish. ``labelled_share`` of
    the sentences carry personal data or a look-alike that must stay (4 in 11 of them
    look-alikes), the rest is filler (0.55: PII-dense test text; ~0.05 is closer to prose)."""
    rng = random.Random(seed)
    docs = []
    languages = ("da", "nb", "sv")
    for i in range(count):
        language = languages[i % 3]
        templates = TEMPLATES[language]
        kinds = [k for k in templates if k not in ("KEEP", "FILLER")]
        text = ""
        items: list[Item] = []
        for _ in range(sentences_per_doc):
            roll = rng.random()
            if roll < 1 - labelled_share:
                sentence = rng.choice(filler) if filler else rng.choice(templates["FILLER"])
                text += sentence + " "
                continue
            if roll < 1 - labelled_share * 7 / 11:
                template, what = rng.choice(templates["KEEP"])
                value, kind = _keep_value(rng, what), f"KEEP:{what}"
            else:
                kind_name = rng.choice(kinds)
                template = rng.choice(templates[kind_name])
                value, kind = _value(rng, kind_name, language)
            before, after = template.split("{v}")
            start = len(text) + len(before)
            text += before + value + after + " "
            items.append(Item(start, start + len(value), kind, value))
        docs.append(SyntheticDoc(f"doc-{seed}-{i}", language, text.strip(), items))
    return docs
