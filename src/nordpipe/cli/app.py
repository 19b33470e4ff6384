"""The typer applications that command modules attach their commands to."""

import sys
from typing import Annotated

import typer

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="nordpipe",
    help=(
        "Turn raw Nordic text into LLM pre-training data.\n\n"
        "Chain: ingest -> filter urls -> filter quality -> dedup lines -> dedup docs -> pii -> tokenize. "
        "Every stage reads INPUT (a dataset folder or a folder of jsonl.gz files) and writes OUTPUT, "
        "locally or on Slurm; rerunning resumes."
    ),
    no_args_is_help=True,
    context_settings=CONTEXT,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: "[default: ...]" must not be read as markup
)
filter_app = typer.Typer(help="Remove documents: by URL and consent, or by quality.", no_args_is_help=True, context_settings=CONTEXT)
dedup_app = typer.Typer(help="Deduplicate: repeated lines (Bloom filter) or near-duplicate documents (MinHash).", no_args_is_help=True, context_settings=CONTEXT)
robots_app = typer.Typer(help="Fetch and inspect robots.txt, ai.txt and tdmrep.json consent signals.", no_args_is_help=True, context_settings=CONTEXT)
blocklists_app = typer.Typer(help="Manage the URL blocklists.", no_args_is_help=True, context_settings=CONTEXT)
export_app = typer.Typer(help="Export downstream datasets (sentences, pairs) and the corpus for the Hugging Face hub (hf).", no_args_is_help=True, context_settings=CONTEXT)


def installed_version() -> str:
    """nordpipe's version as installed (``importlib.metadata``), the package's own without metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nordpipe")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        from nordpipe import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"nordpipe {installed_version()}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print nordpipe's version and exit.")] = False,
) -> None:
    pass


app.add_typer(filter_app, name="filter")
app.add_typer(dedup_app, name="dedup")
app.add_typer(robots_app, name="robots")
app.add_typer(blocklists_app, name="blocklists")
app.add_typer(export_app, name="export")
