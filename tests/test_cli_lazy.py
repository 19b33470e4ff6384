"""The CLI imports a command's module only when that command runs (``nordpipe.cli.app``).

``COMMANDS`` must name every command the modules register, in the order ``--help`` lists them,
with the summary click would make from the command's own help; and ``nordpipe --help`` /
``nordpipe filter urls`` must not import the modules of other commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _imported_after(argv: list[str]) -> set[str]:
    """Modules imported by the real console entry point running ``argv`` in a fresh interpreter."""
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: sys.__stderr__.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
        "from nordpipe.cli.main import main\n"
        f"sys.argv = ['nordpipe', *{argv!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")]
    assert line, proc.stderr[-2000:]
    return set(line[-1].split()[1:])


def test_registry_lists_exactly_the_registered_commands_with_their_summaries() -> None:
    import typer
    from typer._click.utils import make_default_short_help

    from nordpipe.cli import app as cli_app

    # import every command module: the commands they register are the truth
    for module in sorted({c.module for group in cli_app.COMMANDS.values() for c in group.values()} |
                         {c.module for c in cli_app.LAZY_GROUPS.values()}):
        __import__(module)
    registered: dict[str, list[str]] = {}
    for group, source in cli_app._APPS.items():  # (in import order: COMMANDS fixes the listing's order)
        registered[group] = sorted(info.name or typer.main.get_command_name(info.callback.__name__)
                                   for info in source.registered_commands)
    assert {g: sorted(c) for g, c in cli_app.COMMANDS.items()} == registered
    top_groups = [info.name for info in cli_app.app.registered_groups]
    assert set(cli_app.LAZY_GROUPS) == set(top_groups) - set(cli_app.COMMANDS)
    group = typer.main.get_command(cli_app.app)
    ctx = typer.Context(group)
    for group_name, commands in cli_app.COMMANDS.items():
        node = group.get_command(ctx, group_name) if group_name else group
        for name, lazy in commands.items():
            command = node.get_command(ctx, name)
            assert command.callback.__module__ == lazy.module, (group_name, name)
            for limit in (30, 45, 80, 1000):  # the listing shows the summary cut to the terminal width
                assert make_default_short_help(lazy.summary, limit) == command.get_short_help_str(limit), (name, limit)
    for name, lazy in cli_app.LAZY_GROUPS.items():
        sub = group.get_command(ctx, name)
        assert make_default_short_help(lazy.summary, 1000) == sub.get_short_help_str(1000)


def test_help_imports_no_command_module() -> None:
    modules = _imported_after(["--help"])
    command_modules = {m for m in modules if m.startswith("nordpipe.cli.") and m not in ("nordpipe.cli.app",
                                                                                        "nordpipe.cli.main")}
    assert command_modules == set()
    for heavy in ("polars", "pyarrow", "numpy", "datatrove", "presidio_analyzer", "trafilatura"):
        assert heavy not in modules, heavy


@pytest.mark.parametrize(("argv", "own", "foreign"), [
    (["filter", "urls", "--help"], "nordpipe.cli.urls", ("nordpipe.cli.quality", "nordpipe.cli.export", "pyarrow")),
    (["dedup", "lines", "--help"], "nordpipe.cli.lines", ("nordpipe.cli.urls", "nordpipe.cli.pii", "polars", "pyarrow")),
])
def test_a_command_imports_its_own_module_only(argv: list[str], own: str, foreign: tuple[str, ...]) -> None:
    modules = _imported_after(argv)
    assert own in modules
    for name in foreign:
        assert name not in modules, name


def test_unknown_command_still_suggests_commands_not_imported_yet(nordpipe_cli) -> None:  # type: ignore[no-untyped-def]
    result = nordpipe_cli("filter", "urlz")
    assert result.returncode == 2
    assert "Did you mean 'urls'?" in result.stderr


def test_modules_the_forkserver_preloads_start_no_thread_pool() -> None:
    """The local executor's forkserver imports every step module before forking workers
    (``runner.executors.worker_modules``). A library that starts threads at import (polars,
    pyarrow) would leave the forked workers with a broken pool, so no step module may import
    one at module level. Checked on every ``PipelineStep`` subclass nordpipe defines."""
    code = (
        "import importlib, pkgutil, sys, threading\n"
        "import nordpipe\n"
        "from datatrove.pipeline.base import PipelineStep\n"
        "from nordpipe.runner.executors import worker_modules\n"
        "names = [m.name for m in pkgutil.walk_packages(nordpipe.__path__, 'nordpipe.')\n"
        "         if not m.name.startswith(('nordpipe.cli', 'nordpipe.pii.presidio', 'nordpipe.pii.name_model'))]\n"
        "def subclasses(cls):\n"
        "    for sub in cls.__subclasses__():\n"
        "        yield sub\n"
        "        yield from subclasses(sub)\n"
        "probe = sys.argv[1] if len(sys.argv) > 1 else None\n"
        "if probe is None:\n"
        "    for name in names:\n"
        "        importlib.import_module(name)\n"
        "    steps = [cls.__new__(cls) for cls in subclasses(PipelineStep) if cls.__module__.startswith('nordpipe.')]\n"
        "    print(' '.join(worker_modules(steps)))\n"
        "else:\n"
        "    for name in probe.split():\n"
        "        importlib.import_module(name)\n"
        "    print(' '.join(m for m in ('polars', 'pyarrow', 'torch', 'spacy') if m in sys.modules) or '-',\n"
        "          threading.active_count())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=True)
    modules = listed.stdout.split()
    assert "datatrove.executor.local" in modules and "nordpipe.quality" in modules and "nordpipe.urls" in modules
    probed = subprocess.run([sys.executable, "-c", code, " ".join(modules)], capture_output=True, text=True, env=env,
                            timeout=300, check=True)
    threaded, python_threads = probed.stdout.split()
    assert threaded == "-", f"step modules import {threaded} at module level"
    assert python_threads == "1"
