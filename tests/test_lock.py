"""The O_EXCL lock-file fallback for filesystems where flock is unreliable (NFS, Lustre, ...).

The fallback is forced with ``NORDPIPE_LOCK=file`` (the local disk under pytest has a working
flock); the holders are real processes and the contender is the real ``nordpipe`` CLI.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import record, wait_for

from nordpipe.runner import OutputLock, RunError
from nordpipe.runner.lock import LOCK_KIND_ENV, LOCK_STALE_ENV, filesystem_type, lock_kind

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
server:/export /work nfs4 rw,vers=4.2 0 0
mds@tcp:/scratch /work/scratch lustre rw,localflock 0 0
server:/old /work/scratch/old nfs rw,nolock 0 0
//nas/share /mnt/my\\040share cifs rw 0 0
"""

HOLDER = """
import sys, time
from nordpipe.runner import OutputLock
with OutputLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_filesystem_type_is_the_longest_mount_prefix() -> None:
    assert filesystem_type("/work/scratch/run1/.nordpipe", MOUNTS) == "lustre"
    assert filesystem_type("/work/scratch/old/x", MOUNTS) == "nfs"
    assert filesystem_type("/work/scratchpad", MOUNTS) == "nfs4"  # a prefix of the name is not a parent
    assert filesystem_type("/work", MOUNTS) == "nfs4"
    assert filesystem_type("/home/me", MOUNTS) == "ext4"
    assert filesystem_type("/mnt/my share/out", MOUNTS) == "cifs"  # \040 in /proc/mounts is a space


def test_lock_kind_follows_the_filesystem_unless_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = filesystem_type(str(tmp_path))
    assert local  # /proc/mounts names the filesystem of pytest's tmp folder
    monkeypatch.delenv(LOCK_KIND_ENV, raising=False)
    assert lock_kind(str(tmp_path))[0] == ("file" if local in ("nfs", "nfs4", "lustre") else "flock")
    monkeypatch.setenv(LOCK_KIND_ENV, "file")
    assert lock_kind(str(tmp_path))[0] == "file"
    monkeypatch.setenv(LOCK_KIND_ENV, "nonsense")
    with pytest.raises(RunError, match="expected auto, flock or file"):
        lock_kind(str(tmp_path))


def _input(tmp_path: Path) -> Path:
    folder = tmp_path / "input"
    folder.mkdir()
    with gzip.open(folder / "part.jsonl.gz", "wt", encoding="utf-8") as handle:
        for i in range(20):
            text = f"Dokument nummer {i} handler om vejret i Aarhus.\nTak fordi du læste med på siden her."
            handle.write(json.dumps(record(f"d{i}", text)) + "\n")
    return folder


def _start_holder(output: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(output)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held", holder.stderr.read() if holder.stderr else ""
    return holder


def test_lock_file_excludes_a_second_process_and_a_dead_holder_is_taken_over(tmp_path: Path, nordpipe_cli) -> None:
    env = {**os.environ, LOCK_KIND_ENV: "file", "SLURM_JOB_ID": "4242"}
    source, output = _input(tmp_path), tmp_path / "out"
    args = ["dedup", "lines", source, output, "--state", tmp_path / "state", "--expected-lines", "10000"]
    holder = _start_holder(output, env)
    excl = output / ".nordpipe" / "lock.excl"
    try:
        owner = json.loads(excl.read_text())
        assert owner["pid"] == holder.pid and owner["host"] == socket.gethostname()
        assert owner["slurm_job_id"] == "4242" and isinstance(owner["heartbeat"], float)
        refused = nordpipe_cli(*args, env={LOCK_KIND_ENV: "file"})
        assert refused.returncode == 1, refused.stderr
        assert "in use by a running nordpipe" in refused.stderr and f"pid {holder.pid} on" in refused.stderr
        assert "Slurm job 4242" in refused.stderr
        assert not (output / "documents").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: nothing removes lock.excl
        holder.communicate(timeout=30)
    assert json.loads(excl.read_text())["pid"] == holder.pid
    taken = nordpipe_cli(*args, env={LOCK_KIND_ENV: "file"})
    assert taken.returncode == 0, taken.stderr
    assert "taking over" in taken.stderr and f"pid {holder.pid}" in taken.stderr and "is gone" in taken.stderr
    assert (output / "documents").is_dir()
    assert not excl.exists()  # released at the end of the run


def test_flock_and_lock_file_kinds_are_separate_mechanisms(tmp_path: Path) -> None:
    """With the lock kind forced to ``file``, a process holding only the flock does not exclude
    (the fallback does not depend on flock); two lock-file holders do exclude each other."""
    output = tmp_path / "out"
    flock_holder = _start_holder(output, {**os.environ, LOCK_KIND_ENV: "flock"})
    try:
        os.environ[LOCK_KIND_ENV] = "file"
        with OutputLock(str(output)):
            file_holder = subprocess.run([sys.executable, "-c", HOLDER, str(output)], capture_output=True, text=True,
                                         env={**os.environ}, timeout=60)
            assert file_holder.returncode != 0 and "in use by a running nordpipe" in file_holder.stderr
    finally:
        os.environ.pop(LOCK_KIND_ENV, None)
        flock_holder.kill()
        flock_holder.communicate(timeout=30)


def test_stale_heartbeat_from_another_host_is_taken_over_and_a_fresh_one_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOCK_KIND_ENV, "file")
    monkeypatch.setenv(LOCK_STALE_ENV, "60")
    output = tmp_path / "out"
    excl = output / ".nordpipe" / "lock.excl"
    excl.parent.mkdir(parents=True)
    other = {"host": "node-that-is-not-this-one", "pid": 12345, "start": "1", "slurm_job_id": "77",
             "since": "2026-12-07T01:00:00"}
    excl.write_text(json.dumps({**other, "heartbeat": time.time() - 5}))
    with pytest.raises(RunError, match="pid 12345 on node-that-is-not-this-one, Slurm job 77"):
        OutputLock(str(output)).__enter__()
    assert json.loads(excl.read_text())["host"] == "node-that-is-not-this-one"
    excl.write_text(json.dumps({**other, "heartbeat": time.time() - 120}))
    with OutputLock(str(output)):
        assert json.loads(excl.read_text())["pid"] == os.getpid()
    assert not excl.exists()


def test_heartbeat_advances_while_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_KIND_ENV, "file")
    monkeypatch.setenv("NORDPIPE_LOCK_HEARTBEAT_S", "0.1")
    output = tmp_path / "out"
    with OutputLock(str(output)):
        excl = output / ".nordpipe" / "lock.excl"
        first = json.loads(excl.read_text())["heartbeat"]
        wait_for(lambda: json.loads(excl.read_text())["heartbeat"] > first, 10, "a newer heartbeat")


def test_empty_lock_file_left_by_a_crash_is_stale_only_when_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that died between the O_EXCL create and the write leaves an empty file: refused
    while it is young (someone may be writing it), taken over once it is older than the timeout."""
    monkeypatch.setenv(LOCK_KIND_ENV, "file")
    monkeypatch.setenv(LOCK_STALE_ENV, "60")
    output = tmp_path / "out"
    excl = output / ".nordpipe" / "lock.excl"
    excl.parent.mkdir(parents=True)
    excl.write_text("")
    with pytest.raises(RunError, match="in use by a running nordpipe"):
        OutputLock(str(output)).__enter__()
    old = time.time() - 120
    os.utime(excl, (old, old))
    with OutputLock(str(output)):
        assert json.loads(excl.read_text())["pid"] == os.getpid()
