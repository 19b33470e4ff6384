"""Peak memory of `nordpipe dedup lines`' whole process tree against its Bloom filter's size,
this tree side by side with another checkout (the commit before), in one run.

Target (issue 20): peak <= filter size + 100 MiB on the 1.1 GB corpus of ``bench_lines.py``,
with the same verdicts. Each checkout runs the same command (``--tasks 1 --workers 1``, the
settings of ``bench_lines.py``) on the corpus and on 20 documents (the fixed part: imports,
forkserver, workers), in turn, under ``proctree.run_tree``, which samples every process of the
tree: stage process, forkserver, resource tracker, one worker per phase. Reported: the peak of
the summed PSS (what the tree holds: shared pages counted once), of the summed RSS (shared
pages counted in every process), and the largest single process (``wait4``; what
``bench_lines.py`` reports). Verdicts: the per-document count of removed lines and the kept
documents' texts must be identical between the checkouts.

    .venv/bin/python benchmarks/bench_lines_memory.py --old-src /work/main/src [--size-mb 1100] [--results benchmarks/results/lines.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lines
from proctree import run_tree

REPO = Path(__file__).resolve().parents[1]
NORDPIPE = str(Path(sys.executable).parent / "nordpipe")
MIB = 1 << 20


def dedup(corpus: Path, work: Path, name: str, src: Path, expected_lines: int) -> dict[str, Any]:
    out, state = work / f"{name}-out", work / f"{name}-state"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    load = os.getloadavg()
    run = run_tree([NORDPIPE, "dedup", "lines", str(corpus), str(out), "--state", str(state), "--tasks", "1",
                    "--workers", "1", "--expected-lines", str(expected_lines), "--fpr", str(bench_lines.FPR),
                    "--exact-whitespace", "--min-line-chars", "1", "--keep-removed", "--json"],
                   env={**os.environ, "PYTHONPATH": str(src)})
    stats = json.loads((out / ".nordpipe" / "stats.json").read_text())["line_dedup"]
    result = {**run.as_dict(), "load_before": load, "filter_mib": stats["filter_bytes"] / MIB,
              "lines_removed": stats["lines_removed"], "out": str(out)}
    print(f"{name}: {run.wall:.1f} s, tree PSS {run.peak_pss_mib:.0f} MiB, tree RSS {run.peak_rss_mib:.0f} MiB, "
          f"largest process {run.max_process_rss_mib:.0f} MiB, filter {result['filter_mib']:.1f} MiB, "
          f"{stats['lines_removed']:,} lines removed (load {load[0]:.1f})", flush=True)
    return result


def verdicts(out: str) -> tuple[dict[str, int], str]:
    """Per-document removed-line counts, and a digest of the kept documents' ids and texts."""
    counts = bench_lines.nordpipe_doc_counts(out)
    digest = hashlib.sha256()
    texts = []
    for path in sorted((Path(out) / "documents").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            texts.extend((doc["id"], doc["text"]) for doc in map(json.loads, handle))
    for doc_id, text in sorted(texts):
        digest.update(f"{doc_id}\0{text}\0".encode())
    return counts, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-src", type=Path, required=True, help="src folder of the other checkout")
    parser.add_argument("--size-mb", type=int, default=1100, help="text size of the corpus in MB [1100]")
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "lines")
    parser.add_argument("--results", type=Path, help="append a markdown report to this file")
    args = parser.parse_args()
    work = args.work / f"{args.size_mb}mb"
    work.mkdir(parents=True, exist_ok=True)
    info = bench_lines.make_corpus(work / "corpus", args.size_mb, args.files)
    tiny = work / "tiny"
    (tiny / "documents").mkdir(parents=True, exist_ok=True)
    with gzip.open(tiny / "documents" / "0000.jsonl.gz", "wt") as handle:
        for i in range(20):
            handle.write(json.dumps({"id": str(i), "text": f"Linje {i}\nFælles linje", "source": "bench",
                                     "added": "2024-05-01", "created": "2020-01-01, 2024-01-01", "metadata": {}}) + "\n")
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    sides = {"new": REPO / "src", "old": args.old_src}
    results: dict[str, dict[str, Any]] = {}
    for side, src in sides.items():
        results[f"{side}-fixed"] = dedup(tiny, work, f"mem-{side}-fixed", src, 1000)
        results[side] = dedup(work / "corpus", work, f"mem-{side}", src, info["lines"])
    load_after = os.getloadavg()
    (work / "memory-runs.json").write_text(json.dumps(results, indent=2))  # kept if the comparison fails
    new_counts, new_digest = verdicts(results["new"]["out"])
    old_counts, old_digest = verdicts(results["old"]["out"])
    same = {"documents": len(new_counts), "removed_line_counts_equal": new_counts == old_counts,
            "kept_texts_equal": new_digest == old_digest,
            "lines_removed_equal": results["new"]["lines_removed"] == results["old"]["lines_removed"]}
    print(json.dumps(same), flush=True)
    rows = []
    for name in ("old-fixed", "new-fixed", "old", "new"):
        r = results[name]
        over = r["peak_pss_mib"] - r["filter_mib"]
        rows.append(f"| {name} | {r['wall']:.1f} | {r['filter_mib']:.1f} | **{r['peak_pss_mib']:.0f}** ({over:+.0f}) | "
                    f"{r['peak_rss_mib']:.0f} | {r['max_process_rss_mib']:.0f} | {r['peak_processes']} | "
                    f"{r['lines_removed']:,} | {r['load_before'][0]:.1f} |")
    per_process = []
    for name in ("old-fixed", "new-fixed", "old", "new"):
        shown = ", ".join(f"{p['peak_pss_mib']:.0f}/{p['peak_rss_mib']:.0f}" for p in results[name]["processes"])
        per_process.append(f"- {name}: {shown}")
    report = f"""
### {started:%Y-%m-%d %H:%M} UTC — `bench_lines_memory.py --old-src {args.old_src} --size-mb {args.size_mb}`

Machine: {os.cpu_count()} cores, {platform.machine()}, shared; load average before {'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in load_after)}.
Corpus: {info['text_bytes'] / 1e6:,.0f} MB of text, {info['documents']:,} documents, {info['lines']:,} lines, {args.files} files.
old = `{args.old_src}` (PYTHONPATH), new = this tree; same venv, same command, one after the other.

| run | wall s | filter MiB | tree peak PSS MiB (over filter) | tree peak RSS MiB | largest process MiB | processes at once | lines removed | load (1 min) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Per process, peak PSS/RSS MiB (stage process, forkserver, resource tracker, one worker per phase; a
process caught between fork and exec shows its parent's pages):
{chr(10).join(per_process)}

Verdicts new vs old: {json.dumps(same)}
"""
    print(report)
    if args.results:
        with open(args.results, "a") as handle:
            handle.write(report)


if __name__ == "__main__":
    main()
