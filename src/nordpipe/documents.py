"""The standardized document format: schema, validation, file I/O and datatrove mapping.

A standardized record is one JSON object per line (REFERENCE §1)::

    {"id": str, "text": str, "source": str, "added": "YYYY-MM-DD",
     "created": "YYYY-MM-DD, YYYY-MM-DD", "metadata": {...}}

Everything nordpipe's stages add lives under ``metadata["nordpipe"]`` (``NORDPIPE_KEY``) so
that the source's own metadata is never overwritten.

Inside a datatrove pipeline a record is a ``datatrove.data.Document`` whose ``metadata`` holds
the source metadata flattened, plus ``source``, ``added`` and ``created`` (so datatrove's own
steps find ``metadata["url"]`` where they expect it). ``record_to_document`` and
``document_to_record`` convert between the two.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import fsspec
import orjson
from datatrove.data import Document

NORDPIPE_KEY = "nordpipe"
"""Metadata key under which nordpipe's stages store everything they add."""

TOP_LEVEL_FIELDS = ("source", "added", "created")
"""Record fields that live next to ``id``/``text`` and are flattened into Document.metadata."""

# Transient keys that travel with a document between nordpipe's reader and writer inside one
# task. They are never written to output files.
INPUT_KEY = "_nordpipe_input"  # output stem the document belongs to (derived from its input file)
LINE_KEY = "_nordpipe_line"  # 1-based line (or row) number in the input file
QUARANTINE_KEY = "_nordpipe_quarantine"  # dict(file=..., line=..., reason=..., raw=...) for bad input

DOCUMENT_SUFFIXES = (".jsonl.gz", ".jsonl.zst", ".jsonl", ".parquet")
DEFAULT_MAX_CHARS = 10_000_000
"""Texts longer than this are quarantined by default (``text_too_long``)."""

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidRecord(ValueError):
    """A record that breaks the standardized schema; the message is the reason."""


# --------------------------------------------------------------------------------------------
# Validation


_VALID_DATES: dict[str, dt.date] = {}
"""Date strings already found valid. A corpus holds few distinct dates, and checking three per
record (regex + fromisoformat) was a fifth of the reader's time; only successes are kept."""


def _check_date(value: str, field: str) -> dt.date:
    known = _VALID_DATES.get(value)
    if known is not None:
        return known
    if not _DATE_RE.match(value):
        raise InvalidRecord(f"bad date: {field} {value!r} is not YYYY-MM-DD")
    try:
        date = dt.date.fromisoformat(value)
    except ValueError as err:
        raise InvalidRecord(f"bad date: {field} {value!r} is not a calendar date") from err
    if len(_VALID_DATES) < 100_000:
        _VALID_DATES[value] = date
    return date


def validate_record(
    record: Any,
    *,
    source: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> None:
    """Raise ``InvalidRecord`` naming the first rule the record breaks.

    ``source``: when given, the record's ``source`` must equal it (the dataset folder name).
    """
    if not isinstance(record, dict):
        raise InvalidRecord(f"not an object: the record is a JSON {type(record).__name__}")
    for field in ("id", "text", "source", "added", "created", "metadata"):
        if field not in record:
            raise InvalidRecord(f"missing field: {field!r}")
    for field in ("id", "text", "source", "added", "created"):
        if not isinstance(record[field], str):
            raise InvalidRecord(f"wrong type: {field} is {type(record[field]).__name__}, expected a string")
    if not isinstance(record["metadata"], dict):
        raise InvalidRecord(f"wrong type: metadata is {type(record['metadata']).__name__}, expected an object")
    if not record["id"]:
        raise InvalidRecord("empty id: the id is an empty string")
    check_text(record["text"], max_chars=max_chars)
    if source is not None and record["source"] != source:
        raise InvalidRecord(f"source mismatch: {record['source']!r} differs from the dataset name {source!r}")
    _check_date(record["added"], "added")
    parts = record["created"].split(", ")
    if len(parts) != 2:
        raise InvalidRecord(f"bad date: created {record['created']!r} is not 'YYYY-MM-DD, YYYY-MM-DD'")
    start, end = (_check_date(p, "created") for p in parts)
    if start > end:
        raise InvalidRecord(f"bad date: created start {parts[0]} is after end {parts[1]}")


def check_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> None:
    """Raise ``InvalidRecord`` for empty, whitespace-only, NUL-containing or giant texts."""
    if not text or text.isspace():
        raise InvalidRecord("empty text: the text is empty or whitespace-only")
    if "\x00" in text:
        raise InvalidRecord("NUL bytes: the text contains NUL characters")
    if len(text) > max_chars:
        raise InvalidRecord(f"text too long: {len(text):,} characters, the limit is {max_chars:,} (--max-chars)")


# --------------------------------------------------------------------------------------------
# Mapping to and from datatrove Documents


def record_to_document(record: dict[str, Any]) -> Document:
    """Standardized record -> datatrove Document (metadata flattened, see module doc)."""
    metadata = dict(record.get("metadata") or {})
    for field in TOP_LEVEL_FIELDS:
        if field in metadata:
            # A source metadata key that collides with a top-level field is kept, renamed.
            metadata[f"source_metadata_{field}"] = metadata.pop(field)
        if field in record:
            metadata[field] = record[field]
    return Document(text=record["text"], id=str(record["id"]), metadata=metadata)


def document_to_record(doc: Document) -> dict[str, Any]:
    """datatrove Document -> standardized record; transient nordpipe keys are dropped."""
    metadata = {k: v for k, v in doc.metadata.items() if not k.startswith("_nordpipe_")}
    record: dict[str, Any] = {"id": doc.id, "text": doc.text}
    for field in TOP_LEVEL_FIELDS:
        record[field] = metadata.pop(field, None)
    for field in TOP_LEVEL_FIELDS:
        renamed = f"source_metadata_{field}"
        if renamed in metadata:
            metadata[field] = metadata.pop(renamed)
    record["metadata"] = metadata
    return record


def nordpipe_meta(doc: Document) -> dict[str, Any]:
    """The document's ``metadata["nordpipe"]`` dict, created if missing."""
    meta = doc.metadata.get(NORDPIPE_KEY)
    if meta is None:
        meta = doc.metadata[NORDPIPE_KEY] = {}
    return meta


def removal_reason(doc: Document) -> str | None:
    """Why a stage removed this document, or None if it is still in."""
    meta = doc.metadata.get(NORDPIPE_KEY)
    return meta.get("removed") if meta else None


def mark_removed(doc: Document, reason: str) -> None:
    """Mark a document as removed by ``reason`` (``"<step>:<rule>"``, e.g. ``gopher_quality:stop_words``).

    Removed documents keep flowing to the writer, which counts them and writes them to
    ``removed/`` when asked; later steps leave them alone.
    """
    nordpipe_meta(doc)["removed"] = reason


# --------------------------------------------------------------------------------------------
# Files


def is_document_file(path: str) -> bool:
    return path.endswith(DOCUMENT_SUFFIXES)


def document_stem(path: str) -> str:
    """``a/b/00001.jsonl.gz`` -> ``00001``."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (*DOCUMENT_SUFFIXES, ".json.gz", ".json.zst", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name.rsplit(".", 1)[0]


def open_binary(path: str, mode: str = "rb") -> IO[bytes]:
    """Open a local path or fsspec URL, (de)compressing by suffix (``.gz``, ``.zst``)."""
    compression = "gzip" if path.endswith(".gz") else "zstd" if path.endswith(".zst") else None
    if compression == "gzip" and "w" in mode:
        # Level 6 is zlib's default trade-off; level 9 (Python's default) costs ~2x for ~2%.
        # ISA-L (isal) level 3 compresses like zlib 6 at a fraction of the CPU.
        if "://" in path:  # remote: fsspec's own gzip (it also prefers isal) closes the stream
            return fsspec.open(path, mode, compression="gzip").open()
        try:
            from isal import igzip

            return igzip.IGzipFile(path, mode, compresslevel=3, mtime=0)  # type: ignore[return-value]
        except ImportError:
            import gzip

            return gzip.GzipFile(path, mode, compresslevel=6, mtime=0)  # type: ignore[return-value]
    handle = fsspec.open(path, mode, compression=compression).open()
    if compression == "zstd" and "r" in mode:
        # zstandard's reader does not iterate by line; a BufferedReader on top does.
        return io.BufferedReader(handle, buffer_size=1 << 20)
    return handle


@dataclass
class RawLine:
    """One line of an input file: the parsed record, or the reason it could not be parsed."""

    line: int
    record: Any = None
    error: str | None = None
    raw: bytes | None = None


def iter_jsonl_lines(path: str) -> Iterator[RawLine]:
    """Parse a jsonl file line by line. Never raises for bad content: bad lines come back with
    ``error`` set (invalid JSON, invalid UTF-8, a truncated or corrupt compressed stream)."""
    line_no = 0
    try:
        with open_binary(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield RawLine(line_no, record=orjson.loads(line))
                except orjson.JSONDecodeError as err:
                    reason = f"invalid UTF-8: {err}" if "utf-8" in str(err).lower() else f"invalid JSON: {err}"
                    yield RawLine(line_no, error=reason, raw=line.rstrip(b"\r\n"))
    except (EOFError, OSError, ValueError) as err:
        # gzip raises EOFError on a truncated member and OSError/BadGzipFile on corruption;
        # zstandard raises a ZstdError (a ValueError subclass is not guaranteed, so OSError too).
        yield RawLine(line_no + 1, error=f"broken compression: the stream ends or breaks after line {line_no} ({err})")
    except Exception as err:  # zstd.ZstdError and friends
        yield RawLine(line_no + 1, error=f"unreadable input: after line {line_no} ({err})")


def raw_for_quarantine(raw: bytes | str | None) -> dict[str, str]:
    """Represent an input line losslessly in a JSON quarantine record."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        return {"raw": raw}
    try:
        return {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw_base64": base64.b64encode(raw).decode("ascii")}


def iter_records(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, record)`` from a standardized file (jsonl[.gz|.zst] or parquet).

    Raises ``InvalidRecord`` with the line number on the first unparsable line; use
    ``iter_jsonl_lines`` to get bad lines instead of an exception.
    """
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        with fsspec.open(path, "rb") as handle:
            table = pq.read_table(handle)
        yield from enumerate(table.to_pylist(), start=1)
        return
    for item in iter_jsonl_lines(path):
        if item.error:
            raise InvalidRecord(f"{path}:{item.line}: {item.error}")
        yield item.line, item.record


def dumps_record(record: dict[str, Any]) -> bytes:
    """One jsonl line (with newline) for a record; non-str keys and numpy values tolerated."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def write_records(path: str, records: list[dict[str, Any]] | Iterator[dict[str, Any]]) -> int:
    """Write records to ``path`` (format from the suffix). Not atomic: see ``steps.DocumentWriter``."""
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = list(records)
        with fsspec.open(path, "wb") as handle:
            pq.write_table(pa.Table.from_pylist(rows), handle)
        return len(rows)
    count = 0
    chunk: list[bytes] = []
    with open_binary(path, "wb") as handle:
        for record in records:
            chunk.append(dumps_record(record))
            count += 1
            if len(chunk) >= 1000:
                handle.write(b"".join(chunk))
                chunk.clear()
        handle.write(b"".join(chunk))
    return count
