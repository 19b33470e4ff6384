"""``nordpipe state``: inspect and roll back the persistent state of line dedup and MinHash.

``show`` lists the kept generations of a ``dedup lines --state`` folder or a ``dedup docs
--index`` folder (current one marked) with the runs each added; ``rollback --to G`` makes a kept
generation current again, under the state's lock, so that a night's run can be redone. See
``nordpipe.state`` for the on-disk layout and rules.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from nordpipe.cli.app import CONTEXT, app
from nordpipe.cli.common import console, stage_command

state_app = typer.Typer(help="Inspect and roll back the persistent state of dedup lines (--state) and dedup docs (--index).",
                        no_args_is_help=True, context_settings=CONTEXT)
app.add_typer(state_app, name="state")

StateArg = Annotated[str, typer.Argument(metavar="STATE", help="A `dedup lines --state` or `dedup docs --index` folder.")]


def _rows(directory: str) -> tuple[Any, list[dict[str, Any]]]:
    from nordpipe.state import open_state

    store = open_state(directory)
    current = store.current().number
    rows = []
    for generation in store.generations():
        added = [run for run in generation.runs if run.get("generation") == generation.number]
        rows.append({
            "generation": generation.number,
            "current": generation.number == current,
            "parent": generation.record.get("parent"),
            "created": generation.record.get("created"),
            "runs": len(generation.runs),
            "input_files": sum(len(run.get("inputs", run.get("files", []))) for run in generation.runs),
            "added_by": [{"output": run.get("output"), "input": run.get("input"), "finished": run.get("finished")}
                         for run in added],
        })
    return store, rows


@state_app.command("show")
@stage_command
def show_command(
    state: StateArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the generations as JSON.")] = False,
) -> None:
    """List the kept generations of STATE (the current one marked) and the run that added each."""
    store, rows = _rows(state)
    if as_json:
        sys.stdout.write(json.dumps({"state": store.directory, "kind": store.kind, "generations": rows}, indent=2) + "\n")
        return
    if console.is_terminal:
        table = Table(title=f"{store.kind} state {store.directory}")
        for column in ("gen", "current", "parent", "created", "runs", "input files", "added by (output)"):
            table.add_column(column)
        for row in rows:
            table.add_row(str(row["generation"]), "*" if row["current"] else "", str(row["parent"]), str(row["created"]),
                          str(row["runs"]), str(row["input_files"]), ", ".join(str(r["output"]) for r in row["added_by"]))
        console.print(table)
        return
    for row in rows:
        added = ",".join(str(r["output"]) for r in row["added_by"])
        sys.stdout.write(f"generation\t{row['generation']}\t{'current' if row['current'] else '-'}\tparent={row['parent']}\t"
                         f"created={row['created']}\truns={row['runs']}\tinput_files={row['input_files']}\tadded_by={added}\n")


@state_app.command("rollback")
@stage_command
def rollback_command(
    state: StateArg,
    to: Annotated[int, typer.Option("--to", min=1, help="The generation to make current (see `nordpipe state show`).")],
) -> None:
    """Make generation --to of STATE current again (e.g. to redo a night's run whose output was lost).

    Newer generations stay on disk until later runs prune them; the next run builds on --to. Runs
    that used a newer generation keep their outputs: rerun them after the rollback if needed.
    """
    from nordpipe.runner import OutputLock
    from nordpipe.state import open_state

    store = open_state(state)
    with OutputLock(store.directory):  # no run may use the state while it changes
        before = store.current().number
        generation = store.rollback(to)
    sys.stdout.write(f"rollback\t{store.kind}\t{store.directory}\tgeneration {before} -> {generation.number}\t"
                     f"runs={len(generation.runs)}\n")
