"""The PII stage's secret key: read from a file or an environment variable, never stored.

The key drives every keyed value of the stage: the audit's hashes of originals, the new ids of
documents whose id held personal data (``pii-<HMAC hex>``), and the seeds of fake values. All
three are HMAC-SHA256 under the key, so nothing the stage writes lets anyone without the key
recover or test a guess of an original (a CPR number has about 3.6 million valid values per
century: an unkeyed hash of one is reversed by enumeration in seconds).

Where the key comes from, and why only there:

- ``--key-file PATH``: a file the owner alone can read. A file readable by group or others
  (mode & 0o077) is refused (``KeyProblem``, exit 2): the key would be as public as the file.
- ``--key-env NAME``: the *name* of an environment variable holding the key.
- Never on the command line (``--salt`` is refused): arguments show in ``ps`` and shell history.

The step (``PiiReplace``) keeps only the path or the variable name and reads the key inside the
task (``read_key``), so the key is in no attribute datatrove serializes into
``.nordpipe/datatrove/executor.json`` nor in any pickled step (local and Slurm executors ship
the step to the workers). The run record holds ``key_id``, an HMAC of a constant under the key:
it tells a resumed run that the key changed, and reveals nothing of it.

Without a key the stage still runs: the audit has counts, offsets and types but no hashes, ids
with personal data get a random (per task, never stored) key's HMAC, so they are unique but not
reproducible across runs, and fake values are seeded by the document id alone: consistent
within a document, not across runs or corpora.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from typing import Any

KEY_ID_MESSAGE = b"nordpipe pii key id"


class KeyProblem(ValueError):
    """The key file or variable is unusable; the message says which and why."""


def check_key_file(path: str) -> None:
    """Raise ``KeyProblem`` if ``path`` is missing, not a file, or readable by group/others."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise KeyProblem(f"--key-file {path}: cannot read it ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyProblem(f"--key-file {path}: not a regular file")
    if info.st_mode & 0o077:
        raise KeyProblem(f"--key-file {path}: mode {stat.S_IMODE(info.st_mode):04o} lets group or others read it; "
                         f"run `chmod 600 {path}` (the key must be readable by its owner only)")


def read_key(key_file: str | None = None, key_env: str | None = None) -> bytes | None:
    """The key bytes from ``key_file`` (trailing newline stripped) or ``$key_env``; None when
    neither is given. Raises ``KeyProblem`` for both given, an unsafe or empty file, an unset
    or empty variable."""
    if key_file and key_env:
        raise KeyProblem("give --key-file or --key-env, not both")
    if key_file:
        check_key_file(key_file)
        with open(key_file, "rb") as handle:
            key = handle.read().rstrip(b"\r\n")
        if not key:
            raise KeyProblem(f"--key-file {key_file}: the file is empty")
        return key
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            raise KeyProblem(f"--key-env {key_env}: the environment variable is not set or empty")
        return value.encode()
    return None


def key_id(key: bytes | None) -> str | None:
    """A 12-hex-digit fingerprint of the key for the run record (HMAC of a constant)."""
    return hmac.new(key, KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:12] if key else None


def keyed_hex(key: bytes, purpose: str, value: str, digits: int = 32) -> str:
    """HMAC-SHA256 of ``value`` under ``key`` for one ``purpose`` (``hash``, ``id``, ``seed``),
    as ``digits`` hex digits. Purposes are separated so an audit hash never equals an id."""
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()[:digits]


def private_dir(path: str) -> str:
    """Create ``path`` (and missing parents) with mode 0700; an existing folder nordpipe
    created (under ``.nordpipe/``) is set to 0700 too. Returns ``path``."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def open_private(path: str, mode: str = "wb") -> Any:
    """Open ``path`` for writing, created with mode 0600 (truncated if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode)
