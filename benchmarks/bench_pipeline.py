"""Benchmark the whole demo chain (issue 9): ``nordpipe run`` against the same chain built from datatrove's steps.

    .venv/bin/python benchmarks/bench_pipeline.py                      # scale 700: ~1.1 GB of raw dumps
    .venv/bin/python benchmarks/bench_pipeline.py --scale 20 --quick   # a few minutes, to try it

Input: ``nordpipe sample`` at ``--scale`` (seeded; five datasets in five raw formats: news
jsonl.gz, forum csv, web crawl warc.gz, letters as loose .txt files, wiki parquet), split into
``--files`` files per dump so both sides can read in parallel. The size on disk of the raw
dumps is reported; it is what the issue's ">= 1 GB of generated raw data" refers to.

nordpipe side: ``nordpipe run`` on a copy of ``pipelines/demo.yaml`` (same stages and parameters)
whose datasets point at that sample and whose stages get ``--workers``. Per-stage wall times
are the ones ``nordpipe run`` logs (each stage is its own process, start-up included).

datatrove side, the same chain from datatrove 0.10.1's own steps, each stage one
``LocalPipelineExecutor`` run (one task per input file, same workers), reading the previous
stage's output:

- ingest: ``JsonlReader`` (title + body joined by an adapter, as nordpipe's dataset config
  does), ``CSVReader``, ``WarcReader`` -> ``Trafilatura(favour_precision=True)``,
  ``ParquetReader``; datatrove has no reader for a folder of loose text files, so the letters
  use a six-line ``BaseDiskReader`` subclass; ``JsonlWriter`` (gzip).
- urls: ``URLFilter`` (its bundled lists) with the sample's planted spam URLs as ``extra_urls``
  (the spam domains end in ``.example``, which has no registered domain for tldextract, so
  datatrove cannot block them by domain); documents without a URL pass (datatrove's filter
  asserts on them). One task per worker, not per file: each task first loads datatrove's
  4.5M-domain list.
- quality: ``GopherRepetitionFilter`` -> ``GopherQualityFilter`` -> ``C4QualityFilter`` with
  nordpipe's Danish settings (as in ``bench_quality.py``) for every document; nordpipe also
  identifies the language and applies per-language settings.
- lines: datatrove has no line-level Bloom-filter dedup (its ``SentenceDedup`` removes 3-sentence
  spans, a different operation): no datatrove time.
- minhash: ``MinhashDedupSignature`` -> ``MinhashDedupBuckets`` -> ``MinhashDedupCluster`` ->
  ``MinhashDedupFilter`` (word 5-grams, 14 bands x 8 rows, as nordpipe's default).
- pii: datatrove's ``PIIFormatter`` only rewrites e-mail and IP addresses (no national
  identifiers, phones, accounts or names): not the same operation, no datatrove time.
- tokenize: ``DocumentTokenizer`` with a ``tokenizers`` file of the Mistral-7B-v0.1 vocabulary
  (built from the SentencePiece model nordpipe uses, as in ``bench_tokenize.py``).

Ratios are per stage where datatrove has the stage, and overall over those stages; nordpipe's
whole chain (with line dedup and PII, which the datatrove chain lacks) is reported too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
VENV_BIN = Path(sys.executable).parent
STAGES = ("ingest", "urls", "quality", "lines", "minhash", "pii", "tokenize")


def du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_sample(work: Path, scale: float, files: int, seed: int) -> dict[str, Any]:
    target = work / "sample"
    manifest_path = target / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("scale") == scale and manifest.get("files") == files and manifest.get("seed") == seed:
            return manifest
        shutil.rmtree(target)
    started = time.time()
    subprocess.run([str(VENV_BIN / "nordpipe"), "sample", str(target), "--scale", str(scale), "--files", str(files),
                    "--seed", str(seed)], check=True)
    print(f"sample generated in {time.time() - started:.0f} s", flush=True)
    return json.loads(manifest_path.read_text())


# --------------------------------------------------------------------------------------------
# nordpipe


def run_nordpipe(work: Path, workers: int) -> dict[str, Any]:
    import yaml

    demo = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    root = work / "nordpipe"
    shutil.rmtree(root, ignore_errors=True)
    sample = work / "sample"
    for dataset in demo["datasets"]:
        dataset["raw"] = [str(sample / "raw" / dataset["name"])]
        dataset["config"] = str(sample / "datasets" / f"{dataset['name']}.yaml")
        dataset["resources"] = {"workers": workers}
    for stage in demo["stages"]:
        stage["params"] = {k: (v.replace("{root}/sample", str(sample)) if isinstance(v, str) else v)
                           for k, v in stage.get("params", {}).items()}
        stage["resources"] = {"workers": workers}
    demo.pop("sample", None)
    demo["name"] = "bench-demo"
    demo["root"] = str(root)
    config = work / "bench-demo.yaml"
    config.write_text(yaml.safe_dump(demo, sort_keys=False))
    started = time.time()
    result = subprocess.run([str(VENV_BIN / "nordpipe"), "run", str(config)], capture_output=True, text=True)
    total = time.time() - started
    if result.returncode != 0:
        raise SystemExit(f"nordpipe run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    times: dict[str, float] = {}
    for line in (result.stdout + result.stderr).splitlines():
        match = re.search(r"done\t(\w+)\t(\S+)\t([\d.]+)s", line)
        if match:
            times[match.group(1)] = times.get(match.group(1), 0.0) + float(match.group(3))
    counts = {}
    batch = root / "batches" / "0001"
    for stats_path in sorted(batch.glob("*/.nordpipe/stats.json")) + sorted(batch.glob("ingest/*/.nordpipe/stats.json")):
        stats = json.loads(stats_path.read_text())
        folder = stats_path.parent.parent
        stage = "ingest" if folder.parent.name == "ingest" else folder.name.split("-", 1)[-1]
        counts.setdefault(stage, []).append(stats)
    return {"times": times, "total": total, "stats": counts, "log": result.stdout + result.stderr}


# --------------------------------------------------------------------------------------------
# datatrove


def _join_title_body(self: Any, data: dict, path: str, id_in_file: int | str) -> dict:
    """datatrove reader adapter: the news dump's text is title + body, as nordpipe's config says."""
    return {"text": f"{data.pop('title', '')}\n\n{data.pop('body', '')}", "id": data.pop("id", f"{path}/{id_in_file}"),
            "media": [], "metadata": data}


def _letters_reader_class() -> type:
    from datatrove.data import Document
    from datatrove.pipeline.readers.base import BaseDiskReader

    class TextFilesReader(BaseDiskReader):
        """One document per .txt file (datatrove has no reader for loose text files)."""

        name = "text files"

        def read_file(self, filepath: str):
            with self.data_folder.open(filepath, "r", encoding="utf-8") as handle:
                yield Document(text=handle.read(), id=filepath, metadata={})

    return TextFilesReader


def _url_filter_class() -> type:
    from datatrove.pipeline.filters import URLFilter

    class URLFilterNoUrlPasses(URLFilter):
        """datatrove's URLFilter asserts that every document has a URL; letters and wiki pages have none."""

        def filter(self, document):
            return super().filter(document) if document.metadata.get("url") else True

    return URLFilterNoUrlPasses


def run_datatrove(work: Path, workers: int) -> dict[str, Any]:
    from bench_quality import datatrove_steps
    from bench_tokenize import sentencepiece_to_tokenizers
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import CSVReader, JsonlReader, ParquetReader, WarcReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.typeshelper import Languages
    from tldextract import TLDExtract

    from nordpipe.quality import load_settings
    from nordpipe.tokenize import default_tokenizer_path

    root = work / "datatrove"
    shutil.rmtree(root, ignore_errors=True)
    sample = work / "sample" / "raw"
    times: dict[str, float] = {}
    docs: dict[str, int] = {}

    def stage(name: str, pipeline: list[Any], tasks: int, logs: str | None = None) -> None:
        started = time.time()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                              logging_dir=str(root / "logs" / (logs or name))).run()
        times[name] = times.get(name, 0.0) + time.time() - started
        print(f"datatrove {logs or name}: {time.time() - started:.1f} s", flush=True)

    def files(folder: Path, pattern: str) -> int:
        return len(list(folder.glob(pattern)))

    def writer(folder: Path) -> JsonlWriter:
        return JsonlWriter(str(folder), output_filename="${rank}.jsonl.gz")

    ingest = root / "01-ingest"
    letters_reader = _letters_reader_class()
    letter_folders = sorted(p for p in (sample / "breve").iterdir() if p.is_dir()) or [sample / "breve"]
    stage("ingest", [JsonlReader(str(sample / "nyheder"), glob_pattern="*.jsonl.gz", adapter=_join_title_body),
                     writer(ingest / "nyheder")], files(sample / "nyheder", "*.jsonl.gz"), "ingest-nyheder")
    stage("ingest", [CSVReader(str(sample / "forum"), glob_pattern="*.csv", id_key="post_id"), writer(ingest / "forum")],
          files(sample / "forum", "*.csv"), "ingest-forum")
    stage("ingest", [WarcReader(str(sample / "web"), glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True),
                     writer(ingest / "web")], files(sample / "web", "*.warc.gz"), "ingest-web")
    stage("ingest", [letters_reader(str(sample / "breve"), glob_pattern="**/*.txt", recursive=True), writer(ingest / "breve")],
          len(letter_folders), "ingest-breve")
    stage("ingest", [ParquetReader(str(sample / "wiki"), glob_pattern="*.parquet"), writer(ingest / "wiki")],
          files(sample / "wiki", "*.parquet"), "ingest-wiki")

    def chained(name: str, previous: Path, steps: list[Any], tasks: int | None = None) -> Path:
        output = root / name
        tasks = tasks or files(previous, "**/*.jsonl.gz")
        stage(name.split("-", 1)[1], [JsonlReader(str(previous), glob_pattern="**/*.jsonl.gz", recursive=True), *steps,
                                      writer(output)], tasks)
        return output

    # The sample's spam domains end in .example, which is no public suffix: tldextract gives them
    # no registered domain, so datatrove cannot block them by domain. Its exact-URL list can.
    manifest = json.loads((work / "sample" / "manifest.json").read_text())
    url_filter = _url_filter_class()(extra_urls=[entry["url"] for entry in manifest["spam_urls"]])
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())  # offline snapshot, as nordpipe uses
    # every URLFilter task loads datatrove's 4.5M-domain list first (~5 s): one task per worker
    # instead of one per file
    urls = chained("02-urls", ingest, [url_filter], tasks=workers)
    quality = chained("03-quality", urls, datatrove_steps(load_settings()["da"]))

    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))
    mh = root / "05-minhash-work"
    quality_files = files(quality, "*.jsonl.gz")
    started = time.time()
    stage("minhash", [JsonlReader(str(quality)), MinhashDedupSignature(str(mh / "sigs"), config=config, language=Languages.danish)],
          quality_files, "minhash-signature")
    stage("minhash", [MinhashDedupBuckets(str(mh / "sigs"), str(mh / "buckets"), config=config)], 14, "minhash-buckets")
    stage("minhash", [MinhashDedupCluster(str(mh / "buckets"), str(mh / "remove_ids"), config=config)], 1, "minhash-cluster")
    stage("minhash", [JsonlReader(str(quality)), MinhashDedupFilter(str(mh / "remove_ids")), writer(root / "05-minhash")],
          quality_files, "minhash-filter")
    print(f"datatrove minhash total {time.time() - started:.1f} s", flush=True)

    tokenizer_json = work / "mistral-7b-v0.1.tokenizer.json"
    if not tokenizer_json.exists():
        sentencepiece_to_tokenizers(default_tokenizer_path(), tokenizer_json)
    minhash_out = root / "05-minhash"
    stage("tokenize", [JsonlReader(str(minhash_out)),
                       DocumentTokenizer(str(root / "07-tokenize"), tokenizer_name_or_path=str(tokenizer_json), eos_token="</s>",
                                         shuffle_documents=False, batch_size=512)],
          files(minhash_out, "*.jsonl.gz"))
    for name in ("01-ingest", "02-urls", "03-quality", "05-minhash"):
        docs[name.split("-", 1)[1]] = count_docs(root / name)
    tokens = sum((p.stat().st_size for p in (root / "07-tokenize").rglob("*.ds")), 0)
    return {"times": times, "docs": docs, "token_bytes": tokens}


def count_docs(folder: Path) -> int:
    import gzip

    total = 0
    for path in folder.rglob("*.jsonl.gz"):
        with gzip.open(path, "rb") as handle:
            total += sum(1 for _ in handle)
    return total


# --------------------------------------------------------------------------------------------
# report


def nordpipe_docs(stats: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    out = {}
    for stage, entries in stats.items():
        docs_in = sum(int(e.get("documents_in") or 0) for e in entries)
        docs_out = sum(int(e.get("documents_out") or 0) for e in entries)
        out[stage] = f"{docs_in:,} -> {docs_out:,}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=700.0)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "pipeline")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--sides", default="nordpipe,datatrove")
    parser.add_argument("--quick", action="store_true", help="small defaults (scale 20, 4 files)")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.files = min(args.scale, 20.0), min(args.files, 4)
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    manifest = make_sample(args.work, args.scale, args.files, args.seed)
    raw_bytes = du_bytes(args.work / "sample" / "raw")
    print(f"raw dumps: {raw_bytes / 1e9:.3f} GB on disk, {sum(manifest['counts'].values()):,} documents", flush=True)
    sides = args.sides.split(",")
    results: dict[str, Any] = {}
    saved = args.work / "results.json"
    if saved.exists():
        results = json.loads(saved.read_text())
    if "nordpipe" in sides:
        results["nordpipe"] = run_nordpipe(args.work, args.workers)
        print(json.dumps(results["nordpipe"]["times"]), flush=True)
        saved.write_text(json.dumps(results, indent=1, default=str))
    if "datatrove" in sides:
        started = time.time()
        results["datatrove"] = run_datatrove(args.work, args.workers)
        results["datatrove"]["total"] = time.time() - started
        print(json.dumps(results["datatrove"]["times"]), flush=True)
        saved.write_text(json.dumps(results, indent=1, default=str))
    load_after = os.getloadavg()
    report = render(args, manifest, raw_bytes, results, load_before, load_after)
    print(report)
    if args.results:
        args.results.write_text(report)
    return 0


def render(args: argparse.Namespace, manifest: dict[str, Any], raw_bytes: int, results: dict[str, Any],
           load_before: tuple[float, ...], load_after: tuple[float, ...]) -> str:
    from importlib.metadata import version

    ours = results.get("nordpipe", {})
    theirs = results.get("datatrove", {})
    np_times, dt_times = ours.get("times", {}), theirs.get("times", {})
    np_docs = nordpipe_docs(ours.get("stats", {}))
    dt_docs = theirs.get("docs", {})
    lines = [
        "# Whole demo chain: `nordpipe run` vs the same chain from datatrove's steps",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; datatrove {version('datatrove')}, "
        f"nordpipe {version('nordpipe')}",
        f"- command: `.venv/bin/python benchmarks/bench_pipeline.py --scale {args.scale:g} --files {args.files} "
        f"--workers {args.workers}`",
        f"- input: `nordpipe sample --scale {args.scale:g} --files {args.files} --seed {args.seed}`: "
        f"{raw_bytes / 1e9:.3f} GB of raw dumps on disk, {sum(manifest['counts'].values()):,} documents "
        f"({', '.join(f'{k} {v:,}' for k, v in manifest['counts'].items())})",
        f"- {args.workers} local workers for every stage on both sides; load average before "
        f"{' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)}",
        "",
        "| stage | nordpipe wall s | nordpipe documents in -> out | datatrove wall s | datatrove documents out | nordpipe faster |",
        "|---|---|---|---|---|---|",
    ]
    both_np = both_dt = 0.0
    for stage in STAGES:
        np_t = np_times.get(stage)
        dt_t = dt_times.get(stage)
        ratio = f"**{dt_t / np_t:.1f}x**" if np_t and dt_t else "n/a (datatrove has no such step)"
        if np_t and dt_t:
            both_np += np_t
            both_dt += dt_t
        lines.append(f"| {stage} | {np_t:,.1f} | {np_docs.get(stage, '')} | "
                     f"{f'{dt_t:,.1f}' if dt_t else '—'} | {f'{dt_docs[stage]:,}' if stage in dt_docs else ''} | {ratio} |"
                     if np_t else f"| {stage} | — | | {dt_t or '—'} | | |")
    if both_np and both_dt:
        lines.append(f"| **stages both have** | {both_np:,.1f} | | {both_dt:,.1f} | | **{both_dt / both_np:.1f}x** |")
    if ours.get("total"):
        lines.append(f"| **whole chain** (`nordpipe run` wall, all 7 stages) | {ours['total']:,.1f} | | "
                     f"{theirs.get('total', 0):,.1f} (5 stages) | | {theirs.get('total', 0) / ours['total']:.1f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
