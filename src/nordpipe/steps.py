"""datatrove pipeline steps shared by every nordpipe stage.

A nordpipe stage is a list of datatrove ``PipelineStep``s run between a ``DocumentReader`` and a
``DocumentWriter``:

    [DocumentReader(input), *stage_steps, DocumentWriter(output)]

Stage steps do not drop documents: a filter marks a document removed
(``documents.mark_removed``) and passes it on, so that the writer can count every document once,
by reason, and write removed documents to ``removed/`` when asked (``--keep-removed``). Steps
leave documents that are already removed alone. To use a nordpipe filter inside a plain datatrove
pipeline with datatrove's own writers, put ``DropRemoved()`` after it.

Records that cannot be read at all (invalid JSON, broken compression, schema violations) travel
as documents carrying ``metadata[QUARANTINE_KEY]``; every step passes them on untouched (they are
also marked removed) and the writer puts them in ``quarantine/`` with file, line and reason.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from nordpipe.documents import (
    DEFAULT_MAX_CHARS,
    INPUT_KEY,
    LINE_KEY,
    NORDPIPE_KEY,
    QUARANTINE_KEY,
    InvalidRecord,
    document_to_record,
    dumps_record,
    iter_document_lines,
    iter_records,
    mark_removed,
    max_line_bytes_for,
    raw_for_quarantine,
    record_to_document,
    removal_reason,
    validate_record,
)
from nordpipe.layout import OutputLayout, input_files, list_document_files, output_stem

__all__ = ["DocumentReader", "DocumentWriter", "DropRemoved", "list_document_files", "output_stem"]

QUARANTINED = "quarantine"
"""Removal reason prefix of quarantined records (``quarantine:<why>``)."""


def quarantine_document(file: str, line: int, reason: str, raw: bytes | str | None, stem: str) -> Document:
    """A placeholder document for an input record that could not be used."""
    doc = Document(text="", id=f"{stem}:{line}")
    doc.metadata[INPUT_KEY] = stem
    doc.metadata[LINE_KEY] = line
    doc.metadata[QUARANTINE_KEY] = {"file": file, "line": line, "reason": reason, **raw_for_quarantine(raw)}
    mark_removed(doc, f"{QUARANTINED}:{reason_category(reason)}")
    return doc


def reason_category(reason: str) -> str:
    """The stable part of a reason, for counting (``"invalid JSON: unexpected..."`` -> ``invalid JSON``)."""
    return reason.split(":", 1)[0].strip()


def is_active(doc: Document) -> bool:
    """True while no step has removed or quarantined the document."""
    meta = doc.metadata.get(NORDPIPE_KEY)
    return not (meta and meta.get("removed"))


def add_counts(step: PipelineStep, counts: Mapping[str, int]) -> None:
    """Record what ``counts[label]`` calls of ``step.stat_update(label)`` record, with one update
    per label: datatrove's own merge of two ``MetricStats`` (its parallel mean and variance update)
    with ``count`` values of 1, so the same ``total`` and ``n``, mean 1 and variance 0.

    Why: ``stat_update`` costs ~0.6 us a call; a reader and a filter calling it for every
    document were ~6% of ``filter urls``' task CPU on short documents (200,000 in 3.4 s). Steps
    count per-document events in a local integer and add them here when a file or their input
    ends (in a ``finally``, so a task stopped early still reports what it saw)."""
    from datatrove.utils.stats import MetricStats

    for label, count in counts.items():
        if count > 0:
            step.stats[label] = step.stats[label] + MetricStats(total=count, n=count, mean=1.0, min=1, max=1)


# --------------------------------------------------------------------------------------------
# Step base classes


class DocumentFilter(PipelineStep):
    """Base class of nordpipe filters.

    Subclasses implement ``filter(doc) -> str | None``: ``None`` keeps the document, a string is
    the rule that removed it. The removal reason becomes ``"<name>:<rule>"``.
    """

    type = "🔻 - FILTER"
    name = "filter"

    def filter(self, doc: Document) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        kept = 0
        try:
            for doc in data:
                if is_active(doc):
                    with self.track_time():
                        rule = self.filter(doc)
                    if rule is not None:
                        mark_removed(doc, f"{self.name}:{rule}")
                        self.stat_update("removed", f"removed:{rule}")
                    else:
                        kept += 1
                yield doc
        finally:
            add_counts(self, {"kept": kept})


class DropRemoved(PipelineStep):
    """Drop documents a nordpipe step marked removed (for plain datatrove pipelines)."""

    type = "🔻 - FILTER"
    name = "drop removed"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            if is_active(doc):
                yield doc
            else:
                self.stat_update("dropped")


# --------------------------------------------------------------------------------------------
# Reading


class DocumentReader(PipelineStep):
    """Read standardized documents; each task reads every ``world_size``-th file.

    Args:
        input_path: file, dataset folder, folder of files or root of datasets (see
            ``list_document_files``).
        validate: check every record against the schema and quarantine bad ones (default True).
        max_chars: longest text accepted (default ``DEFAULT_MAX_CHARS``).
    """

    type = "📖 - READER"
    name = "documents"

    def __init__(self, input_path: str, validate: bool = True, max_chars: int = DEFAULT_MAX_CHARS):
        super().__init__()
        self.input_path = input_path
        self.validate = validate
        self.max_chars = max_chars

    def files_for_rank(self, rank: int, world_size: int) -> list[tuple[str, str]]:
        """``(path, output stem)`` of the files task ``rank`` reads. Every file's stem is computed,
        not only this rank's, so that two files that would get one output name fail every task
        instead of one task overwriting another's output."""
        return input_files(self.input_path)[rank::world_size]

    def read_file(self, path: str, stem: str) -> Iterator[Document]:
        if path.endswith(".parquet"):
            lines: Iterable[Any] = ((line, record, None, None) for line, record in iter_records(path))
        else:
            # a line longer than any valid record is skipped to its end, never held in memory
            limit = max_line_bytes_for(self.max_chars)
            lines = ((r.line, r.record, r.error, r.raw) for r in iter_document_lines(path, max_line_bytes=limit))
        seen_ids: set[str] = set()
        try:
            yield from self._documents(path, stem, lines, seen_ids)
        finally:
            add_counts(self, {"documents": len(seen_ids)})

    def _documents(self, path: str, stem: str, lines: Iterable[Any], seen_ids: set[str]) -> Iterator[Document]:
        """The documents of one file; the id of each one yielded goes into ``seen_ids`` (a later
        document with the same id is quarantined), so ``len(seen_ids)`` counts them."""
        for line, record, error, raw in lines:
            if error is None:
                try:
                    if self.validate:
                        validate_record(record, max_chars=self.max_chars)
                    if record["id"] in seen_ids:
                        raise InvalidRecord(f"duplicate id: {record['id']!r} already seen in this file")
                    seen_ids.add(record["id"])
                except (InvalidRecord, KeyError, TypeError) as err:
                    error = str(err)
                    raw = dumps_record(record).rstrip(b"\n") if record is not None else raw
            if error is not None:
                self.stat_update("quarantined")
                yield quarantine_document(path, line, error, raw, stem)
                continue
            doc = record_to_document(record)
            doc.metadata[INPUT_KEY] = stem
            doc.metadata[LINE_KEY] = line
            yield doc

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        for path, stem in self.files_for_rank(rank, world_size):
            yield from self.read_file(path, stem)


# --------------------------------------------------------------------------------------------
# Writing


def open_gzip_writer(path: str, level: int) -> Any:
    """A gzip writer: ISA-L (isal) when installed, zlib otherwise.

    Measured on one 117 MB jsonl file: zlib level 1 took 1.14 CPU s (to 48.5 MB), isal level 1
    0.33 s (to 46.7 MB). zlib levels 1-9 map onto isal's 0-3 (1 -> 1, 2-5 -> 2, 6-9 -> 3).
    """
    try:
        from isal import igzip
    except ImportError:
        import gzip

        return gzip.GzipFile(path, "wb", compresslevel=level, mtime=0)
    isal_level = 0 if level <= 0 else 1 if level == 1 else 2 if level <= 5 else 3
    return igzip.IGzipFile(path, "wb", compresslevel=isal_level, mtime=0)


MAX_BUFFERED_LINES = 256
"""Lines a ``_ShardWriter`` buffers before writing them (with at most 1 MiB of text)."""


class _ShardWriter:
    """Writes one output stream (``<stem>.jsonl.gz``, ``<stem>-0001.jsonl.gz``, ...) to a temp dir."""

    def __init__(self, tmp_dir: str, stem: str, suffix: str, max_bytes: int | None, compress: bool, level: int = 1):
        self.tmp_dir, self.stem, self.suffix = tmp_dir, stem, suffix
        self.max_bytes, self.compress, self.level = max_bytes, compress, level
        self.shard = 0
        self.bytes_in_shard = 0
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.handle: Any = None
        self.files: list[str] = []

    def _open(self) -> None:
        name = f"{self.stem}{self.suffix}" if self.shard == 0 else f"{self.stem}-{self.shard:04d}{self.suffix}"
        path = os.path.join(self.tmp_dir, name)
        if self.compress:
            self.handle = open_gzip_writer(path, self.level)
        else:
            self.handle = open(path, "wb")
        self.files.append(name)

    def write(self, line: bytes) -> None:
        if self.handle is None:
            self._open()
        elif self.max_bytes and self.bytes_in_shard + len(line) > self.max_bytes and self.bytes_in_shard:
            self._flush()
            self.handle.close()
            self.shard += 1
            self.bytes_in_shard = 0
            self._open()
        self.buffer.append(line)
        self.buffered += len(line)
        self.bytes_in_shard += len(line)
        # Also bounded by lines: a line from orjson.dumps keeps its ~4 KiB output buffer however
        # short the line (measured: 20,000 lines of 230 bytes held 79 MB), so 1 MiB of short
        # lines held ~16 MiB per open stream (benchmarks/results/urls.md).
        if self.buffered >= 1 << 20 or len(self.buffer) >= MAX_BUFFERED_LINES:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            self.handle.write(b"".join(self.buffer))
            self.buffer.clear()
            self.buffered = 0

    def close(self) -> None:
        if self.handle is not None:
            self._flush()
            self.handle.close()


class TaskStats:
    """Per-task accounting of what a stage did; merged by the runner into ``stats.json``."""

    def __init__(self) -> None:
        self.docs_in = 0
        self.docs_out = 0
        self.chars_in = 0
        self.chars_out = 0
        self.removed: Counter[str] = Counter()
        self.removed_chars: Counter[str] = Counter()
        self.removed_by_language: dict[str, Counter[str]] = defaultdict(Counter)
        self.quarantined: Counter[str] = Counter()
        self.languages_out: Counter[str] = Counter()
        self.sources_out: Counter[str] = Counter()
        self.created_min: str | None = None
        self.created_max: str | None = None

    def add_created(self, created: object) -> None:
        """Track the span of ``created`` ranges of kept documents (for datasheets)."""
        if not isinstance(created, str) or ", " not in created:
            return
        start, end = created.split(", ", 1)
        if self.created_min is None or start < self.created_min:
            self.created_min = start
        if self.created_max is None or end > self.created_max:
            self.created_max = end

    def to_json(self) -> dict[str, Any]:
        return {
            "documents_in": self.docs_in,
            "documents_out": self.docs_out,
            "characters_in": self.chars_in,
            "characters_out": self.chars_out,
            "removed": dict(self.removed),
            "removed_characters": dict(self.removed_chars),
            "removed_by_language": {k: dict(v) for k, v in self.removed_by_language.items()},
            "quarantined": dict(self.quarantined),
            "languages_out": dict(self.languages_out),
            "sources_out": dict(self.sources_out),
            "created_min": self.created_min,
            "created_max": self.created_max,
        }


def _pop_chars_in(doc: Document, default: int) -> int:
    """The document's length when it entered the stage: steps that shorten a text (line dedup,
    C4's line filter) record it as ``metadata.nordpipe.chars_in``; it is stage-internal, so it is
    taken off the record here and never written (a later stage would count a stale figure)."""
    meta = doc.metadata.get(NORDPIPE_KEY)
    if not meta or "chars_in" not in meta:
        return default
    chars_in = int(meta.pop("chars_in"))
    if not meta:
        del doc.metadata[NORDPIPE_KEY]
    return chars_in


class DocumentWriter(PipelineStep):
    """Write kept documents, removed documents and quarantined records of one task, atomically.

    Kept documents go to ``<output>/documents/<stem>.jsonl.gz`` where ``<stem>`` is derived from
    the input file the document came from, so outputs do not depend on the number of tasks.
    Files are written to ``<output>/.nordpipe/tmp/<rank>/`` and moved into place only when the
    task has finished; a killed task leaves nothing behind in the output folders and its rerun
    starts from a clean temp folder.

    Args:
        output_path: the stage's output folder (local path).
        keep_removed: also write removed documents, with their reason, to ``removed/``.
        max_shard_bytes: start a new shard after this many uncompressed bytes (None: one shard
            per input file).
        compression_level: gzip level of the output, zlib's scale (default 1: measured with zlib
            on Nordic jsonl, level 1 compresses at ~117 MB/s to a 2.8x ratio, level 6 at ~28 MB/s
            to 3.5x; for intermediate stage outputs CPU matters more than 25% of disk. Ingest
            writes the stored datasets at 6). See ``open_gzip_writer`` for the isal mapping.
    """

    type = "💽 - WRITER"
    name = "documents"

    def __init__(
        self,
        output_path: str,
        keep_removed: bool = False,
        max_shard_bytes: int | None = None,
        compression_level: int = 1,
    ):
        super().__init__()
        self.output_path = output_path
        self.keep_removed = keep_removed
        self.max_shard_bytes = max_shard_bytes
        self.compression_level = compression_level

    def _writer(self, kind: str, stem: str) -> _ShardWriter:
        key = (kind, stem)
        writer = self._writers.get(key)
        if writer is None:
            tmp = os.path.join(self._tmp, kind)
            os.makedirs(tmp, exist_ok=True)
            suffix = ".jsonl" if kind == "quarantine" else ".jsonl.gz"
            max_bytes = self.max_shard_bytes if kind == "documents" else None
            writer = self._writers[key] = _ShardWriter(
                tmp, stem, suffix, max_bytes, compress=kind != "quarantine", level=self.compression_level
            )
        return writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        layout = OutputLayout.of(self.output_path)
        self._tmp = layout.tmp(f"{rank:05d}")
        shutil.rmtree(self._tmp, ignore_errors=True)
        os.makedirs(self._tmp)
        self._writers: dict[tuple[str, str], _ShardWriter] = {}
        stats = TaskStats()
        for doc in data:
            stem = doc.metadata.get(INPUT_KEY) or f"{rank:05d}"
            quarantine = doc.metadata.get(QUARANTINE_KEY)
            if quarantine is not None:
                stats.docs_in += 1
                stats.quarantined[reason_category(quarantine["reason"])] += 1
                self._writer("quarantine", stem).write(json.dumps(quarantine, ensure_ascii=False).encode() + b"\n")
                continue
            chars = len(doc.text)
            stats.docs_in += 1
            stats.chars_in += _pop_chars_in(doc, chars)
            reason = removal_reason(doc)
            language = (doc.metadata.get(NORDPIPE_KEY) or {}).get("language") or doc.metadata.get("language") or "unknown"
            if reason:
                stats.removed[reason] += 1
                stats.removed_chars[reason] += chars
                stats.removed_by_language[str(language)][reason] += 1
                if self.keep_removed:
                    self._writer("removed", stem).write(dumps_record(document_to_record(doc)))
                continue
            stats.docs_out += 1
            stats.chars_out += chars
            stats.languages_out[str(language)] += 1
            stats.sources_out[str(doc.metadata.get("source"))] += 1
            stats.add_created(doc.metadata.get("created"))
            self._writer("documents", stem).write(dumps_record(document_to_record(doc)))
            yield doc
        for writer in self._writers.values():
            writer.close()
        # Move files into place, then record the task's stats: a task is complete only when its
        # stats file exists (and datatrove has written its completion marker).
        for (kind, _stem), writer in sorted(self._writers.items()):
            final_dir = layout.path(kind)
            os.makedirs(final_dir, exist_ok=True)
            for name in writer.files:
                os.replace(os.path.join(self._tmp, kind, name), os.path.join(final_dir, name))
        tasks_dir = layout.tasks
        os.makedirs(tasks_dir, exist_ok=True)
        tmp_stats = os.path.join(self._tmp, "stats.json")
        with open(tmp_stats, "w") as handle:
            json.dump(stats.to_json(), handle)
        os.replace(tmp_stats, os.path.join(tasks_dir, f"{rank:05d}.json"))
        shutil.rmtree(self._tmp, ignore_errors=True)
