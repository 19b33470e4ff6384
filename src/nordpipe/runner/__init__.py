"""The stage runner: one way to run any stage locally or on Slurm, resumably, with a report.

A stage run reads ``INPUT``, runs ``[DocumentReader, *steps, DocumentWriter]`` as ``tasks``
datatrove tasks and writes to ``OUTPUT``:

    OUTPUT/documents/      kept documents (jsonl.gz), one stream per input file
    OUTPUT/removed/        removed documents with their reason (``--keep-removed``)
    OUTPUT/quarantine/     unreadable input records with file, line and reason
    OUTPUT/.nordpipe/      state: lock, run.json, datatrove logs and completions, tasks/, stats.json

Rerunning the same command skips tasks that completed; a task that was interrupted is run
again from scratch, and because its files only move into place when it finishes, the output of
an interrupted-then-rerun stage equals that of an uninterrupted one.

The package, along its seams: ``options`` (RunOptions, RunError), ``processes`` (signals,
workers that die with their parent), ``lock`` (the run lock), ``executors`` (supervised local
workers, one rank of a Slurm array task), ``slurm`` (a stage's phases as Slurm job arrays and its
finish job; progress for ``nordpipe status``), ``stage_run`` (``StageRun``, the protocol every stage follows, and
the stats it merges), ``removal_guard`` (a stage or chain that removes almost everything fails). Everything is importable from ``nordpipe.runner``.
"""

from nordpipe.layout import STATE_DIR, InputError, UsageError
from nordpipe.runner.executors import (
    default_env_command,
    execute,
    supervised_local_executor,
    wait_for_slurm_job,
)
from nordpipe.runner.lock import ExclusiveLock, OutputLock
from nordpipe.runner.options import (
    DEFAULT_MAX_REMOVED_SHARE,
    MAX_DEFAULT_TASKS,
    RunError,
    RunOptions,
    SlurmOptions,
    options_as_dict,
)
from nordpipe.runner.processes import (
    KILL_ENV,
    PAUSE_ENV,
    Interrupted,
    InterruptOnSignals,
    descendants,
    describe_exit,
    die_with_parent,
    kill_point,
    pause_for_tests,
    process_start_time,
    terminate_descendants,
)
from nordpipe.runner.removal_guard import RemovalShareExceeded, check_chain, check_stage
from nordpipe.runner.stage_run import StageRun, default_tasks, finalize, merge_task_stats, run_stage

__all__ = [
    "DEFAULT_MAX_REMOVED_SHARE",
    "KILL_ENV",
    "MAX_DEFAULT_TASKS",
    "PAUSE_ENV",
    "STATE_DIR",
    "ExclusiveLock",
    "InputError",
    "InterruptOnSignals",
    "Interrupted",
    "OutputLock",
    "RemovalShareExceeded",
    "RunError",
    "RunOptions",
    "SlurmOptions",
    "StageRun",
    "UsageError",
    "check_chain",
    "check_stage",
    "default_env_command",
    "default_tasks",
    "descendants",
    "describe_exit",
    "die_with_parent",
    "execute",
    "finalize",
    "kill_point",
    "merge_task_stats",
    "options_as_dict",
    "pause_for_tests",
    "process_start_time",
    "run_stage",
    "supervised_local_executor",
    "terminate_descendants",
    "wait_for_slurm_job",
]
