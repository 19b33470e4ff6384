"""Ingest and validate, end to end through the real CLI."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import nordpipe_executable

from nordpipe.datasheet import parse_front_matter
from nordpipe.documents import iter_document_lines
from nordpipe.runner import OutputLock
from nordpipe.sample import generate_jsonl_corpus, generate_sample

RAW = [
    {"id": f"r{i}", "text": f"Dette er dokument nummer {i}. Det handler om vejret i Aarhus.", "date": f"2021-0{1 + i % 9}-1{i % 9}T10:00:00Z", "url": f"https://a{i}.dk/x"}
    for i in range(20)
]


def _write_raw(folder: Path, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt in ("jsonl.gz", "jsonl.zst", "jsonl"):
        from nordpipe.documents import open_binary

        path = folder / f"dump.{fmt}"
        with open_binary(str(path), "wb") as handle:
            handle.write(b"".join(orjson.dumps(r) + b"\n" for r in RAW))
        return path
    if fmt == "json":
        path = folder / "dump.json"
        path.write_bytes(orjson.dumps(RAW))
        return path
    if fmt in ("csv", "tsv"):
        path = folder / f"dump.{fmt}"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(RAW[0]), delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            writer.writerows(RAW)
        return path
    if fmt == "parquet":
        path = folder / "dump.parquet"
        pq.write_table(pa.Table.from_pylist(RAW), path)
        return path
    if fmt == "txt":
        path = folder / "letters"
        path.mkdir()
        for r in RAW:
            (path / f"{r['id']}.txt").write_text(r["text"], encoding="utf-8")
        (path / "notes.md").write_text("# Noter\n\nEn markdown-fil med tekst.", encoding="utf-8")
        return path
    if fmt in ("warc", "wet"):
        from warcio.statusandheaders import StatusAndHeaders
        from warcio.warcwriter import WARCWriter

        path = folder / ("crawl.warc.gz" if fmt == "warc" else "crawl.warc.wet.gz")
        with open(path, "wb") as handle:
            writer = WARCWriter(handle, gzip=True)
            for r in RAW:
                if fmt == "warc":
                    body = f"<html><body><nav>Menu</nav><article><h1>Vejret</h1><p>{r['text']}</p><p>{r['text']} Mere tekst om byen og dens borgere.</p></article></body></html>"
                    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
                    record = writer.create_warc_record(r["url"], "response", payload=io.BytesIO(body.encode()), http_headers=http,
                                                       warc_headers_dict={"WARC-Date": "2023-05-01T12:00:00Z"})
                else:
                    record = writer.create_warc_record(r["url"], "conversion", payload=io.BytesIO(r["text"].encode()),
                                                       warc_headers_dict={"WARC-Date": "2023-05-01T12:00:00Z", "Content-Type": "text/plain"})
                writer.write_record(record)
        return path
    raise AssertionError(fmt)


FORMATS = ["jsonl.gz", "jsonl.zst", "jsonl", "json", "csv", "tsv", "parquet", "txt", "warc", "wet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_raw_format_ingests_and_validates(tmp_path, nordpipe_cli, fmt):
    raw = _write_raw(tmp_path / "raw", fmt)
    extra = ["--created", "2020-01-01, 2020-12-31"] if fmt == "txt" else []
    result = nordpipe_cli("ingest", raw, "--dataset", "demo", "--output", tmp_path / "out", "--language", "da",
                          "--license", "other", "--license-name", "Test license", *extra, check=True)
    assert "documents out" in result.stdout
    dataset = tmp_path / "out" / "demo"
    records = [item.record for f in sorted((dataset / "documents").glob("*.jsonl.gz")) for item in iter_document_lines(str(f))]
    expected = 21 if fmt == "txt" else 20
    assert len(records) == expected
    assert all(r["source"] == "demo" for r in records)
    if fmt in ("warc", "wet"):
        assert {r["metadata"]["url"] for r in records} == {r["url"] for r in RAW}
        assert all(r["created"] == "2023-05-01, 2023-05-01" for r in records)
        assert all("vejret i Aarhus" in r["text"] for r in records)
    elif fmt != "txt":
        by_id = {r["id"]: r for r in records} if fmt != "parquet" else {}
        assert records[0]["created"] == "2021-01-10, 2021-01-10"
        assert records[0]["metadata"]["url"] == "https://a0.dk/x"
        assert len(by_id) in (0, 20) or fmt
    validated = nordpipe_cli("validate", dataset)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    matter = parse_front_matter((dataset / "README.md").read_text())
    assert matter["license"] == "other" and matter["license_name"] == "Test license"
    assert matter["language"] == ["da"]
    assert matter["size_categories"] == ["n<1K"]
    for key in ("pretty_name", "task_categories", "task_ids"):
        assert matter[key]
    assert f"| records | {expected} |" in (dataset / "README.md").read_text()


def test_real_warc_samples(tmp_path, nordpipe_cli, shared):
    for name in ("cc-whirlwind.warc.gz", "cc-whirlwind.warc.wet.gz", "dolma-sample-0000.warc.gz", "warcio-example.warc.gz"):
        out = tmp_path / name.replace(".", "_")
        result = nordpipe_cli("ingest", shared / "data" / "warc" / name, "--dataset", "crawl", "--output", out, check=True)
        stats = json.loads((out / "crawl" / ".nordpipe" / "stats.json").read_text())
        assert stats["documents_in"] >= 1, result.stdout
        if stats["documents_out"]:
            assert nordpipe_cli("validate", out / "crawl").returncode == 0
            first = next(iter_document_lines(str(next((out / "crawl" / "documents").glob("*.jsonl.gz"))))).record
            assert first["metadata"]["url"].startswith("http")
    stats = json.loads((tmp_path / "dolma-sample-0000_warc_gz" / "crawl" / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_out"] >= 5


def _bad_corpus(folder: Path) -> tuple[list[str], dict[tuple[str, int], str]]:
    """A jsonl.gz with every kind of bad record, a truncated gzip and a bad-encoding CSV.

    Returns the ids of the good records and {(file name, line): reason prefix} of the bad ones.
    """
    folder.mkdir(parents=True)
    good: list[str] = []
    bad: dict[tuple[str, int], str] = {}
    lines: list[bytes] = []

    def add_good(i: int) -> None:
        lines.append(orjson.dumps({"id": f"g{i}", "text": f"God tekst nummer {i}.", "created": "2020-01-01"}))
        good.append(f"g{i}")

    def add_bad(raw: bytes, reason: str) -> None:
        lines.append(raw)
        bad[("mixed.jsonl.gz", len(lines))] = reason

    for i in range(5):
        add_good(i)
    add_bad(b'{"id": "b1", "text": "unclosed', "invalid JSON")
    add_bad(b'{"id": "b2", "text": "bad \xff\xfe bytes", "created": "2020-01-01"}', "invalid UTF-8")
    add_bad(orjson.dumps({"id": "b3", "text": "nul \u0000 byte", "created": "2020-01-01"}), "NUL bytes")
    add_bad(orjson.dumps({"id": "b4", "created": "2020-01-01"}), "missing field")
    add_bad(orjson.dumps({"id": "b5", "text": 42, "created": "2020-01-01"}), "wrong type")
    add_bad(orjson.dumps({"id": "b6", "text": "", "created": "2020-01-01"}), "empty text")
    add_bad(orjson.dumps({"id": "b7", "text": " \n\t ", "created": "2020-01-01"}), "empty text")
    add_bad(orjson.dumps({"id": "b8", "text": "Dato?", "created": "03/04/2020"}), "bad date")
    add_bad(orjson.dumps({"id": "g0", "text": "Samme id igen.", "created": "2020-01-01"}), "duplicate id")
    add_bad(orjson.dumps({"id": "b10", "text": "stor " * 10_500_000, "created": "2020-01-01"}), "text too long")
    for i in range(5, 10):
        add_good(i)
    with gzip.open(folder / "mixed.jsonl.gz", "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
    # A truncated gzip member: the first records survive, the break is quarantined.
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
        for i in range(2000):
            handle.write(orjson.dumps({"id": f"t{i}", "text": f"Tekst {i} " * 20, "created": "2020-01-01"}) + b"\n")
    data = buffer.getvalue()
    (folder / "truncated.jsonl.gz").write_bytes(data[: len(data) // 2])
    survivors = [item.record["id"] for item in iter_document_lines(str(folder / "truncated.jsonl.gz")) if item.record]
    good.extend(survivors)
    bad[("truncated.jsonl.gz", len(survivors) + 1)] = "broken compression"
    return good, bad


def test_bad_input_is_quarantined_and_nothing_is_lost(tmp_path, nordpipe_cli):
    good, bad = _bad_corpus(tmp_path / "raw")
    out = tmp_path / "out"
    result = nordpipe_cli("ingest", tmp_path / "raw", "--dataset", "mixed", "--output", out, "--id-field", "id")
    assert result.returncode == 0, result.stderr
    dataset = out / "mixed"
    kept = [item.record["id"] for f in sorted((dataset / "documents").glob("*.jsonl.gz")) for item in iter_document_lines(str(f))]
    assert sorted(kept) == sorted(good)
    quarantined = {}
    for file in (dataset / "quarantine").glob("*.jsonl"):
        for line in file.read_text().splitlines():
            entry = json.loads(line)
            quarantined[(Path(entry["file"]).name, entry["line"])] = entry
    assert set(quarantined) == set(bad)
    for key, reason in bad.items():
        assert quarantined[key]["reason"].startswith(reason), (key, quarantined[key]["reason"])
    # Nothing lost: the raw line is kept (base64 where it is not UTF-8).
    assert "raw_base64" in quarantined[("mixed.jsonl.gz", 7)]
    assert quarantined[("mixed.jsonl.gz", 6)]["raw"].startswith('{"id": "b1"')
    stats = json.loads((dataset / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_out"] == len(good)
    assert stats["quarantined_total"] == len(bad)
    assert stats["documents_in"] == len(good) + len(bad)
    assert stats["quarantined"]["empty text"] == 2
    assert "ingest\tquarantined invalid JSON\t1" in result.stdout
    strict = nordpipe_cli("ingest", tmp_path / "raw", "--dataset", "mixed", "--output", tmp_path / "strict", "--id-field", "id", "--strict")
    assert strict.returncode == 1
    assert "quarantined" in strict.stderr


def test_duplicate_ids_across_files_are_quarantined(tmp_path, nordpipe_cli):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, ids in (("a.jsonl", ["x", "y"]), ("b.jsonl", ["y", "z"])):
        (raw / name).write_text("".join(json.dumps({"id": i, "text": f"tekst {name} {i}", "created": "2020"}) + "\n" for i in ids))
    nordpipe_cli("ingest", raw, "--dataset", "dups", "--output", tmp_path / "out", "--id-field", "id", "--tasks", "2", check=True)
    dataset = tmp_path / "out" / "dups"
    kept = sorted(item.record["text"] for f in (dataset / "documents").glob("*.jsonl.gz") for item in iter_document_lines(str(f)))
    assert kept == ["tekst a.jsonl x", "tekst a.jsonl y", "tekst b.jsonl z"]
    assert nordpipe_cli("validate", dataset).returncode == 0
    stats = json.loads((dataset / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_out"] == 3 and stats["quarantined"] == {"duplicate id": 1}


def _outputs(dataset: Path) -> dict[str, list[bytes]]:
    return {
        f.name: [line for line in gzip.decompress(f.read_bytes()).splitlines()]
        for f in sorted((dataset / "documents").glob("*.jsonl.gz"))
    }


@pytest.mark.slow
def test_kill_9_mid_ingest_then_rerun_equals_uninterrupted(tmp_path, nordpipe_cli):
    raw = tmp_path / "raw"
    list(generate_jsonl_corpus(raw, target_bytes=48_000_000, seed=3, files=8, shared=None))
    args = ["ingest", str(raw), "--dataset", "big", "--created-field", "created", "--added", "2024-01-01", "--url-field", "url"]
    nordpipe_cli(*args, "--output", tmp_path / "clean", check=True)

    out = tmp_path / "killed"
    process = subprocess.Popen([*nordpipe_executable(), *args, "--output", str(out)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    completions = out / "big" / ".nordpipe" / "datatrove" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and not (completions.exists() and len(os.listdir(completions)) >= 2):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(os.listdir(completions))
    assert 2 <= done < 8, f"kill came too late or too early ({done} of 8 tasks done)"
    # Files of the killed task never reached documents/.
    assert len(list((out / "big" / "documents").glob("*.jsonl.gz"))) == done
    nordpipe_cli(*args, "--output", out, check=True)
    clean, rerun = _outputs(tmp_path / "clean" / "big"), _outputs(out / "big")
    assert clean == rerun
    ids = [json.loads(line)["id"] for lines in rerun.values() for line in lines]
    assert len(ids) == len(set(ids))


def test_second_run_on_same_output_refuses(tmp_path, nordpipe_cli):
    raw = _write_raw(tmp_path / "raw", "jsonl")
    with OutputLock(str(tmp_path / "out" / "demo")):
        result = nordpipe_cli("ingest", raw, "--dataset", "demo", "--output", tmp_path / "out")
    assert result.returncode == 1
    assert "in use by a running nordpipe" in result.stderr


def test_rerun_skips_done_work_and_refuses_changed_parameters(tmp_path, nordpipe_cli):
    raw = _write_raw(tmp_path / "raw", "jsonl")
    base = ["ingest", raw, "--dataset", "demo", "--output", tmp_path / "out"]
    nordpipe_cli(*base, check=True)
    first = (tmp_path / "out" / "demo" / "documents" / "dump.jsonl.gz").stat().st_mtime_ns
    nordpipe_cli(*base, check=True)
    assert (tmp_path / "out" / "demo" / "documents" / "dump.jsonl.gz").stat().st_mtime_ns == first
    changed = nordpipe_cli(*base, "--license", "cc0-1.0")
    assert changed.returncode == 1 and "--force" in changed.stderr
    nordpipe_cli(*base, "--license", "cc0-1.0", "--force", check=True)
    assert parse_front_matter((tmp_path / "out" / "demo" / "README.md").read_text())["license"] == "cc0-1.0"


def test_dataset_config_file(tmp_path, nordpipe_cli):
    raw = _write_raw(tmp_path / "raw", "jsonl")
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump({"dataset": "vejr", "pretty_name": "Vejret", "language": ["da"], "license": "cc-by-4.0",
                                      "id_field": "id", "created_field": "date", "metadata_fields": ["url"],
                                      "metadata": {"organization": "DMI"}}))
    nordpipe_cli("ingest", raw, "--config", config, "--output", tmp_path / "out", check=True)
    record = next(iter_document_lines(str(tmp_path / "out" / "vejr" / "documents" / "dump.jsonl.gz"))).record
    assert record["id"] == "r0"
    assert record["metadata"] == {"url": "https://a0.dk/x", "organization": "DMI", "license": "cc-by-4.0", "language": "da"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: x\ntext_feild: body\n")
    result = nordpipe_cli("ingest", raw, "--config", bad, "--output", tmp_path / "out2")
    assert result.returncode == 1 and "text_feild" in result.stderr and "text_field" in result.stderr


def test_validate_reports_every_line(tmp_path, nordpipe_cli, make_records):
    folder = tmp_path / "ds" / "documents"
    folder.mkdir(parents=True)
    lines = [orjson.dumps(make_records(str(i), "tekst", source="ds")) for i in range(100)]
    lines[57] = orjson.dumps({**make_records("57", "tekst", source="ds"), "added": ["2020-01-01T00:00:00Z"]})
    lines[98] = b"{broken"
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = nordpipe_cli("validate", tmp_path / "ds", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    errors = report["files"][0]["errors"]
    assert [e["line"] for e in errors] == [58, 99]
    assert any("datasheet missing" in p for p in report["datasheet_problems"])


def test_cli_help_and_exit_codes(nordpipe_cli):
    assert nordpipe_cli("--help").returncode == 0
    for command in (["ingest"], ["validate"], ["sample"]):
        result = nordpipe_cli(*command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout
    assert nordpipe_cli("ingest", "--no-such-flag").returncode == 2
    assert nordpipe_cli("ingest", "/nonexistent").returncode == 2  # no --dataset
    missing = nordpipe_cli("ingest", "/nonexistent/x.jsonl", "--dataset", "d", "--output", "/tmp/nordpipe-never")
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_sample_generator_is_seeded(tmp_path):
    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for f in sorted(root.rglob("*")):
            if f.is_file():
                h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
        return h.hexdigest()

    a = generate_sample(tmp_path / "a", seed=7, scale=0.2, shared=None)
    generate_sample(tmp_path / "b", seed=7, scale=0.2, shared=None)
    generate_sample(tmp_path / "c", seed=8, scale=0.2, shared=None)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert a["pii"] and a["near_duplicates"] and a["spam_urls"]


def test_sample_ingests_cleanly(tmp_path, nordpipe_cli):
    generate_sample(tmp_path / "s", seed=1, scale=0.3)
    for name in ("nyheder", "forum", "web", "breve", "wiki"):
        nordpipe_cli("ingest", tmp_path / "s" / "raw" / name, "--config", tmp_path / "s" / "datasets" / f"{name}.yaml",
                     "--output", tmp_path / "data", "--strict", check=True)
    assert nordpipe_cli("validate", tmp_path / "data").returncode == 0


def test_stage_commands_share_the_run_options(nordpipe_cli):
    """Every stage command offers the shared run options (``cli.common.with_run_options``),
    ``--keep-removed`` only where a stage removes documents, and a bad option value is a usage
    error before any work starts."""
    from nordpipe.cli.pipeline import command_params

    shared = {"tasks", "workers", "executor", "partition", "time", "cpus", "mem_per_cpu", "env_command", "no_wait",
              "strict", "force", "verbose", "json"}
    stages = ((["ingest"], False), (["filter", "urls"], True), (["filter", "quality"], True), (["dedup", "lines"], True),
              (["dedup", "docs"], True), (["pii"], True), (["tokenize"], False))
    for command, keeps_removed in stages:
        params = command_params(command)
        assert shared <= params.keys(), (command, shared - params.keys())
        assert ("keep_removed" in params) == keeps_removed, command
    bad = nordpipe_cli("pii", "/nonexistent/in", "/nonexistent/out", "--executor", "cloud")
    assert bad.returncode == 2 and "--executor" in bad.stderr
