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
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from datatrove.pipeline.base import PipelineStep

from nordpipe.steps import DocumentReader, DocumentWriter, list_document_files

STATE_DIR = ".nordpipe"
MAX_DEFAULT_TASKS = 1024


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


# --------------------------------------------------------------------------------------------
# Lock and run record


class ExclusiveLock:
    """A non-blocking exclusive ``flock`` on ``path`` holding the owner's pid; a second holder
    gets ``RunError(refusal(holder))`` at once instead of waiting (safe under cron)."""

    def __init__(self, path: str, refusal: Callable[[str], str]):
        self.path = path
        self.refusal = refusal
        self.handle: Any = None

    def __enter__(self) -> ExclusiveLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise RunError(self.refusal(holder)) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


class OutputLock(ExclusiveLock):
    """``OUTPUT/.nordpipe/lock``: a second run on the same OUTPUT refuses."""

    def __init__(self, output: str):
        super().__init__(
            os.path.join(output, STATE_DIR, "lock"),
            lambda holder: f"{output} is in use by a running nordpipe ({holder}); wait for it to finish or stop it",
        )


def _check_run_record(state: str, record: dict[str, Any], force: bool) -> None:
    """Refuse to resume a run whose parameters differ; ``force`` wipes the old state instead."""
    path = os.path.join(state, "run.json")
    if os.path.exists(path):
        with open(path) as handle:
            previous = json.load(handle)
        if previous != record:
            if not force:
                changed = sorted(k for k in set(previous) | set(record) if previous.get(k) != record.get(k))
                raise RunError(
                    f"{os.path.dirname(state)} holds a run with other parameters ({', '.join(changed)} differ); "
                    "rerun with --force to start over or choose another OUTPUT"
                )
            output = os.path.dirname(state)
            for sub in ("documents", "removed", "quarantine"):
                shutil.rmtree(os.path.join(output, sub), ignore_errors=True)
            for entry in os.listdir(state):
                if entry != "lock":
                    target = os.path.join(state, entry)
                    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    os.makedirs(state, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Executors


def _quiet_datatrove(verbose: bool) -> None:
    """datatrove logs every task's start and stats to stderr at INFO; under cron we want only
    warnings on stderr. The per-task log files in ``.nordpipe/datatrove/logs`` keep everything."""
    import datatrove.executor.base as executor_base
    from datatrove.utils.logging import logger

    level = "INFO" if verbose else "WARNING"
    logger.remove()
    logger.add(sys.stderr, level=level, colorize=sys.stderr.isatty())

    def add_task_logger(logging_dir: Any, rank: int, local_rank: int = 0, node_rank: int = -1) -> Any:
        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"
        logger.add(sys.stderr, level=level if local_rank == 0 else "ERROR", format=fmt, colorize=False)
        logger.add(logfile, level="DEBUG", format=fmt, colorize=False)
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    def close_task_logger(logfile: Any) -> None:
        logger.complete()
        logger.remove()
        logger.add(sys.stderr, level=level, colorize=sys.stderr.isatty())
        logfile.close()

    executor_base.add_task_logger = add_task_logger  # type: ignore[assignment]
    executor_base.close_task_logger = close_task_logger  # type: ignore[assignment]


def execute(
    pipeline: Sequence[PipelineStep | Callable[..., Any]],
    logging_dir: str,
    tasks: int,
    options: RunOptions,
    job_name: str = "nordpipe",
    depends_job_id: str | None = None,
) -> str | None:
    """Run a datatrove pipeline as ``tasks`` tasks on the chosen executor.

    Returns the Slurm job id for ``--executor slurm`` (after waiting, unless
    ``options.slurm.wait`` is False), else None. Raises ``RunError`` if any task failed.
    """
    _quiet_datatrove(options.verbose)
    if options.executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        executor = LocalPipelineExecutor(
            pipeline=list(pipeline),
            tasks=tasks,
            workers=min(options.workers, tasks),
            logging_dir=logging_dir,
            # forkserver, not fork: a forked child of a process that already used polars (whose
            # thread pool does not survive fork) deadlocks as soon as it uses polars itself.
            start_method="forkserver",
        )
        try:
            with _TaskProgress(os.path.join(logging_dir, "completions"), tasks, job_name):
                executor.run()
        except Exception as err:
            raise RunError(f"a task failed: {err} (logs in {logging_dir}/logs)") from err
        missing = executor.get_incomplete_ranks(range(tasks))
        if missing:
            raise RunError(f"{len(missing)} of {tasks} tasks did not complete (logs in {logging_dir}/logs)")
        return None
    if options.executor == "slurm":
        return _execute_slurm(pipeline, logging_dir, tasks, options, job_name, depends_job_id)
    raise RunError(f"unknown executor {options.executor!r} (use local or slurm)")


class _TaskProgress:
    """A progress bar of completed tasks, on a terminal only (cron logs stay clean)."""

    def __init__(self, completions: str, tasks: int, label: str):
        self.completions, self.tasks, self.label = completions, tasks, label
        self.enabled = sys.stderr.isatty()
        self._stop = threading.Event()

    def _count(self) -> int:
        return len(os.listdir(self.completions)) if os.path.isdir(self.completions) else 0

    def _poll(self) -> None:
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            bar = progress.add_task(self.label, total=self.tasks, completed=self._count())
            while not self._stop.wait(0.5):
                progress.update(bar, completed=self._count())

    def __enter__(self) -> _TaskProgress:
        if self.enabled:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()


def default_env_command() -> str:
    """Activate the environment this nordpipe runs from, on the Slurm nodes."""
    if sys.prefix != sys.base_prefix:
        return f"source {os.path.join(sys.prefix, 'bin', 'activate')}"
    return f"export PATH={os.path.dirname(sys.executable)}:$PATH"


def _execute_slurm(
    pipeline: Sequence[PipelineStep | Callable[..., Any]],
    logging_dir: str,
    tasks: int,
    options: RunOptions,
    job_name: str,
    depends_job_id: str | None,
) -> str:
    from datatrove.executor import SlurmPipelineExecutor

    slurm = options.slurm
    executor = SlurmPipelineExecutor(
        pipeline=list(pipeline),
        tasks=tasks,
        time=slurm.time,
        partition=slurm.partition or _default_partition(),
        cpus_per_task=slurm.cpus_per_task,
        mem_per_cpu_gb=slurm.mem_per_cpu_gb,
        workers=options.workers if options.workers > 1 else -1,
        job_name=job_name,
        logging_dir=logging_dir,
        env_command=slurm.env_command or default_env_command(),
        qos=slurm.qos or "",
        sbatch_args=dict(slurm.sbatch_args),
        depends_job_id=depends_job_id,
        skip_completed=True,
        stagger_max_array_jobs=0,
    )
    if executor.get_incomplete_ranks(range(tasks)) == []:
        return ""
    executor.launch_job()
    job_id = str(executor.job_id)
    if slurm.wait:
        wait_for_slurm_job(job_id)
        missing = executor.get_incomplete_ranks(range(tasks))
        if missing:
            raise RunError(
                f"Slurm job {job_id}: {len(missing)} of {tasks} tasks did not complete (logs in {logging_dir}/slurm_logs)"
            )
    return job_id


def _default_partition() -> str:
    """The cluster's default partition (marked ``*`` by sinfo)."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise RunError(f"cannot ask Slurm for its partitions (sinfo): {err}") from err
    names = out.split()
    for name in names:
        if name.endswith("*"):
            return name[:-1]
    if not names:
        raise RunError("Slurm has no partitions (sinfo printed nothing)")
    return names[0]


def wait_for_slurm_job(job_id: str, poll_seconds: float = 1.0) -> None:
    """Block until no task of ``job_id`` is pending or running."""
    while True:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(poll_seconds)


# --------------------------------------------------------------------------------------------
# Stages


def default_tasks(input_path: str) -> int:
    return max(1, min(len(list_document_files(input_path)), MAX_DEFAULT_TASKS))


def run_stage(
    stage: str,
    steps: Sequence[PipelineStep],
    input_path: str,
    output_path: str,
    options: RunOptions | None = None,
    parameters: dict[str, Any] | None = None,
    reader: PipelineStep | None = None,
    tasks: int | None = None,
) -> dict[str, Any]:
    """Run one stage from INPUT to OUTPUT and return its merged stats (also in ``stats.json``).

    ``parameters`` are recorded in ``.nordpipe/run.json``; a rerun with other parameters refuses
    (or starts over with ``options.force``). ``reader`` replaces the default ``DocumentReader``
    (ingest reads raw formats).
    """
    options = options or RunOptions()
    output_path = output_path.rstrip("/")
    state = os.path.join(output_path, STATE_DIR)
    reader = reader or DocumentReader(input_path)
    if tasks is None:
        tasks = options.tasks or default_tasks(input_path)
    record = {
        "stage": stage,
        "input": input_path,
        "tasks": tasks,
        "parameters": parameters or {},
        "keep_removed": options.keep_removed,
        "max_shard_bytes": options.max_shard_bytes,
    }
    started = time.time()
    with OutputLock(output_path):
        _check_run_record(state, json.loads(json.dumps(record, default=str)), options.force)
        writer = DocumentWriter(
            output_path,
            keep_removed=options.keep_removed,
            max_shard_bytes=options.max_shard_bytes,
            compression_level=options.compression_level,
        )
        execute(
            [reader, *steps, writer],
            os.path.join(state, "datatrove"),
            tasks,
            options,
            job_name=f"nordpipe-{stage}",
        )
        if options.executor == "slurm" and not options.slurm.wait:
            return {}
        stats = finalize(output_path, stage=stage, tasks=tasks, seconds=time.time() - started)
    return stats


def merge_task_stats(task_stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-task stats (``steps.TaskStats.to_json``) into one dict."""
    total: dict[str, Any] = {}
    for item in task_stats:
        for key, value in item.items():
            if key in ("created_min", "created_max"):
                if value is not None:
                    pick = min if key == "created_min" else max
                    total[key] = value if total.get(key) is None else pick(total[key], value)
            elif isinstance(value, dict):
                bucket = total.setdefault(key, {})
                for k, v in value.items():
                    if isinstance(v, dict):
                        inner = bucket.setdefault(k, Counter())
                        inner.update(v)
                    else:
                        bucket[k] = bucket.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    return json.loads(json.dumps(total))


def _datatrove_step_stats(logging_dir: str) -> dict[str, dict[str, Any]]:
    """Counters that steps recorded with ``stat_update``, summed over tasks, by step."""
    merged: dict[str, dict[str, Any]] = {}
    stats_dir = os.path.join(logging_dir, "stats")
    if not os.path.isdir(stats_dir):
        return merged
    for name in sorted(os.listdir(stats_dir)):
        with open(os.path.join(stats_dir, name)) as handle:
            for step in json.load(handle):
                # datatrove names steps "<emoji> - <TYPE>: <name>"; keep "<name>".
                target = merged.setdefault(step["name"].split(": ", 1)[-1], {})
                for key, value in step.get("stats", {}).items():
                    total = value.get("total") if isinstance(value, dict) else value
                    if isinstance(total, int | float):
                        target[key] = target.get(key, 0) + total
    return merged


def finalize(output_path: str, stage: str, tasks: int, seconds: float | None = None) -> dict[str, Any]:
    """Merge the tasks' stats into ``OUTPUT/.nordpipe/stats.json`` (atomically) and return them."""
    state = os.path.join(output_path, STATE_DIR)
    tasks_dir = os.path.join(state, "tasks")
    task_files = sorted(os.listdir(tasks_dir)) if os.path.isdir(tasks_dir) else []
    items = []
    for name in task_files:
        with open(os.path.join(tasks_dir, name)) as handle:
            items.append(json.load(handle))
    stats = merge_task_stats(items)
    stats = {
        "stage": stage,
        "output": output_path,
        "tasks": tasks,
        **{k: stats.get(k, 0 if k.startswith(("documents", "characters")) else {}) for k in _STAT_KEYS},
        "created_min": stats.get("created_min"),
        "created_max": stats.get("created_max"),
        "quarantined_total": sum(stats.get("quarantined", {}).values()),
        "removed_total": sum(stats.get("removed", {}).values()),
        "steps": _datatrove_step_stats(os.path.join(state, "datatrove")),
    }
    if seconds is not None:
        stats["seconds"] = round(seconds, 3)
    tmp = os.path.join(state, "stats.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(stats, handle, indent=2, sort_keys=True, ensure_ascii=False)
    os.replace(tmp, os.path.join(state, "stats.json"))
    return stats


_STAT_KEYS = (
    "documents_in",
    "documents_out",
    "characters_in",
    "characters_out",
    "removed",
    "removed_characters",
    "removed_by_language",
    "quarantined",
    "languages_out",
    "sources_out",
)


def options_as_dict(options: RunOptions) -> dict[str, Any]:
    return asdict(options)
