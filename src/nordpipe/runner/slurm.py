"""Stages on Slurm: every phase a job array, then one finish job; nobody waits in between.

``STAGE IN OUT --executor slurm`` submits, and returns or waits for one job:

1. one Slurm job array per phase of the stage (``PHASE`` = the phase's datatrove job name, e.g.
   ``nordpipe-minhash-buckets``), ``--array=0-(tasks-1)``, each depending ``afterok`` on the
   array before it (the first on ``--after JOBID`` when given);
2. a 1-task *finish* job, ``afterok`` on the last array, that does what the submitting process
   did after the tasks before: merge the stats, run the removal guard, commit persistent state
   (the line-dedup Bloom filter, the MinHash index: only this job replaces them), write the
   completion record.

Every job runs the *same stage command* again (``slurm.json`` keeps it), with the local
executor. An array task runs with ``NORDPIPE_SLURM_PHASE=PHASE`` and ``NORDPIPE_SLURM_RANK``
(= ``SLURM_ARRAY_TASK_ID``): the stage code runs as usual, ``StageRun.execute`` skips the phases
before PHASE (complete: ``afterok``), runs rank RANK of PHASE in-process, and the command exits 0
there (``PhaseDone``). The finish job runs the command plainly: every phase is complete, so
each ``execute`` is a no-op (datatrove's ``skip_completed``) and the code after the last phase
runs, under the output's and the state's locks, exactly as in a local run. Ranks are datatrove
ranks (``completions/``, ``stats/``, ``logs/`` in each phase's logging folder), so a rerun after
a failure submits arrays whose completed ranks exit at once: only the missing ranks do work.

Why not datatrove's ``SlurmPipelineExecutor``: it pickles the pipeline steps the submitting
process built, and building them needs the input (file lists, the state's current generation),
so a stage could not be queued before its input exists; it also adds a stats-merging job after
every array. Re-running the command in the job moves *all* Python work into jobs, including
what a stage does between phases, and makes deferred input possible: with ``--after JOBID``
(``nordpipe run`` uses it) the submitter reads nothing of INPUT; it submits a 1-task *prepare*
job (the command up to its first phase: input checks, run record, state resolution, under the
locks) and the arrays of the stage's full phase list (``deferred_phases``, ``--tasks`` tasks
each; a phase the run turns out not to have, e.g. MinHash's verify phases without
``--jaccard-check``, or ranks beyond a phase's real task count, exit at once). The price is the
stage's start-up (imports, the input listing) once per array task: seconds, not minutes (a
quality submitter, which does the same start-up, took 4 s wall at load 0.3 on the 2-CPU test
machine; 20 s at load 23), so a task should have far more than that to do.

Jobs are submitted with ``--kill-on-invalid-dep=yes``: when a task fails, the jobs after it are
cancelled instead of pending forever (``DependencyNeverSatisfied``). Everything a job reads or
writes (INPUT, OUTPUT, state folders, the environment named by ``--env-command``) must be on a
filesystem shared by the submitting host and the nodes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from nordpipe.layout import OutputLayout, atomic_write_json
from nordpipe.runner.options import RunError, RunOptions

PHASE_ENV = "NORDPIPE_SLURM_PHASE"
"""In an array task: the phase (datatrove job name) whose rank ``RANK_ENV`` this job runs."""
RANK_ENV = "NORDPIPE_SLURM_RANK"
PREPARE = "prepare"
"""Deferred input: the 1-task job that runs the command up to its first phase."""
FINISH = "finish"


class PhaseDone(BaseException):
    """An array task ran its rank (or its phase is not part of this run): exit 0 here."""


def phase_target() -> str | None:
    """The phase this process runs one rank of (None: a submitter, a finish job or a local run)."""
    return os.environ.get(PHASE_ENV) or None


def phase_rank() -> int:
    value = os.environ.get(RANK_ENV) or os.environ.get("SLURM_ARRAY_TASK_ID")
    if value is None:
        raise RunError(f"{PHASE_ENV} is set but neither {RANK_ENV} nor SLURM_ARRAY_TASK_ID is")
    return int(value)


@dataclass
class Phase:
    """One job array: ``tasks`` ranks of the phase ``name``, logging to ``logging_dir``."""

    name: str
    tasks: int
    logging_dir: str
    job: str | None = None


def deferred_phases(stage: str, output: str, tasks: int, command: list[str] | None = None) -> list[Phase]:
    """Every phase a run of ``stage`` may have, with at most ``tasks`` ranks each (deferred input:
    the real list depends on INPUT and the state, read only in the jobs). ``command``: the stage
    command line, which says whether MinHash verifies candidates (``--jaccard-check``)."""
    layout = OutputLayout.of(os.path.abspath(output))
    if stage == "minhash":
        folder = layout.state_path("minhash")
        verify = command is None or any(arg == "--jaccard-check" for arg in command)
        names = [("signatures", tasks), ("buckets", tasks),
                 *([("candidates", 1), ("shingles", tasks), ("verify", tasks)] if verify else []), ("clusters", 1)]
        return [*(Phase(f"nordpipe-minhash-{n}", t, os.path.join(folder, n)) for n, t in names),
                Phase("nordpipe-minhash-filter", tasks, layout.datatrove)]
    if stage == "lines":
        from nordpipe.lines import WORK_DIR

        work = layout.state_path(WORK_DIR)
        return [Phase("nordpipe-lines-signature", tasks, os.path.join(work, "logs-signature")),
                Phase("nordpipe-lines-decide", tasks, os.path.join(work, "logs-decide")),
                Phase("nordpipe-lines-filter", tasks, layout.datatrove)]
    return [Phase(f"nordpipe-{stage}", tasks, layout.datatrove)]


_VALUE_OPTIONS = ("--executor", "--after", "--tasks", "--workers")
_FLAG_OPTIONS = ("--no-wait", "--force")


def job_command(command: list[str], tasks: int, workers: int, force: bool = False) -> list[str]:
    """The stage command as a job runs it: local executor, the submitted task count, no
    ``--no-wait``/``--after``, and no ``--force`` (the submitter, or with ``force`` the prepare
    job, has discarded the earlier run already: the phase tasks must not discard each other)."""
    kept: list[str] = []
    skip = False
    for arg in command:
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = True
            continue
        if arg in _FLAG_OPTIONS or any(arg.startswith(f"{o}=") for o in _VALUE_OPTIONS):
            continue
        kept.append(arg)
    forced = ["--force"] if force and "--force" in command else []
    return [sys.executable, "-m", "nordpipe.cli.main", *kept, "--executor", "local",
            "--tasks", str(tasks), "--workers", str(max(1, workers)), *forced]


def _sbatch(script: str, args: list[str]) -> str:
    try:
        result = subprocess.run(["sbatch", "--parsable", *args], input=script, capture_output=True, text=True)
    except OSError as err:
        raise RunError(f"cannot submit to Slurm (sbatch): {err}") from err
    if result.returncode != 0:
        raise RunError(f"sbatch failed: {result.stderr.strip()}")
    return result.stdout.strip().split(";")[0]


def sbatch_resources(options: RunOptions, cpus: int | None = None) -> list[str]:
    from nordpipe.runner.executors import _default_partition

    slurm = options.slurm
    args = [f"--cpus-per-task={cpus or slurm.cpus_per_task}", f"--mem-per-cpu={slurm.mem_per_cpu_gb}G",
            f"--time={slurm.time}", f"--partition={slurm.partition or _default_partition()}"]
    if slurm.qos:
        args.append(f"--qos={slurm.qos}")
    args += [f"--{key}={value}" for key, value in slurm.sbatch_args.items()]
    return args


def submit_stage(stage: str, output: str, command: list[str], phases: list[Phase], options: RunOptions,
                 tasks: int, after: str | None = None, prepare: bool = False) -> dict[str, Any]:
    """Submit ``phases`` as chained arrays (after a prepare job when ``prepare``), then the finish
    job; write ``OUTPUT/.nordpipe/slurm.json`` and return it. ``tasks``: the stage's task count
    (``--tasks`` of every job); ``after``: job ids (``a:b``) the first job waits for."""
    from nordpipe.runner.executors import default_env_command

    layout = OutputLayout.of(os.path.abspath(output))
    logs = layout.slurm_logs
    os.makedirs(logs, exist_ok=True)
    env = options.slurm.env_command or default_env_command()
    # a phase task runs one rank in-process (on --cpus CPUs: tokenizers and NER use threads); the
    # finish job may run a leftover phase (an empty input's) with the stage's workers
    rank_command = job_command(command, tasks, 1)
    record: dict[str, Any] = {
        "stage": stage, "output": layout.root, "cwd": os.getcwd(), "command": command,
        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"), "after": after, "tasks": tasks, "phases": [], "prepare": None, "finish": None,
    }
    previous = after

    def submit(name: str, tasks: int, cmd: list[str], env_phase: str | None, cpus: int | None = None) -> str:
        nonlocal previous
        array = f"#SBATCH --array=0-{tasks - 1}\n" if env_phase and env_phase not in (PREPARE,) else ""
        out = f"{logs}/{name}_%A_%a.out" if array else f"{logs}/{name}_%j.out"
        exports = ""
        if env_phase:
            exports = f"export {PHASE_ENV}={shlex.quote(env_phase)}\n"
            exports += f"export {RANK_ENV}=${{SLURM_ARRAY_TASK_ID:-0}}\n"
        else:
            exports = f"unset {PHASE_ENV} {RANK_ENV}\n"
        script = (f"#!/bin/bash\n{array}{env}\ncd {shlex.quote(os.getcwd())}\n{exports}"
                  f"exec {shlex.join(cmd)}\n")
        job_name = name if name.startswith("nordpipe-") else f"nordpipe-{stage}-{name}"
        args = [f"--job-name={job_name}", f"--output={out}", *sbatch_resources(options, cpus)]
        if previous:
            args += [f"--dependency=afterok:{previous}", "--kill-on-invalid-dep=yes"]
        job = _sbatch(script, args)
        previous = job
        return job

    if prepare:
        record["prepare"] = submit(PREPARE, 1, job_command(command, tasks, 1, force=True), PREPARE)
    for phase in phases:
        phase.job = submit(phase.name, phase.tasks, rank_command, phase.name)
        record["phases"].append({**asdict(phase), "logging_dir": os.path.abspath(phase.logging_dir)})
    workers = max(1, options.workers)
    record["finish"] = submit(FINISH, 1, job_command(command, tasks, workers), None,
                              cpus=max(workers, options.slurm.cpus_per_task))
    atomic_write_json(layout.slurm_record, record)
    return record


def submitted_lines(record: dict[str, Any]) -> list[str]:
    """``submitted<TAB>stage<TAB>phase<TAB>jobid``, one per job, in submission order."""
    stage = record["stage"]
    lines = [f"submitted\t{stage}\t{PREPARE}\t{record['prepare']}"] if record.get("prepare") else []
    lines += [f"submitted\t{stage}\t{p['name']}\t{p['job']}" for p in record["phases"]]
    lines.append(f"submitted\t{stage}\t{FINISH}\t{record['finish']}")
    return lines


def record_jobs(record: dict[str, Any]) -> list[str]:
    jobs = [record["prepare"]] if record.get("prepare") else []
    return [*jobs, *(p["job"] for p in record["phases"]), record["finish"]]


def jobs_in_queue(jobs: list[str]) -> set[str]:
    """Those of ``jobs`` (job or array ids) that are still pending or running (``squeue``)."""
    if not jobs:
        return set()
    try:
        result = subprocess.run(["squeue", "-h", "-o", "%A %F"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RunError(f"cannot ask Slurm for its queue (squeue): {err}") from err
    if result.returncode != 0:
        raise RunError(f"squeue failed: {result.stderr.strip()}")
    queued = {word for line in result.stdout.splitlines() for word in line.split()}
    return {job for job in jobs if job in queued}


def wait_for_jobs(jobs: list[str], poll_seconds: float = 2.0) -> None:
    """Block until none of ``jobs`` is pending or running."""
    while jobs_in_queue(jobs):
        time.sleep(poll_seconds)


def progress(output: str) -> list[tuple[str, str]]:
    """``(key, value)`` rows of a Slurm run's progress, from the files its jobs write (and
    ``squeue`` for what is still queued): per phase ``done/total`` tasks and job id, the failed
    tasks (a rank whose job left the queue without its completion) with their log files."""
    layout = OutputLayout.of(output)
    try:
        record = layout.read_json(layout.slurm_record)
    except (FileNotFoundError, ValueError):
        return []
    try:
        queued = jobs_in_queue(record_jobs(record))
    except RunError:
        queued = set()
    rows: list[tuple[str, str]] = []
    if record.get("after"):
        rows.append(("slurm after", str(record["after"])))
    if record.get("prepare"):
        prepared = "queued" if record["prepare"] in queued else "ended"
        rows.append(("slurm prepare", f"job {record['prepare']} {prepared}"))
    for phase in record["phases"]:
        completions = os.path.join(phase["logging_dir"], "completions")
        done = {int(name) for name in os.listdir(completions) if name.isdigit()} if os.path.isdir(completions) else set()
        done = {rank for rank in done if rank < phase["tasks"]}
        state = "queued" if phase["job"] in queued else "ended"
        # a deferred stage submits every phase it may have with --tasks ranks: the ranks beyond
        # the phase's real task count (or of a phase the run does not have) exit at once,
        # writing no completion; they count as done, and are shown as such
        idle, failed = set(), []
        for rank in range(phase["tasks"]):
            if rank in done:
                continue
            log = os.path.join(layout.slurm_logs, f"{phase['name']}_{phase['job']}_{rank}.out")
            if not os.path.exists(log):
                continue
            if not _ended_without_completion(log):
                idle.add(rank)
            elif phase["job"] not in queued:
                failed.append((rank, log))
        note = f" ({len(idle)} with nothing to do)" if idle else ""
        rows.append((f"slurm {phase['name']}",
                     f"{len(done) + len(idle)}/{phase['tasks']} tasks done{note}, job {phase['job']} {state}"))
        for rank, log in failed:
            rows.append((f"slurm failed {phase['name']}", f"task {rank}: {log}"))
    finish = record["finish"]
    finish_log = os.path.join(layout.slurm_logs, f"{FINISH}_{finish}.out")
    state = "queued" if finish in queued else ("ended" if os.path.exists(finish_log) else "cancelled or never ran")
    rows.append(("slurm finish", f"job {finish} {state}"))
    if finish not in queued and os.path.exists(finish_log) and layout.completed() is None:
        rows.append(("slurm failed finish", finish_log))
    return rows


def _ended_without_completion(log: str) -> bool:
    """A task log exists for a rank with no completion: the task ran and did not complete (it
    failed, or was killed). A rank whose phase is not part of the run writes no log line of
    failure but does exit 0: those say so (``phase not part of this run``)."""
    with open(log, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    return "nordpipe: phase-task: nothing to do" not in text
