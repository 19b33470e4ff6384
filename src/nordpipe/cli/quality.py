"""``nordpipe filter quality``."""

from __future__ import annotations

from typing import Annotated

import typer

from nordpipe.cli.app import filter_app
from nordpipe.cli.common import (
    RUN_OPTIONS,
    InputArg,
    JsonOpt,
    OutputArg,
    finish,
    stage_command,
    with_run_options,
)
from nordpipe.languages import option_help
from nordpipe.quality import run_quality
from nordpipe.runner import RunOptions


@filter_app.command("quality")
@stage_command
@with_run_options()
def quality_command(
    input_path: InputArg,
    output_path: OutputArg,
    languages: Annotated[str | None, typer.Option("--languages", help=f"Keep only these languages, comma-separated: {option_help()}. Unknown codes exit 2 [default: keep all, label only].")] = None,
    min_language_score: Annotated[str | None, typer.Option("--min-language-score", help="Minimum language confidence for kept documents: 0.6 for all, or da=0.3,nb=0.6 (no=0.5 sets nb and nn) [default: the settings' language_id.min_score].")] = None,
    settings: Annotated[str | None, typer.Option("--settings", help="YAML overriding the shipped per-language settings, e.g. 'da: {gopher_quality: {min_doc_words: 30}}' or 'all: {...}'.")] = None,
    default_language: Annotated[str, typer.Option("--default-language", help="Settings for documents whose language is unknown (no = Bokmål's).")] = "da",
    no_language_id: Annotated[bool, typer.Option("--no-language-id", help="Skip language identification; use the records' metadata.language (else --default-language).")] = False,
    options: RunOptions = RUN_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Keep good prose: language identification, then Gopher repetition, Gopher quality and C4 rules.

    Each document gets metadata.nordpipe.language and language_score (lingua; Bokmål, Nynorsk apart).

    Each is judged with its language's settings: FineWeb-2's Nordic thresholds and stop words.

    Languages: --languages no (nor, norwegian) keeps Bokmål and Nynorsk (nb+nn); nb or nn alone
    keeps one. Language id labels each Norwegian document nb or nn; only where it is off
    (--no-language-id) or finds no language does a source's metadata.language no choose the
    settings, Bokmål's.

    Removed documents carry their reason (e.g. gopher_quality:stop_words) and the deciding figures.

    C4 also drops lines without terminal punctuation, and cookie/privacy/terms notices.

    Example: nordpipe filter quality data/hestenettet out/quality --languages da,nb --keep-removed
    """
    try:
        stats = run_quality(
            input_path, output_path, options, languages=languages, min_language_scores=min_language_score,
            settings=settings, default_language=default_language, identify_language=not no_language_id,
        )
    except ValueError as err:
        hint = "--settings" if "settings" in str(err) else "--languages" if "language" in str(err) else None
        raise typer.BadParameter(str(err), param_hint=hint) from err
    finish(stats, strict=options.strict, as_json=as_json)
