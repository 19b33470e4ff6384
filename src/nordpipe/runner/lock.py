"""The exclusive run lock of an OUTPUT folder or a pipeline root.

Two kinds of lock, chosen per locked folder (``lock_kind``):

- ``flock`` (local disks and every filesystem where it works across nodes): the kernel releases
  the lock when its holder dies, so nothing can go stale.
- ``file``: an ``O_EXCL``-created file ``<lock>.excl`` holding host, pid, process start time,
  Slurm job id and a heartbeat timestamp the holder rewrites every ``HEARTBEAT_S`` seconds.
  Used where ``flock`` does not exclude processes on other nodes: NFS mounted ``nolock`` or
  without a lock daemon (the client then grants flocks locally: two nodes both "hold" it),
  Lustre mounted without ``-o flock`` (``flock`` fails with ENOSYS, or with ``localflock`` is
  node-local), and the other network/cluster filesystems in ``UNRELIABLE_FLOCK_FS`` whose
  flock semantics depend on mount options nordpipe cannot see. ``O_EXCL`` create is atomic on
  NFSv3+ and on these cluster filesystems. Nothing releases such a file when its holder dies,
  so a holder is *stale* (the lock is taken over, with a note) when it ran on this host and its
  pid is gone (pid + start time, as for flock), or, for a holder on another host, when its
  heartbeat is older than ``STALE_S`` (default 10 minutes: a node whose clock is off by more
  than that, or a holder frozen that long, could lose the lock; both are named in the note).
  A takeover is itself serialized by an ``O_EXCL`` ``<lock>.takeover`` file, so two
  processes finding the same stale holder cannot both win.

The filesystem type of a folder comes from ``/proc/mounts`` (the mount point that is the
longest prefix of the folder's real path; Python has no ``statfs``). ``NORDPIPE_LOCK=flock``
or ``=file`` forces a kind (tests, or a site that knows its NFS has working locks); the
default ``auto`` picks ``file`` on the filesystems above and warns on stderr that it does.
A ``flock`` that fails with ENOLCK/ENOSYS/EOPNOTSUPP (no lock daemon, Lustre ``noflock``)
falls back to ``file`` with a warning instead of failing or, worse, running unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from nordpipe.layout import OutputLayout
from nordpipe.runner.options import RunError
from nordpipe.runner.processes import process_start_time

# --------------------------------------------------------------------------------------------
# Filesystem type


LOCK_KIND_ENV = "NORDPIPE_LOCK"
"""``auto`` (default), ``flock`` or ``file``: which lock kind every nordpipe lock uses."""
LOCK_STALE_ENV = "NORDPIPE_LOCK_STALE_S"
LOCK_HEARTBEAT_ENV = "NORDPIPE_LOCK_HEARTBEAT_S"
HEARTBEAT_S = 30.0
STALE_S = 600.0
UNRELIABLE_FLOCK_FS = frozenset({
    "nfs", "nfs4", "lustre", "beegfs", "gpfs", "cifs", "smb3", "smbfs", "9p", "glusterfs", "fuse.glusterfs",
    "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs", "orangefs", "pvfs2",
})
"""Filesystems whose ``flock`` may not exclude processes on other nodes (mount-dependent)."""


def _unescape_mount(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in paths as octal escapes."""
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field


def filesystem_type(path: str, mounts: str | None = None) -> str:
    """The fstype of the mount holding ``path`` (its nearest existing ancestor, symlinks
    resolved): the ``/proc/mounts`` entry whose mount point is the longest prefix; the last
    such entry wins (a later mount over the same point hides the earlier). ``""`` if unknown."""
    if mounts is None:
        try:
            with open("/proc/mounts", encoding="utf-8", errors="replace") as handle:
                mounts = handle.read()
        except OSError:
            return ""
    target = os.path.realpath(os.path.abspath(path))
    best, best_type = -1, ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1]).rstrip("/") or "/"
        inside = point == "/" or target == point or target.startswith(point + "/")
        if inside and len(point) >= best:
            best, best_type = len(point), fields[2]
    return best_type


def lock_kind(folder: str) -> tuple[str, str]:
    """(``flock`` or ``file``, why) for a lock in ``folder``."""
    chosen = os.environ.get(LOCK_KIND_ENV, "auto").strip().lower() or "auto"
    if chosen not in ("auto", "flock", "file"):
        raise RunError(f"{LOCK_KIND_ENV}={chosen!r}: expected auto, flock or file")
    fstype = filesystem_type(folder)
    if chosen != "auto":
        return chosen, f"{LOCK_KIND_ENV}={chosen} (filesystem {fstype or 'unknown'})"
    if fstype in UNRELIABLE_FLOCK_FS:
        return "file", f"{folder} is on {fstype}, where flock may not exclude other nodes"
    return "flock", f"filesystem {fstype or 'unknown'}"


def _env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise RunError(f"{name}={os.environ[name]!r}: expected seconds") from None


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
        self.kind = "flock"
        self.excl_path = path + ".excl"
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self._owner: dict[str, Any] = {}

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
        self.kind, why = lock_kind(os.path.dirname(self.path))
        if self.kind == "file" and os.environ.get(LOCK_KIND_ENV, "auto").strip().lower() in ("", "auto"):
            sys.stderr.write(f"nordpipe: warning: {why}; locking {self.path} with an O_EXCL lock file "
                             f"({self.excl_path}, heartbeat) instead ({LOCK_KIND_ENV}=flock to override)\n")
        self.handle = open(self.path, "a+")
        if self.kind == "flock":
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._refuse_flock_holder()
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    self.handle.close()
                    raise
                sys.stderr.write(f"nordpipe: warning: flock on {self.path} failed ({error.strerror}: no lock daemon, "
                                 "or Lustre without -o flock?); using an O_EXCL lock file instead\n")
                self.kind = "file"
        if self.kind == "file":
            try:
                self._acquire_file_lock()
            except BaseException:
                self.handle.close()
                raise
            self._record({"lock": "file"})
            return self
        previous = self._holder()
        if previous.get("pid") and previous.get("pid") != os.getpid() and not previous.get("released"):
            sys.stderr.write(f"nordpipe: note: taking over {self.path} from {_describe_holder(previous)}, which is gone "
                             "(it was killed or crashed; its unfinished tasks rerun)\n")
        self._record({})
        return self

    def _refuse_flock_holder(self) -> None:
        holder = self._holder()
        self.handle.close()
        if holder.get("pid") and not self._alive(holder):
            pids = self._holders_of_file()
            raise RunError(self.refusal(
                f"nordpipe pid {holder['pid']} is gone, but processes it started still hold the lock: "
                f"{', '.join(map(str, pids)) or 'unknown'}; stop them (kill {' '.join(map(str, pids))})"
            )) from None
        raise RunError(self.refusal(_describe_holder(holder))) from None

    # ---- O_EXCL lock file (filesystems where flock is unreliable)

    def _owner_record(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start_time(os.getpid()),
                "slurm_job_id": os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"),
                "slurm_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "heartbeat": time.time()}

    @staticmethod
    def _read_json(path: str) -> dict[str, Any] | None:
        """The record in ``path``, ``{}`` if unreadable (being written), None if there is no file."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            found = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return found if isinstance(found, dict) else {}

    def _stale(self, holder: dict[str, Any], stale_s: float) -> str | None:
        """Why ``holder`` no longer holds the lock, or None while it does."""
        heartbeat = holder.get("heartbeat")
        age = time.time() - heartbeat if isinstance(heartbeat, (int, float)) else None
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            if not self._alive(holder):
                return f"its process (pid {holder['pid']} on this host) is gone"
            return None
        if age is None:
            # Empty or unreadable: being written right now, or its writer died between the O_EXCL
            # create and the write. The file's own age tells the two apart.
            try:
                age = time.time() - os.path.getmtime(self.excl_path)
            except OSError:
                return None
            return f"it is unreadable and {age:.0f} s old" if age > stale_s else None
        if age > stale_s:
            return (f"its heartbeat is {age:.0f} s old (> {stale_s:.0f} s; {LOCK_STALE_ENV}): host "
                    f"{holder.get('host', '?')} died, or its clock is off")
        return None

    def _create_excl(self, path: str, record: dict[str, Any]) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _acquire_file_lock(self) -> None:
        stale_s = _env_seconds(LOCK_STALE_ENV, STALE_S)
        for _attempt in range(5):
            self._owner = self._owner_record()
            if self._create_excl(self.excl_path, self._owner):
                self._start_heartbeat()
                return
            holder = self._read_json(self.excl_path)
            if holder is None:
                continue  # released between our create and read: try again
            reason = self._stale(holder, stale_s)
            if reason is None:
                raise RunError(self.refusal(_describe_file_holder(holder)))
            # Only one process may remove a stale holder: the one that creates the takeover file.
            takeover = self.excl_path + ".takeover"
            if not self._create_excl(takeover, self._owner):
                busy = self._read_json(takeover) or {}
                beat = busy.get("heartbeat")
                if isinstance(beat, (int, float)) and time.time() - beat > stale_s:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(takeover)  # a taker that died mid-takeover
                    continue
                raise RunError(self.refusal(f"another process is taking over the stale lock {self.excl_path}"))
            try:
                if self._read_json(self.excl_path) == holder:  # still the holder we judged stale
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.excl_path)
                    sys.stderr.write(f"nordpipe: note: taking over {self.excl_path} from "
                                     f"{_describe_file_holder(holder)}, which is stale: {reason} "
                                     "(its unfinished tasks rerun)\n")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(takeover)
        raise RunError(self.refusal(f"the lock file {self.excl_path} keeps changing hands"))

    def _start_heartbeat(self) -> None:
        interval = _env_seconds(LOCK_HEARTBEAT_ENV, HEARTBEAT_S)
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(interval):
                current = self._read_json(self.excl_path)
                if not current or current.get("pid") != self._owner["pid"] or current.get("host") != self._owner["host"]:
                    sys.stderr.write(f"nordpipe: warning: lock file {self.excl_path} is no longer ours "
                                     f"({_describe_file_holder(current or {})}); another run took it over\n")
                    return
                self._owner["heartbeat"] = time.time()
                partial = f"{self.excl_path}.{os.getpid()}.beat"
                with open(partial, "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(self._owner) + "\n")
                os.replace(partial, self.excl_path)

        self._heartbeat = threading.Thread(target=beat, name="nordpipe-lock-heartbeat", daemon=True)
        self._heartbeat.start()

    def _release_file_lock(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        current = self._read_json(self.excl_path)
        if current and current.get("pid") == self._owner.get("pid") and current.get("host") == self._owner.get("host"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.excl_path)

    def _record(self, extra: dict[str, Any]) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": os.getpid(), "start": process_start_time(os.getpid()),
                                      "since": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}) + "\n")
        self.handle.flush()

    def __exit__(self, *exc: object) -> None:
        self._record({"released": True})  # a released lock is not a crashed run: no note next time
        if self.kind == "file":
            self._release_file_lock()
        else:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _describe_file_holder(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "another process"
    job = f", Slurm job {holder['slurm_job_id']}" if holder.get("slurm_job_id") else ""
    beat = holder.get("heartbeat")
    age = f", heartbeat {time.time() - beat:.0f} s ago" if isinstance(beat, (int, float)) else ""
    return f"pid {holder['pid']} on {holder.get('host', '?')}{job} since {holder.get('since', '?')}{age}"


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
