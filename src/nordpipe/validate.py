"""``nordpipe validate``: check every record of every file, and every dataset's datasheet.

Unlike a first-line check, every line is parsed and validated against the standardized format
(``documents.validate_record``: schema, dates, non-empty text, ``--max-chars``).

Design: the arguments are expanded into document files (``steps.list_document_files``) and
each file is attributed to a *folder*, the folder whose ``documents/`` holds it. A folder is one
of three kinds, decided once per folder (``classify_folder``):

- ``dataset``: an ingest dataset ``ROOT/NAME/`` (``documents/`` + datasheet ``README.md``).
  Strict: every record's ``source`` must equal ``NAME`` and the datasheet must be complete.
- ``stage``: the output of a later stage (``OUT/documents/``, ``OUT/removed/``,
  ``OUT/quarantine/``, ``OUT/.nordpipe/``). A stage output may merge several datasets, so
  ``source`` is free (but must be non-empty), there is no datasheet, and every kept record
  must not carry a removal reason (``metadata.nordpipe.removed``: removed documents belong in
  ``removed/``). ``metadata.nordpipe``, when present, must be an object.
- ``files``: a document file that is not inside a ``documents/`` folder (a loose file or a
  folder of files): schema only, no source or datasheet rule.

How a folder's kind is decided, first match wins:

1. ``.nordpipe/run.json`` (or ``stats.json``, ``complete.json``) names a stage: ``ingest`` means
   ``dataset`` (ingest writes that state too), any other stage means ``stage``.
2. A ``README.md`` beside ``documents/`` means ``dataset``.
3. State files that name no stage, or document files named ``<dataset>__<stem>`` (how stages
   flatten a root of datasets), mean ``stage``.
4. Otherwise ``dataset``: a bare ``NAME/documents/`` keeps the strict checks.

Invariants:

- ids are unique per ``(folder, source)``: within a dataset (whose source is fixed) or per
  source within a stage output; a loose file's folder is its parent directory. Ids are kept as
  64-bit xxhash digests, so memory stays ~100 bytes per record.
- The on-disk form of ``metadata`` is checked per file (``documents`` module doc): nordpipe
  writes it as a JSON string so that every output loads with one schema in ``datasets``, polars
  and duckdb. The object form (REFERENCE §1, nordpipe's outputs before that change) is valid and
  read as before, and reported (``FileReport.metadata_form`` = ``"object"``, a note on stderr)
  because such files do not load together when their metadata differ. One file holding both
  forms is invalid: no reader can give its lines one schema, and nordpipe never writes one.
- A file named twice (``validate X X``, or a file and its folder) is validated once.
- The report is never ``ok`` for nothing: a missing path, a path without document files, or
  a path whose files hold no record at all is a path problem (``ValidationReport.problems``)
  and makes the report fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import fsspec
import orjson
import xxhash

from nordpipe.datasheet import check_datasheet
from nordpipe.documents import (
    DEFAULT_MAX_CHARS,
    DOCUMENT_SUFFIXES,
    NORDPIPE_KEY,
    InvalidRecord,
    decode_record,
    iter_jsonl_lines,
    iter_records,
    validate_record,
)
from nordpipe.layout import STATE_DIR
from nordpipe.steps import list_document_files

MAX_ERRORS_SHOWN = 50
"""Errors listed per file; ``FileReport.invalid`` counts all of them."""

FolderKind = Literal["dataset", "stage", "files"]
STATE_FILES = ("run.json", "stats.json", "complete.json")
"""Files in ``FOLDER/.nordpipe/`` that name the stage that wrote the folder (first that does wins)."""
FLATTENED_SEPARATOR = "__"
"""Stage outputs of a root of datasets name their files ``<dataset>__<stem>``."""


@dataclass
class FileReport:
    path: str
    records: int = 0
    invalid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    kind: FolderKind = "files"
    metadata_form: str | None = None
    """How the file stores ``metadata``: ``"string"`` (a JSON string, what nordpipe writes),
    ``"object"`` (REFERENCE §1's object, the older form) or None (no record, or parquet)."""

    def add_error(self, line: int, reason: str) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append({"line": line, "reason": reason})


@dataclass
class ValidationReport:
    files: list[FileReport] = field(default_factory=list)
    datasheet_problems: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Path problems: missing paths, folders without document files or without records."""

    @property
    def object_metadata_files(self) -> list[str]:
        """Files whose metadata is stored as an object: valid, but not loadable with one schema
        across files whose metadata differ (see the module doc)."""
        return [f.path for f in self.files if f.metadata_form == "object"]

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and not self.datasheet_problems
            and bool(self.files)
            and all(f.invalid == 0 for f in self.files)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": [f.__dict__ for f in self.files],
            "records": sum(f.records for f in self.files),
            "invalid": sum(f.invalid for f in self.files),
            "problems": self.problems,
            "object_metadata_files": self.object_metadata_files,
            "datasheet_problems": self.datasheet_problems,
        }


@dataclass(frozen=True)
class Folder:
    """Where a file belongs: the folder holding its ``documents/`` (or its directory)."""

    path: str
    kind: FolderKind
    name: str | None = None
    """Dataset name (the folder's base name) for ``dataset`` folders."""
    stage: str | None = None
    """The stage that wrote the folder, when its state says so."""


def dataset_of(path: str) -> tuple[str | None, str | None]:
    """(dataset folder, dataset name) for a file inside ``<name>/documents/``."""
    parts = path.replace("\\", "/").split("/")
    if len(parts) >= 3 and parts[-2] == "documents":
        return "/".join(parts[:-2]), parts[-3]
    return None, None


def _join(folder: str, *names: str) -> str:
    return "/".join([folder.rstrip("/"), *names])


def _normalized(path: str) -> str:
    """One spelling per file: local paths absolute with ``/``, URLs as they are."""
    return path if "://" in path else os.path.abspath(path).replace("\\", "/")


def recorded_stage(folder: str) -> str | None:
    """The stage named by ``FOLDER/.nordpipe/{run,stats}.json``; ``""`` when state exists but
    names none (unreadable, partial); ``None`` without state."""
    found = False
    for name in STATE_FILES:
        path = _join(folder, STATE_DIR, name)
        fs, local = fsspec.core.url_to_fs(path)
        if not fs.isfile(local):
            continue
        found = True
        try:
            with fs.open(local, "rb") as handle:
                stage = orjson.loads(handle.read()).get("stage")
        except (OSError, orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(stage, str) and stage:
            return stage
    return "" if found else None


def _has_flattened_names(files: list[str]) -> bool:
    for path in files:
        stem = path.rsplit("/", 1)[-1]
        for suffix in DOCUMENT_SUFFIXES:
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        if FLATTENED_SEPARATOR in stem.strip("_"):
            return True
    return False


def classify_folder(folder: str, files: list[str]) -> Folder:
    """Decide whether ``folder`` (holding ``documents/``) is an ingest dataset or a stage output;
    ``files`` are its document files. See the module docstring for the rules."""
    name = folder.rstrip("/").rsplit("/", 1)[-1] or None
    stage = recorded_stage(folder)
    if stage:
        return Folder(folder, "dataset" if stage == "ingest" else "stage", name, stage)
    fs, local = fsspec.core.url_to_fs(_join(folder, "README.md"))
    if fs.isfile(local):
        return Folder(folder, "dataset", name)
    if stage == "" or _has_flattened_names(files):
        return Folder(folder, "stage", name)
    return Folder(folder, "dataset", name)


def _lines(path: str) -> Iterator[tuple[int, Any, str | None, str | None]]:
    """``(line, record, error, metadata form)``; the record's metadata decoded to a dict."""
    if path.endswith(".parquet"):
        try:
            for line, record in iter_records(path):
                yield line, record, None, None
        except Exception as err:  # a broken parquet file
            yield 0, None, f"unreadable parquet: {err}", None
        return
    for item in iter_jsonl_lines(path):
        record = item.record
        metadata = record.get("metadata") if type(record) is dict else None
        form = "string" if type(metadata) is str else "object" if type(metadata) is dict else None
        yield item.line, decode_record(record), item.error, form


def check_stage_record(record: dict[str, Any]) -> None:
    """The rules a record of a stage output's ``documents/`` follows beyond the schema."""
    if not record["source"]:
        raise InvalidRecord("empty source: the source is an empty string")
    meta = record["metadata"].get(NORDPIPE_KEY)
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise InvalidRecord(f"wrong type: metadata.{NORDPIPE_KEY} is {type(meta).__name__}, expected an object")
    if meta.get("removed"):
        raise InvalidRecord(f"removed document among the kept ones: metadata.{NORDPIPE_KEY}.removed is {meta['removed']!r}")


_FORM_NAMES = {"string": "a JSON string", "object": "an object"}


class _Validator:
    """State shared by all paths of one ``validate_paths`` call."""

    def __init__(self, max_chars: int):
        self.max_chars = max_chars
        self.report = ValidationReport()
        self.folders: dict[str, Folder] = {}
        self.ids: dict[tuple[str, str], dict[int, str]] = {}
        self.done: dict[str, FileReport] = {}

    def folder_of(self, key: str, siblings: list[str]) -> Folder:
        """The folder of the file ``key`` (a normalized path); ``siblings``: normalized paths of
        the files found with it, to classify its folder by their names."""
        folder, _ = dataset_of(key)
        if folder is None:
            directory = key.rsplit("/", 1)[0] if "/" in key else "."
            return self.folders.setdefault(f"files:{directory}", Folder(directory, "files"))
        known = self.folders.get(folder)
        if known is None:
            prefix = folder.rstrip("/") + "/documents/"
            known = self.folders[folder] = classify_folder(folder, [f for f in siblings if f.startswith(prefix)])
        return known

    def validate_file(self, path: str, folder: Folder) -> FileReport:
        file_report = FileReport(path, kind=folder.kind)
        source = folder.name if folder.kind == "dataset" else None
        first_form: tuple[str, int] | None = None  # the metadata form of the file's first record
        for line, record, error, form in _lines(path):
            file_report.records += 1
            if error is not None:
                file_report.add_error(line, error)
                continue
            if form is not None:
                if first_form is None:
                    first_form = (form, line)
                    file_report.metadata_form = form
                elif form != first_form[0]:
                    file_report.metadata_form = "mixed"
                    file_report.add_error(line, f"mixed metadata forms: metadata is {_FORM_NAMES[form]} here and "
                                                f"{_FORM_NAMES[first_form[0]]} at line {first_form[1]}; one file "
                                                "must use one form to load with one schema")
                    continue
            try:
                validate_record(record, source=source, max_chars=self.max_chars)
                if folder.kind == "stage":
                    check_stage_record(record)
            except InvalidRecord as err:
                file_report.add_error(line, str(err))
                continue
            seen = self.ids.setdefault((folder.path, record["source"]), {})
            key = xxhash.xxh64_intdigest(record["id"])
            if key in seen:
                file_report.add_error(line, f"duplicate id {record['id']!r} in source {record['source']!r} (first at {seen[key]})")
            else:
                seen[key] = f"{os.path.basename(path)}:{line}"
        return file_report

    def validate_root(self, root: str) -> None:
        fs, local = fsspec.core.url_to_fs(root)
        if not fs.exists(local):
            self.report.problems.append(f"{root}: no such file or folder")
            return
        files = list_document_files(root)
        if not files:
            suffixes = ", ".join(f"*{s}" for s in DOCUMENT_SUFFIXES)
            self.report.problems.append(f"{root}: no document files ({suffixes})")
            return
        keys = [_normalized(path) for path in files]
        for path, key in zip(files, keys, strict=True):
            if key not in self.done:
                self.done[key] = self.validate_file(path, self.folder_of(key, keys))
                self.report.files.append(self.done[key])
        if not any(self.done[key].records for key in keys):
            self.report.problems.append(f"{root}: no records in {len(files)} document file(s)")


def validate_paths(paths: list[str], check_datasheets: bool = True, max_chars: int = DEFAULT_MAX_CHARS) -> ValidationReport:
    """Validate every record of every document file under ``paths`` (files, dataset folders,
    stage outputs, roots of either). ``check_datasheets``: require complete datasheets of
    ingest datasets (stage outputs have none)."""
    validator = _Validator(max_chars)
    for root in paths:
        validator.validate_root(str(root))
    report = validator.report
    if check_datasheets:
        for folder in sorted(validator.folders.values(), key=lambda f: f.path):
            if folder.kind == "dataset":
                report.datasheet_problems.extend(check_datasheet(_join(folder.path, "README.md")))
    return report
