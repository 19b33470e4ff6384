"""Raw-file bookkeeping by content, not time (``nordpipe run`` batches, ``nordpipe ingest`` reads).

Every test runs the real ``nordpipe`` command on real files. A raw file is signed by what ingest
read of it while reading (``.nordpipe/raw-files.json``), so records appended while a batch runs
are read by the next batch, with the ids and line numbers one whole read gives; an incomplete
last line waits until it is complete; a file changed in the middle is logged and read again in
full. Processes are stopped at known points with the ``NORDPIPE_TEST_KILL_AT`` kill points,
never by timing.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import nordpipe_executable

from nordpipe.runner import KILL_ENV

KILL_DIR_ENV = KILL_ENV.replace("KILL_AT", "KILL_DIR")
OLD = 1_700_000_000  # a fixed, long-settled modification time (2023-11-14)


def nordpipe(*args: Any, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, KILL_DIR_ENV)}
    return subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**clean, "COLUMNS": "200", **(env or {})})


def records(first: int, last: int, tag: str = "Tekst") -> str:
    """jsonl lines for records ``first..last-1`` (no id: ids come from the file and line)."""
    return "".join(json.dumps({"text": f"{tag} nummer {i} om vejret i Aarhus.", "created": "2020"}) + "\n"
                   for i in range(first, last))


def pipeline_file(base: Path, raw: Path, executor: str = "local") -> Path:
    path = base / "p.yaml"
    path.write_text(f"root: {base / 'root'}\nexecutor: {executor}\n"
                    f"datasets:\n  - name: d\n    raw: [{raw}]\n"
                    "    params: {license: cc0-1.0, language: da, added: '2024-01-01'}\n"
                    "stages: []\n")
    return path


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def documents(folder: Path) -> dict[str, dict[str, Any]]:
    """The documents of an ingest output (a dataset folder), by id."""
    found: dict[str, dict[str, Any]] = {}
    for file in sorted((folder / "documents").glob("*.jsonl.gz")):
        with gzip.open(file, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                assert record["id"] not in found
                found[record["id"]] = record
    return found


def quarantined(folder: Path) -> list[tuple[str, int, str]]:
    """``(file name, line, reason category)`` of an ingest output's quarantine records."""
    found = []
    for file in sorted((folder / "quarantine").glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            found.append((os.path.basename(entry["file"]), entry["line"], entry["reason"].split(":")[0]))
    return sorted(found)


def batch_docs(root: Path, batch: str) -> dict[str, dict[str, Any]]:
    return documents(root / "batches" / batch / "ingest" / "d")


def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)


# --------------------------------------------------------------------------------------------
# Appended records


def test_records_appended_while_a_batch_runs_are_read_by_the_next_batch(tmp_path: Path) -> None:
    """The ingest of batch 0001 reads 100 records and is killed after its tasks finished, before
    the stage completed; 100 records (one of them broken) are appended; the rerun finishes batch
    0001 with the 100 records it read; the next run ingests exactly the 100 appended ones, with
    the ids and quarantine line numbers of one whole read; a third run has nothing to do. (With
    the signature taken at the end of the batch, the appended records were never ingested.)"""
    raw = tmp_path / "raw"
    raw.mkdir()
    feed = raw / "feed.jsonl"
    feed.write_text(records(0, 100))
    pipeline = pipeline_file(tmp_path, raw)
    root = tmp_path / "root"
    kills = tmp_path / "kills"
    killed = nordpipe("run", pipeline, env={KILL_ENV: "ingest.raw-files.before-merge", KILL_DIR_ENV: str(kills)})
    assert killed.returncode == 1, killed.stdout + killed.stderr
    assert (kills / "ingest.raw-files.before-merge.killed").exists()
    assert "stage ingest failed" in killed.stderr

    appended = records(100, 150) + '{"text": "brudt\n' + records(151, 200)
    append(feed, appended)
    rerun = ok(nordpipe("run", pipeline))
    assert "finished\tbatch 0001" in rerun and "changed" not in rerun
    first = batch_docs(root, "0001")
    assert sorted(first) == sorted(f"d-feed-{n}" for n in range(1, 101))

    second = ok(nordpipe("run", pipeline))
    assert f"append\td\t{feed}\tgrown: read from byte {len(records(0, 100).encode()):,} (line 101)" in second
    assert "batch\t0002\t1 new raw files" in second and "finished\tbatch 0002" in second
    later = batch_docs(root, "0002")
    assert len(later) == 99 and sorted(later) == sorted(f"d-feed-{n}" for n in (*range(101, 151), *range(152, 201)))
    assert quarantined(root / "batches" / "0002" / "ingest" / "d") == [("feed.jsonl", 151, "invalid JSON")]
    assert ok(nordpipe("run", pipeline)).startswith("nothing to do")

    whole = tmp_path / "whole"
    ok(nordpipe("ingest", feed, "--dataset", "d", "--output", whole, "--license", "cc0-1.0", "--language", "da",
                "--added", "2024-01-01"))
    assert {**first, **later} == documents(whole / "d")
    assert quarantined(whole / "d") == [("feed.jsonl", 151, "invalid JSON")]
    recorded = json.loads((root / "state" / "ingested.json").read_text())["d"][str(feed)]
    assert recorded["offset"] == recorded["size"] == feed.stat().st_size and recorded["lines"] == 200
    assert recorded["batch"] == "0002" and recorded["start"] == len(records(0, 100).encode())


def test_an_incomplete_last_line_waits_until_it_is_complete(tmp_path: Path) -> None:
    """A writer mid-append leaves a last line without its newline: it is neither read nor
    quarantined, the next runs log it as pending, and it is read once complete. A last line
    that is a whole record without its newline (a file written without a final newline) is
    read, and the newline appended later is taken as its end."""
    raw = tmp_path / "raw"
    raw.mkdir()
    feed, closed = raw / "feed.jsonl", raw / "closed.jsonl"
    feed.write_text(records(0, 10) + '{"text": "Halvt skrevet')
    closed.write_text(records(0, 3).rstrip("\n"))
    pipeline = pipeline_file(tmp_path, raw)
    root = tmp_path / "root"
    ok(nordpipe("run", pipeline))
    assert sorted(batch_docs(root, "0001")) == sorted([*(f"d-feed-{n}" for n in range(1, 11)),
                                                       *(f"d-closed-{n}" for n in range(1, 4))])
    assert not (root / "batches" / "0001" / "ingest" / "d" / "quarantine").exists() or \
        not quarantined(root / "batches" / "0001" / "ingest" / "d")
    waiting = ok(nordpipe("run", pipeline))
    assert f"pending\td\t{feed}\tits last 23 bytes are an incomplete line" in waiting
    assert "nothing to do" in waiting

    append(feed, ' om vejret.", "created": "2021"}\n' + records(11, 12))
    append(closed, "\n" + records(3, 4))
    ok(nordpipe("run", pipeline))
    later = batch_docs(root, "0002")
    assert sorted(later) == ["d-closed-4", "d-feed-11", "d-feed-12"]
    assert later["d-feed-11"]["text"] == "Halvt skrevet om vejret."
    assert ok(nordpipe("run", pipeline)).startswith("nothing to do")


def test_a_read_in_parts_gives_the_ids_and_line_numbers_of_one_whole_read(tmp_path: Path) -> None:
    """``nordpipe ingest --files-from`` with ``PATH<TAB>OFFSET<TAB>LINE<TAB>XXH3`` reads only the
    appended part: blank, CRLF, broken and over-long lines keep their numbers, and a file whose
    first record is already standardized stays standardized when the appended part's first
    record does not look so (the decision is the file's, not the read's)."""
    common = ["--license", "cc0-1.0", "--added", "2024-01-01", "--created", "2020", "--max-chars", "1000"]
    plain, standard = tmp_path / "plain.jsonl", tmp_path / "std.jsonl"
    head = records(0, 3) + "\n" + '{"text": "CRLF-linje"}\r\n' + "{ikke json}\n" + records(3, 5)
    tail = ('{"text": "' + "x" * 8_000_000 + '"}\n') + "\n\n" + records(5, 8) + '{"text": 5}\n' + records(8, 9)
    std = [{"id": f"s{i}", "text": f"Standard {i}", "added": "2023-01-01", "created": "2020-01-01, 2020-12-31"} for i in range(6)]
    std[4]["extra"] = "ikke et standardfelt"  # the first record of the appended part does not look standardized
    std_lines = [json.dumps(r) + "\n" for r in std]
    plain.write_text(head)
    standard.write_text("".join(std_lines[:4]))
    first = tmp_path / "first"
    ok(nordpipe("ingest", plain, standard, "--dataset", "d", "--output", first, *common))
    reads = json.loads((first / "d" / ".nordpipe" / "raw-files.json").read_text())
    append(plain, tail)
    append(standard, "".join(std_lines[4:]))
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{path}\t{reads[str(path)]['offset']}\t{reads[str(path)]['lines']}\t{reads[str(path)]['xxh3']}\n"
                               for path in (plain, standard)))
    second = tmp_path / "second"
    ok(nordpipe("ingest", "--files-from", listing, "--dataset", "d", "--output", second, *common))
    whole = tmp_path / "whole"
    ok(nordpipe("ingest", plain, standard, "--dataset", "d", "--output", whole, *common))

    parts = {**documents(first / "d"), **documents(second / "d")}
    assert len(parts) == len(documents(first / "d")) + len(documents(second / "d"))
    assert parts == documents(whole / "d")
    assert {f"s{i}" for i in range(6)} <= set(parts)  # standardized: ids kept, also for s4
    assert sorted(quarantined(first / "d") + quarantined(second / "d")) == quarantined(whole / "d")
    assert [q[1:] for q in quarantined(whole / "d")] == [(6, "invalid JSON"), (9, "too long"), (15, "wrong type")]
    after = json.loads((second / "d" / ".nordpipe" / "raw-files.json").read_text())
    entire = json.loads((whole / "d" / ".nordpipe" / "raw-files.json").read_text())
    for path in (plain, standard):
        assert after[str(path)]["xxh3"] == entire[str(path)]["xxh3"] and after[str(path)]["lines"] == entire[str(path)]["lines"]
        assert after[str(path)]["start"] == reads[str(path)]["offset"]


# --------------------------------------------------------------------------------------------
# Files changed in the middle


def test_a_file_changed_in_the_middle_is_reported_and_read_again_in_full(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "same.jsonl").write_text(records(0, 10))
    (raw / "shrunk.jsonl").write_text(records(0, 10))
    (raw / "open.jsonl").write_text(records(0, 3).rstrip("\n"))
    (raw / "grown.jsonl").write_text(records(0, 10))
    (raw / "untouched.jsonl").write_text(records(0, 10))
    with gzip.open(raw / "packed.jsonl.gz", "wt") as handle:
        handle.write(records(0, 10))
    pipeline = pipeline_file(tmp_path, raw)
    root = tmp_path / "root"
    ok(nordpipe("run", pipeline))
    assert len(batch_docs(root, "0001")) == 53

    rewritten = records(0, 10).replace("nummer 7", "nummer 8")
    assert len(rewritten) == len(records(0, 10))
    (raw / "same.jsonl").write_text(rewritten)  # same size, other bytes
    (raw / "shrunk.jsonl").write_text(records(0, 5))
    append(raw / "open.jsonl", records(3, 4))  # continues the last line, which had no newline
    append(raw / "grown.jsonl", records(10, 12))
    with gzip.open(raw / "packed.jsonl.gz", "at") as handle:  # a second gzip member: grown, but read whole
        handle.write(records(10, 12))
    os.utime(raw / "untouched.jsonl")  # only its time changes: the hash shows it unchanged
    result = nordpipe("run", pipeline)
    out = ok(result)
    size, smaller = len(records(0, 10).encode()), len(records(0, 5).encode())
    reasons = {
        "same.jsonl": f"its first {size:,} bytes differ from what was read",
        "shrunk.jsonl": f"it shrank from {size:,} to {smaller:,} bytes",
        "open.jsonl": "its last line, read without a newline, was continued",
        "packed.jsonl.gz": "files are read whole",
    }
    for name, reason in reasons.items():
        line = next((line for line in out.splitlines() if line.startswith(f"changed\td\t{raw / name}\t")), None)
        assert line is not None, (name, out)
        assert reason in line and line.endswith(": ingested again in full; its earlier records stay in batch 0001"), line
    assert "untouched" not in out and "batch\t0002\t5 new raw files" in out
    later = batch_docs(root, "0002")
    stems: dict[str, int] = {}
    for doc_id in later:
        stem = doc_id.rsplit("-", 1)[0].split("-", 1)[1]
        stems[stem] = stems.get(stem, 0) + 1
    assert stems == {"same": 10, "shrunk": 5, "open": 2, "packed": 12, "grown": 2}
    assert later["d-same-8"]["text"] == "Tekst nummer 8 om vejret i Aarhus."
    assert quarantined(root / "batches" / "0002" / "ingest" / "d") == [("open.jsonl", 3, "invalid JSON")]
    batch = json.loads((root / "batches" / "0002" / "batch.json").read_text())
    assert batch["reads"]["d"][str(raw / "grown.jsonl")]["why"] == "append"
    assert batch["reads"]["d"][str(raw / "same.jsonl")] == {"why": "changed", "reason": reasons["same.jsonl"]}
    assert ok(nordpipe("run", pipeline)).startswith("nothing to do")


def test_records_of_older_versions_lose_nothing(tmp_path: Path) -> None:
    """``ingested.json`` entries of an older nordpipe ("size:mtime", taken when the batch ended)
    cannot say what was read: the file is read again in full once, logged. A batch whose ingest
    recorded no reads (an ingest by an older nordpipe) records nothing for its files, logged,
    and the next run reads them again."""
    raw = tmp_path / "raw"
    raw.mkdir()
    feed = raw / "feed.jsonl"
    feed.write_text(records(0, 10))
    pipeline = pipeline_file(tmp_path, raw)
    root = tmp_path / "root"
    ok(nordpipe("run", pipeline))
    state = root / "state" / "ingested.json"
    stat = feed.stat()
    state.write_text(json.dumps({"d": {str(feed): f"{stat.st_size}:{int(stat.st_mtime)}"}}))
    out = ok(nordpipe("run", pipeline))
    assert (f"changed\td\t{feed}\tits record holds only size and time, taken when its batch ended" in out
            and out.count("ingested again in full; its earlier records stay in batch 0001") == 1), out
    assert len(batch_docs(root, "0002")) == 10

    # an ingest output without its record, as an ingest by an older nordpipe leaves it: the
    # batch is killed after recording, its record removed and the state put back
    before = state.read_text()
    append(feed, records(10, 12))
    killed = nordpipe("run", pipeline, env={KILL_ENV: "pipeline.finish-batch.after-ingested"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    (root / "batches" / "0003" / "ingest" / "d" / ".nordpipe" / "raw-files.json").unlink()
    state.write_text(before)
    out = ok(nordpipe("run", pipeline))
    assert f"unrecorded\td\t{feed}\tingest recorded no read of it" in out and "finished\tbatch 0003" in out
    assert json.loads(state.read_text()) == json.loads(before)
    out = ok(nordpipe("run", pipeline))  # read again from where batch 0002 stopped
    assert f"append\td\t{feed}\tgrown: read from byte {len(records(0, 10).encode()):,} (line 11)" in out
    assert sorted(batch_docs(root, "0004")) == ["d-feed-11", "d-feed-12"]


# --------------------------------------------------------------------------------------------
# Kill points: every step of the state updates reruns to the uninterrupted result


def _scenario(base: Path, kill_at: str | None = None) -> dict[str, Any]:
    """Batch 0001 over two files; then one grows and the other only gets a new time; batch 0002
    (killed at ``kill_at``, then rerun). Returns the state, with ``base`` made neutral."""
    raw = base / "raw"
    raw.mkdir(parents=True)
    (raw / "a.jsonl").write_text(records(0, 30))
    (raw / "b.jsonl").write_text(records(0, 20, tag="Andet"))
    for name in ("a.jsonl", "b.jsonl"):
        os.utime(raw / name, (OLD, OLD))
    pipeline = pipeline_file(base, raw)
    ok(nordpipe("run", pipeline))
    append(raw / "a.jsonl", records(30, 40))
    os.utime(raw / "a.jsonl", (OLD + 100, OLD + 100))
    os.utime(raw / "b.jsonl", (OLD + 200, OLD + 200))  # same bytes, new time: refreshed by a hash check
    if kill_at is not None:
        kills = base / "kills"
        killed = nordpipe("run", pipeline, env={KILL_ENV: kill_at, KILL_DIR_ENV: str(kills)})
        assert killed.returncode == (1 if kill_at.startswith("ingest.") else -9), killed.stdout + killed.stderr
        assert (kills / f"{kill_at}.killed").exists()
    ok(nordpipe("run", pipeline))
    assert ok(nordpipe("run", pipeline)).startswith("nothing to do")
    root = base / "root"
    batches = {}
    for batch in ("0001", "0002"):
        record = json.loads((root / "batches" / batch / "batch.json").read_text())
        batches[batch] = {k: v for k, v in record.items() if k not in ("started", "finished")}
        batches[batch]["documents"] = sorted(batch_docs(root, batch))
    state = {
        "ingested": json.loads((root / "state" / "ingested.json").read_text()),
        "batches": batches,
        "datasheet": (root / "datasets" / "d" / "README.md").read_text(),
        "all": sorted(p.relative_to(root).as_posix() for p in (root / "batches").rglob("*")
                      if ".nordpipe" not in p.parts and "logs" not in p.parts),
    }
    return json.loads(json.dumps(state).replace(str(base), "BASE"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _scenario(tmp_path_factory.mktemp("uninterrupted") / "base")


@pytest.mark.parametrize("kill_at", [
    "pipeline.open-batch.after-refresh",
    "ingest.raw-files.before-merge",
    "pipeline.finish-batch.after-ingested",
    "pipeline.finish-batch.after-datasheets",
    "pipeline.finish-batch.after-done",
])
def test_a_kill_at_each_step_reruns_to_the_uninterrupted_result(tmp_path: Path, uninterrupted: dict[str, Any],
                                                               kill_at: str) -> None:
    state = _scenario(tmp_path / "base", kill_at)
    assert state == uninterrupted
    ingested = state["ingested"]["d"]
    assert ingested["BASE/raw/a.jsonl"]["batch"] == "0002" and ingested["BASE/raw/a.jsonl"]["lines"] == 40
    assert ingested["BASE/raw/b.jsonl"]["batch"] == "0001" and ingested["BASE/raw/b.jsonl"]["mtime_ns"] == (OLD + 200) * 10**9
    assert state["batches"]["0002"]["documents"] == sorted(f"d-a-{n}" for n in range(31, 41))


# --------------------------------------------------------------------------------------------
# Slurm


@pytest.mark.slurm
def test_records_appended_during_a_slurm_batch_are_read_by_the_next_batch(tmp_path: Path, slurm_cluster: None) -> None:
    """The append case with every ingest run as a Slurm job: the kill point fires in the job on
    the node, the records are appended, and the batches read every record exactly once."""
    raw = tmp_path / "raw"
    raw.mkdir()
    feed = raw / "feed.jsonl"
    feed.write_text(records(0, 100))
    pipeline = pipeline_file(tmp_path, raw, executor="slurm")
    root = tmp_path / "root"
    kills = tmp_path / "kills"
    killed = nordpipe("run", pipeline, env={KILL_ENV: "ingest.raw-files.before-merge", KILL_DIR_ENV: str(kills)})
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in (root / "logs").glob("*")) if (root / "logs").exists() else ""
    assert killed.returncode == 1, killed.stdout + killed.stderr + logs
    assert "submitted\tingest" in killed.stdout and (kills / "ingest.raw-files.before-merge.killed").exists()
    append(feed, records(100, 200))
    assert "finished\tbatch 0001" in ok(nordpipe("run", pipeline))
    assert sorted(batch_docs(root, "0001")) == sorted(f"d-feed-{n}" for n in range(1, 101))
    second = ok(nordpipe("run", pipeline))
    assert "submitted\tingest" in second and "finished\tbatch 0002" in second
    assert sorted(batch_docs(root, "0002")) == sorted(f"d-feed-{n}" for n in range(101, 201))
    assert ok(nordpipe("run", pipeline)).startswith("nothing to do")
