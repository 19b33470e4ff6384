"""Benchmark the stage contract against the commit before it: every stage of the demo chain, side by side.

    .venv/bin/python benchmarks/bench_contract.py                       # scale 60 (~90 MB raw), ~15 min
    .venv/bin/python benchmarks/bench_contract.py --scale 5 --rounds 1  # a quick try

The stage-contract redesign (one ``StageRun`` for every stage, input checks, supervised local
workers that are spawned processes, completion records) must not make a stage more than 5%
slower. This runs the demo chain's stages (ingest of the five sample datasets, urls, quality,
lines, minhash, pii, tokenize) with the code of ``--baseline`` (a git worktree of that commit,
its compiled scanner built in place) and with the working tree, on the same generated sample,
in alternating order (baseline, current, baseline, current, ...), each stage its own command as
a user would type it, with the demo pipeline's parameters and ``--workers``. Per stage it
reports the fastest wall time of each side, their ratio, and whether the two sides' kept
documents are the same (decompressed records compared by dataset and id, ignoring the order of
files).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("nyheder", "forum", "web", "breve", "wiki")


def worktree(rev: str, target: Path) -> Path:
    """A checkout of ``rev`` with its compiled scanner built in place (as ``pip install`` would)."""
    if not (target / "src" / "nordpipe").exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(target), rev], check=True,
                       capture_output=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=target, check=True,
                   capture_output=True)
    return target / "src"


def chain(sample: Path, out: Path, workers: int) -> list[tuple[str, list[list[str]]]]:
    """The demo chain as (stage, commands) with the demo pipeline's parameters."""
    data = out / "data"
    steps: list[tuple[str, list[list[str]]]] = [
        ("ingest", [["ingest", str(sample / "raw" / name), "--config", str(sample / "datasets" / f"{name}.yaml"),
                     "--output", str(data), "--workers", str(workers)] for name in DATASETS]),
    ]
    previous = data
    for stage, command, params in (
        ("urls", ["filter", "urls"], ["--blocklist", str(sample / "blocklist.txt"), "--keep-removed"]),
        ("quality", ["filter", "quality"], ["--languages", "da,nb,nn,sv,en", "--keep-removed"]),
        ("lines", ["dedup", "lines"], ["--state", str(out / "state" / "lines"), "--exempt-source", "breve", "--keep-removed"]),
        ("minhash", ["dedup", "docs"], ["--index", str(out / "state" / "minhash"), "--keep-removed"]),
        ("pii", ["pii"], ["--mode", "tag"]),
        ("tokenize", ["tokenize"], []),
    ):
        target = out / stage
        steps.append((stage, [[*command, str(previous), str(target), *params, "--workers", str(workers)]]))
        previous = target
    return steps


def run_chain(src: Path, sample: Path, out: Path, workers: int) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    times = {}
    for stage, commands in chain(sample, out, workers):
        started = time.perf_counter()
        for command in commands:
            result = subprocess.run([sys.executable, "-c", "from nordpipe.cli.main import main; main()", *command],
                                    env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"{src}: {' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
        times[stage] = time.perf_counter() - started
    return times


def kept_documents(folder: Path) -> dict[tuple[str, str], str]:
    """(source, id) -> text of every kept document below ``folder``."""
    found = {}
    for path in sorted(folder.rglob("documents/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                found[(record["source"], record["id"])] = record["text"]
    return found


def tokens(folder: Path) -> int:
    return int(json.loads((folder / "tokenize" / "manifest.json").read_text())["tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="6749799", help="commit before the stage contract")
    parser.add_argument("--scale", type=float, default=60.0)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "contract"))
    parser.add_argument("--results", default=None, help="write the Markdown report here too")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sides = {"baseline": worktree(args.baseline, work / "baseline-tree"), "current": REPO / "src"}
    sample = work / "sample"
    if not (sample / "manifest.json").exists():
        subprocess.run([sys.executable, "-c", "from nordpipe.cli.main import main; main()", "sample", str(sample),
                        "--scale", str(args.scale), "--files", str(args.files)], check=True, capture_output=True)
    raw_bytes = sum(p.stat().st_size for p in (sample / "raw").rglob("*") if p.is_file())
    timings: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side, src in sides.items():
            times = run_chain(src, sample, work / side, args.workers)
            timings[side].append(times)
            print(f"round {round_ + 1} {side}: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()), flush=True)
    rows = []
    for stage in timings["current"][0]:
        base = min(t[stage] for t in timings["baseline"])
        current = min(t[stage] for t in timings["current"])
        same = kept_documents(work / "baseline" / stage) == kept_documents(work / "current" / stage) \
            if stage != "tokenize" else tokens(work / "baseline") == tokens(work / "current")
        rows.append((stage, base, current, same))
    total_base = sum(r[1] for r in rows)
    total_current = sum(r[2] for r in rows)
    load = os.getloadavg()
    lines = [
        "# Stage contract: every stage against the commit before it",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"CPython {platform.python_version()}",
        f"- command: `.venv/bin/python benchmarks/bench_contract.py --scale {args.scale:g} --files {args.files} "
        f"--workers {args.workers} --rounds {args.rounds} --baseline {args.baseline}`",
        f"- input: `nordpipe sample --scale {args.scale:g} --files {args.files}`: {raw_bytes / 1e6:.1f} MB of raw dumps",
        f"- sides alternate (baseline, current) for {args.rounds} rounds; fastest of each; load average at the end "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "",
        "| stage | baseline s | current s | current / baseline | same kept documents |",
        "|---|---|---|---|---|",
    ]
    for stage, base, current, same in rows:
        lines.append(f"| {stage} | {base:.1f} | {current:.1f} | {current / base:.3f} | {'yes' if same else 'NO'} |")
    lines.append(f"| **whole chain** | {total_base:.1f} | {total_current:.1f} | {total_current / total_base:.3f} | |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.results:
        Path(args.results).write_text(report)


if __name__ == "__main__":
    main()
