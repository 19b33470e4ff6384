"""The three ingest hot spots changed in issue 20, each timed against its former code in one process.

    .venv/bin/python benchmarks/bench_ingest_hotspots.py [--scale 10] [--rounds 3]

Pages and dates come from ``nordpipe sample`` (the generator of ``bench_pipeline.py``): the web
dump's WARC pages, the forum dump's ``created`` column (RFC 2822). CPU time (``process_time``),
rounds alternating between the former and the current code so that load changes touch both;
the best round of each is reported, and every result is checked equal.

- extraction: ``trafilatura.extract(page, url=url, include_comments=False)`` (former
  ``html_to_text``) vs ``html_to_text`` (one options template copied per page);
- dates: ``parse_date`` with the three ctime ``strptime`` tries on every string (former) vs
  skipping them for word-comma strings;
- raw-file records: ``dataclasses.asdict`` (former ``RawFileRead.to_json``) vs the field copy.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def best_cpu(rounds: int, former, current) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times: dict[str, list[float]] = {"former": [], "current": []}
    for _ in range(rounds):
        for name, fn in (("former", former), ("current", current)):
            started = time.process_time()
            fn()
            times[name].append(time.process_time() - started)
    return min(times["former"]), min(times["current"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    import nordpipe.dates as dates
    from nordpipe.extract import html_to_text
    from nordpipe.ingest import RawFileRead

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(VENV_BIN / "nordpipe"), "sample", tmp, "--scale", str(args.scale), "--files", "1", "--seed", "42"],
                       check=True, capture_output=True)
        pages = []
        for warc in sorted(Path(tmp, "raw", "web").glob("*.warc.gz")):
            with open(warc, "rb") as handle:
                for record in ArchiveIterator(handle):
                    if record.rec_type == "response":
                        pages.append((record.content_stream().read(), record.rec_headers.get_header("WARC-Target-URI")))
        created = []
        for path in sorted(Path(tmp, "raw", "forum").glob("*.csv")):
            with open(path, encoding="utf-8", newline="") as handle:
                created += [row["created"] for row in csv.DictReader(handle)]

    def former_extract() -> list[str]:
        out = []
        for page, url in pages:
            text = trafilatura.extract(page, url=url, include_comments=False) or ""
            out.append("\n".join(line.rstrip() for line in text.splitlines() if line.strip()))
        return out

    def current_extract() -> list[str]:
        return [html_to_text(page, url) for page, url in pages]

    assert former_extract() == current_extract()
    extract = best_cpu(args.rounds, former_extract, current_extract)

    word_comma = dates._WORD_COMMA

    class _NeverMatches:
        @staticmethod
        def match(text: str) -> None:
            return None

    def former_dates_run() -> list[object]:
        dates._WORD_COMMA = _NeverMatches  # type: ignore[assignment]
        try:
            return [dates.parse_date(text) for text in created]
        finally:
            dates._WORD_COMMA = word_comma

    def current_dates() -> list[object]:
        return [dates.parse_date(text) for text in created]

    assert former_dates_run() == current_dates()
    date_times = best_cpu(args.rounds, former_dates_run, current_dates)

    reads = [RawFileRead("text", False, 1000 + i, 1000 + i, f"{i:032x}", mtime_ns=i) for i in range(20_000)]
    assert [dataclasses.asdict(r) for r in reads] == [r.to_json() for r in reads]
    read_times = best_cpu(args.rounds, lambda: [dataclasses.asdict(r) for r in reads], lambda: [r.to_json() for r in reads])

    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| hot spot | items | former CPU s | current CPU s | former/current |")
    print("|---|---|---|---|---|")
    for name, items, (former, current) in (("WARC page extraction", len(pages), extract),
                                          ("forum `created` dates (RFC 2822)", len(created), date_times),
                                          ("raw-file records to JSON", len(reads), read_times)):
        print(f"| {name} | {items:,} | {former:.2f} | {current:.2f} | **{former / current:.2f}x** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
