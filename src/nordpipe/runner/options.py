"""How a stage runs (``RunOptions``, ``SlurmOptions``) and why a run failed (``RunError``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_DEFAULT_TASKS = 1024
DEFAULT_MAX_REMOVED_SHARE = 0.95
"""The share of its input a stage (or a pipeline's chain) may remove before it fails
(``runner.removal_guard``); ``1`` accepts any removal."""


class RunError(RuntimeError):
    """A run could not start or did not complete; the message says why (exit code 1)."""


@dataclass
class SlurmOptions:
    """Resources for ``--executor slurm`` (passed to datatrove's ``SlurmPipelineExecutor``)."""

    partition: str | None = None
    time: str = "24:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2
    env_command: str | None = None
    """Shell line that activates nordpipe's environment on the nodes (default: this venv)."""
    wait: bool = True
    """Wait for the job array to finish and report (False: submit and return)."""
    after: str | None = None
    """Job ids (``a:b``) the stage's first job waits for (``afterok``): its input is the output
    of those jobs, checked in the jobs, not by the submitter (``runner.slurm``)."""
    qos: str | None = None
    sbatch_args: dict[str, str] = field(default_factory=dict)


@dataclass
class RunOptions:
    """How to run a stage. Defaults suit a laptop; every field has a CLI flag."""

    tasks: int | None = None
    """Number of tasks (default: one per input file, at most 1024)."""
    workers: int = 1
    """Tasks run at the same time by the local executor."""
    executor: str = "local"
    """``local`` or ``slurm``."""
    keep_removed: bool = False
    strict: bool = False
    """Exit 1 when any record was quarantined."""
    max_shard_bytes: int | None = None
    force: bool = False
    """Discard earlier state in OUTPUT when the stage's parameters changed."""
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    verbose: bool = False
    compression_level: int = 1
    """gzip level of the documents a stage writes (ingest uses 6 for the stored datasets)."""
    command: list[str] | None = None
    """The stage command line (``sys.argv[1:]``): ``--executor slurm`` runs it again in each job."""
    max_removed_share: float = DEFAULT_MAX_REMOVED_SHARE
    """A stage that removes more than this share of its input documents fails (exit 1) and its
    output is not marked complete (``runner.removal_guard``). Not a parameter of the output:
    changing it never needs ``--force``, and a rerun with a higher limit completes the output
    already written."""



def options_as_dict(options: RunOptions) -> dict[str, Any]:
    return asdict(options)
