"""Options and output shared by every stage command.

A stage command takes an ``options: RunOptions`` parameter and is decorated with
``with_run_options()``, which puts the shared options (``--tasks`` ... ``--verbose``) in its
place on the command line and hands the command the ``RunOptions`` built from them. It calls
the stage module and ends with ``finish(stats, options.strict)``, which prints the summary and
exits 0, or 1 for ``--strict`` with quarantined records. ``stage_command`` turns ``RunError``
(and other expected failures) into a one-line message and exit code 1.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from nordpipe.layout import InputError, UsageError
from nordpipe.runner import DEFAULT_MAX_REMOVED_SHARE, Interrupted, RunError, RunOptions, SlurmOptions
from nordpipe.runner.slurm import PhaseDone

console = Console(stderr=False)
err_console = Console(stderr=True)

InputArg = Annotated[str, typer.Argument(help="Input: a dataset folder, a folder of jsonl.gz files, a file, or an fsspec URL.")]
OutputArg = Annotated[str, typer.Argument(help="Output folder (documents/, removed/, quarantine/, .nordpipe/).")]
TasksOpt = Annotated[int | None, typer.Option("--tasks", min=1, help="Number of tasks [default: one per input file].")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Tasks run at once by the local executor.")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="Where tasks run: local or slurm.", case_sensitive=False)]
PartitionOpt = Annotated[str | None, typer.Option("--partition", help="Slurm partition [default: the cluster's default].", rich_help_panel="Slurm")]
TimeOpt = Annotated[str, typer.Option("--time", help="Slurm time limit per task.", rich_help_panel="Slurm")]
CpusOpt = Annotated[int, typer.Option("--cpus", min=1, help="Slurm CPUs per task.", rich_help_panel="Slurm")]
MemOpt = Annotated[int, typer.Option("--mem-per-cpu", min=1, help="Slurm memory per CPU, GB.", rich_help_panel="Slurm")]
EnvOpt = Annotated[str | None, typer.Option("--env-command", help="Shell line activating nordpipe on the nodes [default: this venv].", rich_help_panel="Slurm")]
NoWaitOpt = Annotated[bool, typer.Option(
    "--no-wait", help="Submit the Slurm jobs (every phase's array and the finish job), print "
                      "`submitted<TAB>stage<TAB>phase<TAB>jobid` per job and return; `nordpipe status OUTPUT` shows progress.",
    rich_help_panel="Slurm")]
AfterOpt = Annotated[str | None, typer.Option(
    "--after", hidden=True, rich_help_panel="Slurm",
    help="Slurm job ids (a:b) whose success makes INPUT complete: submit now, check INPUT in the jobs (needs --tasks).")]
KeepRemovedOpt = Annotated[bool, typer.Option("--keep-removed", help="Write removed documents, with their reason, to OUTPUT/removed/.")]
MaxRemovedShareOpt = Annotated[float, typer.Option(
    "--max-removed-share", min=0.0, max=1.0,
    help="Fail (exit 1, output not marked complete) if the stage removes more than this share of its input "
         "documents; 1 accepts any removal. A rerun with a higher share accepts the output already written.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 1 if any record was quarantined.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Start over if OUTPUT holds a run with other parameters.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log every task's progress (datatrove INFO logs).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the stats as JSON instead of a summary.")]
STATE_PANEL = "Persistent state"
RerunSeenOpt = Annotated[bool, typer.Option(
    "--rerun-seen",
    help="Run even if the state already holds input files with the same content (their content is then "
         "removed as seen before). Without it such a run is refused: roll the state back to redo a run.",
    rich_help_panel=STATE_PANEL)]
KeepGenerationsOpt = Annotated[int, typer.Option(
    "--keep-generations", min=1,
    help="Generations of the state kept for `nordpipe state rollback` (the current one always stays).",
    rich_help_panel=STATE_PANEL)]


def run_options(
    tasks: int | None = None,
    workers: int = 1,
    executor: str = "local",
    partition: str | None = None,
    time: str = "24:00:00",
    cpus: int = 1,
    mem_per_cpu: int = 2,
    env_command: str | None = None,
    no_wait: bool = False,
    after: str | None = None,
    keep_removed: bool = False,
    strict: bool = False,
    force: bool = False,
    verbose: bool = False,
    max_shard_bytes: int | None = None,
    max_removed_share: float = DEFAULT_MAX_REMOVED_SHARE,
) -> RunOptions:
    executor = executor.lower()
    if executor not in ("local", "slurm"):
        raise typer.BadParameter(f"{executor!r} is not one of local, slurm", param_hint="--executor")
    return RunOptions(
        tasks=tasks,
        workers=workers,
        executor=executor,
        keep_removed=keep_removed,
        strict=strict,
        force=force,
        verbose=verbose,
        max_shard_bytes=max_shard_bytes,
        max_removed_share=max_removed_share,
        slurm=SlurmOptions(
            partition=partition, time=time, cpus_per_task=cpus, mem_per_cpu_gb=mem_per_cpu,
            env_command=env_command, wait=not no_wait, after=after,
        ),
        command=sys.argv[1:],
    )


F = TypeVar("F", bound=Callable[..., Any])

# The shared run options, in --help order: ``run_options``' arguments (which give the
# defaults) and their command-line declarations.
_RUN_OPTION_ANNOTATIONS: dict[str, Any] = {
    "tasks": TasksOpt,
    "workers": WorkersOpt,
    "executor": ExecutorOpt,
    "partition": PartitionOpt,
    "time": TimeOpt,
    "cpus": CpusOpt,
    "mem_per_cpu": MemOpt,
    "env_command": EnvOpt,
    "no_wait": NoWaitOpt,
    "after": AfterOpt,
    "keep_removed": KeepRemovedOpt,
    "max_removed_share": MaxRemovedShareOpt,
    "strict": StrictOpt,
    "force": ForceOpt,
    "verbose": VerboseOpt,
}


RUN_OPTIONS = RunOptions()
"""The default a stage command writes for its ``options`` parameter (``options: RunOptions =
RUN_OPTIONS``); ``with_run_options`` always passes the options the user chose instead."""


def with_run_options(keep_removed: bool = True, removes_documents: bool | None = None) -> Callable[[F], F]:
    """Decorate a stage command that takes ``options: RunOptions``: on the command line that
    parameter becomes the shared run options (``--keep-removed`` only when the stage can keep
    removed documents, ``--max-removed-share`` only when it removes documents: default, as
    ``keep_removed``), and the command receives the ``RunOptions`` built from them."""
    removes = keep_removed if removes_documents is None else removes_documents

    def decorate(func: F) -> F:
        own = inspect.signature(func, eval_str=True)
        if "options" not in own.parameters:
            raise TypeError(f"{func.__name__} has no 'options' parameter")
        defaults = inspect.signature(run_options).parameters
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=defaults[name].default)
            for name, annotation in _RUN_OPTION_ANNOTATIONS.items()
            if (name != "keep_removed" or keep_removed) and (name != "max_removed_share" or removes)
        ]
        shared_names = {p.name for p in shared}
        parameters: list[inspect.Parameter] = []
        for parameter in own.parameters.values():
            if parameter.name == "options":
                parameters.extend(shared)
            else:
                # keyword-only throughout: the shared options sit among defaulted parameters
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            chosen = {name: kwargs.pop(name) for name in list(kwargs) if name in shared_names}
            options = run_options(**chosen)
            if options.slurm.after:
                return submit_deferred(kwargs.get("output_path"), options)
            return func(**kwargs, options=options)

        signature = own.replace(parameters=parameters)
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": own.return_annotation}
        return wrapper  # type: ignore[return-value]

    return decorate


def submit_deferred(output: str | None, options: RunOptions) -> None:
    """``--after JOBID``: queue the stage behind the jobs that complete its input (``runner.slurm``)."""
    from nordpipe.runner.slurm import deferred_phases, progress, submit_stage, submitted_lines, wait_for_jobs
    from nordpipe.stages import STAGES

    if options.executor != "slurm":
        raise UsageError("--after needs --executor slurm")
    if not options.tasks:
        raise UsageError("--after needs --tasks: the arrays are submitted before INPUT exists")
    command = options.command or []
    stage = next((name for name, s in STAGES.items() if command[: len(s.command)] == list(s.command)), None)
    if stage is None or output is None:
        raise UsageError(f"--after: not a stage command with INPUT and OUTPUT: {' '.join(command[:2])}")
    from nordpipe.layout import OutputLayout

    layout = OutputLayout.of(output)
    if os.path.exists(layout.completion):
        os.remove(layout.completion)  # the finish job writes it again: until then the run is not complete
    record = submit_stage(stage, output, command, deferred_phases(stage, output, options.tasks, command), options,
                          options.tasks, after=options.slurm.after, prepare=True)
    if not options.slurm.wait:
        for line in submitted_lines(record):
            sys.stdout.write(line + "\n")
        return
    wait_for_jobs([record["prepare"], *(p["job"] for p in record["phases"]), record["finish"]])
    if layout.completed() is None:
        failed = "; ".join(f"{k}: {v}" for k, v in progress(output) if "failed" in k)
        raise RunError(f"Slurm jobs of {output} ended without completing it; {failed or 'see ' + layout.slurm_logs}")
    print_summary(layout.read_json(layout.stats))


def stage_command(func: F) -> F:
    """Turn expected failures into one ``nordpipe: error: ...`` line and the contract's exit code:
    2 for a usage mistake (``UsageError``, e.g. OUTPUT inside INPUT), 1 for a failure (a missing or
    wrong input, a failed task, ``RunError``), ``128 + signal`` when SIGTERM/SIGINT stopped the run."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PhaseDone:
            # a Slurm array task ran its rank (runner.slurm)
            raise typer.Exit(0) from None
        except Interrupted as err:
            err_console.print(f"nordpipe: stopped by {err}; rerun the same command to resume", highlight=False)
            raise typer.Exit(err.exit_code) from None
        except UsageError as err:
            err_console.print(f"[bold red]nordpipe: usage error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from err
        except (RunError, InputError, FileNotFoundError, PermissionError, ValueError) as err:
            if isinstance(err, typer.BadParameter):
                raise
            err_console.print(f"[bold red]nordpipe: error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from err

    return wrapper  # type: ignore[return-value]


def print_summary(stats: dict[str, Any], as_json: bool = False) -> None:
    """A rich table on a terminal; ``key=value`` lines (grep- and cron-friendly) otherwise."""
    if as_json:
        sys.stdout.write(json.dumps(stats, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        return
    stage = stats.get("stage", "stage")
    rows: list[tuple[str, str]] = [
        ("documents in", f"{stats.get('documents_in', 0):,}"),
        ("documents out", f"{stats.get('documents_out', 0):,}"),
        ("characters in", f"{stats.get('characters_in', 0):,}"),
        ("characters out", f"{stats.get('characters_out', 0):,}"),
    ]
    for reason, count in sorted(stats.get("removed", {}).items(), key=lambda kv: -kv[1]):
        if not reason.startswith("quarantine:"):
            rows.append((f"removed {reason}", f"{count:,}"))
    for reason, count in sorted(stats.get("quarantined", {}).items(), key=lambda kv: -kv[1]):
        rows.append((f"quarantined {reason}", f"{count:,}"))
    for key, value in sorted((stats.get("extra") or {}).items()):
        rows.append((key, f"{value:,}" if isinstance(value, int) else str(value)))
    if "seconds" in stats:
        rows.append(("seconds", f"{stats['seconds']:.1f}"))
    if console.is_terminal:
        table = Table(title=f"nordpipe {stage}: {stats.get('output', '')}", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
    else:
        for key, value in rows:
            sys.stdout.write(f"{stage}\t{key}\t{value.replace(',', '')}\n")


def finish(stats: dict[str, Any], strict: bool = False, as_json: bool = False) -> None:
    """Print the summary; exit 1 under ``--strict`` when anything was quarantined."""
    if stats:
        print_summary(stats, as_json=as_json)
    if strict and stats.get("quarantined_total", 0):
        err_console.print(
            f"nordpipe: error: {stats['quarantined_total']} records quarantined (--strict); see "
            f"{Path(stats.get('output', '.')) / 'quarantine'}",
            highlight=False,
        )
        raise typer.Exit(1)
