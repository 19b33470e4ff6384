"""Persistent dedup state between runs (issue 21): generations, rollback, inputs already seen,
and every kill point of a state update rerunning to the uninterrupted result.

Line dedup (``--state``) and MinHash (``--index``) share ``nordpipe.state.StateDirectory``; each
rule is checked on both, through the real CLI in subprocesses where a kill is involved.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import nordpipe_executable

from nordpipe.layout import OutputLayout, file_digest
from nordpipe.runner import KILL_ENV, OutputLock, RunError, RunOptions
from nordpipe.state import StateDirectory

WORDS = [f"ord{i}" for i in range(400)] + ["og", "i", "at", "det", "en", "til", "er", "som", "på", "de"]


def _doc_text(batch: int, file: int, doc: int) -> str:
    rng = random.Random(f"{batch}-{file}-{doc}")
    pool = random.Random(0)
    shared = [" ".join(pool.choice(WORDS) for _ in range(9)) for _ in range(25)]
    lines = [" ".join(rng.choice(WORDS) for _ in range(14)) for _ in range(rng.randrange(4, 9))]
    lines.insert(rng.randrange(len(lines)), rng.choice(shared))  # repeated across the corpus
    return "\n".join(lines)


def make_batch(root: Path, batch: int, files: int = 2, docs: int = 30) -> Path:
    """A standardized batch: unique lines, lines repeated across batches, and in batches after
    the first, near copies (one word changed) of first-batch documents."""
    folder = root / f"batch{batch}" / "documents"
    folder.mkdir(parents=True)
    for f in range(files):
        with gzip.open(folder / f"part{f}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for d in range(docs):
                text = _doc_text(batch, f, d)
                if batch and d % 4 == 0:
                    words = _doc_text(0, f, d).split(" ")
                    words[len(words) // 2] = "rettet"
                    text = " ".join(words)
                item = {"id": f"b{batch}-f{f}-d{d}", "text": text, "source": "web", "added": "2024-05-01",
                        "created": "2020-01-01, 2024-01-01", "metadata": {}}
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    return folder.parent


def documents(output: Path) -> dict[str, bytes]:
    """Decompressed document and removed shards by name."""
    found = {}
    for kind in ("documents", "removed"):
        for path in sorted((output / kind).glob("*.jsonl.gz")) if (output / kind).exists() else []:
            found[f"{kind}/{path.name}"] = gzip.decompress(path.read_bytes())
    return found


def state_files(state: Path) -> dict[str, Any]:
    """What a state directory holds, for comparing two of them: the current generation's number,
    the kept generations, each file's bytes, and the runs recorded (without times and run ids)."""
    current = (state / "CURRENT").read_text().strip()
    kept = sorted(p.name for p in state.iterdir() if p.name.startswith("gen-"))
    record = json.loads((state / current / "state.json").read_text())
    folder = state / current
    data = {p.name: p.read_bytes() for p in sorted(folder.glob("*.bloom"))}
    # MinHash parts are named by their run's id: compare them in run order
    data.update({f"part {k}": (folder / run["part"]).read_bytes() for k, run in enumerate(record["runs"]) if run.get("part")})
    runs = [{k: v for k, v in run.items() if k not in ("finished", "run_id", "part", "output")} for run in record["runs"]]
    return {"current": current, "kept": kept, "runs": runs, "data": data}


def cli(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600)


LINES = ["dedup", "lines"]
DOCS = ["dedup", "docs"]


def dedup(kind: str, inp: Path, out: Path, state: Path, *extra: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if kind == "lines":
        return cli(*LINES, inp, out, "--state", state, "--expected-lines", "100000", *extra, env=env)
    return cli(*DOCS, inp, out, "--index", state, *extra, env=env)


# --------------------------------------------------------------------------------------------
# Inputs already in the state; generations; rollback


@pytest.mark.parametrize("kind", ["lines", "minhash"])
def test_seen_input_is_refused_and_rollback_redoes_a_night(tmp_path: Path, kind: str) -> None:
    batches = [make_batch(tmp_path, b) for b in range(3)]
    state = tmp_path / "state"
    for number, batch in enumerate(batches):
        result = dedup(kind, batch, tmp_path / f"out{number}", state)
        assert result.returncode == 0, result.stderr
    night2 = documents(tmp_path / "out1")
    night3 = documents(tmp_path / "out2")
    assert any(b"rettet" in data for data in night2.values())
    before = state_files(state)
    assert before["kept"] == ["gen-000001", "gen-000002", "gen-000003"]

    # The upstream's completion record names what it wrote; the state records those digests.
    # (The batches here are plain folders, so their digests were computed by reading them.)
    record = json.loads((state / before["current"] / "state.json").read_text())
    digests = {item["path"]: item["digest"] for run in record["runs"] for item in run["inputs"]}
    for path in (batches[1] / "documents").iterdir():
        assert digests[str(path)] == file_digest(str(path))["digest"]

    # Night 2's output was lost; rerunning it into a new folder against the same state would mark
    # all of it as seen before: refused, with the way back, and the state is untouched.
    again = dedup(kind, batches[1], tmp_path / "out1-again", state)
    assert again.returncode == 1
    assert "2 of 2 input files are already in the" in again.stderr
    assert f"nordpipe state rollback {state} --to 1" in again.stderr and "--rerun-seen" in again.stderr
    assert state_files(state) == before

    shown = cli("state", "show", state, "--json")
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert [(g["generation"], g["current"], g["parent"]) for g in listed["generations"]] == [
        (1, False, 0), (2, False, 1), (3, True, 2)]
    assert listed["generations"][1]["added_by"][0]["output"] == str(tmp_path / "out1")

    rolled = cli("state", "rollback", state, "--to", "1")
    assert rolled.returncode == 0, rolled.stderr
    assert "generation 3 -> 1" in rolled.stdout
    # redo nights 2 and 3 on generation 1: the same outputs as the first time
    assert dedup(kind, batches[1], tmp_path / "out1-again", state).returncode == 0
    assert dedup(kind, batches[2], tmp_path / "out2-again", state).returncode == 0
    assert documents(tmp_path / "out1-again") == night2
    assert documents(tmp_path / "out2-again") == night3
    after = state_files(state)
    assert after["current"] == "gen-000005" and after["kept"] == ["gen-000003", "gen-000004", "gen-000005"]
    assert after["data"] == before["data"]  # the same filter / index content as before the rollback
    record = json.loads((state / "gen-000005" / "state.json").read_text())
    assert [run["parent"] for run in record["runs"]] == [0, 1, 4]


@pytest.mark.parametrize("kind", ["lines", "minhash"])
def test_rerun_seen_runs_anyway_and_keep_generations(tmp_path: Path, kind: str) -> None:
    batch = make_batch(tmp_path, 0)
    state = tmp_path / "state"
    assert dedup(kind, batch, tmp_path / "out", state, "--keep-generations", "1").returncode == 0
    # the same data again removes everything, which the removal guard refuses unless told; the
    # same command told so accepts that run (committed to the state once: one generation added)
    refused = dedup(kind, batch, tmp_path / "out-seen", state, "--rerun-seen", "--keep-generations", "1")
    assert refused.returncode == 1 and "removed 100.0% of its input" in " ".join(refused.stderr.split())
    result = dedup(kind, batch, tmp_path / "out-seen", state, "--rerun-seen", "--keep-generations", "1", "--json",
                   "--max-removed-share", "1")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    if kind == "lines":
        # every tracked line is in the state already: all of them are removed, and the run says so
        assert stats["line_dedup"]["input_files_seen_before"] == 2
        assert stats["line_dedup"]["lines_removed"] == stats["line_dedup"]["lines_checked"]
    else:
        assert stats["removed"]["minhash:duplicate"] == stats["documents_in"]
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("gen-")) == ["gen-000002"]


@pytest.mark.parametrize("kind", ["lines", "minhash"])
def test_redoing_the_last_output_builds_on_its_parent_but_an_earlier_one_is_refused(tmp_path: Path, kind: str) -> None:
    batches = [make_batch(tmp_path, b) for b in range(2)]
    state = tmp_path / "state"
    for number, batch in enumerate(batches):
        assert dedup(kind, batch, tmp_path / f"out{number}", state).returncode == 0
    night2 = documents(tmp_path / "out1")
    before = state_files(state)
    # The last night's output is lost (deleted after a crash) and the same command is rerun:
    # a redo of the state's last run, built on the generation before it, with the same result.
    shutil.rmtree(tmp_path / "out1")
    result = dedup(kind, batches[1], tmp_path / "out1", state)
    assert result.returncode == 0, result.stderr
    assert documents(tmp_path / "out1") == night2
    after = state_files(state)
    assert after["current"] == "gen-000003" and after["data"] == before["data"] and after["runs"] == [
        {**run, "generation": 3 if run["generation"] == 2 else run["generation"]} for run in before["runs"]]
    record = json.loads((state / "gen-000003" / "state.json").read_text())
    assert record["parent"] == 1 and [run["output"] for run in record["runs"]] == [str(tmp_path / "out0"), str(tmp_path / "out1")]
    # Night 1 was used by night 2: redoing it in place would not give night 1's result.
    shutil.rmtree(tmp_path / "out0")
    refused = dedup(kind, batches[0], tmp_path / "out0", state)
    assert refused.returncode == 1
    assert f"{tmp_path / 'out0'} was deduplicated into the" in refused.stderr and "later runs built on it" in refused.stderr
    assert state_files(state) == after


# --------------------------------------------------------------------------------------------
# Kill points: every step of a state update reruns to the uninterrupted result


LINE_KILL_POINTS = ["lines.before-commit", "state.commit.after-build", "state.commit.after-rename",
                    "state.commit.after-switch", "lines.after-commit"]
MINHASH_KILL_POINTS = ["minhash.before-index-commit", "state.commit.after-build", "state.commit.after-rename",
                       "state.commit.after-switch", "minhash.after-index-commit"]


@pytest.mark.parametrize(("kind", "point"), [("lines", p) for p in LINE_KILL_POINTS] + [("minhash", p) for p in MINHASH_KILL_POINTS])
def test_kill_at_each_step_of_a_state_update_reruns_to_the_same_result(tmp_path: Path, kind: str, point: str) -> None:
    batches = [make_batch(tmp_path, b) for b in range(2)]
    for name in ("ref", "run"):
        assert dedup(kind, batches[0], tmp_path / f"{name}-out0", tmp_path / f"{name}-state", "--keep-generations", "1").returncode == 0
    assert dedup(kind, batches[1], tmp_path / "ref-out1", tmp_path / "ref-state", "--keep-generations", "1").returncode == 0

    marks = tmp_path / "marks"
    env = {KILL_ENV: point, KILL_ENV.replace("KILL_AT", "KILL_DIR"): str(marks)}
    killed = dedup(kind, batches[1], tmp_path / "run-out1", tmp_path / "run-state", "--keep-generations", "1", env=env)
    assert (marks / f"{point}.killed").exists(), killed.stderr
    assert killed.returncode != 0
    assert OutputLayout.of(str(tmp_path / "run-out1")).completed() is None
    rerun = dedup(kind, batches[1], tmp_path / "run-out1", tmp_path / "run-state", "--keep-generations", "1")
    assert rerun.returncode == 0, rerun.stderr
    assert documents(tmp_path / "run-out1") == documents(tmp_path / "ref-out1")
    assert state_files(tmp_path / "run-state") == state_files(tmp_path / "ref-state")
    assert not [p for p in (tmp_path / "run-state").iterdir() if p.name.endswith(".tmp") or p.name.startswith(".staging")]


# --------------------------------------------------------------------------------------------
# The CLI's mistakes, and states written before generations


def test_state_cli_mistakes(tmp_path: Path) -> None:
    assert cli("state", "--help").returncode == 0
    missing = cli("state", "show", tmp_path / "nothing")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert cli("state", "rollback", tmp_path / "nothing").returncode == 2  # --to is required
    batch = make_batch(tmp_path, 0)
    state = tmp_path / "state"
    assert dedup("lines", batch, tmp_path / "out", state).returncode == 0
    absent = cli("state", "rollback", state, "--to", "9")
    assert absent.returncode == 1 and "no generation 9 (kept generations: 1)" in absent.stderr
    plain = cli("state", "show", state)
    assert plain.returncode == 0 and plain.stdout.startswith("generation\t1\tcurrent\tparent=0")
    with OutputLock(str(state)):  # a run holds the state
        busy = cli("state", "rollback", state, "--to", "1")
    assert busy.returncode == 1 and "in use" in busy.stderr
    other = tmp_path / "notastate"
    other.mkdir()
    assert cli("state", "show", other).returncode == 1
    # a line-dedup state is not a MinHash index
    wrong = dedup("minhash", make_batch(tmp_path, 1), tmp_path / "docs", state)
    assert wrong.returncode == 1 and "is a lines state, not a minhash state" in wrong.stderr


def test_line_state_from_before_generations_still_knows_its_inputs(tmp_path: Path) -> None:
    """Format 1 (no kind, no parent, input paths only): still read; seen input found by path."""
    from nordpipe.lines import run_line_dedup

    batch = make_batch(tmp_path, 0)
    state = tmp_path / "state"
    run_line_dedup(str(batch), str(tmp_path / "out"), str(state), {"expected_lines": 100_000}, RunOptions())
    path = state / "gen-000001" / "state.json"
    record = json.loads(path.read_text())
    for key in ("kind", "parent", "created"):
        record.pop(key)
    record["format"] = 1
    for run in record["runs"]:
        run["files"] = [item["path"] for item in run.pop("inputs")]
        run.pop("parent")
    path.write_text(json.dumps(record))
    with pytest.raises(RunError, match="2 of 2 input files are already in the line-dedup state"):
        run_line_dedup(str(batch), str(tmp_path / "again"), str(state), {}, RunOptions())
    stats = run_line_dedup(str(make_batch(tmp_path, 1)), str(tmp_path / "next"), str(state), {}, RunOptions())
    assert stats["line_dedup"]["state_generation"] == 2
    assert StateDirectory(str(state), "lines").current().record["kind"] == "lines"


def to_legacy_index(index: Path) -> None:
    """Rewrite a one-run MinHash index into the layout of before generations: ``index.json`` and
    the part file in the folder."""
    record = json.loads((index / "gen-000001" / "state.json").read_text())
    run = record["runs"][0]
    shutil.move(index / "gen-000001" / run["part"], index / "part-00000-legacy.parquet")
    shutil.rmtree(index / "gen-000001")
    (index / "CURRENT").unlink()
    (index / "index.json").write_text(json.dumps({"config": record["parameters"], "parts": [
        {"name": "part-00000-legacy.parquet", "output": run["output"], "documents": run["documents"], "added": "2025-01-01T00:00:00"}]}))


def test_minhash_index_from_before_generations_is_read_and_converted(tmp_path: Path) -> None:
    batches = [make_batch(tmp_path, b) for b in range(2)]
    assert dedup("minhash", batches[0], tmp_path / "ref0", tmp_path / "ref").returncode == 0
    assert dedup("minhash", batches[1], tmp_path / "ref1", tmp_path / "ref").returncode == 0
    # the same first index, in the layout of before: index.json + part files in the folder
    assert dedup("minhash", batches[0], tmp_path / "old0", tmp_path / "old").returncode == 0
    old = tmp_path / "old"
    to_legacy_index(old)
    refused = cli("state", "show", old)
    assert refused.returncode == 1 and "from before generations" in refused.stderr
    result = dedup("minhash", batches[1], tmp_path / "old1", old)
    assert result.returncode == 0, result.stderr
    assert documents(tmp_path / "old1") == documents(tmp_path / "ref1")
    assert not (old / "index.json").exists() and not (old / "part-00000-legacy.parquet").exists()
    assert state_files(old)["data"] == state_files(tmp_path / "ref")["data"]
