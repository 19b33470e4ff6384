"""Whole pipelines: ``nordpipe run PIPELINE.yaml``.

A pipeline file names the datasets to ingest and the stages to run, in order::

    name: demo
    root: demo-output                 # everything goes below here (--root overrides)
    executor: local                   # or slurm: each stage's phases as job arrays, stages chained afterok
    slurm: {partition: null, time: "02:00:00", mem_per_cpu: 2}
    sample: {seed: 42, scale: 1.0, files: 1}    # optional: generate sample raw data into ROOT/sample first
    max_removed_share: 0.95           # optional: each stage, and the whole chain, may remove at most this share
    datasets:
      - name: nyheder
        raw: ["{root}/sample/raw/nyheder"]      # files, folders or globs; {root} is expanded
        config: "{root}/sample/datasets/nyheder.yaml"
    stages:
      - type: quality                   # urls, quality, lines, minhash, pii, tokenize
        params: {languages: "da,nb,sv"} # the stage command's flags, without the dashes
        resources: {tasks: 2, workers: 2, cpus: 2}

Everything a stage would refuse hours later is refused when the file is loaded (``--dry-run``
included), naming ``FILE:LINE`` and what is allowed: every ``params`` value is converted and
type-checked with the stage command's own option definitions (so ``bos: false`` becomes
``--no-bos``, a missing required option such as line dedup's ``state`` is an error, and a
``false`` that the command could not express is an error rather than silently dropped); each
stage's own parameter rules run too (``PARAM_CHECKS``: a PII ``mode``, quality ``languages``,
ingest's ``license: other`` without ``license_name``); and a ``raw`` path or glob that matches
nothing is an error (paths below ``{root}/sample/`` of a pipeline with ``sample:`` are checked
once the sample has been generated, at the start of the run).

Runs are incremental, in batches: a run ingests only raw files, and parts of raw files, it has
not ingested before (``ROOT/state/ingested.json``, below), runs the stages on that batch (``ROOT/batches/NNNN/``), and
stages with persistent state (line dedup ``--state``, MinHash ``--index``) dedup the batch against
everything before it. A batch interrupted by a crash is finished by the next run before new
files are taken. A batch whose documents are all quarantined at ingest is a valid, finished
batch (every stage writes a valid empty output); the next run takes new raw files as usual. A
stage that removes more than ``max_removed_share`` (default 0.95) of its input, or a chain whose
stages together remove more than that share of the ingested documents, fails and leaves the
batch unfinished until a run with a higher limit accepts it (``runner.removal_guard``).
Batches give the same documents as one run over all the data, with one
exception inherent to near-duplicate clustering: when a later document is near two earlier
documents that were not near each other, one run puts all three in one cluster and keeps only
the first, while the earlier batch has already released both (released documents are not
withdrawn; the later document is removed either way). A lock file stops overlapping runs (cron). Every stage is the same command a
user would type (``nordpipe filter quality IN OUT ...``), so a pipeline run is exactly a chain
of stage runs, each resumable on its own.

Raw-file bookkeeping is by content, not time. ``ROOT/state/ingested.json`` holds, per dataset and
absolute raw path, what ingest *read* of the file (``ingest.RawFileRead``: ``format``,
``append_only``, ``offset`` = bytes consumed, ``lines`` = complete lines consumed, ``xxh3`` =
xxh3_128 of the first ``offset`` bytes, ``size`` = bytes seen including a held-back incomplete
last line and its ``tail_xxh3``, ``open_line``, ``mtime_ns``) and the ``batch`` that read it.
Ingest measures it while it reads and leaves it in its output's ``.nordpipe/raw-files.json``;
``finish_batch`` copies it from there and never looks at the files again, so records appended
while a batch runs are read by the next one. ``open_batch`` compares each raw file with its
record (``classify_raw_file``):

- no record: *new*, read in full;
- size and modification time equal to the record's (taken before the read, and only for a file
  quiet for ``ingest.SETTLED_NS``): *unchanged*, without reading it (the fast path; a rewrite that
  keeps both size and time is not seen, as with make or rsync);
- otherwise the first ``offset`` bytes are hashed: equal and no longer, *unchanged* (the record's
  time is refreshed so the fast path applies again); equal, with the held-back incomplete line
  still as it was, *pending* (logged ``pending``, not read); equal and grown, for an append-only
  file (uncompressed jsonl/ndjson), *append*: ingest reads from ``offset``, numbering lines from
  ``lines + 1`` (``ingest --files-from`` lines ``PATH<TAB>OFFSET<TAB>LINE<TAB>XXH3``), so ids
  and line numbers equal those of one read of the whole file;
- anything else (shrunk, the first bytes differ, a file read whole has grown, a last line read
  without its newline was continued): *changed in the middle*, logged
  ``changed<TAB>DATASET<TAB>PATH<TAB>why: ingested again in full; its earlier records stay in
  batch NNNN`` and read in full in the new batch; the dedup stages remove the repeats. Ingest
  checks the hash of the first ``offset`` bytes again when it reads and reads in full when they
  changed in between (logged at the end of the batch, ``(found by ingest)``).

A record from before this bookkeeping (a ``"size:mtime"`` string, taken when its batch ended)
cannot tell what was read, so such a file is *changed*: read again in full once. That is the rule
that loses nothing (records appended during that old batch are read), at the cost of one full
read of those files. Nothing is ever skipped silently: every raw file is read, logged as pending
(an incomplete line) or unchanged by size and time or by hash.

On disk, per batch: ``ROOT/batches/NNNN/batch.json`` (``files``: the raw files by dataset;
``reads``: how each is read, ``why`` = new/append/changed with ``start``, ``line``, ``xxh3`` or
``reason``; ``done``), ``inputs/DATASET.txt`` (the ``--files-from`` list, when a file is read from
an offset or the files are many), ``ingest/DATASET/`` (with ``.nordpipe/raw-files.json``) and
one folder per stage. Multi-step updates are ordered so that a kill at any point reruns to the
uninterrupted result: ``open_batch`` writes refreshed records to ``ingested.json`` (kill point
``pipeline.open-batch.after-refresh``), then the new ``batch.json``; ``finish_batch`` writes
``ingested.json``, the datasheets, then ``done`` into ``batch.json`` (kill points
``pipeline.finish-batch.after-ingested``, ``after-datasheets``, ``after-done``), and each step
only repeats on a rerun.

With ``executor: slurm`` a run queues the batch's whole chain at once (``PipelineRun.run_slurm``,
``runner.slurm``): every stage's phases as job arrays and its finish job, each stage after the
job that writes the previous stage's done marker, and records the job ids in ``batch.json``
(``slurm.jobs``). A later run that finds any of them pending or running logs ``in flight`` and
exits 0 (cron neither submits twice nor blocks); once they all ended it finishes the batch if
every step is done, else resubmits the steps that are not (completed ranks do not run again).

A step is done when its output holds the stage's completion record and the pipeline's done
marker (``layout.pipeline_done``) records the identity of the very input the step consumed
(``layout.input_identity``); when the input has changed since (an upstream step ran again), the
step runs again. ``--from``/``--until`` refuse a selection whose first stage's input was never
completed. SIGTERM/SIGINT stop the running stage and its workers, release the root's lock and
exit ``128 + signal``; rerunning resumes.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash
import yaml

from nordpipe.documents import READ_CHUNK
from nordpipe.ingest import RAW_READS_FILE, RawStart, settled_mtime
from nordpipe.layout import OutputLayout, UsageError, atomic_write_json, atomic_write_text, input_identity
from nordpipe.runner import (
    MAX_DEFAULT_TASKS,
    ExclusiveLock,
    Interrupted,
    InterruptOnSignals,
    RunError,
    RunOptions,
    SlurmOptions,
    default_env_command,
    die_with_parent,
    kill_point,
)
from nordpipe.stages import PIPELINE_STAGES, STAGES

STAGE_COMMANDS: dict[str, list[str]] = {name: list(stage.command) for name, stage in PIPELINE_STAGES.items()}
"""Stage types (the stage registry's names) and the nordpipe command each runs."""
INGEST_COMMAND = list(STAGES["ingest"].command)

TOP_LEVEL_KEYS = ("name", "root", "executor", "slurm", "sample", "datasets", "stages", "description", "max_removed_share")
DATASET_KEYS = ("name", "raw", "config", "params", "resources")
STAGE_KEYS = ("type", "name", "params", "resources")
MAX_INLINE_FILES = 200
"""More raw files than this go to ``nordpipe ingest`` in a ``--files-from`` list."""
RESOURCE_KEYS = ("tasks", "workers", "cpus", "mem_per_cpu", "time", "partition")
SLURM_KEYS = ("partition", "time", "mem_per_cpu", "env_command", "cpus")
STOP_TIMEOUT = 30.0
"""Seconds a stage gets to stop after SIGTERM (its workers, its lock) before it is killed."""


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


# --------------------------------------------------------------------------------------------
# The stage commands' parameters


@dataclass(frozen=True)
class ParamSpec:
    """One option of a stage command, taken from the command's own definition (the CLI builds
    these from its click parameters: ``nordpipe.cli.pipeline.param_specs``)."""

    name: str
    """The long flag without dashes, underscored (``--mem-per-cpu`` -> ``mem_per_cpu``)."""
    flag: str
    """The long flag (``--bos``)."""
    off_flag: str | None = None
    """A boolean option's off-switch (``--no-bos``), if it has one."""
    is_flag: bool = False
    """A boolean option that takes no value."""
    multiple: bool = False
    """Repeatable: a YAML list becomes the flag repeated."""
    required: bool = False
    default: Any = None
    convert: Callable[[Any], Any] = lambda value: value
    """Convert and type-check a command-line value (a string, or a list of strings for a
    repeatable option) as the command would; raises ``ValueError`` naming what is allowed."""


Schema = Callable[[list[str]], Mapping[str, ParamSpec]]
"""A stage command (``["filter", "quality"]``) -> its options by name."""

# set by the pipeline itself (resources, executor, the raw files), not by a stage's params
RUNNER_FLAGS = {"tasks", "workers", "executor", "partition", "time", "cpus", "mem_per_cpu", "env_command", "no_wait", "after", "force", "json",
                "verbose", "files_from"}
PIPELINE_SET: dict[str, set[str]] = {"ingest": {"dataset", "output", "config"}}
"""Options a stage's ``params`` may not set because the pipeline sets them (ingest's dataset
name, output root and config come from the dataset entry)."""


def _default_schema(command: list[str]) -> Mapping[str, ParamSpec]:
    from nordpipe.cli.pipeline import param_specs

    return param_specs(command)


def params_to_flags(params: Mapping[str, Any], specs: Mapping[str, ParamSpec]) -> list[str]:
    """A stage's ``params`` (already checked by ``check_params``) -> its command-line flags.

    ``True`` -> the flag; ``False`` -> its off-switch (``--no-bos``); a value equal to the default
    of a flag without off-switch -> nothing; a list -> the flag repeated; ``None`` -> nothing.
    """
    flags: list[str] = []
    for key, value in params.items():
        spec = specs[key.replace("-", "_")]
        if value is None:
            continue
        if spec.is_flag:
            if not spec.off_flag and bool(value) == bool(spec.default):
                continue  # the default, and no off-switch to spell it with
            flags.append(spec.flag if value else str(spec.off_flag))
        elif isinstance(value, list | tuple):
            for item in value:
                flags += [spec.flag, _cli_string(item)]
        else:
            flags += [spec.flag, _cli_string(value)]
    return flags


def _cli_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _ParamProblem(ValueError):
    """A parameter check failed on one key (``key``: the line to name)."""

    def __init__(self, key: str | None, message: str):
        super().__init__(message)
        self.key = key


def check_params(params: Mapping[str, Any], command: list[str], schema: Schema,
                 stage: str) -> tuple[dict[str, Any], dict[str, ParamSpec]]:
    """Convert and type-check ``params`` against the command's options.

    Returns the converted values by option name, and the options (for ``params_to_flags``).
    Raises ``_ParamProblem`` naming the key and what is allowed.
    """
    specs = dict(schema(command))
    allowed = {k: v for k, v in specs.items() if k not in RUNNER_FLAGS and k not in PIPELINE_SET.get(stage, set())}
    cli = f"nordpipe {' '.join(command)}"
    converted: dict[str, Any] = {}
    for key, value in params.items():
        name = str(key).replace("-", "_")
        spec = allowed.get(name)
        if spec is None:
            why = (" (set tasks, workers and cpus under resources:)" if name in RUNNER_FLAGS else
                   " (the pipeline sets it from the dataset entry)") if name in specs else ""
            raise _ParamProblem(key, f"unknown parameter {key!r} for '{cli}'{why}; allowed: {', '.join(sorted(allowed))}")
        if name in converted:
            raise _ParamProblem(key, f"{key}: {spec.flag} is given twice")
        if value is None:
            if spec.required:
                raise _ParamProblem(key, f"{key} ({spec.flag}) is required by '{cli}'; give it a value")
            converted[name] = None
            continue
        if spec.is_flag:
            if not isinstance(value, bool):
                raise _ParamProblem(key, f"{key}: {value!r} is not a boolean; allowed: true, false ({spec.flag}"
                                         f"{', ' + spec.off_flag if spec.off_flag else ''})")
            if not value and not spec.off_flag and spec.default:
                raise _ParamProblem(key, f"{key}: false cannot be passed to '{cli}': {spec.flag} is on by default "
                                         "and has no off-switch; remove the key")
            converted[name] = value
            continue
        if isinstance(value, dict):
            raise _ParamProblem(key, f"{key}: a mapping is not a value of {spec.flag}; give a string, number or list")
        if isinstance(value, list | tuple):
            if not spec.multiple:
                raise _ParamProblem(key, f"{key}: {spec.flag} takes one value, not a list (for several values "
                                         "write them comma-separated, if the option allows that)")
            if any(isinstance(item, dict | list | tuple) for item in value):
                raise _ParamProblem(key, f"{key}: list items must be strings or numbers")
            raw: Any = [_cli_string(item) for item in value]
        else:
            raw = [_cli_string(value)] if spec.multiple else _cli_string(value)
        try:
            converted[name] = spec.convert(raw)
        except ValueError as err:
            raise _ParamProblem(key, f"{key}: {err}") from None
    for name, spec in allowed.items():
        if spec.required and converted.get(name) is None:
            raise _ParamProblem(None, f"'{cli}' requires {name} ({spec.flag}); add it under params")
    return converted, specs


# --------------------------------------------------------------------------------------------
# Per-stage parameter rules: what each stage checks on its parameters before it starts


@dataclass
class CheckContext:
    """What a stage's parameter check may need besides the parameters."""

    root: str
    sample: bool
    """The pipeline generates sample data into ``ROOT/sample`` at the start of a run."""
    dataset: str | None = None
    config: str | None = None

    def pending(self, path: str) -> bool:
        """``path`` is sample data that the run generates before any stage starts."""
        if not self.sample:
            return False
        sample = os.path.abspath(os.path.join(self.root, "sample"))
        target = os.path.abspath(path)
        inside = target == sample or target.startswith(sample + os.sep)
        return inside and not os.path.exists(os.path.join(sample, "manifest.json"))

    def require_file(self, key: str, path: str) -> None:
        if "://" in path or self.pending(path) or os.path.exists(path):
            return
        raise _ParamProblem(key, f"{key}: {path} does not exist")


def _bad(key: str) -> Callable[[Exception], _ParamProblem]:
    return lambda err: _ParamProblem(key, f"{key}: {err}")


def _check_ingest(params: dict[str, Any], ctx: CheckContext) -> None:
    from dataclasses import fields

    from nordpipe.ingest import IngestConfig

    names = {f.name for f in fields(IngestConfig)}
    overrides = {k: v for k, v in params.items() if k in names and v is not None}
    if isinstance(overrides.get("text_field"), str) and "," in overrides["text_field"]:
        overrides["text_field"] = overrides["text_field"].split(",")
    config = ctx.config
    if config is None and os.path.exists(os.path.join("pipelines", "datasets", f"{ctx.dataset}.yaml")):
        config = os.path.join("pipelines", "datasets", f"{ctx.dataset}.yaml")  # as `nordpipe ingest` looks it up
    try:
        if config is not None:
            if ctx.pending(config):
                return  # the sample's config is written at the start of the run
            if "://" not in config and not os.path.exists(config):
                raise _ParamProblem("config", f"config {config}: no such file")
            IngestConfig.from_yaml(config, dataset=ctx.dataset, **overrides)
        else:
            IngestConfig(dataset=str(ctx.dataset), **overrides)
    except _ParamProblem:
        raise
    except (ValueError, TypeError, OSError, yaml.YAMLError) as err:
        # name the parameter the message is about, else the config file
        mentioned = [k for k in params if re.search(rf"\b{re.escape(k)}\b", str(err))]
        key = mentioned[0] if mentioned else "config" if config is not None else next(iter(params), None)
        raise _ParamProblem(key, str(err)) from None


def _check_urls(params: dict[str, Any], ctx: CheckContext) -> None:
    if params.get("consent_scope") not in (None, "domain", "path"):
        raise _ParamProblem("consent_scope", f"consent_scope {params['consent_scope']!r}; allowed: domain, path")
    if params.get("missing_consent") not in (None, "keep", "remove"):
        raise _ParamProblem("missing_consent", f"missing_consent {params['missing_consent']!r}; allowed: keep, remove")
    if params.get("consent_unknown") not in (None, "keep", "remove"):
        raise _ParamProblem("consent_unknown", f"consent_unknown {params['consent_unknown']!r}; allowed: keep, remove")
    for key in ("blocklist", "allowlist"):
        for path in params.get(key) or []:
            ctx.require_file(key, path)
    if params.get("consent_cache"):
        ctx.require_file("consent_cache", params["consent_cache"])


def _check_quality(params: dict[str, Any], ctx: CheckContext) -> None:
    from nordpipe.langid import parse_languages, parse_min_scores
    from nordpipe.languages import normalize_language, valid_codes_text
    from nordpipe.settings import load_settings

    try:
        wanted = parse_languages(params.get("languages"))
    except ValueError as err:
        raise _bad("languages")(err) from None
    try:
        parse_min_scores(params.get("min_language_score"))
    except ValueError as err:
        raise _bad("min_language_score")(err) from None
    default = params.get("default_language")
    if default is not None and normalize_language(default) is None:
        raise _ParamProblem("default_language", f"default_language: unknown language {default!r} (valid: {valid_codes_text()})")
    if wanted and params.get("no_language_id"):
        raise _ParamProblem("languages", "languages needs language identification (drop no_language_id)")
    settings = params.get("settings")
    if settings:
        ctx.require_file("settings", settings)
        if not ctx.pending(settings):
            try:
                load_settings(settings)
            except (ValueError, OSError, yaml.YAMLError) as err:
                raise _bad("settings")(err) from None


def _check_lines(params: dict[str, Any], ctx: CheckContext) -> None:
    fpr = params.get("fpr")
    if fpr is not None and not 0 < fpr < 1:
        raise _ParamProblem("fpr", f"fpr {fpr}: must be between 0 and 1 (exclusive)")


def _check_minhash(params: dict[str, Any], ctx: CheckContext) -> None:
    from nordpipe.minhash import SURVIVOR_POLICIES

    survivor = params.get("survivor")
    if survivor is not None and str(survivor).lower() not in SURVIVOR_POLICIES:
        raise _ParamProblem("survivor", f"survivor {survivor!r}; allowed: {', '.join(SURVIVOR_POLICIES)}")


def _check_pii(params: dict[str, Any], ctx: CheckContext) -> None:
    from nordpipe.pii import ENGINES
    from nordpipe.pii.recognizers import ALL_ENTITIES
    from nordpipe.pii.replace import MODES

    mode = params.get("mode")
    if mode is not None and str(mode).lower() not in MODES:
        raise _ParamProblem("mode", f"mode {mode!r}; allowed: {', '.join(MODES)} (see `nordpipe pii --help`)")
    for value in params.get("mode_for") or []:
        for item in str(value).split(","):
            entity, sep, each = item.partition("=")
            if not sep or entity.strip().upper() not in ALL_ENTITIES or each.strip().lower() not in MODES:
                raise _ParamProblem("mode_for", f"mode_for {item!r}: expected ENTITY=MODE with ENTITY one of "
                                                f"{', '.join(ALL_ENTITIES)} and MODE one of {', '.join(MODES)}")
    names = [v.strip().upper() for value in params.get("entities") or [] for v in str(value).split(",") if v.strip()]
    unknown = sorted(set(names) - set(ALL_ENTITIES))
    if unknown:
        raise _ParamProblem("entities", f"entities: unknown entity types {', '.join(unknown)}; allowed: {', '.join(ALL_ENTITIES)}")
    engine = str(params.get("engine") or "fast").lower()
    if engine not in ENGINES:
        raise _ParamProblem("engine", f"engine {params['engine']!r}; allowed: {', '.join(ENGINES)}")
    if params.get("salt") is not None:
        raise _ParamProblem("salt", "salt was removed (a secret in a file that is passed around, and on the command "
                                    "line, is no secret): use key_file (a file only you can read) or key_env (the "
                                    "name of an environment variable holding the key)")
    if params.get("key_file") and params.get("key_env"):
        raise _ParamProblem("key_file", "key_file and key_env: give one of them")
    if params.get("key_file"):
        from nordpipe.pii.keys import KeyProblem, check_key_file

        ctx.require_file("key_file", params["key_file"])
        if os.path.exists(params["key_file"]):
            try:
                check_key_file(params["key_file"])
            except KeyProblem as err:
                raise _ParamProblem("key_file", f"key_file: {err}") from None
    recognizers = params.get("recognizers")
    if recognizers:
        if engine != "presidio":
            raise _ParamProblem("recognizers", "recognizers: needs engine: presidio")
        ctx.require_file("recognizers", recognizers)
        from nordpipe.pii.presidio import RecognizerFileError, load_user_recognizers

        try:
            load_user_recognizers(recognizers)
        except RecognizerFileError as err:
            raise _ParamProblem("recognizers", f"recognizers: {err}") from None


def _check_tokenize(params: dict[str, Any], ctx: CheckContext) -> None:
    from nordpipe.tokenize import FORMATS, parse_size

    fmt = params.get("format")
    if fmt is not None and str(fmt).lower() not in FORMATS:
        raise _ParamProblem("format", f"format {fmt!r}; allowed: {', '.join(FORMATS)}")
    try:
        parse_size(params.get("shard_size"))
    except ValueError as err:
        raise _bad("shard_size")(err) from None
    compression = params.get("mds_compression")
    if compression is not None:
        text = str(compression).lower()
        if text not in ("none", "") and text.split(":", 1)[0] != "zstd":
            raise _ParamProblem("mds_compression", f"mds_compression {compression!r}; allowed: zstd, zstd:<level>, none")


PARAM_CHECKS: dict[str, Callable[[dict[str, Any], CheckContext], None]] = {
    "ingest": _check_ingest,
    "urls": _check_urls,
    "quality": _check_quality,
    "lines": _check_lines,
    "minhash": _check_minhash,
    "pii": _check_pii,
    "tokenize": _check_tokenize,
}
"""Stage type -> the check of its (converted) parameters, run at load: the rules each stage
enforces on its parameters when it starts, so that ``--dry-run`` catches them. A check raises
``ValueError``."""


# --------------------------------------------------------------------------------------------
# The pipeline file


@dataclass
class DatasetSpec:
    name: str
    raw: list[str]
    config: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    """``params`` as ``nordpipe ingest`` flags."""
    where: str = ""
    """``FILE:LINE`` of the dataset's ``raw`` key, for errors found when the run starts."""


@dataclass
class StageSpec:
    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    """``params`` as the stage command's flags."""

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
    schema: Schema | None = None
    max_removed_share: float | None = None
    """The file's (or ``nordpipe run --max-removed-share``'s) limit for every stage that removes
    documents and for the whole chain (``runner.removal_guard``); None: the default."""

    def stage_names(self) -> list[str]:
        return ["ingest", *[s.name for s in self.stages]]


def _where(path: str, mapping: Any, key: Any = None) -> str:
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


def _raw_matches(pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return bool(glob.glob(pattern))
    return os.path.exists(pattern)


def check_raw_paths(pipeline: Pipeline) -> None:
    """Every local raw path or glob must match something (``PipelineConfigError`` naming it):
    a misspelled path would otherwise be skipped silently, run after run. Sample data that the
    run has not generated yet is checked once it has."""
    ctx = CheckContext(pipeline.root, bool(pipeline.sample))
    for dataset in pipeline.datasets:
        for pattern in dataset.raw:
            if "://" in pattern or ctx.pending(pattern) or _raw_matches(pattern):
                continue
            raise PipelineConfigError(f"{dataset.where}: raw path {pattern!r} of dataset {dataset.name} matches no file or "
                                      "folder (misspelled?)")


def load_pipeline(path: str, root: str | None = None, executor: str | None = None,
                  schema: Schema | None = None, max_removed_share: float | None = None) -> Pipeline:
    """Parse and check a pipeline file; ``PipelineConfigError`` names the line and allowed values.

    ``schema`` maps a stage command to its options (``ParamSpec``); by default the CLI's own
    definitions (``nordpipe.cli.pipeline.param_specs``), so that every parameter is converted
    and checked as the command would, before anything runs. Each stage's ``PARAM_CHECKS`` rule
    runs on the converted values, and every raw path must match something (``check_raw_paths``).
    """
    schema = schema or _default_schema
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
    if max_removed_share is None and data.get("max_removed_share") is not None:
        value = data["max_removed_share"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise PipelineConfigError(f"{_where(path, data, 'max_removed_share')}: max_removed_share {value!r}; allowed: "
                                      "a number from 0 to 1 (1 accepts any removal)")
        max_removed_share = float(value)
    sample = data.get("sample")
    if sample is not None and not isinstance(sample, dict):
        raise PipelineConfigError(f"{_where(path, data, 'sample')}: sample must be a mapping (seed, scale, files)")

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{root}", root)
        if isinstance(value, list):
            return [expand(v) for v in value]
        if isinstance(value, dict):
            return {k: expand(v) for k, v in value.items()}
        return value

    def checked(params: Any, owner: Any, stage: str, ctx: CheckContext) -> tuple[dict[str, Any], list[str]]:
        """Expand, convert and check one entry's ``params``; return them and their flags."""
        if params is None:
            params = _LineDict()
            params.lines, params.line = {}, getattr(owner, "line", 0)
        if not isinstance(params, dict):
            raise PipelineConfigError(f"{_where(path, owner, 'params')}: params must be a mapping")
        command = INGEST_COMMAND if stage == "ingest" else STAGE_COMMANDS[stage]
        expanded = expand(dict(params))

        def problem(err: _ParamProblem) -> PipelineConfigError:
            if err.key is not None and isinstance(params, _LineDict) and err.key in params.lines:
                where = _where(path, params, err.key)
            elif err.key is not None and isinstance(owner, _LineDict) and err.key in owner.lines:
                where = _where(path, owner, err.key)
            else:
                where = _where(path, owner, "params" if "params" in owner else None)
            what = f"dataset {ctx.dataset}" if stage == "ingest" else f"stage {stage}"
            return PipelineConfigError(f"{where}: {what} (nordpipe {' '.join(command)}): {err}")

        try:
            converted, specs = check_params(expanded, command, schema, stage)
            PARAM_CHECKS[stage](converted, ctx)
        except _ParamProblem as err:
            raise problem(err) from None
        except ValueError as err:  # a check that names no key
            raise problem(_ParamProblem(None, str(err))) from None
        return expanded, params_to_flags(expanded, specs)

    datasets = []
    raw_datasets = data.get("datasets") or []
    if not isinstance(raw_datasets, list) or not raw_datasets:
        raise PipelineConfigError(f"{_where(path, data, 'datasets')}: datasets must be a non-empty list")
    names: set[str] = set()
    for item in raw_datasets:
        _check_keys(path, item, DATASET_KEYS, "a dataset")
        if "name" not in item or "raw" not in item:
            raise PipelineConfigError(f"{_where(path, item)}: a dataset needs name and raw")
        if item["name"] in names:
            raise PipelineConfigError(f"{_where(path, item, 'name')}: dataset name {item['name']!r} is used twice")
        names.add(item["name"])
        raw = item["raw"] if isinstance(item["raw"], list) else [item["raw"]]
        if not raw or not all(isinstance(r, str) and r for r in raw):
            raise PipelineConfigError(f"{_where(path, item, 'raw')}: raw must be a path or glob, or a list of them")
        _check_keys(path, item.get("resources") or {}, RESOURCE_KEYS, "resources")
        config = expand(item.get("config"))
        ctx = CheckContext(root, bool(sample), dataset=str(item["name"]), config=config)
        params, flags = checked(item.get("params"), item, "ingest", ctx)
        datasets.append(DatasetSpec(str(item["name"]), expand(raw), config, params, dict(item.get("resources") or {}),
                                    flags, _where(path, item, "raw")))
    stages = []
    stage_names: set[str] = set()
    for item in data.get("stages") or []:
        _check_keys(path, item, STAGE_KEYS, "a stage")
        kind = item.get("type")
        if kind not in STAGE_COMMANDS:
            raise PipelineConfigError(f"{_where(path, item, 'type')}: stage type {kind!r}; allowed: {', '.join(STAGE_COMMANDS)}")
        name = item.get("name", kind)
        if name in stage_names or name == "ingest":
            raise PipelineConfigError(f"{_where(path, item, 'name')}: stage name {name!r} is used twice")
        stage_names.add(name)
        _check_keys(path, item.get("resources") or {}, RESOURCE_KEYS, "resources")
        params, flags = checked(item.get("params"), item, kind, CheckContext(root, bool(sample)))
        stages.append(StageSpec(name, kind, params, dict(item.get("resources") or {}), flags))
    pipeline = Pipeline(path, str(data.get("name", os.path.basename(path).split(".")[0])), root, executor, dict(slurm),
                        expand(dict(sample)) if sample else None, datasets, stages, schema, max_removed_share)
    check_raw_paths(pipeline)
    return pipeline


# --------------------------------------------------------------------------------------------
# Batches and plans


@dataclass
class Step:
    """One command of a plan: ingest of one dataset, or one stage.

    ``input`` is the stage's input folder (None for ingest, whose input is the batch's raw
    files, identified by ``raw_identity``); ``previous`` names the step that writes ``input``.
    """

    stage: str
    argv: list[str]
    output: str
    resources: dict[str, Any]
    input: str | None = None
    raw_identity: str | None = None
    previous: str | None = None
    datasets: list[str] = field(default_factory=list)
    """For the first stage: the batch's datasets, whose ingest outputs together are ``input``."""

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout.of(self.output)

    def input_identity(self) -> str | None:
        """What the step's input is now (None: it does not exist)."""
        if self.input is None:
            return self.raw_identity
        if not os.path.exists(self.input):
            return None
        return input_identity(self.input)

    def marker(self) -> dict[str, Any] | None:
        """The done marker, or None (none, or one from before markers recorded their input)."""
        try:
            record = self.layout.read_json(self.layout.pipeline_done)
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def done(self) -> bool:
        """Completed by a run that consumed the input as it is now."""
        marker = self.marker()
        if marker is None or self.layout.completed() is None:
            return False
        current = self.input_identity()
        return current is not None and marker.get("input_identity") == current

    def input_complete(self) -> bool:
        """The step's input is a completed stage output (ingest: always; its input is raw files)."""
        if self.input is None:
            return True
        if self.datasets:
            return all(OutputLayout.of(os.path.join(self.input, name)).completed() is not None for name in self.datasets)
        return OutputLayout.of(self.input).completed() is not None

    def stale(self) -> bool:
        """The output is a completed run on an input that has changed since (an upstream step ran
        again): rerunning the same command would resume it, not redo it."""
        completion = self.layout.completed()
        if completion is None or self.input is None or completion.get("input_identity") is None:
            return False
        return completion["input_identity"] != self.input_identity()

    def mark_done(self) -> None:
        completion = self.layout.completed() or {}
        atomic_write_json(self.layout.pipeline_done, {
            "stage": self.stage,
            "input": self.input,
            "input_identity": self.input_identity(),
            "completion": completion.get("id"),
            "documents_out": completion.get("documents_out"),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })


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


def _raw_identity(files: list[str], starts: Mapping[str, RawStart] | None = None) -> str:
    """The identity of an ingest step's input: its raw files and where each is read from, as
    the batch fixed them; not the files' current state, which may grow while the batch runs."""
    digest = hashlib.sha256()
    for path in sorted(files):
        start = (starts or {}).get(path)
        where = f"{start.offset}:{start.line}:{start.expect}" if start else "0"
        digest.update(f"{os.path.abspath(path)}\t{where}\n".encode())
    return digest.hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# Raw-file bookkeeping: is a raw file new, grown, unchanged, or changed in the middle?


@dataclass(frozen=True)
class RawVerdict:
    """A raw file compared with what earlier batches read of it (``classify_raw_file``)."""

    kind: str
    """``new`` (never read), ``unchanged`` (nothing to read), ``pending`` (unchanged, with an
    incomplete last line held back), ``append`` (grown: read from ``start``) or ``changed``
    (read again in full: ``reason``)."""
    start: RawStart | None = None
    reason: str = ""
    refreshed: dict[str, Any] | None = None
    """The record with the file's current modification time, when a hash check found the file
    unchanged although its time had changed (so that the next check takes the fast path)."""

    @property
    def read(self) -> bool:
        return self.kind in ("new", "append", "changed")


def _hash_prefix(path: str, length: int, tail: int) -> tuple[str, bytes, str | None]:
    """xxh3_128 of the first ``length`` bytes, the byte that follows them, and the hash of the
    ``tail`` bytes after them (None when ``tail`` is 0)."""
    hasher, tail_hasher = xxhash.xxh3_128(), xxhash.xxh3_128()
    with open(path, "rb") as handle:
        remaining = length
        while remaining:
            chunk = handle.read(min(READ_CHUNK, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
        following = b""
        remaining = tail
        while remaining:
            chunk = handle.read(min(READ_CHUNK, remaining))
            if not chunk:
                break
            following = following or chunk[:1]
            tail_hasher.update(chunk)
            remaining -= len(chunk)
        if not tail:
            following = handle.read(1)
    return hasher.hexdigest(), following, tail_hasher.hexdigest() if tail else None


def classify_raw_file(path: str, entry: Any) -> RawVerdict:
    """Compare a raw file with its record in ``ingested.json`` (``ingest.RawFileRead``, written
    from what ingest read; see the module docstring for the rules)."""
    if entry is None:
        return RawVerdict("new")
    if not isinstance(entry, dict) or not isinstance(entry.get("offset"), int) or not entry.get("xxh3"):
        return RawVerdict("changed", reason="its record holds only size and time, taken when its batch ended (by a "
                                            "nordpipe before reads were recorded), so records appended during that "
                                            "batch may never have been read")
    try:
        stat = os.stat(path)
    except OSError:
        return RawVerdict("unchanged")  # gone since it was listed: nothing to read
    offset, seen = int(entry["offset"]), int(entry.get("size", entry["offset"]))
    held = seen > offset
    if entry.get("mtime_ns") is not None and stat.st_size == seen and stat.st_mtime_ns == entry["mtime_ns"]:
        return RawVerdict("pending" if held else "unchanged")  # the fast path: size and time as read
    if stat.st_size < offset:
        return RawVerdict("changed", reason=f"it shrank from {offset:,} to {stat.st_size:,} bytes")
    mtime = settled_mtime(path)  # before hashing: a write during the hash changes the time again
    tail = seen - offset if held and stat.st_size >= seen else 0
    digest, following, tail_digest = _hash_prefix(path, offset, tail)
    if digest != entry["xxh3"]:
        return RawVerdict("changed", reason=f"its first {offset:,} bytes differ from what was read")
    refreshed = {**entry, "mtime_ns": mtime} if mtime != entry.get("mtime_ns") else None
    if stat.st_size == offset:  # (a held-back incomplete line may have been cut off)
        current = {**entry, "mtime_ns": mtime, "size": offset, "tail_xxh3": None}
        return RawVerdict("unchanged", refreshed=current if current != entry else None)
    if not entry.get("append_only"):
        return RawVerdict("changed", reason=f"it grew from {offset:,} to {stat.st_size:,} bytes, and "
                                            f"{entry.get('format', 'its')} files are read whole")
    if entry.get("open_line") and following != b"\n":
        return RawVerdict("changed", reason="its last line, read without a newline, was continued")
    if held and stat.st_size == seen and tail_digest == entry.get("tail_xxh3"):
        return RawVerdict("pending", refreshed=refreshed)
    return RawVerdict("append", RawStart(offset, int(entry.get("lines") or 0), str(entry["xxh3"])))


def _stop_child(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Wait for a stage that was sent SIGTERM to stop (its workers, its lock); kill it after
    ``timeout`` seconds, or at once on a second signal."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
            return
        except subprocess.TimeoutExpired:
            break
        except Interrupted:
            break
    process.kill()
    process.wait()


def _child_dies_with_us() -> None:
    """``preexec_fn`` of a stage process: SIGTERM when the pipeline process dies (even by -9),
    so that no stage keeps writing into the root after its pipeline is gone."""
    die_with_parent(signal.SIGTERM)


class PipelineRun:
    """Plans and runs one batch of a pipeline."""

    def __init__(self, pipeline: Pipeline, nordpipe: list[str] | None = None):
        self.pipeline = pipeline
        self.root = pipeline.root
        self.nordpipe = nordpipe or [os.path.join(os.path.dirname(sys.executable), "nordpipe")]
        self.starts: dict[str, dict[str, RawStart]] = {}
        """Where the open batch reads its grown append-only files, by dataset and path."""

    # state ---------------------------------------------------------------------------------
    def _state_path(self, name: str) -> str:
        return os.path.join(self.root, "state", name)

    def _read_json(self, path: str, default: Any) -> Any:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        return default

    def batches(self) -> list[str]:
        folder = os.path.join(self.root, "batches")
        return sorted(d for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(folder) else []

    def _batch_record(self, batch: str) -> dict[str, Any]:
        return self._read_json(os.path.join(self.root, "batches", batch, "batch.json"), {})

    def _unfinished(self) -> tuple[str, dict[str, list[str]]] | None:
        """The unfinished batch, if any, with where it reads each raw file (``self.starts``)."""
        for batch in self.batches():
            record = self._batch_record(batch)
            if not record.get("done"):
                self.starts = {dataset: {path: RawStart(int(read["start"]), int(read["line"]), read.get("xxh3"))
                                         for path, read in reads.items() if read.get("start")}
                               for dataset, reads in (record.get("reads") or {}).items()}
                return batch, record["files"]
        return None

    def _earlier_batch(self, dataset: str, path: str, entry: Any, current: str | None = None) -> str:
        """The batch that last read ``path`` before ``current`` (from its record, or, for records
        of an older nordpipe, the last finished batch that lists it)."""
        if isinstance(entry, dict) and entry.get("batch") and entry["batch"] != current:
            return str(entry["batch"])
        for batch in reversed(self.batches()):
            record = self._batch_record(batch)
            if record.get("done") and any(os.path.abspath(f) == path for f in record.get("files", {}).get(dataset, [])):
                return batch
        return "?"

    def _classify(self, ingested: dict[str, Any], log: Callable[[str], None] | None,
                  preview: bool = False) -> tuple[dict[str, list[str]], dict[str, dict[str, dict[str, Any]]], bool]:
        """Every raw file against its record: the new batch's files, how each is read (for
        ``batch.json``), and whether ``ingested`` was refreshed (records whose file was found
        unchanged by hash although its time had changed). Sets ``self.starts``."""
        files: dict[str, list[str]] = {}
        reads: dict[str, dict[str, dict[str, Any]]] = {}
        refreshed = False
        self.starts = {}
        for dataset in self.pipeline.datasets:
            seen = ingested.get(dataset.name, {})
            raw = _expand_raw(dataset.raw)
            if preview:
                raw = raw or dataset.raw  # sample data may not exist yet
            for path in raw:
                key = os.path.abspath(path)
                verdict = RawVerdict("new") if not os.path.exists(path) else classify_raw_file(path, seen.get(key))
                if verdict.refreshed is not None:
                    seen[key], refreshed = verdict.refreshed, True
                if log is not None and verdict.kind == "changed":
                    log(f"changed\t{dataset.name}\t{key}\t{verdict.reason}: ingested again in full; its earlier records "
                        f"stay in batch {self._earlier_batch(dataset.name, key, seen.get(key))}")
                elif log is not None and verdict.kind == "pending":
                    entry = seen[key]
                    log(f"pending\t{dataset.name}\t{key}\tits last {int(entry['size']) - int(entry['offset']):,} bytes are "
                        "an incomplete line (no newline yet): read once the line is complete")
                elif log is not None and verdict.kind == "append" and verdict.start is not None:
                    log(f"append\t{dataset.name}\t{key}\tgrown: read from byte {verdict.start.offset:,} "
                        f"(line {verdict.start.line + 1:,})")
                if not verdict.read:
                    continue
                files.setdefault(dataset.name, []).append(path)
                read: dict[str, Any] = {"why": verdict.kind}
                if verdict.start is not None:
                    read.update(start=verdict.start.offset, line=verdict.start.line, xxh3=verdict.start.expect)
                    self.starts.setdefault(dataset.name, {})[path] = verdict.start
                if verdict.reason:
                    read["reason"] = verdict.reason
                reads.setdefault(dataset.name, {})[path] = read
        return files, reads, refreshed

    def open_batch(self, log: Callable[[str], None] | None = None) -> tuple[str, dict[str, list[str]]] | None:
        """The unfinished batch, or a new one with the raw files that are new, have grown
        (append-only files: read from where the last read stopped) or changed in the middle
        (read again in full, logged); None if nothing is new.

        Writes, each atomically: ``ingested.json`` when hash checks refreshed records (kill
        point ``pipeline.open-batch.after-refresh``), then the new batch's ``batch.json``."""
        unfinished = self._unfinished()
        if unfinished is not None:
            return unfinished
        ingested = self._read_json(self._state_path("ingested.json"), {})
        new_files, reads, refreshed = self._classify(ingested, log)
        if refreshed:
            atomic_write_json(self._state_path("ingested.json"), ingested)
            kill_point("pipeline.open-batch.after-refresh")
        if not new_files:
            return None
        batch = f"{len(self.batches()) + 1:04d}"
        atomic_write_json(os.path.join(self.root, "batches", batch, "batch.json"),
                          {"files": new_files, "reads": reads, "done": False, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return batch, new_files

    def open_batch_preview(self, log: Callable[[str], None] | None = None) -> tuple[str, dict[str, list[str]]] | None:
        """Like ``open_batch`` (the same files, starts and log lines) but writes nothing (for --dry-run)."""
        unfinished = self._unfinished()
        if unfinished is not None:
            return unfinished
        new_files, _, _ = self._classify(self._read_json(self._state_path("ingested.json"), {}), log, preview=True)
        return (f"{len(self.batches()) + 1:04d}", new_files) if new_files else None

    def plan(self, batch: str, files: dict[str, list[str]], write_lists: bool = True) -> list[Step]:
        """The batch's steps. Ingest gets its raw files on the command line, or, when there are
        more than ``MAX_INLINE_FILES`` (a folder of loose text files can hold many thousands,
        beyond the kernel's limit on argument length) or some are read from a start position
        (``self.starts``, set by ``open_batch``), in a list file under the batch folder (written
        unless ``write_lists`` is false, as for ``--dry-run``)."""
        base = os.path.join(self.root, "batches", batch)
        steps: list[Step] = []
        ingest_root = os.path.join(base, "ingest")
        ingested = []
        for dataset in self.pipeline.datasets:
            if dataset.name not in files:
                continue
            raw = files[dataset.name]
            starts = self.starts.get(dataset.name, {})
            identity = _raw_identity(raw, starts)
            if len(raw) > MAX_INLINE_FILES or starts:
                list_file = os.path.join(base, "inputs", f"{dataset.name}.txt")
                if write_lists:
                    lines = [starts[path].list_line(path) if path in starts else path for path in raw]
                    atomic_write_text(list_file, "".join(f"{line}\n" for line in lines))
                raw = ["--files-from", list_file]
            argv = [*INGEST_COMMAND, *raw, "--dataset", dataset.name, "--output", ingest_root]
            if dataset.config:
                argv += ["--config", dataset.config]
            argv += dataset.flags
            steps.append(Step("ingest", argv, os.path.join(ingest_root, dataset.name), dataset.resources, raw_identity=identity))
            ingested.append(dataset.name)
        previous, previous_name = ingest_root, "ingest"
        for index, stage in enumerate(self.pipeline.stages, start=1):
            output = os.path.join(base, f"{index:02d}-{stage.name}")
            argv = [*stage.command, previous, output, *stage.flags]
            own_limit = any(str(key).replace("-", "_") == "max_removed_share" for key in stage.params)
            if self.pipeline.max_removed_share is not None and STAGES[stage.type].removes_documents and not own_limit:
                argv += ["--max-removed-share", f"{self.pipeline.max_removed_share:g}"]
            steps.append(Step(stage.name, argv, output, stage.resources, input=previous, previous=previous_name,
                              datasets=ingested if previous_name == "ingest" else []))
            previous, previous_name = output, stage.name
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
        if first > last:
            raise PipelineConfigError(f"--from {start} comes after --until {until}; stages: {', '.join(names)}")
        chosen = set(names[first : last + 1])
        return [s for s in steps if s.stage in chosen]

    @staticmethod
    def check_inputs(selected: list[Step], start: str | None) -> None:
        """Refuse (``UsageError``, exit 2) a selection whose first stage would read an input that
        was never completed: it would fail, or with an older contract, run on nothing."""
        chosen = {s.stage for s in selected}
        for step in selected:
            if step.previous is None or step.previous in chosen or step.input_complete():
                continue
            raise UsageError(
                f"--from {start or step.stage}: stage {step.stage} reads the output of stage {step.previous} "
                f"({step.input}), which is not complete; run stage {step.previous} first "
                f"(`nordpipe run PIPELINE --until {step.previous}`, or without --from)"
            )

    # running -------------------------------------------------------------------------------
    def _logfile(self, step: Step) -> str:
        return os.path.join(self.root, "logs", f"{os.path.basename(os.path.dirname(step.output))}-{os.path.basename(step.output)}.log")

    def _discard_stale(self, step: Step, log: Callable[[str], None]) -> None:
        if step.stale():
            log(f"redo\t{step.stage}\t{step.output}\tits input changed since it ran")
            shutil.rmtree(step.output)

    def run_local(self, steps: list[Step], log: Callable[[str], None]) -> None:
        """Run the steps one after the other as child processes. SIGTERM/SIGINT stop the running
        stage (it stops its workers and releases its lock) and raise ``Interrupted``."""
        with InterruptOnSignals():
            for step in steps:
                if step.done():
                    log(f"skip\t{step.stage}\t{step.output}\talready done")
                    continue
                self._discard_stale(step, log)
                argv = [*self.nordpipe, *step.argv, *self._resource_flags(step.resources)]
                logfile = self._logfile(step)
                os.makedirs(os.path.dirname(logfile), exist_ok=True)
                started = time.time()
                with open(logfile, "ab") as handle:
                    handle.write(f"$ {shlex.join(argv)}\n".encode())
                    handle.flush()
                    process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=_child_dies_with_us)
                    try:
                        returncode = process.wait()
                    except Interrupted:
                        _stop_child(process)
                        raise
                if returncode != 0:
                    with open(logfile, encoding="utf-8", errors="replace") as handle:
                        tail = handle.read()[-3000:]
                    raise RunError(f"stage {step.stage} failed (exit {returncode}); log {logfile}:\n{tail}")
                step.mark_done()
                documents = (step.layout.completed() or {}).get("documents_out")
                count = f"\t{documents} documents" if documents is not None else ""
                log(f"done\t{step.stage}\t{step.output}\t{time.time() - started:.1f}s{count}")

    def _step_tasks(self, step: Step, upstream: dict[str, int]) -> int | None:
        """The task count a step is submitted with: its ``tasks:``, else its upstream's (the
        sum over the batch's datasets for the first stage), else None (the stage decides:
        only for a step whose input is there when it is submitted)."""
        if step.resources.get("tasks"):
            return int(step.resources["tasks"])
        if step.input is None:
            return None
        if step.datasets:
            counts = [upstream.get(os.path.join(step.input, name)) for name in step.datasets]
            known = [c for c in counts if c]
            return min(sum(known), MAX_DEFAULT_TASKS) if known else None
        return upstream.get(step.input)

    @staticmethod
    def _recorded_tasks(step: Step) -> int | None:
        """The tasks a step's output was run or submitted with (``slurm.json``, else ``run.json``)."""
        for path in (step.layout.slurm_record, step.layout.run_record):
            try:
                tasks = step.layout.read_json(path).get("tasks")
            except (FileNotFoundError, json.JSONDecodeError, AttributeError):
                continue
            if tasks:
                return int(tasks)
        return None

    def run_slurm(self, steps: list[Step], log: Callable[[str], None], wait: bool = True,
                  batch: str | None = None) -> dict[str, list[str]]:
        """Queue every step that is not done, all at once (``runner.slurm``): each stage command
        is run with ``--executor slurm --no-wait``, which submits its phases as job arrays and a
        finish job, the stages after the first with ``--after`` the job that completes their input
        (their input is checked in the jobs); a 1-task job after each finish job writes the step's
        done marker. Returns the job ids by step and records them in ``batch.json``
        (``slurm.jobs``), so that the next run sees the batch in flight. With ``wait``, waits for
        each step's jobs in turn and fails naming the logs of the tasks that failed."""
        from nordpipe.runner.slurm import _sbatch, sbatch_resources

        slurm = self.pipeline.slurm
        env = slurm.get("env_command") or default_env_command()
        logdir = os.path.abspath(os.path.join(self.root, "logs"))
        os.makedirs(logdir, exist_ok=True)
        upstream_tasks: dict[str, int] = {}
        marks: dict[str, str] = {}  # step output -> the job that writes its done marker
        jobs: dict[str, list[str]] = {}
        submitted: list[tuple[Step, list[str]]] = []
        for step in steps:
            if step.done():
                log(f"skip\t{step.stage}\t{step.output}\talready done")
                recorded = self._recorded_tasks(step)
                if recorded:
                    upstream_tasks[step.output] = recorded
                continue
            self._discard_stale(step, log)
            if step.input is None:
                after = []
            elif step.datasets:
                after = [marks[o] for o in (os.path.join(step.input, d) for d in step.datasets) if o in marks]
            else:
                after = [marks[step.input]] if step.input in marks else []
            tasks = self._step_tasks(step, upstream_tasks)
            if after and not tasks:
                tasks = 1  # the upstream's count is unknown (it cannot be: each submitter records it)
            resources = step.resources
            cpus = resources.get("cpus") or slurm.get("cpus") or 1
            argv = [*self.nordpipe, *step.argv]
            if tasks:
                argv += ["--tasks", str(tasks)]
            argv += ["--workers", str(resources.get("workers") or cpus), "--executor", "slurm", "--no-wait",
                     "--cpus", str(cpus), "--mem-per-cpu", str(resources.get("mem_per_cpu", slurm.get("mem_per_cpu", 2))),
                     "--time", str(resources.get("time", slurm.get("time", "24:00:00")))]
            partition = resources.get("partition") or slurm.get("partition")
            if partition:
                argv += ["--partition", str(partition)]
            if slurm.get("env_command"):
                argv += ["--env-command", str(slurm["env_command"])]
            if after:
                argv += ["--after", ":".join(after)]
            result = subprocess.run(argv, capture_output=True, text=True)
            with open(self._logfile(step), "a", encoding="utf-8") as handle:
                handle.write(f"$ {shlex.join(argv)}\n{result.stdout}{result.stderr}")
            if result.returncode != 0:
                raise RunError(f"stage {step.stage}: submitting to Slurm failed (exit {result.returncode}); "
                               f"log {self._logfile(step)}:\n{result.stderr.strip()[-3000:]}")
            lines = [line.split("\t") for line in result.stdout.splitlines() if line.startswith("submitted\t")]
            step_jobs = [fields[3] for fields in lines]
            finish = next(fields[3] for fields in lines if fields[2] == "finish")
            mark = [sys.executable, "-m", "nordpipe.pipeline", "mark-done", step.stage, step.output,
                    step.input or "", step.raw_identity or ""]
            name = f"{os.path.basename(os.path.dirname(step.output))}-{os.path.basename(step.output)}"
            cwd = shlex.quote(os.getcwd())
            step_resources = RunOptions(slurm=SlurmOptions(partition=partition, time="00:10:00", cpus_per_task=1,
                                                           mem_per_cpu_gb=1))
            marks[step.output] = _sbatch(
                f"#!/bin/bash\n{env}\ncd {cwd}\nexec {shlex.join(mark)}\n",
                [f"--job-name=nordpipe-{step.stage}-done", f"--output={logdir}/{name}-done-%j.log",
                 *sbatch_resources(step_resources), f"--dependency=afterok:{finish}", "--kill-on-invalid-dep=yes"])
            step_jobs.append(marks[step.output])
            for fields in lines:
                log("\t".join(fields))
            log(f"submitted\t{step.stage}\tdone-marker\t{marks[step.output]}")
            recorded = self._recorded_tasks(step) if not after else tasks
            if recorded:
                upstream_tasks[step.output] = recorded
            jobs[step.stage if step.stage != "ingest" else f"ingest/{os.path.basename(step.output)}"] = step_jobs
            submitted.append((step, step_jobs))
            if batch is not None:
                self._record_jobs(batch, jobs)
        if wait:
            self.wait_for_steps(submitted, log)
        return jobs

    def _record_jobs(self, batch: str, jobs: dict[str, list[str]]) -> None:
        path = os.path.join(self.root, "batches", batch, "batch.json")
        record = self._read_json(path, {})
        record["slurm"] = {"submitted": time.strftime("%Y-%m-%dT%H:%M:%S"), "jobs": jobs}
        atomic_write_json(path, record)

    def jobs_in_flight(self, batch: str) -> tuple[set[str], int]:
        """The batch's Slurm jobs still pending or running, and how many it submitted (no
        ``squeue`` call for a batch that never went to Slurm)."""
        from nordpipe.runner.slurm import jobs_in_queue

        jobs = [job for ids in ((self._batch_record(batch).get("slurm") or {}).get("jobs") or {}).values() for job in ids]
        return (jobs_in_queue(jobs) if jobs else set()), len(jobs)

    def wait_for_steps(self, submitted: list[tuple[Step, list[str]]], log: Callable[[str], None]) -> None:
        """Wait for each step's own jobs, in order; a step whose jobs ended without its done
        marker fails the run, naming the failed tasks' logs (``nordpipe status``)."""
        from nordpipe.runner.slurm import progress, wait_for_jobs

        for step, step_jobs in submitted:
            wait_for_jobs(step_jobs)
            if not step.done():
                failed = [f"{key}: {value}" for key, value in progress(step.output) if "failed" in key]
                raise RunError(f"stage {step.stage}: Slurm jobs {', '.join(step_jobs)} ended without completing "
                               f"{step.output}: {'; '.join(failed) or 'see ' + step.layout.slurm_logs}; rerun to "
                               "resubmit what is missing")
            log(f"done\t{step.stage}\t{step.output}\tjobs {','.join(step_jobs)}")

    def finish_batch(self, batch: str, files: dict[str, list[str]], log: Callable[[str], None] | None = None) -> None:
        """Record what the batch's ingest read of each raw file, then mark the batch done.

        The records are the ones ingest measured while it read (``.nordpipe/raw-files.json`` of
        each dataset's ingest output), never a look at the files now: a file that grew while the
        batch ran is recorded as read, and the next batch reads what was appended. A raw file
        without a record (an ingest by an older nordpipe, an unreadable text file) keeps its
        earlier record, so the next run reads it again (new, or from the earlier offset).

        Three steps, each atomic and each repeatable with the same result, so a kill between
        them reruns to the uninterrupted state (the batch is not done until the last one, and
        the next run finishes it again): ``ingested.json`` (kill point
        ``pipeline.finish-batch.after-ingested``), the datasets' datasheets
        (``pipeline.finish-batch.after-datasheets``), ``batch.json`` with ``done``
        (``pipeline.finish-batch.after-done``)."""
        ingested = self._read_json(self._state_path("ingested.json"), {})
        for dataset, names in files.items():
            layout = OutputLayout.of(os.path.join(self.root, "batches", batch, "ingest", dataset))
            reads = self._read_json(layout.state_path(RAW_READS_FILE), {})
            seen = ingested.setdefault(dataset, {})
            for name in names:
                key = os.path.abspath(name)
                read = reads.get(key)
                if not isinstance(read, dict):
                    if log is not None:
                        log(f"unrecorded\t{dataset}\t{key}\tingest recorded no read of it (see {layout.root}): "
                            "it is read again by the next run")
                    continue
                if log is not None and read.get("restarted"):
                    log(f"changed\t{dataset}\t{key}\t{read['restarted']} (found by ingest): ingested again in full; its "
                        f"earlier records stay in batch {self._earlier_batch(dataset, key, seen.get(key), batch)}")
                seen[key] = {**read, "batch": batch}
        atomic_write_json(self._state_path("ingested.json"), ingested)
        kill_point("pipeline.finish-batch.after-ingested")
        self.update_datasheets()
        kill_point("pipeline.finish-batch.after-datasheets")
        path = os.path.join(self.root, "batches", batch, "batch.json")
        record = self._read_json(path, {})
        record.update(done=True, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        atomic_write_json(path, record)
        kill_point("pipeline.finish-batch.after-done")

    def update_datasheets(self) -> None:
        """``ROOT/datasets/NAME/README.md``: one datasheet per dataset over all batches."""
        from nordpipe.datasheet import write_datasheet
        from nordpipe.ingest import IngestConfig
        from nordpipe.runner import merge_task_stats

        for dataset in self.pipeline.datasets:
            stats = []
            for batch in self.batches():
                path = OutputLayout.of(os.path.join(self.root, "batches", batch, "ingest", dataset.name)).stats
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


def _prepare_sample(pipeline: Pipeline, log: Callable[[str], None]) -> None:
    """Generate the sample raw data (once), then check what could not be checked before it existed."""
    from nordpipe.sample import generate_sample

    assert pipeline.sample is not None
    target = os.path.join(pipeline.root, "sample")
    if not os.path.exists(os.path.join(target, "manifest.json")):
        generate_sample(target, seed=int(pipeline.sample.get("seed", 42)), scale=float(pipeline.sample.get("scale", 1.0)),
                        files=int(pipeline.sample.get("files", 1)))
        log(f"sample\t{target}")
    load_pipeline(pipeline.path, root=pipeline.root, executor=pipeline.executor, schema=pipeline.schema,
                  max_removed_share=pipeline.max_removed_share)


def run_pipeline(pipeline: Pipeline, start: str | None = None, until: str | None = None, dry_run: bool = False,
                 wait: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or with ``dry_run``, print) the pending batch of a pipeline. Returns a summary.

    Raises ``Interrupted`` on SIGTERM/SIGINT after the running stage has stopped (the root's
    lock is released on the way out), ``UsageError`` for a ``--from`` whose input is missing,
    ``PipelineConfigError`` for sample data that does not match the file, ``RunError`` for a
    failed stage.
    """
    runner = PipelineRun(pipeline)
    if dry_run:
        pending = runner.open_batch_preview(log)
        if pending is None:
            log("nothing to do: no new raw files and no unfinished batch")
            return {"batch": None, "steps": []}
        batch, files = pending
        steps = runner.select(runner.plan(batch, files, write_lists=False), start, until)
        for i, step in enumerate(steps, start=1):
            after = f" (after step {i - 1})" if i > 1 and pipeline.executor == "slurm" else ""
            log(f"{i}\t{step.stage}\t{'done' if step.done() else 'todo'}\tnordpipe {shlex.join(step.argv + runner._resource_flags(step.resources))}{after}")
        return {"batch": batch, "steps": [s.argv for s in steps]}
    with InterruptOnSignals(), PipelineLock(pipeline.root):
        if pipeline.sample:
            _prepare_sample(pipeline, log)
        pending = runner.open_batch(log)
        if pending is None:
            log("nothing to do: no new raw files and no unfinished batch")
            return {"batch": None}
        batch, files = pending
        steps = runner.select(runner.plan(batch, files), start, until)
        runner.check_inputs(steps, start)
        log(f"batch\t{batch}\t{sum(len(v) for v in files.values())} new raw files")
        queued, total = runner.jobs_in_flight(batch)  # whatever the executor is now
        if queued:
            # cron: the batch's chain is queued; neither submit it twice nor wait for it
            log(f"in flight\tbatch {batch}\t{len(queued)} of {total} Slurm jobs pending or running "
                f"({', '.join(sorted(queued, key=int)[:10])}); nothing submitted")
            return {"batch": batch, "in_flight": sorted(queued)}
        if pipeline.executor == "slurm":
            submitted = runner.run_slurm(steps, log, wait=wait, batch=batch)
            if not wait and submitted:
                return {"batch": batch, "submitted": submitted}
        else:
            runner.run_local(steps, log)
        all_steps = runner.plan(batch, files, write_lists=False)  # the lists were written above
        if all(s.done() for s in all_steps):
            check_batch_removal(pipeline, batch, all_steps)
            runner.finish_batch(batch, files, log)
            last = (all_steps[-1].layout.completed() or {}) if all_steps else {}
            if last.get("documents_out") == 0:
                log(f"finished\tbatch {batch}\tno documents left (all quarantined or removed; see the stage "
                    f"outputs' quarantine/ and removed/ and `nordpipe report {pipeline.root}`)")
            else:
                log(f"finished\tbatch {batch}")
        return {"batch": batch, "outputs": [s.output for s in steps]}


def check_batch_removal(pipeline: Pipeline, batch: str, steps: list[Step]) -> float | None:
    """The whole chain's removal guard (``runner.removal_guard.check_chain``): the documents the
    batch's stages removed over the documents its ingest produced. Over the limit, the batch is
    left unfinished (``RemovalShareExceeded``, exit 1); rerunning with a higher limit finishes it
    without running any stage again (every step is done)."""
    from nordpipe.runner import DEFAULT_MAX_REMOVED_SHARE, check_chain

    def stats(step: Step) -> dict[str, Any]:
        try:
            return dict(step.layout.read_json(step.layout.stats))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    ingested = sum(int(stats(s).get("documents_out", 0)) for s in steps if s.stage == "ingest")
    limit = pipeline.max_removed_share if pipeline.max_removed_share is not None else DEFAULT_MAX_REMOVED_SHARE
    return check_chain(
        f"batch {batch} of {pipeline.path}", ingested,
        [(s.stage, stats(s)) for s in steps if s.stage != "ingest"], limit,
        hint=(f"The batch is NOT finished. If this removal is expected, rerun with `nordpipe run {pipeline.path} "
              "--max-removed-share 1` (or set max_removed_share: in the file): no stage runs again."),
    )


def final_outputs(root: str) -> list[str]:
    """The last stage's output folder of every finished batch, in batch order."""
    outputs = []
    batches_dir = os.path.join(root, "batches")
    for batch in sorted(os.listdir(batches_dir)) if os.path.isdir(batches_dir) else []:
        stages = sorted(d for d in os.listdir(os.path.join(batches_dir, batch)) if d[:2].isdigit() and "-" in d)
        if stages:
            outputs.append(os.path.join(batches_dir, batch, stages[-1]))
    return outputs


def _main(argv: list[str]) -> int:
    """``python -m nordpipe.pipeline mark-done STAGE OUTPUT INPUT RAW_IDENTITY``: the done marker
    of a step run as a Slurm job, written on the node after the stage succeeded."""
    if len(argv) != 5 or argv[0] != "mark-done":
        sys.stderr.write("usage: python -m nordpipe.pipeline mark-done STAGE OUTPUT INPUT RAW_IDENTITY\n")
        return 2
    _, stage, output, input_path, raw = argv
    step = Step(stage, [], output, {}, input=input_path or None, raw_identity=raw or None)
    if step.layout.completed() is None:
        sys.stderr.write(f"nordpipe: error: {output} holds no completed run\n")
        return 1
    step.mark_done()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
