"""Train the name finder's model (``nordpipe.pii.names.NameModel``) on the tuning splits.

Tuning splits (never the reported ones, see ``bench_pii_names.SPLITS``): DDT train-10k and the
first halves of NorNE dev Bokmål and Nynorsk. Examples: the capitalised chains the rules leave
undecided in each sentence (``NameFinder.candidates``), labelled as names when they cover
exactly the tokens of a gold PER span. Model: logistic regression over the sparse string
features of ``NameFinder.chain_features``, plain SGD with L2 (pure Python; a few thousand
examples). The threshold is the lowest one at which the whole finder (rules + model) keeps
span precision >= ``--precision`` on the tuning splits.

    .venv/bin/python benchmarks/train_pii_names.py      # writes benchmarks/work/name_model.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pii_names import NER, SPLITS, evaluate, gold_spans, sentence_text, split_sentences

from nordpipe.pii.names import _WEAK_RULES, NameFinder, NameModel

OUT = Path(__file__).resolve().parent / "work" / "name_model.json"


def examples(finder: NameFinder, sentences) -> list[tuple[list[str], int]]:
    found = []
    for sentence in sentences:
        text, offsets = sentence_text(sentence)
        gold = gold_spans(sentence)
        spans, undecided = finder.candidates(text)
        for span in spans:
            if span.rule in _WEAK_RULES and " " not in text[span.start : span.end]:
                hit = [i for i, (a, b) in enumerate(offsets) if a < span.end and b > span.start]
                label = int((hit[0], hit[-1]) in gold)
                found.append((finder.chain_features(text, [(span.start, span.end, text[span.start : span.end])], span.rule), label))
        spans = [s for s in spans if not (s.rule in _WEAK_RULES and " " not in text[s.start : s.end])]
        for chain in undecided:
            chain = finder._trim_chain(text, chain)
            if not chain:
                continue
            start, end = chain[0][0], chain[-1][1]
            if any(s.start < end and s.end > start for s in spans):
                continue
            hit = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
            label = int((hit[0], hit[-1]) in gold) if hit else 0
            found.append((finder.chain_features(text, chain), label))
    return found


def train(data, epochs: int, rate: float, l2: float, seed: int) -> tuple[dict[str, float], float]:
    weights: dict[str, float] = {}
    bias = 0.0
    order = list(range(len(data)))
    rng = random.Random(seed)
    for epoch in range(epochs):
        rng.shuffle(order)
        step = rate / (1 + epoch)
        for k in order:
            features, label = data[k]
            z = bias + sum(weights.get(f, 0.0) for f in features)
            p = 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
            g = p - label
            bias -= step * g
            for f in features:
                w = weights.get(f, 0.0)
                weights[f] = w - step * (g + l2 * w)
    return {f: round(w, 4) for f, w in weights.items() if abs(w) >= 0.005}, round(bias, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", type=float, default=0.88, help="span precision to keep on the tuning splits")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    tuning = [(language, split_sentences(NER / name, half)) for language, _label, name, half, role in SPLITS
              if role == "tuned"]
    rules = NameFinder()
    data = [example for _language, sentences in tuning for example in examples(rules, sentences)]
    print(f"{len(data)} undecided chains, {sum(label for _, label in data)} of them names")
    weights, bias = train(data, args.epochs, args.rate, args.l2, args.seed)
    chosen = None
    for step in range(-20, 41):
        threshold = step / 10
        finder = NameFinder(model=NameModel(weights, bias, threshold))
        tp = fp = fn = 0
        for _language, sentences in tuning:
            scores = evaluate(finder, sentences)
            found = scores["span_recall"] * scores["gold"]
            tp += found
            fn += scores["gold"] - found
            fp += found / scores["span_precision"] - found if scores["span_precision"] else 0
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        if precision >= args.precision:
            chosen = (threshold, precision, recall)
            break
    if chosen is None:
        sys.exit("no threshold reaches the precision asked for")
    threshold, precision, recall = chosen
    print(f"threshold {threshold}: tuning span precision {precision:.3f}, recall {recall:.3f}; {len(weights)} weights")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "about": "nordpipe name model (logistic regression over NameFinder.chain_features), trained by "
                 "benchmarks/train_pii_names.py on DDT train-10k (CC BY-SA 4.0) and the first halves of NorNE dev "
                 "nb/nn (CC0 annotations); weights only, no text",
        "bias": bias, "threshold": threshold, "weights": dict(sorted(weights.items())),
    }, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
