"""``StageRun``: the protocol every stage follows, and the stats it merges."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from datatrove.pipeline.base import PipelineStep

from nordpipe import __version__
from nordpipe.layout import (
    DOCUMENTS,
    QUARANTINE,
    REMOVED,
    STATE_DIR,
    OutputLayout,
    UsageError,
    absolute,
    atomic_write_json,
    check_disjoint,
    check_input,
    input_identity,
    upstream_outputs,
    written_digests,
)
from nordpipe.runner.executors import execute, run_phase_rank
from nordpipe.runner.lock import ExclusiveLock, OutputLock
from nordpipe.runner.options import MAX_DEFAULT_TASKS, RunError, RunOptions
from nordpipe.runner.processes import InterruptOnSignals
from nordpipe.runner.removal_guard import RemovalShareExceeded, check_stage
from nordpipe.runner.slurm import PREPARE, Phase, PhaseDone, phase_target
from nordpipe.stages import STAGES
from nordpipe.steps import DocumentReader, DocumentWriter, list_document_files

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
    merges the tasks' stats into ``stats.json`` and writes the completion record last -- unless
    a stage that removes documents removed more than ``--max-removed-share`` of its input
    (``removal_guard``): then no completion record, exit 1.

    With ``--executor slurm`` (``runner.slurm``) ``execute`` only records each phase, and where
    a local run would start its work after the last phase the stage returns ``run.submit()``,
    which submits the phases as chained job arrays and a finish job (the same command, rerun,
    does that work), then releases the locks. Stage code after the last phase begins with
    ``run.finishing()`` (``finish``/``merge_stats`` call it): an array task stops there.

    ``owned`` names what the stage writes in OUTPUT besides ``.nordpipe`` (default: the stage
    registry's ``writes``); ``raw_inputs`` replaces the checked INPUT for stages that read raw files
    (ingest); ``extra_locks`` are further folders locked for the run (persistent dedup state);
    ``parameters`` may be a function, called under the locks (line dedup reads its state there).
    ``rebuilds``: the stage builds its whole output anew on every run and swaps it in when it
    finishes (the exports), so other parameters need no ``--force`` and a failed run leaves the
    previous output in place.
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
        rebuilds: bool = False,
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
        self.rebuilds = rebuilds
        self._parameters = parameters
        self._record_extra = record_extra or {}
        self.record: dict[str, Any] = {}
        self._locks = [OutputLock(self.output_path), *(OutputLock(path) for path in extra_locks)]
        if phase_target() not in (None, PREPARE):
            # an array task of a Slurm phase: its siblings run at the same time, and the
            # submitter (or prepare job) and the finish job hold the locks around the phases
            self._locks = []
        self.phases: list[Phase] = []
        """``--executor slurm``: the phases ``execute`` recorded, submitted by ``submit``."""
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
            self._release_locks()
        finally:
            self._signals.__exit__(None, None, None)

    def _release_locks(self) -> None:
        for lock in reversed(self._locks):
            if lock.handle is not None and not lock.handle.closed:
                lock.__exit__(None, None, None)

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
        if self.rebuilds:
            # the stage replaces its folders wholesale when it finishes (the exports): the
            # earlier output stays readable until then, but is no longer this run's result
            if os.path.exists(self.layout.completion):
                os.remove(self.layout.completion)
        elif previous is not None and previous != self.record:
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
        """Run one phase as datatrove tasks (default: the stage's tasks, logs in ``.nordpipe/datatrove``).

        ``--executor slurm`` (the submitter): record the phase for ``submit``; in a Slurm array
        task (``runner.slurm``): run this task's rank if this is its phase, else check that the
        earlier phase is complete."""
        name = job_name or f"nordpipe-{self.stage}"
        folder = logging_dir or self.layout.datatrove
        count = tasks or self.tasks
        target = phase_target()
        if target == PREPARE:
            raise PhaseDone(f"prepared {self.output_path}")
        if target is not None:
            return run_phase_rank(pipeline, folder, count, name, target, (options or self.options).verbose)
        if self.submitted_only:
            self.phases.append(Phase(name, count, os.path.abspath(folder)))
            return None
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
        """``--executor slurm``: the phases were recorded, not run; the stage ends with
        ``return run.submit()`` (the finish job does the rest, ``runner.slurm``)."""
        return self.options.executor == "slurm"

    def submit(self) -> dict[str, Any]:
        """Submit the recorded phases and the finish job, release the locks (the finish job
        takes them), print the job ids; with wait, wait for the finish job and return the stats it
        wrote (raise ``RunError`` naming the failed tasks' logs), else return ``{}``."""
        from nordpipe.runner.slurm import jobs_in_queue, progress, submit_stage, submitted_lines, wait_for_jobs

        command = self.options.command
        if not command:
            raise RunError("--executor slurm runs the stage command again in each job: run it from the nordpipe "
                           "command line")
        if os.path.exists(self.layout.completion) and not self.rebuilds:
            # this run is not complete until its finish job says so
            os.remove(self.layout.completion)
        record = submit_stage(self.stage, self.output_path, command, self.phases, self.options, self.tasks)
        self._release_locks()
        if not self.options.slurm.wait:
            for line in submitted_lines(record):
                print(line, flush=True)
            return {}
        jobs = [p["job"] for p in record["phases"]] + [record["finish"]]
        wait_for_jobs(jobs)
        if self.layout.completed() is None:
            failed = "; ".join(f"{key}: {value}" for key, value in progress(self.output_path) if "failed" in key)
            queued = jobs_in_queue(jobs)
            raise RunError(f"Slurm jobs of {self.output_path} ended without completing it"
                           f"{' (still queued: ' + ', '.join(sorted(queued)) + ')' if queued else ''}; "
                           f"{failed or 'see ' + self.layout.slurm_logs}; rerun the same command to resubmit "
                           "what is missing")
        return dict(self.layout.read_json(self.layout.stats))

    def finishing(self) -> None:
        """The stage's work after its last phase starts here: in a Slurm array task (which runs
        one rank of one phase) stop; the finish job does it (``runner.slurm``)."""
        target = phase_target()
        if target is not None:
            sys.stderr.write(f"nordpipe: phase-task: nothing to do: phase {target} is not part of this run\n")
            raise PhaseDone(target)

    def finish(self) -> dict[str, Any]:
        """``merge_stats`` then ``complete``: for stages with nothing to do between the two
        (``--executor slurm``: ``submit``)."""
        if self.submitted_only:
            return self.submit()
        self.finishing()
        return self.complete(self.merge_stats())

    def merge_stats(self) -> dict[str, Any]:
        """Merge the tasks' stats into ``stats.json`` and return them (the run is not complete yet)."""
        if self.submitted_only:
            raise RuntimeError(f"stage {self.stage}: merge_stats in a Slurm submitter (return run.submit() first)")
        self.finishing()
        if DOCUMENTS in self.owned:
            os.makedirs(self.layout.documents, exist_ok=True)  # an empty output is still a dataset folder
        return finalize(self.output_path, stage=self.stage, tasks=self.tasks, seconds=time.time() - self.started)

    def complete(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Write the final ``stats`` and then, last and atomically, the completion record that lets
        later stages and pipelines read this output. Call it after every other write of the run.

        A stage that removes documents first checks the share it removed (``removal_guard``):
        over ``--max-removed-share``, the stats are written (``nordpipe status`` shows them) but
        no completion record, and ``RemovalShareExceeded`` (exit 1) says how to accept it."""
        atomic_write_json(self.layout.stats, stats)
        registered = STAGES.get(self.stage)
        if registered is not None and registered.removes_documents:
            try:
                check_stage(self.stage, stats, self.options.max_removed_share, command=registered.cli)
            except RemovalShareExceeded:
                # an earlier run under a higher limit completed it: this command refuses it
                if os.path.exists(self.layout.completion):
                    os.remove(self.layout.completion)
                raise
        previous = self.layout.completed() or {}
        atomic_write_json(self.layout.completion, {
            "id": previous.get("id") or uuid.uuid4().hex,
            "stage": self.stage,
            "input": self.record["input"],
            "input_identity": input_identity(self.input_path) if self.input is not None else None,
            # what read what: ``nordpipe report`` follows these from the final stage back to
            # ingest, whatever the folders are called and wherever they were moved
            "upstream": upstream_outputs(self.input_path) if self.input is not None else [],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "nordpipe_version": __version__,
            "documents_out": stats.get("documents_out", 0),
            "quarantined": stats.get("quarantined_total", 0),
            # what the run wrote: later runs take their inputs' content digests from here
            "files": written_digests(self.output_path) if DOCUMENTS in self.owned else {},
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


def datatrove_step_stats(logging_dir: str) -> dict[str, dict[str, Any]]:
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
        "steps": datatrove_step_stats(layout.datatrove),
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
