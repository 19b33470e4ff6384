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
    slurm_state = tmp_path / "slurm" / "nyheder" / ".nordpipe" / "datatrove"
    logs = "\n".join(p.read_text(errors="replace") for p in (slurm_state / "slurm_logs").glob("*")) if (slurm_state / "slurm_logs").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + logs
    script = (slurm_state / "launch_script.slurm").read_text()
    assert "--array=0-1" in script
    assert len(list((slurm_state / "completions").iterdir())) == 2
    local, slurm = _documents(tmp_path / "local" / "nyheder"), _documents(tmp_path / "slurm" / "nyheder")
    assert len(local) >= 2
    assert local == slurm
    assert nordpipe_cli("validate", tmp_path / "slurm" / "nyheder").returncode == 0


def test_minhash_phases_on_slurm_equal_local(tmp_path, slurm_cluster, nordpipe_cli):
    """``dedup docs --jaccard-check --executor slurm`` runs every MinHash phase as its own Slurm
    job, each depending on the one before, and writes the documents the local executor writes;
    each phase keeps its Slurm script and logs (the clusters phase used to delete its own)."""
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
    phases = ["signatures", "buckets", "candidates", "shingles", "verify", "clusters"]
    scripts = {name: (state / "minhash" / name / "launch_script.slurm") for name in phases}
    scripts["filter"] = state / "datatrove" / "launch_script.slurm"
    job_ids, depends = [], []
    for name, script in scripts.items():
        assert script.exists(), name
        # Slurm names the logs <job id>_<task>.out: the phase's job, then (for most phases)
        # datatrove's stats-merging job
        ids = sorted({int(log.name.split("_")[0]) for log in (script.parent / "slurm_logs").glob("*.out")})
        assert 1 <= len(ids) <= 2, (name, ids)
        job_ids.append(str(ids[0]))
        depends.append(json.loads((script.parent / "executor.json").read_text())["depends_job_id"])
    # each phase waited for the one before it
    assert depends == [None, *job_ids[:-1]]
    local_stats, slurm_stats = json.loads(local.stdout), json.loads(result.stdout)
    assert slurm_stats["documents_out"] == local_stats["documents_out"] < local_stats["documents_in"]
    assert slurm_stats["minhash"]["phases"]["clusters"] == local_stats["minhash"]["phases"]["clusters"]
    assert _documents(tmp_path / "local") == _documents(tmp_path / "slurm")
