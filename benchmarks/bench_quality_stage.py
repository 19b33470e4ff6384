"""Benchmark of the whole ``nordpipe filter quality`` stage on realistic text (issue 20), before and after.

    .venv/bin/python benchmarks/bench_quality_stage.py --results benchmarks/results/quality_stage.md
    .venv/bin/python benchmarks/bench_quality_stage.py --docs 2000      # a quick try

Corpus (seeded, built here, never stored): documents composed from the pool of every real
sentence in ``../shared/data`` -- UD Danish-DDT dev, the DDT NER train-10k and dev files
(detokenized), UD Swedish-Talbanken dev, NorNE Bokmål and Nynorsk dev -- each document one
language, 3-30 distinct sentences of that language's pool (``random.sample``: a document never
repeats a sentence) in paragraphs of 1-4 sentences; ~15% of the documents are the generated
junk of ``tests/prose_corpus.py`` (menus, cookie banners, spam, lorem ipsum, code, numbers,
repeated lines, boilerplate pages, template shop pages) in the same languages, so that the
filters have something to remove. Written as one ``.jsonl.gz`` dataset of standardized records
per worker file (``--files``).

Measured, each side in its own process (so "before" imports main's code, ``--before-src``):

- filters alone: the three quality filters (``quality_steps()``) on the texts in memory, the
  language given (no language id, no reading, no writing), process CPU time -> docs/s per core.
- whole stage: the stage's steps as ``run_quality`` builds them (``DocumentReader``,
  ``LanguageIdentifier(languages=da,nb,nn,sv,en)``, the three filters, ``DocumentWriter(keep_removed)``)
  in one child process: its CPU time -> docs/s per core (the CLI's executor runs tasks in forked
  grandchildren whose CPU time the benchmark cannot read; executor start-up is not included).
  ``nordpipe filter quality IN OUT --languages da,nb,nn,sv,en --keep-removed --workers 1`` then
  runs once per side to check that the CLI writes the same verdicts. Sides alternate (before, after, before, after, ...; ``--repeats``) so they
  see the same machine load; the best of the repeats is reported and the load average beside it.
- per document and per process: the whole stage also runs on the corpus's first quarter in its
  own process; the difference is the cost of three quarters of the documents, so the per-document
  cost and what a process pays once (imports, lingua's trigram models, its 1-5-gram models the
  first time a text of < 120 letters reaches it, py3langid's model the first time a text with
  "ð" does) are reported apart. A task of 20,000 documents pays the start once; a real task of a
  whole file pays it once too, over more documents.

Agreement: per document id, kept or removed and the removal reason, between the two sides'
outputs (``documents/`` and ``removed/``), and the language label of each document against the
true language of its sentences.
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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from prose_corpus import (  # noqa: E402
    LANGUAGE_SOURCES,
    conll_tokens_stream,
    conllu_stream,
    content_words,
    junk_documents,
)

LANGUAGES_KEPT = "da,nb,nn,sv,en"
POOL_SOURCES = {**LANGUAGE_SOURCES, "da": (*LANGUAGE_SOURCES["da"], "ner/da_ddt-ud-ner-dev.conll")}


def sentence_pool(shared: Path) -> dict[str, list[str]]:
    """Every distinct real sentence per language (order kept, duplicates dropped)."""
    pool: dict[str, list[str]] = {}
    for language, names in POOL_SOURCES.items():
        sentences: list[str] = []
        for name in names:
            path = shared / "data" / name
            stream = conllu_stream(path) if name.endswith(".conllu") else conll_tokens_stream(path)
            sentences += (s for s, _, _ in stream if s)
        pool[language] = list(dict.fromkeys(sentences))
    return pool


def build_corpus(shared: Path, count: int, seed: int = 20, junk_share: float = 0.15) -> list[tuple[str, str]]:
    """``count`` (language, text) documents: real-sentence prose and ~``junk_share`` junk."""
    rng = random.Random(seed)
    pool = sentence_pool(shared)
    languages = sorted(pool)
    junk: list[tuple[str, str]] = []
    for language in languages:
        kinds = junk_documents(random.Random(f"{seed}-{language}"), per_kind=12, language=language,
                               words=content_words(pool[language]))
        junk += [(language, text) for texts in kinds.values() for text in texts]
    docs: list[tuple[str, str]] = []
    for _ in range(count):
        if rng.random() < junk_share:
            docs.append(rng.choice(junk))
            continue
        language = rng.choice(languages)
        sentences = rng.sample(pool[language], rng.randint(3, 30))
        paragraphs, i = [], 0
        while i < len(sentences):
            k = rng.randint(1, 4)
            paragraphs.append(" ".join(sentences[i : i + k]))
            i += k
        docs.append((language, "\n\n".join(paragraphs)))
    return docs


def write_input(docs: list[tuple[str, str]], folder: Path, files: int = 1) -> None:
    """The documents as standardized records in ``files`` gzip jsonl files of one dataset."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "documents").mkdir(parents=True)
    handles = [gzip.open(folder / "documents" / f"part-{i:02d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1)
               for i in range(files)]
    for i, (language, text) in enumerate(docs):
        record = {"id": f"d{i}", "text": text, "source": "bench", "added": "2026-12-07",
                  "created": "2020-01-01, 2026-12-01", "metadata": {"true_language": language}}
        handles[i % files].write(json.dumps(record, ensure_ascii=False) + "\n")
    for handle in handles:
        handle.close()


# --------------------------------------------------------------------------------------------
# Sides, each run in a child process with its own PYTHONPATH

FILTERS_CHILD = r"""
import json, sys, time
from datatrove.data import Document
from nordpipe.quality import quality_steps
import nordpipe
docs = json.load(open(sys.argv[1]))
def run():
    stream = iter([Document(text=t, id=str(i), metadata={"nordpipe": {"language": lang}}) for i, (lang, t) in enumerate(docs)])
    for step in quality_steps():
        stream = step.run(stream)
    return sum(1 for _ in stream)
run()  # warm up (token tables, settings)
start = time.process_time()
run()
print(json.dumps({"cpu": time.process_time() - start, "module": nordpipe.__file__}))
"""


def run_filters(src: Path, docs_json: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", FILTERS_CHILD, str(docs_json)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


STAGE_CHILD = r"""
import json, resource, shutil, sys, time
from nordpipe.langid import LanguageIdentifier
from nordpipe.quality import load_settings, quality_steps
from nordpipe.steps import DocumentReader, DocumentWriter
inp, out, languages = sys.argv[1:4]
shutil.rmtree(out, ignore_errors=True)
start_wall, start = time.perf_counter(), time.process_time()
loaded = load_settings()
steps = [DocumentReader(inp), LanguageIdentifier(languages=languages.split(","), settings=loaded), *quality_steps(loaded),
         DocumentWriter(out, keep_removed=True)]
data = None
for step in steps:
    data = step.run(data, 0, 1)
for _ in data:
    pass
print(json.dumps({"cpu": time.process_time() - start, "wall": time.perf_counter() - start_wall,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_stage(src: Path, inp: Path, out: Path) -> dict[str, float]:
    """The stage's steps as ``run_quality`` builds them (reader, language id with ``--languages``,
    the three filters, writer with ``--keep-removed``) in one child process with ``src`` first on
    the path: its own CPU seconds (the CLI's executor runs tasks in forked grandchildren, whose
    CPU time a parent cannot read reliably), wall seconds and peak memory."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run([sys.executable, "-c", STAGE_CHILD, str(inp), str(out), LANGUAGES_KEPT], env=env, check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cli(src: Path, inp: Path, out: Path) -> float:
    """``nordpipe filter quality`` itself (wall seconds), to check the CLI gives the same verdicts."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "nordpipe"), "filter", "quality", str(inp), str(out), "--languages",
                    LANGUAGES_KEPT, "--keep-removed", "--workers", "1", "--max-removed-share", "1"], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def verdicts(out: Path) -> dict[str, tuple[str | None, str | None]]:
    """id -> (removal reason or None, language label) from a stage's output."""
    from nordpipe.documents import decode_record

    result: dict[str, tuple[str | None, str | None]] = {}
    for kind in ("documents", "removed"):
        for path in sorted((out / kind).glob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    record = decode_record(json.loads(line))
                    meta = record["metadata"].get("nordpipe") or {}
                    result[record["id"]] = (meta.get("removed"), meta.get("language"))
    return result


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before-src", type=Path, default=Path("/work/main/src"),
                        help="the 'before' code's src folder (default: the main checkout)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_quality_stage"))
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    sides = {"before": args.before_src.resolve(), "after": (REPO / "src").resolve()}
    commits = {name: subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip() for name, src in sides.items()}

    docs = build_corpus(args.shared, args.docs)
    args.work.mkdir(parents=True, exist_ok=True)
    inp = args.work / "input"
    write_input(docs, inp)
    # The first quarter alone: the difference to the whole corpus is the per-document cost without
    # what each process pays once (imports, lingua's and py3langid's model loading).
    quarter = args.work / "input-quarter"
    write_input(docs[: len(docs) // 4], quarter)
    docs_json = args.work / "docs.json"
    docs_json.write_text(json.dumps(docs, ensure_ascii=False))
    size = sum(len(t.encode()) for _, t in docs)
    load_before = load()

    filters: dict[str, list[float]] = {s: [] for s in sides}
    stage: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    stage_quarter: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    loads: list[str] = []
    for _ in range(args.repeats):
        for name, src in sides.items():
            filters[name].append(run_filters(src, docs_json)["cpu"])
            stage[name].append(run_stage(src, inp, args.work / f"out-{name}"))
            stage_quarter[name].append(run_stage(src, quarter, args.work / f"out-quarter-{name}"))
            loads.append(load())
    cli_wall = {name: run_cli(src, inp, args.work / f"cli-{name}") for name, src in sides.items()}
    got = {name: verdicts(args.work / f"out-{name}") for name in sides}
    cli_same = {name: verdicts(args.work / f"cli-{name}") == got[name] for name in sides}
    truth = {f"d{i}": lang for i, (lang, _) in enumerate(docs)}
    same = sum(1 for i in truth if got["before"][i][0] == got["after"][i][0])
    same_keep = sum(1 for i in truth if (got["before"][i][0] is None) == (got["after"][i][0] is None))
    same_label = sum(1 for i in truth if got["before"][i][1] == got["after"][i][1])
    accuracy = {}
    for name in sides:
        per: dict[str, list[int]] = {}
        for i, lang in truth.items():
            hit = per.setdefault(lang, [0, 0])
            hit[0] += got[name][i][1] == lang
            hit[1] += 1
        accuracy[name] = per
    differ = [(i, got["before"][i], got["after"][i]) for i in truth if got["before"][i][0] != got["after"][i][0]]

    n = len(docs)
    lines = [
        "# `filter quality` stage on realistic text: before and after (issue 20)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"CPython {platform.python_version()}, shared with other users",
        f"- command: `python benchmarks/bench_quality_stage.py {' '.join(sys.argv[1:])}`",
        f"- before: `{sides['before']}` (commit {commits['before']}); after: `{sides['after']}` (commit {commits['after']})",
        f"- corpus: {n:,} documents, {size / 1e6:.1f} MB, mean {size / n:,.0f} bytes; real sentences of "
        f"{', '.join(sorted(set(truth.values())))} (pool: all of ud/ and ner/ in ../shared/data) and ~15% generated junk",
        f"- load average before: {load_before}; after each pair of runs: {'; '.join(loads[1::2])}",
        "",
        "## Speed (CPU time of one process; best of the repeats)",
        "",
        "| side | filters alone: CPU s | filters: docs/s per core | whole stage: CPU s | whole stage: docs/s per core | wall s | max RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sides:
        f_cpu = min(filters[name])
        best = min(stage[name], key=lambda r: r["cpu"])
        lines.append(f"| {name} | {f_cpu:.1f} | {n / f_cpu:,.0f} | {best['cpu']:.1f} | {n / best['cpu']:,.0f} | "
                     f"{best['wall']:.1f} | {best['maxrss_mb']:,.0f} |")
    b = min(r["cpu"] for r in stage["before"])
    a = min(r["cpu"] for r in stage["after"])
    lines += [
        "",
        f"Per document and per process (best of the repeats; whole corpus against its first {n // 4:,} documents "
        "in their own process, extrapolated to 0 documents):",
        "",
        "| side | per-process start: CPU s | per document: ms CPU | per document: docs/s per core |",
        "|---|---|---|---|",
    ]
    for name in sides:
        whole = min(r["cpu"] for r in stage[name])
        part = min(r["cpu"] for r in stage_quarter[name])
        per_doc = (whole - part) / (n - n // 4)
        lines.append(f"| {name} | {whole - per_doc * n:.1f} | {1000 * per_doc:.3f} | {1 / per_doc:,.0f} |")
    lines += [
        "",
        f"Whole stage speed-up: **{b / a:.1f}x** by CPU time (goals: >= 3,000 docs/s per core filters, "
        ">= 1,500 whole stage, >= 4x). All runs (CPU s): " + "; ".join(
            name + ": " + ", ".join(f"{r['cpu']:.1f}" for r in stage[name]) for name in sides),
        "",
        "CLI check: `nordpipe filter quality` (one worker) wrote the same verdicts and labels as the in-process "
        "steps: " + ", ".join(f"{name} {'yes' if cli_same[name] else 'NO'} ({cli_wall[name]:.0f} s wall)" for name in sides) + ".",
        "",
        "## Agreement",
        "",
        f"- identical keep/drop: **{same_keep:,} / {n:,}** ({same_keep / n:.2%}); identical removal reason: {same:,} "
        f"({same / n:.2%}); identical language label: {same_label:,} ({same_label / n:.2%})",
        f"- kept before: {sum(1 for v in got['before'].values() if v[0] is None):,}; kept after: "
        f"{sum(1 for v in got['after'].values() if v[0] is None):,}",
        "",
        "Language label = the documents' true language (junk included), per language:",
        "",
        "| side | " + " | ".join(sorted(accuracy["after"])) + " |",
        "|---|" + "---|" * len(accuracy["after"]),
    ]
    for name in sides:
        lines.append(f"| {name} | " + " | ".join(f"{h}/{t} ({h / t:.2%})" for h, t in
                                                 (accuracy[name][k] for k in sorted(accuracy[name]))) + " |")
    if differ:
        lines += ["", "Documents judged differently (first 20): id, before (reason, label), after (reason, label)", ""]
        lines += [f"- {i}: {b_} -> {a_}" for i, b_, a_ in differ[:20]]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        args.results.write_text(text)


if __name__ == "__main__":
    main()
