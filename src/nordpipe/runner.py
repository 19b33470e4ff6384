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

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from datatrove.pipeline.base import PipelineStep

from nordpipe.layout import (
    DOCUMENTS,
    QUARANTINE,
    REMOVED,
    STATE_DIR,
    InputError,
    OutputLayout,
    UsageError,
    absolute,
    atomic_write_json,
    check_disjoint,
    check_input,
    input_identity,
)
from nordpipe.stages import STAGES
from nordpipe.steps import DocumentReader, DocumentWriter, list_document_files

MAX_DEFAULT_TASKS = 1024
__all__ = ["STATE_DIR", "InputError", "RunError", "StageRun", "UsageError", "run_stage"]


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
# Signals and processes


class Interrupted(BaseException):
    """SIGTERM or SIGINT reached a stage or pipeline run; exit code ``128 + signum``.

    A ``BaseException``, so that no ``except Exception`` on the way out swallows it: it unwinds
    the run (stopping workers and child stages, releasing locks) like ``KeyboardInterrupt``."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class InterruptOnSignals:
    """Within this block SIGTERM and SIGINT raise ``Interrupted`` in the main thread.

    Nested uses are harmless: the outermost one is in force. Outside the main thread (a stage run
    embedded in a threaded program) signals stay as they are."""

    def __enter__(self) -> InterruptOnSignals:
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.previous[signum] = signal.signal(signum, self._raise)
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        # Workers, pools and child stages first: they are not all ours to join (a process pool
        # would wait for its running tasks), and a signal sent only to this process (kill PID,
        # Slurm's scancel, a cron timeout) reaches none of them.
        terminate_descendants()
        raise Interrupted(signum)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def descendants(pid: int | None = None) -> list[int]:
    """Every process below ``pid`` (default: this one), children before grandchildren, from ``/proc``."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    frontier = [root]
    while frontier:
        below = [child for parent in frontier for child in children.get(parent, [])]
        found += below
        frontier = below
    return found


def terminate_descendants(signum: int = signal.SIGTERM) -> list[int]:
    """Send ``signum`` to every process below this one; returns their pids."""
    pids = descendants()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    return pids


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies (``PR_SET_PDEATHSIG``).

    Workers and child stages call this so that a stage killed with -9 (which cannot clean up)
    does not leave orphans that keep writing into its OUTPUT. Elsewhere than Linux: a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or None
    when there is no such process. With the pid it tells a process from a later one that reused the pid."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def describe_exit(exitcode: int | None) -> str:
    """``-9`` -> ``was killed by SIGKILL (signal 9; the out-of-memory killer sends this)``."""
    if exitcode is None:
        return "did not finish"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else f"signal {-exitcode}"
        hint = "; the out-of-memory killer sends this" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name} (signal {-exitcode}{hint})"
    return f"exited with code {exitcode}"


# --------------------------------------------------------------------------------------------
# Lock


class ExclusiveLock:
    """A non-blocking exclusive ``flock`` on ``path``; a second holder gets ``RunError(refusal(holder))``
    at once instead of waiting (safe under cron).

    The file records the holder (pid, process start time, since when). The kernel releases a flock
    when its holder dies, so a lock left by a killed run is simply taken, with a note naming the
    run that is gone. A flock still held although the recorded holder is gone means processes of
    that run outlived it; the refusal names them."""

    def __init__(self, path: str, refusal: Callable[[str], str]):
        self.path = path
        self.refusal = refusal
        self.handle: Any = None

    def _holder(self) -> dict[str, Any]:
        self.handle.seek(0)
        text = self.handle.read().strip()
        try:
            holder = json.loads(text)
            return holder if isinstance(holder, dict) else {}
        except json.JSONDecodeError:
            return {"text": text} if text else {}

    @staticmethod
    def _alive(holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        return isinstance(pid, int) and process_start_time(pid) == holder.get("start")

    def _holders_of_file(self) -> list[int]:
        """Processes that have the lock file open (other than this one), from ``/proc/*/fd``."""
        target = os.path.realpath(self.path)
        found = []
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                for fd in os.listdir(f"/proc/{entry}/fd"):
                    if os.path.realpath(f"/proc/{entry}/fd/{fd}") == target:
                        found.append(int(entry))
                        break
            except OSError:
                continue
        return found

    def __enter__(self) -> ExclusiveLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            self.handle.close()
            if holder.get("pid") and not self._alive(holder):
                pids = self._holders_of_file()
                raise RunError(self.refusal(
                    f"nordpipe pid {holder['pid']} is gone, but processes it started still hold the lock: "
                    f"{', '.join(map(str, pids)) or 'unknown'}; stop them (kill {' '.join(map(str, pids))})"
                )) from None
            raise RunError(self.refusal(_describe_holder(holder))) from None
        previous = self._holder()
        if previous.get("pid") and previous.get("pid") != os.getpid() and not previous.get("released"):
            sys.stderr.write(f"nordpipe: note: taking over {self.path} from {_describe_holder(previous)}, which is gone "
                             "(it was killed or crashed; its unfinished tasks rerun)\n")
        self._record({})
        return self

    def _record(self, extra: dict[str, Any]) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": os.getpid(), "start": process_start_time(os.getpid()),
                                      "since": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}) + "\n")
        self.handle.flush()

    def __exit__(self, *exc: object) -> None:
        self._record({"released": True})  # a released lock is not a crashed run: no note next time
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _describe_holder(holder: dict[str, Any]) -> str:
    if holder.get("pid"):
        return f"pid {holder['pid']} since {holder.get('since', '?')}"
    return holder.get("text") or "another process"


class OutputLock(ExclusiveLock):
    """``OUTPUT/.nordpipe/lock``: a second run on the same OUTPUT refuses."""

    def __init__(self, output: str):
        super().__init__(
            OutputLayout.of(output).lock,
            lambda holder: f"{output} is in use by a running nordpipe ({holder}); wait for it to finish or stop it",
        )


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
        executor = supervised_local_executor(
            pipeline=list(pipeline),
            tasks=tasks,
            workers=min(options.workers, tasks),
            logging_dir=logging_dir,
            verbose=options.verbose,
        )
        with _TaskProgress(os.path.join(logging_dir, "completions"), tasks, job_name):
            executor.run()
        missing = executor.get_incomplete_ranks(range(tasks))
        if missing:
            raise RunError(f"{len(missing)} of {tasks} tasks did not complete (logs in {logging_dir}/logs)")
        return None
    if options.executor == "slurm":
        return _execute_slurm(pipeline, logging_dir, tasks, options, job_name, depends_job_id)
    raise RunError(f"unknown executor {options.executor!r} (use local or slurm)")


PAUSE_ENV = "NORDPIPE_TEST_PAUSE_DIR"
"""Fault-injection hook for tests: when set, every task stops at its start, announces itself
with a file ``<dir>/<where>-<pid>`` and sleeps, so that a test can signal or kill a stage or a
worker while a task is certainly running (no timing guesses)."""


def pause_for_tests(where: str) -> None:
    folder = os.environ.get(PAUSE_ENV)
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{where}-{os.getpid()}"), "w") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(3600)


def _worker_main(executor: Any, conn: Any, local_rank: int, verbose: bool) -> None:
    """A local worker: runs the ranks it is sent until it is sent None; reports each one."""
    die_with_parent()
    # Ctrl-C on a terminal reaches the whole process group; the stage process stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _quiet_datatrove(verbose)
    from copy import deepcopy

    pipeline = executor.pipeline
    while True:
        rank = conn.recv()
        if rank is None:
            return
        executor.pipeline = deepcopy(pipeline)  # steps keep per-task state
        pause_for_tests(f"task{rank:05d}")
        try:
            stats = executor._run_for_rank(rank, local_rank)
        except BaseException as err:
            conn.send(("failed", rank, f"{type(err).__name__}: {err}"))
            return
        conn.send(("done", rank, stats))


def _local_executor_class() -> type:
    from datatrove.executor import LocalPipelineExecutor

    class SupervisedLocal(LocalPipelineExecutor):
        """datatrove's local executor with workers that nordpipe watches.

        datatrove runs local tasks in a ``multiprocess.Pool``: a worker killed with -9 (the
        out-of-memory killer) is silently replaced and its task's result never arrives, so the
        stage waits forever. Here each worker is a process of its own that takes ranks over a
        pipe; the stage waits on the pipes and the process sentinels together, so a worker that
        dies fails the stage at once, naming its task, and SIGTERM/SIGINT stop every worker
        before the stage exits. Workers run even when ``workers == 1``, which keeps the stage
        process free of the tasks' memory and of polars' thread pool.

        Workers are *spawned*: direct children of the stage, so that ``die_with_parent`` ends
        them when the stage is killed with -9. (From a forkserver they were the forkserver's
        children, and it outlives a killed stage: its workers went on writing into OUTPUT.)
        A fresh interpreter also avoids fork's hazards (polars' thread pool does not survive
        fork). The price is the workers' imports, about a second per worker and phase."""

        def __init__(self, *args: Any, verbose: bool = False, **kwargs: Any):
            super().__init__(*args, start_method="spawn", **kwargs)
            self.verbose = verbose

        def run(self) -> Any:
            import multiprocess
            from datatrove.utils.stats import PipelineStats

            self._launched = True
            ranks = self.get_incomplete_ranks(range(self.local_rank_offset, self.local_rank_offset + self.local_tasks))
            if not ranks:
                return PipelineStats()
            self.save_executor_as_json()
            context = multiprocess.get_context(self.start_method)
            pending = list(ranks)
            workers: dict[Any, tuple[Any, int | None]] = {}  # process -> (connection, running rank)
            results: list[Any] = []
            try:
                for local_rank in range(min(self.workers, len(ranks))):
                    parent_end, child_end = context.Pipe()
                    process = context.Process(target=_worker_main, args=(self, child_end, local_rank, self.verbose),
                                              name=f"nordpipe-worker-{local_rank}")
                    process.start()
                    child_end.close()
                    rank = pending.pop(0)
                    parent_end.send(rank)
                    workers[process] = (parent_end, rank)
                while workers:
                    waitables = [conn for conn, _ in workers.values()] + [p.sentinel for p in workers]
                    ready = set(multiprocess.connection.wait(waitables, timeout=5))
                    for process, (conn, rank) in list(workers.items()):
                        if conn in ready:
                            try:
                                kind, done_rank, payload = conn.recv()
                            except EOFError:
                                kind = "died"
                            if kind == "done":
                                results.append(payload)
                                rank = pending.pop(0) if pending else None
                                conn.send(rank)
                                workers[process] = (conn, rank)
                                if rank is None:
                                    process.join()
                                    del workers[process]
                                continue
                            if kind == "failed":
                                raise RunError(f"task {done_rank:05d} failed: {payload} "
                                               f"(log: {self.logging_dir.path}/logs/task_{done_rank:05d}.log)")
                        if process.sentinel in ready or conn in ready:
                            process.join(1)
                            if rank is not None:
                                raise RunError(f"task {rank:05d} {describe_exit(process.exitcode)} "
                                               f"(log: {self.logging_dir.path}/logs/task_{rank:05d}.log)")
                            del workers[process]
            finally:
                _stop_processes(list(workers))
            stats = sum(results, start=PipelineStats())
            with self.logging_dir.open("stats.json", "wt") as handle:
                stats.save_to_disk(handle)
            return stats

    return SupervisedLocal


def supervised_local_executor(*args: Any, **kwargs: Any) -> Any:
    """A ``SupervisedLocal`` executor (the class is built on first use: importing datatrove's
    executors costs ~0.5 s, which commands that never run a stage should not pay)."""
    return _local_executor_class()(*args, **kwargs)


def _stop_processes(processes: list[Any], grace: float = 10.0) -> None:
    """SIGTERM, then after ``grace`` seconds SIGKILL, every process still alive; wait for all."""
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.time() + grace
    for process in alive:
        process.join(max(0.0, deadline - time.time()))
        if process.is_alive():
            process.kill()
            process.join()


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
# Stage runs


def default_tasks(input_path: str) -> int:
    return max(1, min(len(list_document_files(input_path)), MAX_DEFAULT_TASKS))


class StageRun:
    """One run of a stage from INPUT to OUTPUT: the protocol every stage follows.

    Before anything is written: INPUT is resolved and checked (``layout.check_input``: missing,
    raw data, unfinished upstream -> ``InputError``, exit 1), OUTPUT must not overlap INPUT
    (``UsageError``, exit 2), OUTPUT must be new, empty or an earlier run of this same stage.
    Then, in ``with StageRun(...) as run:``, SIGTERM/SIGINT raise ``Interrupted`` (workers are
    stopped, the lock is released on the way out), the lock is taken, the run record is checked
    (other parameters: refuse, or with ``--force`` delete what this stage wrote and start over),
    and the stage calls ``run.execute(...)`` for each phase and ``run.finish()`` once, which
    merges the tasks' stats into ``stats.json`` and writes the completion record last.

    ``owned`` names what the stage writes in OUTPUT besides ``.nordpipe`` (default: the stage
    registry's ``writes``); ``raw_inputs`` replaces the checked INPUT for stages that read raw files
    (ingest); ``extra_locks`` are further folders locked for the run (persistent dedup state);
    ``parameters`` may be a function, called under the locks (line dedup reads its state there).
    """

    def __init__(
        self,
        stage: str,
        input_path: str,
        output_path: str,
        options: RunOptions | None = None,
        parameters: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        *,
        tasks: int | None = None,
        owned: tuple[str, ...] | None = None,
        raw_inputs: list[str] | None = None,
        extra_locks: tuple[str, ...] = (),
        record_extra: dict[str, Any] | None = None,
    ):
        self.stage = stage
        self.options = options or RunOptions()
        self.layout = OutputLayout.of(output_path)
        self.output_path = self.layout.root
        # what --force may delete: the registry's word for this stage
        self.owned = owned if owned is not None else (STAGES[stage].writes if stage in STAGES else (DOCUMENTS, REMOVED, QUARANTINE))
        self.started = time.time()
        if raw_inputs is None:
            self.input = check_input(input_path)
            self.input_path = input_path
            check_disjoint([input_path], output_path)
            self.files = self.input.files
            self.tasks = tasks or self.options.tasks or max(1, min(len(self.files), MAX_DEFAULT_TASKS))
        else:
            self.input = None
            self.input_path = input_path
            check_disjoint(raw_inputs, output_path)
            self.files = raw_inputs
            self.tasks = tasks or self.options.tasks or 1
        self._parameters = parameters
        self._record_extra = record_extra or {}
        self.record: dict[str, Any] = {}
        self._locks = [OutputLock(self.output_path), *(OutputLock(path) for path in extra_locks)]
        self._signals = InterruptOnSignals()

    @property
    def empty(self) -> bool:
        """The input is valid and holds no documents: the output is empty and valid too."""
        return not self.files

    @property
    def state(self) -> str:
        return self.layout.state

    def __enter__(self) -> StageRun:
        self._refuse_foreign_output()
        self._signals.__enter__()
        entered: list[ExclusiveLock] = []
        try:
            for lock in self._locks:
                lock.__enter__()
                entered.append(lock)
            self._check_run_record()
        except BaseException:
            for lock in reversed(entered):
                lock.__exit__(None, None, None)
            self._signals.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for lock in reversed(self._locks):
                if lock.handle is not None and not lock.handle.closed:
                    lock.__exit__(None, None, None)
        finally:
            self._signals.__exit__(None, None, None)

    def _refuse_foreign_output(self) -> None:
        """OUTPUT must be new, empty, or a run of this stage (``--force`` never deletes others' files)."""
        root = self.output_path
        if not os.path.isdir(root):
            if os.path.exists(root):
                raise UsageError(f"OUTPUT {root} is a file, not a folder")
            return
        previous = self.layout.run()
        if previous is not None:
            if previous.get("stage") != self.stage:
                raise UsageError(f"OUTPUT {root} holds the output of stage {previous.get('stage')!r}, not {self.stage!r}: "
                                 "write to another folder (--force never deletes another stage's output)")
            return
        foreign = [name for name in os.listdir(root) if name != STATE_DIR]
        if foreign:
            raise UsageError(f"OUTPUT {root} is not empty ({', '.join(sorted(foreign)[:5])}) and holds no nordpipe "
                             "run: write to a new or empty folder")

    def _check_run_record(self) -> None:
        parameters = self._parameters() if callable(self._parameters) else self._parameters
        self.record = json.loads(json.dumps({
            "stage": self.stage,
            "input": absolute(self.input_path) if self.input is not None else [absolute(p) for p in self.files],
            "tasks": self.tasks,
            "parameters": parameters or {},
            "keep_removed": self.options.keep_removed,
            "max_shard_bytes": self.options.max_shard_bytes,
            **self._record_extra,
        }, default=str))
        previous = self.layout.run()
        if previous is not None and previous != self.record:
            if not self.options.force:
                changed = sorted(k for k in set(previous) | set(self.record) if previous.get(k) != self.record.get(k))
                raise RunError(
                    f"{self.output_path} holds a run with other parameters ({', '.join(changed)} differ); "
                    "rerun with --force to start over or choose another OUTPUT"
                )
            self._discard_previous_run()
        os.makedirs(self.state, exist_ok=True)
        atomic_write_json(self.layout.run_record, self.record)

    def _discard_previous_run(self) -> None:
        """Delete what the earlier run of this stage wrote: its owned outputs and its state."""
        for name in self.owned:
            target = self.layout.path(name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
        for entry in os.listdir(self.state):
            if entry != "lock":
                target = os.path.join(self.state, entry)
                shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)

    def execute(
        self,
        pipeline: Sequence[PipelineStep | Callable[..., Any]],
        logging_dir: str | None = None,
        tasks: int | None = None,
        job_name: str | None = None,
        depends_job_id: str | None = None,
        options: RunOptions | None = None,
    ) -> str | None:
        """Run one phase as datatrove tasks (default: the stage's tasks, logs in ``.nordpipe/datatrove``)."""
        return execute(
            pipeline,
            logging_dir or self.layout.datatrove,
            tasks or self.tasks,
            options or self.options,
            job_name=job_name or f"nordpipe-{self.stage}",
            depends_job_id=depends_job_id,
        )

    def writer(self, **overrides: Any) -> DocumentWriter:
        """The stage's ``DocumentWriter`` with the run's options."""
        kwargs = {
            "keep_removed": self.options.keep_removed,
            "max_shard_bytes": self.options.max_shard_bytes,
            "compression_level": self.options.compression_level,
            **overrides,
        }
        return DocumentWriter(self.output_path, **kwargs)

    @property
    def submitted_only(self) -> bool:
        """Submitted to Slurm with ``--no-wait``: nothing to finish here."""
        return self.options.executor == "slurm" and not self.options.slurm.wait

    def finish(self) -> dict[str, Any]:
        """``merge_stats`` then ``complete``: for stages with nothing to do between the two."""
        return self.complete(self.merge_stats())

    def merge_stats(self) -> dict[str, Any]:
        """Merge the tasks' stats into ``stats.json`` and return them (the run is not complete yet)."""
        if DOCUMENTS in self.owned:
            os.makedirs(self.layout.documents, exist_ok=True)  # an empty output is still a dataset folder
        return finalize(self.output_path, stage=self.stage, tasks=self.tasks, seconds=time.time() - self.started)

    def complete(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Write the final ``stats`` and then, last and atomically, the completion record that lets
        later stages and pipelines read this output. Call it after every other write of the run."""
        atomic_write_json(self.layout.stats, stats)
        previous = self.layout.completed() or {}
        atomic_write_json(self.layout.completion, {
            "id": previous.get("id") or uuid.uuid4().hex,
            "stage": self.stage,
            "input": self.record["input"],
            "input_identity": input_identity(self.input_path) if self.input is not None else None,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "documents_out": stats.get("documents_out", 0),
            "quarantined": stats.get("quarantined_total", 0),
        })
        return stats


def run_stage(
    stage: str,
    steps: Sequence[PipelineStep],
    input_path: str,
    output_path: str,
    options: RunOptions | None = None,
    parameters: dict[str, Any] | None = None,
    reader: PipelineStep | None = None,
    tasks: int | None = None,
    raw_inputs: list[str] | None = None,
) -> dict[str, Any]:
    """Run a one-phase stage (``[reader, *steps, writer]``) from INPUT to OUTPUT; return its stats.

    ``reader`` replaces the default ``DocumentReader`` (ingest reads raw formats, given as
    ``raw_inputs``). See ``StageRun`` for the protocol.
    """
    with StageRun(stage, input_path, output_path, options, parameters, tasks=tasks, raw_inputs=raw_inputs) as run:
        reader = reader or DocumentReader(input_path)
        run.execute([reader, *steps, run.writer()])
        if run.submitted_only:
            return {}
        return run.finish()


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
    layout = OutputLayout.of(output_path)
    tasks_dir = layout.tasks
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
        "steps": _datatrove_step_stats(layout.datatrove),
    }
    if seconds is not None:
        stats["seconds"] = round(seconds, 3)
    atomic_write_json(layout.stats, stats)
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
