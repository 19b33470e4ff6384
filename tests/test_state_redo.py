"""Redoing and reusing runs of the persistent dedup state (issue 21, from a review): --force on
the last run, another INPUT into a reused OUTPUT, format-1 states, a converted legacy MinHash
index, and pruning after a rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_state import cli, dedup, documents, make_batch, state_files, to_legacy_index


def test_lines_force_with_other_parameters_redoes_the_last_run_on_its_parent(tmp_path: Path) -> None:
    """--force on the state's last run (other parameters) must redo it on the parent generation,
    not deduplicate the input against a state that already holds it."""
    batch = make_batch(tmp_path, 0)
    state, out = tmp_path / "state", tmp_path / "out"
    assert dedup("lines", batch, out, state).returncode == 0
    first = documents(out)
    # an exempt source no document has: the output must not change
    result = dedup("lines", batch, out, state, "--exempt-source", "nothing", "--force", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["line_dedup"]
    assert stats["lines_removed"] < stats["lines_checked"]
    assert documents(out) == first


def test_lines_force_of_another_input_into_the_same_output_records_that_input(tmp_path: Path) -> None:
    """A night written into the OUTPUT of the night before (--force) must record its own input
    files, so that they are refused later."""
    batches = [make_batch(tmp_path, b) for b in range(2)]
    state = tmp_path / "state"
    assert dedup("lines", batches[0], tmp_path / "out", state).returncode == 0
    assert dedup("lines", batches[1], tmp_path / "out", state, "--force").returncode == 0
    record = json.loads((state / (state / "CURRENT").read_text().strip() / "state.json").read_text())
    assert [Path(i["path"]).parent.parent.name for i in record["runs"][-1]["inputs"]] == ["batch1", "batch1"]
    again = dedup("lines", batches[1], tmp_path / "out2", state)
    assert again.returncode == 1, "batch 1 is in the state: every line would be removed as a duplicate of itself"


@pytest.mark.parametrize("kind", ["lines", "minhash"])
def test_another_input_into_the_last_runs_output_keeps_that_run_in_the_state(tmp_path: Path, kind: str) -> None:
    """Reusing an OUTPUT folder for the next night (--force) is not a redo of the night before:
    the earlier night must stay in the state and the new night is deduplicated against it."""
    batches = [make_batch(tmp_path, b) for b in range(3)]
    for number, batch in enumerate(batches):
        assert dedup(kind, batch, tmp_path / f"ref{number}", tmp_path / "ref").returncode == 0
    state = tmp_path / "state"
    assert dedup(kind, batches[0], tmp_path / "out", state).returncode == 0
    result = dedup(kind, batches[1], tmp_path / "out", state, "--force")
    assert result.returncode == 0, result.stderr
    assert documents(tmp_path / "out") == documents(tmp_path / "ref1")
    assert dedup(kind, batches[2], tmp_path / "out2", state).returncode == 0
    assert documents(tmp_path / "out2") == documents(tmp_path / "ref2")


def _to_format_1(state: Path) -> None:
    for path in state.glob("gen-*/state.json"):
        record = json.loads(path.read_text())
        for key in ("kind", "parent", "created"):
            record.pop(key)
        record["format"] = 1
        for run in record["runs"]:
            run["files"] = [item["path"] for item in run.pop("inputs")]
            run.pop("parent")
        path.write_text(json.dumps(record))


def test_redo_of_the_last_run_of_a_format_1_line_state_does_not_start_from_empty(tmp_path: Path) -> None:
    batches = [make_batch(tmp_path, b) for b in range(2)]
    state = tmp_path / "state"
    for number, batch in enumerate(batches):
        assert dedup("lines", batch, tmp_path / f"out{number}", state).returncode == 0
    night2 = documents(tmp_path / "out1")
    _to_format_1(state)
    shutil.rmtree(tmp_path / "out1")
    result = dedup("lines", batches[1], tmp_path / "out1", state)
    if result.returncode == 0:  # redone on generation 1: the same output, both runs in the state
        assert documents(tmp_path / "out1") == night2
        current = (state / "CURRENT").read_text().strip()
        assert len(json.loads((state / current / "state.json").read_text())["runs"]) == 2
    else:  # or refused because the generation before it is not kept
        assert result.returncode == 1 and "rerun-seen" not in result.stderr


def test_redo_of_the_run_that_converted_a_legacy_minhash_index_keeps_the_legacy_parts(tmp_path: Path) -> None:
    batches = [make_batch(tmp_path, b) for b in range(2)]
    assert dedup("minhash", batches[0], tmp_path / "ref0", tmp_path / "ref").returncode == 0
    assert dedup("minhash", batches[1], tmp_path / "ref1", tmp_path / "ref").returncode == 0
    assert dedup("minhash", batches[0], tmp_path / "old0", tmp_path / "old").returncode == 0
    old = tmp_path / "old"
    to_legacy_index(old)
    assert dedup("minhash", batches[1], tmp_path / "old1", old).returncode == 0
    shutil.rmtree(tmp_path / "old1")  # the converting night's output is lost: redo it
    result = dedup("minhash", batches[1], tmp_path / "old1", old)
    assert result.returncode == 0, result.stderr
    assert documents(tmp_path / "old1") == documents(tmp_path / "ref1")
    assert state_files(old)["data"] == state_files(tmp_path / "ref")["data"]


def test_after_a_rollback_and_one_run_the_last_run_can_still_be_redone(tmp_path: Path) -> None:
    """With the default 3 kept generations, pruning by number deletes the current generation's
    parent after a rollback (keeping the abandoned newer ones), so the last run cannot be redone."""
    batches = [make_batch(tmp_path, b) for b in range(5)]
    state = tmp_path / "state"
    for number in range(4):
        assert dedup("lines", batches[number], tmp_path / f"out{number}", state).returncode == 0
    assert cli("state", "rollback", state, "--to", "2").returncode == 0
    assert dedup("lines", batches[4], tmp_path / "new", state).returncode == 0
    night = documents(tmp_path / "new")
    shutil.rmtree(tmp_path / "new")
    result = dedup("lines", batches[4], tmp_path / "new", state)
    assert result.returncode == 0, result.stderr
    assert documents(tmp_path / "new") == night
