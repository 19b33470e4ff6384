"""``nordpipe validate``: check every record of every file, and every dataset's datasheet.

Unlike a first-line check, every line is parsed and validated; ids must be unique within a
dataset; a file inside ``<name>/documents/`` must have ``source == <name>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import xxhash

from nordpipe.datasheet import check_datasheet
from nordpipe.documents import DEFAULT_MAX_CHARS, InvalidRecord, iter_jsonl_lines, iter_records, validate_record
from nordpipe.steps import list_document_files

MAX_ERRORS_SHOWN = 50


@dataclass
class FileReport:
    path: str
    records: int = 0
    invalid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add_error(self, line: int, reason: str) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append({"line": line, "reason": reason})


@dataclass
class ValidationReport:
    files: list[FileReport] = field(default_factory=list)
    datasheet_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.datasheet_problems and all(f.invalid == 0 for f in self.files) and bool(self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": [f.__dict__ for f in self.files],
            "records": sum(f.records for f in self.files),
            "invalid": sum(f.invalid for f in self.files),
            "datasheet_problems": self.datasheet_problems,
        }


def dataset_of(path: str) -> tuple[str | None, str | None]:
    """(dataset folder, dataset name) for a file inside ``<name>/documents/``."""
    parts = path.replace("\\", "/").split("/")
    if len(parts) >= 3 and parts[-2] == "documents":
        return "/".join(parts[:-2]), parts[-3]
    return None, None


def _lines(path: str) -> Iterator[tuple[int, Any, str | None]]:
    if path.endswith(".parquet"):
        try:
            for line, record in iter_records(path):
                yield line, record, None
        except Exception as err:  # a broken parquet file
            yield 0, None, f"unreadable parquet: {err}"
        return
    for item in iter_jsonl_lines(path):
        yield item.line, item.record, item.error


def validate_paths(paths: list[str], check_datasheets: bool = True, max_chars: int = DEFAULT_MAX_CHARS) -> ValidationReport:
    report = ValidationReport()
    dataset_dirs: set[str] = set()
    ids_by_dataset: dict[str, dict[int, str]] = {}
    for root in paths:
        fs, local = fsspec.core.url_to_fs(root)
        if not fs.exists(local):
            report.datasheet_problems.append(f"{root}: no such file or folder")
            continue
        files = list_document_files(root)
        if not files:
            report.datasheet_problems.append(f"{root}: no document files (*.jsonl.gz, *.jsonl.zst, *.jsonl, *.parquet)")
        for path in files:
            folder, name = dataset_of(path)
            if folder is not None:
                dataset_dirs.add(folder)
            seen = ids_by_dataset.setdefault(folder or path, {})
            file_report = FileReport(path)
            for line, record, error in _lines(path):
                file_report.records += 1
                if error is not None:
                    file_report.add_error(line, error)
                    continue
                try:
                    validate_record(record, source=name, max_chars=max_chars)
                except InvalidRecord as err:
                    file_report.add_error(line, str(err))
                    continue
                key = xxhash.xxh64_intdigest(record["id"])
                if key in seen:
                    file_report.add_error(line, f"duplicate id {record['id']!r} (first at {seen[key]})")
                else:
                    seen[key] = f"{os.path.basename(path)}:{line}"
            report.files.append(file_report)
    if check_datasheets:
        for folder in sorted(dataset_dirs):
            report.datasheet_problems.extend(check_datasheet(os.path.join(folder, "README.md")))
    return report
