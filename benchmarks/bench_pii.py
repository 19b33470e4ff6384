"""Benchmark: nordpipe's PII scanner vs presidio AnalyzerEngine + AnonymizerEngine.

Side by side in one process on the same documents, with the same recognizers (nordpipe's
patterns, context words and name finder, as presidio recognizers), tag mode:

- ours: ``PiiScanner.scan`` + ``Replacer.replace`` (the Cython-compiled modules when built,
  see ``setup.py``; the engine's module file is printed);
- presidio, library validators: presidio as one would build it, every candidate validated
  by python-stdnum / phonenumbers / tldextract (``nordpipe.pii.reference``): the baseline;
- presidio, nordpipe validators: the same with nordpipe's fast validators plugged in, which
  isolates presidio's framework cost;
- each with presidio's ``NoOpNlpEngine`` and with a ``SpacyNlpEngine`` loading a blank Danish
  spaCy pipeline from a local folder (tokens for presidio's context enhancer, no model; the
  closest offline equivalent of presidio's default spaCy engine).

The engines run interleaved: chunks of 100 documents, every engine on each chunk in turn, so
they share the machine's load; validator caches are cleared before every engine's chunk.

Reports characters/s per core (CPU time of this process), recall on the labelled items of the
synthetic corpus for each engine, and how often the outputs are identical.

    .venv/bin/python benchmarks/bench_pii.py            # full run (3,000 documents)
    .venv/bin/python benchmarks/bench_pii.py --quick    # 300 documents

Before/after a change: run the same script with the older tree's sources first on the path
(``PYTHONPATH=/tmp/pii-before/src``, a ``git worktree`` of the older commit with the compiled
``_loops`` module built or copied in); the printed module path says which code ran.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import Counter
from importlib.metadata import version
from pathlib import Path

from nordpipe.pii.engine import PiiScanner
from nordpipe.pii.replace import Replacer
from nordpipe.pii.synthetic import make_documents

SHARED = Path(__file__).resolve().parents[2] / "shared"


def real_sentences() -> list[str]:
    """Danish and Swedish UD sentences as filler (real text with real names), if ../shared exists."""
    sentences = []
    for name in ("da_ddt-ud-dev.conllu", "sv_talbanken-ud-dev.conllu"):
        path = SHARED / "data" / "ud" / name
        if path.exists():
            sentences += [line[9:].strip() for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# text = ")]
    return sentences


def recall(outputs: list[str], docs) -> tuple[float, float]:
    """(share of must-replace items gone from the output, share of keep items still there)."""
    gone = total = kept = keep_total = 0
    for out, doc in zip(outputs, docs, strict=True):
        for item in doc.items:
            if item.must_replace:
                total += 1
                gone += item.value not in out
            else:
                keep_total += 1
                kept += item.value in out
    return gone / total, kept / keep_total


def clear_validator_caches() -> None:
    """The phone and e-mail-domain validators are cached and shared by all engines: start
    each engine cold, so none profits from the one measured before it."""
    from nordpipe.pii import recognizers

    recognizers.validate_phone.cache_clear()
    recognizers._known_domain.cache_clear()


def run_interleaved(engines, docs, chunk: int = 100) -> dict[str, tuple[list[str], float, float]]:
    """Every engine on every chunk of ``chunk`` documents in turn (the order rotating from
    chunk to chunk), so all engines see the same machine load; each starts each chunk with
    cold validator caches. Returns outputs, CPU seconds and wall seconds per engine."""
    for _, func in engines:
        func(docs[0].text)  # warm up (lazy loading)
    outputs: dict[str, list[str]] = {label: [] for label, _ in engines}
    cpu = dict.fromkeys(outputs, 0.0)
    wall = dict.fromkeys(outputs, 0.0)
    for n, i in enumerate(range(0, len(docs), chunk)):
        part = [doc.text for doc in docs[i : i + chunk]]
        turn = n % len(engines)
        for label, func in engines[turn:] + engines[:turn]:
            clear_validator_caches()
            started_wall = time.perf_counter()
            started_cpu = time.process_time()
            outputs[label].extend(func(text) for text in part)
            cpu[label] += time.process_time() - started_cpu
            wall[label] += time.perf_counter() - started_wall
    return {label: (outputs[label], cpu[label], wall[label]) for label in outputs}


def blank_spacy_engine(folder: str):
    """presidio's SpacyNlpEngine on a blank Danish spaCy pipeline saved to ``folder`` (tokens
    for presidio's lemma context enhancer, no model download)."""
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    spacy.blank("da").to_disk(folder)
    nlp_engine = SpacyNlpEngine(models=[{"lang_code": "da", "model_name": folder}])
    nlp_engine.load()
    return nlp_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000, help="documents (default 3000)")
    parser.add_argument("--quick", action="store_true", help="300 documents")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name-tagger", choices=("none", "shipped"),
                        help="NameFinder with or without its tagger for both engines (names.DEFAULT_TAGGER; "
                        "default: the package default)")
    parser.add_argument("--no-spacy", action="store_true", help="skip the blank-spaCy presidio variant")
    parser.add_argument("--prose-share", type=float, default=0.05,
                        help="share of labelled sentences in the second, prose-like corpus (default 0.05)")
    args = parser.parse_args()
    count = 300 if args.quick else args.docs
    from nordpipe.pii import names

    if args.name_tagger:
        names.DEFAULT_TAGGER = None if args.name_tagger == "none" else args.name_tagger
    print(f"name finder: {'rules + tagger' if names.DEFAULT_TAGGER else 'rules only'}")

    from nordpipe.pii.presidio import PresidioPipeline

    filler = real_sentences()
    print(f"python {platform.python_version()}, presidio-analyzer {version('presidio-analyzer')}, "
          f"presidio-anonymizer {version('presidio-anonymizer')}, spacy {version('spacy')}, "
          f"phonenumbers {version('phonenumbers')}, python-stdnum {version('python-stdnum')}, faker {version('faker')}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    scanner = PiiScanner()
    replacer = Replacer()
    import nordpipe.pii.engine

    print(f"nordpipe scanner module: {Path(nordpipe.pii.engine.__file__).name} ({Path(nordpipe.pii.engine.__file__).parent}), "
          f"compiled loops: {nordpipe.pii.engine.number_runs is not nordpipe.pii.engine.number_runs_regex}")

    def ours(text: str) -> str:
        return replacer.replace(text, scanner.scan(text))[0]

    # presidio as a user would build it: nordpipe's patterns, context words and name finder as
    # presidio recognizers, each candidate validated with the libraries (python-stdnum,
    # phonenumbers, tldextract: ``nordpipe.pii.reference``); and the same with nordpipe's fast
    # validators plugged into presidio, which shows how much of the difference is presidio's
    # framework alone
    engines = [("nordpipe", ours)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spacy_engine = None if args.no_spacy else blank_spacy_engine(tempfile.mkdtemp(prefix="bench-pii-spacy-"))
    for validators in ("library", "nordpipe"):
        presidio = PresidioPipeline(validators=validators)
        engines.append((f"presidio no-op NLP, {validators} validators", presidio.redact))
        if spacy_engine is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                presidio_spacy = PresidioPipeline(validators=validators, nlp_engine=spacy_engine)
            engines.append((f"presidio blank spaCy, {validators} validators", presidio_spacy.redact))

    # everything loaded so far (spaCy, presidio, name lists) is long-lived: keep it out of
    # the cyclic garbage collector's full passes, which would otherwise rescan it while any
    # engine runs (the same for every engine)
    gc.collect()
    gc.freeze()
    # two corpora: PII-dense test text (55% of sentences carry personal data or a look-alike)
    # and prose-like text (5%), both with real UD Danish/Swedish sentences as the rest
    for corpus_name, share in (("PII-dense", 0.55), ("prose", args.prose_share)):
        docs = make_documents(count, seed=args.seed, sentences_per_doc=16, filler=filler or None, labelled_share=share)
        chars = sum(len(d.text) for d in docs)
        print()
        print(f"## {corpus_name}: {count:,} documents, {chars:,} characters, {share:.0%} of sentences labelled "
              f"(synthetic Danish/Norwegian/Swedish PII sentences, filler: {'UD da/sv sentences' if filler else 'templates'})")
        results = run_interleaved(engines, docs)
        base_out, base_cpu, _ = results["nordpipe"]
        print()
        print(f"{'engine':44} {'chars/s/core':>14} {'docs/s/core':>12} {'wall s':>8} {'cpu s':>8} {'recall':>8} {'kept':>8} {'same output':>12} {'ours faster':>12}")
        for label, (outputs, cpu, wall) in results.items():
            rec, kept = recall(outputs, docs)
            same = sum(a == b for a, b in zip(outputs, base_out, strict=True)) / len(docs)
            print(f"{label:44} {chars / cpu:>14,.0f} {len(docs) / cpu:>12,.0f} {wall:>8.2f} {cpu:>8.2f} {rec:>8.4f} {kept:>8.4f} {same:>12.3f} {cpu / base_cpu:>11.1f}x")
        by_kind = Counter()
        by_kind_total = Counter()
        for out, doc in zip(base_out, docs, strict=True):
            for item in doc.items:
                by_kind_total[item.kind] += 1
                by_kind[item.kind] += (item.value not in out) if item.must_replace else (item.value in out)
        print()
        print("nordpipe per kind (replaced for PII, untouched for KEEP:*): " + ", ".join(
            f"{k} {by_kind[k]}/{by_kind_total[k]}" for k in sorted(by_kind_total)))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
