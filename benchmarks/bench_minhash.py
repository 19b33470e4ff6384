"""Benchmark ``nordpipe dedup docs`` side by side with datatrove's four MinHash stages.

    .venv/bin/python benchmarks/bench_minhash.py            # 100,000 docs vs datatrove + 1,000,000-doc scale run
    .venv/bin/python benchmarks/bench_minhash.py --quick    # 5,000 docs vs datatrove + 20,000-doc scale run

Both tools get the same input (standardized jsonl.gz files), the same shingles (word 5-grams)
and the same LSH layout (14 bands x 8 rows, datatrove's default), the same number of tasks
(one per input file) and the same number of local workers (``--workers``, default 2 = the
cores of this machine). datatrove runs MinhashDedupSignature (Danish word tokenizer),
MinhashDedupBuckets (one task per band), MinhashDedupCluster and MinhashDedupFilter (with an
exclusion writer so its removed documents can be compared). nordpipe runs the CLI without the
Jaccard check (datatrove has none), plus a second run with ``--jaccard-check`` for reference.

Every run is its own process tree: wall time, peak RSS of the
largest single process (GNU time ``%M``) and peak summed RSS of the whole tree (sampled from /proc
every 0.2 s). Agreement: Jaccard of the removed-id sets, and Jaccard of the sets of documents
each tool found to be in a duplicate cluster (removed ones plus survivors), which does not
depend on which member each tool keeps; recall of both against the planted pairs.

The corpus: documents of ~2.2 KB built from the 564 real Danish sentences of UD Danish-DDT
(``../shared/data/ud``; a synthetic pseudo-Danish vocabulary when it is absent), with every
word position drawn so documents do not share long passages by chance; 10% of documents are
edited copies of earlier ones (a random share of their words replaced, J from ~0.3 to 1.0),
spread over other files. Seeded; cached under ``--work``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SHARED_UD = REPO.parent / "shared" / "data" / "ud" / "da_ddt-ud-dev.conllu"
BANDS, ROWS, NGRAM = 14, 8, 5
COPY_SHARE = 0.10


# --------------------------------------------------------------------------------------------
# Corpus


def _sentences() -> list[list[str]]:
    if SHARED_UD.exists():
        found = [
            line[len("# text = ") :].split()
            for line in SHARED_UD.read_text(encoding="utf-8").splitlines()
            if line.startswith("# text = ")
        ]
        return [s for s in found if len(s) >= 4]
    rng = random.Random(7)
    syllables = ["ka", "de", "ri", "so", "læ", "nø", "bå", "sk", "tr", "ve", "ling", "hed", "ende", "st"]
    vocab = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(8000)]
    return [[rng.choice(vocab) for _ in range(rng.randint(6, 25))] for _ in range(2000)]


def _document(rng: random.Random, sentences: list[list[str]], words: list[str]) -> str:
    """~2.2 KB: sentence shapes from real Danish, each word drawn from the corpus vocabulary
    with the sentence's own word as likely choice, so that real n-grams recur (as in web text)
    but whole documents do not."""
    parts, size = [], 0
    while size < 2200:
        sentence = rng.choice(sentences)
        out = [w if rng.random() < 0.7 else rng.choice(words) for w in sentence]
        text = " ".join(out)
        parts.append(text)
        size += len(text) + 1
    return " ".join(parts)


def _edit(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    share = rng.choice([0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12])
    for _ in range(round(len(words) * share)):
        words[rng.randrange(len(words))] = f"ændret{rng.randrange(10**6)}"
    return " ".join(words)


def _write_file(args: tuple[Path, int, int, int, int]) -> list[tuple[str, str]]:
    folder, file_index, files, docs, seed = args
    sentences = _sentences()
    words = sorted({w for s in sentences for w in s})

    # Every document's text is a function of its global number, so copies can be regenerated.
    def original(number: int) -> str:
        return _document(random.Random(seed * 1_000_003 + number), sentences, words)

    pairs = []
    with gzip.open(folder / f"{file_index:04d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as handle:
        for number in range(file_index, docs, files):
            rng = random.Random(seed * 7919 + number)
            if number > 100 and rng.random() < COPY_SHARE:
                source = rng.randrange(number)
                text = _edit(rng, original(source))
                pairs.append((f"doc{number}", f"doc{source}"))
            else:
                text = original(number)
            year = 2000 + number % 24
            handle.write(
                json.dumps(
                    {
                        "id": f"doc{number}",
                        "text": text,
                        "source": "bench",
                        "added": "2024-06-01",
                        "created": f"{year}-01-01, {year}-12-31",
                        "metadata": {},
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return pairs


def build_corpus(work: Path, docs: int, files: int, seed: int = 6) -> Path:
    folder = work / f"corpus-{docs}"
    if (folder / "pairs.json").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "documents").mkdir(parents=True)
    started = time.time()
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_write_file, [(folder / "documents", i, files, docs, seed) for i in range(files)]))
    pairs = [p for r in results for p in r]
    (folder / "pairs.json").write_text(json.dumps(pairs))
    print(
        f"corpus: {docs:,} docs in {files} files, {len(pairs):,} planted copies, {time.time() - started:.0f} s",
        flush=True,
    )
    return folder


# --------------------------------------------------------------------------------------------
# Measuring a process tree


def _tree_rss_kb(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(command: list[str], log: Path) -> dict[str, Any]:
    started = time.time()
    # GNU time as the direct child: wait4's ru_maxrss of a child that this (large) process forked
    # starts at this process's RSS at fork time; time's own child starts small.
    rss_file = log.with_suffix(".maxrss")
    command = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_rss_kb(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, _usage = os.wait4(process.pid, 0)
    done.set()
    sampler.join()
    seconds = time.time() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}); see {log}:\n{log.read_text()[-3000:]}")
    # CPU time from wait4 is left out: datatrove's pool workers are not reaped through it.
    return {
        "seconds": seconds,
        "peak_rss_mb": int(rss_file.read_text().split()[-1]) / 1024,
        "peak_tree_rss_mb": peak_tree / 1024,
    }


# --------------------------------------------------------------------------------------------
# datatrove's four stages (run in a child process: ``--datatrove CORPUS WORK``)


def run_datatrove(corpus: Path, work: Path, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.typeshelper import Languages

    config = MinhashConfig(
        n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, hash_config=HashConfig(precision=64)
    )
    files = len(list((corpus / "documents").glob("*.jsonl.gz")))
    documents = str(corpus / "documents")
    timings = {}

    def stage(name: str, pipeline: list[Any], tasks: int) -> None:
        started = time.time()
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(work / "logs" / name)
        ).run()
        timings[name] = time.time() - started

    stage(
        "signature",
        [JsonlReader(documents), MinhashDedupSignature(str(work / "sigs"), config=config, language=Languages.danish)],
        files,
    )
    stage("buckets", [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)], BANDS)
    stage(
        "cluster",
        [MinhashDedupCluster(str(work / "buckets"), str(work / "remove_ids"), config=config, save_cluster_id=True)],
        1,
    )
    stage(
        "filter",
        [
            JsonlReader(documents),
            MinhashDedupFilter(
                str(work / "remove_ids"), load_cluster_ids=True, exclusion_writer=JsonlWriter(str(work / "removed"))
            ),
            JsonlWriter(str(work / "output")),
        ],
        files,
    )
    (work / "timings.json").write_text(json.dumps(timings))


# --------------------------------------------------------------------------------------------
# Reading results


def _ids(folder: Path) -> set[str]:
    found = set()
    for path in folder.glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                found.add(json.loads(line)["id"])
    return found


def nordpipe_sets(out: Path) -> tuple[set[str], set[str]]:
    removed, clustered = set(), set()
    for sub in ("documents", "removed"):
        for path in (out / sub).glob("*.jsonl.gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    item = json.loads(line)
                    meta = item["metadata"].get("nordpipe", {})
                    if "minhash" in meta:
                        clustered.add(item["id"])
                    if meta.get("removed"):
                        removed.add(item["id"])
    return removed, clustered


def datatrove_sets(work: Path) -> tuple[set[str], set[str]]:
    removed, clusters = set(), set()
    for sub in ("removed", "output"):
        for path in (work / sub).glob("*.jsonl.gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    item = json.loads(line)
                    if sub == "removed":
                        removed.add(item["id"])
                    if item.get("metadata", {}).get("minhash_cluster_id", -1) != -1:
                        clusters.add(item["id"])
    return removed, clusters | removed


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


BINS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01))


def planted_pair_similarities(corpus: Path) -> list[tuple[str, str, float]]:
    """Planted (copy, original) pairs with their exact Jaccard similarity (word 5-grams)."""
    from nordpipe.minhash import MinhashConfig, MinhashHasher, exact_jaccard

    cache = corpus / "pairs-jaccard.json"
    if cache.exists():
        return [tuple(p) for p in json.loads(cache.read_text())]  # type: ignore[misc]
    pairs = json.loads((corpus / "pairs.json").read_text())
    wanted = {x for pair in pairs for x in pair}
    texts = {}
    for path in (corpus / "documents").glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                item = json.loads(line)
                if item["id"] in wanted:
                    texts[item["id"]] = item["text"]
    hasher = MinhashHasher(MinhashConfig(ngram=NGRAM))
    sets = {k: hasher.shingle_set(v) for k, v in texts.items()}
    found = [(a, b, exact_jaccard(sets[a], sets[b])) for a, b in pairs]
    cache.write_text(json.dumps(found))
    return found


def planted_detection(pairs: list[tuple[str, str, float]], clustered: set[str], removed: set[str]) -> dict[str, Any]:
    """Per similarity bin: share of planted pairs caught (both clustered, one removed)."""
    rates = {}
    for lo, hi in BINS:
        group = [p for p in pairs if lo <= p[2] < hi]
        caught = sum(a in clustered and b in clustered and (a in removed or b in removed) for a, b, _ in group)
        rates[f"J {lo:.1f}-{min(hi, 1.0):.1f}"] = f"{caught}/{len(group)}"
    similar = [p for p in pairs if p[2] >= 0.8]
    caught = sum(a in clustered and b in clustered and (a in removed or b in removed) for a, b, _ in similar)
    return {"recall_j_ge_0.8": caught / len(similar) if similar else 1.0, "caught_by_bin": rates}


# --------------------------------------------------------------------------------------------
# Main


def nordpipe_command(corpus: Path, out: Path, workers: int, extra: list[str]) -> list[str]:
    return [
        str(VENV_BIN / "nordpipe"),
        "dedup",
        "docs",
        str(corpus),
        str(out),
        "--bands",
        str(BANDS),
        "--rows",
        str(ROWS),
        "--ngram",
        str(NGRAM),
        "--workers",
        str(workers),
        "--keep-removed",
        "--force",
        "--json",
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the side-by-side run")
    parser.add_argument("--scale-docs", type=int, default=1_000_000, help="documents in the nordpipe-only scale run")
    parser.add_argument("--files", type=int, default=8, help="input files (= tasks) of the side-by-side run")
    parser.add_argument("--scale-files", type=int, default=32, help="input files of the scale run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5,000 docs side by side, 20,000 in the scale run")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "minhash")
    parser.add_argument("--datatrove", nargs=2, metavar=("CORPUS", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove:
        run_datatrove(Path(args.datatrove[0]), Path(args.datatrove[1]), args.workers)
        return
    if args.quick:
        args.docs, args.scale_docs, args.files, args.scale_files = 5_000, 20_000, 4, 4
    args.work.mkdir(parents=True, exist_ok=True)
    import datasketch
    import datatrove

    results: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
        "datatrove": datatrove.__version__ if hasattr(datatrove, "__version__") else "0.10.1",
        "datasketch": datasketch.__version__,
        "command": " ".join(sys.argv),
        "bands": BANDS,
        "rows": ROWS,
        "ngram": NGRAM,
        "workers": args.workers,
    }
    results["load_before"] = os.getloadavg()
    corpus = build_corpus(args.work, args.docs, args.files)
    pairs = planted_pair_similarities(corpus)
    size_mb = sum(p.stat().st_size for p in (corpus / "documents").glob("*")) / 1e6
    results["corpus"] = {"docs": args.docs, "files": args.files, "gz_mb": round(size_mb, 1)}

    ours_out = args.work / f"nordpipe-{args.docs}"
    ours = measure(nordpipe_command(corpus, ours_out, args.workers, []), args.work / "nordpipe.log")
    ours_removed, ours_clustered = nordpipe_sets(ours_out)
    ours.update(
        removed=len(ours_removed),
        clustered=len(ours_clustered),
        docs_per_s=args.docs / ours["seconds"],
        **planted_detection(pairs, ours_clustered, ours_removed),
    )
    results["nordpipe"] = ours
    print(f"nordpipe: {json.dumps(ours)}", flush=True)

    checked_out = args.work / f"nordpipe-check-{args.docs}"
    checked = measure(
        nordpipe_command(corpus, checked_out, args.workers, ["--jaccard-check", "--threshold", "0.8"]),
        args.work / "nordpipe-check.log",
    )
    checked_removed, checked_clustered = nordpipe_sets(checked_out)
    checked.update(
        removed=len(checked_removed),
        docs_per_s=args.docs / checked["seconds"],
        **planted_detection(pairs, checked_clustered, checked_removed),
    )
    results["nordpipe_jaccard_check"] = checked
    print(f"nordpipe --jaccard-check: {json.dumps(checked)}", flush=True)

    if not args.skip_datatrove:
        dt_work = args.work / f"datatrove-{args.docs}"
        shutil.rmtree(dt_work, ignore_errors=True)
        peer = measure(
            [sys.executable, __file__, "--datatrove", str(corpus), str(dt_work), "--workers", str(args.workers)],
            args.work / "datatrove.log",
        )
        dt_removed, dt_clustered = datatrove_sets(dt_work)
        peer.update(
            removed=len(dt_removed),
            clustered=len(dt_clustered),
            docs_per_s=args.docs / peer["seconds"],
            stages=json.loads((dt_work / "timings.json").read_text()),
            **planted_detection(pairs, dt_clustered, dt_removed),
        )
        results["datatrove"] = peer
        both = [p for p in pairs if p[2] >= 0.8]
        results["agreement"] = {
            "caught_j_ge_0.8_by_both": sum(
                a in ours_clustered and b in ours_clustered and a in dt_clustered and b in dt_clustered
                for a, b, _ in both
            ),
            "removed_jaccard": jaccard(ours_removed, dt_removed),
            "clustered_jaccard": jaccard(ours_clustered, dt_clustered),
            "removed_only_nordpipe": len(ours_removed - dt_removed),
            "removed_only_datatrove": len(dt_removed - ours_removed),
        }
        results["speedup_end_to_end"] = peer["seconds"] / ours["seconds"]
        print(f"datatrove: {json.dumps(peer)}", flush=True)
        print(
            f"agreement: {json.dumps(results['agreement'])}; nordpipe is {results['speedup_end_to_end']:.1f}x faster",
            flush=True,
        )

    if not args.skip_scale:
        scale_corpus = build_corpus(args.work, args.scale_docs, args.scale_files)
        scale_out = args.work / f"nordpipe-{args.scale_docs}"
        scale = measure(nordpipe_command(scale_corpus, scale_out, args.workers, []), args.work / "nordpipe-scale.log")
        stats = json.loads((scale_out / ".nordpipe" / "stats.json").read_text())
        scale.update(
            docs=args.scale_docs,
            docs_per_s=args.scale_docs / scale["seconds"],
            removed=stats["removed_total"],
            gz_mb=round(sum(p.stat().st_size for p in (scale_corpus / "documents").glob("*")) / 1e6, 1),
        )
        shutil.rmtree(scale_out / "removed", ignore_errors=True)
        results["scale"] = scale
        print(f"scale: {json.dumps(scale)}", flush=True)

    results["load_after"] = os.getloadavg()
    (args.work / f"results-{args.docs}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
