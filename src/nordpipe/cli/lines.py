"""``nordpipe dedup lines``: remove lines seen earlier in the corpus or in earlier runs."""

from __future__ import annotations

from typing import Annotated

import typer

from nordpipe.cli.app import dedup_app
from nordpipe.cli.common import (
    RUN_OPTIONS,
    InputArg,
    JsonOpt,
    KeepGenerationsOpt,
    OutputArg,
    RerunSeenOpt,
    finish,
    stage_command,
    with_run_options,
)
from nordpipe.runner import RunOptions
from nordpipe.state import DEFAULT_KEEP_GENERATIONS

FILTER = "Filter (fixed when the state is created; default: the state's, else shown)"
LINES = "Which lines count (fixed when the state is created; default: the state's, else shown)"


@dedup_app.command("lines")
@stage_command
@with_run_options()
def lines_command(
    input_path: InputArg,
    output_path: OutputArg,
    state: Annotated[str, typer.Option("--state", help="State folder: the Bloom filter of every earlier run. Created if missing; updated only when the run succeeds.")],
    expected_lines: Annotated[int | None, typer.Option("--expected-lines", min=1, help="Distinct lines the filter is sized for, over all runs. [default: 100000000]", rich_help_panel=FILTER)] = None,
    fpr: Annotated[float | None, typer.Option("--fpr", help="Target false-positive rate at --expected-lines lines. [default: 1e-6]", rich_help_panel=FILTER)] = None,
    partitions: Annotated[int | None, typer.Option("--partitions", min=1, help="Parts of the hash space, each with one owner task. [default: enough for 4 MiB parts]", rich_help_panel=FILTER)] = None,
    min_line_chars: Annotated[int | None, typer.Option("--min-line-chars", min=0, help="Ignore lines shorter than this (after normalization). [default: 10]", rich_help_panel=LINES)] = None,
    normalize_whitespace: Annotated[bool | None, typer.Option("--normalize-whitespace/--exact-whitespace", help="Collapse spaces and tabs and strip lines before comparing. [default: normalize]", rich_help_panel=LINES)] = None,
    lowercase: Annotated[bool | None, typer.Option("--ignore-case/--match-case", help="Compare lines case-insensitively. [default: match case]", rich_help_panel=LINES)] = None,
    normalize_digits: Annotated[bool | None, typer.Option("--ignore-digits/--match-digits", help="Compare lines with every digit read as 0. [default: match digits]", rich_help_panel=LINES)] = None,
    exempt_source: Annotated[list[str] | None, typer.Option("--exempt-source", help="Leave documents of this source alone (repeatable), e.g. legal texts.")] = None,
    rerun_seen: RerunSeenOpt = False,
    keep_generations: KeepGenerationsOpt = DEFAULT_KEEP_GENERATIONS,
    options: RunOptions = RUN_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Remove lines seen earlier in INPUT or in any earlier run with the same --state (menus, cookie notices, ...).

    "Earlier" means input file order, then document order; results do not depend on --tasks.

    Blank lines and lines shorter than --min-line-chars are kept. Documents left empty are removed (line_dedup:empty).

    The summary gives lines and characters removed, documents emptied and the filter's estimated false-positive rate.

    The state is updated only when the run succeeds, as a new generation (the last --keep-generations
    are kept: `nordpipe state show/rollback`); a killed run resumes when rerun. Input files the state
    has seen already (same content) are refused unless --rerun-seen.
    """
    from nordpipe.lines import run_line_dedup

    if fpr is not None and not 0 < fpr < 1:
        raise typer.BadParameter("must be between 0 and 1 (exclusive)", param_hint="--fpr")
    config = {
        "expected_lines": expected_lines,
        "fpr": fpr,
        "partitions": partitions,
        "min_line_chars": min_line_chars,
        "normalize_whitespace": normalize_whitespace,
        "lowercase": lowercase,
        "normalize_digits": normalize_digits,
    }
    stats = run_line_dedup(input_path, output_path, state, config, options, exempt_source or (),
                           rerun_seen=rerun_seen, keep_generations=keep_generations)
    finish(stats, strict=options.strict, as_json=as_json)
