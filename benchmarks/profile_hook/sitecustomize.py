"""cProfile hook for ``bench_profile.py``: put this folder first on ``PYTHONPATH`` and set
``NORDPIPE_PROFILE_DIR``; every Python process started then profiles its CPU time
(``time.process_time``).

- the stage process (``nordpipe ...``): the whole process, from this import to exit (imports,
  planning, merging the tasks' stats), written at exit as ``main-<pid>.prof``;
- every datatrove task, wherever it runs (nordpipe's forkserver workers): the task, i.e.
  ``PipelineExecutor._run_for_rank``, written as ``task-<pid>-<n>-rank<rank>.prof``.

It patches datatrove's base executor rather than nordpipe's runner, so the same hook profiles
any nordpipe version (the "before" code of a comparison included) without touching its source.
Without ``NORDPIPE_PROFILE_DIR`` it does nothing.
"""

from __future__ import annotations

import os
import sys

_PROFILE_DIR = os.environ.get("NORDPIPE_PROFILE_DIR")


def _install() -> None:
    import atexit
    import cProfile
    import itertools

    os.makedirs(_PROFILE_DIR, exist_ok=True)
    import time

    if os.path.basename(sys.argv[0] if sys.argv else "") == "nordpipe":
        if sys.argv[1:2] == ["run"]:
            return  # ``nordpipe run`` only starts the stage commands and waits
        whole = cProfile.Profile(time.process_time)
        whole.enable()

        def dump_whole() -> None:
            whole.disable()
            whole.dump_stats(os.path.join(_PROFILE_DIR, f"main-{os.getpid()}.prof"))

        atexit.register(dump_whole)
        return  # tasks run in workers, never in the stage process itself
    from datatrove.executor.base import PipelineExecutor

    original = PipelineExecutor._run_for_rank
    counter = itertools.count()

    def profiled_run_for_rank(self, rank, local_rank=0):  # type: ignore[no-untyped-def]
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        try:
            return original(self, rank, local_rank)
        finally:
            profile.disable()
            profile.dump_stats(os.path.join(_PROFILE_DIR, f"task-{os.getpid()}-{next(counter)}-rank{rank}.prof"))

    PipelineExecutor._run_for_rank = profiled_run_for_rank  # type: ignore[method-assign]


if _PROFILE_DIR:
    _install()
