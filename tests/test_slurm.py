"""A stage on a real single-node Slurm cluster gives the same output as the local executor.

The cluster comes from ``scripts/slurm-local.sh`` (Debian's slurm-wlm and munge). Without Slurm
and without root + apt the test skips, except under CI (``CI=true``), where it must run.
"""

from __future__ import annotations

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
