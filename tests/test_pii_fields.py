"""Personal data outside ``text`` (metadata, URLs, ids, file names) and the PII stage's secrets.

Real CLI subprocesses throughout: documents carrying CPR numbers, e-mail addresses, phone
numbers and names in their text, metadata (author, byline, title, nested objects), URL paths,
query strings and fragments (percent-encoded too), ids and raw file names go through the whole
chain (ingest -> filter urls -> filter quality -> dedup lines -> dedup docs -> pii -> tokenize),
the exports, ``nordpipe trace`` and ``nordpipe report``; then every file under every output
after the PII stage is read (decompressed, parquet rows, token shards decoded with the
tokenizer of the manifest) and searched for each original value.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from nordpipe.documents import iter_document_lines

# --------------------------------------------------------------------------------------------
# The personal data planted, and where

CPR = "211062-5629"
CPR_IN_ID = "2110625629"
EMAIL_TEXT = "jens.hansen@firma.dk"
EMAIL_PATH = "mette.kjaer@post.dk"
EMAIL_QUERY = "ole.sorensen@mail.dk"
EMAIL_FRAGMENT = "anne.berg@net.dk"
EMAIL_FILE = "peter.nielsen@home.dk"
EMAIL_NESTED = "kirsten.holm@kontor.dk"
PHONE_TEXT = "+45 20 12 34 56"
PHONE_NESTED = "20 12 34 56"
AUTHOR = "Jens Hansen"
BYLINE = "Karen Margrethe Olsen"
TITLE_NAME = "Mette Frederiksen"

ORIGINALS = [CPR, CPR_IN_ID, EMAIL_TEXT, EMAIL_PATH, EMAIL_QUERY, EMAIL_FRAGMENT, EMAIL_FILE, EMAIL_NESTED,
             PHONE_NESTED, AUTHOR, BYLINE, TITLE_NAME]
"""Each value, as written and (for the addresses) percent-encoded, must appear in no output."""


def _forms(value: str) -> set[str]:
    return {value, value.lower(), quote(value, safe=""), quote(value), value.replace(" ", "+"),
            value.replace(" ", "%20")}


SENTENCES = [
    "Kommunen har besluttet at bygge en ny skole i den nordlige del af byen.",
    "Borgerne kan komme med deres forslag til planen frem til udgangen af marts.",
    "Det nye byggeri skal efter planen stå færdigt om tre år, hvis alt går vel.",
    "Mange forældre er glade for, at der endelig sker noget i deres område.",
    "Der bliver også plads til en idrætshal og et bibliotek i den nye bygning.",
    "Prisen for hele projektet er anslået til omkring to hundrede millioner kroner.",
    "Byrådet vil holde et borgermøde i rådhusets store sal i næste måned.",
    "Flere lokale foreninger har allerede meldt sig som brugere af de nye lokaler.",
    "Trafikken omkring skolen skal løses med nye cykelstier og en bedre vej.",
    "Naboerne har dog udtrykt bekymring for støj i den lange byggeperiode.",
    "Arkitekterne har lagt vægt på lys, luft og grønne arealer omkring bygningen.",
    "Skolens ledelse glæder sig til at tage de nye rammer i brug sammen med eleverne.",
    "En arbejdsgruppe med lærere og forældre har været med til at forme planerne.",
    "Det gamle skolebyggeri bliver revet ned, når eleverne er flyttet ind.",
    "Kommunen forventer, at flere familier vil flytte til området de kommende år.",
    "Der er sat penge af til både legepladser og en ny sportsplads ved skolen.",
]


def _text(rng: random.Random, pii_sentence: str) -> str:
    picked = rng.sample(SENTENCES, 9)
    picked.insert(3, pii_sentence)
    return " ".join(picked)


def _raw_records() -> list[dict]:
    rng = random.Random(7)
    records = []
    for n in range(8):
        pii = [f"Skriv til {EMAIL_TEXT} eller ring på {PHONE_TEXT}, sagde {AUTHOR} i går.",
               f"Hans cpr-nummer {CPR} stod på brevet, som {TITLE_NAME} fik.",
               f"Formanden {BYLINE} kan kontaktes på telefon {PHONE_TEXT} hele ugen."][n % 3]
        record = {
            "text": _text(rng, pii),
            "created": "2024-03-0" + str(1 + n % 9),
            "url": [f"https://eksempel.dk/brugere/{EMAIL_PATH}/side-{n}",
                    f"https://eksempel.dk/kontakt?email={quote(EMAIL_QUERY)}&side={n}",
                    f"https://eksempel.dk/artikel-{n}#kontakt={EMAIL_FRAGMENT}"][n % 3],
            "author": AUTHOR,
            "byline": f"Af {BYLINE}",
            "title": f"Interview med {TITLE_NAME} nummer {n}",
            "license": "cc-by-4.0",
            "extra": {"contact": {"email": EMAIL_NESTED, "phones": [PHONE_NESTED]}, "seen": n},
        }
        if n % 4 == 1:
            record["file"] = f"scans/{EMAIL_TEXT}/brev-{n}.pdf"  # a raw file name the source recorded
        records.append(record)
    return records


def _write_raw(folder: Path) -> Path:
    """Three raw files; the ids ingest makes from the file names of two hold an e-mail address
    and a CPR number."""
    folder.mkdir(parents=True)
    records = _raw_records()
    for name, part in (("dump", records[:4]), (EMAIL_FILE, records[4:6]), (f"kunde-{CPR_IN_ID}", records[6:])):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for record in part:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return folder


def _key(tmp_path: Path, mode: int = 0o600, value: bytes = b"test-key-0123456789abcdef-not-a-real-secret") -> Path:
    path = tmp_path / "keys" / "pii.key"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(value + b"\n")
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------------------------
# Reading every file under an output


def _tokenized_texts(folder: Path) -> Iterator[str]:
    from nordpipe.tokenize import read_manifest, tokenizer_from_manifest
    from nordpipe.trace import shard_tokens

    manifest = read_manifest(str(folder))
    tokenizer = tokenizer_from_manifest(manifest)
    for entry in manifest["shards"]:
        tokens = shard_tokens(str(folder), manifest, entry)
        yield tokenizer.decode([int(t) for t in tokens])


def _file_texts(root: Path) -> Iterator[tuple[Path, str]]:
    """(path, readable content) of every file below ``root``; names count too."""
    import pyarrow.parquet as pq
    import zstandard

    for path in sorted(p for p in root.rglob("*")):
        yield path, str(path.relative_to(root))
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        elif path.name.endswith((".zst", ".zstd")):
            data = zstandard.ZstdDecompressor().stream_reader(data).read()
        if path.name.endswith(".parquet"):
            yield path, json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False, default=str)
            continue
        text = data.decode("utf-8", "replace")
        yield path, text
        if text.lstrip().startswith(("{", "[")):  # JSON: also with its escapes undone
            for line in text.splitlines():
                try:
                    yield path, json.dumps(json.loads(line), ensure_ascii=False)
                except ValueError:
                    break


def _hits(roots: list[Path], values: list[str]) -> list[str]:
    forms = {form: value for value in values for form in _forms(value)}
    hits = []
    for root in roots:
        for path, text in _file_texts(root):
            lowered = text.lower()
            hits.extend(f"{path}: {value!r} ({form!r})" for form, value in forms.items() if form.lower() in lowered)
        if (root / "manifest.json").exists():
            for text in _tokenized_texts(root):
                lowered = text.lower()
                hits.extend(f"{root} tokens: {value!r}" for form, value in forms.items() if form.lower() in lowered)
    return sorted(set(hits))


def _records(folder: Path) -> list[dict]:
    records = []
    for path in sorted((folder / "documents").glob("*.jsonl.gz")):
        records.extend(item.record for item in iter_document_lines(str(path)))
    return records


# --------------------------------------------------------------------------------------------
# The whole chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import subprocess

    from conftest import nordpipe_executable

    base = tmp_path_factory.mktemp("pii_fields")
    key = _key(base)
    raw = _write_raw(base / "raw")
    work = base / "work"
    folders = {name: work / name for name in ("urls", "quality", "lines", "minhash", "pii", "tokens")}
    logs: dict[str, str] = {}

    def run(*args: object, log: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True, timeout=600,
                                env={**os.environ, "COLUMNS": "200"})
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
        if log:  # what the PII stage and everything after it print
            logs[" ".join(map(str, args[:2]))] = result.stdout + result.stderr
        return result

    run("ingest", raw, "--dataset", "planted", "--output", work / "data", "--text-field", "text", "--url-field", "url",
        "--language", "da", log=False)
    ingest = work / "data" / "planted"
    share = ("--max-removed-share", "1")
    run("filter", "urls", ingest, folders["urls"], *share, log=False)
    run("filter", "quality", folders["urls"], folders["quality"], "--languages", "da", *share, log=False)
    run("dedup", "lines", folders["quality"], folders["lines"], "--state", base / "state" / "lines", *share, log=False)
    run("dedup", "docs", folders["lines"], folders["minhash"], *share, log=False)
    run("pii", folders["minhash"], folders["pii"], "--key-file", key, "--audit", base / "private" / "audit.jsonl",
        "--keep-removed")
    run("tokenize", folders["pii"], folders["tokens"])
    exports = work / "exports"
    run("export", "hf", folders["pii"], exports / "hf")
    run("export", "sentences", folders["pii"], exports / "sentences")
    run("export", "pairs", folders["pii"], exports / "pairs", "--anchor", "title", "--positive", "text")
    reports = work / "reports"
    reports.mkdir()
    manifest = json.loads((folders["tokens"] / "manifest.json").read_text())
    traces = []
    for entry in manifest["shards"]:
        for token in (0, 40, 200):
            result = subprocess.run([*nordpipe_executable(), "trace", folders["tokens"], "--shard", entry["name"],
                                     "--token", str(token), "--json"], capture_output=True, text=True, timeout=600)
            if result.returncode == 0:
                traces.append(result.stdout)
    assert traces
    (reports / "trace.txt").write_text("\n".join(traces))
    (reports / "report.txt").write_text(run("report", folders["pii"], "--html", reports / "report.html").stdout)
    (reports / "logs.txt").write_text("\n".join(logs.values()))
    return {"base": base, "key": key, "ingest": ingest, "exports": exports, "reports": reports, **folders}


def test_planted_values_reach_the_pii_stage(chain):
    """The check below is worth something only if the PII stage's input still holds them all."""
    hits = _hits([chain["minhash"]], ORIGINALS)
    for value in ORIGINALS:
        assert any(repr(value) in hit for hit in hits), value
    assert len(_records(chain["minhash"])) >= 6


def test_no_original_value_after_the_pii_stage(chain):
    roots = [chain["pii"], chain["tokens"], chain["exports"], chain["reports"]]
    assert _hits(roots, ORIGINALS) == []


def test_metadata_urls_and_ids_are_redacted_and_urls_stay_parseable(chain):
    out = _records(chain["pii"])
    by_title = {r["metadata"]["title"]: r for r in out}
    assert all(title.startswith("Interview med <NAME>") for title in by_title)
    for record in out:
        meta = record["metadata"]
        assert meta["author"] == "<NAME>" and meta["byline"] == "Af <NAME>"
        assert meta["license"] == "cc-by-4.0"  # safe fields untouched
        assert meta["extra"]["contact"] == {"email": "<EMAIL>", "phones": ["<PHONE>"]}
        url = urlsplit(meta["url"])
        assert url.scheme == "https" and url.hostname == "eksempel.dk"
        if "/brugere/" in url.path:
            assert url.path.startswith("/brugere/%3CEMAIL%3E/side-")
        if url.query:
            assert dict(parse_qsl(url.query))["email"] == "<EMAIL>"
        if url.fragment:
            assert url.fragment == "kontakt=%3CEMAIL%3E"
    ids = {r["id"] for r in out}
    assert not any(CPR_IN_ID in i or EMAIL_FILE in i for i in ids)
    hashed = sorted(i for i in ids if i.startswith("pii-"))
    planted_from_files = [r for r in _records(chain["minhash"]) if CPR_IN_ID in r["id"] or EMAIL_FILE in r["id"]]
    assert len(hashed) == len(planted_from_files) > 0 and all(len(i) == 36 for i in hashed)
    assert any(i.startswith("planted-dump-") for i in ids)  # ids without personal data stay
    files = [r["metadata"]["file"] for r in out if "file" in r["metadata"]]
    assert files and all(f.startswith("scans/<EMAIL>/brev-") and f.endswith(".pdf") for f in files)
    # the audit holds the old -> new mapping, and only there
    audit = [json.loads(line) for line in (chain["base"] / "private" / "audit.jsonl").read_text().splitlines()]
    mapping = {a["original_id"]: a["id"] for a in audit if a.get("field") == "id"}
    assert sorted(mapping.values()) == hashed
    assert {a["field"] for a in audit} >= {"text", "author", "byline", "title", "url", "extra.contact.email", "file",
                                           "id"}
    assert all("hash" in a for a in audit if a["field"] != "id")


def test_the_quarantine_record_of_the_pii_stage_is_redacted(tmp_path, nordpipe_cli, make_records):
    """A plain ``pii`` run: its quarantine/ (a broken line) and removed/ (a document that
    arrives removed) hold no original, nor do its stats, logs and summary."""
    source = tmp_path / "in"
    source.mkdir()
    lines = [json.dumps(make_records(f"user-{EMAIL_TEXT}", f"Ring til {AUTHOR} på {PHONE_TEXT}.", url=f"https://x.dk/u?m={quote(EMAIL_QUERY)}",
                                     author=BYLINE), ensure_ascii=False),
             # a document an earlier step removed, read again: the stage passes it to removed/
             json.dumps(make_records(f"gone-{CPR}", f"Skriv til {EMAIL_TEXT}.", author=AUTHOR,
                                     nordpipe={"removed": "gopher_quality:stop_words"}), ensure_ascii=False),
             '{"id": "bad-' + EMAIL_NESTED + '", "text": "cpr ' + CPR + ' og ' + TITLE_NAME + '", "created": 5}']
    with gzip.open(source / f"{EMAIL_FILE}.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = nordpipe_cli("pii", source, out, "--keep-removed")
    assert result.returncode == 0, result.stderr
    quarantine = [json.loads(line) for p in (out / "quarantine").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(quarantine) == 1 and "<CPR>" in quarantine[0]["raw"] and "<EMAIL>" in quarantine[0]["raw"]
    removed = [i.record for p in (out / "removed").glob("*.jsonl.gz") for i in iter_document_lines(str(p))]
    assert len(removed) == 1 and removed[0]["text"] == "Skriv til <EMAIL>."
    assert removed[0]["id"].startswith("pii-") and removed[0]["metadata"]["author"] == "<NAME>"
    kept = _records(out)
    assert kept[0]["id"].startswith("pii-") and kept[0]["metadata"]["url"] == "https://x.dk/u?m=%3CEMAIL%3E"
    (tmp_path / "stdout.txt").write_text(result.stdout + result.stderr)
    hits = _hits([out], [v for v in ORIGINALS if v != EMAIL_FILE])
    assert hits == [], hits
    # --skip-fields keeps what it names; --fields none scans the text only
    skip = nordpipe_cli("pii", source, tmp_path / "skip", "--skip-fields", "author,url,id")
    assert skip.returncode == 0, skip.stderr
    kept = _records(tmp_path / "skip")[0]
    assert kept["metadata"]["author"] == BYLINE and EMAIL_QUERY in kept["metadata"]["url"].replace("%40", "@")
    assert kept["id"] == f"user-{EMAIL_TEXT}" and AUTHOR not in kept["text"]
    only_text = nordpipe_cli("pii", source, tmp_path / "text", "--fields", "none", "--skip-fields", "id",
                             )
    assert only_text.returncode == 0, only_text.stderr
    assert _records(tmp_path / "text")[0]["metadata"]["author"] == BYLINE


# --------------------------------------------------------------------------------------------
# Secrets and file modes


def _all_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            yield path, data
            if path.name.endswith(".gz"):
                yield path, gzip.decompress(data)


def test_key_never_written_and_audit_is_private(tmp_path, nordpipe_cli, make_records):
    secret = b"k3y-" + os.urandom(12).hex().encode()
    key = _key(tmp_path, value=secret)
    source = tmp_path / "in"
    source.mkdir()
    with gzip.open(source / "a.jsonl.gz", "wt", encoding="utf-8") as handle:
        for n in range(3):
            handle.write(json.dumps(make_records(f"d{n}", f"Skriv til {EMAIL_TEXT}, cpr {CPR}.", author=AUTHOR),
                                    ensure_ascii=False) + "\n")
    out, audit = tmp_path / "out", tmp_path / "private" / "audit.jsonl.gz"
    result = nordpipe_cli("pii", source, out, "--key-file", key, "--audit", audit, "--mode", "fake")
    assert result.returncode == 0, result.stderr
    assert (out / ".nordpipe" / "datatrove" / "executor.json").exists()
    forms = [secret, secret.hex().encode(), secret.decode().upper().encode()]
    for root in (out, audit.parent):
        for path, data in _all_bytes(root):
            assert not any(form in data for form in forms), path
    assert secret.decode() not in result.stdout + result.stderr
    assert not (out / ".nordpipe" / "pii" / "salt").exists()
    # modes: the audit 0600, its folder and the stage's state folder 0700
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit.parent.stat().st_mode) == 0o700
    pii_state = out / ".nordpipe" / "pii"
    assert stat.S_IMODE(pii_state.stat().st_mode) == 0o700
    assert not (pii_state / "audit").exists()  # the per-task parts are gone once merged
    entries = [json.loads(line) for line in gzip.decompress(audit.read_bytes()).decode().splitlines()]
    assert entries and all(len(e["hash"]) == 32 for e in entries if e["field"] != "id")
    run_record = json.loads((out / ".nordpipe" / "run.json").read_text())
    assert len(run_record["parameters"]["key_id"]) == 12
    # the same key gives the same fakes and hashes; --key-env reads it from the environment
    again = nordpipe_cli("pii", source, tmp_path / "again", "--key-env", "NORDPIPE_TEST_KEY", "--mode", "fake",
                         "--audit", tmp_path / "private" / "again.jsonl", env={"NORDPIPE_TEST_KEY": secret.decode()})
    assert again.returncode == 0, again.stderr
    assert [r["text"] for r in _records(out)] == [r["text"] for r in _records(tmp_path / "again")]
    hashes = [json.loads(line).get("hash") for line in (tmp_path / "private" / "again.jsonl").read_text().splitlines()]
    assert hashes == [e.get("hash") for e in entries]


def test_unsafe_or_missing_keys_and_salt_are_usage_errors(tmp_path, nordpipe_cli, make_records):
    source = tmp_path / "in"
    source.mkdir()
    with gzip.open(source / "a.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(make_records("d", f"Skriv til {EMAIL_TEXT}.")) + "\n")
    shared_key = _key(tmp_path, mode=0o644)
    result = nordpipe_cli("pii", source, tmp_path / "o1", "--key-file", shared_key)
    assert result.returncode == 2 and "chmod 600" in result.stderr and "0644" in result.stderr
    assert not (tmp_path / "o1").exists()
    unset = nordpipe_cli("pii", source, tmp_path / "o2", "--key-env", "NORDPIPE_NO_SUCH_VARIABLE")
    assert unset.returncode == 2 and "NORDPIPE_NO_SUCH_VARIABLE" in unset.stderr
    salt = nordpipe_cli("pii", source, tmp_path / "o3", "--salt", "s3cr3t")
    assert salt.returncode == 2 and "--key-file" in salt.stderr
    # without a key: the audit has offsets and types, no hashes
    plain = nordpipe_cli("pii", source, tmp_path / "o4", "--audit", tmp_path / "a.jsonl")
    assert plain.returncode == 0, plain.stderr
    entries = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert entries and all("hash" not in e and e["entity"] == "EMAIL" for e in entries)


# --------------------------------------------------------------------------------------------
# The pieces, in process


def _redactor(selection=None):
    from nordpipe.pii.engine import PiiScanner
    from nordpipe.pii.fields import FieldRedactor, FieldSelection
    from nordpipe.pii.replace import Replacer

    scanner, replacer = PiiScanner(), Replacer()
    return FieldRedactor(selection or FieldSelection(), lambda v: scanner.scan(v, "da"),
                         lambda v, spans: replacer.replace(v, spans, "d", "da"), lambda v: "pii-" + "0" * 32)


@pytest.mark.parametrize(("url", "expected"), [
    (f"https://x.dk/users/{EMAIL_TEXT}", "https://x.dk/users/%3CEMAIL%3E"),
    (f"https://x.dk/users/{quote(EMAIL_TEXT, safe='')}/", "https://x.dk/users/%3CEMAIL%3E/"),
    (f"https://x.dk/s?q=1&mail={quote(EMAIL_TEXT)}&cpr={CPR}#top", "https://x.dk/s?q=1&mail=%3CEMAIL%3E&cpr=%3CCPR%3E#top"),
    (f"https://x.dk/s?name={quote(BYLINE)}", "https://x.dk/s?name=%3CNAME%3E"),
    ("https://x.dk/s?name=Jens+Hansen", "https://x.dk/s?name=%3CNAME%3E"),
    (f"https://x.dk/a#mail={EMAIL_TEXT}", "https://x.dk/a#mail=%3CEMAIL%3E"),
    (f"ftp://{EMAIL_TEXT.split('@')[0]}:pw@x.dk/f.txt", None),
    (f"https://x.dk/files/{EMAIL_TEXT}.pdf", "https://x.dk/files/%3CEMAIL%3E.pdf"),
    ("https://x.dk/artikel/side-2?sort=nyeste#top", "https://x.dk/artikel/side-2?sort=nyeste#top"),
])
def test_urls_are_redacted_piece_by_piece_and_stay_parseable(url, expected):
    found: list = []
    new = _redactor().redact_string("url", url, found)
    if expected is not None:
        assert new == expected
    parts = urlsplit(new)
    assert parts.scheme in ("https", "ftp") and parts.hostname == "x.dk"
    assert EMAIL_TEXT not in new and CPR not in new and "Hansen" not in new
    assert bool(found) == (new != url)


def test_field_selection_defaults_and_options():
    from nordpipe.pii.fields import FieldSelection

    default = FieldSelection.parse(None, None)
    assert default.wanted("author") and default.wanted("meta.contact.email") and default.wanted("url")
    assert not default.wanted("license") and not default.wanted("language") and not default.wanted("crawl_date")
    assert not default.wanted("nordpipe.language") and default.wanted("nordpipe.minhash.survivor")
    assert default.ids
    only = FieldSelection.parse(["author,meta.contact"], ["id"])
    assert only.wanted("author") and only.wanted("x.author") and only.wanted("meta.contact.phone")
    assert not only.wanted("title") and not only.ids
    assert not FieldSelection.parse(["none"], None).wanted("author")
    assert not FieldSelection.parse(None, ["extra*"]).wanted("extra.contact.email")


def test_ids_paths_and_person_fields():
    redactor = _redactor()
    found: list = []
    assert redactor.redact_id(f"ds-kunde-{CPR_IN_ID}-3", found) == "pii-" + "0" * 32
    assert redactor.redact_id(f"ds-{EMAIL_FILE}-1", found) == "pii-" + "0" * 32
    assert redactor.redact_id("ds-dump-12", found) == "ds-dump-12"
    # a bare number outside running text is an id, not a phone number; with separators it is one
    assert redactor.redact_id("forum-20123456", found) == "forum-20123456"
    assert redactor.redact_string("url", "https://x.dk/artikel/20123456", found) == "https://x.dk/artikel/20123456"
    assert redactor.redact_string("post_id", "20123456", found) == "20123456"
    assert redactor.redact_string("phone", "20123456", found) == "<PHONE>"
    assert redactor.redact_string("url", "https://x.dk/ring?tlf=20+12+34+56", found) == "https://x.dk/ring?tlf=%3CPHONE%3E"
    assert redactor.redact_string("path", f"inbox/{EMAIL_FILE}/Jens_Hansen.txt", found) == "inbox/<EMAIL>/<NAME>.txt"
    assert redactor.redact_string("author", "jens hansen", found) == "<NAME>"  # a person field, whatever its case
    assert redactor.redact_string("summary", "ingen data her", found) == "ingen data her"
    assert redactor.redact_string("published_date", "2024-03-01", found) == "2024-03-01"
