"""Benchmark of the downstream exports (issue 10): ``nordpipe export sentences`` and ``pairs``.

Run: ``.venv/bin/python benchmarks/bench_export.py`` (``--quick`` for a small run).

What it measures, side by side in one run:

1. Sentence splitting on real text (UD Danish/Swedish dev sentences from ../shared glued into
   5-sentence paragraphs): boundary F1 and speed of ``SentenceSplitter`` against spaCy's
   rule-based ``sentencizer`` (the installed peer), with the agreement of their outputs.
2. ``SentenceExport`` on a generated corpus (documents composed from template sentences, UD
   sentences when present, and boilerplate repeated across documents): documents/s, MB/s,
   peak memory of the export process; its dedup checked against an in-memory ``Counter``
   reference (agreement of the unique set and of every occurrence count).
3. ``PairExport`` on generated HTML pages: documents/s and the no-straddle check.

Generated data goes under ``benchmarks/work/export`` (git-ignored).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
SHARED_UD = REPO.parent / "shared" / "data" / "ud"
WORK = REPO / "benchmarks" / "work" / "export"

sys.path.insert(0, str(REPO / "tests"))  # the seeded corpus generator shared with the tests
from test_export import BOILERPLATE, make_document, make_sentence, ud_sentences  # noqa: E402

from nordpipe.export import SentenceSplitter, split_sentences  # noqa: E402


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build_corpus(root: Path, documents: int, files: int, seed: int = 1) -> tuple[int, int]:
    """Write ``documents`` standardized documents in ``files`` jsonl.gz files; (docs, text bytes)."""
    rng = random.Random(seed)
    real = ud_sentences()
    shutil.rmtree(root, ignore_errors=True)
    (root / "documents").mkdir(parents=True)
    text_bytes = 0
    per_file = documents // files
    for f in range(files):
        with gzip.open(root / "documents" / f"part-{f:04d}.jsonl.gz", "wb", compresslevel=1) as handle:
            for i in range(per_file):
                lang = rng.choice(["da", "nb", "sv"])
                doc = make_document(rng, f"doc-{f:04d}-{i:06d}", lang, real)
                # Longer documents (~2 KB, like the reference baseline's) from more template text.
                doc["text"] += "\n\n" + " ".join(make_sentence(rng, lang) for _ in range(rng.randint(8, 16)))
                text_bytes += len(doc["text"].encode())
                handle.write(json.dumps(doc, ensure_ascii=False).encode() + b"\n")
    return per_file * files, text_bytes


def run_cli(args: list[str]) -> tuple[float, float, dict]:
    """Run the real console script; (seconds, peak RSS MiB, stats). Peak RSS comes from GNU
    time (the largest of the process and its worker processes)."""
    exe = Path(sys.executable).parent / "nordpipe"
    rss_file = WORK / "rss.txt"
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if Path("/usr/bin/time").exists() else []
    start = time.perf_counter()
    result = subprocess.run([*timer, str(exe), *args, "--json"], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"nordpipe {' '.join(args)} failed:\n{result.stderr}")
    peak = float(rss_file.read_text().split()[-1]) / 1024 if timer else float("nan")
    return seconds, peak, json.loads(result.stdout)


def boundary_f1(split, paragraphs: list[list[str]]) -> tuple[float, list[list[str]]]:
    gold, pred, outputs = set(), set(), []
    for index, sentences in enumerate(paragraphs):
        offset = 0
        for sentence in sentences[:-1]:
            offset += len(sentence.replace(" ", ""))
            gold.add((index, offset))
        out = split(" ".join(sentences))
        outputs.append(out)
        offset = 0
        for sentence in out[:-1]:
            offset += len(sentence.replace(" ", ""))
            pred.add((index, offset))
    true = len(gold & pred)
    p, r = true / max(1, len(pred)), true / max(1, len(gold))
    return (2 * p * r / (p + r) if p + r else 0.0), outputs


def bench_splitter(repeat: int) -> list[str]:
    lines = []
    real = ud_sentences()
    if not real:
        return ["splitter: ../shared/data/ud not present, skipped"]
    import spacy

    for lang, sentences in sorted(real.items()):
        paragraphs = [sentences[i : i + 5] for i in range(0, len(sentences), 5)] * repeat
        ours_split = SentenceSplitter(lang).split
        nlp = spacy.blank(lang)
        nlp.add_pipe("sentencizer")

        def spacy_split(text: str, nlp=nlp) -> list[str]:
            return [s.text for s in nlp(text).sents]

        t = time.perf_counter()
        ours_f1, ours_out = boundary_f1(ours_split, paragraphs)
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        spacy_f1, spacy_out = boundary_f1(spacy_split, paragraphs)
        spacy_s = time.perf_counter() - t
        agree = sum(a == b for a, b in zip(ours_out, spacy_out, strict=True)) / len(paragraphs)
        chars = sum(len(" ".join(p)) for p in paragraphs)
        lines.append(
            f"| {lang} | {len(paragraphs):,} | {ours_f1:.3f} | {spacy_f1:.3f} | {chars / ours_s / 1e6:.2f} | "
            f"{chars / spacy_s / 1e6:.2f} | {spacy_s / ours_s:.1f}x | {agree:.1%} |"
        )
    header = [
        "| lang | paragraphs | F1 ours | F1 spaCy sentencizer | ours MB/s | spaCy MB/s | speed ratio (ours/spaCy) "
        "| paragraphs split identically |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return header + lines


def reference_counts(root: Path, min_chars: int, max_chars: int) -> Counter[str]:
    """Plain in-memory reference: split every document and count kept sentences."""
    counts: Counter[str] = Counter()
    for path in sorted((root / "documents").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                doc = json.loads(line)
                for sentence in split_sentences(doc["text"], doc["metadata"].get("language")):
                    if min_chars <= len(sentence) <= max_chars:
                        counts[sentence] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=200_000, help="documents in the generated corpus")
    parser.add_argument("--files", type=int, default=8, help="input files")
    parser.add_argument("--pages", type=int, default=100_000, help="HTML pages for the pairs export")
    parser.add_argument("--quick", action="store_true", help="small run (10,000 documents, 5,000 pages)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args()
    if args.quick:
        args.documents, args.pages = 10_000, 5_000

    print(f"# bench_export: {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} cores")
    print(f"versions: nordpipe {version('nordpipe')}, polars {version('polars')}, pyarrow {version('pyarrow')}, "
          f"spacy {version('spacy')}, datasets {version('datasets')}, python {platform.python_version()}")
    print(f"load average at start: {load_average()}\n")

    print("## 1. Sentence splitting on UD gold sentences (boundary F1, speed)")
    for line in bench_splitter(repeat=2 if args.quick else 10):
        print(line)
    print(f"\nload average: {load_average()}\n")

    corpus = WORK / "corpus"
    t = time.perf_counter()
    docs, text_bytes = build_corpus(corpus, args.documents, args.files)
    print(f"## 2. export sentences: {docs:,} documents, {text_bytes / 1e6:.1f} MB of text, {args.files} files "
          f"(generated in {time.perf_counter() - t:.0f}s)")
    print("| run | seconds | docs/s | MB/s | peak RSS MiB | train | validation | duplicates removed |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for label, extra in (("1 worker", []), ("2 workers", ["--workers", "2"])):
        out = WORK / f"sentences-{label.split()[0]}"
        seconds, rss, stats = run_cli(["export", "sentences", str(corpus), str(out), "--validation-count", "10000",
                                       *extra])
        results[label] = (out, stats)
        print(f"| {label} | {seconds:.1f} | {docs / seconds:,.0f} | {text_bytes / seconds / 1e6:.2f} | {rss:,.0f} | "
              f"{stats['splits']['train']:,} | {stats['splits']['validation']:,} | "
              f"{stats['removed'].get('sentence:duplicate', 0):,} |")
    out, stats = results["1 worker"]
    same = all(
        (results["1 worker"][0] / "data" / name).read_bytes() == (results["2 workers"][0] / "data" / name).read_bytes()
        for name in os.listdir(out / "data")
    )
    t = time.perf_counter()
    reference = reference_counts(corpus, 20, 1000)
    ref_s = time.perf_counter() - t
    exported = pl.read_parquet(out / "data" / "*.parquet")
    got = dict(zip(exported["text"], exported["occurrences"], strict=True))
    agree_set = set(got) == set(reference)
    agree_counts = sum(got.get(k) == v for k, v in reference.items()) / max(1, len(reference))
    print(f"\n1 vs 2 workers byte-identical: {same}")
    print(f"reference (in-memory Counter, {ref_s:.1f}s): {len(reference):,} unique sentences; export: "
          f"{exported.height:,}; same set: {agree_set}; occurrence counts equal: {agree_counts:.2%}")
    print(f"load average: {load_average()}\n")

    pages = WORK / "site"
    rng = random.Random(5)
    shutil.rmtree(pages, ignore_errors=True)
    (pages / "documents").mkdir(parents=True)
    sections = [f"sektion-{i}" for i in range(500)]
    with gzip.open(pages / "documents" / "pages.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as handle:
        for i in range(args.pages):
            lang = rng.choice(["da", "nb", "sv"])
            body = "".join(f"<p>{make_sentence(rng, lang)} <b>{rng.choice(BOILERPLATE[lang])}</b></p>"
                           for _ in range(rng.randint(2, 8)))
            record = {"id": f"page-{i:07d}", "text": f"<html><body><h1>Side {i}</h1>{body}<script>x()</script>"
                      "</body></html>", "source": "site", "added": "2024-05-01",
                      "created": "2020-01-01, 2024-01-01",
                      "metadata": {"title": f"Side {i} om {rng.choice(['affald', 'skat', 'skole', 'vej'])}",
                                   "url": f"https://www.kommune.dk/{rng.choice(sections)}/side-{i}"}}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"## 3. export pairs: {args.pages:,} HTML pages, grouped by URL section")
    seconds, rss, stats = run_cli(["export", "pairs", str(pages), str(WORK / "pairs"), "--anchor", "title",
                                   "--positive", "text", "--group-by", "url", "--group-depth", "1"])
    rows = pl.concat([
        pl.read_parquet(WORK / "pairs" / "data" / f"{s}-*.parquet").with_columns(split=pl.lit(s))
        for s in ("train", "test")
    ])
    straddling = rows.group_by("group").agg(pl.col("split").n_unique().alias("n")).filter(pl.col("n") > 1).height
    print(f"seconds {seconds:.1f}, {args.pages / seconds:,.0f} docs/s, peak RSS {rss:,.0f} MiB, "
          f"train {stats['splits']['train']:,}, test {stats['splits']['test']:,}, "
          f"groups train/test {stats['groups']['train']}/{stats['groups']['test']}, straddling groups {straddling}, "
          f"ir queries {stats['extra']['ir queries']:,}, corpus {stats['extra']['ir corpus']:,}")
    print(f"load average at end: {load_average()}")
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
