"""Processes of a run: signals become ``Interrupted``, workers die with their parent, and a
test hook that stops tasks at a known point.

SIGTERM/SIGINT inside ``InterruptOnSignals`` first SIGTERM every descendant (workers, process
pools, child stages: a signal sent to one pid reaches none of them), then raise ``Interrupted``
in the main thread, which unwinds the run like ``KeyboardInterrupt`` (locks released, temporary
files left where no reader takes them for output) and becomes exit code 128 + the signal."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Any

# --------------------------------------------------------------------------------------------
# Signals and processes


class Interrupted(BaseException):
    """SIGTERM or SIGINT reached a stage or pipeline run; exit code ``128 + signum``.

    A ``BaseException``, so that no ``except Exception`` on the way out swallows it: it unwinds
    the run (stopping workers and child stages, releasing locks) like ``KeyboardInterrupt``."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class InterruptOnSignals:
    """Within this block SIGTERM and SIGINT raise ``Interrupted`` in the main thread.

    Nested uses are harmless: the outermost one is in force. Outside the main thread (a stage run
    embedded in a threaded program) signals stay as they are."""

    def __enter__(self) -> InterruptOnSignals:
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.previous[signum] = signal.signal(signum, self._raise)
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        # Workers, pools and child stages first: they are not all ours to join (a process pool
        # would wait for its running tasks), and a signal sent only to this process (kill PID,
        # Slurm's scancel, a cron timeout) reaches none of them.
        terminate_descendants()
        raise Interrupted(signum)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def descendants(pid: int | None = None) -> list[int]:
    """Every process below ``pid`` (default: this one), children before grandchildren, from ``/proc``."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    frontier = [root]
    while frontier:
        below = [child for parent in frontier for child in children.get(parent, [])]
        found += below
        frontier = below
    return found


def terminate_descendants(signum: int = signal.SIGTERM) -> list[int]:
    """Send ``signum`` to every process below this one; returns their pids."""
    pids = descendants()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    return pids


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies (``PR_SET_PDEATHSIG``).

    Workers and child stages call this so that a stage killed with -9 (which cannot clean up)
    does not leave orphans that keep writing into its OUTPUT. Elsewhere than Linux: a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or None
    when there is no such process. With the pid it tells a process from a later one that reused the pid."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def describe_exit(exitcode: int | None) -> str:
    """``-9`` -> ``was killed by SIGKILL (signal 9; the out-of-memory killer sends this)``."""
    if exitcode is None:
        return "did not finish"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else f"signal {-exitcode}"
        hint = "; the out-of-memory killer sends this" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name} (signal {-exitcode}{hint})"
    return f"exited with code {exitcode}"


TASK_GC_THRESHOLDS = (100_000, 20, 20)
"""``gc.set_threshold`` in a process that runs tasks (Python's default: 700, 10, 10)."""


def collector_for_tasks() -> None:
    """Set up Python's cyclic garbage collector for a process that runs tasks (a local worker, a
    Slurm array task): what is alive now is frozen out of its scans (``gc.freeze``) and it runs
    on larger thresholds (``TASK_GC_THRESHOLDS``).

    Why: documents are acyclic (a ``Document``, its metadata dicts, strings), so reference
    counting frees them and the collector finds next to nothing -- 728 objects in 200,000
    documents of ``filter urls``. Its cost grows with the container objects alive, and a task
    holds many: imported modules, a step's loaded lists, a batch of 8,192 documents in the URL
    filter. With the default thresholds the collector took 8-12% of ``filter urls``' task
    CPU (measured 2026-12-07, interleaved runs: 2.96-3.09 s default, 2.61-2.90 these thresholds,
    2.52-2.84 with the collector off; the same peak RSS). Cycles are still collected, only less
    often: at most ~100,000 new container objects wait for a collection, so a step that makes
    cycles for every document holds more memory. ``nordpipe pii`` did (phonenumbers' exceptions
    on zero-padded numbers in ids: +24 MB per worker with these thresholds) until that was fixed
    at its source (``pii.recognizers._valid_international``); ``tests/test_pii.py`` checks it.
    Resources built for a whole process are frozen too, after they are built
    (``nordpipe.process_cache.shared``). Only task processes do this: ``gc.freeze`` acts on the
    whole process, which in a program using the steps as a library is not ours to change."""
    import gc

    from nordpipe import process_cache

    gc.freeze()
    gc.set_threshold(*TASK_GC_THRESHOLDS)
    process_cache.freeze_builds()


PAUSE_ENV = "NORDPIPE_TEST_PAUSE_DIR"
"""Fault-injection hook for tests: when set, every task stops at its start, announces itself
with a file ``<dir>/<where>-<pid>`` and sleeps, so that a test can signal or kill a stage or a
worker while a task is certainly running (no timing guesses)."""


def pause_for_tests(where: str) -> None:
    folder = os.environ.get(PAUSE_ENV)
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{where}-{os.getpid()}"), "w") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(3600)


KILL_ENV = "NORDPIPE_TEST_KILL_AT"
"""Fault-injection hook for tests: a comma-separated list of kill-point names. A process that
reaches ``kill_point(name)`` for a listed name kills itself with SIGKILL at once, as a power
cut or the OOM killer would between two steps of a multi-step state update. Tests use it to
check that every kill point reruns to the uninterrupted result (no timing guesses)."""


def kill_point(name: str) -> None:
    """Die here with SIGKILL when ``NORDPIPE_TEST_KILL_AT`` names ``name`` (tests only).

    A marker file ``<name>.killed`` is written first into ``NORDPIPE_TEST_KILL_DIR`` when that
    is set, so that a test can tell that the point was reached, not merely that the process died."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted or name not in wanted.split(","):
        return
    folder = os.environ.get(KILL_ENV.replace("KILL_AT", "KILL_DIR"))
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}.killed"), "w") as handle:
            handle.write(f"{os.getpid()}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
