"""cProfile of the ``filter quality`` stage's steps on ``bench_quality_stage.py``'s real-sentence corpus.

    .venv/bin/python benchmarks/profile_quality_stage.py --docs 20000 > /tmp/profile.txt

Runs reader -> ``LanguageIdentifier(languages=da,nb,nn,sv,en)`` -> the three quality filters ->
writer (``--keep-removed``) in this process under cProfile and prints the process CPU time, the
peak memory (max RSS) and the top functions by cumulative and by own time. The summary in
``benchmarks/results/profile_quality.md`` comes from this output. cProfile adds overhead to Python
calls, not to C calls such as lingua's, and on a loaded machine its times are wall times: read
the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_quality_stage import LANGUAGES_KEPT, build_corpus, write_input  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    import nordpipe
    from nordpipe.langid import LanguageIdentifier
    from nordpipe.quality import load_settings, quality_steps
    from nordpipe.steps import DocumentReader, DocumentWriter

    work = Path(tempfile.mkdtemp(prefix="profile_quality_"))
    write_input(build_corpus(args.shared, args.docs), work / "input")
    loaded = load_settings()
    steps = [DocumentReader(str(work / "input")), LanguageIdentifier(languages=LANGUAGES_KEPT.split(","), settings=loaded),
             *quality_steps(loaded), DocumentWriter(str(work / "output"), keep_removed=True)]

    def run() -> None:
        data = None
        for step in steps:
            data = step.run(data, 0, 1)
        for _ in data:
            pass

    profile = cProfile.Profile()
    start = time.process_time()
    profile.enable()
    run()
    profile.disable()
    print(f"nordpipe: {nordpipe.__file__}; documents: {args.docs}; CPU s: {time.process_time() - start:.1f}; "
          f"max RSS MB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
