"""``nordpipe validate`` on stage outputs, ingest datasets, and missing or empty paths.

The stage output is made by the real CLI once per module (``sample`` -> ``ingest`` of two
datasets -> ``filter quality``, a few seconds); tests that corrupt it work on a copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import nordpipe_executable, record

from nordpipe.documents import iter_document_lines, write_records
from nordpipe.validate import classify_folder, validate_paths

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nordpipe {args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``data`` (ingest root: nyheder, forum) and ``out`` (``filter quality data out``)."""
    root = tmp_path_factory.mktemp("chain")
    _run("sample", root / "sample", "--scale", "0.1")
    for name in ("nyheder", "forum"):
        _run("ingest", root / "sample" / "raw" / name, "--config", root / "sample" / "datasets" / f"{name}.yaml",
             "--output", root / "data")
    _run("filter", "quality", root / "data", root / "out")
    return {"data": root / "data", "out": root / "out"}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _records(path: Path) -> list[dict[str, Any]]:
    return [item.record for item in iter_document_lines(str(path))]


def _report(cli: Cli, *args: object) -> tuple[int, dict[str, Any], str]:
    result = cli("validate", *args, "--json")
    return result.returncode, json.loads(result.stdout), result.stderr


def test_stage_output_validates(chain, nordpipe_cli):
    out = chain["out"]
    assert not (out / "README.md").exists()  # a stage output has no datasheet
    code, report, _ = _report(nordpipe_cli, out)
    assert code == 0, report
    assert report["ok"] and report["records"] > 0 and report["invalid"] == 0
    assert {f["kind"] for f in report["files"]} == {"stage"}
    sources = {r["source"] for f in out.glob("documents/*.jsonl.gz") for r in _records(f)}
    assert sources == {"nyheder", "forum"}  # merged datasets: source differs from the folder name
    # The ingest root and the stage output together; the plain listing ends with "valid".
    result = nordpipe_cli("validate", chain["data"], out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("\nvalid")


def test_ingest_datasets_keep_the_strict_checks(chain, nordpipe_cli, tmp_path):
    code, report, _ = _report(nordpipe_cli, chain["data"])
    assert code == 0 and {f["kind"] for f in report["files"]} == {"dataset"}
    # Ingest writes .nordpipe/run.json too; its stage ("ingest") keeps the folder a dataset.
    data = _copy(chain["data"], tmp_path / "data")
    shard = sorted((data / "nyheder" / "documents").glob("*.jsonl.gz"))[0]
    records = _records(shard)
    records[4]["source"] = "forum"
    write_records(str(shard), records)
    (data / "forum" / "README.md").unlink()
    code, report, _ = _report(nordpipe_cli, data)
    assert code == 1
    errors = {f["path"]: f["errors"] for f in report["files"] if f["errors"]}
    assert errors == {str(shard): [{"line": 5, "reason": "source mismatch: 'forum' differs from the dataset name 'nyheder'"}]}
    assert report["datasheet_problems"] == [f"{data / 'forum' / 'README.md'}: datasheet missing"]
    assert classify_folder(str(data / "forum"), []).kind == "dataset"


def test_corrupted_stage_records_are_reported_with_file_and_line(chain, nordpipe_cli, tmp_path):
    out = _copy(chain["out"], tmp_path / "out")
    shard = sorted((out / "documents").glob("nyheder*.jsonl.gz"))[0]
    records = _records(shard)
    first = records[0]
    records[1]["created"] = "2021-13-01, 2022-01-01"  # line 2: not a calendar date
    records[2]["id"] = first["id"]  # line 3: duplicate id within the source
    del records[3]["text"]  # line 4: missing text
    records[5]["metadata"]["nordpipe"]["removed"] = "gopher_quality:stop_words"  # line 6
    # Same id in another source is fine: ids are unique per source.
    records.append({**first, "source": "andet"})
    write_records(str(shard), records)
    code, report, _ = _report(nordpipe_cli, out)
    assert code == 1 and not report["ok"]
    [bad] = [f for f in report["files"] if f["invalid"]]
    assert bad["path"] == str(shard) and bad["invalid"] == 4
    lines = {e["line"]: e["reason"] for e in bad["errors"]}
    assert sorted(lines) == [2, 3, 4, 6]
    assert lines[2].startswith("bad date: created '2021-13-01'")
    assert lines[3] == f"duplicate id {first['id']!r} in source 'nyheder' (first at {shard.name}:1)"
    assert lines[4] == "missing field: 'text'"
    assert lines[6].startswith("removed document among the kept ones")
    # The plain listing names file and line, like a compiler.
    result = nordpipe_cli("validate", out)
    assert result.returncode == 1
    assert f"{shard}:4: missing field: 'text'" in result.stdout
    assert result.stdout.rstrip().endswith("\ninvalid")


def test_duplicate_ids_across_files_of_a_stage_output(chain, nordpipe_cli, tmp_path):
    out = _copy(chain["out"], tmp_path / "out")
    shards = sorted((out / "documents").glob("nyheder*.jsonl.gz"))
    assert len(shards) >= 2
    donor = _records(shards[0])[0]
    extra = out / "documents" / "zz.jsonl.gz"
    write_records(str(extra), [{**donor, "text": "Et andet dokument med samme id."}])
    code, report, _ = _report(nordpipe_cli, out)
    assert code == 1
    [bad] = [f for f in report["files"] if f["invalid"]]
    assert bad["path"] == str(extra) and "duplicate id" in bad["errors"][0]["reason"]


def test_max_chars_applies_to_stage_outputs(chain, nordpipe_cli):
    result = nordpipe_cli("validate", chain["out"], "--max-chars", "50", "--json")
    assert result.returncode == 1
    reasons = [e["reason"] for f in json.loads(result.stdout)["files"] for e in f["errors"]]
    assert reasons and all(r.startswith("text too long") for r in reasons)


def test_stage_output_recognized_by_flattened_names(tmp_path, nordpipe_cli):
    """Without state or datasheet, ``<dataset>__<stem>`` file names mark a stage output;
    without them a bare NAME/documents is an ingest dataset (strict)."""
    out = tmp_path / "merged"
    (out / "documents").mkdir(parents=True)
    write_records(str(out / "documents" / "nyheder__a.jsonl.gz"), [record("1", "En tekst.", source="nyheder")])
    write_records(str(out / "documents" / "forum__a.jsonl.gz"),
                  [record("1", "En anden tekst.", source="forum", nordpipe={"language": "da", "language_score": 0.9})])
    code, report, _ = _report(nordpipe_cli, out)
    assert code == 0, report
    bare = tmp_path / "bare"
    (bare / "documents").mkdir(parents=True)
    write_records(str(bare / "documents" / "a.jsonl.gz"), [record("1", "En tekst.", source="nyheder")])
    code, report, _ = _report(nordpipe_cli, bare)
    assert code == 1
    assert "source mismatch" in report["files"][0]["errors"][0]["reason"]
    assert any("datasheet missing" in p for p in report["datasheet_problems"])


def test_stage_metadata_must_be_an_object(tmp_path):
    out = tmp_path / "out"
    (out / "documents").mkdir(parents=True)
    (out / ".nordpipe").mkdir()
    (out / ".nordpipe" / "stats.json").write_text(json.dumps({"stage": "pii"}))
    lines = [record("1", "Tekst.", source="a", nordpipe={"pii": {}}), record("2", "Tekst.", source="a", nordpipe="da")]
    (out / "documents" / "x.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    report = validate_paths([str(out)])
    assert not report.ok
    assert report.files[0].errors == [{"line": 2, "reason": "wrong type: metadata.nordpipe is str, expected an object"}]
    assert report.datasheet_problems == []


def test_missing_path_fails_with_a_message(tmp_path, nordpipe_cli):
    missing = tmp_path / "nowhere"
    result = nordpipe_cli("validate", missing)
    assert result.returncode == 1
    assert f"{missing}: no such file or folder" in result.stderr
    assert result.stdout.rstrip().endswith("invalid")
    # --json: stdout stays JSON, the reason is in it and on stderr.
    code, report, stderr = _report(nordpipe_cli, missing)
    assert code == 1 and report["problems"] == [f"{missing}: no such file or folder"] and str(missing) in stderr


def test_empty_folders_fail(tmp_path, nordpipe_cli, chain):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = nordpipe_cli("validate", empty)
    assert result.returncode == 1
    assert f"{empty}: no document files" in result.stderr
    # Only side folders (removed/, quarantine/, .nordpipe/) count as empty too.
    side = tmp_path / "side"
    (side / "removed").mkdir(parents=True)
    write_records(str(side / "removed" / "a.jsonl.gz"), [record("1", "Fjernet.", source="a")])
    result = nordpipe_cli("validate", side)
    assert result.returncode == 1 and "no document files" in result.stderr
    # Document files without a single record.
    hollow = tmp_path / "hollow"
    (hollow / "documents").mkdir(parents=True)
    (hollow / "documents" / "a.jsonl").write_bytes(b"\n")
    result = nordpipe_cli("validate", hollow, "--no-datasheet")
    assert result.returncode == 1 and f"{hollow}: no records in 1 document file(s)" in result.stderr
    # One good path does not hide an empty one.
    result = nordpipe_cli("validate", chain["out"], empty)
    assert result.returncode == 1 and "no document files" in result.stderr


def test_a_file_named_twice_is_validated_once(chain):
    shard = sorted((chain["out"] / "documents").glob("*.jsonl.gz"))[0]
    report = validate_paths([str(chain["out"]), str(shard)])
    assert report.ok, report.to_json()
    assert len(report.files) == len(list((chain["out"] / "documents").glob("*.jsonl.gz")))
