"""Issue 21's pipeline cases, on the local executor and on the real Slurm cluster the test
suite starts: a stage killed in the middle of its state update (line dedup's Bloom generation,
MinHash's index generation) reruns, under ``nordpipe run``, to the batch and state of an
uninterrupted run; a batch left with zero documents finishes and the next batch runs; a stage
never reads an unfinished upstream output (also when it would run on Slurm).

Kills are fault injections at named kill points (``NORDPIPE_TEST_KILL_AT``), never timing; on
Slurm the kill fires inside the stage's job (sbatch passes the environment on).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import nordpipe_executable

from nordpipe.runner import KILL_ENV
from nordpipe.sample import generate_sample

EXECUTORS = ["local", pytest.param("slurm", marks=pytest.mark.slurm)]


def nordpipe(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def logs(root: Path) -> str:
    folder = root / "logs"
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(folder.glob("*"))) if folder.exists() else ""


def ok(result: subprocess.CompletedProcess[str], root: Path) -> str:
    assert result.returncode == 0, result.stdout + result.stderr + logs(root)
    return result.stdout


def news_raw(folder: Path, seed: int) -> Path:
    """One raw news file of the sample (different seeds: different days, with repeated boilerplate)."""
    sample = folder / f"sample-{seed}"
    generate_sample(sample, seed=seed, scale=0.05)
    return sorted((sample / "raw" / "nyheder").glob("*.jsonl.gz"))[0]


def pipeline(base: Path, raw: Path, root: Path, executor: str, stages: str) -> Path:
    path = base / f"{root.name}.yaml"
    path.write_text(
        f"root: {root}\nexecutor: {executor}\n"
        f"datasets:\n  - name: nyheder\n    raw: [{raw}]\n"
        "    params: {license: cc0-1.0, language: da, added: '2024-01-01', text_field: body, id_field: id,"
        " created: '2020-01-01, 2024-12-31'}\n"
        f"stages:\n{stages}", encoding="utf-8")
    return path


STATE_STAGES = ("  - type: lines\n    params: {state: '{root}/state/lines', expected_lines: 100000}\n"
                "  - type: minhash\n    params: {index: '{root}/state/minhash'}\n")


def batch_documents(root: Path, batch: str) -> dict[str, dict[str, str]]:
    """Every stage output of a batch: documents by id, with the root's path made neutral."""
    found: dict[str, dict[str, str]] = {}
    for stage in sorted((root / "batches" / batch).iterdir()):
        if not stage.is_dir():
            continue
        docs = {}
        for file in sorted(stage.rglob("documents/*.jsonl.gz")):
            with gzip.open(file, "rt", encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    docs[record["id"]] = json.dumps(record, sort_keys=True).replace(str(root), "ROOT")
        found[stage.name] = docs
    return found


def state_summary(state: Path) -> dict[str, Any]:
    """The current generation's number, the kept generations and the data bytes of a state."""
    current = (state / "CURRENT").read_text().strip()
    record = json.loads((state / current / "state.json").read_text())
    data = {p.name: p.read_bytes() for p in sorted((state / current).glob("*.bloom"))}
    data.update({f"part {k}": (state / current / run["part"]).read_bytes()
                 for k, run in enumerate(record["runs"]) if run.get("part")})
    return {"current": current, "kept": sorted(p.name for p in state.iterdir() if p.name.startswith("gen-")),
            "parents": [run["parent"] for run in record["runs"]], "data": data}


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("point", ["state.commit.after-rename", "minhash.before-index-commit"])
def test_a_stage_killed_in_its_state_update_reruns_to_the_uninterrupted_batch(
        tmp_path: Path, executor: str, point: str, request: pytest.FixtureRequest) -> None:
    if executor == "slurm":
        request.getfixturevalue("slurm_cluster")
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(news_raw(tmp_path, 11), raw / "day1.jsonl.gz")
    roots = {name: tmp_path / name for name in ("reference", "killed")}
    files = {name: pipeline(tmp_path, raw, root, executor, STATE_STAGES) for name, root in roots.items()}
    for name in roots:
        ok(nordpipe("run", files[name]), roots[name])
    # night 2: new articles; five of night 1's again under new ids (line dedup empties them);
    # five more with a word added to every line (MinHash finds them in its index)
    with gzip.open(news_raw(tmp_path, 12), "rt", encoding="utf-8") as fresh, \
            gzip.open(raw / "day1.jsonl.gz", "rt", encoding="utf-8") as old:
        earlier = [json.loads(line) for line in old][:10]
        copies = [{**record, "id": f"copy-{n}"} for n, record in enumerate(earlier[:5])]
        copies += [{**record, "id": f"edited-{n}", "body": "\n".join(f"{line} igen" if line else line for line in record["body"].split("\n"))}
                   for n, record in enumerate(earlier[5:])]
        text = fresh.read() + "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in copies)
    (raw / "day2.jsonl").write_text(text, encoding="utf-8")
    ok(nordpipe("run", files["reference"]), roots["reference"])

    marks = tmp_path / "marks"
    killed = nordpipe("run", files["killed"], env={KILL_ENV: point, KILL_ENV.replace("KILL_AT", "KILL_DIR"): str(marks)})
    assert killed.returncode != 0, killed.stdout
    assert (marks / f"{point}.killed").exists(), killed.stdout + killed.stderr + logs(roots["killed"])
    batch = json.loads((roots["killed"] / "batches" / "0002" / "batch.json").read_text())
    assert batch["done"] is False
    rerun = ok(nordpipe("run", files["killed"]), roots["killed"])
    assert "finished\tbatch 0002" in rerun
    assert batch_documents(roots["killed"], "0002") == batch_documents(roots["reference"], "0002")
    for state in ("lines", "minhash"):
        assert state_summary(roots["killed"] / "state" / state) == state_summary(roots["reference"] / "state" / state)
    # the second night really was deduplicated against the first
    lines_out = next((roots["killed"] / "batches" / "0002").glob("*-lines"))
    stats = json.loads((lines_out / ".nordpipe" / "stats.json").read_text())
    assert stats["line_dedup"]["duplicates_of_earlier_runs"] > 0
    minhash_out = next((roots["killed"] / "batches" / "0002").glob("*-minhash"))
    assert json.loads((minhash_out / ".nordpipe" / "stats.json").read_text())["documents_out"] < stats["documents_out"]
    assert ok(nordpipe("run", files["killed"]), roots["killed"]).startswith("nothing to do")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_batch_without_documents_finishes_and_the_next_batch_runs(tmp_path: Path, executor: str,
                                                                     request: pytest.FixtureRequest) -> None:
    if executor == "slurm":
        request.getfixturevalue("slurm_cluster")
    raw = tmp_path / "raw"
    raw.mkdir()
    # every record lacks the text field: all quarantined at ingest
    (raw / "day1.jsonl").write_text("".join(json.dumps({"title": f"Dag {i}", "id": f"a{i}"}) + "\n" for i in range(5)))
    root = tmp_path / "root"
    file = pipeline(tmp_path, raw, root, executor, STATE_STAGES + "  - type: tokenize\n")
    first = ok(nordpipe("run", file), root)
    assert "finished\tbatch 0001\tno documents left" in first
    assert json.loads((root / "batches" / "0001" / "batch.json").read_text())["done"] is True
    shutil.copy(news_raw(tmp_path, 13), raw / "day2.jsonl.gz")
    second = ok(nordpipe("run", file), root)
    assert "batch\t0002\t1 new raw files" in second and "finished\tbatch 0002" in second
    manifest = json.loads(next((root / "batches" / "0002").glob("*-tokenize")).joinpath("manifest.json").read_text())
    assert manifest["tokens"] > 0
    # the empty first batch left the states as they were: the second batch made their first generation
    for state in ("lines", "minhash"):
        assert state_summary(root / "state" / state)["current"] == "gen-000001"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_stage_refuses_an_unfinished_upstream_output(tmp_path: Path, executor: str,
                                                        request: pytest.FixtureRequest) -> None:
    """What a killed ``filter quality`` leaves (a run record, some files, no completion record)
    is refused by the next stage with exit 1 and the upstream's status, before any job is submitted."""
    if executor == "slurm":
        request.getfixturevalue("slurm_cluster")
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(news_raw(tmp_path, 14), raw / "day1.jsonl.gz")
    root = tmp_path / "root"
    ok(nordpipe("run", pipeline(tmp_path, raw, root, executor, "  - type: quality\n    params: {languages: da}\n")), root)
    quality = next((root / "batches" / "0001").glob("*-quality"))
    (quality / ".nordpipe" / "complete.json").unlink()  # as if killed before it completed
    for command in (["dedup", "docs", quality, tmp_path / "docs"],
                    ["dedup", "lines", quality, tmp_path / "lines", "--state", tmp_path / "state"]):
        result = nordpipe(*command, "--executor", executor)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "is an unfinished nordpipe quality output" in result.stderr and "nordpipe status" in result.stderr
        assert not (Path(command[3]) / "documents").exists()
    assert not (tmp_path / "state" / "CURRENT").exists()
