"""``nordpipe export sentences``, ``export pairs`` and ``export hf``: thin wrappers of ``nordpipe.export``
and ``nordpipe.publish``."""

from __future__ import annotations

from typing import Annotated

import typer

from nordpipe.cli.app import export_app
from nordpipe.cli.common import InputArg, JsonOpt, StrictOpt, finish, stage_command
from nordpipe.export import FORMATS, LANGUAGES, PairExport, SentenceExport

ExportOutputArg = Annotated[
    str, typer.Argument(help="Output folder: data/ (parquet), jsonl/, quarantine/, .nordpipe/stats.json.")
]
FormatOpt = Annotated[
    str, typer.Option("--format", help="Output formats: parquet, jsonl or both.", case_sensitive=False)
]
RowsOpt = Annotated[int, typer.Option("--rows-per-shard", min=1, help="Rows per output file.")]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of the split hash: another seed draws another held-out set.")
]


def _formats(value: str) -> tuple[str, ...]:
    value = value.lower()
    if value == "both":
        return FORMATS
    if value not in FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of parquet, jsonl, both", param_hint="--format")
    return (value,)


@export_app.command("sentences")
@stage_command
def sentences_command(
    input_path: InputArg,
    output: ExportOutputArg,
    validation_ratio: Annotated[
        float | None,
        typer.Option(
            "--validation-ratio", min=0.0, max=1.0,
            help="Share of sentences in the validation split, by hash (stable as the corpus grows) \\[default: 0.01].",
        ),
    ] = None,
    validation_count: Annotated[
        int | None,
        typer.Option(
            "--validation-count", min=0,
            help="Exactly this many validation sentences instead of a ratio.",
        ),
    ] = None,
    split_by: Annotated[
        str,
        typer.Option(
            "--split-by",
            help="Split unit: sentence, or document (a document's sentences stay together; ratio only).",
        ),
    ] = "sentence",
    min_chars: Annotated[
        int,
        typer.Option(
            "--min-chars", min=1,
            help="Drop sentences shorter than this (characters).",
        ),
    ] = 20,
    max_chars: Annotated[
        int,
        typer.Option(
            "--max-chars", min=1,
            help="Drop sentences longer than this (characters).",
        ),
    ] = 1000,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            help=(
                f"Abbreviation list for all documents: {', '.join(LANGUAGES)} "
                "\\[default: each document's metadata.language, else all]."
            ),
        ),
    ] = None,
    output_format: FormatOpt = "parquet",
    rows_per_shard: RowsOpt = 1_000_000,
    partitions: Annotated[
        int,
        typer.Option(
            "--partitions", min=1,
            help="Hash partitions for dedup; peak memory is about 3x (sentence text / partitions).",
        ),
    ] = 64,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1,
            help="Processes splitting sentences (output does not depend on it).",
        ),
    ] = 1,
    seed: SeedOpt = 0,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Unique sentences with a train/validation split, for masked-language-model training.

    Splits every document into sentences (rule-based, Nordic abbreviations), drops sentences
    outside [--min-chars, --max-chars], keeps the first occurrence of each distinct sentence and
    writes OUTPUT/data/{train,validation}-NNNNN-of-MMMMM.parquet with text, document_id, source,
    sentence_index and occurrences. Rerunning gives byte-identical files; a sentence's split
    depends only on its own hash.

    Example: nordpipe export sentences data/cleaned exports/mlm --validation-count 5000 --format both
    """
    if validation_ratio is not None and validation_count is not None:
        raise typer.BadParameter(
            "give --validation-ratio or --validation-count, not both", param_hint="--validation-count"
        )
    if split_by not in ("sentence", "document"):
        raise typer.BadParameter(f"{split_by!r} is not one of sentence, document", param_hint="--split-by")
    if validation_count is not None and split_by != "sentence":
        raise typer.BadParameter("--validation-count needs --split-by sentence", param_hint="--validation-count")
    if min_chars > max_chars:
        raise typer.BadParameter("--min-chars is larger than --max-chars", param_hint="--min-chars")
    if language is not None and language not in LANGUAGES:
        raise typer.BadParameter(f"{language!r} is not one of {', '.join(LANGUAGES)}", param_hint="--language")
    export = SentenceExport(
        validation_ratio=0.01 if validation_ratio is None else validation_ratio,
        validation_count=validation_count,
        split_by=split_by,
        min_chars=min_chars,
        max_chars=max_chars,
        language=language,
        formats=_formats(output_format),
        rows_per_shard=rows_per_shard,
        partitions=partitions,
        seed=seed,
        workers=workers,
    )
    finish(export.run(input_path, output), strict=strict, as_json=as_json)


@export_app.command("pairs")
@stage_command
def pairs_command(
    input_path: InputArg,
    output: ExportOutputArg,
    anchor: Annotated[
        str,
        typer.Option(
            "--anchor",
            help="Field of the anchor/query, e.g. title (metadata keys by name; dotted paths allowed).",
        ),
    ],
    positive: Annotated[str, typer.Option("--positive", help="Field of the positive/document, e.g. text or ingress.")],
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by",
            help="Field grouping documents that must share a split, e.g. url \\[default: id].",
        ),
    ] = "id",
    group_depth: Annotated[
        int | None,
        typer.Option(
            "--group-depth", min=0,
            help="For URL group keys: keep host and the first N path segments \\[default: whole path].",
        ),
    ] = None,
    test_ratio: Annotated[
        float,
        typer.Option(
            "--test-ratio", min=0.0, max=1.0,
            help="Share of groups in the test split, by hash of the group key.",
        ),
    ] = 0.1,
    min_anchor_chars: Annotated[
        int,
        typer.Option(
            "--min-anchor-chars", min=1,
            help="Drop pairs whose anchor is shorter.",
        ),
    ] = 1,
    min_positive_chars: Annotated[
        int,
        typer.Option(
            "--min-positive-chars", min=1,
            help="Drop pairs whose positive is shorter.",
        ),
    ] = 1,
    corpus: Annotated[
        str,
        typer.Option(
            "--corpus",
            help="IR corpus: test (test positives) or all (train positives too, as distractors).",
        ),
    ] = "test",
    output_format: FormatOpt = "parquet",
    rows_per_shard: RowsOpt = 1_000_000,
    seed: SeedOpt = 0,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """(anchor, positive) pairs for embedding fine-tuning, with a grouped train/test split.

    Takes the two fields of every document (HTML stripped by lxml's parser), drops empty and
    duplicate pairs, and assigns whole groups (--group-by, e.g. all pages under one URL path with
    --group-by url --group-depth 1) to train or test. Writes OUTPUT/data/{train,test}-*.parquet
    (anchor, positive, document_id, group, query_id, corpus_id) and OUTPUT/ir/{queries,corpus,
    relevant_docs}.parquet for sentence-transformers' InformationRetrievalEvaluator
    (nordpipe.export.load_ir_evaluation(OUTPUT) returns its three dicts). Train on the anchor
    and positive columns only.

    Example: nordpipe export pairs data/site exports/pairs --anchor title --positive text --group-by url --group-depth 1
    """
    if anchor == positive:
        raise typer.BadParameter("--anchor and --positive name the same field", param_hint="--positive")
    if corpus not in ("test", "all"):
        raise typer.BadParameter(f"{corpus!r} is not one of test, all", param_hint="--corpus")
    export = PairExport(
        anchor=anchor,
        positive=positive,
        group_by=group_by,
        group_depth=group_depth,
        test_ratio=test_ratio,
        min_anchor_chars=min_anchor_chars,
        min_positive_chars=min_positive_chars,
        corpus=corpus,
        formats=_formats(output_format),
        rows_per_shard=rows_per_shard,
        seed=seed,
    )
    finish(export.run(input_path, output), strict=strict, as_json=as_json)


@export_app.command("hf")
@stage_command
def hf_command(
    input_path: Annotated[str, typer.Argument(help=(
        "Input: the final stage output (a dataset folder, a folder of jsonl.gz files, a file, an fsspec URL) "
        "or a pipeline root (nordpipe run --root ROOT): its finished batches' final documents."))],
    output: Annotated[str, typer.Argument(help="Output folder: README.md (dataset card), data/SOURCE/*.parquet, quarantine/.")],
    tokenizer: Annotated[str | None, typer.Option(
        "--tokenizer", "-t",
        help="Tokenizer of token_count, as for nordpipe tokenize \\[default: mistral-7b-v0.1, shipped].")] = None,
    row_group_size: Annotated[str, typer.Option(
        "--row-group-size", help="Text bytes per parquet row group (what a streaming reader holds).")] = "32MiB",
    shard_size: Annotated[str, typer.Option("--shard-size", help="Text bytes per parquet file.")] = "512MiB",
    pretty_name: Annotated[str | None, typer.Option(
        "--pretty-name", help="The card's pretty_name \\[default: Nordic pre-training corpus (nordpipe)].")] = None,
    datasheets: Annotated[str | None, typer.Option(
        "--datasheets", help="Folder with NAME/README.md datasheets (default: found through the stages' run records).")] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The final corpus as a Hugging Face dataset: parquet per source and a dataset card.

    Writes OUTPUT/data/SOURCE/train-NNNNN-of-MMMMM.parquet (id, text, source, added, created,
    token_count; zstd, row groups of --row-group-size) and OUTPUT/README.md whose YAML lists a
    config per source, license ids and languages (from the datasets' datasheets), size category
    and token counts. load_dataset(OUTPUT) reads every source, load_dataset(OUTPUT, SOURCE) one.
    Rerunning gives byte-identical files.

    INPUT may be a pipeline root (nordpipe run pipelines/demo.yaml --root ROOT): the corpus is then every
    batch marked done in ROOT/batches/NNNN/batch.json, each batch's last stage that writes
    documents (pii before tokenize), in batch then file order; unfinished batches are left out
    and a root without a finished batch exits 1. Datasheets come from ROOT/datasets/ and the
    batches' ingest folders.

    Example: nordpipe export hf work/pii work/hf --pretty-name "Nordic corpus"
    Example: nordpipe export hf runs/demo work/hf
    """
    from nordpipe.publish import HFExport
    from nordpipe.tokenize import parse_size

    sizes = {}
    for name, value in (("--row-group-size", row_group_size), ("--shard-size", shard_size)):
        try:
            size = parse_size(value)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint=name) from err
        if not size:
            raise typer.BadParameter("must be a positive size", param_hint=name)
        sizes[name] = size
    export = HFExport(tokenizer=tokenizer, row_group_bytes=sizes["--row-group-size"], shard_bytes=sizes["--shard-size"],
                      pretty_name=pretty_name, datasheets=datasheets)
    finish(export.run(input_path, output), strict=strict, as_json=as_json)
