"""``nordpipe tokenize`` and ``nordpipe trace``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from nordpipe.cli.app import app
from nordpipe.cli.common import (
    RUN_OPTIONS,
    InputArg,
    JsonOpt,
    console,
    finish,
    stage_command,
    with_run_options,
)
from nordpipe.runner import RunOptions
from nordpipe.tokenize import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SEQUENCE_LENGTH,
    DEFAULT_TOKENIZER,
    FORMATS,
    TokenizeConfig,
    parse_size,
    run_tokenize,
)


@app.command("tokenize")
@stage_command
@with_run_options(keep_removed=False)
def tokenize_command(
    input_path: InputArg,
    output_path: Annotated[str, typer.Argument(help="Output folder (shards/, manifest.json, quarantine/, .nordpipe/).")],
    tokenizer: Annotated[str, typer.Option(
        "--tokenizer", "-t",
        help="mistral-7b-v0.1 (shipped in mistral-common, offline), a tokenizer.json, SentencePiece .model or "
        "tiktoken file, or a Hugging Face model name (from the local cache or the hub).")] = DEFAULT_TOKENIZER,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="megatron (.bin/.idx: Megatron-LM, NeMo), datatrove (.ds: nanotron) or mds (MosaicML: llm-foundry).")] = "megatron",
    bos: Annotated[bool | None, typer.Option(
        "--bos/--no-bos", help="Start every document with BOS (default: when the tokenizer has one).", show_default=False)] = None,
    eos: Annotated[bool | None, typer.Option(
        "--eos/--no-eos", help="End every document with EOS (default: when the tokenizer has one).", show_default=False)] = None,
    bos_token: Annotated[str | None, typer.Option("--bos-token", help="Name of the BOS token (tokenizer.json/tiktoken).")] = None,
    eos_token: Annotated[str | None, typer.Option("--eos-token", help="Name of the EOS token (tokenizer.json/tiktoken).")] = None,
    sequence_length: Annotated[int, typer.Option(
        "--sequence-length", min=1, help="MDS: tokens per packed sample.")] = DEFAULT_SEQUENCE_LENGTH,
    shard_size: Annotated[str | None, typer.Option(
        "--shard-size", help="Start a new shard after this many bytes, e.g. 512MiB (default: mds 128MiB, else one "
        "shard per input file).", show_default=False)] = None,
    shuffle: Annotated[bool, typer.Option("--shuffle", help="Shuffle the documents of each input file.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --shuffle (same seed, same output).")] = 0,
    mds_compression: Annotated[str, typer.Option("--mds-compression", help="MDS: zstd, zstd:<level> or none.")] = "zstd",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per batch-encode call.")] = DEFAULT_BATCH_SIZE,
    options: RunOptions = RUN_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Tokenize documents into training shards, with a provenance index beside every shard.

    Writes OUTPUT/shards/ (one shard series per input file: <stem>-00000.bin/.idx, .ds/.ds.index,
    or <stem>/shard.00000.mds.zstd with index.json), <shard>.provenance.parquet (document order ->
    id, source, url, language, token_offset, token_length) and OUTPUT/manifest.json (shards,
    tokens per source and language, tokenizer). The token dtype follows the vocabulary size
    (uint16 up to 65,536 ids). Rerunning resumes; find a token's document with `nordpipe trace`.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        max_shard_bytes = parse_size(shard_size)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--shard-size") from err
    compression = None if mds_compression.lower() in ("none", "") else mds_compression.lower()
    if compression and compression.split(":", 1)[0] != "zstd":
        raise typer.BadParameter(f"{mds_compression!r}: use zstd, zstd:<level> or none", param_hint="--mds-compression")
    config = TokenizeConfig(
        tokenizer=tokenizer,
        format=fmt,
        add_bos=bos,
        add_eos=eos,
        bos_token=bos_token,
        eos_token=eos_token,
        sequence_length=sequence_length,
        max_shard_bytes=max_shard_bytes,
        shuffle_seed=seed if shuffle else None,
        mds_compression=compression,
        batch_size=batch_size,
    )
    stats = run_tokenize(input_path, output_path, config, options)
    finish(stats, strict=options.strict, as_json=as_json)


@app.command("trace")
@stage_command
def trace_command(
    output_path: Annotated[str, typer.Argument(help="A `nordpipe tokenize` output folder (holds manifest.json).")],
    shard: Annotated[str, typer.Option("--shard", "-s", help="Shard name from the manifest (e.g. 00000-00000) or a shard file.")],
    token: Annotated[int, typer.Option("--token", "-n", min=0, help="Token position in the shard (0-based).")],
    no_text: Annotated[bool, typer.Option("--no-text", help="Print only where the document came from.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the document that token N of shard S came from: id, source, url, input line, text.

    The text is the tokenizer's decoding of the document's tokens. Exit code 1 when the shard or
    token does not exist.
    """
    from nordpipe.trace import trace_token

    result = trace_token(output_path, shard, token, with_text=not no_text)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    fields = [
        ("shard", result["shard"]),
        ("token", result["token"]),
        ("token id", f"{result['token_id']} {result['piece']!r}"),
        ("document", result["document"]),
        ("id", result["id"]),
        ("source", result["source"]),
        ("url", result["url"]),
        ("language", result["language"]),
        ("input", f"{result['input']} line {result['line']}"),
        ("tokens", f"{result['token_offset']}..{result['token_offset'] + result['token_length'] - 1} in the shard, "
                   f"{result['doc_tokens']} in the document"),
        ("position", f"{result['position_in_document']} in the document"),
    ]
    if console.is_terminal:
        for key, value in fields:
            console.print(f"[bold]{key:>9}[/] {value}", highlight=False, soft_wrap=True)
    else:
        for key, value in fields:
            sys.stdout.write(f"{key}\t{value}\n")
    if "text" in result:
        sys.stdout.write("\n" + result["text"] + "\n")
