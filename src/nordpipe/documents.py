"""The standardized document format: schema, validation, file I/O and datatrove mapping.

A standardized record is one JSON object per line (REFERENCE §1)::

    {"id": str, "text": str, "source": str, "added": "YYYY-MM-DD",
     "created": "YYYY-MM-DD, YYYY-MM-DD", "metadata": {...}}

Everything nordpipe's stages add lives under ``metadata["nordpipe"]`` (``NORDPIPE_KEY``) so
that the source's own metadata is never overwritten.

On disk, ``metadata`` is that object *encoded as a JSON string* (``"metadata": "{\"url\": ...}"``);
in memory (records, datatrove Documents) it is always a dict. Why: every stage output must load
with one schema across files in ``datasets`` (``load_dataset("json", ...)``, also streaming),
polars (``read_ndjson``/``scan_ndjson``) and duckdb (``read_json_auto``), and all three infer a
schema from the first file (or first rows) and then cast the rest to it. Metadata differs by
source (a web crawl has ``url``, a book corpus ``title``) and ``metadata.nordpipe`` by stage and
document (a quality score here, a MinHash cluster there), so an object column is a different
struct in each file: ``datasets`` fails (``Couldn't cast array of type struct<url: string, ...>``),
polars silently drops the fields the first file lacks. Measured alternatives (datasets 5.2,
polars 2.1, duckdb 2.0; ``tests/test_publish.py`` loads every stage output with each):

- a fixed set of typed metadata fields (``url``, ``language``, ``license``, ... always present,
  null when absent) plus the rest as a JSON string fails as soon as one file has a field null on
  every line: the first file's schema says ``null``, and the next file's strings cannot be cast
  to it (datasets: ``Couldn't cast array of type string to null``; polars: ``incoming: String !=
  target: Null``). Only non-null sentinels ("" for absent) would avoid that, which loses the
  difference between absent and empty and still cannot carry a number.
- the whole metadata object as one JSON string has the same type (string) in every file of every
  stage whatever it holds, loses nothing, and is what ``datasets``' own ``Json()`` feature stores
  (``features=Features({..., "metadata": Json()})`` gives the dicts back); polars reads it with
  ``pl.col("metadata").str.json_decode()``, duckdb with ``metadata::JSON ->> '$.url'``.

So the top-level schema is fixed (six non-null strings) and ``metadata`` is a string. The cost is
one extra ``orjson.dumps``/``loads`` of the (small) metadata per record: measured on 30,000
stage-output-like records (``benchmarks/results/publish.md``, section 1, CPU time) writing cost
the same as before (22.8 against 22.9 µs per record) and reading 5 % more (14.0 against 13.4 µs),
and the files are 2.6 % larger (escaped quotes).

Readers accept both forms (``decode_record``): files written before this change, and input in
REFERENCE §1's object form, read as they always did. ``dumps_record`` is the one writer.

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
import zlib
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


def decode_metadata(value: Any) -> Any:
    """The in-memory form of an on-disk ``metadata`` value: a JSON string holding an object is
    parsed into a dict; anything else (a dict written in the object form, or a bad value that
    validation will name) comes back unchanged."""
    if type(value) is str and value[:1] == "{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def decode_record(record: Any) -> Any:
    """Turn a record as read from disk into its in-memory form (metadata a dict), in place.

    Both on-disk forms are accepted: ``metadata`` as a JSON string (what nordpipe writes) and as
    an object (REFERENCE §1, files written by nordpipe before metadata became a string). A
    string that is not a JSON object stays a string, and ``validate_record`` rejects it.
    """
    if type(record) is dict:
        metadata = record.get("metadata")
        if type(metadata) is str:
            record["metadata"] = decode_metadata(metadata)
    return record


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
        if isinstance(record["metadata"], str):
            raise InvalidRecord("wrong type: metadata is a string that is not a JSON object")
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
    """Standardized record -> datatrove Document (metadata flattened, see module doc); the
    record's metadata may be in either on-disk form (``decode_record``)."""
    metadata = dict(decode_metadata(record.get("metadata")) or {})
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


# --------------------------------------------------------------------------------------------
# Reading raw bytes: damage-tolerant decompression and bounded lines
#
# Readers never trust their input. ``iter_decompressed`` yields the decompressed bytes of a file
# in chunks of at most ``READ_CHUNK`` bytes and, where the compressed stream is damaged, a
# ``Damage`` naming the compressed byte span it had to skip; it then resynchronizes on the next
# intact unit and goes on:
#
# - gzip: members are decompressed one by one with zlib (output capped per call, so a gzip bomb
#   never lands in memory whole). A corrupt member is reported from its first byte; the reader
#   then searches for the next gzip magic (``1f 8b 08``) after the point of failure. Garbage
#   between or after members is one span; zero padding at the end is ignored. A truncated member
#   keeps everything decompressed before the cut.
# - zstd: frame boundaries are read from the frame and block headers (no decompression needed),
#   so a frame whose data is corrupt is skipped exactly and the next frame is still read.
#   ``zstandard``'s stream reader ends silently on a truncated stream; the header walk is what
#   notices the cut. Garbage between frames is skipped up to the next frame magic.
# - plain files: read as they are.
#
# ``iter_byte_lines`` splits that into lines and caps a line's size: a longer line is read to
# its end without being kept (its size is counted) and comes back as an error. Memory per file
# is then about one chunk plus ``max_line_bytes``, whatever the file holds. Cost, measured on a
# 300,000-line jsonl.gz (104 MB decompressed): reading and parsing took 0.48 s against 0.42 s
# for iterating a ``GzipFile`` by line (+15 % on reading, small next to mapping and writing).
# Peak RSS of a whole ingest over a gzip holding one 398 MB line (``--max-chars 1000``): 173 MB.
# Line numbers count the lines read; a damaged span counts as one line, so numbers after it are
# relative to what could be read (the quarantine record names the byte span).

READ_CHUNK = 1 << 20
"""Largest piece of decompressed output (and raw input) held at once while reading."""

GZIP_MAGIC = b"\x1f\x8b\x08"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_BLOCK_MAX = 128 * 1024


def max_line_bytes_for(max_chars: int) -> int:
    """The longest input line worth parsing when texts may hold ``max_chars`` characters.

    6 bytes per character covers JSON written with ``ensure_ascii`` (``\\u00e6`` for æ), the
    worst case for Nordic text (raw UTF-8 needs at most 4), plus 1 MiB for ids and metadata. A
    longer line cannot hold a text within the limit unless its metadata alone exceeds 1 MiB.
    """
    return 6 * max_chars + (1 << 20)


@dataclass
class Damage:
    """A span of a compressed input that could not be decompressed (offsets are compressed bytes)."""

    offset: int
    length: int
    reason: str


@dataclass
class ByteLine:
    """One line of bytes (without its newline), or an error: a line over the size cap or damage."""

    line: int
    data: bytes | None = None
    error: str | None = None
    offset: int | None = None  # damaged span: compressed byte offset ...
    length: int | None = None  # ... and length


class ByteSource:
    """A read buffer over a raw file that knows the file offset of its first byte."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.buf = b""
        self.offset = 0
        self.eof = False
        self.zeros_only = True

    def ensure(self, n: int) -> bool:
        """Read until ``n`` bytes are buffered; False at the end of the file with fewer."""
        while len(self.buf) < n and not self.eof:
            more = self.raw.read(READ_CHUNK)
            if more:
                self.buf = self.buf + more if self.buf else more
            else:
                self.eof = True
        return len(self.buf) >= n

    def consume(self, n: int) -> None:
        self.buf = self.buf[n:]
        self.offset += n

    def skip_to(self, magic: bytes) -> bool:
        """Drop bytes up to the next ``magic``; False (all dropped) when there is none.
        ``zeros_only`` tells whether the dropped bytes were all zero (padding, not damage)."""
        self.zeros_only = True
        while True:
            index = self.buf.find(magic)
            if index >= 0:
                self.zeros_only = self.zeros_only and not self.buf[:index].strip(b"\x00")
                self.consume(index)
                return True
            keep = min(len(magic) - 1, len(self.buf)) if not self.eof else 0
            dropped = self.buf[: len(self.buf) - keep]
            self.zeros_only = self.zeros_only and not dropped.strip(b"\x00")
            self.consume(len(dropped))
            if self.eof:
                return False
            self.ensure(len(self.buf) + 1)


def _gzip_chunks(raw: IO[bytes]) -> Iterator[bytes | Damage]:
    src = ByteSource(raw)
    pending: tuple[int, str] | None = None  # a damaged span waiting for the next good data

    def flush_pending(end: int) -> Iterator[Damage]:
        nonlocal pending
        if pending is not None:
            yield Damage(pending[0], end - pending[0], pending[1])
            pending = None

    while True:
        src.ensure(len(GZIP_MAGIC))
        if not src.buf:
            yield from flush_pending(src.offset)
            return
        if not src.buf.startswith(GZIP_MAGIC):
            start = src.offset
            found = src.skip_to(GZIP_MAGIC)
            if pending is None and not (src.zeros_only and not found):
                pending = (start, f"not gzip data: bytes {start}-{src.offset - 1} are not a gzip member")
            if not found:
                yield from flush_pending(src.offset)
                return
        member_start = src.offset
        decompressor = zlib.decompressobj(31)
        while True:
            if not src.buf and not src.ensure(1):
                yield from flush_pending(member_start)
                yield Damage(
                    member_start,
                    src.offset - member_start,
                    f"truncated: the gzip member at byte {member_start} stops at the end of the file (byte "
                    f"{src.offset}) before its end",
                )
                return
            piece = src.buf[:READ_CHUNK]
            piece_offset = src.offset
            try:
                data = piece
                while True:
                    out = decompressor.decompress(data, READ_CHUNK)
                    if out:
                        yield from flush_pending(member_start)
                        yield out
                    if decompressor.eof:
                        break
                    data = decompressor.unconsumed_tail
                    if not data and len(out) < READ_CHUNK:
                        break
            except zlib.error as err:
                if pending is None:
                    pending = (
                        member_start,
                        f"corrupt gzip member at byte {member_start} (failed near byte {piece_offset}: {err})",
                    )
                src.consume(1)  # resynchronize on the next gzip magic after this point
                break
            if decompressor.eof:
                src.consume(len(piece) - len(decompressor.unused_data))
                yield from flush_pending(member_start)
                break
            src.consume(len(piece))


class _Slice:
    """``read`` at most ``length`` bytes of ``raw`` from its current position."""

    def __init__(self, raw: IO[bytes], length: int):
        self.raw = raw
        self.left = length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.raw.read(size) if size else b""
        self.left -= len(data)
        return data


def _zstd_frame_end(raw: IO[bytes], start: int, file_size: int) -> tuple[int, str | None]:
    """End offset of the zstd (or skippable) frame at ``start`` from its headers, and a problem."""
    raw.seek(start)
    header = raw.read(18)
    magic = int.from_bytes(header[:4], "little")
    if 0x184D2A50 <= magic <= 0x184D2A5F and len(header) >= 8:  # skippable frame
        end = start + 8 + int.from_bytes(header[4:8], "little")
        return (end, None) if end <= file_size else (file_size, "truncated")
    if header[:4] != _ZSTD_MAGIC or len(header) < 6:
        return start, "not zstd data" if len(header) >= 6 else "truncated"
    descriptor = header[4]
    if descriptor & 0x08:
        return start, "corrupt zstd frame header"
    single_segment = (descriptor >> 5) & 1
    size = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3]
    size += (single_segment, 2, 4, 8)[descriptor >> 6]
    position = start + size
    while True:
        raw.seek(position)
        block = raw.read(3)
        if len(block) < 3:
            return file_size, "truncated"
        value = int.from_bytes(block, "little")
        kind, block_size = (value >> 1) & 3, value >> 3
        if kind == 3 or block_size > _ZSTD_BLOCK_MAX:
            return position, "corrupt zstd block header"
        position += 3 + (1 if kind == 1 else block_size)
        if value & 1:
            break
    position += 4 if descriptor & 0x04 else 0
    return (position, None) if position <= file_size else (file_size, "truncated")


def _next_magic(raw: IO[bytes], after: int, magic: bytes) -> int | None:
    """Offset of the first ``magic`` after byte ``after``, or None."""
    raw.seek(after + 1)
    src = ByteSource(raw)
    src.offset = after + 1
    return src.offset if src.skip_to(magic) else None


def _zstd_chunks(raw: IO[bytes]) -> Iterator[bytes | Damage]:
    import zstandard

    file_size = raw.seek(0, io.SEEK_END)
    start = 0
    while start < file_size:
        end, problem = _zstd_frame_end(raw, start, file_size)
        if problem in ("not zstd data", "corrupt zstd frame header"):
            resync = _next_magic(raw, start, _ZSTD_MAGIC)
            stop = file_size if resync is None else resync
            yield Damage(start, stop - start, f"{problem}: bytes {start}-{stop - 1} are not a readable zstd frame")
            start = stop
            continue
        raw.seek(start)
        limit = (file_size if problem == "corrupt zstd block header" else end) - start
        reader = zstandard.ZstdDecompressor().stream_reader(_Slice(raw, limit), read_across_frames=False)
        error = None
        try:
            while out := reader.read(READ_CHUNK):
                yield out
        except zstandard.ZstdError as err:
            error = str(err)
        if problem == "truncated":
            yield Damage(start, file_size - start, f"truncated: the zstd frame at byte {start} stops at the end of the file (byte {file_size}) before its end")
            return
        if problem == "corrupt zstd block header":  # the frame's extent is unknown: find the next frame
            resync = _next_magic(raw, start, _ZSTD_MAGIC)
            end = file_size if resync is None else resync
        if problem or error:
            yield Damage(start, end - start, f"corrupt zstd frame at byte {start} ({error or problem})")
        start = end


def iter_decompressed(path: str) -> Iterator[bytes | Damage]:
    """The decompressed content of ``path`` in chunks, with ``Damage`` where it is broken.

    Compression is chosen by suffix (``.gz``, ``.zst``) as in ``open_binary``. Raises only for
    a file that cannot be opened or read at all (``OSError``).
    """
    with fsspec.open(path, "rb") as raw:
        if path.endswith(".gz"):
            yield from _gzip_chunks(raw)
        elif path.endswith(".zst"):
            yield from _zstd_chunks(raw)
        else:
            while chunk := raw.read(READ_CHUNK):
                yield chunk


def _too_long(line: int, size: int, limit: int) -> ByteLine:
    return ByteLine(line, error=f"too long: line of {size:,} bytes, the limit is {limit:,} bytes (6 bytes per character of --max-chars, plus 1 MiB)")


def iter_byte_lines(path: str, max_line_bytes: int | None = None) -> Iterator[ByteLine]:
    """Lines of ``path`` (decompressed, newline stripped), numbered from 1.

    A line over ``max_line_bytes`` is consumed without being kept and comes back with
    ``error`` ``"too long: ..."``; compression damage comes back as one item with ``error``
    ``"broken compression: ..."`` (plus its byte ``offset``/``length`` and, as ``data``, the
    partial line cut by the damage); an unreadable file as ``"unreadable input: ..."``.
    """
    line = 0
    parts: list[bytes] = []  # the start of the current line
    size = 0  # its length so far
    skipping = False  # the current line is over the cap: count it, do not keep it
    try:
        for chunk in iter_decompressed(path):
            if isinstance(chunk, Damage):
                line += 1
                partial = b"".join(parts) if parts and not skipping else None
                yield ByteLine(line, data=partial, error=f"broken compression: {chunk.reason}", offset=chunk.offset, length=chunk.length)
                parts, size, skipping = [], 0, False
                continue
            pieces = chunk.split(b"\n")
            last = pieces.pop()
            for index, piece in enumerate(pieces):
                line += 1
                if index == 0 and (parts or skipping):
                    total = size + len(piece)
                    if skipping or (max_line_bytes is not None and total > max_line_bytes):
                        yield _too_long(line, total, max_line_bytes or 0)
                    else:
                        parts.append(piece)
                        yield ByteLine(line, data=b"".join(parts))
                    parts, size, skipping = [], 0, False
                elif max_line_bytes is not None and len(piece) > max_line_bytes:
                    yield _too_long(line, len(piece), max_line_bytes)
                else:
                    yield ByteLine(line, data=piece)
            if last:
                size += len(last)
                if not skipping:
                    parts.append(last)
                    if max_line_bytes is not None and size > max_line_bytes:
                        parts, skipping = [], True
        if parts or skipping:
            line += 1
            yield _too_long(line, size, max_line_bytes or 0) if skipping else ByteLine(line, data=b"".join(parts))
    except Exception as err:  # OSError from the file system, anything from a remote backend
        yield ByteLine(line + 1, error=f"unreadable input: after line {line} ({type(err).__name__}: {err})")


@dataclass
class RawLine:
    """One line of an input file: the parsed record, or the reason it could not be parsed.

    ``offset``/``length``: the compressed byte span of a damaged stream (``broken compression``).
    """

    line: int
    record: Any = None
    error: str | None = None
    raw: bytes | None = None
    offset: int | None = None
    length: int | None = None


def iter_jsonl_lines(path: str, max_line_bytes: int | None = None, keep_raw: bool = False) -> Iterator[RawLine]:
    """Parse a jsonl file line by line. Never raises for bad content: bad lines come back with
    ``error`` set (invalid JSON, invalid UTF-8, nested deeper than orjson's 1024 levels, a
    truncated or corrupt compressed stream with its byte span, a line over ``max_line_bytes``).

    ``max_line_bytes=None`` (the default) reads lines of any length; readers of raw input pass
    ``max_line_bytes_for(max_chars)`` so that one giant line cannot exhaust memory.
    ``keep_raw``: also set ``raw`` for lines that parse (for quarantining them later).
    """
    for item in iter_byte_lines(path, max_line_bytes):
        if item.error is not None:
            yield RawLine(item.line, error=item.error, raw=item.data, offset=item.offset, length=item.length)
            continue
        data = item.data or b""
        if not data.strip():
            continue
        try:
            yield RawLine(item.line, record=orjson.loads(data), raw=data.rstrip(b"\r") if keep_raw else None)
        except orjson.JSONDecodeError as err:
            yield RawLine(item.line, error=json_error_reason(err), raw=data.rstrip(b"\r"))


def iter_document_lines(path: str, max_line_bytes: int | None = None, keep_raw: bool = False) -> Iterator[RawLine]:
    """``iter_jsonl_lines`` for standardized files: each parsed record's metadata is decoded to
    a dict (``decode_record``); ``raw`` is the line as it is on disk."""
    for item in iter_jsonl_lines(path, max_line_bytes, keep_raw):
        if item.record is not None:
            decode_record(item.record)
        yield item


def json_error_reason(err: orjson.JSONDecodeError) -> str:
    """The quarantine reason for a line orjson cannot parse: bad UTF-8, too deep, or invalid JSON."""
    message = str(err)
    if "utf-8" in message.lower():
        return f"invalid UTF-8: {message}"
    if "depth limit" in message or "recursion" in message.lower():
        return f"too deep: JSON nested deeper than 1024 levels ({message})"
    return f"invalid JSON: {message}"


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
    """Yield ``(line, record)`` from a standardized file (jsonl[.gz|.zst] or parquet), metadata
    decoded to a dict (``decode_record``).

    Raises ``InvalidRecord`` with the line number on the first unparsable line; use
    ``iter_jsonl_lines`` to get bad lines instead of an exception.
    """
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        with fsspec.open(path, "rb") as handle:
            table = pq.read_table(handle)
        for line, record in enumerate(table.to_pylist(), start=1):
            yield line, decode_record(record)
        return
    for item in iter_jsonl_lines(path):
        if item.error:
            raise InvalidRecord(f"{path}:{item.line}: {item.error}")
        yield item.line, decode_record(item.record)


_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def encode_record(record: Any) -> Any:
    """The on-disk form of a record: a shallow copy whose dict ``metadata`` is a JSON string
    (module doc); a metadata that is already a string (or not a dict), or a record that is not
    a dict (a bad line being quarantined), is left as it is."""
    metadata = record.get("metadata") if type(record) is dict else None
    if type(metadata) is not dict:
        return record
    encoded = dict(record)
    encoded["metadata"] = orjson.dumps(metadata, option=_DUMPS_OPTIONS).decode()
    return encoded


def dumps_record(record: Any) -> bytes:
    """One jsonl line (with newline) for a record in the on-disk form (``encode_record``:
    metadata as a JSON string); non-str keys and numpy values tolerated."""
    return orjson.dumps(encode_record(record), option=orjson.OPT_APPEND_NEWLINE | _DUMPS_OPTIONS)


def write_records(path: str, records: list[dict[str, Any]] | Iterator[dict[str, Any]]) -> int:
    """Write records to ``path`` (format from the suffix; metadata as a JSON string in both).
    Not atomic: see ``steps.DocumentWriter``."""
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [encode_record(record) for record in records]
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
