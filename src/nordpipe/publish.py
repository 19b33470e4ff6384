"""``nordpipe export hf``: the final corpus as a Hugging Face dataset, one config per source.

Layout of OUTPUT::

    OUTPUT/README.md                                   dataset card (YAML front matter + tables)
    OUTPUT/data/<source>/train-NNNNN-of-MMMMM.parquet  id, text, source, added, created, token_count
    OUTPUT/quarantine/export.jsonl                     unusable input records (file, line, reason)
    OUTPUT/.nordpipe/                                  run record, stats, completion (as every stage)

``load_dataset(OUTPUT)`` reads every source (config ``default``, ``data/*/*.parquet``) and
``load_dataset(OUTPUT, "<source>")`` one source: the card's ``configs`` list maps each config to
its ``data_files``, so no loading script and no network are needed.

Design:

- **Columns.** The six columns are the ones every consumer of a pre-training corpus needs and
  that keep one schema across sources: the standardized record's five top-level strings
  (``added``/``created`` as in REFERENCE §1) and ``token_count`` (int64), counted with the
  tokenize stage's tokenizer (``--tokenizer``, default ``mistral-7b-v0.1`` shipped in
  ``mistral-common``; local files only, nothing is downloaded) without BOS/EOS. ``metadata`` is
  left out: it differs per source (``documents`` module doc), and the stage outputs keep it.
- **Parquet settings.** zstd level 3 (the level ``export sentences`` uses), dictionary encoding
  only for the low-cardinality columns (``source``, ``added``, ``created``: a dictionary of
  texts is wasted work), statistics only for the short columns. Row groups are cut at
  ``row_group_bytes`` of text (default 32 MiB) or 100,000 rows: ``datasets`` streams a parquet
  file one row group at a time, so a row group is what a streaming reader holds in memory; files
  are cut at ``shard_bytes`` of text (default 512 MiB, well under the Hub's recommended file size).
- **Determinism.** Rows are written in input order (input files sorted as every stage lists
  them, records in file order); shard and row-group boundaries depend only on the rows; the card
  is rendered from sorted data with no dates. Two runs on the same input give byte-identical
  ``data/`` and ``README.md`` (tested).
- **Licenses and languages** come from each source's datasheet (``NAME/README.md`` front matter,
  written by ``ingest``): found beside INPUT, or by following the ``input`` of each stage's run
  record (``.nordpipe/run.json``) back to the ingest root, or in ``--datasheets DIR``. A source
  without a datasheet gets ``license: other`` (``license_name: unknown``) and the languages its
  documents carry (``metadata.nordpipe.language`` or ``metadata.language``); the stats list it.
- **A pipeline root as INPUT.** ``nordpipe run PIPELINE --root ROOT`` leaves one chain per batch
  (``ROOT/batches/NNNN/ingest/<dataset>/``, ``ROOT/batches/NNNN/NN-<stage>/``). Given ROOT, the
  corpus is the union over the *finished* batches (``batch.json`` ``"done"``, written by the
  pipeline only after every step of the batch completed) of the documents of each batch's last
  stage that writes documents (``STAGES[name].writes`` holds ``documents``: tokenize writes none,
  so a chain ending in tokenize publishes its pii output). The chains are the ones
  ``nordpipe report`` follows (``report.select``: completion records, never folder names), so
  the two commands agree on what a root holds. Records are in batch order, then file order
  within a batch, so the output depends only on what the batches hold. An unfinished batch (a
  run in progress or killed) is left out and named; a root with no finished batch is refused
  (``InputError``, exit 1). Datasheets come from ``ROOT/datasets/`` (the pipeline's datasheets
  over all batches), then each batch's ``ingest/`` folder.
- **Conventions of the exports.** OUTPUT is rebuilt in ``OUTPUT/.nordpipe/tmp`` and each folder
  is moved into place when everything is written (a failed run leaves the previous output);
  unusable records (bad JSON, schema errors, removed upstream) are counted and quarantined, and
  ``--strict`` turns any quarantined record into exit 1.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from nordpipe.datasheet import parse_front_matter, size_category
from nordpipe.documents import NORDPIPE_KEY, InvalidRecord, dumps_record, validate_record
from nordpipe.export import _publish, _Quarantine, _work_dir, _write_quarantine, iter_documents
from nordpipe.layout import DOCUMENTS, InputError, OutputLayout, list_document_files

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("text", pa.string()),
    ("source", pa.string()),
    ("added", pa.string()),
    ("created", pa.string()),
    ("token_count", pa.int64()),
])
"""The published columns, the same for every source."""

DEFAULT_ROW_GROUP_BYTES = 32 << 20
DEFAULT_SHARD_BYTES = 512 << 20
MAX_ROW_GROUP_ROWS = 100_000
TOKENIZE_BATCH = 256
"""Documents per ``encode_batch`` call."""
DEFAULT_PRETTY_NAME = "Nordic pre-training corpus (nordpipe)"
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_DATASHEET_SEARCH_DEPTH = 64


def is_pipeline_root(path: str) -> bool:
    """A ``nordpipe run --root`` folder (a ``batches/`` folder, and not itself a stage output)."""
    return os.path.isdir(os.path.join(path, "batches")) and OutputLayout.of(path).run() is None


@dataclass
class PipelineCorpus:
    """What a pipeline root publishes: the final documents of its finished batches (module doc)."""

    root: str
    files: list[str]
    """Document files in batch order, then file order."""
    finals: dict[str, list[str]]
    """Batch -> the stage outputs whose documents are published."""
    unfinished: list[str]
    """Batches left out because the pipeline has not marked them done."""
    datasheet_folders: list[str]


def pipeline_corpus(root: str) -> PipelineCorpus:
    """The corpus of a pipeline root, or ``InputError`` when no batch of it is finished."""
    from nordpipe.report import ReportError, select
    from nordpipe.stages import STAGES

    root = os.path.abspath(root)
    batches_dir = os.path.join(root, "batches")
    batches = sorted(name for name in os.listdir(batches_dir)
                     if name.isdigit() and os.path.isfile(os.path.join(batches_dir, name, "batch.json")))
    finished, unfinished = [], []
    for batch in batches:
        try:
            with open(os.path.join(batches_dir, batch, "batch.json"), encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            record = None  # being rewritten or damaged: not marked done
        (finished if isinstance(record, dict) and record.get("done") is True else unfinished).append(batch)
    if not finished:
        raise InputError(f"{root} is a pipeline root with no finished batch (unfinished: {', '.join(unfinished) or 'none'}; "
                         f"see {batches_dir}/NNNN/batch.json): finish the run first (`nordpipe run PIPELINE --root {root}`)")
    try:
        chains = select(root).chains
    except ReportError as err:
        raise InputError(f"{root}: {err}") from None
    by_batch: dict[str, Any] = {}
    for chain in chains:
        rel = os.path.relpath(chain.final.path, batches_dir).split(os.sep)
        if len(rel) > 1 and rel[0] in finished:
            by_batch[rel[0]] = chain
    files: list[str] = []
    finals: dict[str, list[str]] = {}
    for batch in finished:
        chain = by_batch.get(batch)
        if chain is None:
            continue  # a finished batch with no stage output (no raw file had documents)
        levels = [level for level in chain.levels
                  if level[0].stage in STAGES and DOCUMENTS in STAGES[level[0].stage].writes]
        if not levels:
            continue
        outputs = sorted(o.path for o in levels[-1])
        finals[batch] = outputs
        for output in outputs:
            files += list_document_files(output)
    folders = [os.path.join(root, "datasets")] + [os.path.join(batches_dir, b, "ingest") for b in reversed(finished)]
    return PipelineCorpus(root, files, finals, unfinished, folders)


def find_datasheets(input_path: str, sources: list[str], extra: str | None = None,
                    more: list[str] | None = None) -> dict[str, str]:
    """``source -> datasheet path`` for the sources whose ``NAME/README.md`` can be found: in
    ``extra``, in ``more`` (a pipeline root's datasheet folders), in INPUT (a root of datasets or
    a dataset folder), then in the inputs recorded in each stage's run record, back to the ingest
    root."""
    folders: list[str] = [os.path.abspath(extra)] if extra else []
    folders += [os.path.abspath(folder) for folder in more or []]
    path, seen = os.path.abspath(input_path), set()
    for _ in range(_DATASHEET_SEARCH_DEPTH):
        if path in seen:
            break
        seen.add(path)
        folders.append(path)
        try:
            run = OutputLayout.of(path).run()
        except Exception:  # an unreadable run record ends the walk; the fallback takes over
            run = None
        upstream = run.get("input") if isinstance(run, dict) else None
        if not isinstance(upstream, str):
            break
        path = upstream
    found: dict[str, str] = {}
    for folder in folders:
        for source in sources:
            if source in found:
                continue
            candidates = [os.path.join(folder, source, "README.md")]
            if os.path.basename(folder.rstrip("/")) == source:
                candidates.append(os.path.join(folder, "README.md"))
            for candidate in candidates:
                if os.path.isfile(candidate):
                    found[source] = candidate
                    break
    return found


def _read_matter(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return parse_front_matter(handle.read())


@dataclass
class _SourceWriter:
    """Parquet shards of one source: row groups of ``row_group_bytes`` of text, files of
    ``shard_bytes``; files get their final ``train-NNNNN-of-MMMMM`` names on ``close``."""

    folder: str
    row_group_bytes: int
    shard_bytes: int
    rows: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in SCHEMA.names})
    buffered_bytes: int = 0
    file_bytes: int = 0
    writer: pq.ParquetWriter | None = None
    parts: list[str] = field(default_factory=list)
    documents: int = 0
    tokens: int = 0
    characters: int = 0
    text_bytes: int = 0

    def add(self, record: dict[str, Any], tokens: int) -> None:
        for name in ("id", "text", "source", "added", "created"):
            self.rows[name].append(record[name])
        self.rows["token_count"].append(tokens)
        size = len(record["text"].encode("utf-8"))
        self.buffered_bytes += size
        self.documents += 1
        self.tokens += tokens
        self.characters += len(record["text"])
        self.text_bytes += size
        if self.buffered_bytes >= self.row_group_bytes or len(self.rows["id"]) >= MAX_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.rows["id"]:
            return
        if self.writer is None:
            os.makedirs(self.folder, exist_ok=True)
            path = os.path.join(self.folder, f".part-{len(self.parts):05d}.parquet")
            self.parts.append(path)
            self.writer = pq.ParquetWriter(
                path, SCHEMA, compression="zstd", compression_level=3,
                use_dictionary=["source", "added", "created"],
                write_statistics=["id", "source", "added", "created", "token_count"],
            )
        table = pa.table(self.rows, schema=SCHEMA)
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.file_bytes += self.buffered_bytes
        self.rows = {name: [] for name in SCHEMA.names}
        self.buffered_bytes = 0
        if self.file_bytes >= self.shard_bytes:
            self._close_file()

    def _close_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.file_bytes = 0

    def close(self) -> list[str]:
        self._flush()
        self._close_file()
        total = len(self.parts)
        names = []
        for index, part in enumerate(self.parts):
            name = f"train-{index:05d}-of-{total:05d}.parquet"
            os.replace(part, os.path.join(self.folder, name))
            names.append(name)
        return names


class HFExport:
    """The final corpus as a Hugging Face dataset with one config per source (module doc).

    Args:
        tokenizer: ``nordpipe tokenize``'s ``--tokenizer`` spec (default ``mistral-7b-v0.1``).
        row_group_bytes: text bytes per parquet row group (streaming memory).
        shard_bytes: text bytes per parquet file.
        pretty_name: the card's ``pretty_name`` (default ``DEFAULT_PRETTY_NAME``: the card does not
            depend on where OUTPUT is, as no stage output does).
        datasheets: a folder holding ``NAME/README.md`` datasheets, searched first.
    """

    name = "export hf"

    def __init__(self, tokenizer: str | None = None, row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
                 shard_bytes: int = DEFAULT_SHARD_BYTES, pretty_name: str | None = None,
                 datasheets: str | None = None):
        from nordpipe.tokenize import DEFAULT_TOKENIZER

        self.tokenizer_spec = tokenizer or DEFAULT_TOKENIZER
        self.row_group_bytes = row_group_bytes
        self.shard_bytes = shard_bytes
        self.pretty_name = pretty_name
        self.datasheets = datasheets

    def parameters(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer_spec,
            "row_group_bytes": self.row_group_bytes,
            "shard_bytes": self.shard_bytes,
            "pretty_name": self.pretty_name,
            "datasheets": os.path.abspath(self.datasheets) if self.datasheets else None,
        }

    def run(self, input_path: str, output_path: str) -> dict[str, Any]:
        """Publish every kept document under ``input_path`` to ``output_path``."""
        from nordpipe.runner import RunOptions, StageRun, pause_for_tests
        from nordpipe.tokenize import load_tokenizer

        started = time.time()
        pipeline = pipeline_corpus(input_path) if is_pipeline_root(input_path) else None
        tokenizer = load_tokenizer(self.tokenizer_spec)
        stage_run = (StageRun(self.name, input_path, output_path, RunOptions(), self.parameters(), rebuilds=True)
                     if pipeline is None else
                     StageRun(self.name, input_path, output_path, RunOptions(), self.parameters(), rebuilds=True,
                              raw_inputs=pipeline.files, record_extra={"pipeline_root": pipeline.root,
                                                                       "batches": pipeline.finals}))
        with stage_run as run, _work_dir(run.output_path) as tmp:
            pause_for_tests("export")
            quarantine = _Quarantine()
            writers: dict[str, _SourceWriter] = {}
            languages: dict[str, Counter[str]] = {}
            documents_in = chars_in = 0
            tokenize_seconds = 0.0
            batch: list[dict[str, Any]] = []

            def flush() -> None:
                nonlocal tokenize_seconds
                if not batch:
                    return
                clock = time.process_time()
                counts = [len(ids) for ids in tokenizer.encode_batch([r["text"] for r in batch])]
                tokenize_seconds += time.process_time() - clock
                for record, tokens in zip(batch, counts, strict=True):
                    source = record["source"]
                    writer = writers.get(source)
                    if writer is None:
                        writer = writers[source] = _SourceWriter(
                            os.path.join(tmp, "data", source), self.row_group_bytes, self.shard_bytes)
                    writer.add(record, tokens)
                batch.clear()

            for path in run.files:
                for line, record in iter_documents(path, quarantine):
                    documents_in += 1
                    chars_in += len(record["text"])
                    try:
                        validate_record(record)
                        _check_source_name(record["source"])
                    except InvalidRecord as err:
                        documents_in -= 1  # counted in the quarantine
                        chars_in -= len(record["text"])
                        quarantine.add(path, line, str(err), dumps_record(record).rstrip(b"\n"))
                        continue
                    language = (record["metadata"].get(NORDPIPE_KEY) or {}).get("language") or record["metadata"].get("language")
                    if isinstance(language, str):
                        languages.setdefault(record["source"], Counter())[language] += 1
                    batch.append(record)
                    if len(batch) >= TOKENIZE_BATCH:
                        flush()
            flush()
            files = {source: writers[source].close() for source in sorted(writers)}
            sources = sorted(writers)
            sheets = find_datasheets(input_path, sources, self.datasheets,
                                     pipeline.datasheet_folders if pipeline is not None else None)
            card_sources = {
                source: _source_card(source, writers[source], sheets.get(source), languages.get(source, Counter()))
                for source in sources
            }
            card = render_card(self.pretty_name or DEFAULT_PRETTY_NAME, card_sources, tokenizer.describe(), files)
            with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as handle:
                handle.write(card)
            _write_quarantine(tmp, quarantine)
            _publish(tmp, output_path, run.owned)
            documents_out = sum(w.documents for w in writers.values())
            stats = {
                "stage": self.name,
                "output": output_path,
                "parameters": self.parameters(),
                "documents_in": documents_in + quarantine.counts.total(),
                "documents_out": documents_out,
                "characters_in": chars_in,
                "characters_out": sum(w.characters for w in writers.values()),
                "removed": {},
                "quarantined": dict(quarantine.counts),
                "quarantined_total": quarantine.counts.total(),
                "tokens": sum(w.tokens for w in writers.values()),
                "sources": {s: {"documents": c["documents"], "tokens": c["tokens"], "files": len(files[s]),
                                "datasheet": c["datasheet"]} for s, c in card_sources.items()},
                "extra": {
                    "sources": len(sources),
                    "parquet files": sum(len(f) for f in files.values()),
                    "tokens": sum(w.tokens for w in writers.values()),
                    "text bytes": sum(w.text_bytes for w in writers.values()),
                    "sources without datasheet": sum(1 for c in card_sources.values() if c["datasheet"] is None),
                    "tokenize cpu seconds": round(tokenize_seconds, 3),
                    **({"batches": len(pipeline.finals), "unfinished batches left out": len(pipeline.unfinished)}
                       if pipeline is not None else {}),
                },
                "seconds": round(time.time() - started, 3),
            }
            run.complete(stats)
        return stats


def _check_source_name(source: str) -> None:
    """A source becomes a folder and a config name: no path separators, no glob characters."""
    if not source or source.startswith(".") or any(c in source for c in '/\\*?[]{}:"'):
        raise InvalidRecord(f"bad source: {source!r} cannot name a folder and a dataset config")


def _source_card(source: str, writer: _SourceWriter, datasheet: str | None, seen: Counter[str]) -> dict[str, Any]:
    """What the card says about one source: license and languages from its datasheet, else
    ``other``/unknown and the languages seen in its documents."""
    matter: dict[str, Any] = {}
    if datasheet is not None:
        try:
            matter = _read_matter(datasheet)
        except (OSError, ValueError):
            matter = {}
    license_id = matter.get("license") if isinstance(matter.get("license"), str) else None
    license_name = matter.get("license_name") if isinstance(matter.get("license_name"), str) else None
    if not license_id:
        license_id, license_name = "other", license_name or "unknown (no datasheet)"
    language = matter.get("language")
    if isinstance(language, str):
        language = [language]
    if not isinstance(language, list) or not language:
        language = sorted(seen)
    codes = sorted({str(code).lower() for code in language if _LANGUAGE_CODE.match(str(code).lower())})
    return {
        "pretty_name": matter.get("pretty_name") if isinstance(matter.get("pretty_name"), str) else source,
        "license": license_id,
        "license_name": license_name if license_id == "other" else None,
        "language": codes,
        "documents": writer.documents,
        "tokens": writer.tokens,
        "characters": writer.characters,
        "text_bytes": writer.text_bytes,
        "datasheet": os.path.abspath(datasheet) if datasheet else None,
    }


def render_card(pretty_name: str, sources: dict[str, dict[str, Any]], tokenizer: dict[str, Any],
                files: dict[str, list[str]]) -> str:
    """The dataset card: Hugging Face YAML front matter (``configs`` per source, license ids,
    ISO 639 language codes, size category, token counts per source) and Markdown tables."""
    total_docs = sum(s["documents"] for s in sources.values())
    total_tokens = sum(s["tokens"] for s in sources.values())
    licenses = sorted({s["license"] for s in sources.values()})
    matter: dict[str, Any] = {
        "pretty_name": pretty_name,
        "language": sorted({code for s in sources.values() for code in s["language"]}),
        "license": licenses[0] if len(licenses) == 1 else licenses,
    }
    other = sorted({s["license_name"] for s in sources.values() if s["license"] == "other" and s["license_name"]})
    if other:
        matter["license_name"] = "; ".join(other)
    matter["size_categories"] = [size_category(total_docs)]
    matter["task_categories"] = ["text-generation"]
    matter["configs"] = [{"config_name": "default", "default": True,
                          "data_files": [{"split": "train", "path": "data/*/*.parquet"}]}]
    matter["configs"] += [{"config_name": source, "data_files": [{"split": "train", "path": f"data/{source}/*.parquet"}]}
                          for source in sorted(sources)]
    matter["nordpipe"] = {
        "tokenizer": {"spec": tokenizer.get("spec"), "kind": tokenizer.get("kind"), "sha256": tokenizer.get("sha256"),
                      "vocab_size": tokenizer.get("vocab_size")},
        "documents": total_docs,
        "tokens": total_tokens,
        "sources": {source: {"documents": s["documents"], "tokens": s["tokens"], "license": s["license"],
                             "language": s["language"], "size_category": size_category(s["documents"])}
                    for source, s in sorted(sources.items())},
    }
    lines = [
        "---",
        yaml.safe_dump(matter, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {pretty_name}",
        "",
        "Published by `nordpipe export hf`: one parquet config per source with the columns `id`, `text`,",
        "`source`, `added`, `created` (`YYYY-MM-DD` and `YYYY-MM-DD, YYYY-MM-DD`) and `token_count`",
        f"(tokens of `{tokenizer.get('spec')}`, without BOS/EOS).",
        "",
        "```python",
        "from datasets import load_dataset",
        "corpus = load_dataset(PATH)                      # every source",
        f"one = load_dataset(PATH, {sorted(sources)[0]!r})" if sources else "",
        "```",
        "",
        "| source | documents | tokens | license | languages | files |",
        "|---|---:|---:|---|---|---:|",
    ]
    for source, s in sorted(sources.items()):
        license_text = s["license"] if s["license"] != "other" else f"other ({s['license_name']})"
        lines.append(f"| {source} | {s['documents']:,} | {s['tokens']:,} | {license_text} | "
                     f"{', '.join(s['language']) or 'unknown'} | {len(files.get(source, []))} |")
    lines += [f"| **total** | {total_docs:,} | {total_tokens:,} | | | {sum(len(f) for f in files.values())} |", ""]
    return "\n".join(lines)


__all__ = ["SCHEMA", "HFExport", "PipelineCorpus", "find_datasheets", "is_pipeline_root", "pipeline_corpus", "render_card"]
