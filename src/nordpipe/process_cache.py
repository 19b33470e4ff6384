"""Read-only resources a step loads in its worker, built once per process, not once per task.

A local worker runs task after task (``runner.executors``), each on a fresh deep copy of the
pipeline, because steps keep per-task state (writers, stats). A step's heavy resources are not
per-task state, but they were loaded again by every copy: the URL filter's lists (0.21 s a task
with the default lists: datatrove's 4.5M-domain index, the shipped UT1 lists parsed and hashed),
py3langid's model (0.43 s, whenever a text with "ð" reached it), the tokenizer (0.01 s); the
PII scanner is shared too, though its name lists were already cached (2 ms). On a corpus of
many small files -- one task per file -- that was most of a worker's CPU: the demo chain's URL
stage on 24 files of 125 documents took 3.7 s CPU per worker (measured 2026-12-07;
``benchmarks/bench_task_start.py``, ``benchmarks/results/profile.md`` section 7).

``shared(key, build)`` returns the resource built for ``key`` in this process, building it on
first use. The key must name everything the resource depends on: the step's parameters and,
for files, their identity (``file_identity``: path, size, modification time), so that a list
edited between two tasks is read again. Values must be treated as read-only by their users
(caches inside them, such as a dict of parsed hosts, may grow). A small LRU bound keeps a
long-lived process (a test session, a notebook) from holding every configuration it ever saw.

Processes do not share anything through this module: each worker builds its own copy once.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 8
"""Resources kept per process (least recently used dropped first)."""

_entries: OrderedDict[Hashable, Any] = OrderedDict()
_lock = threading.Lock()
_freeze_builds = False


def freeze_builds() -> None:
    """From now on, freeze each resource out of the cyclic garbage collector once it is built.
    Called in processes that run tasks (``runner.processes.collector_for_tasks``); a program
    using the steps as a library keeps its collector as it is."""
    global _freeze_builds
    _freeze_builds = True


def shared(key: Hashable, build: Callable[[], T]) -> T:
    """The resource for ``key`` in this process, built by ``build()`` on first use."""
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]  # type: ignore[no-any-return]
    value = build()  # outside the lock: a build may itself use shared()
    if _freeze_builds:
        # A resource lives as long as the process: keep the cyclic collector from scanning its
        # objects again and again (``runner.processes.collector_for_tasks``). Collected first,
        # so that no garbage is frozen with it.
        gc.collect()
        gc.freeze()
    with _lock:
        _entries[key] = value
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value


def file_identity(path: object) -> tuple[str, int, int]:
    """(path, size, modification time in ns) of a local file; (path, -1, -1) for a remote URL,
    a package resource that is no plain file, or a file that cannot be read (its loader then
    raises the real error)."""
    text = str(path)
    if "://" in text:
        return text, -1, -1
    try:
        stat = os.stat(text)
    except OSError:
        return text, -1, -1
    return os.path.abspath(text), stat.st_size, stat.st_mtime_ns


def clear() -> None:
    """Forget every resource (tests)."""
    with _lock:
        _entries.clear()
