"""Line deduplication with a persistent, partitioned Bloom filter (``nordpipe dedup lines``).

A line is removed when an equal line (after normalization) came earlier in the corpus: earlier
in this run, in input-file order then document order then line order, or in any earlier run
that used the same state directory. Blank lines, lines shorter than ``min_line_chars`` and the
documents of exempt sources are never removed and never recorded.

Design: three datatrove phases and a commit, so that the result does not depend on the number
of tasks and a run can be killed and resumed at any point.

1. ``LineDedupSignature`` (one task per group of input files, in parallel) reads its files
   itself (id, source and text of each record, no datatrove Documents; the same records
   accepted and quarantined as ``DocumentReader``, which it falls back to for any file its fast
   path cannot read), normalizes every line, hashes it (xxh3-64, in batches of documents) and
   assigns it to one of ``partitions`` parts of the hash space.
   Per task it writes ``signature/t<rank>.hashes`` (each file's hashes grouped by part, in line
   order within a part), ``.parts`` (the part of every line, ``0xFFFF`` for untracked lines),
   ``.docs`` (id hash and line count of every document, to check that phase 3 sees the same
   documents) and, last, ``.index.json`` + ``.counts.npy`` (per chunk of a file: documents,
   lines, and hashes per part).
2. ``LineDedupDecide`` (each part has one owner task): for each part it owns, the owner reads
   that part's hashes from every task in global file order, marks a line duplicate if the same
   hash came earlier in the run (exact, 64-bit) or the previous runs' filter part holds it
   (Bloom), inserts the new hashes into the filter part and writes the part's verdict bits per
   phase-1 task (``decide/r<owner>-t<task>.bits``) and the updated part to ``decide/filter/``.
   Only one part is held in memory at a time, packed: the compiled probes
   (``nordpipe._bloom_loops``) read and set its bits in place (without them it is unpacked to
   one byte per bit for numpy's speed, 8x). Parts are sized so that this stays small
   (``PART_BYTES`` packed), whatever the total filter size.
3. ``LineDedupFilter`` (same tasks as phase 1) rereads the documents (``LineDedupReader``: a
   ``DocumentReader`` that skips validating the files phase 1 found clean), finds each line's
   verdict and removes duplicate lines; documents left without text are marked
   ``line_dedup:empty``.

Speed (``benchmarks/results/lines.md``): phases 1+2 together use less CPU per line than
``dolma dedupe``'s Rust filter, and the whole run less than ``dolma dedupe`` + ``dolma mix``.

Commit: only after all phases succeeded, the new filter parts and ``state.json`` are written to
a new generation folder ``DIR/gen-<n>/`` and ``DIR/CURRENT`` is switched to it with an atomic
rename; older generations are then deleted. A run killed before that leaves ``CURRENT`` on the
previous generation, which stays valid; the rerun resumes the phases (datatrove completions)
and commits. Every phase writes files under a temporary name and renames them when complete.

State directory::

    DIR/CURRENT                  name of the current generation
    DIR/gen-<n>/state.json       parameters, runs (inputs seen, counts), fill ratio, estimated FPR
    DIR/gen-<n>/part-<p>.bloom   filter parts (``bloom.BloomFilter`` files)
    DIR/.nordpipe/lock           held while a run uses the state

A state refuses to load with other filter parameters (size, rate, partitions, normalization,
minimum line length): they decide which lines match and where their bits are.
"""

from __future__ import annotations

import array
import contextlib
import datetime as dt
import json
import math
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import IO, Any

import numpy as np
import orjson
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from isal import igzip

from nordpipe.bloom import BloomFilter, bloom_size
from nordpipe.documents import (
    DEFAULT_MAX_CHARS,
    INPUT_KEY,
    LINE_KEY,
    InvalidRecord,
    decode_record,
    mark_removed,
    nordpipe_meta,
    record_to_document,
    validate_record,
)
from nordpipe.layout import OutputLayout, absolute, input_digests
from nordpipe.runner import RunError, RunOptions, StageRun, kill_point
from nordpipe.state import DEFAULT_KEEP_GENERATIONS, StateDirectory, _way_back, check_unseen, run_parent
from nordpipe.steps import DocumentReader, is_active

STAGE = "lines"
STEP_NAME = "line_dedup"
HASH_SCHEME = "xxh3_64/splitmix64-double-hashing/v1"
PART_BYTES = 4 << 20
"""Target size of one filter part (packed). The owner holds one part at a time (8x that when the
compiled probes are missing and it is unpacked)."""
HASH_BATCH_CHARS = 1 << 20
"""Phase 1 hashes the lines of about this many characters of text at once."""
FLUSH_LINES = 500_000
"""Phase 1 writes a file's hashes in chunks of whole documents of about this many lines, so
its memory does not grow with the size of an input file."""
UNTRACKED = 0xFFFF
MAX_PARTITIONS = UNTRACKED
WORK_DIR = "lines"

_DOCS_DTYPE = np.dtype([("id", "<u8"), ("lines", "<u4")])
_SPACES = re.compile(r"[^\S\n]+")
_DIGITS = re.compile(r"\d")


# --------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class LineDedupConfig:
    """What counts as the same line, and how big the filter is.

    Args:
        expected_lines: distinct lines the filter is sized for, over all runs (default 100M:
            a 359 MB filter at the default rate).
        fpr: target false-positive rate of the filter when it holds ``expected_lines`` lines
            (default 1e-6, dolma's production setting).
        min_line_chars: lines shorter than this (after normalization) are ignored (default 10).
        normalize_whitespace: collapse runs of spaces/tabs and strip each line (default True).
        lowercase: compare lines case-insensitively (default False).
        normalize_digits: compare lines with every digit read as 0 (default False).
        partitions: parts of the hash space (default: enough for parts of ``PART_BYTES``).
    """

    expected_lines: int = 100_000_000
    fpr: float = 1e-6
    min_line_chars: int = 10
    normalize_whitespace: bool = True
    lowercase: bool = False
    normalize_digits: bool = False
    partitions: int | None = None

    def __post_init__(self) -> None:
        if self.expected_lines < 1:
            raise ValueError(f"expected lines must be at least 1, got {self.expected_lines}")
        if not 0 < self.fpr < 1:
            raise ValueError(f"the false-positive rate must be between 0 and 1, got {self.fpr}")
        if self.min_line_chars < 0:
            raise ValueError(f"min line chars must not be negative, got {self.min_line_chars}")
        if self.partitions is not None and not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be between 1 and {MAX_PARTITIONS}, got {self.partitions}")

    @property
    def num_partitions(self) -> int:
        if self.partitions is not None:
            return self.partitions
        total_bits, _ = bloom_size(self.expected_lines, self.fpr)
        return max(1, min(MAX_PARTITIONS, math.ceil(total_bits / 8 / PART_BYTES)))

    @property
    def part_size(self) -> tuple[int, int]:
        """``(bits, hashes)`` of one filter part."""
        return bloom_size(math.ceil(self.expected_lines / self.num_partitions), self.fpr)

    def filter_parameters(self) -> dict[str, Any]:
        """Everything that decides which lines match and where their bits are."""
        bits, hashes = self.part_size
        return {
            "expected_lines": self.expected_lines,
            "fpr": self.fpr,
            "min_line_chars": self.min_line_chars,
            "normalize_whitespace": self.normalize_whitespace,
            "lowercase": self.lowercase,
            "normalize_digits": self.normalize_digits,
            "partitions": self.num_partitions,
            "part_bits": bits,
            "num_hashes": hashes,
            "hash": HASH_SCHEME,
        }

    @property
    def filter_bytes(self) -> int:
        return self.part_size[0] // 8 * self.num_partitions


def normalized_lines(text: str, config: LineDedupConfig) -> list[str]:
    """The comparison keys of ``text``'s lines (split on ``\\n``; one key per line, same order).

    Normalization is applied to the whole text at once (one regex pass instead of one per line)
    and never adds or removes a newline, so keys and lines stay aligned.
    """
    if config.lowercase:
        text = text.lower()
    if config.normalize_digits:
        text = _DIGITS.sub("0", text)
    if config.normalize_whitespace:
        return list(map(str.strip, _SPACES.sub(" ", text).split("\n")))
    return text.split("\n")


def _key_lengths(keys: list[str], config: LineDedupConfig) -> list[int]:
    if config.normalize_whitespace:
        return list(map(len, keys))
    return list(map(len, map(str.strip, keys)))


def line_partition(hashes: np.ndarray, partitions: int) -> np.ndarray:
    """Part of each line hash: the top 32 bits scaled to ``[0, partitions)`` (no division)."""
    return (((hashes >> np.uint64(32)) * np.uint64(partitions)) >> np.uint64(32)).astype(np.uint16)


def _id_hash(doc_id: str) -> int:
    return xxhash.xxh3_64_intdigest(doc_id)


def task_files(input_path: str, rank: int = 0, world_size: int = 1) -> list[tuple[str, str]]:
    """``(path, output stem)`` of the files task ``rank`` reads, as ``DocumentReader`` does."""
    return DocumentReader(input_path).files_for_rank(rank, world_size)


def input_stems(input_path: str) -> list[str]:
    """Output stems of the input files in the order ``DocumentReader`` reads them: the global
    order in which first occurrences are decided."""
    return [stem for _path, stem in task_files(input_path)]


def open_fast(path: str) -> IO[bytes] | None:
    """A line-iterable binary handle for the fast paths, or None where only the reference reader
    (``DocumentReader.read_file``) applies. gzip goes through isal (decompresses 2x faster than
    zlib here: 0.21 vs 0.42 CPU s for 117 MB of jsonl)."""
    if "://" in path:
        return None
    if path.endswith(".jsonl.gz"):
        return igzip.open(path, "rb")  # type: ignore[return-value]
    if path.endswith(".jsonl"):
        return open(path, "rb", buffering=1 << 20)
    return None


def _atomic_write_bytes(path: str, data: bytes | memoryview) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _atomic_write_json(path: str, value: Any) -> None:
    _atomic_write_bytes(path, json.dumps(value, indent=1, sort_keys=True).encode())


def _read_json(path: str) -> Any:
    with open(path) as handle:
        return json.load(handle)


# --------------------------------------------------------------------------------------------
# Phase 1: hash lines


class _SignatureFiles:
    """The phase-1 output of one task, and the reader of it used by phases 2 and 3."""

    def __init__(self, folder: str, rank: int):
        base = os.path.join(folder, f"t{rank:05d}")
        self.hashes = base + ".hashes"
        self.parts = base + ".parts"
        self.docs = base + ".docs"
        self.index = base + ".index.json"
        self.counts = base + ".counts.npy"

    def load_index(self, partitions: int) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Per file entries (stem, docs, lines, tracked) and the (files x partitions) counts."""
        entries = _read_json(self.index)["files"]
        counts = np.load(self.counts) if entries else np.zeros((0, partitions), dtype=np.int64)
        return entries, counts.astype(np.int64).reshape(len(entries), partitions)


class LineDedupSignature(PipelineStep):
    """Phase 1: read this task's input files, hash every line and group the hashes by part.

    A reading step (no ``DocumentReader`` before it; it yields no documents): phase 1 needs only
    each record's id, source and text, so building and validating full datatrove Documents
    would cost more than the hashing (measured: ~70% of the phase). Which documents exist and
    which are quarantined must still be exactly what ``DocumentReader`` yields in phase 3, so:

    - records are parsed with orjson; a record passes a quick check only if
      ``validate_record`` would accept it too (string fields, a dict metadata, text that is not
      empty, blank, NUL-containing or too long, and an ``added``/``created`` pair that
      ``validate_record`` accepted before); anything else goes to ``validate_record`` itself;
      duplicate ids and unparsable lines are quarantined as the reader does;
    - local ``.jsonl``/``.jsonl.gz`` files are decompressed with isal (2x zlib here); any other
      file, and any file whose decompression fails, is read with ``DocumentReader.read_file``
      (the reference path), discarding what the fast path wrote for it.

    Files read by the fast path without a single bad record are marked ``checked`` in the index:
    phase 3 reads them without validating again (``LineDedupReader``).

    Args:
        input_path: the stage input (as for ``DocumentReader``).
        output_folder: where the per-task signature files go.
        config: ``LineDedupConfig`` (normalization, minimum length, partitions).
        exempt_sources: sources whose documents are left alone (default none).
        max_chars: longest text accepted (``DocumentReader``'s default).
    """

    type = "🫂 - DEDUP"
    name = "line_dedup_signature"

    def __init__(self, input_path: str, output_folder: str, config: LineDedupConfig,
                 exempt_sources: Iterable[str] = (), max_chars: int = DEFAULT_MAX_CHARS):
        super().__init__()
        self.input_path = input_path
        self.output_folder = output_folder
        self.config = config
        self.exempt_sources = frozenset(exempt_sources)
        self.max_chars = max_chars
        self.flush_lines = FLUSH_LINES  # read here: workers may re-import the module
        self._valid_dates: set[tuple[str, str]] = set()  # (added, created) pairs validate_record accepted

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        os.makedirs(self.output_folder, exist_ok=True)
        files = _SignatureFiles(self.output_folder, rank)
        writer = _SignatureWriter(files, self.config, self.flush_lines)
        reader = DocumentReader(self.input_path, max_chars=self.max_chars)
        try:
            for path, stem in task_files(self.input_path, rank, world_size):
                with self.track_time():
                    mark = writer.mark()
                    try:
                        clean = self._hash_file_fast(path, stem, writer)
                    except _FastPathUnavailable:
                        writer.rollback(mark)
                        self._hash_documents(reader.read_file(path, stem), stem, writer)
                        clean = False
                    writer.finish_file(mark, checked=clean)
        finally:
            writer.close()
        for key in ("documents", "lines", "lines_tracked", "quarantined"):
            self.stat_update(key, value=writer.totals[key])
        writer.commit()
        return
        yield  # a generator that yields nothing, as datatrove expects of a consuming step

    def _hash_documents(self, docs: Iterable[Document], stem: str, writer: _SignatureWriter) -> None:
        """The reference path: documents from ``DocumentReader.read_file``."""
        writer.start(stem)
        for doc in docs:
            active = is_active(doc)
            if not active:
                writer.totals["quarantined"] += 1
            exempt = not active or doc.metadata.get("source") in self.exempt_sources
            writer.add_document(_id_hash(doc.id), None if exempt else doc.text)

    def _hash_file_fast(self, path: str, stem: str, writer: _SignatureWriter) -> bool:
        """Hash one file without building Documents; True if no record was quarantined."""
        handle = open_fast(path)
        if handle is None:
            raise _FastPathUnavailable(path)
        writer.start(stem)
        seen_ids: set[str] = set()
        valid_dates = self._valid_dates
        max_chars = self.max_chars
        exempt_sources = self.exempt_sources
        add_document = writer.add_document
        clean = True
        line_no = 0
        try:
            with handle:
                for line_no, raw in enumerate(handle, start=1):
                    if not raw.strip():
                        continue
                    try:
                        record = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        record = None
                    ok = False
                    if type(record) is dict:
                        decode_record(record)  # metadata as a JSON string -> dict, as the reader does
                        doc_id, text = record.get("id"), record.get("text")
                        added, created = record.get("added"), record.get("created")
                        # Accepts only records that validate_record accepts too; the rest ask it.
                        ok = (type(doc_id) is str and doc_id != "" and type(text) is str
                              and 0 < len(text) <= max_chars and type(record.get("source")) is str
                              and type(record.get("metadata")) is dict
                              and type(added) is str and type(created) is str and (added, created) in valid_dates
                              and "\x00" not in text and not text.isspace()) or self._validates(record)
                        if ok and doc_id in seen_ids:
                            ok = False
                    if not ok:
                        clean = False
                        writer.totals["quarantined"] += 1
                        add_document(_id_hash(f"{stem}:{line_no}"), None)
                        continue
                    seen_ids.add(doc_id)
                    add_document(_id_hash(doc_id), None if record["source"] in exempt_sources else text)
        except (EOFError, OSError, ValueError) as err:  # broken compression: let the reference decide
            raise _FastPathUnavailable(path) from err
        except Exception as err:  # isal's own errors
            if type(err).__module__.startswith("isal"):
                raise _FastPathUnavailable(path) from err
            raise
        return clean

    def _validates(self, record: dict[str, Any]) -> bool:
        try:
            validate_record(record, max_chars=self.max_chars)
        except (InvalidRecord, KeyError, TypeError):
            return False
        if len(self._valid_dates) < 10_000:
            self._valid_dates.add((record["added"], record["created"]))
        return True


class _FastPathUnavailable(Exception):
    """This file must be read by the reference path (``DocumentReader.read_file``)."""


class _SignatureWriter:
    """Accumulates one task's line hashes and writes them in chunks of whole documents.

    Texts are hashed in batches of ``HASH_BATCH_CHARS``: joined by newlines, normalized, split
    and hashed in one go (normalization never crosses a newline, so a batch gives each line the
    key it would get alone), which saves the per-document calls (~10% of phase 1).
    """

    def __init__(self, files: _SignatureFiles, config: LineDedupConfig, flush_lines: int):
        self.files = files
        self.config = config
        self.flush_lines = flush_lines
        self.partitions = config.num_partitions
        self.min_chars = max(1, config.min_line_chars)
        self.handles = {name: open(getattr(files, name) + ".tmp", "wb") for name in ("hashes", "parts", "docs")}
        self.entries: list[dict[str, Any]] = []
        self.count_rows: list[np.ndarray] = []
        self.totals: Counter[str] = Counter()
        self.stem: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.hashes = array.array("Q")
        self.lengths = array.array("q")
        self.doc_ids = array.array("Q")
        self.doc_lines = array.array("I")
        self.pending: list[str] = []
        self.pending_chars = 0
        self.pending_lines = 0

    def start(self, stem: str) -> None:
        self.stem = stem
        self._reset()

    def add_document(self, id_hash: int, text: str | None) -> None:
        """One document in input order; ``text`` None: not tracked (quarantined or exempt)."""
        self.doc_ids.append(id_hash)
        if text is None:
            self.doc_lines.append(0)
            return
        lines = text.count("\n") + 1
        self.doc_lines.append(lines)
        self.pending.append(text)
        self.pending_lines += lines
        self.pending_chars += len(text)
        if self.pending_chars >= HASH_BATCH_CHARS:
            self._hash_pending()
        if len(self.hashes) + self.pending_lines >= self.flush_lines:
            self.flush()

    def _hash_pending(self) -> None:
        if not self.pending:
            return
        keys = normalized_lines("\n".join(self.pending), self.config)
        if len(keys) != self.pending_lines:
            raise RuntimeError(f"normalization changed the line count ({self.pending_lines} -> {len(keys)})")
        self.hashes.extend(map(xxhash.xxh3_64_intdigest, keys))
        self.lengths.extend(_key_lengths(keys, self.config))
        self.pending.clear()
        self.pending_chars = self.pending_lines = 0

    def flush(self) -> None:
        self._hash_pending()
        if not self.doc_ids:
            return
        line_hashes = np.frombuffer(self.hashes, dtype=np.uint64)
        tracked = np.frombuffer(self.lengths, dtype=np.int64) >= self.min_chars
        line_parts = line_partition(line_hashes, self.partitions)
        tracked_parts = line_parts[tracked]
        order = np.argsort(tracked_parts, kind="stable")
        self.handles["hashes"].write(line_hashes[tracked][order].tobytes())
        self.handles["parts"].write(np.where(tracked, line_parts, np.uint16(UNTRACKED)).astype("<u2").tobytes())
        docs = np.empty(len(self.doc_ids), dtype=_DOCS_DTYPE)
        docs["id"] = np.frombuffer(self.doc_ids, dtype=np.uint64)
        docs["lines"] = np.frombuffer(self.doc_lines, dtype=np.uint32)
        self.handles["docs"].write(docs.tobytes())
        self.count_rows.append(np.bincount(tracked_parts, minlength=self.partitions).astype(np.int64))
        n_tracked = int(tracked.sum())
        self.entries.append({"stem": self.stem, "docs": len(docs), "lines": len(line_hashes), "tracked": n_tracked})
        self.totals["documents"] += len(docs)
        self.totals["lines"] += len(line_hashes)
        self.totals["lines_tracked"] += n_tracked
        self._reset()

    def mark(self) -> tuple[dict[str, int], int, Counter[str]]:
        """Where the current file starts (for ``rollback`` and ``finish_file``)."""
        self.flush()
        return {k: h.tell() for k, h in self.handles.items()}, len(self.entries), Counter(self.totals)

    def rollback(self, mark: tuple[dict[str, int], int, Counter[str]]) -> None:
        """Forget everything written since ``mark``."""
        positions, entries, totals = mark
        for key, handle in self.handles.items():
            handle.seek(positions[key])
            handle.truncate()
        del self.entries[entries:]
        del self.count_rows[entries:]
        self.totals = Counter(totals)
        self._reset()

    def finish_file(self, mark: tuple[dict[str, int], int, Counter[str]], checked: bool) -> None:
        self.flush()
        for entry in self.entries[mark[1]:]:
            entry["checked"] = checked

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def commit(self) -> None:
        files = self.files
        for name in ("hashes", "parts", "docs"):
            os.replace(getattr(files, name) + ".tmp", getattr(files, name))
        counts = np.stack(self.count_rows) if self.count_rows else np.zeros((0, self.partitions), dtype=np.int64)
        with open(files.counts + ".tmp", "wb") as handle:
            np.save(handle, counts)
        os.replace(files.counts + ".tmp", files.counts)
        # The index is written last: its presence means the task's signature files are complete.
        _atomic_write_json(files.index, {"files": self.entries, "partitions": self.partitions})


# --------------------------------------------------------------------------------------------
# Phase 2: decide first occurrences, part by part


def verdict_block_bytes(counts: np.ndarray) -> np.ndarray:
    """Bytes of each part's verdict block of one task: its tracked lines, one bit each."""
    return (counts.sum(axis=0) + 7) // 8


def owned_parts(owner: int, owners: int, partitions: int) -> range:
    return range(owner, partitions, owners)


def first_occurrences(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True)``, 2.4x faster: an unstable argsort (numpy's
    vectorized quicksort) and the smallest index of each run of equal values."""
    if not len(values):
        return values[:0], np.zeros(0, dtype=np.int64)
    order = np.argsort(values)
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.minimum.reduceat(order, starts)


class LineDedupDecide(PipelineStep):
    """Phase 2: for each part this task owns, decide which lines are first occurrences.

    A line is a duplicate if its hash came earlier in the run (in global file order, exactly)
    or the previous generation's filter part holds it (Bloom: false positives possible at the
    filter's rate). Writes the verdicts for each phase-1 task and the updated filter parts.

    Args:
        work_folder: the run's work folder (``signature/`` in, ``decide/`` out).
        config: ``LineDedupConfig``.
        signature_tasks: number of phase-1 tasks.
        file_order: stems in global order (``input_stems``); unknown stems sort after, by name.
        base_state: folder of the previous generation's parts (None: start empty).
    """

    type = "🫂 - DEDUP"
    name = "line_dedup_decide"

    def __init__(
        self,
        work_folder: str,
        config: LineDedupConfig,
        signature_tasks: int,
        file_order: Sequence[str] = (),
        base_state: str | None = None,
    ):
        super().__init__()
        self.work_folder = work_folder
        self.config = config
        self.signature_tasks = signature_tasks
        self.file_order = list(file_order)
        self.base_state = base_state

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        partitions = self.config.num_partitions
        part_bits, num_hashes = self.config.part_size
        signature = os.path.join(self.work_folder, "signature")
        out = os.path.join(self.work_folder, "decide")
        filter_dir = os.path.join(out, "filter")
        os.makedirs(filter_dir, exist_ok=True)
        position = {stem: i for i, stem in enumerate(self.file_order)}

        tasks = []
        for t in range(self.signature_tasks):
            files = _SignatureFiles(signature, t)
            entries, counts = files.load_index(partitions)
            file_starts = np.concatenate([[0], np.cumsum(counts.sum(axis=1))]).astype(np.int64)
            part_offsets = np.concatenate([np.zeros((len(entries), 1), np.int64), np.cumsum(counts, axis=1)], axis=1)
            tasks.append((entries, counts, file_starts, part_offsets, files.hashes))
        # Global order of the (task, file) segments: input file order, then task and file index
        # (a stem appears in one task only; the tie-breakers just make the order total).
        segments = sorted(
            ((t, e) for t, task in enumerate(tasks) for e in range(len(task[0]))),
            key=lambda te: (position.get(tasks[te[0]][0][te[1]]["stem"], len(position)), tasks[te[0]][0][te[1]]["stem"], te),
        )
        blocks: dict[int, list[bytes]] = {t: [] for t in range(self.signature_tasks)}
        with contextlib.ExitStack() as stack:
            handles = [stack.enter_context(open(task[4], "rb")) for task in tasks]
            for part in owned_parts(rank, world_size, partitions):
                self._part(part, tasks, segments, handles, blocks, filter_dir, part_bits, num_hashes)
        for t in range(self.signature_tasks):
            _atomic_write_bytes(os.path.join(out, f"r{rank:05d}-t{t:05d}.bits"), b"".join(blocks[t]))
        return
        yield

    def _part(self, part: int, tasks: list[Any], segments: list[tuple[int, int]], handles: list[Any],
              blocks: dict[int, list[bytes]], filter_dir: str, part_bits: int, num_hashes: int) -> None:
        """Decide one part: read its hashes in global order, check and update its filter."""
        with self.track_time():
            pieces, starts = [], {}
            offset = 0
            for t, e in segments:
                _entries, counts, file_starts, part_offsets, _path = tasks[t]
                count = int(counts[e, part])
                start = int(file_starts[e] + part_offsets[e, part])
                # Explicit reads, not a memory map: only this part's hashes become resident.
                handle = handles[t]
                handle.seek(start * 8)
                pieces.append(np.frombuffer(handle.read(count * 8), dtype=np.uint64))
                starts[(t, e)] = (offset, count)
                offset += count
            line_hashes = np.concatenate(pieces) if pieces else np.zeros(0, np.uint64)
            del pieces  # the part's hashes are held once, not twice, while it is decided
            duplicate, bloom, part_stats = self._decide_part(line_hashes, part, part_bits, num_hashes)
            bloom.save(os.path.join(filter_dir, f"part-{part:05d}.bloom"))
            _atomic_write_json(os.path.join(filter_dir, f"part-{part:05d}.json"), part_stats)
            for key, value in part_stats.items():
                if key in ("lines", "duplicates_in_run", "seen_in_earlier_runs", "inserted"):
                    self.stat_update(key, value=value)
            for t, task in enumerate(tasks):
                flags = [duplicate[starts[(t, e)][0] : sum(starts[(t, e)])] for e in range(len(task[0]))]
                bits = np.concatenate(flags) if flags else np.zeros(0, np.bool_)
                blocks[t].append(np.packbits(bits, bitorder="little").tobytes())

    def _decide_part(
        self, line_hashes: np.ndarray, part: int, part_bits: int, num_hashes: int
    ) -> tuple[np.ndarray, BloomFilter, dict[str, Any]]:
        base = os.path.join(self.base_state, f"part-{part:05d}.bloom") if self.base_state else None
        bloom = BloomFilter.load(base) if base else BloomFilter(part_bits, num_hashes)
        if (bloom.num_bits, bloom.num_hashes) != (part_bits, num_hashes):
            raise RunError(f"{base} has {bloom.num_bits} bits and {bloom.num_hashes} hashes, expected {part_bits}/{num_hashes}")
        duplicate = np.ones(len(line_hashes), dtype=np.bool_)
        seen_before = inserted = 0
        if len(line_hashes):
            unique, first = first_occurrences(line_hashes)
            bloom.prepare_bulk()
            in_filter = bloom.contains_hashes(unique) if bloom.items_added else np.zeros(len(unique), np.bool_)
            duplicate[first] = in_filter
            new = unique[~in_filter]
            bloom.add_hashes(new)
            seen_before, inserted = int(in_filter.sum()), len(new)
            bloom.pack()
        stats = {
            "part": part,
            "lines": len(line_hashes),
            "duplicates_in_run": len(line_hashes) - seen_before - inserted,
            "seen_in_earlier_runs": seen_before,
            "inserted": inserted,
            "items": bloom.items_added,
            "bits_set": bloom.bits_set(),
            "bits": bloom.num_bits,
        }
        return duplicate, bloom, stats


# --------------------------------------------------------------------------------------------
# Phase 3: remove the duplicate lines


def remove_lines(lines: list[str], remove: Sequence[bool]) -> list[str]:
    """Drop the flagged lines; a blank line left next to another blank line (or at the start)
    by a removal goes too, so removed paragraphs do not leave holes."""
    kept: list[str] = []
    after_removal = False
    for line, drop in zip(lines, remove, strict=True):
        if drop:
            after_removal = True
            continue
        if after_removal:  # only here does blankness matter (strip() per line costs)
            if not line.strip():
                if not kept or not kept[-1].strip():
                    continue
            else:
                after_removal = False
        kept.append(line)
    if after_removal:
        while kept and not kept[-1].strip():
            kept.pop()
    return kept


class LineDedupReader(DocumentReader):
    """Phase 3's reader: ``DocumentReader``, except that files phase 1 read and checked without
    finding a bad record (index entries ``checked``) are parsed without validating them again.

    Phase 3 compares every document's id and line count with phase 1's, so a file that changed
    in between still fails loudly.

    Args:
        input_path: the stage input (as in phase 1).
        signature_folder: phase 1's output folder.
        partitions: parts of the hash space (to read the index).
    """

    def __init__(self, input_path: str, signature_folder: str, partitions: int):
        super().__init__(input_path)
        self.signature_folder = signature_folder
        self.partitions = partitions
        self._checked: set[str] = set()

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        entries, _ = _SignatureFiles(self.signature_folder, rank).load_index(self.partitions)
        stems: dict[str, bool] = {}
        for entry in entries:
            stems[entry["stem"]] = stems.get(entry["stem"], True) and bool(entry.get("checked"))
        self._checked = {stem for stem, checked in stems.items() if checked}
        yield from super().run(data, rank, world_size)

    def read_file(self, path: str, stem: str) -> Iterator[Document]:
        handle = open_fast(path) if stem in self._checked else None
        if handle is None:
            yield from super().read_file(path, stem)
            return
        documents = 0
        with handle:
            for line_no, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    doc = record_to_document(orjson.loads(raw))
                except (orjson.JSONDecodeError, KeyError, TypeError) as err:
                    raise RuntimeError(f"{path}:{line_no}: unreadable now, valid in phase 1 (input changed during the run?)") from err
                doc.metadata[INPUT_KEY] = stem
                doc.metadata[LINE_KEY] = line_no
                documents += 1
                yield doc
        self.stat_update("documents", value=documents)


class LineDedupFilter(PipelineStep):
    """Phase 3: remove the lines that phase 2 found to be duplicates.

    Must see the same documents, in the same order and with the same task count, as phase 1
    (it checks document ids and line counts and fails loudly otherwise).

    Args:
        work_folder: the run's work folder.
        config: ``LineDedupConfig``.
        owners: number of phase-2 tasks.
        exempt_sources: sources left alone (as in phase 1).
    """

    type = "✂️ - FORMAT"
    name = STEP_NAME

    def __init__(self, work_folder: str, config: LineDedupConfig, owners: int, exempt_sources: Iterable[str] = ()):
        super().__init__()
        self.work_folder = work_folder
        self.config = config
        self.owners = owners
        self.exempt_sources = frozenset(exempt_sources)

    def _verdicts(self, rank: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This task's verdict bits (packed, all owners) and the bit offset of each part's block."""
        partitions = self.config.num_partitions
        block_bytes = verdict_block_bytes(counts)
        part_start = np.zeros(partitions, dtype=np.int64)
        chunks = []
        offset = 0
        for owner in range(self.owners):
            path = os.path.join(self.work_folder, "decide", f"r{owner:05d}-t{rank:05d}.bits")
            chunk = np.fromfile(path, dtype=np.uint8)
            expected = sum(int(block_bytes[p]) for p in owned_parts(owner, self.owners, partitions))
            if chunk.size != expected:
                raise RuntimeError(f"{path}: {chunk.size} bytes, expected {expected}")
            for p in owned_parts(owner, self.owners, partitions):
                part_start[p] = offset * 8
                offset += int(block_bytes[p])
            chunks.append(chunk)
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)), part_start

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        partitions = self.config.num_partitions
        files = _SignatureFiles(os.path.join(self.work_folder, "signature"), rank)
        entries, counts = files.load_index(partitions)
        verdicts, part_start = self._verdicts(rank, counts)
        # Read entry by entry (not memory-mapped): memory stays bounded by one file chunk.
        with open(files.parts, "rb") as parts_file, open(files.docs, "rb") as docs_file:
            yield from self._filter(data, rank, entries, counts, verdicts, part_start, parts_file, docs_file)

    def _filter(self, data: DocumentsPipeline, rank: int, entries: list[dict[str, Any]], counts: np.ndarray,
                verdicts: np.ndarray, part_start: np.ndarray, parts_file: Any, docs_file: Any) -> DocumentsPipeline:
        seen_in_part = np.zeros(self.config.num_partitions, dtype=np.int64)  # tracked lines of earlier chunks
        entry: dict[str, Any] = {}
        entry_index = -1
        doc_ids: list[int] = []
        doc_lines: list[int] = []
        doc_pos = file_line = 0
        remove: list[bool] = []
        # Counted locally and reported once: datatrove's stat_update per document costs ~10%.
        counters: Counter[str] = Counter()
        for doc in data:
            while doc_pos == len(doc_ids):
                entry_index += 1
                if entry_index >= len(entries):
                    raise RuntimeError(f"task {rank}: more documents than in phase 1 (input changed during the run?)")
                entry = entries[entry_index]
                line_parts = np.fromfile(parts_file, dtype="<u2", count=entry["lines"])
                records = np.fromfile(docs_file, dtype=_DOCS_DTYPE, count=entry["docs"])
                if len(line_parts) != entry["lines"] or len(records) != entry["docs"]:
                    raise RuntimeError(f"task {rank}: phase 1 files are shorter than their index")
                doc_ids, doc_lines = records["id"].tolist(), records["lines"].tolist()
                # A list: per-document slices and tests on it are cheaper than numpy calls.
                remove = self._file_removals(entry, counts[entry_index], line_parts, verdicts, part_start, seen_in_part).tolist()
                seen_in_part += counts[entry_index]
                doc_pos = file_line = 0
            if str(doc.metadata.get(INPUT_KEY, "")) != entry["stem"] or doc_ids[doc_pos] != _id_hash(doc.id):
                raise RuntimeError(f"task {rank}: document {doc.id!r} differs from phase 1 (input changed during the run?)")
            n_lines = doc_lines[doc_pos]
            doc_pos += 1
            doc_remove = remove[file_line : file_line + n_lines]
            file_line += n_lines
            if n_lines == 0:
                if is_active(doc):
                    counters["documents_exempt"] += 1
                yield doc
                continue
            counters["lines_in"] += n_lines
            if not any(doc_remove):
                yield doc
                continue
            with self.track_time():
                self._apply(doc, doc_remove, n_lines, counters)
            yield doc
        for key, value in counters.items():
            self.stat_update(key, value=value)
        if entry_index + 1 < len(entries) or doc_pos < len(doc_ids):
            raise RuntimeError(f"task {rank}: fewer documents than in phase 1 (input changed during the run?)")

    def _file_removals(
        self,
        entry: dict[str, Any],
        counts: np.ndarray,
        line_parts: np.ndarray,
        verdicts: np.ndarray,
        part_start: np.ndarray,
        seen_in_part: np.ndarray,
    ) -> np.ndarray:
        """Per line of one file: True where the line is to be removed."""
        remove = np.zeros(entry["lines"], dtype=np.bool_)
        tracked = np.flatnonzero(line_parts != UNTRACKED)
        if len(tracked) != entry["tracked"]:
            raise RuntimeError(f"{entry['stem']}: line parts do not match the index")
        if not len(tracked):
            return remove
        # Lines in the order phase 1 wrote their hashes (by part, then line): their verdict bits
        # sit at part_start[part] + (earlier files' lines in that part) + rank within the file.
        order = tracked[np.argsort(line_parts[tracked], kind="stable")]
        first_in_file = np.concatenate([[0], np.cumsum(counts)[:-1]])
        base = np.repeat(part_start + seen_in_part - first_in_file, counts)
        bit = base + np.arange(len(order), dtype=np.int64)
        remove[order] = ((verdicts[bit >> 3] >> (bit & 7).astype(np.uint8)) & 1).astype(np.bool_)
        return remove

    def _apply(self, doc: Document, doc_remove: list[bool], n_lines: int, counters: Counter[str]) -> None:
        lines = doc.text.split("\n")
        if len(lines) != n_lines:
            raise RuntimeError(f"document {doc.id!r}: {len(lines)} lines, phase 1 saw {n_lines}")
        kept = remove_lines(lines, doc_remove)
        text = "\n".join(kept)
        removed_lines = sum(doc_remove)
        removed_chars = len(doc.text) - len(text)
        meta = nordpipe_meta(doc)
        meta.setdefault("chars_in", len(doc.text))
        meta[STEP_NAME] = {"lines_removed": removed_lines, "characters_removed": removed_chars}
        counters["lines_removed"] += removed_lines
        counters["characters_removed"] += removed_chars
        counters["documents_changed"] += 1
        if not text.strip():
            # The original text stays on the removed document (written to removed/ on request).
            mark_removed(doc, f"{STEP_NAME}:empty")
            counters["documents_emptied"] += 1
        else:
            doc.text = text


# --------------------------------------------------------------------------------------------
# The persistent state


STATE_KIND = "lines"


class LineDedupState:
    """The line-dedup state directory (``state.StateDirectory``, kind ``lines``) and the
    generation a run builds on: the current one, or ``at`` (``generation`` 0: a new, empty state)."""

    def __init__(self, directory: str, at: int | None = None):
        self.store = StateDirectory(directory, STATE_KIND)
        self.current = self.store.current() if at is None else self.store.generation(at)

    @classmethod
    def open(cls, directory: str, at: int | None = None) -> LineDedupState:
        return cls(directory, at)

    @property
    def directory(self) -> str:
        return self.store.directory

    @property
    def generation(self) -> int:
        return self.current.number

    @property
    def folder(self) -> str | None:
        return self.current.folder

    @property
    def parameters(self) -> dict[str, Any]:
        return self.current.parameters

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.current.runs

    @property
    def summary(self) -> dict[str, Any]:
        return self.current.summary

    def seen_files(self) -> set[str]:
        return {item["path"] for run in self.runs for item in run.get("inputs", [])} | {
            path for run in self.runs for path in run.get("files", [])}

    def check_parameters(self, config: LineDedupConfig) -> None:
        """Refuse a config whose filter parameters differ from the state's."""
        if not self.generation:
            return
        wanted = config.filter_parameters()
        changed = [f"{k}: state {self.parameters.get(k)!r}, requested {wanted[k]!r}"
                   for k in wanted if self.parameters.get(k) != wanted[k]]
        if changed:
            raise RunError(f"the line-dedup state {self.directory} was built with other parameters ({'; '.join(changed)}); "
                           "use the state's parameters or a new --state folder")

    def commit(self, staging: str, run: dict[str, Any], config: LineDedupConfig,
               keep: int = DEFAULT_KEEP_GENERATIONS) -> LineDedupState:
        """Write the next generation from the staged parts and switch ``CURRENT`` to it."""
        partitions = config.num_partitions
        files = {f"part-{part:05d}.bloom": os.path.join(staging, f"part-{part:05d}.bloom") for part in range(partitions)}
        parts = [_read_json(os.path.join(staging, f"part-{part:05d}.json")) for part in range(partitions)]
        bits = sum(p["bits"] for p in parts)
        bits_set = sum(p["bits_set"] for p in parts)
        num_hashes = config.part_size[1]
        summary = {
            "lines_in_filter": sum(p["items"] for p in parts),
            "fill_ratio": bits_set / bits,
            "max_part_fill_ratio": max(p["bits_set"] / p["bits"] for p in parts),
            # Lookups land in one part each, so the filter's rate is the mean of the parts' rates.
            "estimated_fpr": sum((p["bits_set"] / p["bits"]) ** num_hashes for p in parts) / len(parts),
            "filter_bytes": bits // 8,
        }
        self.store.commit(self.current, run, {"parameters": config.filter_parameters(), "summary": summary}, files, keep)
        return LineDedupState(self.directory)


def resolve_config(state: LineDedupState, requested: dict[str, Any]) -> LineDedupConfig:
    """The run's config: options given explicitly, else the state's, else the defaults."""
    values: dict[str, Any] = {}
    if state.generation:
        values = {f.name: state.parameters[f.name] for f in fields(LineDedupConfig) if f.name in state.parameters}
    values.update({k: v for k, v in requested.items() if v is not None})
    config = LineDedupConfig(**values)
    state.check_parameters(config)
    return config


# --------------------------------------------------------------------------------------------
# Orchestration


def run_line_dedup(
    input_path: str,
    output_path: str,
    state_dir: str,
    config: dict[str, Any] | LineDedupConfig | None = None,
    options: RunOptions | None = None,
    exempt_sources: Iterable[str] = (),
    rerun_seen: bool = False,
    keep_generations: int = DEFAULT_KEEP_GENERATIONS,
) -> dict[str, Any]:
    """Run line dedup from INPUT to OUTPUT against the state in ``state_dir``; return the stats.

    ``config`` holds the options given explicitly (a dict, None for unset); unset ones come from
    the existing state, else from ``LineDedupConfig``'s defaults. Input files whose content the
    state has seen already are refused (``state.check_unseen``) unless ``rerun_seen``; the state
    keeps ``keep_generations`` generations.
    """
    options = options or RunOptions()
    exempt = sorted(set(exempt_sources))
    resolved: dict[str, Any] = {}

    base_file = OutputLayout.of(output_path).state_path(WORK_DIR, "base.json")

    def resolve_state() -> LineDedupState:
        """The generation this run builds on, checked. Before anything is written: lines of files
        the state holds already would all be "seen": refuse and name the way back, unless this is
        the same run being finished."""
        state = LineDedupState.open(state_dir)
        base = _read_json(base_file) if os.path.exists(base_file) else {}
        resolved["base_run"] = base.get("run_id")
        if state.current.has_run(base.get("run_id", "")):
            resolved["inputs"] = base["inputs"]
            return state
        redo = state.store.redone_run(output_path, input_path)
        if redo is not None:
            # the state's last run (same INPUT, same OUTPUT) being redone, its output deleted or
            # --force: build on the generation before that run, as the run itself did
            parent = run_parent(redo)
            if parent and parent not in {g.number for g in state.store.generations()}:
                raise RunError(f"{os.path.abspath(output_path)} is the last run of the line-dedup state {state.directory}, "
                               f"being redone, but {_way_back(state.store, redo)}")
            state = LineDedupState.open(state_dir, at=parent)
        if base and state.generation != base["generation"]:
            # Another run updated the state since this one started: its half-done phases are stale.
            if not options.force:
                raise RunError(f"the state {state.directory} changed since this run started (generation "
                               f"{base['generation']} -> {state.generation}); rerun with --force to start over")
            resolved["discard"] = True
            base = {}
        resolved["inputs"] = base.get("inputs") or input_digests(input_path)
        if not rerun_seen:
            check_unseen(state.store, state.current, resolved["inputs"], "line-dedup state", output=output_path,
                         input_path=input_path)
        return state

    def parameters() -> dict[str, Any]:
        # read under the state's lock: the state's own parameters fill in the unset options
        state = LineDedupState.open(state_dir)
        requested = asdict(config) if isinstance(config, LineDedupConfig) else dict(config or {})
        cfg = resolved["config"] = resolve_config(state, requested)
        resolved["state"] = resolve_state()
        return {**cfg.filter_parameters(), "exempt_sources": exempt, "state": state.directory}

    # The state's lock (DIR/.nordpipe/lock) keeps two runs from updating one state at once.
    with StageRun(STAGE, input_path, output_path, options, parameters, extra_locks=(state_dir,)) as run:
        if run.empty:
            # nothing to dedup: an empty output, and the state is left as it is
            run.execute([DocumentReader(input_path), run.writer()])
            return run.finish()
        output_path = run.output_path
        state_path = run.state
        work = os.path.join(state_path, WORK_DIR)
        tasks = run.tasks
        if resolved.get("discard"):
            _discard_partial_run(output_path)
        if resolved.get("base_run") and not os.path.exists(os.path.join(work, "base.json")):
            # the earlier run that parameters() resolved the state for was discarded (--force):
            # this is a new run (a redo of that run, or another INPUT into its OUTPUT)
            resolved["state"] = resolve_state()
        state, cfg = resolved["state"], resolved["config"]
        owners = min(tasks, cfg.num_partitions)
        base_file = os.path.join(work, "base.json")
        base = _read_json(base_file) if os.path.exists(base_file) else None
        committed = base is not None and any(r.get("run_id") == base["run_id"] for r in state.runs)
        inputs = resolved["inputs"]
        if base is None:
            os.makedirs(work, exist_ok=True)
            base = {"generation": state.generation, "run_id": uuid.uuid4().hex, "inputs": inputs}
            _atomic_write_json(base_file, base)
        if not committed:
            base_folder = None
            if base["generation"]:
                base_folder = os.path.join(state.directory, f"gen-{base['generation']:06d}")
            file_order = input_stems(input_path)
            run.execute(
                [LineDedupSignature(input_path, os.path.join(work, "signature"), cfg, exempt)],
                os.path.join(work, "logs-signature"), job_name="nordpipe-lines-signature",
            )
            run.execute(
                [LineDedupDecide(work, cfg, tasks, file_order, base_folder)],
                os.path.join(work, "logs-decide"), owners, job_name="nordpipe-lines-decide",
            )
            run.execute(
                [LineDedupReader(input_path, os.path.join(work, "signature"), cfg.num_partitions),
                 LineDedupFilter(work, cfg, owners, exempt), run.writer()],
                job_name="nordpipe-lines-filter",
            )
            if run.submitted_only:
                return run.submit()  # the finish job commits the state (runner.slurm)
            run.finishing()
            seen_before = state.seen_files()
            record = {
                "run_id": base["run_id"],
                "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "input": absolute(input_path),
                "output": os.path.abspath(output_path),
                "inputs": inputs,
                "rerun_seen": rerun_seen,
                "files_seen_before": len([f for f in inputs if f["path"] in seen_before]),
                **_signature_totals(work, tasks, cfg.num_partitions),
                **_decide_totals(work, cfg.num_partitions),
            }
            kill_point("lines.before-commit")
            state = state.commit(os.path.join(work, "decide", "filter"), record, cfg, keep_generations)
            kill_point("lines.after-commit")
        else:
            if run.submitted_only:
                return run.submit()
            run.finishing()
            state.store.prune(keep_generations)  # a run killed right after its commit had not pruned yet
        stats = run.merge_stats()
        this_run = next(r for r in state.runs if r.get("run_id") == base["run_id"])
        step = stats.get("steps", {}).get(STEP_NAME, {})
        summary = {
            "lines": this_run["lines"],
            "lines_checked": this_run["lines_tracked"],
            "lines_removed": int(step.get("lines_removed", 0)),
            "characters_removed": int(step.get("characters_removed", 0)),
            "documents_emptied": int(step.get("documents_emptied", 0)),
            "documents_changed": int(step.get("documents_changed", 0)),
            "duplicates_within_run": this_run["duplicates_in_run"],
            "duplicates_of_earlier_runs": this_run["seen_in_earlier_runs"],
            "input_files_seen_before": this_run["files_seen_before"],
            "state_generation": this_run["generation"],
            "filter_lines": state.summary["lines_in_filter"],
            "filter_bytes": state.summary["filter_bytes"],
            "filter_fill_ratio": round(state.summary["fill_ratio"], 6),
            "filter_estimated_fpr": float(f"{state.summary['estimated_fpr']:.3g}"),
        }
        stats[STEP_NAME] = summary
        stats["extra"] = summary
        return run.complete(stats)


def _discard_partial_run(output_path: str) -> None:
    """Forget the outputs and phase state of an unfinished run (run.json and the lock stay)."""
    for sub in ("documents", "removed", "quarantine"):
        shutil.rmtree(os.path.join(output_path, sub), ignore_errors=True)
    for sub in (WORK_DIR, "datatrove", "tasks", "tmp"):
        shutil.rmtree(OutputLayout.of(output_path).state_path(sub), ignore_errors=True)


def _signature_totals(work: str, tasks: int, partitions: int) -> dict[str, int]:
    totals = {"documents": 0, "lines": 0, "lines_tracked": 0}
    for t in range(tasks):
        entries, _ = _SignatureFiles(os.path.join(work, "signature"), t).load_index(partitions)
        for entry in entries:
            totals["documents"] += entry["docs"]
            totals["lines"] += entry["lines"]
            totals["lines_tracked"] += entry["tracked"]
    return totals


def _decide_totals(work: str, partitions: int) -> dict[str, int]:
    totals = {"duplicates_in_run": 0, "seen_in_earlier_runs": 0, "inserted": 0}
    for part in range(partitions):
        stats = _read_json(os.path.join(work, "decide", "filter", f"part-{part:05d}.json"))
        for key in totals:
            totals[key] += stats[key]
    return totals
