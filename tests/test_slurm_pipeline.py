"""Stages and pipelines as Slurm job arrays on the real local cluster (``scripts/slurm-local.sh``).

Each stage's phases are arrays of ``tasks`` tasks chained ``afterok``, then a finish job; a
pipeline queues its whole chain at once. The cluster has two CPUs: the data are tiny, and the
tests skip only when Slurm is not there (``slurm_cluster``). Slurm keeps no accounting here
(``accounting_storage/none``: no ``sacct``), so the arrays and dependencies are read with
``scontrol show job`` while the jobs are pending.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from nordpipe.documents import decode_record

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TASKS = 4


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    from nordpipe.sample import generate_sample

    base = tmp_path_factory.mktemp("slurm-raw")
    generate_sample(base / "sample", seed=7, scale=0.25)
    return base / "sample"


def _pipeline(path: Path, raw: Path, root: Path, executor: str, stages: str) -> Path:
    path.write_text(
        f"name: tiny\nroot: {root}\nexecutor: {executor}\n"
        "slurm: {time: '00:20:00', mem_per_cpu: 1}\n"
        "datasets:\n"
        f"  - name: nyheder\n    raw: ['{raw / 'raw' / 'nyheder'}']\n    config: '{raw / 'datasets' / 'nyheder.yaml'}'\n"
        f"    params: {{added: '2024-01-01'}}\n    resources: {{tasks: {TASKS}}}\n"
        f"stages:\n{stages}", encoding="utf-8")
    return path


STAGES = (
    f"  - type: lines\n    params: {{state: '{{root}}/state/lines'}}\n    resources: {{tasks: {TASKS}}}\n"
    f"  - type: minhash\n    params: {{index: '{{root}}/state/minhash'}}\n    resources: {{tasks: {TASKS}}}\n"
    f"  - type: tokenize\n    resources: {{tasks: {TASKS}}}\n"
)
TOKENIZE_ONLY = f"  - type: tokenize\n    resources: {{tasks: {TASKS}}}\n"


def _shards(root: Path) -> dict[str, bytes]:
    shards = {}
    for path in sorted((root / "batches").glob("*/*-tokenize/shards/**/*")):
        if path.is_file():
            shards[str(path.relative_to(root))] = path.read_bytes()
    return shards


def _submitted(stdout: str) -> list[tuple[str, str, str]]:
    """(stage, phase, job id) of every ``submitted`` line, in submission order."""
    return [tuple(line.split("\t")[1:4]) for line in stdout.splitlines() if line.startswith("submitted\t")]


def _scontrol(job: str) -> dict[str, str]:
    """``scontrol show job -o``'s fields of the first record of ``job`` (a pending array is one record)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    first = out.splitlines()[0] if out.strip() else ""
    return dict(field.split("=", 1) for field in first.split() if "=" in field)


def _queued(jobs: list[str]) -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%A %F"], capture_output=True, text=True).stdout
    seen = {word for line in out.splitlines() for word in line.split()}
    return {job for job in jobs if job in seen}


def _wait_until_gone(jobs: list[str], timeout: float = 1500) -> None:
    deadline = time.time() + timeout
    while _queued(jobs):
        assert time.time() < deadline, f"Slurm jobs still queued after {timeout}s: {sorted(_queued(jobs))}"
        time.sleep(3)


def _run(nordpipe_cli, *args, **kwargs):
    return nordpipe_cli(*args, timeout=1800, **kwargs)


def _local_run(raw: Path, base: Path, stages: str) -> Path:
    import sys

    exe = Path(sys.executable).parent / "nordpipe"
    root = base / "local"
    config = _pipeline(base / "local.yaml", raw, root, "local", stages)
    subprocess.run([str(exe), "run", str(config)], check=True, capture_output=True, text=True, timeout=1800)
    return root


def test_pipeline_queues_arrays_chained_afterok_and_equals_local(raw, tmp_path, slurm_cluster, nordpipe_cli):
    root = tmp_path / "slurm"
    config = _pipeline(tmp_path / "slurm.yaml", raw, root, "slurm", STAGES)
    result = _run(nordpipe_cli, "run", config, "--no-wait")
    assert result.returncode == 0, result.stdout + result.stderr
    submitted = _submitted(result.stdout)
    jobs = [job for _, _, job in submitted]
    try:
        # read while the chain is pending: every job after the first waits for the one before
        checked_arrays = checked_dependencies = 0
        for (stage, phase, job), previous in zip(submitted[1:], jobs, strict=False):
            fields = _scontrol(job)
            # a job's Reason reads None until the scheduler has looked at it: its Dependency
            # field is there from submission (and "(null)" once the dependency is met)
            if fields.get("JobState") != "PENDING" or fields.get("Dependency", "(null)") == "(null)":
                continue
            assert fields["Dependency"].startswith(f"afterok:{previous}"), (stage, phase, fields["Dependency"])
            checked_dependencies += 1
            if phase.startswith("nordpipe-") and phase not in ("nordpipe-minhash-clusters", "nordpipe-minhash-candidates"):
                assert fields.get("ArrayTaskId") == f"0-{TASKS - 1}", (stage, phase, fields.get("ArrayTaskId"))
                checked_arrays += 1
        assert checked_dependencies >= 5 and checked_arrays >= 3, (checked_dependencies, checked_arrays)
        stages = {stage for stage, _, _ in submitted}
        assert stages == {"ingest", "lines", "minhash", "tokenize"}
        assert [p for s, p, _ in submitted if s == "tokenize"] == ["prepare", "nordpipe-tokenize", "finish", "done-marker"]

        # cron: a second run while the batch is in flight submits nothing and exits 0 at once
        again = _run(nordpipe_cli, "run", config, "--no-wait")
        assert again.returncode == 0, again.stderr
        assert "in flight\tbatch 0001" in again.stdout and "submitted\t" not in again.stdout
        recorded = json.loads((root / "batches" / "0001" / "batch.json").read_text())["slurm"]["jobs"]
        assert sorted(job for ids in recorded.values() for job in ids) == sorted(jobs)

        # progress from the files the jobs write, with the submitter gone
        status = nordpipe_cli("status", root)
        assert status.returncode == 1  # not complete yet
        rows = [line.split("\t") for line in status.stdout.splitlines()]
        assert all(len(row) == 3 for row in rows)
        assert any(row[0] == "tokenize" and row[1] == "slurm nordpipe-tokenize" and f"/{TASKS} tasks done" in row[2]
                   for row in rows)
        _wait_until_gone(jobs)
    finally:
        subprocess.run(["scancel", *jobs], capture_output=True)
    status = nordpipe_cli("status", root)
    assert status.returncode == 0, status.stdout
    assert f"tokenize\tslurm nordpipe-tokenize\t{TASKS}/{TASKS} tasks done" in status.stdout
    # every array of every stage is whole, deferred phases' idle ranks included
    counts = [row.split("\t")[2].split(" tasks done")[0] for row in status.stdout.splitlines()
              if row.split("\t")[1].startswith("slurm nordpipe-")]
    assert len(counts) >= 5 and all(done == total for done, total in (c.split("/") for c in counts)), counts
    finished = _run(nordpipe_cli, "run", config)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "finished\tbatch 0001" in finished.stdout and "submitted\t" not in finished.stdout

    local = _local_run(raw, tmp_path, STAGES)
    ours, reference = _shards(root), _shards(local)
    assert ours and ours == reference


def test_killed_array_task_reruns_to_the_same_shards(raw, tmp_path, slurm_cluster, nordpipe_cli):
    """Task 2 of the tokenize array dies (SIGKILL at a kill point): the jobs after it are
    cancelled, the run fails naming the task's log, and a rerun resubmits and completes with the
    shards of a local run."""
    root = tmp_path / "slurm"
    config = _pipeline(tmp_path / "slurm.yaml", raw, root, "slurm", TOKENIZE_ONLY)
    killed = _run(nordpipe_cli, "run", config, env={"NORDPIPE_TEST_KILL_AT": "slurm.nordpipe-tokenize.00002"})
    assert killed.returncode == 1, killed.stdout + killed.stderr
    assert "nordpipe-tokenize" in killed.stderr and "task 2" in killed.stderr, killed.stderr
    output = root / "batches" / "0001" / "01-tokenize"
    completions = output / ".nordpipe" / "datatrove" / "completions"
    assert sorted(p.name for p in completions.iterdir()) == ["00000", "00001", "00003"]
    status = nordpipe_cli("status", output)
    assert status.returncode == 1 and "tokenize\tslurm failed nordpipe-tokenize\ttask 2: " in status.stdout

    rerun = _run(nordpipe_cli, "run", config)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "finished\tbatch 0001" in rerun.stdout
    assert "skip\tingest" in rerun.stdout  # ingest completed the first time: not submitted again
    local = _local_run(raw, tmp_path, TOKENIZE_ONLY)
    assert _shards(root) and _shards(root) == _shards(local)


def test_dedup_lines_no_wait_completes_on_slurm(raw, tmp_path, slurm_cluster, nordpipe_cli):
    ingested = tmp_path / "ingested"
    nordpipe_cli("ingest", raw / "raw" / "nyheder", "--config", raw / "datasets" / "nyheder.yaml", "--added",
                 "2024-01-01", "--tasks", "2", "--output", ingested, check=True)
    dataset = ingested / "nyheder"
    local = nordpipe_cli("dedup", "lines", dataset, tmp_path / "local", "--state", tmp_path / "state-local",
                         "--tasks", "2", check=True)
    assert local.returncode == 0
    output, state = tmp_path / "slurm", tmp_path / "state-slurm"
    result = nordpipe_cli("dedup", "lines", dataset, output, "--state", state, "--tasks", "2",
                          "--executor", "slurm", "--no-wait")
    assert result.returncode == 0, result.stderr
    submitted = _submitted(result.stdout)
    assert [phase for _, phase, _ in submitted] == [
        "nordpipe-lines-signature", "nordpipe-lines-decide", "nordpipe-lines-filter", "finish"]
    # the submitter left the state alone: only the finish job commits a generation
    assert not any(state.glob("gen-*"))
    jobs = [job for _, _, job in submitted]
    try:
        deadline = time.time() + 900
        while nordpipe_cli("status", output).returncode != 0:
            assert _queued(jobs) or nordpipe_cli("status", output).returncode == 0, nordpipe_cli("status", output).stdout
            assert time.time() < deadline
            time.sleep(3)
    finally:
        subprocess.run(["scancel", *jobs], capture_output=True)
    assert any(state.glob("gen-*"))

    def documents(folder: Path) -> list[dict]:
        records = []
        for path in sorted((folder / "documents").glob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                records += [decode_record(json.loads(line)) for line in handle]
        return records

    assert documents(output) and documents(output) == documents(tmp_path / "local")
    assert os.path.exists(output / ".nordpipe" / "complete.json")
