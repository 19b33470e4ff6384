"""The typer applications that command modules attach their commands to, loaded lazily.

Every command lives in a module of ``nordpipe.cli`` that attaches it to one of the apps below
with a decorator. Importing all of them up front cost ~1.1 s and ~90 MB of RSS on every call
(pyarrow, polars, presidio, the PII name lists, trafilatura ...), so ``nordpipe --help`` peaked
at 106 MB and every stage's process tree carried the imports of all the others (measured,
``benchmarks/results/urls.md``). Instead ``COMMANDS`` names each command's module and its
summary line; the click groups (``LazyGroup``) list commands from that table and import a
command's module only when the command itself is resolved (run, its own ``--help``, or read by
``nordpipe.cli.pipeline.command_params``). ``nordpipe --help`` therefore imports typer alone,
and ``nordpipe filter urls`` imports ``nordpipe.cli.urls`` and what it uses.

Invariant (``tests/test_cli_lazy.py``): ``COMMANDS`` lists exactly the commands the modules
register, in help order, each with the summary click would make from the command's own help,
so the listing is the one an eager import would print.
"""

import importlib
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a command is defined, and its summary line (click's first sentence of its help)."""

    module: str
    summary: str


# group ("" = top level) -> command -> LazyCommand, in the order `--help` lists them
COMMANDS: dict[str, dict[str, LazyCommand]] = {
    "": {
        "ingest": LazyCommand("nordpipe.cli.ingest", "Turn raw dumps into the standardized format (ROOT/NAME/documents/*.jsonl.gz) with a datasheet."),
        "validate": LazyCommand("nordpipe.cli.validate", "Check every record of every file against the standardized format, and the datasheets."),
        "sample": LazyCommand("nordpipe.cli.sample", "Write seeded sample raw dumps of five Nordic datasets in five raw formats."),
        "pii": LazyCommand("nordpipe.cli.pii", "Replace personal data in Danish, Norwegian, Swedish, Finnish and Icelandic text."),
        "tokenize": LazyCommand("nordpipe.cli.tokenize", "Tokenize documents into training shards, with a provenance index beside every shard."),
        "trace": LazyCommand("nordpipe.cli.tokenize", "Print the document that token N of shard S came from: id, source, url, input line, text."),
        "run": LazyCommand("nordpipe.cli.pipeline", "Run a whole pipeline: ingest the new raw files, then every stage, locally or as chained Slurm jobs."),
        "report": LazyCommand("nordpipe.cli.pipeline", "Summarize one chain (ingest -> ..."),
        "status": LazyCommand("nordpipe.cli.pipeline", "Show a stage run's progress (tasks completed, whether the run is complete) and its stats, e.g."),
        "stages": LazyCommand("nordpipe.cli.stages", "List the stages (one name in the CLI, pipeline files, --from/--until, stats and the report) and the parameters each takes in a pipeline file."),
    },
    "filter": {
        "quality": LazyCommand("nordpipe.cli.quality", "Keep good prose: language identification, then Gopher repetition, Gopher quality and C4 rules."),
        "urls": LazyCommand("nordpipe.cli.urls", "Remove documents by metadata.url: blocklisted domains and URLs, banned words, and (with --consent-cache) sites that refuse AI training in robots.txt, ai.txt or tdmrep.json (or answer 401/403 for robots.txt)."),
    },
    "dedup": {
        "lines": LazyCommand("nordpipe.cli.lines", "Remove lines seen earlier in INPUT or in any earlier run with the same --state (menus, cookie notices, ...)."),
        "docs": LazyCommand("nordpipe.cli.minhash", "Remove near-duplicate documents (syndicated news, mirrored and templated pages)."),
    },
    "robots": {
        "fetch": LazyCommand("nordpipe.cli.urls", "Fetch robots.txt, ai.txt and /.well-known/tdmrep.json of every host in INPUT into a SQLite cache."),
    },
    "blocklists": {
        "update": LazyCommand("nordpipe.cli.urls", "Download the public category lists named in the sources file into the local store, with SHA-256 checksums and the time of the download in <store>/manifest.json."),
    },
    "export": {
        "sentences": LazyCommand("nordpipe.cli.export", "Unique sentences with a train/validation split, for masked-language-model training."),
        "pairs": LazyCommand("nordpipe.cli.export", "(anchor, positive) pairs for embedding fine-tuning, with a grouped train/test split."),
        "hf": LazyCommand("nordpipe.cli.export", "The final corpus as a Hugging Face dataset: parquet per source and a dataset card."),
    },
}
# groups that a command module adds to the top level itself (``app.add_typer`` on import)
LAZY_GROUPS: dict[str, LazyCommand] = {
    "state": LazyCommand("nordpipe.cli.state", "Inspect and roll back the persistent state of dedup lines (--state) and dedup docs (--index)."),
}
_APPS: dict[str, typer.Typer] = {}  # group -> its typer app, filled below


class LazyGroup(TyperGroup):
    """A typer group whose commands come from ``COMMANDS`` and are imported on first use."""

    group = ""  # key of ``COMMANDS``; set by ``_lazy_group``

    def _lazy(self) -> dict[str, LazyCommand]:
        return {**COMMANDS[self.group], **(LAZY_GROUPS if self.group == "" else {})}

    def list_commands(self, ctx: Any) -> list[str]:
        names = [name for name in COMMANDS[self.group]]
        # loaded groups (filter, dedup, ...) after the commands, as typer orders them
        groups = [name for name, cmd in self.commands.items() if _is_group(cmd) and name not in LAZY_GROUPS]
        lazy_groups = list(LAZY_GROUPS) if self.group == "" else []
        extra = [name for name in self.commands if name not in names and name not in groups and name not in lazy_groups]
        return [*names, *extra, *groups, *lazy_groups]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        lazy = self._lazy().get(cmd_name)
        if command is None and lazy is not None:
            importlib.import_module(lazy.module)
            command = self._build(cmd_name)
            if command is None:
                raise RuntimeError(f"{lazy.module} does not define `nordpipe {self.group} {cmd_name}`".replace("  ", " "))
            self.commands[cmd_name] = command
        return command

    def _build(self, name: str) -> Any:
        # typer hands the root app's settings down to every group it builds: do the same
        source, root = _APPS[self.group], _APPS[""]
        short, markup = root.pretty_exceptions_short, self.rich_markup_mode
        for info in source.registered_commands:
            if (info.name or typer.main.get_command_name(info.callback.__name__)) == name:  # type: ignore[union-attr]
                return typer.main.get_command_from_info(info, pretty_exceptions_short=short, rich_markup_mode=markup)
        for group_info in source.registered_groups:
            if group_info.name == name:
                return typer.main.get_group_from_info(group_info, pretty_exceptions_short=short,
                                                      rich_markup_mode=markup, suggest_commands=root.suggest_commands)
        return None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Like click's, with the summaries of ``COMMANDS`` for commands not imported yet."""
        from typer._click.utils import make_default_short_help

        rows = []
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        for name in names:
            command = self.commands.get(name)
            if command is not None:
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, make_default_short_help(self._lazy()[name].summary, limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return self._click_resolve_command(ctx, args)
        except typer._click.exceptions.UsageError as err:  # "Did you mean" over every command, loaded or not
            from difflib import get_close_matches

            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if self.suggest_commands and matches:
                err.message = f"{err.message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"
            raise


def _is_group(command: Any) -> bool:
    return isinstance(command, TyperGroup)


def _lazy_group(group: str) -> type[LazyGroup]:
    return type(f"LazyGroup_{group or 'nordpipe'}", (LazyGroup,), {"group": group})

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
    cls=_lazy_group(""),
)
filter_app = typer.Typer(cls=_lazy_group("filter"), help="Remove documents: by URL and consent, or by quality.", no_args_is_help=True, context_settings=CONTEXT)
dedup_app = typer.Typer(cls=_lazy_group("dedup"), help="Deduplicate: repeated lines (Bloom filter) or near-duplicate documents (MinHash).", no_args_is_help=True, context_settings=CONTEXT)
robots_app = typer.Typer(cls=_lazy_group("robots"), help="Fetch and inspect robots.txt, ai.txt and tdmrep.json consent signals.", no_args_is_help=True, context_settings=CONTEXT)
blocklists_app = typer.Typer(cls=_lazy_group("blocklists"), help="Manage the URL blocklists.", no_args_is_help=True, context_settings=CONTEXT)
export_app = typer.Typer(cls=_lazy_group("export"), help="Export downstream datasets (sentences, pairs) and the corpus for the Hugging Face hub (hf).", no_args_is_help=True, context_settings=CONTEXT)


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
_APPS.update({"": app, "filter": filter_app, "dedup": dedup_app, "robots": robots_app, "blocklists": blocklists_app,
              "export": export_app})
