"""Whole pipelines: ``nordpipe run PIPELINE.yaml``.

A pipeline file names the datasets to ingest and the stages to run, in order::

    name: demo
    root: demo-output                 # everything goes below here (--root overrides)
    executor: local                   # or slurm: one job per stage, chained with afterok
    slurm: {partition: null, time: "02:00:00", mem_per_cpu: 2}
    sample: {seed: 42, scale: 1.0, files: 1}    # optional: generate sample raw data into ROOT/sample first
    datasets:
      - name: nyheder
        raw: ["{root}/sample/raw/nyheder"]      # files, folders or globs; {root} is expanded
        config: "{root}/sample/datasets/nyheder.yaml"
    stages:
      - type: quality                   # urls, quality, lines, minhash, pii, tokenize
        params: {languages: "da,nb,sv"} # the stage command's flags, without the dashes
        resources: {tasks: 2, workers: 2, cpus: 2}

Runs are incremental, in batches: a run ingests only raw files it has not ingested before
(``ROOT/state/ingested.json``), runs the stages on that batch (``ROOT/batches/NNNN/``), and
stages with persistent state (line dedup ``--state``, MinHash ``--index``) dedup the batch against
everything before it. A batch interrupted by a crash is finished by the next run before new
files are taken. Batches give the same documents as one run over all the data, with one
exception inherent to near-duplicate clustering: when a later document is near two earlier
documents that were not near each other, one run puts all three in one cluster and keeps only
the first, while the earlier batch has already released both (released documents are not
withdrawn; the later document is removed either way). A lock file stops overlapping runs (cron). Every stage is the same command a
user would type (``nordpipe filter quality IN OUT ...``), so a pipeline run is exactly a chain
of stage runs, each resumable on its own.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from nordpipe.runner import STATE_DIR, ExclusiveLock, RunError, default_env_command, wait_for_slurm_job

STAGE_COMMANDS: dict[str, list[str]] = {
    "urls": ["filter", "urls"],
    "quality": ["filter", "quality"],
    "lines": ["dedup", "lines"],
    "minhash": ["dedup", "docs"],
    "pii": ["pii"],
    "tokenize": ["tokenize"],
}
"""Stage types and the nordpipe command each runs."""

TOP_LEVEL_KEYS = ("name", "root", "executor", "slurm", "sample", "datasets", "stages", "description")
DATASET_KEYS = ("name", "raw", "config", "params", "resources")
STAGE_KEYS = ("type", "name", "params", "resources")
MAX_INLINE_FILES = 200
"""More raw files than this go to ``nordpipe ingest`` in a ``--files-from`` list."""
RESOURCE_KEYS = ("tasks", "workers", "cpus", "mem_per_cpu", "time", "partition")
SLURM_KEYS = ("partition", "time", "mem_per_cpu", "env_command", "cpus")


class PipelineConfigError(ValueError):
    """A mistake in a pipeline file, with its line and what is allowed."""


# --------------------------------------------------------------------------------------------
# Loading with line numbers


class _LineDict(dict):  # type: ignore[type-arg]
    """A mapping that remembers the YAML line of each key (1-based)."""

    lines: dict[str, int]
    line: int


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    mapping = _LineDict()
    mapping.lines = {}
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class DatasetSpec:
    name: str
    raw: list[str]
    config: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageSpec:
    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        return STAGE_COMMANDS[self.type]


@dataclass
class Pipeline:
    path: str
    name: str
    root: str
    executor: str
    slurm: dict[str, Any]
    sample: dict[str, Any] | None
    datasets: list[DatasetSpec]
    stages: list[StageSpec]

    def stage_names(self) -> list[str]:
        return ["ingest", *[s.name for s in self.stages]]


def _where(path: str, mapping: Any, key: str | None = None) -> str:
    if isinstance(mapping, _LineDict):
        line = mapping.lines.get(key, mapping.line) if key is not None else mapping.line
        return f"{path}:{line}"
    return path


def _check_keys(path: str, mapping: Any, allowed: tuple[str, ...], what: str) -> None:
    if not isinstance(mapping, dict):
        raise PipelineConfigError(f"{_where(path, mapping)}: {what} must be a mapping")
    for key in mapping:
        if key not in allowed:
            raise PipelineConfigError(f"{_where(path, mapping, key)}: unknown key {key!r} in {what}; allowed: {', '.join(allowed)}")


def load_pipeline(path: str, root: str | None = None, executor: str | None = None,
                  command_params: Callable[[list[str]], dict[str, str]] | None = None) -> Pipeline:
    """Parse and check a pipeline file; ``PipelineConfigError`` names the line and allowed values.

    ``command_params`` maps a stage command to its accepted parameters (name -> kind); the CLI
    passes one built from its own commands so that parameters are checked before anything runs.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_LineLoader)
    except FileNotFoundError:
        raise PipelineConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise PipelineConfigError(f"{path}: not valid YAML: {err}") from err
    _check_keys(path, data, TOP_LEVEL_KEYS, "the pipeline")
    root = root or data.get("root") or "nordpipe-output"
    executor = executor or data.get("executor", "local")
    if executor not in ("local", "slurm"):
        raise PipelineConfigError(f"{_where(path, data, 'executor')}: executor {executor!r}; allowed: local, slurm")
    slurm = data.get("slurm") or {}
    _check_keys(path, slurm, SLURM_KEYS, "slurm") if slurm else None

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{root}", root)
        if isinstance(value, list):
            return [expand(v) for v in value]
        if isinstance(value, dict):
            return {k: expand(v) for k, v in value.items()}
        return value

    datasets = []
    raw_datasets = data.get("datasets") or []
    if not isinstance(raw_datasets, list) or not raw_datasets:
        raise PipelineConfigError(f"{_where(path, data, 'datasets')}: datasets must be a non-empty list")
    for item in raw_datasets:
        _check_keys(path, item, DATASET_KEYS, "a dataset")
        if "name" not in item or "raw" not in item:
            raise PipelineConfigError(f"{_where(path, item)}: a dataset needs name and raw")
        raw = item["raw"] if isinstance(item["raw"], list) else [item["raw"]]
        _check_keys(path, item.get("resources") or {}, RESOURCE_KEYS, "resources")
        if command_params and item.get("params"):
            _check_params(path, item["params"], ["ingest"], command_params)
        datasets.append(DatasetSpec(item["name"], expand(raw), expand(item.get("config")), expand(dict(item.get("params") or {})),
                                    dict(item.get("resources") or {})))
    stages = []
    names = set()
    for item in data.get("stages") or []:
        _check_keys(path, item, STAGE_KEYS, "a stage")
        kind = item.get("type")
        if kind not in STAGE_COMMANDS:
            raise PipelineConfigError(f"{_where(path, item, 'type')}: stage type {kind!r}; allowed: {', '.join(STAGE_COMMANDS)}")
        name = item.get("name", kind)
        if name in names or name == "ingest":
            raise PipelineConfigError(f"{_where(path, item, 'name')}: stage name {name!r} is used twice")
        names.add(name)
        _check_keys(path, item.get("resources") or {}, RESOURCE_KEYS, "resources")
        if command_params:
            _check_params(path, item.get("params") or {}, STAGE_COMMANDS[kind], command_params)
        stages.append(StageSpec(name, kind, expand(dict(item.get("params") or {})), dict(item.get("resources") or {})))
    return Pipeline(path, str(data.get("name", os.path.basename(path).split(".")[0])), root, executor, dict(slurm),
                    expand(dict(data["sample"])) if data.get("sample") else None, datasets, stages)


# set by the pipeline itself (resources, executor, the raw files), not by a stage's params
RUNNER_FLAGS = {"tasks", "workers", "executor", "partition", "time", "cpus", "mem_per_cpu", "env_command", "no_wait", "force", "json",
                "verbose", "files_from"}


def _check_params(path: str, params: Any, command: list[str], command_params: Callable[[list[str]], dict[str, str]]) -> None:
    if not isinstance(params, dict):
        raise PipelineConfigError(f"{_where(path, params)}: params must be a mapping")
    allowed = {k: v for k, v in command_params(command).items() if k not in RUNNER_FLAGS}
    for key in params:
        if key.replace("-", "_") not in allowed:
            raise PipelineConfigError(
                f"{_where(path, params, key)}: unknown parameter {key!r} for 'nordpipe {' '.join(command)}'; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def params_to_flags(params: dict[str, Any]) -> list[str]:
    """``{"languages": "da,nb", "keep_removed": True, "blocklist": [a, b]}`` -> CLI flags."""
    flags: list[str] = []
    for key, value in params.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for item in value:
                flags += [flag, str(item)]
        else:
            flags += [flag, str(value)]
    return flags


# --------------------------------------------------------------------------------------------
# Batches and plans


@dataclass
class Step:
    """One command of a plan: ingest of one dataset, or one stage."""

    stage: str
    argv: list[str]
    output: str
    resources: dict[str, Any]

    def done(self) -> bool:
        return os.path.exists(os.path.join(self.output, STATE_DIR, "stats.json")) and os.path.exists(
            os.path.join(self.output, STATE_DIR, "pipeline-done")
        )


def _expand_raw(patterns: list[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        for match in matches:
            if os.path.isdir(match):
                for dirpath, dirnames, filenames in os.walk(match):
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                    files += [os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
            elif os.path.exists(match):
                files.append(match)
    return sorted(set(files))


def _signature(path: str) -> str:
    stat = os.stat(path)
    return f"{stat.st_size}:{int(stat.st_mtime)}"


class PipelineRun:
    """Plans and runs one batch of a pipeline."""

    def __init__(self, pipeline: Pipeline, nordpipe: list[str] | None = None):
        self.pipeline = pipeline
        self.root = pipeline.root
        self.nordpipe = nordpipe or [os.path.join(os.path.dirname(sys.executable), "nordpipe")]

    # state ---------------------------------------------------------------------------------
    def _state_path(self, name: str) -> str:
        return os.path.join(self.root, "state", name)

    def _read_json(self, path: str, default: Any) -> Any:
        if os.path.exists(path):
            with open(path) as handle:
                return json.load(handle)
        return default

    def _write_json(self, path: str, data: Any) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)

    def batches(self) -> list[str]:
        folder = os.path.join(self.root, "batches")
        return sorted(d for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(folder) else []

    def open_batch(self) -> tuple[str, dict[str, list[str]]] | None:
        """The unfinished batch, or a new one with the raw files not ingested yet; None if nothing is new."""
        for batch in self.batches():
            record = self._read_json(os.path.join(self.root, "batches", batch, "batch.json"), {})
            if not record.get("done"):
                return batch, record["files"]
        ingested = self._read_json(self._state_path("ingested.json"), {})
        new_files: dict[str, list[str]] = {}
        for dataset in self.pipeline.datasets:
            seen = ingested.get(dataset.name, {})
            fresh = [f for f in _expand_raw(dataset.raw) if seen.get(os.path.abspath(f)) != _signature(f)]
            if fresh:
                new_files[dataset.name] = fresh
        if not new_files:
            return None
        batch = f"{len(self.batches()) + 1:04d}"
        self._write_json(os.path.join(self.root, "batches", batch, "batch.json"), {"files": new_files, "done": False,
                                                                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return batch, new_files

    def open_batch_preview(self) -> tuple[str, dict[str, list[str]]] | None:
        """Like ``open_batch`` but writes nothing (for --dry-run)."""
        for batch in self.batches():
            record = self._read_json(os.path.join(self.root, "batches", batch, "batch.json"), {})
            if not record.get("done"):
                return batch, record["files"]
        ingested = self._read_json(self._state_path("ingested.json"), {})
        new_files = {}
        for dataset in self.pipeline.datasets:
            seen = ingested.get(dataset.name, {})
            raw = _expand_raw(dataset.raw) or dataset.raw  # sample data may not exist yet
            fresh = [f for f in raw if not os.path.exists(f) or seen.get(os.path.abspath(f)) != _signature(f)]
            if fresh:
                new_files[dataset.name] = fresh
        return (f"{len(self.batches()) + 1:04d}", new_files) if new_files else None

    def plan(self, batch: str, files: dict[str, list[str]], write_lists: bool = True) -> list[Step]:
        """The batch's steps. Ingest gets its raw files on the command line, or, when there are
        more than ``MAX_INLINE_FILES`` (a folder of loose text files can hold many thousands,
        beyond the kernel's limit on argument length), in a list file under the batch folder
        (written unless ``write_lists`` is false, as for ``--dry-run``)."""
        base = os.path.join(self.root, "batches", batch)
        steps: list[Step] = []
        ingest_root = os.path.join(base, "ingest")
        for dataset in self.pipeline.datasets:
            if dataset.name not in files:
                continue
            raw = files[dataset.name]
            if len(raw) > MAX_INLINE_FILES:
                list_file = os.path.join(base, "inputs", f"{dataset.name}.txt")
                if write_lists:
                    os.makedirs(os.path.dirname(list_file), exist_ok=True)
                    with open(list_file + ".tmp", "w", encoding="utf-8") as handle:
                        handle.write("".join(f"{path}\n" for path in raw))
                    os.replace(list_file + ".tmp", list_file)
                raw = ["--files-from", list_file]
            argv = ["ingest", *raw, "--dataset", dataset.name, "--output", ingest_root]
            if dataset.config:
                argv += ["--config", dataset.config]
            argv += params_to_flags(dataset.params)
            steps.append(Step("ingest", argv, os.path.join(ingest_root, dataset.name), dataset.resources))
        previous = ingest_root
        for index, stage in enumerate(self.pipeline.stages, start=1):
            output = os.path.join(base, f"{index:02d}-{stage.name}")
            argv = [*stage.command, previous, output, *params_to_flags(stage.params)]
            steps.append(Step(stage.name, argv, output, stage.resources))
            previous = output
        return steps

    @staticmethod
    def _resource_flags(resources: dict[str, Any]) -> list[str]:
        flags = []
        if resources.get("tasks"):
            flags += ["--tasks", str(resources["tasks"])]
        workers = resources.get("workers") or resources.get("cpus")
        if workers:
            flags += ["--workers", str(workers)]
        return flags

    def select(self, steps: list[Step], start: str | None, until: str | None) -> list[Step]:
        names = self.pipeline.stage_names()
        for value, flag in ((start, "--from"), (until, "--until")):
            if value is not None and value not in names:
                raise PipelineConfigError(f"{flag} {value!r}: not a stage of {self.pipeline.path}; stages: {', '.join(names)}")
        first = names.index(start) if start else 0
        last = names.index(until) if until else len(names) - 1
        chosen = set(names[first : last + 1])
        return [s for s in steps if s.stage in chosen]

    # running -------------------------------------------------------------------------------
    def run_local(self, steps: list[Step], log: Callable[[str], None]) -> None:
        for step in steps:
            if step.done():
                log(f"skip\t{step.stage}\t{step.output}\talready done")
                continue
            argv = [*self.nordpipe, *step.argv, *self._resource_flags(step.resources)]
            logfile = os.path.join(self.root, "logs", f"{os.path.basename(os.path.dirname(step.output))}-{os.path.basename(step.output)}.log")
            os.makedirs(os.path.dirname(logfile), exist_ok=True)
            started = time.time()
            with open(logfile, "ab") as handle:
                handle.write(f"$ {shlex.join(argv)}\n".encode())
                handle.flush()
                result = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                tail = open(logfile, encoding="utf-8", errors="replace").read()[-3000:]
                raise RunError(f"stage {step.stage} failed (exit {result.returncode}); log {logfile}:\n{tail}")
            open(os.path.join(step.output, STATE_DIR, "pipeline-done"), "w").close()
            log(f"done\t{step.stage}\t{step.output}\t{time.time() - started:.1f}s")

    def run_slurm(self, steps: list[Step], log: Callable[[str], None], wait: bool = True) -> list[str]:
        """Submit one job per step, each depending (afterok) on the one before."""
        slurm = self.pipeline.slurm
        env = slurm.get("env_command") or default_env_command()
        previous: str | None = None
        jobs = []
        for step in steps:
            if step.done():
                log(f"skip\t{step.stage}\t{step.output}\talready done")
                continue
            argv = [*self.nordpipe, *step.argv, *self._resource_flags(step.resources)]
            done_marker = os.path.join(step.output, STATE_DIR, "pipeline-done")
            script = f"{env}\nset -e\n{shlex.join(argv)}\nmkdir -p {shlex.quote(os.path.dirname(done_marker))}\ntouch {shlex.quote(done_marker)}\n"
            logdir = os.path.abspath(os.path.join(self.root, "logs"))
            os.makedirs(logdir, exist_ok=True)
            cpus = step.resources.get("cpus") or step.resources.get("workers") or 1
            sbatch = [
                "sbatch", "--parsable", f"--job-name=nordpipe-{step.stage}",
                f"--output={logdir}/{os.path.basename(os.path.dirname(step.output))}-{os.path.basename(step.output)}-%j.log",
                f"--cpus-per-task={cpus}",
                f"--mem-per-cpu={step.resources.get('mem_per_cpu', slurm.get('mem_per_cpu', 2))}G",
                f"--time={step.resources.get('time', slurm.get('time', '24:00:00'))}",
            ]
            partition = step.resources.get("partition") or slurm.get("partition")
            if partition:
                sbatch.append(f"--partition={partition}")
            if previous:
                sbatch.append(f"--dependency=afterok:{previous}")
            result = subprocess.run(sbatch, input=f"#!/bin/bash\n{script}", capture_output=True, text=True)
            if result.returncode != 0:
                raise RunError(f"sbatch failed for stage {step.stage}: {result.stderr.strip()}")
            previous = result.stdout.strip().split(";")[0]
            jobs.append(previous)
            log(f"submitted\t{step.stage}\tjob {previous}")
        if wait:
            for job, step in zip(jobs, [s for s in steps if not s.done()], strict=False):
                wait_for_slurm_job(job)
                if not os.path.exists(os.path.join(step.output, STATE_DIR, "pipeline-done")):
                    raise RunError(f"Slurm job {job} (stage {step.stage}) did not finish; logs in {self.root}/logs")
                log(f"done\t{step.stage}\t{step.output}\tjob {job}")
        return jobs

    def finish_batch(self, batch: str, files: dict[str, list[str]]) -> None:
        ingested = self._read_json(self._state_path("ingested.json"), {})
        for dataset, names in files.items():
            seen = ingested.setdefault(dataset, {})
            for name in names:
                seen[os.path.abspath(name)] = _signature(name)
        self._write_json(self._state_path("ingested.json"), ingested)
        path = os.path.join(self.root, "batches", batch, "batch.json")
        record = self._read_json(path, {})
        record.update(done=True, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self._write_json(path, record)
        self.update_datasheets()

    def update_datasheets(self) -> None:
        """``ROOT/datasets/NAME/README.md``: one datasheet per dataset over all batches."""
        from nordpipe.datasheet import write_datasheet
        from nordpipe.ingest import IngestConfig
        from nordpipe.runner import merge_task_stats

        for dataset in self.pipeline.datasets:
            stats = []
            for batch in self.batches():
                path = os.path.join(self.root, "batches", batch, "ingest", dataset.name, STATE_DIR, "stats.json")
                if os.path.exists(path):
                    stats.append(self._read_json(path, {}))
            if not stats:
                continue
            merged = merge_task_stats([{k: v for k, v in s.items() if k not in ("stage", "output", "tasks", "steps", "seconds")} for s in stats])
            overrides = {k: v for k, v in dataset.params.items() if k in IngestConfig.__dataclass_fields__}
            config = IngestConfig.from_yaml(dataset.config, dataset=dataset.name, **overrides) if dataset.config else IngestConfig(dataset=dataset.name, **overrides)
            folder = os.path.join(self.root, "datasets", dataset.name)
            os.makedirs(folder, exist_ok=True)
            write_datasheet(folder, config, merged)


class PipelineLock(ExclusiveLock):
    """``ROOT/state/run.lock``: a second ``nordpipe run`` on the same root exits at once (cron)."""

    def __init__(self, root: str):
        super().__init__(
            os.path.join(root, "state", "run.lock"),
            lambda holder: f"another nordpipe run is working on {root} ({holder}); not starting a second one",
        )


def run_pipeline(pipeline: Pipeline, start: str | None = None, until: str | None = None, dry_run: bool = False,
                 wait: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or with ``dry_run``, print) the pending batch of a pipeline. Returns a summary."""
    runner = PipelineRun(pipeline)
    if pipeline.sample and not dry_run:
        from nordpipe.sample import generate_sample

        target = os.path.join(pipeline.root, "sample")
        if not os.path.exists(os.path.join(target, "manifest.json")):
            generate_sample(target, seed=int(pipeline.sample.get("seed", 42)), scale=float(pipeline.sample.get("scale", 1.0)),
                            files=int(pipeline.sample.get("files", 1)))
            log(f"sample\t{target}")
    if dry_run:
        pending = runner.open_batch_preview()
        if pending is None:
            log("nothing to do: no new raw files and no unfinished batch")
            return {"batch": None, "steps": []}
        batch, files = pending
        steps = runner.select(runner.plan(batch, files, write_lists=False), start, until)
        for i, step in enumerate(steps, start=1):
            after = f" (after step {i - 1})" if i > 1 and pipeline.executor == "slurm" else ""
            log(f"{i}\t{step.stage}\t{'done' if step.done() else 'todo'}\tnordpipe {shlex.join(step.argv + runner._resource_flags(step.resources))}{after}")
        return {"batch": batch, "steps": [s.argv for s in steps]}
    with PipelineLock(pipeline.root):
        pending = runner.open_batch()
        if pending is None:
            log("nothing to do: no new raw files and no unfinished batch")
            return {"batch": None}
        batch, files = pending
        log(f"batch\t{batch}\t{sum(len(v) for v in files.values())} new raw files")
        steps = runner.select(runner.plan(batch, files), start, until)
        if pipeline.executor == "slurm":
            runner.run_slurm(steps, log, wait=wait)
            if not wait:
                return {"batch": batch, "submitted": True}
        else:
            runner.run_local(steps, log)
        all_steps = runner.plan(batch, files, write_lists=False)  # the lists were written above
        if all(s.done() for s in all_steps):
            runner.finish_batch(batch, files)
            log(f"finished\tbatch {batch}")
        return {"batch": batch, "outputs": [s.output for s in steps]}




def final_outputs(root: str) -> list[str]:
    """The last stage's output folder of every finished batch, in batch order."""
    outputs = []
    batches_dir = os.path.join(root, "batches")
    for batch in sorted(os.listdir(batches_dir)) if os.path.isdir(batches_dir) else []:
        stages = sorted(d for d in os.listdir(os.path.join(batches_dir, batch)) if d[:2].isdigit() and "-" in d)
        if stages:
            outputs.append(os.path.join(batches_dir, batch, stages[-1]))
    return outputs
