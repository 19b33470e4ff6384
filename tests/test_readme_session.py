"""The README's shell session, run as written: every command, in a fresh folder, on the
bundled sample data (offline, seeded, without ``../shared`` as in a fresh clone). Each command must exit 0, every output line the README
shows under a command must be among that command's output lines, and the chain must end with
documents and tokens: the session once ended with 0 documents and 0 tokens, exit 0, and nobody
noticed because nothing ran it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from conftest import nordpipe_executable

README = Path(__file__).resolve().parents[1] / "README.md"


def session() -> list[tuple[str, list[str]]]:
    """``(command, shown output lines)`` of the README's session, in order."""
    block = README.read_text(encoding="utf-8").split("<!-- session:begin -->", 1)[1].split("<!-- session:end -->", 1)[0]
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("```")]
    steps: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"README session: output before the first command: {line!r}"
            steps[-1][1].append(line)
    return steps


def normalized(line: str) -> str:
    return " ".join(line.split())


def test_session_is_parsed() -> None:
    steps = session()
    commands = [shlex.split(command)[:3] for command, _ in steps]
    assert commands[0][:2] == ["nordpipe", "sample"] and ["nordpipe", "tokenize"] in [c[:2] for c in commands]
    assert all(command.startswith("nordpipe ") for command, _ in steps)


def test_readme_session_runs_as_shown_and_ends_with_tokens(tmp_path: Path) -> None:
    # as in a fresh clone: the sample generator would otherwise draw on ../shared's sentences
    env = {**os.environ, "COLUMNS": "200", "NORDPIPE_SHARED": "none"}
    for command, shown in session():
        argv = [*nordpipe_executable(), *shlex.split(command)[1:]]
        result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=1800, env=env)
        assert result.returncode == 0, f"README session: `{command}` exited {result.returncode}:\n{result.stderr}"
        printed = {normalized(line) for line in result.stdout.splitlines()}
        for line in shown:
            assert normalized(line) in printed, (f"README session: `{command}` no longer prints {line!r}; it printed:\n"
                                                 f"{result.stdout}")
    assert json.loads((tmp_path / "work" / "sample" / "manifest.json").read_text())["used_shared"] is False
    manifest = json.loads((tmp_path / "work" / "shards" / "manifest.json").read_text())
    assert manifest["documents"] > 0 and manifest["tokens"] > 0
