"""Build hook: Cython compiles the PII scanner's character loops, ``src/nordpipe/pii/_loops.pyx``,
the quality filters' n-gram loops, ``src/nordpipe/_ngram_loops.pyx``, and the Bloom filter's
probes on packed bits, ``src/nordpipe/_bloom_loops.pyx`` (issue 20).

Only ``_loops.pyx`` is compiled: the scanner's loops over characters (number runs, IBAN starts,
chains of capitalised words, the word before a name, sentence starts, digits, IBAN mod 97), each
with a pure-Python definition that the scanner uses when the extension is not built. The scanner's
modules (``pii/engine.py``, ``names.py``, ``recognizers.py``, ``replace.py``) stay plain Python.
They used to be compiled too, but that gave only 1.3-1.6x of the scanner's total, and in an
editable install the compiled ``.so`` files shadowed the ``.py`` files, so edits to those files
were silently ignored. ``remove_stale_extensions`` deletes such leftovers (``.so`` and generated
``.c``) from the source tree at every build.

When Cython is missing, or ``NORDPIPE_PURE_PYTHON=1`` is set at install time, the build skips
``_loops`` (and removes a ``_loops`` extension an earlier editable build left in the source tree);
when the C compiler fails, the build goes on without it. The pure-Python definitions are then
used: same results, slower.
Everything else (metadata, dependencies, package data) is in ``pyproject.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
COMPILED_MODULES = ["src/nordpipe/pii/_loops.pyx", "src/nordpipe/_ngram_loops.pyx", "src/nordpipe/_bloom_loops.pyx"]
"""Built with Cython; each loop also has a pure-Python definition used when this is not built."""
FORMERLY_COMPILED = ("engine", "names", "recognizers", "replace")
"""Scanner modules that earlier versions compiled; their build products must not shadow the ``.py``."""


def remove_stale_extensions(names: tuple[str, ...] = FORMERLY_COMPILED) -> None:
    """Delete compiled copies (``.so``/``.pyd`` and Cython's ``.c``) of these modules left in
    ``src/nordpipe/pii`` by an earlier (editable) build: Python would import them instead of the
    ``.py`` files or the pure-Python loops."""
    folder = HERE / "src" / "nordpipe" / "pii"
    for name in names:
        for stale in [*folder.glob(f"{name}.*.so"), *folder.glob(f"{name}.*.pyd"), *folder.glob(f"{name}.so"),
                      folder / f"{name}.c"]:
            if stale.is_file():
                stale.unlink()


def extension_modules() -> list:
    """``_loops`` as a Cython extension; none (and no leftover ``_loops`` build) when pure Python."""
    try:
        if os.environ.get("NORDPIPE_PURE_PYTHON"):
            raise ImportError("NORDPIPE_PURE_PYTHON is set")
        from Cython.Build import cythonize
    except ImportError:
        remove_stale_extensions(("_loops",))  # an earlier build's _loops must not stay in use
        for stale in [*HERE.glob("src/nordpipe/_ngram_loops.*.so"), *HERE.glob("src/nordpipe/_bloom_loops.*.so")]:
            stale.unlink()
        return []
    extensions = cythonize(COMPILED_MODULES, compiler_directives={"language_level": 3}, quiet=True)
    for extension in extensions:
        extension.optional = True  # a failed compile leaves the pure-Python loops in use
    return extensions


remove_stale_extensions()
setup(ext_modules=extension_modules())
