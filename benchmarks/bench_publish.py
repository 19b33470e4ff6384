"""Benchmark of issue 17: metadata as a JSON string on disk, and ``nordpipe export hf``.

Run: ``.venv/bin/python benchmarks/bench_publish.py`` (``--quick`` for a small run).

What it measures, side by side in one run:

1. The cost of writing ``metadata`` as a JSON string (``documents.dumps_record``) instead of an
   object (nordpipe before issue 17), and of reading it back (``documents.iter_records``, which
   decodes it), on the same records: stage-output-like documents (~2 KB of text; metadata per
   source plus a ``metadata.nordpipe`` quality sub-object like ``filter quality`` writes),
   gzip through the writer nordpipe uses (isal level 3). Figures: microseconds per record, MB/s
   of decompressed JSON, file sizes.
2. ``nordpipe export hf`` (the real console script, one process) on a root of three sources,
   against writing the very same table (read back from the published parquet) with ``datasets``'
   own ``Dataset.to_parquet``, and with plain ``pyarrow.parquet.write_table`` (zstd) for scale.
   Publish includes reading and validating the jsonl.gz input and counting tokens with the
   default tokenizer (Mistral-7B-v0.1 SentencePiece, one thread); its stats give the tokenizer's
   share, so publish without token counting is reported too.

Text: real UD Danish/Swedish dev sentences from ../shared when present, mixed with the template
sentences of the test-suite generator (``tests/test_export.py``); generated otherwise.
Generated data goes under ``benchmarks/work/publish`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "publish"
RESULTS = REPO / "benchmarks" / "results" / "publish.md"

sys.path.insert(0, str(REPO / "tests"))
from test_export import make_document, make_sentence, ud_sentences  # noqa: E402

from nordpipe.documents import dumps_record, iter_records, open_binary  # noqa: E402

SOURCES = {"web": ("da", "cc0-1.0"), "forum": ("nb", "cc-by-4.0"), "wiki": ("sv", "cc-by-sa-4.0")}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def quality_meta(rng: random.Random, language: str) -> dict:
    """A ``metadata.nordpipe`` like ``filter quality`` writes (same keys, random values)."""
    return {
        "language": language, "language_score": round(rng.random(), 4),
        "quality": {
            "gopher_repetition": {k: round(rng.random() / 10, 4) for k in (
                "dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac", "top_2_gram",
                "duplicated_5_n_grams", "duplicated_6_n_grams", "duplicated_7_n_grams")},
            "gopher_quality": {"words": rng.randint(100, 900), "mean_word_length": round(4 + rng.random(), 4),
                               "alpha_words_ratio": round(0.8 + rng.random() / 5, 4), "stop_words": rng.randint(5, 90)},
            "c4": {"lines_kept": rng.randint(3, 30), "sentences": rng.randint(5, 60)},
        },
    }


def make_records(count: int, seed: int = 17) -> list[dict]:
    rng = random.Random(seed)
    real = ud_sentences()
    records = []
    names = sorted(SOURCES)
    for n in range(count):
        source = names[n % len(names)]
        language = SOURCES[source][0]
        lang = "sv" if language == "sv" else "da" if language == "da" else "nb"
        doc = make_document(rng, f"{source}-{n:07d}", lang, real)
        doc["text"] += "\n\n" + " ".join(make_sentence(rng, lang) for _ in range(rng.randint(10, 20)))
        if source == "web":
            metadata = {"url": f"https://site{n % 97}.dk/a/{n}", "crawl_date": "2024-03-01", "license": "cc0-1.0"}
        elif source == "forum":
            metadata = {"thread_id": n // 7, "author": f"user{n % 311}", "score": n % 13, "license": "cc-by-4.0"}
        else:
            metadata = {"title": f"Artikel {n}", "categories": ["historia", "geografi"][: n % 3], "revision": n * 3}
        metadata["nordpipe"] = quality_meta(rng, language)
        records.append({"id": doc["id"], "text": doc["text"], "source": source, "added": "2024-05-01",
                         "created": "2020-01-01, 2024-01-01", "metadata": metadata})
    return records


def bench_forms(records: list[dict], repeat: int) -> list[str]:
    """Write and read the same records in both metadata forms; best of ``repeat``."""
    import orjson

    options = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def write(path: Path, dump) -> float:
        start = time.process_time()
        with open_binary(str(path), "wb") as handle:
            chunk = []
            for record in records:
                chunk.append(dump(record))
                if len(chunk) >= 1000:
                    handle.write(b"".join(chunk))
                    chunk.clear()
            handle.write(b"".join(chunk))
        return time.process_time() - start

    def read(path: Path) -> float:
        start = time.process_time()
        count = sum(1 for _ in iter_records(str(path)))
        assert count == len(records)
        return time.process_time() - start

    paths = {"object (before)": WORK / "object.jsonl.gz", "JSON string (now)": WORK / "string.jsonl.gz"}
    dumps = {"object (before)": lambda r: orjson.dumps(r, option=options), "JSON string (now)": dumps_record}
    raw_bytes = {name: sum(len(dumps[name](r)) for r in records) for name in paths}
    best = {name: [float("inf"), float("inf")] for name in paths}
    for _ in range(repeat):  # interleaved, so that a burst of load hits both forms alike
        for name, path in paths.items():
            best[name][0] = min(best[name][0], write(path, dumps[name]))
            best[name][1] = min(best[name][1], read(path))
    rows = [(name, best[name][0], best[name][1], raw_bytes[name], path.stat().st_size) for name, path in paths.items()]
    lines = ["CPU time of this process, best of 5 interleaved rounds.", "",
             "| metadata on disk | write µs/record | write MB/s | read µs/record | read MB/s | JSON bytes | jsonl.gz bytes |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, write_s, read_s, raw, size in rows:
        lines.append(f"| {name} | {write_s / len(records) * 1e6:.1f} | {raw / write_s / 1e6:.1f} | "
                     f"{read_s / len(records) * 1e6:.1f} | {raw / read_s / 1e6:.1f} | {raw:,} | {size:,} |")
    (_, w0, r0, b0, s0), (_, w1, r1, b1, s1) = rows
    lines.append("")
    lines.append(f"Change: write {100 * (w1 / w0 - 1):+.1f} %, read {100 * (r1 / r0 - 1):+.1f} %, "
                 f"JSON {100 * (b1 / b0 - 1):+.1f} % (escaped quotes), compressed {100 * (s1 / s0 - 1):+.1f} %.")
    return lines


def build_root(root: Path, records: list[dict]) -> int:
    shutil.rmtree(root, ignore_errors=True)
    text_bytes = 0
    for source, (language, license_id) in SOURCES.items():
        folder = root / source
        (folder / "documents").mkdir(parents=True)
        (folder / "README.md").write_text(
            f"---\npretty_name: {source}\nlanguage:\n- {language}\nlicense: {license_id}\nsize_categories:\n- 10K<n<100K\n"
            "task_categories:\n- text-generation\ntask_ids:\n- language-modeling\n---\n\n# " + source + "\n")
        mine = [r for r in records if r["source"] == source]
        per_file = (len(mine) + 3) // 4
        for f in range(4):
            with open_binary(str(folder / "documents" / f"part-{f}.jsonl.gz"), "wb") as handle:
                handle.writelines(dumps_record(r) for r in mine[f * per_file:(f + 1) * per_file])
        text_bytes += sum(len(r["text"].encode()) for r in mine)
    return text_bytes


def run_cli(args: list[str]) -> tuple[float, float, float, dict]:
    """(wall seconds, CPU seconds, peak RSS MiB, stats) of the real console script."""
    exe = Path(sys.executable).parent / "nordpipe"
    rss_file = WORK / "rss.txt"
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if Path("/usr/bin/time").exists() else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([*timer, str(exe), *args, "--json"], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"nordpipe {' '.join(args)} failed:\n{result.stderr}")
    peak = float(rss_file.read_text().split()[-1]) / 1024 if timer else float("nan")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds, cpu, peak, json.loads(result.stdout)


def bench_publish(records: list[dict]) -> list[str]:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, out = WORK / "root", WORK / "hf"
    text_bytes = build_root(root, records)
    shutil.rmtree(out, ignore_errors=True)
    load = load_average()
    seconds, cpu, peak, stats = run_cli(["export", "hf", str(root), str(out)])
    tokenize_s = stats["extra"]["tokenize cpu seconds"]
    files = sorted(out.glob("data/*/*.parquet"))
    table = pa.concat_tables(pq.read_table(f) for f in files)
    ours_bytes = sum(f.stat().st_size for f in files)
    dataset = datasets.Dataset(table)
    start, cpu_start = time.perf_counter(), time.process_time()
    dataset.to_parquet(str(WORK / "datasets.parquet"))
    datasets_s, datasets_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    from nordpipe.publish import DEFAULT_ROW_GROUP_BYTES, DEFAULT_SHARD_BYTES, _SourceWriter

    rows_in_memory = table.to_pylist()
    shutil.rmtree(WORK / "writer", ignore_errors=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    writers: dict[str, _SourceWriter] = {}
    for row in rows_in_memory:
        writer = writers.get(row["source"])
        if writer is None:
            writer = writers[row["source"]] = _SourceWriter(str(WORK / "writer" / row["source"]),
                                                            DEFAULT_ROW_GROUP_BYTES, DEFAULT_SHARD_BYTES)
        writer.add(row, row["token_count"])
    for writer in writers.values():
        writer.close()
    writer_s, writer_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    writer_bytes = sum(f.stat().st_size for f in (WORK / "writer").rglob("*.parquet"))
    start, cpu_start = time.perf_counter(), time.process_time()
    pq.write_table(table, WORK / "pyarrow.parquet", compression="zstd")
    pyarrow_s, pyarrow_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    mb = text_bytes / 1e6
    rows = [
        "| writer | what it does | wall s | CPU s | MB/s of text per core (CPU) | parquet bytes | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| `nordpipe export hf` | start-up, read + validate jsonl.gz, count tokens, write per source, card | "
        f"{seconds:.2f} | {cpu:.2f} | {mb / cpu:.1f} | {ours_bytes:,} | {peak:.0f} |",
        f"| `nordpipe export hf` without its token counting | the same, minus the tokenizer's {tokenize_s:.2f} CPU s | "
        f"{seconds - tokenize_s:.2f} | {cpu - tokenize_s:.2f} | {mb / (cpu - tokenize_s):.1f} | | |",
        f"| nordpipe's parquet writer alone (`publish._SourceWriter`) | write the same rows (Python dicts in memory) "
        f"per source, row groups of 32 MiB | {writer_s:.2f} | {writer_cpu:.2f} | {mb / writer_cpu:.1f} | {writer_bytes:,} | |",
        f"| `datasets` `Dataset.to_parquet` | write the finished table (already in memory), one file | {datasets_s:.2f} | "
        f"{datasets_cpu:.2f} | {mb / datasets_cpu:.1f} | {(WORK / 'datasets.parquet').stat().st_size:,} | |",
        f"| `pyarrow.parquet.write_table` zstd | write the finished table (already in memory), one file | {pyarrow_s:.2f} | "
        f"{pyarrow_cpu:.2f} | {mb / pyarrow_cpu:.1f} | {(WORK / 'pyarrow.parquet').stat().st_size:,} | |",
    ]
    rows += ["", f"{stats['documents_out']:,} documents, {mb:.1f} MB of text, {stats['tokens']:,} tokens in "
             f"{len(files)} parquet files; load average before the run: {load}."]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 documents instead of 30,000")
    args = parser.parse_args()
    count = 10_000 if args.quick else 30_000
    WORK.mkdir(parents=True, exist_ok=True)
    records = make_records(count)
    text_mb = sum(len(r["text"].encode()) for r in records) / 1e6
    forms = bench_forms(records, repeat=5)
    publish = bench_publish(records)
    command = "benchmarks/bench_publish.py" + (" --quick" if args.quick else "")
    lines = [
        "# Issue 17: metadata as a JSON string, and `nordpipe export hf`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average at the end: "
        f"{load_average()}); date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Command: `.venv/bin/python {command}`. Versions: datasets {version('datasets')}, pyarrow {version('pyarrow')}, "
        f"orjson {version('orjson')}, Python {platform.python_version()}.",
        f"Data: {count:,} stage-output-like documents in 3 sources ({text_mb:.1f} MB of text; real UD sentences "
        f"{'mixed in' if ud_sentences() else 'absent: generated text only'}), metadata per source plus a "
        "`metadata.nordpipe` quality sub-object.",
        "",
        "## 1. Writing and reading metadata as a JSON string instead of an object (same records)",
        "",
        *forms,
        "",
        "## 2. `nordpipe export hf` against `datasets`' own `Dataset.to_parquet` (same table, one run)",
        "",
        *publish,
        "",
        "`export hf` is one process; its time is mostly token counting (SentencePiece) and reading the",
        "gzip input. The peers only write a table that is already in memory, as one file, so they are the",
        "floor of the writing part, not an equivalent of the whole export.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
