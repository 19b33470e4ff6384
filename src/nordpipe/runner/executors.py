"""Executors: datatrove tasks on supervised local workers, or one rank of a Slurm array task
(``run_phase_rank``; the arrays themselves are submitted by ``runner.slurm``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from datatrove.pipeline.base import PipelineStep

from nordpipe.runner.options import RunError, RunOptions
from nordpipe.runner.processes import (
    collector_for_tasks,
    describe_exit,
    die_with_parent,
    kill_point,
    pause_for_tests,
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

    Returns None (the signature keeps a job id for callers that chain phases). Raises
    ``RunError`` if any task failed.
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
        # a stage's phases are submitted together by ``StageRun.submit`` (``runner.slurm``)
        raise RunError("execute(): --executor slurm runs through StageRun (runner.slurm), not one phase at a time")
    raise RunError(f"unknown executor {options.executor!r} (use local or slurm)")


def run_phase_rank(
    pipeline: Sequence[PipelineStep | Callable[..., Any]],
    logging_dir: str,
    tasks: int,
    name: str,
    target: str,
    verbose: bool = False,
) -> None:
    """In a Slurm array task of phase ``target`` (``runner.slurm``): the stage reached phase
    ``name``. Its own phase: run this task's rank in this process (unless it completed before:
    datatrove's ``skip_completed``), then stop the command (``PhaseDone``, exit 0). An earlier
    phase: it must be complete (the arrays are chained ``afterok``); return and go on. An
    incomplete other phase: ``target`` is not part of this run (deferred input submits every
    phase a stage may have): stop, doing nothing."""
    from datatrove.executor import LocalPipelineExecutor

    from nordpipe.runner.slurm import PhaseDone, phase_rank

    _quiet_datatrove(verbose)
    executor = LocalPipelineExecutor(pipeline=list(pipeline), tasks=tasks, workers=1, logging_dir=logging_dir,
                                     skip_completed=True)
    if name != target:
        if executor.get_incomplete_ranks(range(tasks)):
            sys.stderr.write(f"nordpipe: phase-task: nothing to do: phase {target} follows {name}, which is not "
                             "complete, so it is not part of this run\n")
            raise PhaseDone(target)
        return
    rank = phase_rank()
    if rank >= tasks:
        sys.stderr.write(f"nordpipe: phase-task: nothing to do: phase {name} has {tasks} tasks, this is task {rank}\n")
        raise PhaseDone(target)
    if rank == 0:
        executor.save_executor_as_json()  # what `nordpipe status` compares the completions with
    kill_point(f"slurm.{name}.{rank:05d}")
    collector_for_tasks()
    executor._run_for_rank(rank)
    raise PhaseDone(target)


def _worker_main(executor: Any, conn: Any, local_rank: int, verbose: bool) -> None:
    """A local worker: runs the ranks it is sent until it is sent None; reports each one."""
    die_with_parent()
    # Ctrl-C on a terminal reaches the whole process group; the stage process stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _quiet_datatrove(verbose)
    from copy import deepcopy

    collector_for_tasks()
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

        Workers come from a forkserver (``nordpipe.runner._forkserver``): a clean process that
        has imported the stage once, so workers start at once and never inherit a thread pool
        (polars' does not survive fork). The forkserver dies with the stage and each worker
        with the forkserver, so a stage killed with -9 takes its workers with it. (Spawned
        workers would re-import the stage in every phase: +7-13% on short stages, measured.)"""

        def __init__(self, *args: Any, verbose: bool = False, **kwargs: Any):
            super().__init__(*args, start_method="forkserver", **kwargs)
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
            # the forkserver imports the stage (``__main__``) once, and dies with this process;
            # with several workers it also imports what they run, once for all of them (with one,
            # that only moved the imports and cost the tree ~10 MiB: measured, see worker_modules)
            preload = worker_modules(self.pipeline) if self.workers > 1 else []
            context.set_forkserver_preload(["__main__", *preload, "nordpipe.runner._forkserver"])
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


def worker_modules(pipeline: Sequence[Any]) -> list[str]:
    """Modules a local worker imports to run ``pipeline``: datatrove's executor and the steps'
    modules. The forkserver imports them once (``set_forkserver_preload``), so that each worker
    of each phase is forked with them loaded instead of importing them itself (0.5-1 s CPU and
    ~20 MB a worker since the CLI imports a command's modules lazily: ``nordpipe.cli.app``).
    Only with two or more workers: with one, ``filter urls`` on 200,000 documents measured
    +0.16 s CPU and +11 MiB PSS for the tree (the worker touches the forkserver's module pages,
    so copy-on-write duplicates them; ``benchmarks/results/urls.md``).

    None of them may start threads at import (a forked thread pool is broken in the child):
    the step modules import polars and pyarrow lazily, which ``tests/test_cli_lazy.py`` checks."""
    modules = {"datatrove.executor.local"}
    for step in pipeline:
        module = getattr(type(step) if isinstance(step, PipelineStep) else step, "__module__", None)
        if isinstance(module, str) and module != "__main__":
            modules.add(module)
    return sorted(modules)


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
