"""Train the person-name tagger (``nordpipe.pii.name_model.NameTagger``) on the shared NER data.

Training data (never the reported splits of ``bench_pii_names.SPLITS``): DDT train-10k and
one half of NorNE dev Bokmål and Nynorsk (``--norne-half 0``, the default and the shipped
model: the first halves "A"; ``--norne-half 1`` trains on the second halves "B" instead, for
the 2-fold figures). Texts are runs of ``--passage`` consecutive sentences (document-like:
the rules' document memory fires) and, in addition, every sentence alone.

Averaged perceptron, ``--epochs`` passes in a seeded shuffled order. The decision margin
(added to the name tags' scores) is chosen by an inner 2-fold split of the training data
(each file's training sentences cut in two; train on one part, tag the other): the largest
recall at span precision >= ``--precision`` over the pooled out-of-fold predictions (the
largest F1 when no margin reaches it). Then the
model is trained on all training data and features whose averaged weights are all below
``--prune`` are dropped (size).

    .venv/bin/python benchmarks/train_pii_name_tagger.py                  # writes src/nordpipe/data/names/name_tagger.json.gz
    .venv/bin/python benchmarks/train_pii_name_tagger.py --norne-half 1 --out benchmarks/work/name_tagger_B.json.gz
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pii_names import NER, gold_spans, passages, sentence_text, split_sentences

from nordpipe.pii import names
from nordpipe.pii.name_model import TAGS, B, I, NameTagger, O, TextFeatures, tags_to_spans, tokenize
from nordpipe.pii.names import NameFinder

OUT = Path(__file__).resolve().parents[1] / "src" / "nordpipe" / "data" / "names" / "name_tagger.json.gz"


def training_files(norne_half: int) -> list[tuple[str, str, int | None]]:
    return [
        ("da", "da_ddt-ud-ner-train-10k.conll", None),
        ("nb", "norne-no_bokmaal-ud-dev.conllu", norne_half),
        ("nn", "norne-no_nynorsk-ud-dev.conllu", norne_half),
    ]


def labelled_text(finder: NameFinder, sentence) -> tuple[TextFeatures, list[int], str]:
    """Features and gold tags of one text (tokens of ``TOKEN_RE``, labels by character offsets)."""
    text, offsets = sentence_text(sentence)
    gold = [(offsets[a][0], offsets[b][1]) for a, b in gold_spans(sentence)]
    tokens = tokenize(text)
    tags = []
    for start, _end, _tok in tokens:
        tag = O
        for gs, ge in gold:
            if gs <= start < ge:
                tag = B if start == gs else I
                break
        tags.append(tag)
    finder_rules = NameFinder.find(finder, text)  # the rules alone (finder.tagger is None)
    return TextFeatures(finder, text, tokens, finder_rules), tags, text


def texts_of(sentences, passage: int) -> list:
    return list(sentences) + (passages(sentences, passage) if passage > 1 else [])


def replacement_names() -> tuple[list[str], list[str]]:
    """(given names, surnames) to write into copies of the training texts: Faker's Nordic and
    European given names, and surnames the gazetteers do not know (US Census ranks past
    ``names.CENSUS_SURNAMES``) or Faker's Nordic ones, so the copies teach the context of a
    name rather than the name."""
    from importlib.resources import files

    given = sorted(names._faker_first_names(True))
    census = files("names").joinpath("dist.all.last").read_text(encoding="ascii").splitlines()
    rare = [line.split()[0].capitalize() for line in census[names.CENSUS_SURNAMES:] if line.strip()]
    nordic = sorted({n for loc in names.NORDIC_LOCALES for n in names._names_of(loc)[1]})
    return given, rare + nordic


def augmented(sentence, rng: random.Random, given: list[str], surnames: list[str]):
    """A copy of ``sentence`` with every PER name replaced by a random one of the same length
    (given names before the last token, a surname last; a possessive -s kept)."""
    out = list(sentence)
    i = 0
    while i < len(out):
        if out[i][1] != "B-PER":
            i += 1
            continue
        j = i + 1
        while j < len(out) and out[j][1] == "I-PER":
            j += 1
        for k in range(i, j):
            token, tag, space = out[k]
            if not token[:1].isupper() or token.endswith("."):
                continue
            word = rng.choice(surnames) if k == j - 1 and (j - i > 1 or rng.random() < 0.6) else rng.choice(given)
            if token.endswith("s") and rng.random() < 0.5 and j - i == 1:
                word += "s"
            out[k] = (word, tag, space)
        i = j
    return out


class Perceptron:
    """Averaged perceptron with lazy averaging (weights, running totals, last-update step)."""

    def __init__(self):
        self.w: dict[str, list[float]] = {}
        self.total: dict[str, list[float]] = {}
        self.stamp: dict[str, list[int]] = {}
        self.step = 0

    def _update(self, feature: str, tag: int, value: float) -> None:
        w = self.w.setdefault(feature, [0.0, 0.0, 0.0])
        total = self.total.setdefault(feature, [0.0, 0.0, 0.0])
        stamp = self.stamp.setdefault(feature, [0, 0, 0])
        total[tag] += (self.step - stamp[tag]) * w[tag]
        stamp[tag] = self.step
        w[tag] += value

    def tagger(self) -> NameTagger:
        return NameTagger(self.w)

    def train_text(self, feats: TextFeatures, gold: list[int]) -> None:
        tagger = self.tagger()
        predicted = tagger.decode(feats, margin=0.0)
        prev_i = -2
        for i in feats.scored:
            self.step += 1
            g, p = gold[i], predicted[i]
            # features with the previous tag as decoded (greedy training, as at run time)
            prev = predicted[i - 1] if i - 1 == prev_i else O
            prev_i = i
            if g == p:
                continue
            fs = feats.features[i]
            extra = ("pt=" + TAGS[prev], "pt=" + TAGS[prev] + "|" + fs[1])
            for f in (*fs, *extra):
                self._update(f, g, 1.0)
                self._update(f, p, -1.0)

    def averaged(self, prune: float) -> dict[str, list[float]]:
        out = {}
        step = max(1, self.step)
        for f, w in self.w.items():
            total, stamp = self.total[f], self.stamp[f]
            avg = [round((total[t] + (self.step - stamp[t]) * w[t]) / step, 4) for t in range(3)]
            if max(abs(a) for a in avg) >= prune:
                out[f] = avg
        return out


def train(data: list[tuple[TextFeatures, list[int]]], epochs: int, seed: int, prune: float,
          min_count: int = 1) -> NameTagger:
    if min_count > 1:
        # features seen fewer than ``min_count`` times in the training texts are dropped (a word
        # seen once is memorised, not learned)
        counts: dict[str, int] = {}
        for feats, _gold in data:
            for fs in feats.features.values():
                for f in fs:
                    counts[f] = counts.get(f, 0) + 1
        kept = []
        for feats, gold in data:
            copied = copy.copy(feats)
            copied.features = {i: fs[:2] + [f for f in fs[2:] if counts.get(f, 0) >= min_count]
                               for i, fs in feats.features.items()}
            kept.append((copied, gold))
        data = kept
    model = Perceptron()
    order = list(range(len(data)))
    rng = random.Random(seed)
    for _epoch in range(epochs):
        rng.shuffle(order)
        for k in order:
            model.train_text(*data[k])
    return NameTagger(model.averaged(prune))


def span_counts(tagger: NameTagger, data, margin: float) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for feats, gold in data:
        predicted = set(tags_to_spans(feats.tokens, tagger.decode(feats, margin), names.PARTICLES))
        truth = set(tags_to_spans(feats.tokens, gold, names.PARTICLES))
        tp += len(predicted & truth)
        fp += len(predicted - truth)
        fn += len(truth - predicted)
    return tp, fp, fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--norne-half", type=int, default=0, choices=(0, 1))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--passage", type=int, default=10)
    parser.add_argument("--precision", type=float, default=0.85)
    parser.add_argument("--prune", type=float, default=0.001)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--augment", type=int, default=2, help="copies of each training sentence with names replaced")
    parser.add_argument("--margin", type=float, help="fix the margin instead of choosing it by the inner split")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    if not NER.exists():
        sys.exit(f"{NER}: not found (the shared NER data sits next to the repository)")
    started = time.time()
    finder = NameFinder(tagger=None)
    rng = random.Random(args.seed)
    given, surnames = replacement_names()
    parts: list[list] = [[], []]
    extra: list[list] = [[], []]  # the augmented copies (trained on, never scored)  # inner folds: each file's training sentences cut in two
    for _lang, name, half in training_files(args.norne_half):
        sentences = split_sentences(NER / name, half)
        middle = len(sentences) // 2
        for k, chunk in enumerate((sentences[:middle], sentences[middle:])):
            parts[k].extend(labelled_text(finder, s)[:2] for s in texts_of(chunk, args.passage))
            for _copy in range(args.augment):
                copies = [augmented(s, rng, given, surnames) for s in chunk if any(t[1] != "O" for t in s)]
                extra[k].extend(labelled_text(finder, s)[:2] for s in copies)
    print(f"features built: {len(parts[0]) + len(parts[1])} texts + {len(extra[0]) + len(extra[1])} copies, {time.time() - started:.0f} s", file=sys.stderr)
    if args.margin is None:
        models = [train(parts[k] + extra[k], args.epochs, args.seed, args.prune, args.min_count) for k in (0, 1)]
        best = (0.0, 0.0)
        best_f1 = (0.0, -1.0)  # the fallback when no margin reaches the precision
        for step in range(-40, 41):
            margin = step / 2
            counts = [span_counts(models[k], parts[1 - k], margin) for k in (0, 1)]
            tp, fp, fn = (sum(c[j] for c in counts) for j in range(3))
            p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
            print(f"inner margin {margin:5.2f}: P {p:.3f} R {r:.3f}", file=sys.stderr)
            if p >= args.precision and r > best[1]:
                best = (margin, r)
            f1 = 2 * p * r / max(1e-9, p + r)
            if f1 > best_f1[1]:
                best_f1 = (margin, f1)
        margin = best[0] if best[1] > 0 else best_f1[0]
    else:
        margin = args.margin
    tagger = train(parts[0] + parts[1] + extra[0] + extra[1], args.epochs, args.seed, args.prune, args.min_count)
    tagger.margin = margin
    tagger.meta = {
        "trained_on": [f"{name}" + ("" if half is None else f" half {half}") for _l, name, half in
                       training_files(args.norne_half)],
        "epochs": args.epochs, "augment": args.augment, "min_count": args.min_count, "seed": args.seed, "passage": args.passage, "prune": args.prune,
        "margin_rule": f"max inner-split recall at precision >= {args.precision}" if args.margin is None else "given",
        "license": "CC BY-SA 4.0 (derived from DDT, CC BY-SA 4.0; NorNE annotations CC0)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tagger.save(args.out)
    print(f"margin {margin}; {len(tagger.weights)} features; {Path(args.out).stat().st_size / 1e6:.2f} MB "
          f"-> {args.out}; {time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
