"""``nordpipe validate``: the command line of ``nordpipe.validate``.

Exit codes: 0 when every record of every file is valid (and every ingest dataset's datasheet
complete); 1 otherwise, including a missing path, a path without document files and a path
whose files hold no record: ``validate`` never passes on nothing. Path problems go to stderr
(and into the ``--json`` report), so stdout stays a per-file listing or pure JSON while a log
still shows why the run failed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from nordpipe.cli.app import app
from nordpipe.cli.common import console
from nordpipe.documents import DEFAULT_MAX_CHARS
from nordpipe.validate import validate_paths


@app.command("validate")
def validate_command(
    paths: Annotated[
        list[str],
        typer.Argument(help="Dataset folders, stage outputs (OUT of any stage), roots of either, or document files."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    no_datasheet: Annotated[bool, typer.Option("--no-datasheet", help="Do not check the datasheets (README.md).")] = False,
    max_chars: Annotated[
        int, typer.Option("--max-chars", min=1, help="Longest text accepted, in characters.")
    ] = DEFAULT_MAX_CHARS,
) -> None:
    """Check every record of every file against the standardized format, and the datasheets.

    Ingest datasets (ROOT/NAME with a datasheet) must have source == NAME and a complete
    datasheet; stage outputs (OUT/documents, may merge datasets) need neither. Ids must be
    unique per source. Reports each file with the line numbers and reasons of invalid records.
    Exit code 1 when anything is invalid or a path is missing or empty, 0 when all is well.
    """
    report = validate_paths(list(paths), check_datasheets=not no_datasheet, max_chars=max_chars)
    for problem in report.problems:
        sys.stderr.write(f"nordpipe validate: {problem}\n")
    legacy = report.object_metadata_files
    if legacy:
        sys.stderr.write(
            f"nordpipe validate: note: {len(legacy)} file(s) store metadata as an object (e.g. {legacy[0]}): valid, "
            "but files with different metadata do not load together in datasets/polars/duckdb; rerunning the "
            "stage writes metadata as a JSON string\n")
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    elif console.is_terminal:
        table = Table(title="nordpipe validate")
        table.add_column("file")
        table.add_column("records", justify="right")
        table.add_column("invalid", justify="right")
        for item in report.files:
            table.add_row(item.path, f"{item.records:,}", f"[red]{item.invalid:,}[/]" if item.invalid else "0")
        console.print(table)
        for item in report.files:
            for error in item.errors:
                console.print(f"{item.path}:{error['line']}: {error['reason']}", highlight=False, soft_wrap=True)
        for problem in report.datasheet_problems:
            console.print(f"[red]{problem}[/]", highlight=False, soft_wrap=True)
        console.print("[green]valid[/]" if report.ok else "[red]invalid[/]")
    else:
        for item in report.files:
            sys.stdout.write(f"{item.path}\trecords={item.records}\tinvalid={item.invalid}\n")
            for error in item.errors:
                sys.stdout.write(f"{item.path}:{error['line']}: {error['reason']}\n")
        for problem in report.datasheet_problems:
            sys.stdout.write(f"{problem}\n")
        sys.stdout.write("valid\n" if report.ok else "invalid\n")
    raise typer.Exit(0 if report.ok else 1)
