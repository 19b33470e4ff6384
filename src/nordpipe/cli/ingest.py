"""``nordpipe ingest``.

``--files-from FILE`` lists raw files or folders, one a line; a line
``PATH<TAB>OFFSET<TAB>LINE[<TAB>XXH3]`` reads an append-only file (uncompressed jsonl/ndjson) from
byte OFFSET, numbering its lines from LINE + 1 (as ``nordpipe run`` does for a file that has grown
since its last batch; XXH3 is the hash of the first OFFSET bytes as they were read, and the file is
read in full when they differ). After the run, a note on stderr names every raw file whose
incomplete last line was held back, or that was read in full because it changed in the middle.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from nordpipe.cli.app import app
from nordpipe.cli.common import (
    RUN_OPTIONS,
    JsonOpt,
    err_console,
    finish,
    stage_command,
    with_run_options,
)
from nordpipe.ingest import RAW_FORMATS, RAW_READS_FILE, IngestConfig, RawStart, ingest, parse_files_from_line
from nordpipe.layout import OutputLayout
from nordpipe.runner import RunOptions


@app.command("ingest")
@stage_command
@with_run_options(keep_removed=False)
def ingest_command(
    raw: Annotated[list[str] | None, typer.Argument(help="Raw files or folders: jsonl/json (.gz/.zst), csv/tsv, parquet, folders of .txt/.md, WARC/WET.")] = None,
    files_from: Annotated[str | None, typer.Option("--files-from", help="A file listing more raw files or folders, one per line (for lists too long for a command line); a line PATH<TAB>OFFSET<TAB>LINE[<TAB>XXH3] reads an uncompressed jsonl file from byte OFFSET, its lines numbered from LINE + 1.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset name (the output folder and every record's source). Required unless --config names it.")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Output root: writes ROOT/NAME/documents/ and ROOT/NAME/README.md.")] = "data",
    config: Annotated[str | None, typer.Option("--config", "-c", help="Dataset config YAML [default: pipelines/datasets/NAME.yaml if it exists].")] = None,
    text_field: Annotated[str | None, typer.Option("--text-field", help="Field holding the text; comma-separate several to join them.")] = None,
    id_field: Annotated[str | None, typer.Option("--id-field", help="Field holding a unique id [default: an id made from the file and line].")] = None,
    id_template: Annotated[str | None, typer.Option("--id-template", help="Id template with {dataset}, {file}, {line}.")] = None,
    created_field: Annotated[str | None, typer.Option("--created-field", help="Field with the creation date, list of dates or range.")] = None,
    created: Annotated[str | None, typer.Option("--created", help="Creation range for all records: 'YYYY-MM-DD, YYYY-MM-DD', a date or a year.")] = None,
    added_field: Annotated[str | None, typer.Option("--added-field", help="Field with the date the record was added.")] = None,
    added: Annotated[str | None, typer.Option("--added", help="Added date for all records [default: the day of the first run].")] = None,
    url_field: Annotated[str | None, typer.Option("--url-field", help="Field copied to metadata.url.")] = None,
    language: Annotated[str | None, typer.Option("--language", help="Languages, comma-separated ISO codes (da,nb,nn,sv,is,fo,fi,en; no = Norwegian, both written forms; aliases as for filter quality --languages), listed in the datasheet.")] = None,
    license_: Annotated[str | None, typer.Option("--license", help="License id (e.g. cc0-1.0, cc-by-4.0, other).")] = None,
    license_name: Annotated[str | None, typer.Option("--license-name", help="License name, required with --license other.")] = None,
    pretty_name: Annotated[str | None, typer.Option("--pretty-name", help="Human-readable dataset name for the datasheet.")] = None,
    raw_format: Annotated[str | None, typer.Option("--format", help=f"Force the raw format: {', '.join(RAW_FORMATS)}.")] = None,
    max_chars: Annotated[int | None, typer.Option("--max-chars", help="Quarantine texts longer than this [default: 10,000,000].")] = None,
    shard_mb: Annotated[int | None, typer.Option("--shard-mb", min=1, help="Start a new output shard after this many MB of uncompressed jsonl.")] = None,
    options: RunOptions = RUN_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Turn raw dumps into the standardized format (ROOT/NAME/documents/*.jsonl.gz) with a datasheet.

    Every record is validated; bad records go to ROOT/NAME/quarantine/ with file, line and reason,
    and the rest is processed. Rerunning resumes an interrupted ingest.

    Example: nordpipe ingest dumps/*.jsonl.gz --dataset hestenettet --output data --created-field date
    """
    overrides = {
        "dataset": dataset,
        "text_field": text_field.split(",") if text_field and "," in text_field else text_field,
        "id_field": id_field,
        "id_template": id_template,
        "created_field": created_field,
        "created": created,
        "added_field": added_field,
        "added": added,
        "url_field": url_field,
        "language": language,
        "license": license_,
        "license_name": license_name,
        "pretty_name": pretty_name,
        "format": raw_format,
        "max_chars": max_chars,
    }
    if config is None and dataset and os.path.exists(os.path.join("pipelines", "datasets", f"{dataset}.yaml")):
        config = os.path.join("pipelines", "datasets", f"{dataset}.yaml")
    if config is not None:
        cfg = IngestConfig.from_yaml(config, **overrides)
    elif dataset is None:
        raise typer.BadParameter("give --dataset NAME or --config FILE", param_hint="--dataset")
    else:
        cfg = IngestConfig(**{k: v for k, v in overrides.items() if v is not None})
    options.max_shard_bytes = shard_mb * 1_000_000 if shard_mb else None
    inputs = list(raw or [])
    starts: dict[str, RawStart] = {}
    if files_from is not None:
        inputs += _read_files_from(files_from, starts)
    if not inputs:
        raise typer.BadParameter("give raw files or folders, or --files-from FILE", param_hint="RAW")
    stats = ingest(inputs, cfg, output, options, starts=starts)
    if stats:
        _note_raw_reads(os.path.join(output.rstrip("/"), cfg.dataset))
    finish(stats, strict=options.strict, as_json=as_json)


def _read_files_from(path: str, starts: dict[str, RawStart]) -> list[str]:
    """The raw paths of a ``--files-from`` list; start positions go to ``starts``."""
    inputs = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    raw, start = parse_files_from_line(line)
                except ValueError as err:
                    raise typer.BadParameter(f"{path}:{number}: {err}", param_hint="--files-from") from None
                if start is not None:
                    if raw in starts:
                        raise typer.BadParameter(f"{path}:{number}: {raw} has two start positions", param_hint="--files-from")
                    starts[raw] = start
                inputs.append(raw)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--files-from") from None
    return inputs


def _note_raw_reads(dataset_dir: str) -> None:
    """Name, on stderr, raw files that were not read to their end or were read again in full."""
    try:
        with open(OutputLayout.of(dataset_dir).state_path(RAW_READS_FILE), encoding="utf-8") as handle:
            reads = json.load(handle)
    except (OSError, ValueError):
        return
    for path, read in sorted(reads.items()):
        if read.get("restarted"):
            err_console.print(f"nordpipe: note: {path}: read in full, not from its start position: {read['restarted']}",
                              highlight=False, markup=False, soft_wrap=True)
        held = int(read.get("size", 0)) - int(read.get("offset", 0))
        if held > 0:
            err_console.print(f"nordpipe: note: {path}: its last {held:,} bytes are an incomplete line (no newline yet) "
                              f"and were not read; to read them once the line is complete: --files-from with the line "
                              f"'{path}\\t{read['offset']}\\t{read['lines']}'", highlight=False, markup=False, soft_wrap=True)
