"""``nordpipe run``, ``nordpipe report`` and ``nordpipe status``.

``command_params`` and ``param_specs`` read the stage commands' own option definitions (the
click parameters of the typer app), so that a pipeline file's ``params`` are converted,
type-checked and turned back into flags exactly as the command would take them.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nordpipe.cli.app import app
from nordpipe.cli.common import console, err_console, stage_command

if TYPE_CHECKING:
    from nordpipe.pipeline import ParamSpec


@functools.cache
def _command(command: tuple[str, ...]) -> Any:
    from nordpipe.cli.main import app as main_app

    group = typer.main.get_command(main_app)
    ctx = typer.Context(group)
    node: Any = group
    for part in command:
        # typer's groups and commands (duck-typed: typer vendors its own click)
        sub = node.get_command(ctx, part) if hasattr(node, "get_command") else None
        if sub is None:
            raise typer.BadParameter(f"nordpipe has no command {' '.join(command)!r}")
        node = sub
    return node


def _option_name(param: Any) -> str:
    # named by the long flag (``--license`` -> ``license``), not by the Python parameter
    # (``license_``): a pipeline's params are turned back into those flags
    long_flags = [o for o in param.opts if o.startswith("--")]
    return long_flags[0][2:].replace("-", "_") if long_flags else str(param.name)


def command_params(command: list[str]) -> dict[str, Any]:
    """The options of a nordpipe command by name (the long flag, underscored): its click
    ``Parameter`` objects, from the CLI's own definition."""
    node = _command(tuple(command))
    return {_option_name(p): p for p in node.params if p.param_type_name == "option" and p.name}


def _message(err: Exception) -> str:
    format_message = getattr(err, "format_message", None)
    return str(format_message() if callable(format_message) else err)


def param_specs(command: list[str]) -> dict[str, ParamSpec]:
    """``command_params`` as ``nordpipe.pipeline.ParamSpec``: flag, off-switch, whether it is a
    boolean flag, repeatable or required, its default, and a converter that type-checks a value
    with the parameter's own type (ranges and choices included) as the command line would."""
    from nordpipe.pipeline import ParamSpec

    node = _command(tuple(command))
    ctx = typer.Context(node)
    specs = {}
    for name, param in command_params(command).items():

        def convert(value: Any, param: Any = param) -> Any:
            try:
                kind = getattr(param, "type", None)
                if kind is not None and hasattr(kind, "convert"):  # plain click
                    if isinstance(value, list):
                        return [kind.convert(item, param, ctx) for item in value]
                    return kind.convert(value, param, ctx)
                return param.process_value(ctx, value)  # typer's own coercion (pydantic)
            except Exception as err:  # click's and typer's BadParameter and friends
                raise ValueError(_message(err)) from None

        long_off = [o for o in getattr(param, "secondary_opts", []) if o.startswith("--")]
        specs[name] = ParamSpec(
            name=name,
            flag=next(o for o in param.opts if o.startswith("--")) if any(o.startswith("--") for o in param.opts) else param.opts[0],
            off_flag=long_off[0] if long_off else None,
            is_flag=bool(getattr(param, "is_flag", False)) and not getattr(param, "count", False),
            multiple=bool(getattr(param, "multiple", False)),
            required=bool(param.required),
            default=param.default,
            convert=convert,
        )
    return specs


@app.command("run")
@stage_command
def run_command(
    pipeline_file: Annotated[str, typer.Argument(help="Pipeline YAML (e.g. pipelines/demo.yaml).")],
    root: Annotated[str | None, typer.Option("--root", help="Output root [default: the file's root:].")] = None,
    executor: Annotated[str | None, typer.Option("--executor", help="local or slurm [default: the file's executor:].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file and print the plan; run nothing.")] = False,
    start: Annotated[str | None, typer.Option("--from", help="First stage to run (ingest or a stage name); its input must be complete.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last stage to run.")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="With slurm: submit the chained jobs and return.")] = False,
    max_removed_share: Annotated[float | None, typer.Option(
        "--max-removed-share", min=0.0, max=1.0,
        help="Fail if a stage, or the whole chain, removes more than this share of its input [default: the file's "
             "max_removed_share:, else 0.95]; 1 accepts any removal. A stage's own params value wins for that stage.")] = None,
) -> None:
    """Run a whole pipeline: ingest the new raw files, then every stage, locally or as chained Slurm jobs.

    The file is checked first, with the stage commands' own options and rules: a wrong
    parameter, a missing required one or a raw path that matches nothing exits 2 naming
    FILE:LINE (--dry-run too). Runs are incremental: only raw files not ingested before, and
    records appended to jsonl files since they were read, are taken, as a new batch (a file changed
    in the middle is reported and taken again in full); persistent dedup state carries across
    batches (`nordpipe state show/rollback`); an interrupted batch is finished first. A second run on the same root while one is running exits 1 at once (safe
    under cron). SIGTERM/SIGINT stop the running stage and exit 143/130; rerun to resume. Output
    lines are tab-separated: what happened, stage, folder, time, documents.
    """
    from nordpipe.pipeline import PipelineConfigError, load_pipeline, run_pipeline

    try:
        pipeline = load_pipeline(pipeline_file, root=root, executor=executor, schema=param_specs,
                                 max_removed_share=max_removed_share)
    except PipelineConfigError as err:
        err_console.print(f"nordpipe: config error: {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err

    def log(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        run_pipeline(pipeline, start=start, until=until, dry_run=dry_run, wait=not no_wait, log=log)
    except PipelineConfigError as err:
        err_console.print(f"nordpipe: config error: {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err


@app.command("report")
@stage_command
def report_command(
    root: Annotated[str, typer.Argument(help="A pipeline root (nordpipe run), a folder of stage outputs run by hand, or a final stage output.")],
    html: Annotated[str | None, typer.Option("--html", help="Write a self-contained HTML report here [default: ROOT/report.html].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the collected figures as JSON instead of the summary.")] = False,
) -> None:
    """Summarize one chain (ingest -> ... -> final stage): a summary and a self-contained HTML report.

    The chain is followed through the stage outputs' records (which input each stage read),
    not taken from folder names, and shown in the stage registry's order. Stage outputs below
    ROOT that are not part of it are listed apart; a ROOT holding two different chains of the
    same length is refused (exit 1): give the final stage output of one instead. On a terminal
    the summary is rich tables; otherwise `stage<TAB>key<TAB>value` lines (numbers without
    separators; `report` lines are about the whole report).
    """
    from nordpipe.report import ReportError, collect, render_html, render_terminal, write_plain

    try:
        data = collect(root)
    except ReportError as err:
        err_console.print(f"[bold red]nordpipe: error:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from err
    path = html or os.path.join(root, "report.html")
    render_html(data, path)
    data["html"] = os.path.abspath(path)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif console.is_terminal:
        render_terminal(data, console)
        console.print(f"HTML report: {path}", highlight=False, soft_wrap=True)
    else:
        write_plain(data, sys.stdout)
        sys.stdout.write(f"report\thtml\t{data['html']}\n")


@app.command("status")
def status_command(
    output: Annotated[str, typer.Argument(help="A stage's OUTPUT folder, or a pipeline ROOT (its latest batch's stages).")],
) -> None:
    """Show a stage run's progress (tasks completed, whether the run is complete) and its stats,
    e.g. after --executor slurm --no-wait; for a pipeline ROOT, every stage of its latest batch.
    On Slurm, per phase: tasks done/total and the job id, then the failed tasks with their log
    files, read from the files the jobs write (whether or not the submitting process is alive).
    Exits 0 when the run (every stage of the batch) is complete, else 1."""
    from nordpipe.layout import OutputLayout

    if os.path.isdir(os.path.join(output, "batches")) and OutputLayout.of(output).run() is None:
        batches = sorted(d for d in os.listdir(os.path.join(output, "batches")) if d.isdigit())
        if not batches:
            err_console.print(f"nordpipe: error: {output} holds no batch yet", highlight=False)
            raise typer.Exit(1)
        base = os.path.join(output, "batches", batches[-1])
        folders = [os.path.join(base, "ingest", d) for d in sorted(os.listdir(os.path.join(base, "ingest")))] \
            if os.path.isdir(os.path.join(base, "ingest")) else []
        folders += [os.path.join(base, d) for d in sorted(os.listdir(base)) if d[:2].isdigit() and "-" in d]
        sys.stdout.write(f"batch\tbatch\t{batches[-1]}\n")
        complete = [_stage_status(folder) for folder in folders]
        raise typer.Exit(0 if folders and all(complete) else 1)
    if OutputLayout.of(output).run() is None and not os.path.exists(OutputLayout.of(output).slurm_record):
        err_console.print(f"nordpipe: error: {output} holds no nordpipe run", highlight=False)
        raise typer.Exit(1)
    raise typer.Exit(0 if _stage_status(output) else 1)


def _stage_status(output: str) -> bool:
    """Write one stage output's ``stage<TAB>key<TAB>value`` lines; True when it is complete."""
    from nordpipe.layout import OutputLayout
    from nordpipe.runner.slurm import progress

    layout = OutputLayout.of(output)
    run = layout.run() or {}
    completions = os.path.join(layout.datatrove, "completions")
    done = len(os.listdir(completions)) if os.path.isdir(completions) else 0
    completed = layout.completed()
    slurm_rows = progress(output)
    stage, tasks = run.get("stage"), run.get("tasks")
    if slurm_rows:
        submitted = layout.read_json(layout.slurm_record)
        stage, tasks = stage or submitted.get("stage"), tasks or submitted.get("tasks")
    # stage<TAB>key<TAB>value, as every plain-text summary (README).
    rows: list[tuple[str, object]] = [("output", os.path.abspath(output)), ("tasks_complete", done),
                                      ("tasks", tasks), ("complete", "yes" if completed is not None else "no")]
    rows += slurm_rows
    if os.path.exists(layout.stats):
        stats = layout.read_json(layout.stats)
        rows += [(key, stats.get(key, 0)) for key in ("documents_in", "documents_out", "removed_total", "quarantined_total")]
    for key, value in rows:
        sys.stdout.write(f"{stage}\t{key}\t{value}\n")
    return completed is not None
