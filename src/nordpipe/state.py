"""Persistent dedup state that cron runs carry from night to night: versioned, tied to its inputs.

Line dedup's Bloom filter (``--state``) and MinHash's index (``--index``) are the only things a
run reads from earlier runs. Losing or corrupting them silently would make every later night
wrong, so both live in a *state directory* with the same rules:

- **Generations.** A run never changes the files it read. It builds the next generation in
  ``gen-<n>.tmp/`` (files that did not change are hard links to the parent's, so a generation
  costs only what changed), renames it to ``gen-<n>/`` and then switches ``CURRENT`` to it with an
  atomic rename. A kill at any point leaves ``CURRENT`` on a complete generation; the rerun of
  the same run builds the same generation again (stale ``.tmp`` folders are removed first).
- **History is kept.** The newest ``keep`` generations (default 3, ``--keep-generations``) and the
  current one stay; older ones are deleted after the switch. ``nordpipe state rollback DIR --to G``
  makes generation G current again (``nordpipe state show DIR`` lists them); the next run then
  builds on G, with a number above every existing generation so that nothing is overwritten.
- **Tied to what it has seen.** Each generation's ``state.json`` lists every run it contains (run
  id, input, output, when) and the content digest of every input file (size and xxh3-128 of the
  file's bytes, ``layout.file_digests``). A run whose input files are already in the state would
  find every one of its lines or documents "seen before" and remove them all, as duplicates of
  themselves: ``check_unseen`` refuses it (exit 1) and names the run that recorded the files and
  the generation to roll back to, unless ``--rerun-seen`` says this is intended.

On-disk layout::

    DIR/CURRENT                  name of the current generation (``gen-000007``)
    DIR/gen-<n>/state.json       kind, generation, parent, created, parameters, runs, summary
    DIR/gen-<n>/...              the generation's data files (Bloom parts, index parquet parts)
    DIR/.nordpipe/lock           held by the run that uses the state

Multi-step updates have kill points (``runner.kill_point``, tests only) between their steps:
``state.commit.after-build``, ``state.commit.after-rename``, ``state.commit.after-switch``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nordpipe.layout import absolute, atomic_write_bytes, atomic_write_json
from nordpipe.runner.options import RunError
from nordpipe.runner.processes import kill_point

CURRENT = "CURRENT"
STATE_FILE = "state.json"
DEFAULT_KEEP_GENERATIONS = 3
FORMAT = 2
"""``state.json`` format: 2 adds ``kind``, ``parent``, ``created`` and input digests per run."""


def generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def _generation_number(name: str) -> int | None:
    if name.startswith("gen-") and name[4:].isdigit():
        return int(name[4:])
    return None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@dataclass
class Generation:
    """One committed generation of a state directory (``number`` 0: no generation yet)."""

    directory: str
    number: int = 0
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str | None:
        return os.path.join(self.directory, generation_name(self.number)) if self.number else None

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self.record.get("runs", []))

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.record.get("parameters", {}))

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.record.get("summary", {}))

    def path(self, name: str) -> str:
        if not self.number:
            raise ValueError(f"the state {self.directory} has no generation yet")
        return os.path.join(self.directory, generation_name(self.number), name)

    def has_run(self, run_id: str) -> bool:
        return any(run.get("run_id") == run_id for run in self.runs)


class StateDirectory:
    """A versioned state directory (see the module docstring). ``kind`` names its owner
    (``lines``, ``minhash``): a state of another kind is refused, never overwritten."""

    def __init__(self, directory: str, kind: str):
        self.directory = os.path.abspath(directory)
        self.kind = kind

    # reading ------------------------------------------------------------------------------
    def _read(self, number: int) -> dict[str, Any]:
        path = os.path.join(self.directory, generation_name(number), STATE_FILE)
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        kind = record.get("kind", self.kind)  # format 1 records (line dedup only) had no kind
        if kind != self.kind:
            raise RunError(f"{self.directory} is a {kind} state, not a {self.kind} state: use another folder")
        return record

    def current(self) -> Generation:
        """The current generation (number 0 when the directory holds none yet)."""
        path = os.path.join(self.directory, CURRENT)
        if not os.path.exists(path):
            return Generation(self.directory)
        with open(path, encoding="utf-8") as handle:
            name = handle.read().strip()
        number = _generation_number(name)
        if number is None:
            raise RunError(f"{path} names {name!r}, which is not a generation: the state is damaged")
        try:
            return Generation(self.directory, number, self._read(number))
        except FileNotFoundError:
            raise RunError(f"{path} names {name}, which is missing: the state is damaged; "
                           f"roll back to a kept generation (nordpipe state show {self.directory})") from None

    def generation(self, number: int) -> Generation:
        """A kept generation by number (``RunError`` when it is not kept)."""
        if number == 0:
            return Generation(self.directory)
        try:
            return Generation(self.directory, number, self._read(number))
        except FileNotFoundError:
            kept = ", ".join(str(g.number) for g in self.generations()) or "none"
            raise RunError(f"{self.directory} has no generation {number} (kept generations: {kept})") from None

    def redone_run(self, output: str, input_path: str | None = None) -> dict[str, Any] | None:
        """The current generation's last run when it wrote ``output`` from ``input_path``: a new
        run of the same INPUT into that same OUTPUT redoes it, on the generation before it (its
        ``parent``). Another INPUT into that OUTPUT is a new run (the folder is reused)."""
        return redone_run(self.current().runs, output, input_path)

    def generations(self) -> list[Generation]:
        """Every complete generation, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for entry in os.listdir(self.directory):
            number = _generation_number(entry)
            if number is not None and os.path.exists(os.path.join(self.directory, entry, STATE_FILE)):
                try:
                    found.append(Generation(self.directory, number, self._read(number)))
                except FileNotFoundError:
                    continue  # pruned by a run meanwhile (``state show`` takes no lock)
        return sorted(found, key=lambda g: g.number)

    # writing ------------------------------------------------------------------------------
    def commit(
        self,
        base: Generation,
        run: Mapping[str, Any],
        record: Mapping[str, Any],
        files: Mapping[str, str],
        keep: int = DEFAULT_KEEP_GENERATIONS,
    ) -> Generation:
        """Write a new generation holding ``files`` (name in the generation -> existing file,
        hard-linked when possible) and ``record``, make it current, then prune old generations.

        ``base`` is the generation the run read (its parent); ``run`` (run id, input, output,
        input digests, counts) is appended to ``base``'s runs (or to ``record["runs"]``, when a
        run replaces an earlier one) with the new generation's number. ``record`` holds
        ``parameters`` and ``summary``; number, parent, kind and time are added."""
        if keep < 1:
            raise ValueError("keep at least one generation")
        built = self._built_by(run.get("run_id"), base.number)
        if built is not None:
            # killed after the rename but before the switch: that generation is this run's, whole
            return self._switch(built, keep)
        numbers = [g.number for g in self.generations()]
        number = max([*numbers, base.number]) + 1
        name = generation_name(number)
        final = os.path.join(self.directory, name)
        tmp = final + ".tmp"
        os.makedirs(self.directory, exist_ok=True)
        self._remove_leftovers()
        os.makedirs(tmp)
        for target_name, source in files.items():
            target = os.path.join(tmp, target_name)
            try:
                os.link(source, target)  # unchanged or staged files: no copy on the same file system
            except OSError:
                shutil.copyfile(source, target)
                _fsync_file(target)
        full = {
            **record,
            "runs": [*record.get("runs", base.runs), {**run, "generation": number, "parent": base.number}],
            "format": FORMAT,
            "kind": self.kind,
            "generation": number,
            "parent": base.number,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        atomic_write_json(os.path.join(tmp, STATE_FILE), full)
        _fsync_dir(tmp)
        kill_point("state.commit.after-build")
        os.rename(tmp, final)
        _fsync_dir(self.directory)
        kill_point("state.commit.after-rename")
        return self._switch(Generation(self.directory, number, full), keep)

    def _built_by(self, run_id: str | None, parent: int) -> Generation | None:
        """A complete generation that the run ``run_id`` built on ``parent`` and never made current."""
        if not run_id:
            return None
        for generation in self.generations():
            runs = generation.runs
            if generation.number > parent and generation.record.get("parent") == parent and runs \
                    and runs[-1].get("run_id") == run_id:
                return generation
        return None

    def _switch(self, generation: Generation, keep: int) -> Generation:
        atomic_write_bytes(os.path.join(self.directory, CURRENT), f"{generation_name(generation.number)}\n".encode())
        _fsync_dir(self.directory)
        kill_point("state.commit.after-switch")
        self.prune(keep)
        return generation

    def _remove_leftovers(self) -> None:
        """Generation folders a killed commit left half-built (never current, never complete)."""
        for entry in os.listdir(self.directory):
            if entry.startswith("gen-") and entry.endswith(".tmp"):
                shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)

    def prune(self, keep: int = DEFAULT_KEEP_GENERATIONS) -> list[int]:
        """Delete generations beyond the newest ``keep`` (the current one always stays, and with
        ``keep`` > 1 its parent too: after a rollback, the newest numbers are the abandoned ones)."""
        current = self.current()
        generations = [g.number for g in self.generations()]
        kept = set(sorted(generations)[-keep:]) | {current.number}
        if keep > 1 and current.number:
            kept.add(int(current.record.get("parent", current.number - 1)))
        removed = []
        for number in generations:
            if number not in kept:
                # renamed first: a kill in the middle of the delete leaves a .tmp leftover, never a
                # gen-N/ that looks complete but lacks files
                folder = os.path.join(self.directory, generation_name(number))
                os.rename(folder, folder + ".tmp")
                shutil.rmtree(folder + ".tmp", ignore_errors=True)
                removed.append(number)
        self._remove_leftovers()
        return removed

    def rollback(self, number: int) -> Generation:
        """Make generation ``number`` current again (the newer ones stay until pruned)."""
        available = {g.number: g for g in self.generations()}
        if number not in available:
            listed = ", ".join(str(n) for n in sorted(available)) or "none"
            raise RunError(f"{self.directory} has no generation {number} (kept generations: {listed})")
        atomic_write_bytes(os.path.join(self.directory, CURRENT), f"{generation_name(number)}\n".encode())
        _fsync_dir(self.directory)
        return available[number]


# --------------------------------------------------------------------------------------------
# Inputs already in the state


def run_parent(run: Mapping[str, Any]) -> int:
    """The generation a recorded run built on (format-1 runs recorded only their own generation)."""
    return int(run.get("parent", int(run.get("generation", 1)) - 1))


def redone_run(runs: list[dict[str, Any]], output: str, input_path: str | None = None) -> dict[str, Any] | None:
    """The last of ``runs`` when it wrote ``output`` (from ``input_path``, when given)."""
    if runs and runs[-1].get("output") == os.path.abspath(output) and (
            input_path is None or runs[-1].get("input") in (None, absolute(input_path))):
        return runs[-1]
    return None


def recorded_digests(runs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Digest -> the run that recorded a file with that content (first run wins)."""
    seen: dict[str, dict[str, Any]] = {}
    for run in runs:
        for item in run.get("inputs", []):
            if item.get("documents", True):
                seen.setdefault(item["digest"], run)
    return seen


def check_unseen(
    directory: StateDirectory,
    state: Generation,
    inputs: list[dict[str, Any]],
    what: str,
    output: str | None = None,
    input_path: str | None = None,
) -> None:
    """Refuse (``RunError``) inputs whose content a run recorded in ``state`` already.

    Such a run would find every line or document of those files in the state and remove them
    all as duplicates of themselves. A run that wrote ``output`` counts too, whatever its input:
    OUTPUT is being redone and its earlier content is in the state (a redo of the *last* run is
    built on that run's parent generation instead, so ``state`` is then that parent and holds no
    such run). Runs of format-1 states recorded only paths: those are compared by path. The
    error names the files, the run that recorded them and what to do."""
    runs = state.runs
    own = os.path.abspath(output) if output else None
    source = absolute(input_path) if input_path else None
    # an earlier run of this INPUT into this OUTPUT (another INPUT merely reuses the folder)
    earlier = next((run for run in runs if own and run.get("output") == own
                    and (source is None or run.get("input") in (None, source))), None)
    if earlier is not None:
        raise RunError(
            f"{own} was deduplicated into the {what} {state.directory} already (run of {earlier.get('finished', '?')}, "
            f"generation {earlier.get('generation', '?')}) and later runs built on it: redoing it would remove its "
            f"content as seen before. {_way_back(directory, earlier)}; to dedup against the state anyway, pass --rerun-seen"
        )
    by_digest = recorded_digests(runs)
    by_path = {path: run for run in runs if "inputs" not in run for path in run.get("files", [])}
    clashes: list[tuple[str, dict[str, Any]]] = []
    for item in inputs:
        if not item.get("documents", True):
            continue  # an empty file says nothing about what was seen
        run = by_digest.get(item["digest"]) or by_path.get(item["path"])
        if run is not None:
            clashes.append((item["path"], run))
    if not clashes:
        return
    first_path, first_run = clashes[0]
    raise RunError(
        f"{len(clashes)} of {len(inputs)} input files are already in the {what} {state.directory}: "
        f"{first_path} was recorded by the run of {first_run.get('finished', '?')} into {first_run.get('output', '?')} "
        f"(generation {first_run.get('generation', state.number)}). Deduplicating them again would remove all their "
        f"content as duplicates of itself. {_way_back(directory, first_run)}; to dedup them against the state anyway, "
        "pass --rerun-seen"
    )


def _way_back(directory: StateDirectory, run: Mapping[str, Any]) -> str:
    """How to redo ``run``: roll back to the generation before it, if that is still kept."""
    parent = run_parent(run)
    if parent >= 1 and parent in {g.number for g in directory.generations()}:
        return f"To redo that run, roll the state back first: nordpipe state rollback {directory.directory} --to {parent}"
    if parent >= 1:
        return f"Generation {parent}, from before that run, is no longer kept, so that run cannot be redone on this state"
    return f"To redo that run, start from an empty state (move {directory.directory} away)"


def open_state(directory: str) -> StateDirectory:
    """The state directory at ``directory``, of whichever kind it is (for ``nordpipe state``)."""
    path = os.path.abspath(directory)
    if not os.path.isdir(path):
        raise RunError(f"state {directory} does not exist")
    probe = StateDirectory(path, "")
    numbers = [n for n in (_generation_number(e) for e in os.listdir(path)) if n is not None]
    for number in sorted(numbers, reverse=True):
        record_path = os.path.join(path, generation_name(number), STATE_FILE)
        if os.path.exists(record_path):
            with open(record_path, encoding="utf-8") as handle:
                probe.kind = json.load(handle).get("kind", "lines")  # format 1: line dedup only
            return probe
    if os.path.exists(os.path.join(path, "index.json")):
        raise RunError(f"{directory} is a MinHash index from before generations: it has no generations to show or "
                       "roll back to yet (the next `nordpipe dedup docs --index` run converts it)")
    raise RunError(f"{directory} holds no nordpipe state (no gen-*/state.json)")
