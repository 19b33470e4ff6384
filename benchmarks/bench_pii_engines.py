"""``nordpipe pii`` with the fast engine vs ``--engine presidio``, same input, one run.

Times the real CLI (one task, tag mode, same key) on generated documents (``pii.synthetic``,
every entity type and language) and, when ``../shared`` is present, on real Danish and
Norwegian NER text (DDT dev, NorNE dev, 8 sentences a document), and checks that both engines
wrote byte-identical documents. A third run, ``fast, text only`` (``--fields none --skip-fields
id``), gives the cost of scanning the metadata (a URL, a title, a license per document) and the
ids, which the default run does (issue 18); a second table measures the same split in process
(CPU time, best of 3), which the machine's load disturbs much less than the CLI's wall time. Wall time includes the CLI's start and the engine's build;
"net" subtracts the wall time of the same command on a one-document input (that fixed cost).
The real text is repeated (``--real-copies``, new ids) to give the timing some length.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_pii_engines.py [--docs 3000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _nordpipe() -> list[str]:
    exe = Path(sys.executable).parent / "nordpipe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nordpipe.cli.main"]


def _record(doc_id: str, text: str, language: str | None) -> dict:
    # web-like metadata (a URL with a query, a title from the text's first words, a license)
    # so the metadata scan of the default run has the work of a crawled corpus
    metadata = {"url": f"https://eksempel.dk/artikel/{doc_id}?side=1#top", "title": " ".join(text.split()[:8]),
                "license": "cc-by-4.0"}
    if language:
        metadata["language"] = language
    return {"id": doc_id, "text": text, "source": "bench", "added": "2024-05-01", "created": "2020-01-01, 2024-01-01",
            "metadata": metadata}


VARIANTS = [
    ("fast", ("--engine", "fast")),
    # text only: no metadata fields, no ids: the cost of scanning outside the text (issue 18)
    ("fast, text only", ("--engine", "fast", "--fields", "none", "--skip-fields", "id")),
    ("presidio", ("--engine", "presidio")),
]


def _generated(count: int) -> list[dict]:
    from nordpipe.pii.synthetic import make_documents

    return [_record(d.id, d.text, d.language) for d in make_documents(count, seed=7)]


def _real() -> list[dict]:
    records = []
    for name, language in (("da_ddt-ud-ner-dev.conll", "da"), ("norne-no_bokmaal-ud-dev.conllu", "nb"),
                           ("norne-no_nynorsk-ud-dev.conllu", "nn")):
        lines = (SHARED / "data" / "ner" / name).read_text(encoding="utf-8").splitlines()
        sentences = [line[len("# text = "):] for line in lines if line.startswith("# text = ")]
        if not sentences:
            words: list[str] = []
            for line in [*lines, ""]:
                if line.strip() and not line.startswith("#"):
                    words.append(line.split("\t")[0])
                elif words:
                    sentences.append(" ".join(words))
                    words = []
        records += [_record(f"{language}-{i}", " ".join(sentences[i : i + 8]), language)
                    for i in range(0, len(sentences), 8)]
    return records


def _write(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True)
    with gzip.open(folder / "part-0.jsonl.gz", "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return records


def _documents(output: Path) -> bytes:
    return b"".join(gzip.decompress(p.read_bytes()) for p in sorted((output / "documents").glob("*.jsonl.gz")))


def _run(source: Path, output: Path, *flags: str) -> float:
    started = time.perf_counter()
    subprocess.run([*_nordpipe(), "pii", str(source), str(output), "--key-env", "BENCH_PII_KEY", *flags], check=True,
                   capture_output=True, text=True, env={**os.environ, "BENCH_PII_KEY": "bench"})
    return time.perf_counter() - started


def _in_process_cost(records: list[dict]) -> tuple[float, float]:
    """CPU µs per document of the text scan + replacement and of the metadata + id redaction
    (``pii.fields.FieldRedactor``, as ``PiiReplace`` runs it), in this process, best of 3: the
    CLI's wall times above carry the machine's load; CPU time in one process much less."""
    from nordpipe.pii.engine import PiiScanner
    from nordpipe.pii.fields import ID_PREFIX, FieldRedactor, FieldSelection, may_hold_pii
    from nordpipe.pii.replace import Replacer

    scanner, replacer, selection = PiiScanner(), Replacer(), FieldSelection()
    best_text = best_fields = float("inf")
    for _ in range(3):
        text_cpu = fields_cpu = 0.0
        for record in records:
            language = record["metadata"].get("language")
            started = time.process_time()
            spans = scanner.scan(record["text"], language)
            replacer.replace(record["text"], spans, record["id"], language)
            middle = time.process_time()
            redactor = FieldRedactor(selection, lambda v, lang=language: scanner.scan(v, lang) if may_hold_pii(v) else [],
                                     lambda v, sp, lang=language: replacer.replace(v, sp, "d", lang),
                                     lambda v: ID_PREFIX + "0" * 32)
            found: list = []
            redactor.redact_id(record["id"], found)
            redactor.redact_metadata(json.loads(json.dumps(record["metadata"])), found)
            fields_cpu += time.process_time() - middle
            text_cpu += middle - started
        best_text, best_fields = min(best_text, text_cpu), min(best_fields, fields_cpu)
    return best_text / len(records) * 1e6, best_fields / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=3000, help="generated documents")
    parser.add_argument("--real-copies", type=int, default=5, help="copies of the real documents")
    parser.add_argument("--in-process-only", action="store_true", help="only the in-process text/metadata split")
    args = parser.parse_args()
    inputs = {"generated": _generated(args.docs)}
    if (SHARED / "data" / "ner").is_dir():
        real = _real()
        inputs[f"real (DDT + NorNE dev) x{args.real_copies}"] = [
            {**r, "id": f"{r['id']}-{copy}"} for copy in range(args.real_copies) for r in real]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if not args.in_process_only:
        print("| text | documents | MB | engine | wall s | fixed s (1 doc) | net docs/s | identical documents |")
        print("|---|---|---|---|---|---|---|---|")
    work = Path(tempfile.mkdtemp(prefix="bench-pii-engines-"))
    if args.in_process_only:
        inputs_cli: dict[str, list[dict]] = {}
    else:
        inputs_cli = inputs
    try:
        for label, records in inputs_cli.items():
            folder = work / label.split()[0]
            _write(folder / "in", records)
            _write(folder / "one", records[:1])
            megabytes = sum(len(r["text"].encode()) for r in records) / 1e6
            timings = {}
            for variant, flags in VARIANTS:
                fixed = _run(folder / "one", folder / f"one-{variant}", *flags)
                wall = _run(folder / "in", folder / variant, *flags)
                timings[variant] = (wall, fixed)
            for variant, (wall, fixed) in timings.items():
                # presidio is compared with the fast engine's default run, the text-only run with
                # itself (its metadata is left as it is by design)
                same = variant == "fast, text only" or _documents(folder / variant) == _documents(folder / "fast")
                print(f"| {label} | {len(records)} | {megabytes:.2f} | {variant} | {wall:.1f} | {fixed:.1f} | "
                      f"{len(records) / max(wall - fixed, 1e-9):,.0f} | {'yes' if same else 'NO'} |")
    finally:
        shutil.rmtree(work)
    print("\n| text | text scan + replace, CPU µs/doc | metadata + id, CPU µs/doc | share of the text's cost |")
    print("|---|---|---|---|")
    for label, records in inputs.items():
        text_us, fields_us = _in_process_cost(records)
        print(f"| {label} | {text_us:.1f} | {fields_us:.1f} | {fields_us / text_us:.0%} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
