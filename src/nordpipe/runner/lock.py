"""The exclusive run lock of an OUTPUT folder or a pipeline root."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from nordpipe.layout import OutputLayout
from nordpipe.runner.options import RunError
from nordpipe.runner.processes import process_start_time

# --------------------------------------------------------------------------------------------
# Lock


class ExclusiveLock:
    """A non-blocking exclusive ``flock`` on ``path``; a second holder gets ``RunError(refusal(holder))``
    at once instead of waiting (safe under cron).

    The file records the holder (pid, process start time, since when). The kernel releases a flock
    when its holder dies, so a lock left by a killed run is simply taken, with a note naming the
    run that is gone. A flock still held although the recorded holder is gone means processes of
    that run outlived it; the refusal names them."""

    def __init__(self, path: str, refusal: Callable[[str], str]):
        self.path = path
        self.refusal = refusal
        self.handle: Any = None

    def _holder(self) -> dict[str, Any]:
        self.handle.seek(0)
        text = self.handle.read().strip()
        try:
            holder = json.loads(text)
            return holder if isinstance(holder, dict) else {}
        except json.JSONDecodeError:
            return {"text": text} if text else {}

    @staticmethod
    def _alive(holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        return isinstance(pid, int) and process_start_time(pid) == holder.get("start")

    def _holders_of_file(self) -> list[int]:
        """Processes that have the lock file open (other than this one), from ``/proc/*/fd``."""
        target = os.path.realpath(self.path)
        found = []
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                for fd in os.listdir(f"/proc/{entry}/fd"):
                    if os.path.realpath(f"/proc/{entry}/fd/{fd}") == target:
                        found.append(int(entry))
                        break
            except OSError:
                continue
        return found

    def __enter__(self) -> ExclusiveLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            self.handle.close()
            if holder.get("pid") and not self._alive(holder):
                pids = self._holders_of_file()
                raise RunError(self.refusal(
                    f"nordpipe pid {holder['pid']} is gone, but processes it started still hold the lock: "
                    f"{', '.join(map(str, pids)) or 'unknown'}; stop them (kill {' '.join(map(str, pids))})"
                )) from None
            raise RunError(self.refusal(_describe_holder(holder))) from None
        previous = self._holder()
        if previous.get("pid") and previous.get("pid") != os.getpid() and not previous.get("released"):
            sys.stderr.write(f"nordpipe: note: taking over {self.path} from {_describe_holder(previous)}, which is gone "
                             "(it was killed or crashed; its unfinished tasks rerun)\n")
        self._record({})
        return self

    def _record(self, extra: dict[str, Any]) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": os.getpid(), "start": process_start_time(os.getpid()),
                                      "since": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}) + "\n")
        self.handle.flush()

    def __exit__(self, *exc: object) -> None:
        self._record({"released": True})  # a released lock is not a crashed run: no note next time
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _describe_holder(holder: dict[str, Any]) -> str:
    if holder.get("pid"):
        return f"pid {holder['pid']} since {holder.get('since', '?')}"
    return holder.get("text") or "another process"


class OutputLock(ExclusiveLock):
    """``OUTPUT/.nordpipe/lock``: a second run on the same OUTPUT refuses."""

    def __init__(self, output: str):
        super().__init__(
            OutputLayout.of(output).lock,
            lambda holder: f"{output} is in use by a running nordpipe ({holder}); wait for it to finish or stop it",
        )
