"""Ingest: raw dumps -> standardized documents (``ROOT/NAME/documents/*.jsonl.gz``) + datasheet.

Raw formats, recognized by suffix:

- ``.jsonl``/``.ndjson`` (optionally ``.gz``/``.zst``): one JSON object per line;
- ``.json`` (optionally ``.gz``/``.zst``): a JSON array of objects (read whole: keep such files small);
- ``.csv``/``.tsv`` (optionally ``.gz``/``.zst``): a header row, then one record per row;
- ``.parquet``: one record per row, read in batches;
- a folder of ``.txt``/``.md`` files: one document per file (its path becomes ``metadata.path``);
- ``.warc``/``.warc.gz``/``.arc.gz`` (HTML responses, text extracted with trafilatura) and
  ``.wet``/``.warc.wet.gz`` (text conversions): URL and crawl date go to ``metadata.url`` and
  ``created``.

Every raw record is mapped with an ``IngestConfig`` (flags or ``pipelines/datasets/NAME.yaml``)
and validated against the schema; what fails goes to quarantine with file, line and reason.
Each raw file (or text folder) is one unit of work, so tasks never split a file and output names
(``<file stem>.jsonl.gz``, ``<stem>-0001.jsonl.gz`` for further shards) do not depend on the
number of tasks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

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
    INPUT_KEY,
    LINE_KEY,
    InvalidRecord,
    document_to_record,
    dumps_record,
    iter_jsonl_lines,
    open_binary,
    record_to_document,
    validate_record,
)
from nordpipe.runner import STATE_DIR, RunOptions, finalize, run_stage
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
    id_template: str = "{dataset}-{file}-{line}"
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


def discover_units(raw_paths: list[str], forced_format: str | None = None) -> list[RawUnit]:
    """Raw inputs -> units, in a stable order with unique output stems."""
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
# Raw readers: yield (line, fields | None, error | None, raw | None)

RawItem = tuple[int, Any, str | None, bytes | str | None]


def iter_raw(unit: RawUnit) -> Iterator[RawItem]:
    reader = {
        "jsonl": _iter_jsonl,
        "json": _iter_json,
        "csv": _iter_csv,
        "tsv": _iter_csv,
        "parquet": _iter_parquet,
        "text": _iter_text,
        "warc": _iter_warc,
        "wet": _iter_warc,
    }[unit.format]
    yield from reader(unit)


def _iter_jsonl(unit: RawUnit) -> Iterator[RawItem]:
    for item in iter_jsonl_lines(unit.path):
        yield item.line, item.record, item.error, item.raw


def _iter_json(unit: RawUnit) -> Iterator[RawItem]:
    try:
        with open_binary(unit.path) as handle:
            data = orjson.loads(handle.read())
    except (orjson.JSONDecodeError, EOFError, OSError) as err:
        yield 1, None, f"invalid JSON: {err}", None
        return
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        yield 1, None, f"not an object: the file holds a JSON {type(data).__name__}, expected an array of objects", None
        return
    for i, item in enumerate(data, start=1):
        yield i, item, None, None


def _iter_csv(unit: RawUnit) -> Iterator[RawItem]:
    delimiter = "\t" if unit.format == "tsv" else ","
    row_no = 1
    try:
        with open_binary(unit.path) as binary:
            text = io.TextIOWrapper(binary, encoding="utf-8", errors="strict", newline="")
            reader = csv.reader(text, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return
            for row_no, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    yield row_no, None, f"bad row: {len(row)} columns, the header has {len(header)}", delimiter.join(row)
                    continue
                yield row_no, dict(zip(header, row, strict=True)), None, None
    except UnicodeDecodeError as err:
        yield row_no + 1, None, f"invalid UTF-8: after row {row_no} ({err})", None
    except (EOFError, OSError, csv.Error) as err:
        yield row_no + 1, None, f"unreadable input: CSV after row {row_no} ({err})", None


def _iter_parquet(unit: RawUnit) -> Iterator[RawItem]:
    import pyarrow.parquet as pq

    try:
        with fsspec.open(unit.path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            row = 0
            for batch in parquet.iter_batches(batch_size=4096):
                for record in batch.to_pylist():
                    row += 1
                    yield row, record, None, None
    except Exception as err:  # pyarrow raises several error types for broken files
        yield 0, None, f"unreadable input: parquet ({err})", None


def _iter_text(unit: RawUnit) -> Iterator[RawItem]:
    base = unit.path.rstrip("/")
    for i, path in enumerate(unit.files, start=1):
        rel = path[len(base) + 1 :] if path.startswith(base + "/") else os.path.basename(path)
        try:
            with fsspec.open(path, "rb") as handle:
                content = handle.read()
        except OSError as err:
            yield i, None, f"unreadable input: {rel} ({err})", None
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as err:
            yield i, None, f"invalid UTF-8: {rel} ({err})", content
            continue
        yield i, {"text": text, "path": rel, "id": f"{unit.stem}/{rel}"}, None, None


def _warc_target(uri: str | None) -> str | None:
    if not uri:
        return None
    return uri.strip().strip("<>")


def _iter_warc(unit: RawUnit) -> Iterator[RawItem]:
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    number = 0
    try:
        with fsspec.open(unit.path, "rb") as handle:
            for record in ArchiveIterator(handle, arc2warc=True):
                if record.rec_type not in ("response", "conversion", "resource"):
                    continue
                number += 1
                headers = record.rec_headers
                url = _warc_target(headers.get_header("WARC-Target-URI"))
                meta = {
                    "url": url,
                    "date": headers.get_header("WARC-Date"),
                    "warc_record_id": headers.get_header("WARC-Record-ID"),
                    "warc_file": os.path.basename(unit.path),
                }
                payload = record.content_stream().read()
                if record.rec_type == "conversion":
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError as err:
                        yield number, None, f"invalid UTF-8: WET record {url} ({err})", payload
                        continue
                else:
                    content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else None) or ""
                    meta["content_type"] = content_type.split(";")[0].strip() or None
                    if record.http_headers and not record.http_headers.get_statuscode().startswith("2"):
                        yield number, None, f"not a page: HTTP status {record.http_headers.get_statuscode()} for {url}", None
                        continue
                    if content_type and "html" not in content_type and "text/plain" not in content_type:
                        yield number, None, f"not a page: {meta['content_type']} at {url}", None
                        continue
                    if "text/plain" in content_type:
                        text = payload.decode("utf-8", errors="replace")
                    else:
                        text = trafilatura.extract(payload, url=url, include_comments=False, favor_precision=True) or ""
                    if not text.strip():
                        yield number, None, f"empty text: nothing extracted from {url}", None
                        continue
                yield number, {"text": text, **meta}, None, None
    except Exception as err:  # warcio raises ArchiveLoadFailed, EOFError, zlib errors
        yield number + 1, None, f"unreadable input: WARC after record {number} ({err})", None


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


def map_record(fields_: Any, line: int, unit: RawUnit, config: IngestConfig, added: str) -> dict[str, Any]:
    """One raw record -> a validated standardized record; raises ``InvalidRecord``."""
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
    nested = fields_.get("metadata")
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
    metadata.update(config.metadata)
    if config.license and "license" not in metadata:
        metadata["license"] = config.license
    if len(config.language) == 1 and "language" not in metadata:
        metadata["language"] = config.language[0]
    record = {"id": doc_id, "text": text, "source": config.dataset, "added": added, "created": created, "metadata": metadata}
    validate_record(record, source=config.dataset, max_chars=config.max_chars)
    return record


class IngestReader(PipelineStep):
    """Read raw units (each task every ``world_size``-th unit), map and validate every record.

    Args:
        units: from ``discover_units``.
        config: the field mapping.
        added: the ``added`` date for records without an ``added_field``.
    """

    type = "📖 - READER"
    name = "ingest"

    def __init__(self, units: list[RawUnit], config: IngestConfig, added: str):
        super().__init__()
        self.units = units
        self.config = config
        self.added = added

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for unit in self.units[rank::world_size]:
            seen_ids: set[str] = set()
            for line, fields_, error, raw in iter_raw(unit):
                if error is None:
                    try:
                        record = map_record(fields_, line, unit, self.config, self.added)
                        if record["id"] in seen_ids:
                            raise InvalidRecord(f"duplicate id: {record['id']!r} already seen in this file")
                        seen_ids.add(record["id"])
                    except InvalidRecord as err:
                        error = str(err)
                        if raw is None:
                            raw = _raw_repr(fields_)
                if error is not None:
                    self.stat_update("quarantined")
                    yield quarantine_document(unit.path, line, error, raw, unit.stem)
                    continue
                doc = record_to_document(record)
                doc.metadata[INPUT_KEY] = unit.stem
                doc.metadata[LINE_KEY] = line
                self.stat_update("documents")
                yield doc


def _raw_repr(fields_: Any) -> bytes | None:
    try:
        return orjson.dumps(fields_, default=str)
    except TypeError:
        return repr(fields_).encode()


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
        folder = os.path.join(self.output_path, STATE_DIR, "ids")
        os.makedirs(folder, exist_ok=True)
        for stem, values in hashes.items():
            tmp = os.path.join(folder, f".{stem}.{rank}.tmp.npy")
            np.save(tmp, np.asarray(values, dtype=np.uint64))
            os.replace(tmp, os.path.join(folder, f"{stem}.npy"))


def resolve_duplicate_ids(output_path: str) -> int:
    """Quarantine documents whose id already appeared in an earlier output file (by name order).

    Tasks check duplicates within each raw file; this pass finds them across files using the id
    hashes ``RecordIds`` wrote, and rewrites only the affected files. The change in counts is
    recorded in ``.nordpipe/tasks/duplicate-ids.json`` so ``stats.json`` stays right. Returns the
    number of documents moved to quarantine.
    """
    ids_dir = os.path.join(output_path, STATE_DIR, "ids")
    if not os.path.isdir(ids_dir):
        return 0
    stems = sorted(n[: -len(".npy")] for n in os.listdir(ids_dir) if n.endswith(".npy") and not n.startswith("."))
    arrays = [np.load(os.path.join(ids_dir, f"{s}.npy")) for s in stems]
    if not arrays:
        return 0
    all_hashes = np.concatenate(arrays)
    unique, first_index, counts = np.unique(all_hashes, return_index=True, return_counts=True)
    if not (counts > 1).any():
        return 0
    duplicated = set(unique[counts > 1].tolist())
    first_positions = set(first_index[counts > 1].tolist())
    delta: dict[str, Any] = {"documents_out": 0, "characters_out": 0, "quarantined": {}, "sources_out": {}}
    moved = 0
    offset = 0
    docs_dir = os.path.join(output_path, "documents")
    for stem, hashes in zip(stems, arrays, strict=True):
        flagged = {
            i for i, h in enumerate(hashes.tolist()) if h in duplicated and offset + i not in first_positions
        }
        offset += len(hashes)
        if not flagged:
            continue
        shard_files = sorted(
            n for n in os.listdir(docs_dir) if n == f"{stem}.jsonl.gz" or re.fullmatch(rf"{re.escape(stem)}-\d{{4}}\.jsonl\.gz", n)
        )
        position = 0
        quarantine_lines = []
        for name in shard_files:
            path = os.path.join(docs_dir, name)
            kept = []
            for line_no, item in enumerate(iter_jsonl_lines(path), start=1):
                if position in flagged:
                    record = item.record
                    quarantine_lines.append(
                        orjson.dumps({"file": path, "line": line_no, "reason": f"duplicate id: {record['id']!r} is also in an earlier file", "raw": dumps_record(record).decode().rstrip("\n")})
                    )
                    delta["documents_out"] -= 1
                    delta["characters_out"] -= len(record["text"])
                    delta["sources_out"][record["source"]] = delta["sources_out"].get(record["source"], 0) - 1
                    moved += 1
                else:
                    kept.append(item.record)
                position += 1
            from nordpipe.documents import write_records

            tmp = path + ".tmp.jsonl.gz"
            write_records(tmp, kept)
            os.replace(tmp, path)
        qdir = os.path.join(output_path, "quarantine")
        os.makedirs(qdir, exist_ok=True)
        qpath = os.path.join(qdir, f"{stem}.duplicate-ids.jsonl")
        with open(qpath + ".tmp", "wb") as handle:
            handle.write(b"\n".join(quarantine_lines) + b"\n")
        os.replace(qpath + ".tmp", qpath)
        np.save(os.path.join(ids_dir, f".{stem}.tmp.npy"), np.delete(hashes, sorted(flagged)))
        os.replace(os.path.join(ids_dir, f".{stem}.tmp.npy"), os.path.join(ids_dir, f"{stem}.npy"))
    delta["quarantined"] = {"duplicate id": moved}
    delta_path = os.path.join(output_path, STATE_DIR, "tasks", "duplicate-ids.json")
    previous: dict[str, Any] = {}
    if os.path.exists(delta_path):
        with open(delta_path) as handle:
            previous = orjson.loads(handle.read())
    from nordpipe.runner import merge_task_stats

    merged = merge_task_stats([previous, delta]) if previous else delta
    with open(delta_path + ".tmp", "wb") as handle:
        handle.write(orjson.dumps(merged))
    os.replace(delta_path + ".tmp", delta_path)
    return moved


# --------------------------------------------------------------------------------------------
# The stage


def ingest(
    raw_paths: list[str],
    config: IngestConfig,
    output_root: str,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Ingest raw dumps into ``output_root/<dataset>/`` and write its datasheet. Returns stats."""
    from nordpipe.datasheet import write_datasheet

    options = options or RunOptions()
    # The ingested datasets are what teams store and share: spend CPU on a smaller file.
    options.compression_level = 6
    dataset_dir = os.path.join(output_root.rstrip("/"), config.dataset)
    units = discover_units(raw_paths, config.format)
    added = config.added or _previous_added(dataset_dir) or dt.date.today().isoformat()
    tasks = options.tasks or max(1, min(len(units), 1024))
    parameters = {"config": config.to_json(), "added": added, "inputs": [asdict(u) for u in units]}
    stats = run_stage(
        "ingest",
        [RecordIds(dataset_dir)],
        ",".join(raw_paths),
        dataset_dir,
        options,
        parameters=parameters,
        reader=IngestReader(units, config, added),
        tasks=tasks,
    )
    if not stats:  # submitted to Slurm without waiting
        return stats
    if resolve_duplicate_ids(dataset_dir):
        stats = finalize(dataset_dir, stage="ingest", tasks=tasks, seconds=stats.get("seconds"))
    write_datasheet(dataset_dir, config, stats)
    return stats


def _previous_added(dataset_dir: str) -> str | None:
    """The ``added`` date an earlier (interrupted) run of this ingest chose."""
    path = os.path.join(dataset_dir, STATE_DIR, "run.json")
    if os.path.exists(path):
        with open(path) as handle:
            return orjson.loads(handle.read()).get("parameters", {}).get("added")
    return None


def documents_of(dataset_dir: str) -> Iterator[Document]:
    """All kept documents of a dataset (for tests and small tools)."""
    from nordpipe.steps import list_document_files

    for path in list_document_files(dataset_dir):
        for item in iter_jsonl_lines(path):
            if item.record is not None:
                yield record_to_document(item.record)


__all__ = [
    "ConfigError",
    "IngestConfig",
    "IngestReader",
    "RawUnit",
    "discover_units",
    "document_to_record",
    "ingest",
    "map_record",
]
