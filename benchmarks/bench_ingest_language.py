"""Benchmark: what the datasheet's language sample (``datasheet.sample_languages``) adds to ingest.

Ingest identifies the language of at most ``LANGUAGE_SAMPLE`` records when no ``--language`` is
stated. This runs the same ingest with ``--language da`` (no sample) and without (sample), side
by side in the same run, each in its own subprocess, alternating, ``--repeats`` times, and
reports the median wall time of each and their difference; then times ``sample_languages`` alone
in a fresh process (detector loading included). Inputs: a generated jsonl.gz corpus (Nordic
sample text) and, when ``../shared`` is present, the real Dolma/Common Crawl WARC sample.

    .venv/bin/python benchmarks/bench_ingest_language.py              # 20 MB corpus, 3 repeats
    .venv/bin/python benchmarks/bench_ingest_language.py --quick      # 5 MB corpus, 2 repeats
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "ingest_language"
RESULT = HERE / "results" / "ingest_language.md"
SHARED_WARC = HERE.parent.parent / "shared" / "data" / "warc" / "dolma-sample-0000.warc.gz"

TIME_SAMPLE = """
import sys, time
start = time.perf_counter()
from nordpipe.datasheet import sample_languages
counts = sample_languages(sys.argv[1])
print(f"{time.perf_counter() - start:.3f}", sum(counts.values()), counts)
"""


def nordpipe() -> list[str]:
    exe = Path(sys.executable).parent / "nordpipe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nordpipe.cli.main"]


def ingest(raw: list[str], output: Path, extra: list[str]) -> float:
    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([*nordpipe(), "ingest", *raw, "--dataset", "bench", "--output", str(output), *extra],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(name: str, raw: list[str], extra: list[str], repeats: int) -> list[str]:
    stated, sampled = [], []
    for _ in range(repeats):
        stated.append(ingest(raw, WORK / "stated", [*extra, "--language", "da"]))
        sampled.append(ingest(raw, WORK / "sampled", extra))
    alone = subprocess.run([sys.executable, "-c", TIME_SAMPLE, str(WORK / "sampled" / "bench")], check=True,
                           capture_output=True, text=True).stdout.split(maxsplit=2)
    docs = sum(1 for _ in (WORK / "sampled" / "bench" / "documents").glob("*.jsonl.gz"))
    a, b = statistics.median(stated), statistics.median(sampled)
    return [
        f"| {name} | {docs} | {a:.2f} | {b:.2f} | {b - a:+.2f} ({(b - a) / a:+.0%}) | {float(alone[0]):.2f} | "
        f"{alone[1]} | {alone[2].strip()} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    megabytes = 5 if args.quick else 20
    from nordpipe.sample import generate_jsonl_corpus

    shutil.rmtree(WORK, ignore_errors=True)
    corpus = WORK / "corpus"
    corpus.mkdir(parents=True)
    files = list(generate_jsonl_corpus(corpus, megabytes * 1_000_000, seed=7, files=2))
    rows = ["| input | document files | ingest --language da, s (median) | ingest without --language, s (median) "
            "| difference | sample_languages alone, s | records sampled | sample |",
            "|---|---|---|---|---|---|---|---|"]
    rows += measure(f"generated jsonl.gz, {megabytes} MB uncompressed (Nordic sample text)",
                    [str(f) for f in files], ["--created-field", "created", "--url-field", "url", "--added", "2024-01-01"], repeats)
    if SHARED_WARC.exists():
        rows += measure("real WARC: dolma-sample-0000.warc.gz (../shared)", [str(SHARED_WARC)], [], repeats)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    command = " ".join(["benchmarks/bench_ingest_language.py", *sys.argv[1:]])
    text = "\n".join([
        "## Ingest: the datasheet's language sample (issue 19)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other test and benchmark runs "
        f"(load average after the run: {load}). Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Command: `.venv/bin/python {command}`. {repeats} alternating runs of each side, each a fresh "
        "`nordpipe ingest` subprocess; \"alone\" is `sample_languages` in a fresh process, detectors' loading included.",
        "",
        *rows,
        "",
        "Reading: the sample's cost is fixed per ingest run (lingua's low-accuracy models for 17 languages, then at most "
        "200 records), whatever the dataset's size; \"alone\" measures it directly. The difference of the two ingest "
        "columns is that cost plus the noise of a shared machine (medians of few runs), so it can read above or below it.",
        "",
    ])
    RESULT.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
