"""Fixtures shared by the test suite.

- ``shared``: the read-only ``../shared`` folder; tests that need it skip cleanly without it.
- ``nordpipe_cli``: runs the installed ``nordpipe`` console script as a real subprocess.
- ``make_records``: standardized records for building small test inputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "REFERENCE.md").exists():
        pytest.skip("../shared is not present (fresh clone)")
    return SHARED


def nordpipe_executable() -> list[str]:
    exe = Path(sys.executable).parent / "nordpipe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nordpipe.cli.main"]


@pytest.fixture
def nordpipe_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, check: bool = False, env: dict[str, str] | None = None, timeout: float = 600,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
        result = subprocess.run(
            [*nordpipe_executable(), *map(str, args)],
            capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"nordpipe {' '.join(map(str, args))} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    return run


def record(doc_id: str, text: str, source: str = "test", **metadata: Any) -> dict[str, Any]:
    return {
        "id": doc_id,
        "text": text,
        "source": source,
        "added": "2024-05-01",
        "created": "2020-01-01, 2024-01-01",
        "metadata": metadata,
    }


@pytest.fixture
def make_records() -> Callable[..., dict[str, Any]]:
    return record


def _cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return result.returncode == 0 and any(s in result.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    if _cluster_up():
        return
    can_start = os.geteuid() == 0 and (shutil.which("slurmctld") or shutil.which("apt-get"))
    if not can_start:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Slurm test, but Slurm is not installed and this is not root with apt-get")
        pytest.skip("no Slurm cluster and not root with apt-get to start one")
    result = subprocess.run([str(REPO / "scripts" / "slurm-local.sh"), "start"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _cluster_up()


def wait_for(condition: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    """Poll ``condition`` every 0.1 s until it returns something true (returned), or fail."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
