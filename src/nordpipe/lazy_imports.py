"""``LazyModule``: a module imported on first attribute access.

A stage's steps are built in the stage process and pickled to its workers; only the workers
decide anything. ``nordpipe.urls`` and ``nordpipe.blocklists`` need numpy and polars for the
deciding alone, and importing both costs the stage process ~33 MB of RSS (measured:
``benchmarks/results/urls.md``), held for the whole run in a process that never calls them. With
``np = LazyModule("numpy")`` at module level, the import happens in the first function that uses
``np``: in the worker. Annotations stay plain (``from __future__ import annotations``).

The proxy does not touch ``sys.modules`` (unlike ``importlib.util.LazyLoader``), so other code
importing numpy gets the real module as always; an attribute access through the proxy costs one
extra Python call, negligible next to the vectorized calls it is used for.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name`` and imports it when an attribute is first read."""

    def __init__(self, name: str) -> None:
        self.__dict__["_name"] = name
        self.__dict__["_module"] = None

    def _load(self) -> ModuleType:
        module = self.__dict__["_module"]
        if module is None:
            module = importlib.import_module(self.__dict__["_name"])
            self.__dict__["_module"] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "imported" if self.__dict__["_module"] is not None else "not imported yet"
        return f"<lazy module {self.__dict__['_name']!r} ({state})>"
