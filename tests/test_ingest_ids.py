"""Ingest's cross-file duplicate-id pass is crash-safe (issue 21): a kill at every step of its
write-ahead sequence reruns to the uninterrupted output, and no unique record is quarantined."""

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

KILL_POINTS = ["ingest.duplicate-ids.planned", "ingest.duplicate-ids.staged", "ingest.duplicate-ids.renamed",
               "ingest.duplicate-ids.delta"]


def make_raw(folder: Path) -> None:
    """Three files; ids repeat across them (two streams to rewrite, one of them twice hit)."""
    folder.mkdir(parents=True)
    files = {"a.jsonl": ["x", "y", "w"], "b.jsonl": ["y", "z", "v", "x"], "c.jsonl": ["u", "z", "t"]}
    for name, ids in files.items():
        (folder / name).write_text("".join(
            json.dumps({"id": i, "text": f"Tekst fra {name} med id {i}.", "created": "2020"}) + "\n" for i in ids))


def ingest(raw: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*nordpipe_executable(), "ingest", str(raw), "--dataset", "dups", "--output", str(out),
                           "--id-field", "id", "--tasks", "3"],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)


def snapshot(dataset: Path) -> dict[str, Any]:
    docs = {f.name: gzip.decompress(f.read_bytes()) for f in sorted((dataset / "documents").iterdir())}
    quarantine = {f.name: [{k: v for k, v in json.loads(line).items() if k != "file"} for line in f.read_text().splitlines() if line]
                  for f in sorted((dataset / "quarantine").iterdir())} if (dataset / "quarantine").exists() else {}
    stats = json.loads((dataset / ".nordpipe" / "stats.json").read_text())
    counts = {k: stats[k] for k in ("documents_out", "characters_out", "quarantined", "sources_out")}
    hidden = [p.name for p in dataset.rglob(".*") if p.is_file() and "tmp" in p.name]
    return {"docs": docs, "quarantine": quarantine, "counts": counts, "leftovers": hidden}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_at_each_step_of_the_duplicate_id_pass_reruns_to_the_same_output(tmp_path: Path, point: str) -> None:
    make_raw(tmp_path / "raw")
    reference = ingest(tmp_path / "raw", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    expected = snapshot(tmp_path / "ref" / "dups")
    kept = sorted(json.loads(line)["id"] for data in expected["docs"].values() for line in data.splitlines())
    assert kept == ["t", "u", "v", "w", "x", "y", "z"]  # each id once; the repeats are quarantined
    assert expected["counts"]["quarantined"] == {"duplicate id": 3} and expected["counts"]["documents_out"] == 7

    marks = tmp_path / "marks"
    killed = ingest(tmp_path / "raw", tmp_path / "out", env={KILL_ENV: point, KILL_ENV.replace("KILL_AT", "KILL_DIR"): str(marks)})
    assert (marks / f"{point}.killed").exists(), killed.stderr
    assert killed.returncode == -9
    rerun = ingest(tmp_path / "raw", tmp_path / "out")
    assert rerun.returncode == 0, rerun.stderr
    assert "duplicate id" in rerun.stdout
    got = snapshot(tmp_path / "out" / "dups")
    assert got == expected
    assert subprocess.run([*nordpipe_executable(), "validate", str(tmp_path / "out" / "dups")],
                          capture_output=True, text=True).returncode == 0
