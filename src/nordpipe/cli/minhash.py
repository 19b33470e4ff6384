"""``nordpipe dedup docs``: near-duplicate document removal with MinHash LSH."""

from __future__ import annotations

from typing import Annotated

import typer

from nordpipe.cli.app import dedup_app
from nordpipe.cli.common import (
    RUN_OPTIONS,
    JsonOpt,
    KeepGenerationsOpt,
    RerunSeenOpt,
    console,
    finish,
    stage_command,
    with_run_options,
)
from nordpipe.minhash import SURVIVOR_POLICIES, MinhashConfig, probability_curve, run_minhash
from nordpipe.runner import RunOptions
from nordpipe.state import DEFAULT_KEEP_GENERATIONS


@dedup_app.command("docs")
@stage_command
@with_run_options()
def dedup_docs_command(
    input_path: Annotated[
        str | None,
        typer.Argument(metavar="INPUT", help="Input: a dataset folder, a folder of jsonl.gz files or a file."),
    ] = None,
    output_path: Annotated[
        str | None, typer.Argument(metavar="OUTPUT", help="Output folder (documents/, removed/, .nordpipe/).")
    ] = None,
    ngram: Annotated[
        int | None,
        typer.Option(
            "--ngram", min=1, help="Shingle size: words, or characters with --char-ngrams [default: 5 words, 24 chars]."
        ),
    ] = None,
    char_ngrams: Annotated[bool, typer.Option("--char-ngrams", help="Shingle by characters instead of words.")] = False,
    bands: Annotated[int, typer.Option("--bands", min=1, help="LSH bands.")] = 16,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Hashes per band (bands x rows = signature length).")] = 7,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the MinHash permutations.")] = 1,
    jaccard_check: Annotated[
        bool,
        typer.Option(
            "--jaccard-check/--no-jaccard-check",
            "--threshold-check/--no-threshold-check",
            help="Recompute the shingles of candidate pairs and drop pairs below --threshold (removes false positives).",
        ),
    ] = False,
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="Jaccard similarity for --jaccard-check and --curve.")
    ] = 0.8,
    survivor: Annotated[
        str,
        typer.Option(
            "--survivor",
            help="Which document of a cluster stays: first (input order), longest, newest or oldest (by created, then added).",
        ),
    ] = "first",
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Index folder of earlier releases: deduplicate against it too, then add this batch's kept documents to it.",
        ),
    ] = None,
    no_update_index: Annotated[
        bool, typer.Option("--no-update-index", help="With --index: only read the index, do not add this batch.")
    ] = False,
    rerun_seen: RerunSeenOpt = False,
    keep_generations: KeepGenerationsOpt = DEFAULT_KEEP_GENERATIONS,
    curve: Annotated[
        bool,
        typer.Option(
            "--curve", help="Print the detection-probability curve for --bands/--rows (alone: print and exit)."
        ),
    ] = False,
    options: RunOptions = RUN_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Remove near-duplicate documents (syndicated news, mirrored and templated pages).

    Computes MinHash signatures (datasketch's affine32 hashing) of word or character n-grams,
    finds candidate pairs band by band (LSH), optionally checks their exact Jaccard similarity,
    clusters them (union-find) and keeps one document per cluster. Survivors carry
    metadata.nordpipe.minhash = {cluster, size}; removed documents also record their survivor's
    id. Runs in phases under OUTPUT/.nordpipe/minhash/, each resumable and runnable as tasks or
    Slurm arrays; results do not depend on the number of tasks.

    Example: nordpipe dedup docs data/clean data/dedup --jaccard-check --workers 2
    """
    survivor = survivor.lower()
    if survivor not in SURVIVOR_POLICIES:
        raise typer.BadParameter(f"{survivor!r} is not one of {', '.join(SURVIVOR_POLICIES)}", param_hint="--survivor")
    if curve:
        console.print(probability_curve(bands, rows, threshold), highlight=False)
        if input_path is None and output_path is None:
            return
    if input_path is None or output_path is None:
        raise typer.BadParameter(
            "INPUT and OUTPUT are required (only --curve runs without them)", param_hint="INPUT OUTPUT"
        )
    config = MinhashConfig(ngram=ngram, char_ngrams=char_ngrams, bands=bands, rows=rows, seed=seed)
    stats = run_minhash(
        input_path,
        output_path,
        config,
        options,
        survivor=survivor,
        jaccard_check=jaccard_check,
        jaccard_threshold=threshold,
        index_path=index,
        update_index=not no_update_index,
        rerun_seen=rerun_seen,
        keep_generations=keep_generations,
    )
    finish(stats, strict=options.strict, as_json=as_json)
