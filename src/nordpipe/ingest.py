"""Ingest: raw dumps -> standardized documents (``ROOT/NAME/documents/*.jsonl.gz``) + datasheet.

Raw formats, recognized by suffix:

- ``.jsonl``/``.ndjson`` (optionally ``.gz``/``.zst``): one JSON object per line;
- ``.json`` (optionally ``.gz``/``.zst``): a JSON array of objects (read whole: keep such files small);
- ``.csv``/``.tsv`` (optionally ``.gz``/``.zst``): a header row, then one record per row;
- ``.parquet``: one record per row, read in batches;
- a folder of ``.txt``/``.md`` files: one document per file (its path becomes ``metadata.path``);
- ``.warc``/``.warc.gz``/``.arc.gz`` (HTML responses, text extracted by ``nordpipe.extract``) and
  ``.wet``/``.warc.wet.gz`` (text conversions): URL and crawl date go to ``metadata.url`` and
  ``created``.

Every raw record is mapped with an ``IngestConfig`` (flags or ``pipelines/datasets/NAME.yaml``)
and validated against the schema; what fails goes to quarantine with file, line and reason.
Input already in the standardized format (``is_standardized``, decided per file from its first
record) keeps its ids, dates and metadata when no mapping flag is given.

Invariants (the stage contract): ingest never loses a readable record, and never holds much more
than ``documents.max_line_bytes_for(--max-chars)`` bytes of one record in memory. Damage costs
only what it touches: a bad byte in a CSV costs its row, a broken gzip member / zstd frame /
parquet row group / WARC record costs that unit (quarantined with ``byte_offset`` and ``bytes``)
and reading resumes after it; a line over the cap is counted, not kept (``too long``); a record
too deeply nested to write is quarantined (``too deep``), not a crashed task. Without any date
source (no ``--created`` and no date field in a file's first records) the run stops before any
work with ``MissingDateError`` (exit 2) instead of quarantining everything.
Each raw file (or text folder) is one unit of work, so tasks never split a file and output names
(``<file stem>.jsonl.gz``, ``<stem>-0001.jsonl.gz`` for further shards) do not depend on the
number of tasks.

Raw-file bookkeeping (what incremental pipelines build on, ``nordpipe.pipeline``): every raw file
is signed by what was read of it, when it was read, never by a later look at the file.

- *Append-only files* are uncompressed ``.jsonl``/``.ndjson`` (``is_append_only``): read line by
  line from a start position (``RawUnit.start``, ``start_line``; ``nordpipe ingest --files-from``
  lines ``PATH<TAB>OFFSET<TAB>LINE[<TAB>XXH3]``). Only complete lines are consumed. A last line
  without its newline is consumed only when it is a whole JSON value (a file written without a
  final newline; ``open_line`` in the record, and the next read expects the newline first);
  otherwise it is a writer mid-append and is *held back*: not read, not quarantined, counted in
  the stats (``incomplete last line``) and read when it is complete. Line numbers (quarantine
  records, default ids ``{dataset}-{file}-{line}``) continue from ``start_line``, so a file read
  in parts gives the ids and line numbers of one whole read, and whether a file is already in
  the standardized format is decided from the file's first record, not the first one read.
  Reading from ``start``, the reader hashes the first ``start`` bytes again; when they differ
  from the expected hash (``RawUnit.expect``), the file is shorter than ``start``, or ``start``
  is not where a line begins, the file changed in the middle and is read again in full
  (``restarted`` in the record; counted as ``read again in full``).
- *Whole files* (everything else: compressed files, json, csv/tsv, parquet, WARC/WET, text
  files) are hashed in one pass before they are read (a text file: the bytes read), so a change
  during the read makes the recorded hash differ from the file, never the reverse.

Each record (``RawFileRead``) holds the format, ``append_only``, ``offset`` (bytes consumed from
the start of the file), ``lines`` (append-only: complete lines consumed), ``xxh3`` (xxh3_128 of
the first ``offset`` bytes), ``size`` (bytes seen: ``offset`` plus a held-back tail, hashed as
``tail_xxh3``) and ``mtime_ns`` (taken before the read, and only when the file had not been
modified for ``SETTLED_NS``, so that a size-and-time check can never vouch for bytes written
during the read). Tasks write one record per unit, atomically, to
``OUTPUT/.nordpipe/raw-files/<stem>.json``; when every task has finished, the stage merges the
records of its units into ``OUTPUT/.nordpipe/raw-files.json`` (``{absolute path: record}``)
before it completes. URLs are not hashed (``xxh3`` null): hashing would download them twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import fsspec
import numpy as np
import orjson
import xxhash
import yaml
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from nordpipe.dates import DateError, normalize_created, normalize_date
from nordpipe.documents import (
    DEFAULT_MAX_CHARS,
    GZIP_MAGIC,
    INPUT_KEY,
    LINE_KEY,
    QUARANTINE_KEY,
    READ_CHUNK,
    ByteLine,
    ByteSource,
    InvalidRecord,
    decode_metadata,
    document_to_record,
    dumps_record,
    iter_byte_lines,
    iter_document_lines,
    iter_jsonl_lines,
    json_error_reason,
    max_line_bytes_for,
    open_binary,
    record_to_document,
    validate_record,
)
from nordpipe.languages import UnknownLanguage, datasheet_code
from nordpipe.layout import OutputLayout, UsageError, atomic_write_json
from nordpipe.runner import RunOptions, StageRun, kill_point
from nordpipe.steps import is_active, quarantine_document

RAW_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "text", "warc", "wet")
_SUFFIX_FORMATS = (
    ((".jsonl", ".ndjson"), "jsonl"),
    ((".json",), "json"),
    ((".csv",), "csv"),
    ((".tsv",), "tsv"),
    ((".parquet",), "parquet"),
    ((".warc.wet", ".wet"), "wet"),
    ((".warc", ".arc"), "warc"),
)
TEXT_SUFFIXES = (".txt", ".md")
CREATED_CANDIDATES = ("created", "date", "timestamp", "published", "created_at")
csv.field_size_limit(sys.maxsize)


class ConfigError(ValueError):
    """A dataset config or flag combination that cannot work; the message says how to fix it."""


class MissingDateError(ConfigError, UsageError):
    """Records would have no creation date: found before any work starts (``check_date_source``).

    Also a ``layout.UsageError``: the CLI's ``stage_command`` reports it as a usage mistake and
    exits 2, while library callers can catch it as a ``ConfigError``.
    """


class LanguageCodeError(ConfigError, UsageError):
    """A ``language`` code nordpipe does not know (``nordpipe.languages``); exits 2 like
    ``MissingDateError``, the message lists the valid codes."""


_DEFAULT_ID_TEMPLATE = "{dataset}-{file}-{line}"


@dataclass
class IngestConfig:
    """How raw records map to standardized documents. Every field is a YAML key and a flag.

    ``text_field`` may name several fields (joined by a blank line, e.g. title + body).
    ``id_template`` is used when ``id_field`` is unset; it may use ``{dataset}``, ``{file}``
    (the unit's stem) and ``{line}``. ``created`` (a fixed range, date or year) is used when the
    record has no ``created_field`` value; if neither is set, the first of
    ``created``/``date``/``timestamp``/``published``/``created_at`` present in the record is used.
    ``added`` defaults to the day of the first run (kept in the run record, so reruns agree).
    ``metadata_fields``: raw fields to keep in ``metadata`` (default: all not mapped elsewhere);
    ``metadata``: constant metadata added to every document.
    """

    dataset: str
    text_field: str | list[str] = "text"
    id_field: str | None = None
    id_template: str = _DEFAULT_ID_TEMPLATE
    created_field: str | None = None
    created: str | None = None
    added_field: str | None = None
    added: str | None = None
    url_field: str | None = None
    metadata_fields: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str | None = None
    pretty_name: str | None = None
    language: list[str] = field(default_factory=list)
    license: str | None = None
    license_name: str | None = None
    task_categories: list[str] = field(default_factory=lambda: ["text-generation"])
    task_ids: list[str] = field(default_factory=lambda: ["language-modeling"])
    description: str | None = None
    max_chars: int = DEFAULT_MAX_CHARS

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.dataset or ""):
            raise ConfigError(f"dataset name {self.dataset!r}: use letters, digits, '_', '-', '.'")
        if isinstance(self.language, str):
            self.language = [p.strip() for p in self.language.split(",") if p.strip()]
        try:  # as the datasheet lists them: ISO 639-1, "no" (Norwegian, nb and nn) kept a group
            self.language = list(dict.fromkeys(datasheet_code(p) for p in self.language))
        except UnknownLanguage as err:
            raise LanguageCodeError(f"language: {err}") from None
        if self.format is not None and self.format not in RAW_FORMATS:
            raise ConfigError(f"format {self.format!r} is not one of {', '.join(RAW_FORMATS)}")
        if self.license == "other" and not self.license_name:
            raise ConfigError("license: other needs license_name")
        for name in ("created", "added"):
            value = getattr(self, name)
            if value is not None:
                try:
                    setattr(self, name, normalize_created(str(value)) if name == "created" else normalize_date(str(value)))
                except DateError as err:
                    raise ConfigError(f"{name}: {err}") from err

    @classmethod
    def from_yaml(cls, path: str, **overrides: Any) -> IngestConfig:
        """Load ``pipelines/datasets/NAME.yaml``; flags given as ``overrides`` win over the file."""
        with fsspec.open(path, "r") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        if "dataset" not in data:
            data["dataset"] = os.path.basename(path).split(".")[0]
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Units of work


@dataclass
class RawUnit:
    """One raw file, or one folder of text files; read whole by one task."""

    path: str
    format: str
    stem: str
    files: list[str] = field(default_factory=list)  # text units: the files, sorted
    start: int = 0
    """Append-only files: the byte offset to read from (where a line begins; 0: the whole file)."""
    start_line: int = 0
    """The number of lines before ``start``: the first line read is ``start_line + 1``."""
    expect: str | None = None
    """xxh3_128 (hex) of the first ``start`` bytes as an earlier read saw them; the file is read
    in full when they differ (it changed in the middle)."""

    def to_json(self) -> dict[str, Any]:
        """For the run record: the start fields only when set, so that whole reads are recorded
        as before they existed (an earlier run's output resumes)."""
        data = asdict(self)
        for name in ("start", "start_line", "expect"):
            if not data[name]:
                del data[name]
        return data


@dataclass(frozen=True)
class RawStart:
    """Where to start reading one append-only raw file (``nordpipe ingest --files-from`` lines
    ``PATH<TAB>OFFSET<TAB>LINE[<TAB>XXH3]``)."""

    offset: int
    line: int
    expect: str | None = None

    def list_line(self, path: str) -> str:
        """The ``--files-from`` line for ``path``."""
        return "\t".join([path, str(self.offset), str(self.line), *([self.expect] if self.expect else [])])


def parse_files_from_line(text: str) -> tuple[str, RawStart | None]:
    """A ``--files-from`` line: ``PATH`` or ``PATH<TAB>OFFSET<TAB>LINE[<TAB>XXH3]``. Raises
    ``ValueError`` for a line with tabs that is not of that form."""
    text = text.rstrip("\r\n")
    if "\t" not in text:
        return text, None
    parts = text.split("\t")
    if len(parts) not in (3, 4) or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit() \
            or (len(parts) == 4 and not re.fullmatch(r"[0-9a-f]{32}", parts[3])):
        raise ValueError(f"expected PATH, or PATH<TAB>OFFSET<TAB>LINE[<TAB>XXH3] (XXH3: 32 hex digits), got {text!r}")
    return parts[0], RawStart(int(parts[1]), int(parts[2]), parts[3] if len(parts) == 4 else None)


def is_append_only(path: str, fmt: str) -> bool:
    """Records are only ever appended, as whole lines: uncompressed jsonl/ndjson. Such a file can
    be read again from where an earlier read stopped; every other raw file is read whole."""
    return fmt == "jsonl" and not path.lower().endswith((".gz", ".zst"))


def detect_format(path: str) -> str | None:
    name = path.lower()
    for compression in (".gz", ".zst"):
        if name.endswith(compression):
            name = name[: -len(compression)]
    for suffixes, fmt in _SUFFIX_FORMATS:
        if name.endswith(suffixes):
            return fmt
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def discover_units(raw_paths: list[str], forced_format: str | None = None,
                   starts: dict[str, RawStart] | None = None) -> list[RawUnit]:
    """Raw inputs -> units, in a stable order with unique output stems.

    ``starts``: where to start reading append-only files, by raw path as given (``ConfigError``
    for a path that is not an append-only file among ``raw_paths``)."""
    starts = dict(starts or {})
    for raw, start in starts.items():
        fmt = forced_format or detect_format(raw)
        if raw not in raw_paths:
            raise ConfigError(f"{raw}: a start position is given for a path that is not among the raw inputs")
        if fmt is None or not is_append_only(raw, fmt):
            raise ConfigError(f"{raw}: a start position (offset {start.offset}) needs an append-only file: "
                              "uncompressed .jsonl or .ndjson (other files are read whole)")
    units: list[RawUnit] = []
    # Text files named one by one (as a pipeline passes a batch's new files) are grouped per
    # folder, as if the folder had been given: one unit, one output file, stable ids.
    loose_text: dict[str, list[str]] = {}
    for raw in raw_paths:
        fs, root = fsspec.core.url_to_fs(raw)
        protocol = raw.split("://", 1)[0] + "://" if "://" in raw else ""
        if not fs.exists(root):
            raise FileNotFoundError(f"{raw}: no such file or folder")
        if fs.isfile(root):
            fmt = forced_format or detect_format(root)
            if fmt is None:
                raise ConfigError(f"{raw}: unknown raw format; use --format ({', '.join(RAW_FORMATS)})")
            if fmt == "text":
                loose_text.setdefault(raw.rsplit("/", 1)[0] if "/" in raw else ".", []).append(raw)
            elif raw in starts:
                start = starts[raw]
                units.append(RawUnit(raw, fmt, _stem(root), start=start.offset, start_line=start.line, expect=start.expect))
            else:
                units.append(RawUnit(raw, fmt, _stem(root)))
            continue
        text_files: dict[str, list[str]] = {}
        for file in sorted(fs.find(root)):
            rel = file[len(root.rstrip("/")) + 1 :]
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            fmt = forced_format or detect_format(file)
            if fmt == "text":
                text_files.setdefault(raw.rstrip("/"), []).append(protocol + file if protocol else file)
            elif fmt is not None:
                units.append(RawUnit(protocol + file if protocol else file, fmt, _stem(file)))
        for folder, files in text_files.items():
            units.append(RawUnit(folder, "text", os.path.basename(folder.rstrip("/")) or "text", files=files))
    for folder, files in sorted(loose_text.items()):
        name = os.path.basename(os.path.abspath(folder).rstrip("/")) or "text"
        units.append(RawUnit(folder, "text", name, files=sorted(files)))
    if not units:
        raise ConfigError(f"no raw input found in {', '.join(raw_paths)}")
    # Unique stems: on a clash, prefix the parent folders until names differ.
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit.stem] = counts.get(unit.stem, 0) + 1
    for unit in units:
        if counts[unit.stem] > 1:
            unit.stem = unit.path.split("://", 1)[-1].strip("/").replace("/", "__")
            unit.stem = re.sub(r"\.(jsonl|ndjson|json|csv|tsv|parquet|warc|wet|arc|gz|zst)$", "", unit.stem)
    if len({u.stem for u in units}) != len(units):
        raise ConfigError("two raw inputs map to the same output name; rename one")
    return units


def _stem(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    while True:
        base, dot, ext = name.rpartition(".")
        if dot and ext.lower() in ("gz", "zst", "jsonl", "ndjson", "json", "csv", "tsv", "parquet", "warc", "wet", "arc", "txt", "md"):
            name = base
        else:
            return name


# --------------------------------------------------------------------------------------------
# Raw readers: yield RawItem(line, fields | None, error | None, raw | None[, span])
#
# Contract: a reader never loses a readable record and never raises for bad content. What it
# cannot read comes back as an item with ``error`` set, the line (or row / WARC record number)
# where it starts, the raw bytes when they are known and, for damaged binary spans, ``span``:
# the ``(byte offset, bytes)`` skipped, written to the quarantine record as ``byte_offset`` and
# ``bytes``. Reading resumes after the damage wherever the format has a way to find the next
# intact unit (gzip members, zstd frames, CSV lines, parquet row groups, WARC records). No
# reader holds more than about ``max_line_bytes`` (``documents.max_line_bytes_for(--max-chars)``)
# of one record: longer lines, files and WARC payloads are counted to their end, not kept, and
# quarantined as ``too long``. Exceptions: a ``.json`` array is parsed whole (keep such files
# small) and a parquet row group is decoded in batches of 4,096 rows whatever their size.


class RawItem(NamedTuple):
    line: int
    fields: Any
    error: str | None
    raw: bytes | str | None
    span: tuple[int, int] | None = None


SETTLED_NS = 2_000_000_000
"""A file's modification time is recorded (for the pipeline's size-and-time fast path) only when
it lies this far before the moment it was taken: on file systems with coarse timestamps, a write
in the same tick as the check would otherwise leave size and time unchanged."""


@dataclass
class RawFileRead:
    """What one read of one raw file consumed (see the module docstring)."""

    format: str
    append_only: bool
    offset: int
    """Bytes consumed from the start of the file."""
    size: int
    """Bytes seen: ``offset`` plus a held-back incomplete last line."""
    xxh3: str | None
    """xxh3_128 (hex) of the first ``offset`` bytes (None for a URL)."""
    lines: int | None = None
    """Append-only files: the complete lines in the first ``offset`` bytes."""
    start: int = 0
    """Where this read began (0 when it read the file in full)."""
    start_line: int = 0
    tail_xxh3: str | None = None
    """xxh3_128 of the held-back bytes ``offset..size``, if any."""
    open_line: bool = False
    """The last consumed line had no newline (it was a whole JSON value): the next read expects it."""
    mtime_ns: int | None = None
    restarted: str | None = None
    """Why a read asked to start at an offset read the file in full (it changed in the middle)."""

    def to_json(self) -> dict[str, Any]:
        # ``asdict`` deep-copies each value: half of a text-folder unit's task time for a record
        # per file (issue 20). Every field holds a str, int, bool or None: a plain copy is the same.
        return {name: getattr(self, name) for name in _RAW_FILE_READ_FIELDS}


_RAW_FILE_READ_FIELDS = tuple(f.name for f in fields(RawFileRead))


def _key(path: str) -> str:
    """A raw file's key in records: its absolute path (URLs as they are)."""
    return path if "://" in path else os.path.abspath(path)


def settled_mtime(path: str) -> int | None:
    """``st_mtime_ns`` of a local file if it was modified at least ``SETTLED_NS`` ago, else None."""
    if "://" in path:
        return None
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return mtime if time.time_ns() - mtime >= SETTLED_NS else None


def _whole_file_read(path: str, fmt: str) -> RawFileRead | None:
    """Sign a file that is read whole: its size and the hash of its bytes, taken in one pass
    *before* the format's reader reads it (a change after the pass makes the file differ from
    the record). URLs are not hashed. None when the file cannot be read (the format's reader
    quarantines that; without a record, the pipeline reads the file again next time)."""
    try:
        if "://" in path:
            fs, root = fsspec.core.url_to_fs(path)
            size = int(fs.size(root) or 0)
            return RawFileRead(fmt, False, size, size, None)
        mtime = settled_mtime(path)
        hasher = xxhash.xxh3_128()
        size = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except Exception:  # OSError from the file system, anything from a remote backend
        return None
    return RawFileRead(fmt, False, size, size, hasher.hexdigest(), mtime_ns=mtime)


def iter_raw(unit: RawUnit, max_line_bytes: int | None = None,
             reads: dict[str, RawFileRead] | None = None) -> Iterator[RawItem]:
    """The items of one unit. ``reads``: filled with what was read of each raw file (by
    ``_key``), for the raw-file bookkeeping; complete once the unit has been read to its end."""
    if unit.format == "jsonl" and is_append_only(unit.path, unit.format):
        yield from _iter_jsonl_append_only(unit, max_line_bytes, reads)
        return
    if unit.format == "text":
        yield from _iter_text(unit, max_line_bytes, reads)
        return
    reader = {
        "jsonl": _iter_jsonl,
        "json": _iter_json,
        "csv": _iter_csv,
        "tsv": _iter_csv,
        "parquet": _iter_parquet,
        "warc": _iter_warc,
        "wet": _iter_warc,
    }[unit.format]
    signed = _whole_file_read(unit.path, unit.format) if reads is not None else None
    yield from reader(unit, max_line_bytes)
    if reads is not None and signed is not None:
        reads[_key(unit.path)] = signed


def _jsonl_item(line: int, data: bytes) -> RawItem | None:
    """One complete line of a jsonl file as ``documents.iter_jsonl_lines`` reads it (None: blank)."""
    if not data.strip():
        return None
    try:
        return RawItem(line, orjson.loads(data), None, data.rstrip(b"\r"))
    except orjson.JSONDecodeError as err:
        return RawItem(line, None, json_error_reason(err), data.rstrip(b"\r"))


def _too_long_item(line: int, size: int, limit: int) -> RawItem:
    return RawItem(line, None, f"too long: line of {size:,} bytes, the limit is {limit:,} bytes (6 bytes per character "
                               "of --max-chars, plus 1 MiB)", None)


def _resume(handle: Any, unit: RawUnit, hasher: Any) -> tuple[int, str | None]:
    """Position ``handle`` to read ``unit`` from ``unit.start``; return the position and, when the
    file changed in the middle, why (the caller then reads it in full).

    With a ``hasher`` (a read that is recorded), the first ``start`` bytes are hashed into it and
    compared with ``unit.expect``; without (a peek, ``check_date_source``), the reader seeks.
    ``start`` must be where a line begins: after a newline, or after a last line that was read
    without its newline (``open_line``), whose newline must then come first; it is consumed here
    and belongs to the line already counted.
    """
    start = unit.start
    if hasher is None:
        handle.seek(start - 1)
        last = handle.read(1)
        if not last:
            return 0, f"it is shorter than the start offset {start:,}"
    else:
        remaining = start
        last = b""
        while remaining:
            chunk = handle.read(min(READ_CHUNK, remaining))
            if not chunk:
                return 0, f"it shrank to {start - remaining:,} bytes, below the start offset {start:,}"
            hasher.update(chunk)
            remaining -= len(chunk)
            last = chunk[-1:]
        if unit.expect is not None and hasher.hexdigest() != unit.expect:
            return 0, f"its first {start:,} bytes changed since they were read"
    if last == b"\n":
        return start, None
    following = handle.read(1)
    if following == b"\n":
        if hasher is not None:
            hasher.update(following)
        return start + 1, None
    if not following:
        return start, None
    return 0, f"byte {start:,} is not the start of a line (its last line, read without a newline, was continued?)"


def _iter_jsonl_append_only(unit: RawUnit, max_line_bytes: int | None,
                            reads: dict[str, RawFileRead] | None = None) -> Iterator[RawItem]:
    """An uncompressed jsonl file, from ``unit.start``, consuming complete lines only.

    Lines are numbered from ``unit.start_line + 1``; the hash covers exactly the bytes consumed
    (the first ``offset`` bytes of the file), kept at the last newline while a line is open, so
    that an incomplete last line can be held back. Memory per file is about one ``READ_CHUNK``
    plus ``max_line_bytes`` (a longer line is counted to its end, not kept), as in
    ``documents.iter_byte_lines``, whose items this reader gives for the same bytes."""
    record = reads is not None
    mtime = settled_mtime(unit.path) if record else None
    hasher = xxhash.xxh3_128()
    limit = max_line_bytes
    restarted: str | None = None
    start, line = unit.start, unit.start_line
    pos = boundary = 0
    boundary_hash: Any = None  # the hash at ``boundary`` while a line is open past it
    tail_hasher: Any = None  # the hash of the open line's bytes
    parts: list[bytes] = []  # the open line's bytes (unless it is over the cap)
    size = 0  # the open line's length
    skipping = False  # the open line is over the cap: count it, do not keep it
    open_line = False
    reading = False  # past ``_resume``: the hashes match ``pos`` and ``boundary`` between chunks
    try:
        with fsspec.open(unit.path, "rb") as handle:
            if start:
                pos, restarted = _resume(handle, unit, hasher if record else None)
                if restarted is not None:
                    handle.seek(0)
                    hasher.reset()
                    start, line, pos = 0, 0, 0
                elif not record:
                    handle.seek(pos)
            boundary, reading = pos, True
            while chunk := handle.read(READ_CHUNK):
                newline = chunk.rfind(b"\n")
                if newline < 0:  # the open line goes on
                    if boundary_hash is None:
                        boundary_hash, tail_hasher = hasher.copy(), xxhash.xxh3_128()
                    hasher.update(chunk)
                    tail_hasher.update(chunk)
                    pos += len(chunk)
                    size += len(chunk)
                    if not skipping:
                        parts.append(chunk)
                        if limit is not None and size > limit:
                            parts, skipping = [], True
                    continue
                hasher.update(memoryview(chunk)[: newline + 1])
                for index, piece in enumerate(chunk[:newline].split(b"\n")):
                    line += 1
                    if index == 0 and (parts or skipping):
                        total = size + len(piece)
                        if skipping or (limit is not None and total > limit):
                            yield _too_long_item(line, total, limit or 0)
                        elif (item := _jsonl_item(line, b"".join([*parts, piece]))) is not None:
                            yield item
                        parts, size, skipping = [], 0, False
                    elif limit is not None and len(piece) > limit:
                        yield _too_long_item(line, len(piece), limit)
                    elif (item := _jsonl_item(line, piece)) is not None:
                        yield item
                pos += newline + 1
                boundary, boundary_hash, tail_hasher = pos, None, None
                rest = chunk[newline + 1 :]
                if rest:
                    boundary_hash, tail_hasher = hasher.copy(), xxhash.xxh3_128(rest)
                    hasher.update(rest)
                    pos += len(rest)
                    size = len(rest)
                    if limit is not None and size > limit:
                        skipping = True
                    else:
                        parts = [rest]
    except Exception as err:  # OSError from the file system, anything from a remote backend
        yield RawItem(line + 1, None, f"unreadable input: after line {line} ({type(err).__name__}: {err})", None)
        if record and reading:  # what was consumed stays consumed; the rest is read next time
            reads[_key(unit.path)] = RawFileRead(
                "jsonl", True, boundary, boundary, (hasher if boundary_hash is None else boundary_hash).hexdigest(), line,
                start, unit.start_line if start else 0, restarted=restarted)
        return
    tail: bytes | None = None
    if boundary_hash is not None and not skipping:
        tail = b"".join(parts)
    if tail is not None and tail.strip():
        try:
            orjson.loads(tail)
        except orjson.JSONDecodeError:
            tail = None
        else:  # a whole JSON value without its newline: a complete last line
            line += 1
            item = _jsonl_item(line, tail)
            if item is not None:
                yield item
            boundary, boundary_hash, tail_hasher, open_line = pos, None, None, True
    if not record:
        return
    assert reads is not None
    held = boundary_hash is not None
    reads[_key(unit.path)] = RawFileRead(
        "jsonl", True, boundary, pos, (boundary_hash if held else hasher).hexdigest(), line, start,
        unit.start_line if start else 0, tail_hasher.hexdigest() if held else None, open_line, mtime, restarted)


def _iter_jsonl(unit: RawUnit, max_line_bytes: int | None) -> Iterator[RawItem]:
    for item in iter_jsonl_lines(unit.path, max_line_bytes, keep_raw=True):
        span = (item.offset, item.length) if item.offset is not None and item.length is not None else None
        yield RawItem(item.line, item.record, item.error, item.raw, span)


def _iter_json(unit: RawUnit, max_line_bytes: int | None) -> Iterator[RawItem]:
    try:
        with open_binary(unit.path) as handle:
            data = orjson.loads(handle.read())
    except orjson.JSONDecodeError as err:
        yield RawItem(1, None, f"invalid JSON: {err}", None)
        return
    except (EOFError, OSError, ValueError) as err:  # gzip/zstd errors on a damaged file
        yield RawItem(1, None, f"unreadable input: {err}", None)
        return
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        yield RawItem(1, None, f"not an object: the file holds a JSON {type(data).__name__}, expected an array of objects", None)
        return
    for i, item in enumerate(data, start=1):
        yield RawItem(i, item, None, None)


_CSV_MAX_ROW_LINES = 10_000
"""A quoted field spanning more lines than this is taken for an unbalanced quote."""


def _iter_csv(unit: RawUnit, max_line_bytes: int | None) -> Iterator[RawItem]:
    """CSV/TSV, decoded line by line so that one bad byte costs one row.

    Physical lines come from ``iter_byte_lines`` (bounded, damage-tolerant) and are fed to
    ``csv.reader`` one at a time, so the lines of each row are known. A line that is not UTF-8
    is decoded with ``surrogateescape`` (the parser keeps going) and its row quarantined. A
    leading BOM is dropped. A quoted field that is still open at the end of the file, at a
    damaged span or a too-long line, after ``max_line_bytes`` bytes or ``_CSV_MAX_ROW_LINES``
    lines, or a multi-line row whose column count differs from the header's, means an
    unbalanced quote: the line that opened it is quarantined and the lines after it are parsed
    again as rows, so one stray quote never swallows the rows that follow it.
    """
    delimiter = "\t" if unit.format == "tsv" else ","
    lines = iter_byte_lines(unit.path, max_line_bytes)
    pending: deque[ByteLine] = deque()  # lines to parse again after an unbalanced quote
    consumed: list[ByteLine] = []  # the lines of the row being parsed
    invalid: dict[int, str] = {}  # line -> UTF-8 error, for lines of the current row
    state: dict[str, Any] = {"ended": False, "stop": None, "bytes": 0}
    header: list[str] | None = None

    def feed() -> Iterator[str]:
        while True:
            item = pending.popleft() if pending else next(lines, None)
            if item is None or item.error is not None:
                state["ended"], state["stop"] = True, item
                return
            data = item.data or b""
            if consumed and (state["bytes"] + len(data) > (max_line_bytes or sys.maxsize) or len(consumed) >= _CSV_MAX_ROW_LINES):
                pending.appendleft(item)
                state["ended"], state["stop"] = True, "limit"
                return
            consumed.append(item)
            state["bytes"] += len(data)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as err:
                text = data.decode("utf-8", errors="surrogateescape")
                invalid[item.line] = str(err)
            if item.line == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield text + "\n"

    def raw_of(items: list[ByteLine]) -> bytes:
        return b"\n".join(i.data or b"" for i in items)

    while True:
        reader = csv.reader(feed(), delimiter=delimiter)
        state["ended"], state["stop"] = False, None
        while True:
            consumed.clear()
            invalid.clear()
            state["bytes"] = 0
            try:
                row = next(reader, None)
            except csv.Error as err:
                if consumed:
                    yield RawItem(consumed[0].line, None, f"bad row: lines {consumed[0].line}-{consumed[-1].line}: {err}", raw_of(consumed))
                break
            if row is None:
                break
            first, last = consumed[0].line, consumed[-1].line
            if header is None:
                header = [name.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for name in row]
                continue
            cut = state["ended"]
            if (cut or len(row) != len(header)) and len(consumed) > 1:
                why = (
                    "it is still open at the end of the input" if state["stop"] is None
                    else f"it runs past {max_line_bytes or 0:,} bytes or {_CSV_MAX_ROW_LINES:,} lines" if state["stop"] == "limit"
                    else f"it runs into line {state['stop'].line}, which is unreadable"
                    if cut else f"the row it starts has {len(row)} columns, the header has {len(header)}"
                )
                yield RawItem(first, None, f"unbalanced quote: a quoted field opens on line {first} and {why}; lines {first + 1}-{last} are read again as rows", raw_of(consumed[:1]))
                pending.extendleft(reversed(consumed[1:]))
                break
            if cut and state["stop"] is None and not invalid:
                yield RawItem(first, None, f"unbalanced quote: a quoted field opens on line {first} and is still open at the end of the input", raw_of(consumed))
                continue
            if invalid:
                line, err = next(iter(invalid.items()))
                yield RawItem(first, None, f"invalid UTF-8: line {line} ({err})", raw_of(consumed))
                continue
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                yield RawItem(first, None, f"bad row: {len(row)} columns, the header has {len(header)}", raw_of(consumed))
                continue
            yield RawItem(first, dict(zip(header, row, strict=True)), None, None)
            if cut:
                break
        stop = state["stop"]
        if isinstance(stop, ByteLine):
            yield RawItem(stop.line, None, stop.error, stop.data, (stop.offset, stop.length) if stop.offset is not None and stop.length is not None else None)
        elif stop is None and state["ended"] and not pending:
            return


def _row_group_span(group: Any) -> tuple[int, int]:
    """``(byte offset, bytes)`` of a parquet row group's column chunks."""
    starts, ends = [], []
    for i in range(group.num_columns):
        column = group.column(i)
        start = column.dictionary_page_offset if column.has_dictionary_page and column.dictionary_page_offset else column.data_page_offset
        starts.append(start)
        ends.append(start + column.total_compressed_size)
    return (min(starts), max(ends) - min(starts)) if starts else (0, 0)


def _iter_parquet(unit: RawUnit, max_line_bytes: int | None) -> Iterator[RawItem]:
    """Row group by row group: a group that fails to decode is quarantined (with its rows and
    bytes) and the next group is read; row numbers follow the file's metadata, so rows after a
    broken group keep their numbers (and their default ids)."""
    import pyarrow.parquet as pq

    with fsspec.open(unit.path, "rb") as handle:
        try:
            parquet = pq.ParquetFile(handle)
            meta = parquet.metadata
        except Exception as err:  # pyarrow raises several error types for broken files
            yield RawItem(1, None, f"unreadable input: parquet footer ({err})", None)
            return
        row = 0
        for index in range(meta.num_row_groups):
            group = meta.row_group(index)
            done = 0
            try:
                for batch in parquet.iter_batches(batch_size=4096, row_groups=[index]):
                    for record in batch.to_pylist():
                        done += 1
                        yield RawItem(row + done, record, None, None)
            except Exception as err:
                offset, length = _row_group_span(group)
                yield RawItem(
                    row + done + 1,
                    None,
                    f"unreadable input: parquet row group {index} (rows {row + done + 1}-{row + group.num_rows}, bytes "
                    f"{offset}-{offset + length - 1}) cannot be decoded ({err})",
                    None,
                    (offset, length),
                )
            row += group.num_rows


def _read_bounded(handle: Any, limit: int | None, hasher: Any = None) -> tuple[bytes | None, int]:
    """Read a stream whole if it holds at most ``limit`` bytes; else ``(None, its size)``.
    ``hasher``: updated with every byte read (the raw-file bookkeeping of text files).

    Reads in ``READ_CHUNK`` pieces, never ``read(limit + 1)``: that allocates the whole limit
    (61 MB at the default ``--max-chars``) for every record, which made ingest of small text
    files and WARC records ~10% slower (measured, benchmarks/results/contract.md)."""
    if limit is None:
        data = handle.read()
        if hasher is not None:
            hasher.update(data)
        return data, len(data)
    chunks: list[bytes] = []
    size = 0
    while chunk := handle.read(READ_CHUNK):
        size += len(chunk)
        if hasher is not None:
            hasher.update(chunk)
        if size > limit:
            chunks.clear()
            while chunk := handle.read(READ_CHUNK):
                size += len(chunk)
                if hasher is not None:
                    hasher.update(chunk)
            return None, size
        chunks.append(chunk)
    return b"".join(chunks), size


def _iter_text(unit: RawUnit, max_line_bytes: int | None,
               reads: dict[str, RawFileRead] | None = None) -> Iterator[RawItem]:
    """One document per file; with ``reads``, each file is signed by the bytes read of it (an
    unreadable file gets no record: the pipeline then takes it as new next time)."""
    base = unit.path.rstrip("/")
    for i, path in enumerate(unit.files, start=1):
        rel = path[len(base) + 1 :] if path.startswith(base + "/") else os.path.basename(path)
        hasher = xxhash.xxh3_128() if reads is not None else None
        mtime = settled_mtime(path) if reads is not None else None
        try:
            with fsspec.open(path, "rb") as handle:
                content, size = _read_bounded(handle, max_line_bytes, hasher)
        except OSError as err:
            yield RawItem(i, None, f"unreadable input: {rel} ({err})", None)
            continue
        if reads is not None and hasher is not None:
            reads[_key(path)] = RawFileRead("text", False, size, size, hasher.hexdigest(), mtime_ns=mtime)
        if content is None:
            yield RawItem(i, None, f"too long: {rel} holds {size:,} bytes, the limit is {max_line_bytes or 0:,} bytes", None)
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as err:
            yield RawItem(i, None, f"invalid UTF-8: {rel} ({err})", content)
            continue
        yield RawItem(i, {"text": text, "path": rel, "id": f"{unit.stem}/{rel}"}, None, None)


def _warc_target(uri: str | None) -> str | None:
    if not uri:
        return None
    return uri.strip().strip("<>")


class _Window(io.RawIOBase):
    """Bytes ``[start, end)`` of a file, with the file's own offsets: warcio reads no further."""

    def __init__(self, handle: Any, start: int, end: int):
        super().__init__()
        self.handle, self.start, self.end = handle, start, end
        self.position = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.end}[whence]
        self.position = max(self.start, min(base + offset, self.end))
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.end - self.position)
        if wanted <= 0:
            return 0
        self.handle.seek(self.position)
        data = self.handle.read(wanted)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


_MEMBER_CHUNK = 1 << 20


def _gzip_member_end(handle: Any, start: int, size: int) -> int | None:
    """Where the gzip member at ``start`` ends, or None when it is not a whole, intact member
    (zlib checks its CRC-32 and length). The output is decompressed and thrown away."""
    import zlib

    decompressor = zlib.decompressobj(31)
    position = start
    handle.seek(start)
    try:
        while position < size and not decompressor.eof:
            chunk = handle.read(min(_MEMBER_CHUNK, size - position))
            if not chunk:
                break
            position += len(chunk)
            while chunk and not decompressor.eof:
                decompressor.decompress(chunk, _MEMBER_CHUNK)  # bounded output per call
                chunk = decompressor.unconsumed_tail
    except zlib.error:
        return None
    if not decompressor.eof:
        return None
    return position - len(decompressor.unused_data)


def _gzip_regions(handle: Any, size: int) -> list[tuple[int, int, bool]]:
    """``(start, end, intact)`` spans of a .warc.gz, member by member (consecutive intact members
    merged). A damaged span runs to the next gzip magic that starts an intact member.

    warcio alone cannot be trusted here: on some damage it decompresses a broken member into
    garbage without an error, then reads the following *compressed* members as plain bytes,
    so every record after the damage was lost (1 in 10 random 8-byte damages did that)."""
    regions: list[tuple[int, int, bool]] = []
    position = 0
    while position < size:
        end = _gzip_member_end(handle, position, size)
        if end is not None:
            if regions and regions[-1][2] and regions[-1][1] == position:
                regions[-1] = (regions[-1][0], end, True)
            else:
                regions.append((position, end, True))
            position = end
            continue
        candidate = position + 1
        while True:
            handle.seek(candidate)
            src = ByteSource(handle)
            src.offset = candidate
            if not src.skip_to(GZIP_MAGIC):
                regions.append((position, size, False))
                position = size
                break
            if _gzip_member_end(handle, src.offset, size) is not None:
                regions.append((position, src.offset, False))
                position = src.offset
                break
            candidate = src.offset + 1
    return regions


def _iter_warc(unit: RawUnit, max_line_bytes: int | None) -> Iterator[RawItem]:
    """WARC/WET records; a record that warcio cannot read is quarantined with its byte span.

    In ``.gz`` files, where each record is a gzip member, every member is first checked with
    zlib (CRC and length, ``_gzip_regions``): a damaged member is quarantined with its byte span
    and warcio reads only the intact spans. Within a span (and in uncompressed files), on an
    error the reader searches for the next record start after the broken one (the gzip magic;
    ``WARC/1.`` otherwise) and starts a new ``ArchiveIterator`` there. A candidate that fails too
    (a false match inside the damage) extends the same span. Records before the damage are
    always kept.
    """
    from warcio.archiveiterator import ArchiveIterator

    from nordpipe.extract import html_to_text  # here, not in the try below: an import error is no damaged record

    with fsspec.open(unit.path, "rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        compressed = unit.path.endswith(".gz")
        magic = GZIP_MAGIC if compressed else b"WARC/1."
        regions = _gzip_regions(handle, size) if compressed else [(0, size, True)]
        number = 0
        damage: tuple[int, str] | None = None  # start and reason of a span not yet reported

        def report(end: int) -> Iterator[RawItem]:
            nonlocal number, damage
            if damage is not None:
                number += 1
                start, reason = damage
                yield RawItem(number, None, f"broken file: {reason}; bytes {start}-{end - 1} skipped", None, (start, end - start))
                damage = None

        for region_start, region_end, intact in regions:
            if not intact:
                damage = (region_start, f"the gzip member at byte {region_start} is damaged (it does not decompress, "
                                        "or its CRC or length does not match)")
                yield from report(region_end)
                continue
            window = _Window(handle, region_start, region_end)
            position = region_start
            while position < region_end:
                window.seek(position)
                iterator = ArchiveIterator(window, arc2warc=True)
                try:
                    for item in _warc_records(iterator, unit, max_line_bytes, html_to_text):
                        yield from report(iterator.offset)
                        number += 1
                        yield item._replace(line=number)
                    break
                except Exception as err:  # warcio raises ArchiveLoadFailed, EOFError, zlib errors, ValueError
                    start = iterator.offset
                    if damage is None:
                        damage = (start, f"the WARC record at byte {start} cannot be read ({type(err).__name__}: {err})")
                    window.seek(start + 1)
                    src = ByteSource(window)
                    src.offset = start + 1
                    position = src.offset if src.skip_to(magic) and src.offset < region_end else region_end
            yield from report(region_end)  # damage not followed by a readable record runs to the span's end


def _warc_records(iterator: Any, unit: RawUnit, max_line_bytes: int | None,
                  html_to_text: Callable[[bytes, str | None], str]) -> Iterator[RawItem]:
    """The items of one ``ArchiveIterator`` (line numbers are set by the caller)."""
    for record in iterator:
        if record.rec_type not in ("response", "conversion", "resource"):
            continue
        headers = record.rec_headers
        url = _warc_target(headers.get_header("WARC-Target-URI"))
        meta = {
            "url": url,
            "date": headers.get_header("WARC-Date"),
            "warc_record_id": headers.get_header("WARC-Record-ID"),
            "warc_file": os.path.basename(unit.path),
        }
        payload, size = _read_bounded(record.content_stream(), max_line_bytes)
        if payload is None:
            yield RawItem(0, None, f"too long: WARC record {url} holds {size:,} bytes, the limit is {max_line_bytes or 0:,} bytes", None)
            continue
        if record.rec_type == "conversion":
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RawItem(0, None, f"invalid UTF-8: WET record {url} ({err})", payload)
                continue
        else:
            content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else None) or ""
            meta["content_type"] = content_type.split(";")[0].strip() or None
            if record.http_headers and not record.http_headers.get_statuscode().startswith("2"):
                yield RawItem(0, None, f"not a page: HTTP status {record.http_headers.get_statuscode()} for {url}", None)
                continue
            if content_type and "html" not in content_type and "text/plain" not in content_type:
                yield RawItem(0, None, f"not a page: {meta['content_type']} at {url}", None)
                continue
            if "text/plain" in content_type:
                text = payload.decode("utf-8", errors="replace")
            else:
                text = html_to_text(payload, url)
            if not text.strip():
                yield RawItem(0, None, f"empty text: nothing extracted from {url}", None)
                continue
        yield RawItem(0, {"text": text, **meta}, None, None)


# --------------------------------------------------------------------------------------------
# Mapping raw records to standardized records


def _text_of(fields_: dict[str, Any], text_field: str | list[str]) -> str:
    names = [text_field] if isinstance(text_field, str) else list(text_field)
    parts = []
    for name in names:
        if name not in fields_:
            if len(names) == 1:
                raise InvalidRecord(f"missing field: {name!r}")
            continue
        value = fields_[name]
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRecord(f"wrong type: {name} is {type(value).__name__}, expected a string")
        parts.append(value)
    if not parts:
        raise InvalidRecord(f"missing field: {', '.join(repr(n) for n in names)}")
    return "\n\n".join(p for p in parts if p) if len(parts) > 1 else parts[0]


STANDARD_FIELDS = frozenset(("id", "text", "source", "added", "created", "metadata"))


def is_standardized(fields_: Any, config: IngestConfig) -> bool:
    """True for a record already in the standardized format, read with no mapping flags.

    The test is on shape, not on values: only standardized fields, at least ``id``, ``text``,
    ``added`` and ``created``, a string id and an object (or no) ``metadata``, or nordpipe's
    JSON string of an object (a nordpipe output read again). The reader
    decides once per file, from its first record, so that one bad date or id later in the file
    is quarantined instead of silently getting a new id. Any mapping flag (``--text-field``,
    ``--id-field``, ``--id-template``, ``--created-field``, ``--added-field``,
    ``metadata_fields``) means the user maps the fields, and wins.
    """
    return (
        isinstance(fields_, dict)
        and {"id", "text", "added", "created"} <= fields_.keys() <= STANDARD_FIELDS
        and isinstance(fields_["id"], str)
        and isinstance(decode_metadata(fields_.get("metadata", {})), dict)
        and config.text_field == "text"
        and config.id_field is None
        and config.id_template == _DEFAULT_ID_TEMPLATE
        and config.created_field is None
        and config.added_field is None
        and config.metadata_fields is None
    )


def _map_standardized(fields_: Any, config: IngestConfig) -> dict[str, Any]:
    """A standardized record kept as it is: its id, dates and metadata are not touched (bad
    ones are quarantined by validation). ``source`` becomes the dataset name; a different
    original source is kept as ``metadata.source``. ``--added``/``--created`` still win, and
    the config's constant metadata, license and language are added as for raw records."""
    if not isinstance(fields_, dict):
        raise InvalidRecord(f"not an object: the record is a JSON {type(fields_).__name__}")
    metadata = decode_metadata(fields_.get("metadata", {}))  # a nordpipe output: a JSON string
    if not isinstance(metadata, dict):
        raise InvalidRecord(f"wrong type: metadata is {type(metadata).__name__}, expected an object")
    metadata = dict(metadata)
    source = fields_.get("source")
    if source not in (None, config.dataset) and "source" not in metadata:
        metadata["source"] = source
    _add_config_metadata(metadata, config)
    record = {
        "id": fields_["id"],
        "text": fields_.get("text"),
        "source": config.dataset,
        "added": config.added or fields_.get("added"),
        "created": fields_.get("created") or config.created,
        "metadata": metadata,
    }
    validate_record(record, source=config.dataset, max_chars=config.max_chars)
    return record


def _add_config_metadata(metadata: dict[str, Any], config: IngestConfig) -> None:
    metadata.update(config.metadata)
    if config.license and "license" not in metadata:
        metadata["license"] = config.license
    if len(config.language) == 1 and "language" not in metadata:
        metadata["language"] = config.language[0]


def _check_writable(record: dict[str, Any]) -> None:
    """Raise ``InvalidRecord`` for metadata the writer could not serialize.

    orjson writes at most 255 nesting levels (it reads 1024), and raises on values such as
    ``Decimal``; without this check one such record crashes the task at write time, far from
    its line. Only the metadata is serialized (as deep as in the record), not the text.
    """
    try:
        orjson.dumps({"metadata": record["metadata"]}, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as err:
        if "recursion" in str(err).lower():
            raise InvalidRecord(f"too deep: metadata nested deeper than the writer's 254 levels ({err})") from err
        raise InvalidRecord(f"wrong type: metadata cannot be written as JSON ({err})") from err


def map_record(
    fields_: Any, line: int, unit: RawUnit, config: IngestConfig, added: str, standardized: bool = False
) -> dict[str, Any]:
    """One raw record -> a validated standardized record; raises ``InvalidRecord``.

    ``standardized``: the file is already in the standardized format (``is_standardized``).
    """
    try:
        record = _map_standardized(fields_, config) if standardized else _map_raw(fields_, line, unit, config, added)
    except RecursionError as err:
        raise InvalidRecord("too deep: the record is nested too deeply to map") from err
    _check_writable(record)
    return record


def _map_raw(fields_: Any, line: int, unit: RawUnit, config: IngestConfig, added: str) -> dict[str, Any]:
    if not isinstance(fields_, dict):
        raise InvalidRecord(f"not an object: the record is a JSON {type(fields_).__name__}")
    text = _text_of(fields_, config.text_field)
    used = {config.text_field} if isinstance(config.text_field, str) else set(config.text_field)
    if config.id_field:
        if fields_.get(config.id_field) in (None, ""):
            raise InvalidRecord(f"missing field: id field {config.id_field!r}")
        doc_id = str(fields_[config.id_field])
        used.add(config.id_field)
    elif unit.format in ("warc", "wet") and fields_.get("warc_record_id"):
        doc_id = str(fields_["warc_record_id"]).strip("<>")
    elif unit.format == "text":
        doc_id = f"{config.dataset}-{fields_['id']}"
        used.add("id")
    else:
        doc_id = config.id_template.format(dataset=config.dataset, file=unit.stem, line=line)
    try:
        if config.added_field and fields_.get(config.added_field) is not None:
            added = normalize_date(fields_[config.added_field])
            used.add(config.added_field)
        created_field = config.created_field
        if created_field is None and config.created is None:
            created_field = next((c for c in CREATED_CANDIDATES if fields_.get(c) not in (None, "")), None)
        if created_field and fields_.get(created_field) not in (None, ""):
            created = normalize_created(fields_[created_field])
            used.add(created_field)
        elif config.created:
            created = config.created
        else:
            raise InvalidRecord(
                f"bad date: no creation date, field {created_field or '/'.join(CREATED_CANDIDATES)!s} missing and no --created given"
            )
    except DateError as err:
        raise InvalidRecord(f"bad date: {err}") from err
    metadata: dict[str, Any] = {}
    nested = decode_metadata(fields_.get("metadata"))  # an object, or nordpipe's JSON string
    if isinstance(nested, dict):
        metadata.update(nested)
        used.add("metadata")
    keep = config.metadata_fields
    for key, value in fields_.items():
        if key in used or (keep is not None and key not in keep):
            continue
        if unit.format in ("warc", "wet") and key == "date":
            metadata["crawl_date"] = value
            continue
        metadata[key] = value
    if config.url_field and fields_.get(config.url_field):
        metadata["url"] = fields_[config.url_field]
    _add_config_metadata(metadata, config)
    record = {"id": doc_id, "text": text, "source": config.dataset, "added": added, "created": created, "metadata": metadata}
    validate_record(record, source=config.dataset, max_chars=config.max_chars)
    return record


class IngestReader(PipelineStep):
    """Read raw units (each task every ``world_size``-th unit), map and validate every record.

    Args:
        units: from ``discover_units``.
        config: the field mapping.
        added: the ``added`` date for records without an ``added_field``.
        output_path: the stage's output folder: when given, what was read of each raw file is
            recorded in ``.nordpipe/raw-files/<unit stem>.json`` once the unit is read (see
            ``record_raw_reads``).
    """

    type = "📖 - READER"
    name = "ingest"

    def __init__(self, units: list[RawUnit], config: IngestConfig, added: str, output_path: str | None = None):
        super().__init__()
        self.units = units
        self.config = config
        self.added = added
        self.output_path = output_path

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        limit = max_line_bytes_for(self.config.max_chars)
        for unit in self.units[rank::world_size]:
            seen_ids: set[str] = set()
            # Decided from the file's first record (see ``is_standardized``), also when the read
            # starts later in the file; None: not yet.
            standardized: bool | None = None if unit.format in ("jsonl", "json", "parquet") else False
            if standardized is None and unit.start:
                first = _first_fields(unit, limit)
                standardized = None if first is None else is_standardized(first, self.config)
            reads: dict[str, RawFileRead] | None = {} if self.output_path is not None else None
            for line, fields_, error, raw, span in iter_raw(unit, limit, reads):
                if error is None:
                    if standardized is None and isinstance(fields_, dict):
                        standardized = is_standardized(fields_, self.config)
                    try:
                        record = map_record(fields_, line, unit, self.config, self.added, standardized=bool(standardized))
                        if record["id"] in seen_ids:
                            raise InvalidRecord(f"duplicate id: {record['id']!r} already seen in this file")
                        seen_ids.add(record["id"])
                    except InvalidRecord as err:
                        error = str(err)
                        if raw is None:
                            raw = _raw_repr(fields_)
                if error is not None:
                    self.stat_update("quarantined")
                    doc = quarantine_document(unit.path, line, error, raw, unit.stem)
                    if span is not None:
                        doc.metadata[QUARANTINE_KEY].update(byte_offset=span[0], bytes=span[1])
                    yield doc
                    continue
                doc = record_to_document(record)
                doc.metadata[INPUT_KEY] = unit.stem
                doc.metadata[LINE_KEY] = line
                self.stat_update("documents")
                yield doc
            if reads is not None and self.output_path is not None:
                self._record_reads(unit, reads)

    def _record_reads(self, unit: RawUnit, reads: dict[str, RawFileRead]) -> None:
        for read in reads.values():
            if read.size > read.offset:
                self.stat_update("incomplete last line")
            if read.restarted is not None:
                self.stat_update("read again in full")
        assert self.output_path is not None
        path = OutputLayout.of(self.output_path).state_path(RAW_READS_DIR, f"{unit.stem}.json")
        atomic_write_json(path, {key: read.to_json() for key, read in sorted(reads.items())})


RAW_READS_DIR = "raw-files"
"""``OUTPUT/.nordpipe/raw-files/<unit stem>.json``: what a task read of each raw file of a unit."""
RAW_READS_FILE = "raw-files.json"
"""``OUTPUT/.nordpipe/raw-files.json``: the merged records of the run's units."""


def _first_fields(unit: RawUnit, max_line_bytes: int | None) -> Any:
    """The first record of an append-only file that is an object (None: none), read from its start."""
    items = _iter_jsonl_append_only(RawUnit(unit.path, unit.format, unit.stem), max_line_bytes)
    try:
        for item in items:
            if item.error is None and isinstance(item.fields, dict):
                return item.fields
    finally:
        items.close()
    return None


def record_raw_reads(output_path: str, units: list[RawUnit]) -> dict[str, dict[str, Any]]:
    """Merge what the tasks read of each raw file of ``units`` into ``.nordpipe/raw-files.json``
    (``{absolute path: RawFileRead}``, atomically) and return it. Runs when every task has
    finished, before the stage completes; a rerun merges again from the tasks' records (a killed
    run leaves them as its finished tasks wrote them). A unit whose record is missing (a task of
    an older nordpipe) is left out: the pipeline then takes its files as new."""
    kill_point("ingest.raw-files.before-merge")
    layout = OutputLayout.of(output_path)
    merged: dict[str, dict[str, Any]] = {}
    for unit in units:
        path = layout.state_path(RAW_READS_DIR, f"{unit.stem}.json")
        if os.path.exists(path):
            with open(path, "rb") as handle:
                merged.update(orjson.loads(handle.read()))
    atomic_write_json(layout.state_path(RAW_READS_FILE), dict(sorted(merged.items())))
    return merged


def _raw_repr(fields_: Any) -> bytes | None:
    try:
        return orjson.dumps(fields_, default=str)
    except TypeError:  # orjson.JSONEncodeError too: nested deeper than 255 levels
        try:
            return repr(fields_).encode("utf-8", errors="backslashreplace")
        except RecursionError:
            return b"<not representable: nested too deeply>"


class RecordIds(PipelineStep):
    """Record a 64-bit hash of every kept id per output stream, for the cross-file duplicate check."""

    type = "🔢 - STATS"
    name = "record ids"

    def __init__(self, output_path: str):
        super().__init__()
        self.output_path = output_path

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        hashes: dict[str, list[int]] = {}
        for doc in data:
            if is_active(doc):
                hashes.setdefault(doc.metadata.get(INPUT_KEY, f"{rank:05d}"), []).append(xxhash.xxh64_intdigest(doc.id))
            yield doc
        folder = OutputLayout.of(self.output_path).state_path("ids")
        os.makedirs(folder, exist_ok=True)
        for stem, values in hashes.items():
            tmp = os.path.join(folder, f".{stem}.{rank}.tmp.npy")
            np.save(tmp, np.asarray(values, dtype=np.uint64))
            os.replace(tmp, os.path.join(folder, f"{stem}.npy"))


DUPLICATE_IDS_PLAN = "plan.json"


def _id_shards(docs_dir: str, stem: str) -> list[str]:
    """The document files of one output stream, in order (``stem.jsonl.gz`` or ``stem-NNNN...``)."""
    if not os.path.isdir(docs_dir):
        return []
    return sorted(n for n in os.listdir(docs_dir)
                  if n == f"{stem}.jsonl.gz" or re.fullmatch(rf"{re.escape(stem)}-\d{{4}}\.jsonl\.gz", n))


def _plan_duplicate_ids(ids_dir: str) -> dict[str, Any] | None:
    """Which documents of which stream repeat an id of an earlier stream (None: no repeats)."""
    stems = sorted(n[: -len(".npy")] for n in os.listdir(ids_dir) if n.endswith(".npy") and not n.startswith("."))
    arrays = [np.load(os.path.join(ids_dir, f"{s}.npy")) for s in stems]
    if not arrays:
        return None
    all_hashes = np.concatenate(arrays)
    unique, first_index, counts = np.unique(all_hashes, return_index=True, return_counts=True)
    if not (counts > 1).any():
        return None
    duplicated = set(unique[counts > 1].tolist())
    first_positions = set(first_index[counts > 1].tolist())
    plan: dict[str, Any] = {"stems": {}}
    offset = 0
    for stem, hashes in zip(stems, arrays, strict=True):
        flagged = [i for i, h in enumerate(hashes.tolist()) if h in duplicated and offset + i not in first_positions]
        offset += len(hashes)
        if flagged:
            plan["stems"][stem] = {"flagged": flagged, "step": "pending"}
    return plan


def _stage_stem(output_path: str, ids_dir: str, stem: str, flagged: set[int]) -> dict[str, Any]:
    """Write the stream's files without its flagged documents, and their quarantine records,
    under hidden temporary names (never read as documents); return the renames and the change
    in counts. Reads only the stream's original files, so it can be redone after a kill."""
    from nordpipe.documents import write_records

    docs_dir = os.path.join(output_path, "documents")
    delta: dict[str, Any] = {"documents_out": 0, "characters_out": 0, "sources_out": {}, "moved": 0}
    renames: list[list[str]] = []
    quarantine_lines = []
    position = 0
    for name in _id_shards(docs_dir, stem):
        path = os.path.join(docs_dir, name)
        kept = []
        for line_no, item in enumerate(iter_document_lines(path), start=1):
            if position in flagged:
                record = item.record
                quarantine_lines.append(orjson.dumps({
                    "file": path, "line": line_no,
                    "reason": f"duplicate id: {record['id']!r} is also in an earlier file",
                    "raw": dumps_record(record).decode().rstrip("\n"),
                }))
                delta["documents_out"] -= 1
                delta["characters_out"] -= len(record["text"])
                delta["sources_out"][record["source"]] = delta["sources_out"].get(record["source"], 0) - 1
                delta["moved"] += 1
            else:
                kept.append(item.record)
            position += 1
        tmp = os.path.join(docs_dir, f".{name[: -len('.jsonl.gz')]}.dupids-tmp.jsonl.gz")  # hidden: never read
        write_records(tmp, kept)
        renames.append([tmp, path])
    qdir = os.path.join(output_path, "quarantine")
    os.makedirs(qdir, exist_ok=True)
    qpath = os.path.join(qdir, f"{stem}.duplicate-ids.jsonl")
    with open(os.path.join(qdir, f".{stem}.duplicate-ids.jsonl.tmp"), "wb") as handle:
        handle.write(b"\n".join(quarantine_lines) + b"\n")
    renames.append([os.path.join(qdir, f".{stem}.duplicate-ids.jsonl.tmp"), qpath])
    hashes = np.load(os.path.join(ids_dir, f"{stem}.npy"))
    np.save(os.path.join(ids_dir, f".{stem}.dupids-tmp.npy"), np.delete(hashes, sorted(flagged)))
    renames.append([os.path.join(ids_dir, f".{stem}.dupids-tmp.npy"), os.path.join(ids_dir, f"{stem}.npy")])
    return {"renames": renames, "delta": delta}


def resolve_duplicate_ids(output_path: str) -> int:
    """Quarantine documents whose id already appeared in an earlier output file (by name order).

    Tasks check duplicates within each raw file; this pass finds them across files using the id
    hashes ``RecordIds`` wrote, and rewrites only the affected files. The change in counts is
    recorded in ``.nordpipe/tasks/duplicate-ids.json`` so ``stats.json`` stays right. Returns the
    number of documents moved to quarantine.

    Crash safety: the pass rewrites several files per stream (documents, quarantine, id hashes),
    and a kill between two of them used to make the rerun see a rewritten file with the old id
    list, quarantining a unique record. Now it is a write-ahead sequence, journaled in
    ``ids/plan.json``: (1) the plan (flagged positions per stream, from the original id lists) is
    written before any file changes; (2) per stream, every new file is staged under a hidden
    temporary name from the original files, then the plan marks the stream ``staged`` with its
    renames and count change; (3) the renames are applied (each idempotent) and the stream is
    marked ``done``; (4) the stats delta is written whole from the plan, and the plan removed. A
    rerun resumes the plan where it stopped: a stream not yet staged is staged again from its
    untouched originals, a staged one is renamed forward. Kill points (tests): ``ingest.
    duplicate-ids.planned``, ``.staged``, ``.renamed``, ``.delta``.
    """
    from nordpipe.layout import atomic_write_json
    from nordpipe.runner import kill_point, merge_task_stats

    layout = OutputLayout.of(output_path)
    ids_dir = layout.state_path("ids")
    if not os.path.isdir(ids_dir):
        return 0
    plan_path = os.path.join(ids_dir, DUPLICATE_IDS_PLAN)
    delta_path = os.path.join(layout.tasks, "duplicate-ids.json")
    if os.path.exists(plan_path):
        with open(plan_path, "rb") as handle:
            plan = orjson.loads(handle.read())
    else:
        plan = _plan_duplicate_ids(ids_dir)
        if plan is None:
            return 0
        previous = None
        if os.path.exists(delta_path):  # an earlier pass over this output: its counts stay
            with open(delta_path, "rb") as handle:
                previous = orjson.loads(handle.read())
        plan["previous"] = previous
        atomic_write_json(plan_path, plan)
        kill_point("ingest.duplicate-ids.planned")
    for stem, entry in plan["stems"].items():
        if entry["step"] == "pending":
            entry.update(_stage_stem(output_path, ids_dir, stem, set(entry["flagged"])), step="staged")
            atomic_write_json(plan_path, plan)
            kill_point("ingest.duplicate-ids.staged")
        if entry["step"] == "staged":
            for tmp, final in entry["renames"]:
                if os.path.exists(tmp):
                    os.replace(tmp, final)
                kill_point("ingest.duplicate-ids.renamed")
            entry["step"] = "done"
            atomic_write_json(plan_path, plan)
    moved = sum(e["delta"]["moved"] for e in plan["stems"].values())
    delta: dict[str, Any] = {"documents_out": 0, "characters_out": 0, "sources_out": {}}
    for entry in plan["stems"].values():
        change = {k: v for k, v in entry["delta"].items() if k != "moved"}
        delta = merge_task_stats([delta, change])
    delta["quarantined"] = {"duplicate id": moved}
    if plan.get("previous"):
        delta = merge_task_stats([plan["previous"], delta])
    atomic_write_json(delta_path, delta)
    kill_point("ingest.duplicate-ids.delta")
    os.remove(plan_path)
    return moved


# --------------------------------------------------------------------------------------------
# The stage


def ingest(
    raw_paths: list[str],
    config: IngestConfig,
    output_root: str,
    options: RunOptions | None = None,
    starts: dict[str, RawStart] | None = None,
) -> dict[str, Any]:
    """Ingest raw dumps into ``output_root/<dataset>/`` and write its datasheet. Returns stats.

    ``starts``: where to start reading append-only raw files (by raw path as given); what was
    read of every raw file is recorded in ``.nordpipe/raw-files.json`` (``record_raw_reads``)."""
    from nordpipe.datasheet import sample_languages, write_datasheet

    options = options or RunOptions()
    # The ingested datasets are what teams store and share: spend CPU on a smaller file.
    options.compression_level = 6
    dataset_dir = os.path.join(output_root.rstrip("/"), config.dataset)
    units = discover_units(raw_paths, config.format, starts)
    check_date_source(units, config)
    added = config.added or _previous_added(dataset_dir) or dt.date.today().isoformat()
    tasks = options.tasks or max(1, min(len(units), 1024))
    parameters = {"config": config.to_json(), "added": added, "inputs": [u.to_json() for u in units]}
    with StageRun("ingest", ",".join(raw_paths), dataset_dir, options, parameters, tasks=tasks,
                  raw_inputs=list(raw_paths)) as run:
        run.execute([IngestReader(units, config, added, dataset_dir), RecordIds(dataset_dir), run.writer()])
        if run.submitted_only:
            return run.submit()
        run.finishing()
        record_raw_reads(dataset_dir, units)
        resolve_duplicate_ids(dataset_dir)  # before the stats: it moves records to quarantine
        stats = run.merge_stats()
        if not config.language:
            # the datasheet states no language it was not told or did not find (datasheet.py)
            stats["language_sample"] = sample_languages(dataset_dir)
        write_datasheet(dataset_dir, config, stats)
        return run.complete(stats)


_PEEK_RECORDS = 100
"""Records read per raw file by ``check_date_source``."""


def check_date_source(units: list[RawUnit], config: IngestConfig) -> None:
    """Raise ``MissingDateError`` before any work when records would have no creation date.

    Without ``--created`` every record needs a date field: folders of text files have none,
    and in jsonl/json/CSV/parquet files the first ``_PEEK_RECORDS`` readable records are
    looked at for ``--created-field`` (or any of ``CREATED_CANDIDATES``). Finding none means
    every record would be quarantined, which used to be a run with exit 0 and no output. Files
    whose first records are all unreadable pass (their damage is quarantined as usual). The
    cost is opening each raw file once more and parsing up to 100 records; WARC/WET records
    carry their crawl date and are not read.
    """
    if config.created is not None:
        return
    names = (config.created_field,) if config.created_field else CREATED_CANDIDATES
    fix = "give --created (a range 'YYYY-MM-DD, YYYY-MM-DD', a date or a year)"
    for unit in units:
        if unit.format in ("warc", "wet"):
            continue
        if unit.format == "text":
            raise MissingDateError(f"{unit.path}: text files carry no creation date; {fix}")
        seen, found = 0, False
        items = iter_raw(unit, max_line_bytes_for(config.max_chars))
        try:
            for item in items:
                if item.error is not None or not isinstance(item.fields, dict):
                    continue
                if any(item.fields.get(name) not in (None, "") for name in names):
                    found = True
                    break
                seen += 1
                if seen >= _PEEK_RECORDS:
                    break
            if seen and not found:
                raise MissingDateError(
                    f"{unit.path}: no creation date in the first {seen} record(s) (no field "
                    f"{' / '.join(names)}); {fix}, or --created-field FIELD"
                )
        finally:
            items.close()


def _previous_added(dataset_dir: str) -> str | None:
    """The ``added`` date an earlier (interrupted) run of this ingest chose."""
    path = OutputLayout.of(dataset_dir).run_record
    if os.path.exists(path):
        with open(path) as handle:
            return orjson.loads(handle.read()).get("parameters", {}).get("added")
    return None


def documents_of(dataset_dir: str) -> Iterator[Document]:
    """All kept documents of a dataset (for tests and small tools)."""
    from nordpipe.steps import list_document_files

    for path in list_document_files(dataset_dir):
        for item in iter_document_lines(path):
            if item.record is not None:
                yield record_to_document(item.record)


__all__ = [
    "ConfigError",
    "IngestConfig",
    "IngestReader",
    "RawFileRead",
    "RawStart",
    "RawUnit",
    "discover_units",
    "document_to_record",
    "ingest",
    "is_append_only",
    "map_record",
    "parse_files_from_line",
    "record_raw_reads",
]
