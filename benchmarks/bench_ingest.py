"""Benchmark: `nordpipe ingest` against a bare datatrove JsonlReader -> JsonlWriter copy.

Both read the same generated jsonl.gz corpus and write jsonl.gz, one worker each, in the same
run; each side runs in its own subprocess so its peak RSS is its own. nordpipe additionally maps
and validates every record (dates normalized, schema checked, ids checked).

    .venv/bin/python benchmarks/bench_ingest.py            # >= 1 GB of jsonl.gz on disk
    .venv/bin/python benchmarks/bench_ingest.py --quick    # 50 MB uncompressed, a smoke run
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "ingest"

DATATROVE_COPY = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
src, dst, logs = sys.argv[1:4]
LocalPipelineExecutor(
    pipeline=[JsonlReader(src, glob_pattern="*.jsonl.gz"), JsonlWriter(dst, output_filename="${rank}.jsonl.gz")],
    tasks=1, workers=1, logging_dir=logs,
).run()
"""


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one subprocess."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss // 1024


def count_docs(folder: Path) -> tuple[int, int]:
    docs = chars = 0
    for file in folder.rglob("*.jsonl.gz"):
        with gzip.open(file, "rb") as handle:
            for line in handle:
                docs += 1
                chars += len(json.loads(line)["text"])
    return docs, chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb-on-disk", type=float, default=1.0, help="size of the generated jsonl.gz files")
    parser.add_argument("--quick", action="store_true", help="50 MB uncompressed instead")
    parser.add_argument("--files", type=int, default=16)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from nordpipe.sample import generate_jsonl_corpus

    corpus = WORK / ("corpus-quick" if args.quick else f"corpus-{args.gb_on_disk}gb")
    if not (corpus / "DONE").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        # ~2.9x gzip ratio at level 1 on this prose: aim the uncompressed size accordingly.
        target = 50_000_000 if args.quick else int(args.gb_on_disk * 2.95e9)
        t = time.perf_counter()
        list(generate_jsonl_corpus(corpus, target_bytes=target, seed=11, files=args.files))
        (corpus / "DONE").write_text("")
        print(f"generated {corpus} in {time.perf_counter() - t:.0f}s", flush=True)
    on_disk = sum(f.stat().st_size for f in corpus.glob("*.jsonl.gz"))
    raw_bytes = sum(len(line) for f in corpus.glob("*.jsonl.gz") for line in gzip.open(f, "rb"))

    for sub in ("datatrove-out", "datatrove-logs", "nordpipe-out"):
        shutil.rmtree(WORK / sub, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    dt_seconds, dt_rss = run_measured([sys.executable, "-c", DATATROVE_COPY, str(corpus), str(WORK / "datatrove-out"), str(WORK / "datatrove-logs")])
    np_seconds, np_rss = run_measured([
        str(bin_dir / "nordpipe"), "ingest", str(corpus), "--dataset", "bench", "--output", str(WORK / "nordpipe-out"),
        "--created-field", "created", "--url-field", "url", "--added", "2024-01-01", "--workers", "1",
    ])
    dt_docs, dt_chars = count_docs(WORK / "datatrove-out")
    np_docs, np_chars = count_docs(WORK / "nordpipe-out" / "bench" / "documents")
    load = os.getloadavg()
    mb = raw_bytes / 1e6
    rows = [
        ("datatrove JsonlReader -> JsonlWriter", dt_seconds, dt_docs, dt_rss),
        ("nordpipe ingest (map + validate)", np_seconds, np_docs, np_rss),
    ]
    print(f"\ninput: {len(list(corpus.glob('*.jsonl.gz')))} files, {on_disk / 1e9:.2f} GB jsonl.gz on disk, {mb / 1e3:.2f} GB uncompressed, {dt_docs:,} docs")
    print(f"load average during/after run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| run | seconds | docs/s per worker | MB/s per worker | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for name, seconds, docs, rss in rows:
        print(f"| {name} | {seconds:.1f} | {docs / seconds:,.0f} | {mb / seconds:.1f} | {rss} |")
    print(f"\nnordpipe / datatrove speed: {dt_seconds / np_seconds:.2f}x (target >= 0.80)")
    print(f"agreement: datatrove wrote {dt_docs:,} docs / {dt_chars:,} chars; nordpipe {np_docs:,} docs / {np_chars:,} chars; "
          f"{'identical counts' if (dt_docs, dt_chars) == (np_docs, np_chars) else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
