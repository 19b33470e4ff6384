"""The stage registry: one entry per stage, one name used everywhere.

The name of a stage is the same in the CLI's stats lines, in ``OUTPUT/.nordpipe/stats.json``
and ``run.json`` (``stage``), in a pipeline file's ``type:``, in ``nordpipe run --from/--until``,
in the report and in the Makefile's targets. Each entry says which command runs the stage, what
the stage reads (standardized documents, or raw files for ingest) and what it writes in OUTPUT
besides ``.nordpipe/`` (what ``--force`` may delete). The pipeline layer and the test suite read
this table; adding a stage is one entry here plus its module.

Every stage follows one protocol, ``runner.StageRun``: input checked, OUTPUT disjoint from
INPUT, lock, run record, phases, stats, completion record last, signals handled.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from nordpipe.layout import DOCUMENTS, QUARANTINE, REMOVED


@dataclass(frozen=True)
class Stage:
    """What the rest of nordpipe needs to know about a stage."""

    name: str
    command: tuple[str, ...]
    """The ``nordpipe`` subcommand that runs it (``("filter", "quality")``)."""
    summary: str
    run: str
    """Where the stage's run function lives (``module:function``), to use it without the CLI."""
    reads: str = "documents"
    """``documents`` (a stage output, dataset or root of datasets) or ``raw`` (ingest)."""
    writes: tuple[str, ...] = (DOCUMENTS, REMOVED, QUARANTINE)
    """What it writes in OUTPUT besides ``.nordpipe/``: all that ``--force`` ever deletes."""
    removes_documents: bool = True
    """Whether it can remove documents (``--keep-removed`` then writes them to ``removed/``)."""
    in_pipelines: bool = True
    """Whether a pipeline file may name it as a ``type:`` (exports run after a pipeline)."""

    @property
    def cli(self) -> str:
        return "nordpipe " + " ".join(self.command)

    def run_function(self) -> Any:
        """The run function itself (imported on demand: stage modules are heavy)."""
        module, _, name = self.run.partition(":")
        target: Any = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
        return target


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("ingest", ("ingest",), "raw dumps -> standardized documents and a datasheet", "nordpipe.ingest:ingest",
              reads="raw", removes_documents=False, in_pipelines=False),
        Stage("urls", ("filter", "urls"), "blocklisted URLs and sites that refuse AI training", "nordpipe.urls:run_urls"),
        Stage("quality", ("filter", "quality"), "language identification, Gopher and C4 quality rules",
              "nordpipe.quality:run_quality"),
        Stage("lines", ("dedup", "lines"), "lines seen before (Bloom filter, state across runs)",
              "nordpipe.lines:run_line_dedup"),
        Stage("minhash", ("dedup", "docs"), "near-duplicate documents (MinHash), one survivor per cluster",
              "nordpipe.minhash:run_minhash"),
        Stage("pii", ("pii",), "personal data replaced by stand-ins of the same type", "nordpipe.pii.step:run_pii",
              removes_documents=False),
        Stage("tokenize", ("tokenize",), "token shards (Megatron, datatrove, MDS) and a manifest",
              "nordpipe.tokenize:run_tokenize", writes=("shards", "manifest.json", QUARANTINE), removes_documents=False),
        Stage("export sentences", ("export", "sentences"), "deduplicated sentences as a Hugging Face dataset",
              "nordpipe.export:SentenceExport.run", writes=("data", "jsonl", QUARANTINE), removes_documents=False,
              in_pipelines=False),
        Stage("export pairs", ("export", "pairs"), "(anchor, positive) pairs and an IR split",
              "nordpipe.export:PairExport.run", writes=("data", "jsonl", "ir", QUARANTINE), removes_documents=False,
              in_pipelines=False),
        Stage("export hf", ("export", "hf"), "the corpus as a Hugging Face dataset: parquet per source, dataset card",
              "nordpipe.publish:HFExport.run", writes=("data", "README.md", QUARANTINE), removes_documents=False,
              in_pipelines=False),
    )
}
"""Every stage, in chain order."""

PIPELINE_STAGES = {name: stage for name, stage in STAGES.items() if stage.in_pipelines}
"""Stages a pipeline file may list under ``stages:`` (ingest is implied by ``datasets:``)."""


def stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"no stage {name!r}; stages: {', '.join(STAGES)}") from None
