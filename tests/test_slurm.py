"""A stage on a real single-node Slurm cluster gives the same output as the local executor.

The cluster comes from ``scripts/slurm-local.sh`` (Debian's slurm-wlm and munge). Without Slurm
and without root + apt the test skips, except under CI (``CI=true``), where it must run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nordpipe.sample import generate_sample

pytestmark = pytest.mark.slurm


def _documents(dataset: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((dataset / "documents").glob("*.jsonl.gz"))}


def test_slurm_array_output_equals_local(tmp_path, slurm_cluster, nordpipe_cli):
    generate_sample(tmp_path / "sample", seed=5, scale=0.5)
    raw = tmp_path / "sample" / "raw" / "nyheder"
    config = tmp_path / "sample" / "datasets" / "nyheder.yaml"
    common = ["ingest", raw, "--config", config, "--added", "2024-01-01", "--tasks", "2"]
    nordpipe_cli(*common, "--output", tmp_path / "local", check=True)
    result = nordpipe_cli(*common, "--output", tmp_path / "slurm", "--executor", "slurm", timeout=900)
    state = tmp_path / "slurm" / "nyheder" / ".nordpipe"
    logs = "\n".join(p.read_text(errors="replace") for p in (state / "slurm_logs").glob("*")) if (state / "slurm_logs").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + logs
    # one array of two tasks, then the finish job that merged the stats and completed the output
    submitted = json.loads((state / "slurm.json").read_text())
    assert [(p["name"], p["tasks"]) for p in submitted["phases"]] == [("nordpipe-ingest", 2)]
    job = submitted["phases"][0]["job"]
    assert sorted(p.name for p in (state / "slurm_logs").glob("nordpipe-ingest_*")) == [
        f"nordpipe-ingest_{job}_0.out", f"nordpipe-ingest_{job}_1.out"]
    assert (state / "slurm_logs" / f"finish_{submitted['finish']}.out").exists()
    assert len(list((state / "datatrove" / "completions").iterdir())) == 2
    assert (state / "complete.json").exists()
    local, slurm = _documents(tmp_path / "local" / "nyheder"), _documents(tmp_path / "slurm" / "nyheder")
    assert len(local) >= 2
    assert local == slurm
    assert nordpipe_cli("validate", tmp_path / "slurm" / "nyheder").returncode == 0


def test_minhash_phases_on_slurm_equal_local(tmp_path, slurm_cluster, nordpipe_cli):
    """``dedup docs --jaccard-check --executor slurm`` runs every MinHash phase as its own Slurm
    job array, each depending on the one before, then the finish job, and writes the documents
    the local executor writes; each phase's tasks keep their logs."""
    generate_sample(tmp_path / "sample", seed=5, scale=0.5)
    nordpipe_cli("ingest", tmp_path / "sample" / "raw" / "nyheder", "--config", tmp_path / "sample" / "datasets" / "nyheder.yaml",
                 "--added", "2024-01-01", "--tasks", "2", "--output", tmp_path / "ingested", check=True)
    dataset = tmp_path / "ingested" / "nyheder"
    common = ["dedup", "docs", dataset, "--jaccard-check", "--tasks", "2", "--json"]
    local = nordpipe_cli(*common[:3], tmp_path / "local", *common[3:], check=True)
    result = nordpipe_cli(*common[:3], tmp_path / "slurm", *common[3:], "--executor", "slurm", timeout=900)
    state = tmp_path / "slurm" / ".nordpipe"
    logs = "\n".join(p.read_text(errors="replace") for p in state.rglob("slurm_logs/*"))
    assert result.returncode == 0, result.stdout + result.stderr + logs
    submitted = json.loads((state / "slurm.json").read_text())
    phases = ["signatures", "buckets", "candidates", "shingles", "verify", "clusters", "filter"]
    assert [p["name"] for p in submitted["phases"]] == [f"nordpipe-minhash-{name}" for name in phases]
    # one array per phase, submitted in order (each afterok on the one before: see
    # test_slurm_pipeline), the finish job last; every task of every phase completed
    job_ids = [int(p["job"]) for p in submitted["phases"]] + [int(submitted["finish"])]
    assert job_ids == sorted(job_ids) and len(set(job_ids)) == len(job_ids)
    for phase in submitted["phases"]:
        completions = Path(phase["logging_dir"]) / "completions"
        assert len(list(completions.iterdir())) == phase["tasks"], phase["name"]
        assert len(list((state / "slurm_logs").glob(f"{phase['name']}_{phase['job']}_*.out"))) == phase["tasks"]
    local_stats, slurm_stats = json.loads(local.stdout), json.loads(result.stdout)
    assert slurm_stats["documents_out"] == local_stats["documents_out"] < local_stats["documents_in"]
    assert slurm_stats["minhash"]["phases"]["clusters"] == local_stats["minhash"]["phases"]["clusters"]
    assert _documents(tmp_path / "local") == _documents(tmp_path / "slurm")
