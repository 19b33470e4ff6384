"""Peak memory of a whole process tree, for the benchmarks (no third-party dependency).

``run_tree(args)`` starts a command and samples, every ``interval`` seconds, every process
of its tree (the command and all its descendants: a nordpipe stage's forkserver and workers,
datatrove's workers) from ``/proc``:

- ``rss``: the sum of the processes' resident set sizes. Pages shared between processes (a
  worker forked from a forkserver shares the forkserver's imported modules copy-on-write) are
  counted once per process, so this overstates what the tree holds;
- ``pss``: the sum of proportional set sizes (``/proc/PID/smaps_rollup``): a page shared by
  n processes counts 1/n in each, so the sum is the memory the tree really holds.

Both peaks are the largest sums seen in one sample. Sampling can miss a spike shorter than
``interval`` (50 ms by default). ``max_process_rss`` is the largest single process: the
kernel's own high-water mark of each process (``VmHWM``, exact, as last sampled). Not
``wait4``'s ``ru_maxrss``: that counts the benchmark's own pages in a child forked from it
before its exec, so a small command looked as large as the benchmark process.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any


def become_subreaper() -> None:
    """Make orphaned descendants (the forkserver left when ``nordpipe`` exits, with its workers)
    children of this process, so that reaping them (``reap_descendants``) puts their CPU time
    into ``getrusage(RUSAGE_CHILDREN)``."""
    import ctypes

    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_descendants(timeout: float = 0.0) -> bool:
    """Reap every ended child; with ``timeout``, wait that long for the living ones to end.
    True when no child is left."""
    deadline = time.time() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            if time.time() >= deadline:
                return False
            time.sleep(0.05)


@dataclass
class TreeRun:
    wall: float
    cpu: float  # user + system seconds of every process seen in the tree (last sample of each)
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mib: float
    peak_pss_mib: float
    max_process_rss_mib: float
    peak_processes: int
    samples: int
    processes: list[dict[str, Any]] = field(default_factory=list)  # per process: command, peak RSS/PSS MiB, CPU s

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("stdout", "stderr")}


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
    except OSError:  # the process has gone
        pass
    return found


def _descendants(root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(_children(pid))
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB from smaps_rollup; (0, 0) for a process that has gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _high_water_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        return ""


def run_tree(args: list[str], env: dict[str, str] | None = None, interval: float = 0.05,
             check: bool = True) -> TreeRun:
    """Run ``args``; wall and CPU time and the peak memory of its whole process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peaks = {"rss": 0, "pss": 0, "n": 0, "samples": 0}
    seen: dict[int, str] = {}
    per_process: dict[int, list[float]] = {}  # pid -> [peak RSS KiB, peak PSS KiB, CPU seconds, VmHWM KiB]
    done = threading.Event()
    out: dict[str, str] = {}

    def sample() -> None:
        while not done.is_set():
            rss = pss = 0
            pids = _descendants(proc.pid)
            for pid in pids:
                r, p = _memory_kib(pid)
                rss, pss = rss + r, pss + p
                if pid not in seen:
                    seen[pid] = _cmdline(pid)
                mine = per_process.setdefault(pid, [0, 0, 0.0, 0])
                mine[0], mine[1] = max(mine[0], r), max(mine[1], p)
                mine[2] = max(mine[2], _cpu_seconds(pid))
                mine[3] = max(mine[3], _high_water_kib(pid))
            peaks["rss"], peaks["pss"] = max(peaks["rss"], rss), max(peaks["pss"], pss)
            peaks["n"] = max(peaks["n"], len(pids))
            peaks["samples"] += 1
            done.wait(interval)

    def drain(name: str, stream: Any) -> None:
        out[name] = stream.read()

    threads = [threading.Thread(target=sample, daemon=True),
               threading.Thread(target=drain, args=("stdout", proc.stdout), daemon=True),
               threading.Thread(target=drain, args=("stderr", proc.stderr), daemon=True)]
    for thread in threads:
        thread.start()
    # wait4 after the pipes are drained would deadlock on a full pipe: the drain threads run meanwhile
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    for thread in threads:
        thread.join()
    returncode = os.waitstatus_to_exitcode(status)
    if check and returncode != 0:
        raise SystemExit(f"{args[:5]} failed ({returncode}):\n{out.get('stderr', '')[-3000:]}")
    # the command itself is exact from wait4; its descendants as last sampled
    cpu = usage.ru_utime + usage.ru_stime + sum(v[2] for pid, v in per_process.items() if pid != proc.pid)
    processes = [{"command": seen[pid], "peak_rss_mib": round(v[0] / 1024, 1), "peak_pss_mib": round(v[1] / 1024, 1),
                  "cpu_s": round(v[2], 2), "high_water_mib": round(v[3] / 1024, 1)} for pid, v in per_process.items()]
    return TreeRun(wall=wall, cpu=cpu, returncode=returncode,
                   stdout=out.get("stdout", ""), stderr=out.get("stderr", ""),
                   peak_rss_mib=peaks["rss"] / 1024, peak_pss_mib=peaks["pss"] / 1024,
                   max_process_rss_mib=max((v[3] for v in per_process.values()), default=0) / 1024,
                   peak_processes=peaks["n"],
                   samples=peaks["samples"], processes=processes)
