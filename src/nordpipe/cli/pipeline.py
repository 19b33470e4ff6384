"""``nordpipe run``, ``nordpipe report`` and ``nordpipe status``."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from nordpipe.cli.app import app
from nordpipe.cli.common import console, err_console, stage_command


def command_params(command: list[str]) -> dict[str, str]:
    """Parameter names (underscored) of a nordpipe command, from the CLI's own definition."""
    from nordpipe.cli.main import app as main_app

    group = typer.main.get_command(main_app)
    ctx = typer.Context(group)
    node = group
    for part in command:
        # typer's groups and commands (duck-typed: typer vendors its own click)
        sub = node.get_command(ctx, part) if hasattr(node, "get_command") else None
        if sub is None:
            raise typer.BadParameter(f"nordpipe has no command {' '.join(command)!r}")
        node = sub
    # named by the long flag (``--license`` -> ``license``), not by the Python parameter
    # (``license_``): a pipeline's params are turned back into those flags
    params = {}
    for param in node.params:
        if param.param_type_name != "option" or not param.name:
            continue
        long_flags = [o for o in param.opts if o.startswith("--")]
        name = long_flags[0][2:].replace("-", "_") if long_flags else param.name
        params[name] = param.param_type_name
    return params


@app.command("run")
@stage_command
def run_command(
    pipeline_file: Annotated[str, typer.Argument(help="Pipeline YAML (e.g. pipelines/demo.yaml).")],
    root: Annotated[str | None, typer.Option("--root", help="Output root [default: the file's root:].")] = None,
    executor: Annotated[str | None, typer.Option("--executor", help="local or slurm [default: the file's executor:].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and exit.")] = False,
    start: Annotated[str | None, typer.Option("--from", help="First stage to run (ingest or a stage name).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last stage to run.")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="With slurm: submit the chained jobs and return.")] = False,
) -> None:
    """Run a whole pipeline: ingest the new raw files, then every stage, locally or as chained Slurm jobs.

    Runs are incremental: only raw files not ingested before are taken, as a new batch; persistent
    dedup state carries across batches; an interrupted batch is finished first. A second run on the
    same root while one is running exits 1 at once (safe under cron). Output lines are
    tab-separated: what happened, stage, folder, time.
    """
    from nordpipe.pipeline import PipelineConfigError, load_pipeline, run_pipeline

    try:
        pipeline = load_pipeline(pipeline_file, root=root, executor=executor, command_params=command_params)
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
    root: Annotated[str, typer.Argument(help="A pipeline root (from nordpipe run) or a stage output folder.")],
    html: Annotated[str | None, typer.Option("--html", help="Write a self-contained HTML report here [default: ROOT/report.html].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the collected figures as JSON.")] = False,
) -> None:
    """Summarize what every stage did: a terminal table and a self-contained HTML report with charts."""
    from nordpipe.report import collect, render_html, render_terminal

    data = collect(root)
    path = html or os.path.join(root, "report.html")
    render_html(data, path)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        render_terminal(data, console)
        console.print(f"HTML report: {path}", highlight=False)


@app.command("status")
def status_command(
    output: Annotated[str, typer.Argument(help="A stage's OUTPUT folder.")],
) -> None:
    """Show a stage run's progress (tasks completed) and its stats, e.g. after --executor slurm --no-wait."""
    state = os.path.join(output, ".nordpipe")
    run_file = os.path.join(state, "run.json")
    if not os.path.exists(run_file):
        err_console.print(f"nordpipe: error: {output} holds no nordpipe run", highlight=False)
        raise typer.Exit(1)
    with open(run_file) as handle:
        run = json.load(handle)
    completions = os.path.join(state, "datatrove", "completions")
    done = len(os.listdir(completions)) if os.path.isdir(completions) else 0
    sys.stdout.write(f"stage\t{run['stage']}\ntasks\t{done}/{run['tasks']} complete\n")
    stats_file = os.path.join(state, "stats.json")
    if os.path.exists(stats_file):
        with open(stats_file) as handle:
            stats = json.load(handle)
        for key in ("documents_in", "documents_out", "removed_total", "quarantined_total"):
            sys.stdout.write(f"{key}\t{stats.get(key, 0)}\n")
    raise typer.Exit(0 if done == run["tasks"] else 1)
