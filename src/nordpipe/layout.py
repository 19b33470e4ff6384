"""The output folder of a stage run: every path under it, atomic writers, input checks and naming.

This module is the one owner of the on-disk layout; no other module spells ``.nordpipe``::

    OUTPUT/documents/        kept documents, ``<stem>.jsonl.gz`` (one stream per input file)
    OUTPUT/removed/          removed documents with their reason (``--keep-removed``)
    OUTPUT/quarantine/       unreadable input records with file, line and reason
    OUTPUT/.nordpipe/
        lock                 who runs on OUTPUT now (pid and process start time, JSON)
        run.json             the stage and parameters of the run that owns OUTPUT
        complete.json        written last, atomically: the run finished (input identity, the
                             completed outputs it read, ``upstream_outputs``; start and finish times,
                             nordpipe version; and what it wrote: size and xxh3-128 of every
                             document file, ``file_digest``)
        stats.json           merged stats of the finished run
        datatrove/           datatrove's logs, completions and step stats
        tasks/<rank>.json    per-task stats, each written when its task has moved its files into place
        tmp/                 files of running tasks, moved into place when a task finishes
        slurm.json           (--executor slurm) the submitted phases: job ids, tasks, logging folders, command
        slurm_logs/          (--executor slurm) ``PHASE_JOBID_TASK.out`` per array task, ``finish_JOBID.out``
        pipeline-done        (pipelines) the pipeline runner's done marker, with the input identity
        raw-files.json       (ingest) what was read of each raw file: offset, lines, xxh3 of the bytes read
        raw-files/<stem>.json  the same, per task, merged into raw-files.json when the stage completes
        ids/                 (ingest) id hashes per stream; ids/plan.json journals the duplicate-id pass

Invariants the rest of nordpipe relies on:

- A stage reads only a *completed* upstream output: one with ``complete.json``. A folder with
  ``run.json`` but no ``complete.json`` is a run that is still going, failed or was killed, and
  reading it would silently drop the files its unfinished tasks had not moved into place yet.
- OUTPUT is never INPUT, inside INPUT or a parent of INPUT (``check_disjoint``): a stage that
  writes there could delete or re-read its own input.
- Output names are derived from each input file's path below the input root, flattened with
  ``__``, after both are made absolute, so ``data`` and ``/abs/data`` name files alike; two
  input files that would get one name are an error (``output_stems``), never an overwrite.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fsspec

from nordpipe.documents import document_stem, is_document_file

STATE_DIR = ".nordpipe"
DOCUMENTS = "documents"
REMOVED = "removed"
QUARANTINE = "quarantine"
SIDE_FOLDERS = (QUARANTINE, REMOVED)
"""Folders of a stage output that hold records which are not documents of the next stage."""

STANDARD_FIELDS = ("id", "text", "source", "added", "created")


class InputError(RuntimeError):
    """INPUT is missing, not documents, or an unfinished run (exit code 1); the message says what to do."""


class UsageError(Exception):
    """A mistake in how a command was called, such as OUTPUT inside INPUT (exit code 2)."""


# --------------------------------------------------------------------------------------------
# Paths


@dataclass(frozen=True)
class OutputLayout:
    """The paths of one stage output folder."""

    root: str

    @classmethod
    def of(cls, output: str) -> OutputLayout:
        return cls(output.rstrip("/") or "/")

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def state(self) -> str:
        return self.path(STATE_DIR)

    def state_path(self, *parts: str) -> str:
        return self.path(STATE_DIR, *parts)

    @property
    def documents(self) -> str:
        return self.path(DOCUMENTS)

    @property
    def lock(self) -> str:
        return self.state_path("lock")

    @property
    def run_record(self) -> str:
        return self.state_path("run.json")

    @property
    def completion(self) -> str:
        return self.state_path("complete.json")

    @property
    def stats(self) -> str:
        return self.state_path("stats.json")

    @property
    def datatrove(self) -> str:
        return self.state_path("datatrove")

    @property
    def tasks(self) -> str:
        return self.state_path("tasks")

    def tmp(self, *parts: str) -> str:
        return self.state_path("tmp", *parts)

    @property
    def pipeline_done(self) -> str:
        return self.state_path("pipeline-done")

    @property
    def slurm_record(self) -> str:
        """``--executor slurm``: the jobs submitted for this output (``runner.slurm``)."""
        return self.state_path("slurm.json")

    @property
    def slurm_logs(self) -> str:
        """``--executor slurm``: one log per array task and per finish job."""
        return self.state_path("slurm_logs")

    def read_json(self, path: str) -> Any:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    def completed(self) -> dict[str, Any] | None:
        """The completion record, or None while the run is not finished (or when the folder is a
        file: a single input file has no ``.nordpipe/``)."""
        try:
            return self.read_json(self.completion)
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None

    def run(self) -> dict[str, Any] | None:
        try:
            return self.read_json(self.run_record)
        except (FileNotFoundError, json.JSONDecodeError):
            return None


def state_dir(output: str) -> str:
    """``OUTPUT/.nordpipe``."""
    return OutputLayout.of(output).state


# --------------------------------------------------------------------------------------------
# Atomic writers


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``path`` so that readers see the old file or the whole new one, never a part."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, data: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True, ensure_ascii=False, default=str) + "\n")


# --------------------------------------------------------------------------------------------
# Input and output paths


def is_url(path: str) -> bool:
    return "://" in path


def absolute(path: str) -> str:
    """A local path made absolute and normalized; URLs as they are."""
    return path.rstrip("/") if is_url(path) else os.path.abspath(path)


def check_disjoint(inputs: Iterable[str], output: str, output_flag: str = "OUTPUT") -> None:
    """Refuse (``UsageError``, exit 2) an OUTPUT that is an INPUT, inside one, or contains one."""
    out = absolute(output)
    for given in inputs:
        inp = absolute(given)
        if out == inp:
            raise UsageError(f"{output_flag} {output} is the input {given}: write to another folder")
        if out.startswith(inp.rstrip("/") + "/"):
            raise UsageError(f"{output_flag} {output} is inside the input {given}: write to a folder outside it")
        if inp.startswith(out.rstrip("/") + "/"):
            raise UsageError(f"{output_flag} {output} contains the input {given}: write to a folder beside it")



def output_stem(path: str, root: str) -> str:
    """Name of the output stream of an input file: its path below the input root, flattened.

    Both are made absolute first, so a relative root names files like an absolute one.
    ``root/documents/x.jsonl.gz`` -> ``x``; ``root/nyheder/documents/x.jsonl.gz`` -> ``nyheder__x``.
    A file outside the root (a single input file) is named by its file name.
    """
    path_abs, root_abs = absolute(path), absolute(root).rstrip("/")
    inside = path_abs.startswith(root_abs + "/")
    rel = path_abs[len(root_abs) + 1 :] if inside else path_abs.rsplit("/", 1)[-1]
    folder, _, name = rel.rpartition("/")
    stem = document_stem(name)
    if folder and folder != DOCUMENTS:
        stem = folder.replace(f"/{DOCUMENTS}", "").replace("/", "__") + "__" + stem
    return stem


def reader_root(input_path: str) -> str:
    """The folder output names are taken relative to: ``INPUT/documents`` when it exists."""
    fs, root = fsspec.core.url_to_fs(input_path)
    if fs.isdir(f"{root.rstrip('/')}/{DOCUMENTS}"):
        return input_path.rstrip("/") + f"/{DOCUMENTS}"
    return input_path


def output_stems(files: list[str], input_path: str) -> list[str]:
    """The output stem of each input file; two files with one stem are an ``InputError``."""
    root = reader_root(input_path)
    stems = [output_stem(f, root if not is_url(f) else f.rsplit("/", 1)[0]) for f in files]
    seen: dict[str, str] = {}
    for file, stem in zip(files, stems, strict=True):
        if stem in seen:
            raise InputError(
                f"{seen[stem]} and {file} would both be written as {stem}.jsonl.gz; rename one of them "
                "(nordpipe never lets one input file overwrite another's output)"
            )
        seen[stem] = file
    return stems


def list_document_files(path: str) -> list[str]:
    """Standardized document files under ``path``, sorted.

    ``path`` may be one file, a dataset folder (``<path>/documents/`` is used), a folder of
    files, or a root of dataset folders (``*/documents/``). nordpipe's own side folders
    (``quarantine``, ``removed``, ``.nordpipe``, hidden folders) are skipped.
    """
    fs, root = fsspec.core.url_to_fs(path)
    protocol = path.split("://", 1)[0] + "://" if is_url(path) else ""
    if fs.isfile(root):
        return [path]
    if fs.isdir(f"{root}/{DOCUMENTS}"):
        root = f"{root}/{DOCUMENTS}"
    found = []
    for file in fs.find(root):
        rel = file[len(root.rstrip("/")) + 1 :]
        parts = rel.split("/")
        if any(p.startswith(".") or p in SIDE_FOLDERS for p in parts[:-1]):
            continue
        if parts[-1].startswith(".") or not is_document_file(file):
            continue
        found.append(protocol + file if protocol and not file.startswith(protocol) else file)
    return sorted(found)


def input_files(input_path: str) -> list[tuple[str, str]]:
    """``(path, output stem)`` of every document file of INPUT, in reading order: the order that
    defines file indices, and the stems ``DocumentReader`` gives its documents."""
    files = list_document_files(input_path)
    return list(zip(files, output_stems(files, input_path), strict=True))


# --------------------------------------------------------------------------------------------
# What an input is


@dataclass
class CheckedInput:
    """A stage input that passed ``check_input``: its document files (possibly none)."""

    path: str
    files: list[str]
    stems: list[str]

    def identity(self) -> str:
        """What the input is, for done markers: its files' names below the input, sizes and
        modification times (or, for a completed nordpipe output, that run's completion id)."""
        digest = hashlib.sha256()
        for file, stem in zip(self.files, self.stems, strict=True):
            digest.update(stem.encode())
            if not is_url(file):
                info = os.stat(file)
                digest.update(f":{info.st_size}:{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:32]


def _first_record(path: str) -> dict[str, Any] | str | None:
    """The first record of a document file (None: empty file; str: why it could not be read)."""
    from nordpipe.documents import iter_jsonl_lines

    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq

            with fsspec.open(path, "rb") as handle:
                schema = pq.read_schema(handle)
            return {name: "" for name in schema.names}
        except Exception as err:  # a broken parquet file is the reader's to quarantine
            return f"unreadable parquet: {err}"
    for item in iter_jsonl_lines(path):
        if item.error is not None:
            return item.error
        return item.record if isinstance(item.record, dict) else "not a JSON object"
    return None


def _raw_hint(path: str) -> str:
    return f"{path} looks like raw data: run `nordpipe ingest {path} --dataset NAME --output ROOT` first"


def _unfinished(folder: str) -> str | None:
    """Why ``folder`` is an unfinished nordpipe output, or None."""
    layout = OutputLayout.of(folder)
    run = layout.run()
    if run is None or layout.completed() is not None:
        return None
    completions = os.path.join(layout.datatrove, "completions")
    done = len(os.listdir(completions)) if os.path.isdir(completions) else 0
    return (f"{folder} is an unfinished nordpipe {run.get('stage', 'stage')} output ({done}/{run.get('tasks', '?')} "
            f"tasks complete; `nordpipe status {folder}`): finish that run first (rerun its command)")


def check_input(input_path: str) -> CheckedInput:
    """Resolve a stage's INPUT to its document files, or refuse with a hint (``InputError``).

    Refused: a missing path; a raw dump, WARC, CSV or datasheet where documents are expected;
    a folder of other files; an unfinished upstream stage output. Accepted: standardized
    documents, and a *valid empty* input (a ``documents/`` folder, or a completed stage output,
    with no document files), which gives an empty output.
    """
    fs, root = fsspec.core.url_to_fs(input_path)
    if not fs.exists(root):
        raise InputError(f"input {input_path} does not exist")
    if fs.isfile(root):
        if not is_document_file(root):
            name = root.rsplit("/", 1)[-1]
            if name.lower() == "readme.md":
                raise InputError(f"{input_path} is a datasheet; give its dataset folder ({os.path.dirname(input_path) or '.'})")
            raise InputError(_raw_hint(input_path))
        files = [input_path]
    else:
        candidates = [input_path] if is_url(input_path) else [input_path, *_dataset_folders(input_path)]
        for folder in candidates:
            reason = _unfinished(folder)
            if reason:
                raise InputError(reason)
        files = list_document_files(input_path)
        if not files:
            if _is_valid_empty(input_path):
                return CheckedInput(input_path, [], [])
            others = [f for f in fs.find(root) if "/." not in f[len(root):]]
            if others:
                raise InputError(_raw_hint(input_path) + f" (it holds {len(others)} files, none of them standardized documents)")
            raise InputError(f"no document files (*.jsonl.gz, *.jsonl.zst, *.jsonl, *.parquet) in {input_path}")
    first = _first_record(files[0])
    if isinstance(first, dict):
        missing = [f for f in STANDARD_FIELDS if f not in first]
        if missing:
            raise InputError(_raw_hint(input_path) + f" ({files[0]}: its first record has no {', '.join(missing)})")
    return CheckedInput(input_path, files, output_stems(files, input_path))


def _dataset_folders(path: str) -> list[str]:
    if not os.path.isdir(path):
        return []
    return [os.path.join(path, name) for name in sorted(os.listdir(path))
            if not name.startswith(".") and os.path.isdir(os.path.join(path, name, STATE_DIR))]


def _is_valid_empty(path: str) -> bool:
    """An empty ``documents/`` folder, or completed stage outputs (of a root) that kept nothing."""
    if is_url(path):
        fs, root = fsspec.core.url_to_fs(path)
        return fs.isdir(f"{root}/{DOCUMENTS}")
    if os.path.isdir(os.path.join(path, DOCUMENTS)) or OutputLayout.of(path).completed() is not None:
        return True
    datasets = _dataset_folders(path)
    return bool(datasets) and all(OutputLayout.of(d).completed() is not None for d in datasets)


def input_identity(input_path: str) -> str:
    """The identity of a stage input for done markers: the completion id of a completed nordpipe
    output (so a rerun upstream changes it), else a digest of its files."""
    record = OutputLayout.of(input_path).completed() if not is_url(input_path) else None
    if record and record.get("id"):
        return str(record["id"])
    datasets = _dataset_folders(input_path)
    ids = [(OutputLayout.of(d).completed() or {}).get("id") for d in datasets]
    if datasets and all(ids):
        return hashlib.sha256("\n".join(str(i) for i in ids).encode()).hexdigest()[:32]
    files = list_document_files(input_path) if os.path.exists(input_path) or is_url(input_path) else []
    return CheckedInput(input_path, files, output_stems(files, input_path) if files else []).identity()


def enclosing_output(path: str) -> str | None:
    """The nordpipe stage output ``path`` is, or lies inside (``OUT/documents``, a file of it)."""
    current = os.path.abspath(path)
    while True:
        if os.path.isfile(OutputLayout.of(current).run_record):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def upstream_outputs(input_path: str) -> list[dict[str, Any]]:
    """The completed stage outputs an INPUT consists of, as ``{"path", "stage", "id"}``: the
    output INPUT is (or lies inside), or the dataset outputs of a root of datasets (ingest's
    ``--output ROOT``). Empty for plain document folders and URLs. Stage outputs record this in
    their completion record so that ``nordpipe report`` can follow a chain back to ingest."""
    if is_url(input_path):
        return []
    folders = [enclosing_output(input_path)] if enclosing_output(input_path) else _dataset_folders(input_path)
    found = []
    for folder in folders:
        if folder is None:
            continue
        layout = OutputLayout.of(folder)
        run = layout.run()
        if run is None:
            continue  # a folder with only a lock (persistent dedup state), not a stage output
        record = layout.completed() or {}
        found.append({"path": absolute(folder), "stage": record.get("stage") or run.get("stage"), "id": record.get("id")})
    return found


# --------------------------------------------------------------------------------------------
# What a file holds: content digests


DIGEST_CHUNK = 1 << 20


def file_digest(path: str) -> dict[str, Any]:
    """``{"bytes", "digest", "documents"}`` of one document file: its size, the xxh3-128 of its
    bytes (as stored, compressed or not) and whether it holds any record at all (an empty file's
    digest says nothing about what a state has seen: all empty files look alike)."""
    import xxhash

    from nordpipe.documents import open_binary

    hasher = xxhash.xxh3_128()
    size = 0
    with fsspec.open(path, "rb") as handle:
        while chunk := handle.read(DIGEST_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        with fsspec.open(path, "rb") as handle:
            holds = pq.ParquetFile(handle).metadata.num_rows > 0
    else:
        try:
            with open_binary(path) as handle:
                holds = bool(handle.read(1))
        except (OSError, EOFError, ValueError):
            holds = True  # damaged: its readers quarantine what they cannot read; it is not "empty"
    return {"bytes": size, "digest": hasher.hexdigest(), "documents": holds}


def written_digests(output: str) -> dict[str, dict[str, Any]]:
    """Digests of the document files of a stage output, by path below OUTPUT (for its
    completion record: what the run wrote)."""
    layout = OutputLayout.of(output)
    fs, documents = fsspec.core.url_to_fs(layout.documents)
    if not fs.isdir(documents):
        return {}
    root = absolute(layout.root)
    return {file[len(root) + 1:]: file_digest(file) for file in list_document_files(layout.documents)
            if file.startswith(root + "/")}


def input_digests(input_path: str) -> list[dict[str, Any]]:
    """``{"path", "bytes", "digest", "documents"}`` of every document file of INPUT, in reading
    order: taken from the completion record of the upstream output that wrote the file when its
    size still matches, else computed by reading the file."""
    found = []
    for file in list_document_files(input_path):
        item: dict[str, Any] | None = None
        if not is_url(file):
            parts = os.path.abspath(file).split(os.sep)
            if DOCUMENTS in parts[:-1]:
                cut = len(parts) - 1 - parts[::-1].index(DOCUMENTS)
                root = os.sep.join(parts[:cut]) or os.sep
                record = OutputLayout.of(root).completed() or {}
                known = record.get("files", {}).get("/".join(parts[cut:]))
                if known and known.get("bytes") == os.path.getsize(file):
                    item = dict(known)
        found.append({"path": absolute(file), **(item or file_digest(file))})
    return found
