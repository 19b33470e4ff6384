"""Benchmark the whole demo chain (issue 9): ``nordpipe run`` against the same chain built from datatrove's steps.

    .venv/bin/python benchmarks/bench_pipeline.py                      # scale 700: 1.03 GB of raw dumps, ~2 h
    .venv/bin/python benchmarks/bench_pipeline.py --scale 20 --quick   # a few minutes, to try it

Input: ``nordpipe sample`` at ``--scale`` (seeded; five datasets in five raw formats: news
jsonl.gz, forum csv, web crawl warc.gz, letters as loose .txt files, wiki parquet), split into
``--files`` files per dump so both sides can read in parallel. The size on disk of the raw
dumps is reported; it is what the issue's ">= 1 GB of generated raw data" refers to.

nordpipe side: ``nordpipe run`` on a copy of ``pipelines/demo.yaml`` (same stages and parameters)
whose datasets point at that sample and whose stages get ``--workers``. Per-stage wall times
are the ones ``nordpipe run`` logs (each stage is its own process, start-up included).

datatrove side, the same stages from datatrove 0.10.1's own steps, each one
``LocalPipelineExecutor`` run with the same workers:

- ingest (chained from the raw dumps): ``JsonlReader`` (title + body joined by an adapter, as
  nordpipe's dataset config does), ``CSVReader``, ``WarcReader`` -> ``Trafilatura(favour_precision=True)``,
  ``ParquetReader``; datatrove has no reader for a folder of loose text files, so the letters
  use a six-line ``BaseDiskReader`` subclass; ``JsonlWriter`` (gzip). One task per raw file.
- urls (on its own ingest output): ``URLFilter`` (its bundled lists) with the sample's planted
  spam URLs as ``extra_urls`` (the spam domains end in ``.example``, which has no registered
  domain for tldextract, so datatrove cannot block them by domain); documents without a URL
  pass (datatrove's filter asserts on them). One task per worker, not per file: each task
  first loads datatrove's 4.5M-domain list.
- minhash (on nordpipe's line-dedup output, the documents nordpipe's MinHash stage read):
  ``MinhashDedupSignature`` -> ``MinhashDedupBuckets`` -> ``MinhashDedupCluster`` ->
  ``MinhashDedupFilter`` (word 5-grams, 14 bands x 8 rows, as nordpipe's default).
- tokenize (on nordpipe's PII output): ``DocumentTokenizer`` with a ``tokenizers`` file of the
  Mistral-7B-v0.1 vocabulary (built from the SentencePiece model nordpipe uses, as in
  ``bench_tokenize.py``).
- quality: datatrove's ``GopherRepetitionFilter`` -> ``GopherQualityFilter`` ->
  ``C4QualityFilter`` with nordpipe's Danish settings (as in ``bench_quality.py``) runs at
  ~100 documents/s a core, ~85 min for this corpus on this machine, so it runs side by side
  with ``nordpipe filter quality`` (same flags as in the pipeline, which adds language
  identification) on every ``--quality-step``-th file of nordpipe's URL-stage output.
- lines: datatrove has no line-level Bloom-filter dedup (its ``SentenceDedup`` removes 3-sentence
  spans, a different operation): no datatrove time.
- pii: datatrove's ``PIIFormatter`` only rewrites e-mail and IP addresses (no national
  identifiers, phones, accounts or names): not the same operation, no datatrove time.

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


class DatatroveChain:
    """The datatrove side, stage by stage. ``ingest`` and ``urls`` run chained from the raw dumps;
    ``minhash`` and ``tokenize`` read the documents nordpipe's own stage read (its previous
    stage's output), so each ratio compares the two on identical input; ``quality`` runs on a
    subset of nordpipe's URL-stage output (every ``step``-th file), nordpipe's quality stage too."""

    def __init__(self, work: Path, workers: int):
        self.work = work
        self.workers = workers
        self.root = work / "datatrove"
        self.sample = work / "sample" / "raw"
        self.batch = work / "nordpipe" / "batches" / "0001"
        self.times: dict[str, float] = {}
        self.docs: dict[str, int] = {}

    def _stage(self, name: str, pipeline: list[Any], tasks: int, logs: str | None = None) -> float:
        from datatrove.executor import LocalPipelineExecutor

        logging_dir = self.root / "logs" / (logs or name)
        shutil.rmtree(logging_dir, ignore_errors=True)  # datatrove skips tasks its logs mark completed
        started = time.time()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(self.workers, tasks),
                              logging_dir=str(logging_dir)).run()
        seconds = time.time() - started
        self.times[name] = self.times.get(name, 0.0) + seconds
        print(f"datatrove {logs or name}: {seconds:.1f} s", flush=True)
        return seconds

    @staticmethod
    def _files(folder: Path, pattern: str) -> int:
        return len(list(folder.glob(pattern)))

    @staticmethod
    def _writer(folder: Path) -> Any:
        from datatrove.pipeline.writers import JsonlWriter

        return JsonlWriter(str(folder), output_filename="${rank}.jsonl.gz")

    def ingest_and_urls(self) -> None:
        from datatrove.pipeline.extractors import Trafilatura
        from datatrove.pipeline.readers import CSVReader, JsonlReader, ParquetReader, WarcReader
        from tldextract import TLDExtract

        sample, files, writer = self.sample, self._files, self._writer
        ingest = self.root / "01-ingest"
        shutil.rmtree(self.root / "01-ingest", ignore_errors=True)
        shutil.rmtree(self.root / "02-urls", ignore_errors=True)
        letters_reader = _letters_reader_class()
        letter_folders = sorted(p for p in (sample / "breve").iterdir() if p.is_dir()) or [sample / "breve"]
        self._stage("ingest", [JsonlReader(str(sample / "nyheder"), glob_pattern="*.jsonl.gz", adapter=_join_title_body),
                               writer(ingest / "nyheder")], files(sample / "nyheder", "*.jsonl.gz"), "ingest-nyheder")
        self._stage("ingest", [CSVReader(str(sample / "forum"), glob_pattern="*.csv", id_key="post_id"),
                               writer(ingest / "forum")], files(sample / "forum", "*.csv"), "ingest-forum")
        self._stage("ingest", [WarcReader(str(sample / "web"), glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True),
                               writer(ingest / "web")], files(sample / "web", "*.warc.gz"), "ingest-web")
        self._stage("ingest", [letters_reader(str(sample / "breve"), glob_pattern="**/*.txt", recursive=True),
                               writer(ingest / "breve")], len(letter_folders), "ingest-breve")
        self._stage("ingest", [ParquetReader(str(sample / "wiki"), glob_pattern="*.parquet"), writer(ingest / "wiki")],
                    files(sample / "wiki", "*.parquet"), "ingest-wiki")
        self.docs["ingest"] = count_docs(ingest)
        # The sample's spam domains end in .example, which is no public suffix: tldextract gives
        # them no registered domain, so datatrove cannot block them by domain. Its exact-URL list can.
        manifest = json.loads((self.work / "sample" / "manifest.json").read_text())
        url_filter = _url_filter_class()(extra_urls=[entry["url"] for entry in manifest["spam_urls"]])
        url_filter.tldextractor = TLDExtract(suffix_list_urls=())  # offline snapshot, as nordpipe uses
        # every URLFilter task first loads datatrove's 4.5M-domain list (~5 s): one task per
        # worker instead of one per file
        self._stage("urls", [JsonlReader(str(ingest), glob_pattern="**/*.jsonl.gz", recursive=True), url_filter,
                             writer(self.root / "02-urls")], self.workers)
        self.docs["urls"] = count_docs(self.root / "02-urls")

    def minhash(self) -> None:
        from datatrove.pipeline.dedup import (
            MinhashDedupBuckets,
            MinhashDedupCluster,
            MinhashDedupFilter,
            MinhashDedupSignature,
        )
        from datatrove.pipeline.dedup.minhash import MinhashConfig
        from datatrove.pipeline.readers import JsonlReader
        from datatrove.utils.hashing import HashConfig
        from datatrove.utils.typeshelper import Languages

        source = self.batch / "03-lines" / "documents"  # what nordpipe's MinHash stage read
        work = self.root / "05-minhash-work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(self.root / "05-minhash", ignore_errors=True)
        config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))
        tasks = self._files(source, "*.jsonl.gz")
        self._stage("minhash", [JsonlReader(str(source)),
                                MinhashDedupSignature(str(work / "sigs"), config=config, language=Languages.danish)],
                    tasks, "minhash-signature")
        self._stage("minhash", [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)], 14,
                    "minhash-buckets")
        self._stage("minhash", [MinhashDedupCluster(str(work / "buckets"), str(work / "remove_ids"), config=config)], 1,
                    "minhash-cluster")
        self._stage("minhash", [JsonlReader(str(source)), MinhashDedupFilter(str(work / "remove_ids")),
                                self._writer(self.root / "05-minhash")], tasks, "minhash-filter")
        self.docs["minhash_in"] = count_docs(source)
        self.docs["minhash"] = count_docs(self.root / "05-minhash")

    def tokenize(self) -> None:
        from bench_tokenize import sentencepiece_to_tokenizers
        from datatrove.pipeline.readers import JsonlReader
        from datatrove.pipeline.tokens import DocumentTokenizer

        from nordpipe.tokenize import default_tokenizer_path

        source = self.batch / "05-pii" / "documents"  # what nordpipe's tokenize stage read
        tokenizer_json = self.work / "mistral-7b-v0.1.tokenizer.json"
        if not tokenizer_json.exists():
            sentencepiece_to_tokenizers(default_tokenizer_path(), tokenizer_json)
        shutil.rmtree(self.root / "07-tokenize", ignore_errors=True)
        self._stage("tokenize", [JsonlReader(str(source)),
                                 DocumentTokenizer(str(self.root / "07-tokenize"), tokenizer_name_or_path=str(tokenizer_json),
                                                   eos_token="</s>", shuffle_documents=False, batch_size=512)],
                    self._files(source, "*.jsonl.gz"))
        self.docs["tokenize"] = count_docs(source)

    def quality_subset(self, step: int) -> dict[str, Any]:
        """datatrove's three filters and ``nordpipe filter quality`` (as the pipeline ran it) on
        every ``step``-th file of nordpipe's URL-stage output."""
        from bench_quality import datatrove_steps
        from datatrove.pipeline.readers import JsonlReader

        from nordpipe.quality import load_settings

        subset = self.work / "quality-subset"
        shutil.rmtree(subset, ignore_errors=True)
        (subset / "documents").mkdir(parents=True)
        chosen = sorted((self.batch / "01-urls" / "documents").glob("*.jsonl.gz"))[::step]
        for path in chosen:
            (subset / "documents" / path.name).symlink_to(path)
        out = self.work / "quality-subset-nordpipe"
        shutil.rmtree(out, ignore_errors=True)
        started = time.time()
        subprocess.run([str(VENV_BIN / "nordpipe"), "filter", "quality", str(subset), str(out), "--languages", "da,nb,nn,sv,en",
                        "--keep-removed", "--workers", str(self.workers)], check=True, capture_output=True)
        nordpipe_seconds = time.time() - started
        shutil.rmtree(self.root / "03-quality-subset", ignore_errors=True)
        seconds = self._stage("quality-subset", [JsonlReader(str(subset / "documents")), *datatrove_steps(load_settings()["da"]),
                                                 self._writer(self.root / "03-quality-subset")], len(chosen))
        stats = json.loads((out / ".nordpipe" / "stats.json").read_text())
        return {"files": len(chosen), "of_files": len(sorted((self.batch / "01-urls" / "documents").glob("*.jsonl.gz"))),
                "documents": count_docs(subset / "documents"), "nordpipe_seconds": nordpipe_seconds,
                "nordpipe_kept": stats["documents_out"], "datatrove_seconds": seconds,
                "datatrove_kept": count_docs(self.root / "03-quality-subset")}


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
    parser.add_argument("--quality-step", type=int, default=8,
                        help="quality runs side by side on every N-th file of the URL stage's output (default 8)")
    parser.add_argument("--quick", action="store_true", help="small defaults (scale 20, 4 files)")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.files = min(args.scale, 20.0), min(args.files, 4)
    args.work.mkdir(parents=True, exist_ok=True)
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
        chain = DatatroveChain(args.work, args.workers)
        results["datatrove"] = {"times": chain.times, "docs": chain.docs}
        # the order puts the shorter stages first; results are saved after each
        for part in ("ingest_and_urls", "tokenize", "minhash"):
            getattr(chain, part)()
            saved.write_text(json.dumps(results, indent=1, default=str))
        results["quality_subset"] = chain.quality_subset(args.quality_step)
        saved.write_text(json.dumps(results, indent=1, default=str))
    load_after = os.getloadavg()
    report = render(args, manifest, raw_bytes, results, load_after)
    print(report)
    if args.results:
        args.results.write_text(report)
    return 0


def render(args: argparse.Namespace, manifest: dict[str, Any], raw_bytes: int, results: dict[str, Any],
           load_after: tuple[float, ...]) -> str:
    from importlib.metadata import version

    ours = results.get("nordpipe", {})
    theirs = results.get("datatrove", {})
    subset = results.get("quality_subset")
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
        f"- {args.workers} local workers for every stage on both sides; load average at the end of the datatrove side "
        f"{' '.join(f'{x:.2f}' for x in load_after)}",
        "",
        "| stage | nordpipe wall s | nordpipe documents in -> kept | datatrove wall s | datatrove input, documents kept | nordpipe faster |",
        "|---|---|---|---|---|---|",
    ]
    inputs = {"ingest": "the raw dumps", "urls": "its own ingest output", "minhash": "nordpipe's line-dedup output",
              "tokenize": "nordpipe's PII output"}
    both_np = both_dt = 0.0
    for stage in STAGES:
        np_t = np_times.get(stage)
        dt_t = dt_times.get(stage)
        if stage == "quality" and subset:
            lines.append(f"| quality | {np_t:,.1f} | {np_docs.get(stage, '')} | not run on all documents (see below) | | |")
            continue
        ratio = f"**{dt_t / np_t:.1f}x**" if np_t and dt_t else "n/a (datatrove has no such step)"
        if np_t and dt_t:
            both_np += np_t
            both_dt += dt_t
        kept = dt_docs.get(stage)
        dt_cell = f"{inputs.get(stage, '')}, {kept:,}" if kept is not None and stage not in ("tokenize",) else inputs.get(stage, "")
        lines.append(f"| {stage} | {np_t:,.1f} | {np_docs.get(stage, '')} | {f'{dt_t:,.1f}' if dt_t else '—'} | "
                     f"{dt_cell if dt_t else ''} | {ratio} |")
    if both_np and both_dt:
        lines.append(f"| **stages both ran on all documents** | {both_np:,.1f} | | {both_dt:,.1f} | | **{both_dt / both_np:.1f}x** |")
    if ours.get("total"):
        lines.append(f"| whole chain (`nordpipe run` wall, all 7 stages) | {ours['total']:,.1f} | | | | |")
    if subset:
        ratio = subset["datatrove_seconds"] / subset["nordpipe_seconds"]
        share = subset["files"] / subset["of_files"]
        lines += [
            "",
            f"Quality, side by side on every {args.quality_step}th file of nordpipe's URL-stage output "
            f"({subset['files']} of {subset['of_files']} files, {subset['documents']:,} documents):",
            "",
            "| | wall s | documents kept |",
            "|---|---|---|",
            f"| `nordpipe filter quality` (language id + Gopher quality + Gopher repetition + C4, per-language settings) "
            f"| {subset['nordpipe_seconds']:,.1f} | {subset['nordpipe_kept']:,} |",
            f"| datatrove GopherRepetition -> GopherQuality -> C4 (Danish settings, no language id) "
            f"| {subset['datatrove_seconds']:,.1f} | {subset['datatrove_kept']:,} |",
            f"| nordpipe faster | **{ratio:.1f}x** | |",
            "",
            f"On all documents the datatrove quality stage would take about {subset['datatrove_seconds'] / share / 60:,.0f} min "
            f"(the subset is {share:.1%} of the files), against nordpipe's {np_times.get('quality', 0) / 60:,.1f} min.",
        ]
        if both_np and both_dt and np_times.get("quality"):
            est_dt = both_dt + subset["datatrove_seconds"] / share
            lines.append(f"With that estimate, the five stages datatrove has take ~{est_dt / 60:,.0f} min with datatrove "
                         f"and {(both_np + np_times['quality']) / 60:,.1f} min with nordpipe (~{est_dt / (both_np + np_times['quality']):.1f}x).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
