"""Seeded sample data: realistic raw dumps of several Nordic datasets in different raw formats.

``generate_sample(root, seed, scale)`` writes, under ``root/raw/``:

| dataset | language | raw format | what it carries |
|---|---|---|---|
| nyheder | da | jsonl.gz (title, body, ISO timestamps, url) | syndicated near-duplicates, personal data |
| forum | nb | csv (RFC 2822 dates) | repeated signatures, keyword spam, personal data |
| web | da, nb, sv | WARC (HTML) | menus and cookie banners, blocked and spam URLs |
| breve | da | folder of .txt files | letters with names, CPR numbers, phones, e-mails |
| wiki | sv | parquet (lists of timestamps) | clean encyclopedic prose, tables of numbers |

plus ``root/datasets/<name>.yaml`` (ingest configs), ``root/blocklist.txt`` (the spam domains it
used) and ``root/manifest.json`` (what was planted where, for tests). Sentences come from the
real Danish and Swedish sentences in ``../shared/data/ud`` when present and from the pool shipped
in ``nordpipe/data/sentences`` otherwise (Norwegian always). ``scale`` multiplies the document
counts; the default writes about 1,500 documents (~3 MB). Same seed, same bytes.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import email.utils
import gzip
import io
import json
import os
import random
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

LANGUAGES = ("da", "nb", "sv")
SPAM_DOMAINS = ("billige-laan-nu.example", "casino-bonus-spil.example", "gratis-gevinst.example")
NEWS_DOMAINS = {"da": "nyhedsavisen.example.dk", "nb": "dagsposten.example.no", "sv": "morgonbladet.example.se"}

MENUS = {
    "da": "Forside | Nyheder | Sport | Kultur | Debat | Kontakt os",
    "nb": "Forsiden | Nyheter | Sport | Kultur | Debatt | Kontakt oss",
    "sv": "Startsida | Nyheter | Sport | Kultur | Debatt | Kontakta oss",
}
COOKIES = {
    "da": "Vi bruger cookies for at forbedre din oplevelse på hjemmesiden. Ved at klikke på Accepter alle giver du samtykke til vores brug af cookies.",
    "nb": "Vi bruker informasjonskapsler for å forbedre opplevelsen din på nettstedet. Ved å klikke Godta alle samtykker du til vår bruk av informasjonskapsler.",
    "sv": "Vi använder kakor för att förbättra din upplevelse på webbplatsen. Genom att klicka på Godkänn alla samtycker du till vår användning av kakor.",
}
FOOTERS = {
    "da": "Copyright Nyhedsavisen A/S. Alle rettigheder forbeholdes. Læs vores privatlivspolitik.",
    "nb": "Opphavsrett Dagsposten AS. Alle rettigheter forbeholdt. Les vår personvernerklæring.",
    "sv": "Upphovsrätt Morgonbladet AB. Alla rättigheter förbehållna. Läs vår integritetspolicy.",
}
SIGNATURES = {"nb": "Mvh en fornøyd bruker av forumet siden 2009"}
SPAM_WORDS = {
    "da": ["billige lån", "hurtige lån", "gratis spins", "bedste casino", "vind nu"],
    "nb": ["billige lån", "raske lån", "gratis spinn", "beste casino", "vinn nå"],
    "sv": ["billiga lån", "snabba lån", "gratis snurr", "bästa casino", "vinn nu"],
}
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco."
)
CODE = "function toggleMenu() {\n  var el = document.getElementById('menu');\n  el.classList.toggle('open');\n}\nwindow.addEventListener('load', toggleMenu);"
PII_TEMPLATES = {
    "da": [
        "Kontakt {name} på {email} eller på telefon {phone}.",
        "Ansøgeren {name} med CPR-nummer {national_id} har fået tilsagn.",
    ],
    "nb": [
        "Ta kontakt med {name} på {email} eller telefon {phone}.",
        "Søkeren {name} med fødselsnummer {national_id} har fått svar.",
    ],
    "sv": [
        "Kontakta {name} på {email} eller telefon {phone}.",
        "Sökanden {name} med personnummer {national_id} har fått besked.",
    ],
}
FAKER_LOCALES = {"da": "da_DK", "nb": "no_NO", "sv": "sv_SE"}


def find_shared() -> Path | None:
    """``../shared`` next to the repository or the working directory (or ``$NORDPIPE_SHARED``;
    ``NORDPIPE_SHARED=none``: none, the shipped sentences only, as in a fresh clone)."""
    if os.environ.get("NORDPIPE_SHARED") == "none":
        return None
    candidates = [os.environ.get("NORDPIPE_SHARED")]
    here = Path(__file__).resolve()
    candidates += [str(p / "shared") for p in list(here.parents)[:5]]
    candidates += [str(Path.cwd().parent / "shared"), str(Path.cwd() / "shared")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "data" / "ud").is_dir():
            return Path(candidate)
    return None


def load_sentences(language: str, shared: Path | None = None) -> list[str]:
    """Real sentences for a language: UD (``../shared``) plus the shipped pool."""
    pool = resources.files("nordpipe.data.sentences").joinpath(f"{language}.txt").read_text(encoding="utf-8")
    sentences = [line.strip() for line in pool.splitlines() if line.strip()]
    ud_file = {"da": "da_ddt-ud-dev.conllu", "sv": "sv_talbanken-ud-dev.conllu"}.get(language)
    if shared is not None and ud_file and (shared / "data" / "ud" / ud_file).exists():
        for line in (shared / "data" / "ud" / ud_file).read_text(encoding="utf-8").splitlines():
            if line.startswith("# text = "):
                text = line[len("# text = ") :].strip()
                if len(text.split()) >= 4:
                    sentences.append(text)
    return sentences


# --------------------------------------------------------------------------------------------
# Personal data with valid check digits (REFERENCE §5)


def danish_cpr(rng: random.Random) -> str:
    """A CPR number issued before 2007 (modulus 11 holds)."""
    weights = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
    while True:
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 60))
        # 7th digit 0-3 means 1900-1999 for every year.
        serial = f"{rng.randrange(0, 4)}{rng.randrange(0, 1000):03d}"
        digits = born.strftime("%d%m%y") + serial
        if sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0:
            return f"{digits[:6]}-{digits[6:]}"


def norwegian_fodselsnummer(rng: random.Random) -> str:
    w1, w2 = (3, 7, 6, 1, 8, 9, 4, 5, 2), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    while True:
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 59))
        base = born.strftime("%d%m%y") + f"{rng.randrange(0, 500):03d}"
        k1 = 11 - sum(int(d) * w for d, w in zip(base, w1, strict=True)) % 11
        k1 = 0 if k1 == 11 else k1
        if k1 == 10:
            continue
        k2 = 11 - sum(int(d) * w for d, w in zip(base + str(k1), w2, strict=True)) % 11
        k2 = 0 if k2 == 11 else k2
        if k2 == 10:
            continue
        return f"{base}{k1}{k2}"


def swedish_personnummer(rng: random.Random) -> str:
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 60))
    base = born.strftime("%y%m%d") + f"{rng.randrange(0, 1000):03d}"
    total = 0
    for i, d in enumerate(base):
        product = int(d) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    check = (10 - total % 10) % 10
    return f"{base[:6]}-{base[6:]}{check}"


def phone(rng: random.Random, language: str) -> str:
    if language == "da":
        digits = f"{rng.randrange(20, 99)}{rng.randrange(0, 10**6):06d}"
        return rng.choice([f"+45 {digits[:2]} {digits[2:4]} {digits[4:6]} {digits[6:]}", f"{digits[:4]} {digits[4:]}"])
    if language == "nb":
        digits = f"{rng.choice([4, 9])}{rng.randrange(0, 10**7):07d}"
        return rng.choice([f"+47 {digits[:3]} {digits[3:5]} {digits[5:]}", f"{digits[:3]} {digits[3:5]} {digits[5:]}"])
    digits = f"7{rng.randrange(0, 10**8):08d}"
    return rng.choice([f"+46 {digits[:2]} {digits[2:5]} {digits[5:7]} {digits[7:]}", f"0{digits[:2]}-{digits[2:5]} {digits[5:7]} {digits[7:]}"])


class _Composer:
    """Builds documents from sentences, with the planted phenomena."""

    def __init__(self, rng: random.Random, shared: Path | None):
        from faker import Faker

        self.rng = rng
        self.sentences = {lang: load_sentences(lang, shared) for lang in LANGUAGES}
        self.names: dict[str, list[str]] = {}
        for lang, locale in FAKER_LOCALES.items():
            fake = Faker(locale)
            fake.seed_instance(rng.randrange(1 << 30))
            self.names[lang] = [f"{fake.first_name()} {fake.last_name()}" for _ in range(200)]
        self.planted: dict[str, list[Any]] = {"pii": [], "near_duplicates": [], "spam_urls": []}

    def paragraph(self, lang: str, sentences: int) -> str:
        return " ".join(self.rng.sample(self.sentences[lang], sentences))

    def prose(self, lang: str, paragraphs: int | None = None) -> str:
        """Paragraphs of 2-4 sentences; no sentence twice in one document while the pool lasts."""
        count = paragraphs or self.rng.randint(4, 8)
        sizes = [self.rng.randint(2, 4) for _ in range(count)]
        pool = self.sentences[lang]
        picked = self.rng.sample(pool, min(len(pool), sum(sizes)))
        while len(picked) < sum(sizes):
            picked += self.rng.sample(pool, min(len(pool), sum(sizes) - len(picked)))
        out, start = [], 0
        for size in sizes:
            out.append(" ".join(picked[start : start + size]))
            start += size
        return "\n\n".join(out)

    def pii_sentence(self, lang: str, doc_id: str) -> str:
        name = self.rng.choice(self.names[lang])
        user = name.lower().replace(" ", ".").encode("ascii", "ignore").decode() or "person"
        national_id = {"da": danish_cpr, "nb": norwegian_fodselsnummer, "sv": swedish_personnummer}[lang](self.rng)
        values = {
            "name": name,
            "email": f"{user}@post.example.{ {'da': 'dk', 'nb': 'no', 'sv': 'se'}[lang] }",
            "phone": phone(self.rng, lang),
            "national_id": national_id,
        }
        template = self.rng.choice(PII_TEMPLATES[lang])
        self.planted["pii"].append({"doc": doc_id, **{k: v for k, v in values.items() if "{" + k + "}" in template}})
        return template.format(**values)

    def near_duplicate(self, text: str) -> str:
        """A syndicated copy: a few words changed and a line added."""
        words = text.split(" ")
        for _ in range(max(1, len(words) // 60)):
            i = self.rng.randrange(len(words))
            words[i] = words[i].upper() if self.rng.random() < 0.5 else words[i] + ","
        return " ".join(words) + "\n\n" + self.rng.choice(["(Opdateret)", "(Oppdatert)", "(Uppdaterad)"])

    def spam(self, lang: str) -> str:
        words = SPAM_WORDS[lang]
        return "\n".join(" ".join(self.rng.choice(words) for _ in range(12)) for _ in range(6))

    def junk(self, lang: str) -> str:
        kind = self.rng.choice(["menu", "lorem", "code", "numbers", "spam"])
        if kind == "menu":
            return "\n".join([MENUS[lang]] * 3 + [COOKIES[lang], FOOTERS[lang]])
        if kind == "lorem":
            return "\n\n".join([LOREM] * 4)
        if kind == "code":
            return CODE
        if kind == "numbers":
            return "\n".join(" | ".join(str(self.rng.randrange(1000, 99999)) for _ in range(6)) for _ in range(15))
        return self.spam(lang)


def _timestamp(rng: random.Random, start_year: int = 2015) -> dt.datetime:
    start = dt.datetime(start_year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2025, 12, 31, tzinfo=dt.UTC)
    return start + dt.timedelta(seconds=rng.randrange(0, int((end - start).total_seconds())))


# --------------------------------------------------------------------------------------------
# Datasets


def _write_nyheder(out: Path, composer: _Composer, rng: random.Random, count: int, files: int) -> None:
    folder = out / "nyheder"
    folder.mkdir(parents=True, exist_ok=True)
    originals: list[tuple[str, str, str]] = []
    n = 0
    for f in range(files):
        # the remainder goes to the first files, so the dump holds exactly ``count`` articles
        per_file = count // files + (1 if f < count % files else 0)
        with gzip.GzipFile(folder / f"nyheder-{f:03d}.jsonl.gz", "wb", compresslevel=6, mtime=0) as handle:
            buffer = []
            for _ in range(per_file):
                n += 1
                doc_id = f"art-{n:07d}"
                title = composer.paragraph("da", 1)
                body = composer.prose("da")
                if rng.random() < 0.08:
                    body += "\n\n" + composer.pii_sentence("da", doc_id)
                if originals and rng.random() < 0.06:
                    src_id, src_title, src_body = rng.choice(originals)
                    title, body = src_title, composer.near_duplicate(src_body)
                    composer.planted["near_duplicates"].append({"doc": doc_id, "copy_of": src_id})
                elif len(originals) < 2000:
                    originals.append((doc_id, title, body))
                published = _timestamp(rng)
                record = {
                    "id": doc_id,
                    "title": title,
                    "body": body,
                    "published": published.isoformat().replace("+00:00", "Z"),
                    "url": f"https://{NEWS_DOMAINS['da']}/artikel/{n}",
                    "section": rng.choice(["indland", "udland", "kultur", "sport"]),
                }
                buffer.append(orjson.dumps(record) + b"\n")
            handle.write(b"".join(buffer))


def _part(n: int, count: int, files: int) -> int:
    """Which of ``files`` parts document ``n`` (1-based) of ``count`` goes to (contiguous runs)."""
    return (n - 1) * files // count


def _write_forum(out: Path, composer: _Composer, rng: random.Random, count: int, files: int = 1) -> None:
    folder = out / "forum"
    folder.mkdir(parents=True, exist_ok=True)
    handles = [open(folder / ("forum.csv" if files == 1 else f"forum-{k:03d}.csv"), "w", newline="", encoding="utf-8")
               for k in range(files)]
    writers = [csv.writer(handle) for handle in handles]
    with contextlib.ExitStack() as stack:
        for handle in handles:
            stack.enter_context(handle)
        for writer in writers:
            writer.writerow(["post_id", "text", "created", "url"])
        for n in range(1, count + 1):
            writer = writers[_part(n, count, files)]
            doc_id = f"post-{n}"
            if rng.random() < 0.05:
                text = composer.spam("nb")
                url = f"https://{rng.choice(SPAM_DOMAINS)}/innlegg/{n}"
                composer.planted["spam_urls"].append({"doc": doc_id, "url": url})
            else:
                text = composer.prose("nb", rng.randint(3, 6))
                if rng.random() < 0.1:
                    text += "\n\n" + composer.pii_sentence("nb", doc_id)
                text += "\n\n" + SIGNATURES["nb"]
                url = f"https://forum.example.no/innlegg/{n}"
            created = email.utils.format_datetime(_timestamp(rng, 2009))
            writer.writerow([doc_id, text, created, url])


def _html_page(title: str, body: str, lang: str) -> bytes:
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head><body>'
        f"<nav>{MENUS[lang]}</nav><div class=\"cookie-banner\">{COOKIES[lang]}</div>"
        f"<main><article><h1>{title}</h1>{paragraphs}</article></main>"
        f"<footer>{FOOTERS[lang]}</footer></body></html>"
    ).encode()


def _write_web(out: Path, composer: _Composer, rng: random.Random, count: int, files: int = 1) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder = out / "web"
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        writers = [WARCWriter(stack.enter_context(open(folder / f"crawl-{k:03d}.warc.gz", "wb")), gzip=True) for k in range(files)]
        for n in range(1, count + 1):
            writer = writers[_part(n, count, files)]
            lang = LANGUAGES[n % 3]
            doc_id = f"web-{n}"
            if rng.random() < 0.06:
                url = f"https://{rng.choice(SPAM_DOMAINS)}/side/{n}"
                body = composer.spam(lang)
                composer.planted["spam_urls"].append({"doc": doc_id, "url": url})
            elif rng.random() < 0.08:
                url = f"https://www.example-{lang}-{n % 17}.{ {'da': 'dk', 'nb': 'no', 'sv': 'se'}[lang] }/side/{n}"
                body = composer.junk(lang)
            else:
                url = f"https://{NEWS_DOMAINS[lang]}/{n}"
                body = composer.prose(lang)
            title = composer.paragraph(lang, 1)[:80]
            when = _timestamp(rng, 2021)
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(_html_page(title, body, lang)),
                http_headers=http,
                warc_headers_dict={"WARC-Date": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "WARC-Record-ID": f"<urn:uuid:{rng.getrandbits(128):032x}>"},
            )
            writer.write_record(record)


def _write_breve(out: Path, composer: _Composer, rng: random.Random, count: int, files: int = 1) -> None:
    folders = [out / "breve"] if files == 1 else [out / "breve" / f"part-{k:03d}" for k in range(files)]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):
        folder = folders[_part(n, count, files)]
        doc_id = f"brev-{n:05d}"
        name = rng.choice(composer.names["da"])
        text = f"Kære {name.split()[0]}\n\n{composer.prose('da', rng.randint(2, 4))}\n\n{composer.pii_sentence('da', doc_id)}\n\nMed venlig hilsen\n{rng.choice(composer.names['da'])}"
        (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")


def _write_wiki(out: Path, composer: _Composer, rng: random.Random, count: int, files: int = 1) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = out / "wiki"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(1, count + 1):
        text = composer.prose("sv", rng.randint(5, 9))
        if rng.random() < 0.05:
            text = composer.junk("sv")
        edits = sorted(_timestamp(rng, 2012) for _ in range(rng.randint(1, 3)))
        rows.append({"id": f"sv-wiki-{n}", "text": text, "timestamps": [e.isoformat() for e in edits], "title": f"Artikel {n}"})
    for k in range(files):
        part = [row for n, row in enumerate(rows, start=1) if _part(n, count, files) == k]
        pq.write_table(pa.Table.from_pylist(part), folder / ("wiki.parquet" if files == 1 else f"wiki-{k:03d}.parquet"))


DATASET_CONFIGS: dict[str, dict[str, Any]] = {
    "nyheder": {"pretty_name": "Nyheder (sample news)", "language": ["da"], "license": "cc0-1.0",
                "text_field": ["title", "body"], "id_field": "id", "created_field": "published", "url_field": "url"},
    "forum": {"pretty_name": "Forum (sample posts)", "language": ["nb"], "license": "other",
              "license_name": "Sample data generated by nordpipe", "id_field": "post_id", "created_field": "created"},
    "web": {"pretty_name": "Web (sample crawl)", "language": ["da", "nb", "sv"], "license": "other",
            "license_name": "Sample data generated by nordpipe"},
    "breve": {"pretty_name": "Breve (sample letters)", "language": ["da"], "license": "cc0-1.0", "created": "2020-01-01, 2023-12-31"},
    "wiki": {"pretty_name": "Wiki (sample encyclopedia)", "language": ["sv"], "license": "cc-by-sa-4.0",
             "id_field": "id", "created_field": "timestamps"},
}


def generate_sample(root: str | Path, seed: int = 42, scale: float = 1.0, shared: Path | str | None = "auto",
                    files: int = 1) -> dict[str, Any]:
    """Write the sample raw dumps under ``root``; return the manifest (also ``root/manifest.json``).

    ``files`` splits the forum, web and wiki dumps into that many files each and the letters into
    that many folders, so large samples can be read by parallel tasks (the news dump is split by
    ``scale``). The documents are the same for any ``files``.
    """
    root = Path(root)
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    shared_dir = find_shared() if shared == "auto" else (Path(shared) if shared else None)
    rng = random.Random(seed)
    composer = _Composer(rng, shared_dir)
    counts = {
        "nyheder": max(10, int(600 * scale)),
        "forum": max(10, int(300 * scale)),
        "web": max(10, int(300 * scale)),
        "breve": max(5, int(60 * scale)),
        "wiki": max(10, int(240 * scale)),
    }
    _write_nyheder(raw, composer, rng, counts["nyheder"], files=max(2, min(64, int(4 * scale))))
    _write_forum(raw, composer, rng, counts["forum"], files)
    _write_web(raw, composer, rng, counts["web"], files)
    _write_breve(raw, composer, rng, counts["breve"], files)
    _write_wiki(raw, composer, rng, counts["wiki"], files)
    configs = root / "datasets"
    configs.mkdir(exist_ok=True)
    import yaml

    for name, config in DATASET_CONFIGS.items():
        (configs / f"{name}.yaml").write_text(yaml.safe_dump({"dataset": name, **config}, sort_keys=False, allow_unicode=True))
    (root / "blocklist.txt").write_text("# spam domains planted by nordpipe's sample generator\n" + "\n".join(SPAM_DOMAINS) + "\n")
    manifest = {"seed": seed, "scale": scale, "files": files, "used_shared": shared_dir is not None, "counts": counts, **composer.planted}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def generate_jsonl_corpus(path: str | Path, target_bytes: int, seed: int = 0, files: int = 8, shared: Path | str | None = "auto") -> Iterator[Path]:
    """Standard-format-like raw jsonl.gz files totalling about ``target_bytes`` uncompressed (benchmarks)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shared_dir = find_shared() if shared == "auto" else (Path(shared) if shared else None)
    rng = random.Random(seed)
    composer = _Composer(rng, shared_dir)
    per_file = target_bytes // files
    n = 0
    for f in range(files):
        file = path / f"part-{f:04d}.jsonl.gz"
        written = 0
        with gzip.GzipFile(file, "wb", compresslevel=1, mtime=0) as handle:
            buffer: list[bytes] = []
            while written < per_file:
                n += 1
                lang = LANGUAGES[n % 3]
                line = orjson.dumps({
                    "id": f"doc-{n}", "text": composer.prose(lang), "created": _timestamp(rng).isoformat(),
                    "url": f"https://{NEWS_DOMAINS[lang]}/{n}",
                }) + b"\n"
                buffer.append(line)
                written += len(line)
                if len(buffer) >= 2000:
                    handle.write(b"".join(buffer))
                    buffer.clear()
            handle.write(b"".join(buffer))
        yield file
