"""Benchmark: person names on real Danish, Bokmål and Nynorsk text (NER-annotated sentences).

Data (``../shared/data/ner``, read-only; never copied into the repository):

- Danish: DDT with NER tags (bplank/danish_ner_transfer), CoNLL: ``da_ddt-ud-ner-train-10k``
  (the split rules were tuned on) and ``da_ddt-ud-ner-dev`` (reported, never tuned on);
- Bokmål and Nynorsk: NorNE dev (ltgoslo/norne), CoNLL-U with ``name=B-PER`` in MISC. The
  files carry no document ids, so each is split into its first and second half of sentences
  (consecutive sentences come from the same document: at most one document is cut in two);
  the rules were tuned on the first half ("A") and the second half ("B") is reported.

Each sentence is one text (its tokens joined with the spaces CoNLL-U's ``SpaceAfter`` gives;
DDT has no spacing, tokens are joined with one space); a second row per split scores runs of
10 consecutive sentences as one text (line breaks between them), closer to the documents the
PII stage sees: a surname used alone after the full name (``Robolis`` after ``Savas
Robolis``) is then found by the finder's document memory. Scores are span-level with exact token
boundaries (a predicted span counts when it covers exactly the tokens of a gold PER span) and
token-level ("removed": a gold name token inside any predicted span).

    .venv/bin/python benchmarks/bench_pii_names.py                     # the finder on PYTHONPATH
    .venv/bin/python benchmarks/bench_pii_names.py --before /tmp/pii-before/src   # and an old tree, side by side
    .venv/bin/python benchmarks/bench_pii_names.py --json             # one JSON line (used for --before)
    .venv/bin/python benchmarks/bench_pii_names.py --model benchmarks/work/name_model.json   # with the experimental model
    .venv/bin/python benchmarks/bench_pii_names.py --fold2 benchmarks/work/name_tagger_B.json.gz   # + the 2-fold swap

Columns: "rules" is ``NameFinder(tagger=None)``, "rules + tagger" the default ``NameFinder()``
(the shipped ``name_model.NameTagger``, trained on DDT train-10k and the first halves "A"),
both in the same run. ``--fold2``: a tagger trained on DDT train-10k and the second halves
"B" (``train_pii_name_tagger.py --norne-half 1``), scored on the first halves, to show how
much the figures move with the split.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NER = Path(__file__).resolve().parents[2] / "shared" / "data" / "ner"
PASSAGE = 10  # consecutive sentences per text in the passage-level rows

# (language, split label, file, which half: None = all, 0 = first half, 1 = second half, role)
SPLITS = (
    ("da", "DDT train-10k", "da_ddt-ud-ner-train-10k.conll", None, "tuned"),
    ("da", "DDT dev", "da_ddt-ud-ner-dev.conll", None, "held out"),
    ("nb", "NorNE dev A", "norne-no_bokmaal-ud-dev.conllu", 0, "tuned"),
    ("nb", "NorNE dev B", "norne-no_bokmaal-ud-dev.conllu", 1, "held out"),
    ("nn", "NorNE dev A", "norne-no_nynorsk-ud-dev.conllu", 0, "tuned"),
    ("nn", "NorNE dev B", "norne-no_nynorsk-ud-dev.conllu", 1, "held out"),
)


def read_sentences(path: Path) -> list[list[tuple[str, str, bool]]]:
    """Sentences as ``(token, BIO tag, space after)`` lists, from CoNLL (token TAB tag) or
    CoNLL-U (``name=`` in MISC; multi-word token ranges skipped)."""
    sentences: list[list[tuple[str, str, bool]]] = []
    current: list[tuple[str, str, bool]] = []
    conllu = path.suffix == ".conllu"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if conllu:
            if "-" in cols[0] or "." in cols[0]:
                continue
            misc = dict(kv.split("=", 1) for kv in cols[9].split("|") if "=" in kv)
            current.append((cols[1], misc.get("name", "O"), misc.get("SpaceAfter") != "No"))
        else:
            current.append((cols[0], cols[-1], True))
    if current:
        sentences.append(current)
    return sentences


def split_sentences(path: Path, half: int | None) -> list[list[tuple[str, str, bool]]]:
    sentences = read_sentences(path)
    if half is None:
        return sentences
    middle = len(sentences) // 2
    return sentences[:middle] if half == 0 else sentences[middle:]


def sentence_text(sentence: list[tuple[str, str, bool]]) -> tuple[str, list[tuple[int, int]]]:
    text, offsets = "", []
    for token, _tag, space_after in sentence:
        if token == "\n":
            text = text.rstrip(" ")
        offsets.append((len(text), len(text) + len(token)))
        text += token + (" " if space_after else "")
    return text.rstrip(" "), offsets


def gold_spans(sentence: list[tuple[str, str, bool]]) -> set[tuple[int, int]]:
    gold: set[tuple[int, int]] = set()
    current: list[int] | None = None
    for i, (_token, tag, _space) in enumerate(sentence):
        if tag == "I-PER" and current is not None:
            current[1] = i
            continue
        if current is not None:
            gold.add((current[0], current[1]))
        current = [i, i] if tag in ("B-PER", "I-PER") else None
    if current is not None:
        gold.add((current[0], current[1]))
    return gold


def passages(sentences, size: int) -> list[list[tuple[str, str, bool]]]:
    """Runs of ``size`` consecutive sentences as one text each (joined by a line break,
    written as a token that is never a name), so a name's earlier full mention is in the same
    text, as in a document."""
    out = []
    for i in range(0, len(sentences), size):
        joined: list[tuple[str, str, bool]] = []
        for sentence in sentences[i : i + size]:
            if joined:
                joined.append(("\n", "O", False))
            joined.extend(sentence)
        out.append(joined)
    return out


def evaluate(finder, sentences, language: str | None = None, errors: list | None = None,
             passage: int = 1) -> dict[str, float]:
    """Span-level (exact token boundaries) and token-level precision/recall of PER, each
    sentence alone (``passage`` 1) or in runs of ``passage`` consecutive sentences."""
    tp = fp = fn = ttp = tfp = tfn = 0
    if passage > 1:
        sentences = passages(sentences, passage)
    for sentence in sentences:
        text, offsets = sentence_text(sentence)
        gold = gold_spans(sentence)
        predicted = set()
        found = finder.find(text, language) if language is not None else finder.find(text)
        for span in found:
            hit = [i for i, (a, b) in enumerate(offsets) if a < span.end and b > span.start]
            if hit:
                predicted.add((hit[0], hit[-1]))
        tp += len(predicted & gold)
        fp += len(predicted - gold)
        fn += len(gold - predicted)
        if errors is not None and predicted != gold:
            errors.append((text, [" ".join(t for t, _, _ in sentence[a : b + 1]) for a, b in sorted(gold - predicted)],
                           [" ".join(t for t, _, _ in sentence[a : b + 1]) for a, b in sorted(predicted - gold)]))
        gold_tokens = {i for a, b in gold for i in range(a, b + 1)}
        pred_tokens = {i for a, b in predicted for i in range(a, b + 1)}
        ttp += len(gold_tokens & pred_tokens)
        tfp += len(pred_tokens - gold_tokens)
        tfn += len(gold_tokens - pred_tokens)
    return {
        "gold": tp + fn, "span_precision": tp / max(1, tp + fp), "span_recall": tp / max(1, tp + fn),
        "token_precision": ttp / max(1, ttp + tfp), "token_recall": ttp / max(1, ttp + tfn),
    }


def finder_accepts_language() -> bool:
    import inspect

    from nordpipe.pii.names import NameFinder

    return "language" in inspect.signature(NameFinder.find).parameters


def make_finder(model: str | None = None, tagger: str | None = "shipped"):
    """The finder measured: ``tagger`` "shipped" (the default finder), None (rules only) or a
    tagger model file; ``model``: the experimental ``NameModel`` JSON file."""
    import inspect

    from nordpipe.pii.names import NameFinder

    kwargs = {}
    if "tagger" in inspect.signature(NameFinder).parameters:  # (trees before the tagger have none)
        kwargs["tagger"] = tagger
    if model:
        from nordpipe.pii.names import NameModel

        kwargs["model"] = NameModel.from_file(model)
    return NameFinder(**kwargs)


def measure(model: str | None = None, tagger: str | None = "shipped", splits=SPLITS) -> list[dict]:
    finder = make_finder(model, tagger)
    with_language = finder_accepts_language()
    rows = []
    for language, label, name, half, role in splits:
        path = NER / name
        if not path.exists():
            continue
        sentences = split_sentences(path, half)
        for passage in (1, PASSAGE):
            started = time.process_time()
            scores = evaluate(finder, sentences, language if with_language else None, passage=passage)
            scores["cpu_s"] = time.process_time() - started
            rows.append({"language": language, "split": label, "role": role, "sentences": len(sentences),
                         "unit": "sentence" if passage == 1 else f"{passage} sentences", **scores})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="src folder of an older nordpipe tree, measured side by side in a subprocess")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line")
    parser.add_argument("--model", help="a NameModel JSON file (benchmarks/train_pii_names.py) for the after column")
    parser.add_argument("--errors", help="print missed/extra names of this split label (e.g. 'da DDT train-10k')")
    parser.add_argument("--rules-only", action="store_true", help="measure the finder without its tagger")
    parser.add_argument("--fold2", help="a tagger trained on the second halves (train_pii_name_tagger.py --norne-half 1): "
                        "also report it on the first halves (2-fold)")
    args = parser.parse_args()
    if not NER.exists():
        sys.exit(f"{NER}: not found (the shared NER data sits next to the repository)")
    if args.errors:
        finder = make_finder(args.model, None if args.rules_only else "shipped")
        for language, label, name, half, _role in SPLITS:
            if f"{language} {label}" != args.errors:
                continue
            errors: list = []
            evaluate(finder, split_sentences(NER / name, half), language if finder_accepts_language() else None, errors)
            for text, missed, extra in errors:
                print(f"MISSED {missed} EXTRA {extra} :: {text[:200]}")
        return
    if not args.rules_only:
        from nordpipe.pii.name_model import NameTagger

        started = time.perf_counter()
        NameTagger.load()
        print(f"tagger model load: {time.perf_counter() - started:.3f} s; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    rows = measure(args.model, None if args.rules_only else "shipped")
    if args.json:
        print(json.dumps(rows))
        return
    columns = [("rules + tagger" if not args.rules_only else "rules", rows)]
    if not args.rules_only:
        columns.insert(0, ("rules", measure(args.model, None)))
    if args.before:
        env = dict(os.environ, PYTHONPATH=args.before)
        out = subprocess.run([sys.executable, __file__, "--json"], env=env, capture_output=True, text=True, check=True)
        columns.insert(0, ("before", json.loads(out.stdout.strip().splitlines()[-1])))
    print("| language | split | used for | sentences | text = | gold names | "
          + " | ".join(f"{c} span P / R / F1 | {c} tokens removed | {c} cpu s" for c, _ in columns) + " |")
    print("|---|---|---|---|---|---|" + "---|---|---|" * len(columns))
    for i, row in enumerate(rows):
        cells = []
        for _c, col in columns:
            r = col[i]
            cells.append(f"{_prf(r)} | {r['token_recall']:.3f} | {r['cpu_s']:.2f}")
        print(f"| {row['language']} | {row['split']} | {row['role']} | {row['sentences']} | {row['unit']} | {row['gold']} | "
              + " | ".join(cells) + " |")
    if args.fold2:
        # 2-fold: the tagger trained on DDT train-10k + the second halves, scored on the first halves
        swapped = [(lang, label, name, half, "tagger trained on B" if half == 1 else "held out for the tagger (fold 2)")
                   for lang, label, name, half, _role in SPLITS if half is not None]
        fold2 = measure(args.model, args.fold2, swapped)
        rules = measure(args.model, None, swapped)
        print()
        print("| language | split | used for | text = | gold names | rules span P / R / F1 | fold-2 tagger span P / R / F1 "
              "| tokens removed (rules / tagger) |")
        print("|---|---|---|---|---|---|---|---|")
        for r, t in zip(rules, fold2, strict=True):
            print(f"| {t['language']} | {t['split']} | {t['role']} | {t['unit']} | {t['gold']} | {_prf(r)} | {_prf(t)} "
                  f"| {r['token_recall']:.3f} / {t['token_recall']:.3f} |")


def _prf(row: dict) -> str:
    p, r = row["span_precision"], row["span_recall"]
    return f"{p:.3f} / {r:.3f} / {2 * p * r / max(1e-9, p + r):.3f}"


if __name__ == "__main__":
    main()
