"""Benchmark ``nordpipe dedup lines`` side by side with dolma's Bloom-filter paragraph dedup and
pybloom-live, on the same generated corpus (>= 1 GB of text by default).

    .venv/bin/python benchmarks/bench_lines.py            # full run (~1.1 GB of text)
    .venv/bin/python benchmarks/bench_lines.py --quick    # ~60 MB, a couple of minutes

Every tool runs as its own process (CPU time and peak RSS from ``wait4``) on one core (nordpipe: 1 task,
1 worker; dolma: ``--processes 1``; pybloom-live: one Python loop), so throughput is per core.
nordpipe and dolma (``dedupe``, then ``mix``) take turns ``--repeat`` times (3; quick: 1) and
each side counts by its repeat with the least CPU time. Like with like: ``dolma dedupe`` only
marks duplicates (attribute files), so it is compared with nordpipe's hash + decide phases;
``dolma dedupe`` + ``dolma mix`` also write the documents, compared with nordpipe's whole run.
Settings are matched: no normalization, blank lines ignored, fpr 1e-6, filter sized for the
corpus' line count. Agreement: per-line verdicts of dolma (duplicate spans mapped to lines)
against pybloom-live, and per-document removed-line counts of nordpipe against pybloom-live.

dolma pins numpy<2 and tokenizers<=0.19 and cannot share nordpipe's environment (datatrove
needs numpy>=2): the benchmark uses a separate venv (``--dolma``, default
``benchmarks/work/dolma-venv/bin/dolma``; create it with
``python -m venv benchmarks/work/dolma-venv && benchmarks/work/dolma-venv/bin/pip install dolma==1.2.1``).

The corpus: documents of 8-30 lines; 70% of lines are random sentences over a 4,000-word
pseudo-Danish vocabulary (practically all unique), 25% come from 3,000 boilerplate lines
(Zipf-like popularity), 5% are blank. Seeded; cached in ``--work`` between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
FPR = 1e-6


# --------------------------------------------------------------------------------------------
# Corpus


def _vocabulary(rng: random.Random) -> list[str]:
    onsets = ["b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "sk", "st", "tr", "kr", "bl"]
    vowels = ["a", "e", "i", "o", "u", "y", "æ", "ø", "å", "ie", "ej"]
    codas = ["", "n", "r", "d", "t", "ll", "ng", "st", "ns", "rd", "lse", "ning", "hed", "else"]
    words = set()
    while len(words) < 4000:
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def _write_file(args: tuple[Path, int, int, int]) -> tuple[int, int, int]:
    path, seed, target_bytes, file_index = args
    rng = random.Random(seed)
    vocab = _vocabulary(random.Random(0))
    boiler_rng = random.Random(1)
    boilerplate = [" ".join(boiler_rng.choices(vocab, k=boiler_rng.randint(3, 12))).capitalize() for _ in range(3000)]
    weights = [1 / (i + 1) for i in range(len(boilerplate))]
    written = docs = lines_total = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
        while written < target_bytes:
            n = rng.randint(8, 30)
            kinds = rng.choices((0, 1, 2), weights=(70, 25, 5), k=n)
            n_boiler = kinds.count(1)
            boiler = iter(rng.choices(boilerplate, weights=weights, k=n_boiler))
            lines = []
            for kind in kinds:
                if kind == 0:
                    lines.append(" ".join(rng.choices(vocab, k=rng.randint(6, 20))).capitalize() + ".")
                elif kind == 1:
                    lines.append(next(boiler))
                else:
                    lines.append("")
            text = "\n".join(lines)
            record = {"id": f"f{file_index}-{docs}", "text": text, "source": "bench", "added": "2024-05-01",
                      "created": "2020-01-01, 2024-01-01", "metadata": {}}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += len(text.encode())
            docs += 1
            lines_total += n
    return written, docs, lines_total


def make_corpus(folder: Path, total_mb: int, files: int) -> dict[str, int]:
    marker = folder / "corpus.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("total_mb") == total_mb and info.get("files") == files:
            return info
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "documents").mkdir(parents=True)
    per_file = total_mb * 1_000_000 // files
    jobs = [(folder / "documents" / f"{i:04d}.jsonl.gz", 1000 + i, per_file, i) for i in range(files)]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_write_file, jobs))
    info = {"total_mb": total_mb, "files": files, "text_bytes": sum(r[0] for r in results),
            "documents": sum(r[1] for r in results), "lines": sum(r[2] for r in results),
            "compressed_bytes": sum(p.stat().st_size for p in (folder / "documents").iterdir())}
    marker.write_text(json.dumps(info))
    return info


# --------------------------------------------------------------------------------------------
# Measured runs


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(command: list[str], log: Path, env: dict[str, str] | None = None,
          markers: dict[str, Path] | None = None) -> dict[str, Any]:
    """Run one process: wall seconds, CPU seconds and peak RSS (MiB, from wait4), and the wall
    and CPU time at which each marker folder got its first file (phase ends)."""
    markers = dict(markers or {})
    seen: dict[str, tuple[float, float]] = {}
    started = time.time()
    with open(log, "w") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        while proc.poll() is None and markers:
            for name, folder in list(markers.items()):
                if folder.exists() and any(folder.iterdir()):
                    with contextlib.suppress(OSError):
                        seen[name] = (time.time() - started, _cpu_seconds(proc.pid))
                    del markers[name]
            time.sleep(0.02)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    if status != 0:
        raise SystemExit(f"{command[0]} failed ({status}); see {log}")
    cpu = usage.ru_utime + usage.ru_stime
    for name in markers:  # the process ended before the poll saw the marker
        seen.setdefault(name, (wall, cpu))
    return {"wall": wall, "cpu": cpu, "peak_mib": usage.ru_maxrss / 1024, "marks": seen}


def run_nordpipe(corpus: Path, work: Path, lines: int, name: str, expected_lines: int) -> dict[str, Any]:
    out, state = work / f"{name}-out", work / f"{name}-state"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    phases = {"hash": out / ".nordpipe/lines/logs-signature/completions",
              "decide": out / ".nordpipe/lines/logs-decide/completions",
              "rewrite": out / ".nordpipe/tasks"}
    result = timed([str(VENV_BIN / "nordpipe"), "dedup", "lines", str(corpus), str(out), "--state", str(state),
                    "--tasks", "1", "--workers", "1", "--expected-lines", str(expected_lines), "--fpr", str(FPR),
                    "--exact-whitespace", "--min-line-chars", "1", "--keep-removed", "--json"], work / f"{name}.log",
                   markers=phases)
    stats = json.loads((out / ".nordpipe" / "stats.json").read_text())
    marks = result["marks"]
    # CPU seconds per phase (phase 1 includes start-up; the rest after "rewrite" is the commit).
    result["phases"] = {"hash": marks["hash"][1], "decide": marks["decide"][1] - marks["hash"][1],
                        "rewrite": marks["rewrite"][1] - marks["decide"][1]}
    result["removed"] = stats["line_dedup"]["lines_removed"]
    result["filter_bytes"] = stats["line_dedup"]["filter_bytes"]
    result["summary"] = stats["line_dedup"]
    result["out"] = str(out)
    return result


def run_dolma(dolma: Path, corpus: Path, work: Path, lines: int) -> dict[str, Any]:
    folder = work / "dolma"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "documents").mkdir(parents=True)
    for path in sorted((corpus / "documents").iterdir()):
        os.link(path, folder / "documents" / path.name)
    result = timed([str(dolma), "dedupe", "--documents", str(folder / "documents" / "*.jsonl.gz"),
                    "--dedupe.name", "dups", "--dedupe.paragraphs.attribute_name", "bff_dup", "--dedupe.skip_empty",
                    "--bloom_filter.file", str(folder / "filter.bin"), "--no-bloom_filter.read_only",
                    "--bloom_filter.estimated_doc_count", str(lines),
                    "--bloom_filter.desired_false_positive_rate", str(FPR), "--processes", "1"],
                   work / "dolma.log", env={"NLTK_DATA": str(work / "nltk-none")})
    result["filter_bytes"] = (folder / "filter.bin").stat().st_size
    result["attributes"] = str(folder / "attributes" / "dups")
    return result


def run_dolma_mix(dolma: Path, work: Path) -> dict[str, Any]:
    """dolma's second step: write the documents without the duplicate spans (like our phase 3)."""
    folder = work / "dolma"
    shutil.rmtree(folder / "mixed", ignore_errors=True)
    config = {"streams": [{"name": "bench", "documents": [str(folder / "documents" / "*.jsonl.gz")],
                           "attributes": ["dups"], "output": {"path": str(folder / "mixed"), "max_size_in_bytes": 10**9},
                           "span_replacement": [{"span": "$.attributes.bff_dup", "min_score": 0.5, "replacement": ""}]}],
              "processes": 1}
    (folder / "mix.json").write_text(json.dumps(config))
    result = timed([str(dolma), "-c", str(folder / "mix.json"), "mix"], work / "dolma-mix.log",
                   env={"NLTK_DATA": str(work / "nltk-none")})
    result["filter_bytes"] = 0
    return result


def run_baseline(work: Path) -> dict[str, Any]:
    """nordpipe's fixed memory: the same command on 20 documents with a tiny filter."""
    tiny = work / "tiny" / "documents"
    tiny.mkdir(parents=True, exist_ok=True)
    with gzip.open(tiny / "0000.jsonl.gz", "wt") as handle:
        for i in range(20):
            handle.write(json.dumps({"id": str(i), "text": f"Linje {i}\nFælles linje", "source": "bench",
                                     "added": "2024-05-01", "created": "2020-01-01, 2024-01-01", "metadata": {}}) + "\n")
    return run_nordpipe(tiny.parent, work, 40, "baseline", 1000)


def pybloom_worker(corpus: str, lines: int, flags_path: str) -> None:
    """The pybloom-live peer: one Python loop over the corpus in file and document order."""
    import orjson
    from pybloom_live import BloomFilter

    bloom = BloomFilter(capacity=lines, error_rate=FPR)
    flags = bytearray()
    with open(flags_path + ".docs", "w") as docs_out:
        for path in sorted(Path(corpus, "documents").iterdir()):
            with gzip.open(path, "rb") as handle:
                for raw in handle:
                    doc = orjson.loads(raw)
                    removed = 0
                    for line in doc["text"].split("\n"):
                        dup = bool(line) and bloom.add(line)
                        flags.append(dup)
                        removed += dup
                    docs_out.write(f"{doc['id']}\t{removed}\n")
    Path(flags_path).write_bytes(bytes(flags))
    print(json.dumps({"filter_bytes": bloom.num_bits // 8}))


def run_pybloom(corpus: Path, work: Path, lines: int) -> dict[str, Any]:
    flags = work / "pybloom.flags"
    log = work / "pybloom.log"
    result = timed([sys.executable, __file__, "--pybloom-worker", str(corpus), str(lines), str(flags)], log)
    result["filter_bytes"] = json.loads(log.read_text().splitlines()[0])["filter_bytes"]
    result["flags"] = str(flags)
    result["removed"] = sum(Path(flags).read_bytes())
    return result


# --------------------------------------------------------------------------------------------
# Agreement


def dolma_flags(corpus: Path, attributes: str) -> tuple[bytes, int]:
    """dolma's duplicate paragraph spans mapped to per-line flags (corpus order)."""
    flags = bytearray()
    unmatched = 0
    for path in sorted((corpus / "documents").iterdir()):
        with gzip.open(path, "rt", encoding="utf-8") as docs, gzip.open(Path(attributes) / path.name, "rt") as attrs:
            for doc_line, attr_line in zip(docs, attrs, strict=True):
                text = json.loads(doc_line)["text"]
                spans = json.loads(attr_line)["attributes"].get("bff_dup") or []
                lines = text.split("\n")
                starts, pos = {}, 0
                for i, line in enumerate(lines):
                    starts[pos] = i
                    pos += len(line) + 1
                doc_flags = [0] * len(lines)
                for start, _end, _score in spans:
                    if start in starts:
                        doc_flags[starts[start]] = 1
                    else:
                        unmatched += 1
                flags.extend(doc_flags)
    return bytes(flags), unmatched


def nordpipe_doc_counts(out: str) -> dict[str, int]:
    from nordpipe.documents import decode_record

    counts: dict[str, int] = {}
    for kind in ("documents", "removed"):
        folder = Path(out) / kind
        for path in sorted(folder.glob("*.jsonl.gz")) if folder.exists() else []:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    doc = decode_record(json.loads(line))  # metadata is a JSON string on disk
                    counts[doc["id"]] = (doc["metadata"].get("nordpipe") or {}).get("line_dedup", {}).get("lines_removed", 0)
    return counts


def agreement(corpus: Path, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    ref = Path(results["pybloom"]["flags"]).read_bytes() if "pybloom" in results else None
    if ref is not None and "dolma" in results:
        flags, unmatched = dolma_flags(corpus, results["dolma"]["attributes"])
        same = sum(a == b for a, b in zip(flags, ref, strict=True))
        report["dolma_vs_pybloom_lines_equal"] = same / len(ref)
        report["dolma_vs_pybloom_lines_differing"] = len(ref) - same
        report["dolma_unmatched_spans"] = unmatched
    if ref is not None and "nordpipe" in results:
        expected = dict(line.split("\t") for line in Path(results["pybloom"]["flags"] + ".docs").read_text().splitlines())
        ours = nordpipe_doc_counts(results["nordpipe"]["out"])
        equal = sum(int(v) == ours.get(k, -1) for k, v in expected.items())
        report["nordpipe_vs_pybloom_docs_equal_counts"] = equal / len(expected)
        report["nordpipe_vs_pybloom_docs_differing"] = len(expected) - equal
    return report


# --------------------------------------------------------------------------------------------


def versions(dolma: Path | None) -> dict[str, str]:
    import importlib.metadata as md

    found = {p: md.version(p) for p in ("nordpipe", "datatrove", "numpy", "pybloom-live", "xxhash")}
    if dolma and dolma.exists():
        out = subprocess.run([str(dolma.parent / "python"), "-c", "import importlib.metadata as m; print(m.version('dolma'))"],
                             capture_output=True, text=True)
        found["dolma"] = out.stdout.strip() or "?"
    return found


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--pybloom-worker":
        pybloom_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~60 MB corpus instead of ~1.1 GB")
    parser.add_argument("--size-mb", type=int, help="text size of the corpus in MB [1100, quick: 60]")
    parser.add_argument("--files", type=int, default=10, help="input files [10]")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "lines")
    parser.add_argument("--dolma", type=Path, default=REPO / "benchmarks" / "work" / "dolma-venv" / "bin" / "dolma")
    parser.add_argument("--skip", action="append", default=[], choices=["dolma", "pybloom", "big-filter"],
                        help="leave a run out (repeatable)")
    parser.add_argument("--repeat", type=int, help="interleaved runs of nordpipe and dolma; the least CPU counts [3, quick: 1]")
    parser.add_argument("--results", type=Path, help="append a markdown report to this file")
    args = parser.parse_args()
    size = args.size_mb or (60 if args.quick else 1100)
    work = args.work / f"{size}mb"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    corpus = work / "corpus"
    info = make_corpus(corpus, size, args.files)
    print(f"corpus: {info['text_bytes'] / 1e6:.0f} MB text, {info['documents']:,} docs, {info['lines']:,} lines, "
          f"{info['compressed_bytes'] / 1e6:.0f} MB gzip ({time.time() - t0:.0f} s)", flush=True)
    lines, mb = info["lines"], info["text_bytes"] / 1e6
    load_before = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    use_dolma = "dolma" not in args.skip and args.dolma.exists()
    if "dolma" not in args.skip and not use_dolma:
        print(f"dolma not found at {args.dolma}; skipped", flush=True)
    # nordpipe and dolma take turns, `repeats` times; each side is reported by its repeat with the
    # least CPU time (on a shared machine, interference from other processes only adds CPU time).
    repeats = args.repeat or (1 if args.quick else 3)
    runs: dict[str, list[dict[str, Any]]] = {"nordpipe": [], "dolma": [], "dolma dedupe+mix": []}
    for repeat in range(repeats):
        runs["nordpipe"].append(run_nordpipe(corpus, work, lines, "nordpipe", lines))
        print(f"nordpipe done ({repeat + 1}/{repeats})", flush=True)
        if use_dolma:
            dedupe = run_dolma(args.dolma, corpus, work, lines)
            mix = run_dolma_mix(args.dolma, work)
            runs["dolma"].append(dedupe)
            runs["dolma dedupe+mix"].append({
                "wall": dedupe["wall"] + mix["wall"], "cpu": dedupe["cpu"] + mix["cpu"],
                "peak_mib": max(dedupe["peak_mib"], mix["peak_mib"]), "filter_bytes": dedupe["filter_bytes"],
            })
            print(f"dolma done ({repeat + 1}/{repeats})", flush=True)
    for name, tries in runs.items():
        if tries:
            results[name] = min(tries, key=lambda r: r["cpu"])
    if "pybloom" not in args.skip:
        results["pybloom"] = run_pybloom(corpus, work, lines)
        print("pybloom done", flush=True)
    if "big-filter" not in args.skip:
        # The same corpus with a filter sized for 10x the lines: peak memory should not follow.
        results["nordpipe-10x-filter"] = run_nordpipe(corpus, work, lines, "nordpipe10x", lines * 10)
    baseline = run_baseline(work)
    load_after = os.getloadavg()
    agree = agreement(corpus, results)

    rows = []
    for name, r in results.items():
        removed = r.get("removed")
        rows.append(
            f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {lines / r['wall']:,.0f} | {mb / r['wall']:.1f} | "
            f"{lines / r['cpu']:,.0f} | {mb / r['cpu']:.1f} | {r['peak_mib']:.0f} | {r['filter_bytes'] / 2**20:.1f} | "
            f"{removed if removed is not None else 'n/a'} |"
        )
    ours, ratios = results["nordpipe"], []
    decide_cpu = min(r["phases"]["hash"] + r["phases"]["decide"] for r in runs["nordpipe"])
    cpu_lists = {name: [round(r["cpu"], 1) for r in tries] for name, tries in runs.items() if tries}
    cpu_lists["nordpipe hash+decide"] = [round(r["phases"]["hash"] + r["phases"]["decide"], 1) for r in runs["nordpipe"]]
    ratios.append(f"{repeats} interleaved repeat(s); CPU seconds of each: {json.dumps(cpu_lists)}; every figure below "
                  "uses each side's repeat with the least CPU time")
    if "dolma" in results:
        # Like with like: `dolma dedupe` reads every document, hashes its paragraphs, checks and
        # updates the filter and writes attribute files (duplicate spans) and the filter; it
        # writes no documents. nordpipe's phases 1+2 (start-up included) read every document,
        # hash its lines, decide first occurrences, write verdict bits and the filter parts.
        dolma_cpu = results["dolma"]["cpu"]
        ratios.append(f"**deciding only** (nordpipe phases hash + decide, {decide_cpu:.1f} CPU s, vs `dolma dedupe`, "
                      f"{dolma_cpu:.1f} CPU s; both write only verdicts, no documents): {lines / decide_cpu:,.0f} vs "
                      f"{lines / dolma_cpu:,.0f} lines per CPU-second, {mb / decide_cpu:.1f} vs {mb / dolma_cpu:.1f} MB per "
                      f"CPU-second: **x{dolma_cpu / decide_cpu:.2f}**")
    if "dolma dedupe+mix" in results:
        mix_cpu = results["dolma dedupe+mix"]["cpu"]
        ratios.append(f"**end to end** (nordpipe all phases, {ours['cpu']:.1f} CPU s, vs `dolma dedupe` + `dolma mix`, "
                      f"{mix_cpu:.1f} CPU s; both also write the deduplicated documents, gzip): {lines / ours['cpu']:,.0f} vs "
                      f"{lines / mix_cpu:,.0f} lines per CPU-second, {mb / ours['cpu']:.1f} vs {mb / mix_cpu:.1f} MB per "
                      f"CPU-second: **x{mix_cpu / ours['cpu']:.2f}**")
    for peer in ("dolma", "dolma dedupe+mix", "pybloom"):
        if peer in results:
            ratios.append(f"nordpipe / {peer}: wall throughput x{results[peer]['wall'] / ours['wall']:.2f}, "
                          f"CPU throughput x{results[peer]['cpu'] / ours['cpu']:.2f}, "
                          f"peak memory x{ours['peak_mib'] / results[peer]['peak_mib']:.2f}")
    for name in ("nordpipe", "nordpipe-10x-filter"):
        if name in results:
            extra = results[name]["peak_mib"] - baseline["peak_mib"]
            ratios.append(f"{name}: peak RSS {results[name]['peak_mib']:.0f} MiB = fixed {baseline['peak_mib']:.0f} MiB "
                          f"(same command on 20 documents, tiny filter) + {extra:.0f} MiB; filter "
                          f"{results[name]['filter_bytes'] / 2**20:.1f} MiB, held one part at a time (<= 4 MiB packed, "
                          f"<= 32 MiB unpacked)")
    phases = ", ".join(f"{k} {v:.1f} CPU s" for k, v in ours["phases"].items())
    decide_mb = mb / decide_cpu
    command = " ".join([".venv/bin/python", "benchmarks/bench_lines.py", *sys.argv[1:]])
    report = "\n".join([
        f"### {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} — `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, shared; load average before "
        f"{load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}.",
        f"Versions: {json.dumps(versions(args.dolma if 'dolma' in results else None))}",
        f"Corpus: {mb:,.0f} MB of text, {info['documents']:,} documents, {lines:,} lines, {args.files} files "
        f"({info['compressed_bytes'] / 1e6:.0f} MB jsonl.gz). Filter sized for {lines:,} lines at fpr {FPR}.",
        "",
        "| run | wall s | CPU s | lines/s (wall) | MB/s (wall) | lines per CPU-second | MB per CPU-second | peak RSS MiB | filter MiB | lines removed |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *[f"- {r}" for r in ratios],
        f"- nordpipe phases: {phases} (hash includes start-up: {baseline['phases']['hash']:.1f} CPU s on 20 documents); "
        f"hash + decide: {decide_mb:.1f} MB per CPU-second.",
        f"- Agreement: {json.dumps(agree)}",
        "",
    ])
    print(report)
    if args.results:
        with open(args.results, "a") as handle:
            handle.write(report + "\n")


if __name__ == "__main__":
    main()
