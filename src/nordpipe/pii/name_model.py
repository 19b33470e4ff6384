"""A small trained tagger for person names (issue 18): an averaged perceptron over the
capitalised words of a text, stacked on the rules of ``nordpipe.pii.names.NameFinder``.

Why: the rules and gazetteers of ``NameFinder`` cannot tell a surname used alone
("Stoltenberg") from a place or an organisation, and the US Census surnames make English
titles look like names ("Rock Band"). A tagger that weighs the word itself, its endings, the
words around it, its gazetteer class *and the rules' verdict* learns which verdicts to trust
from labelled Nordic text.

Design:

- Tokens: one regular expression (``TOKEN_RE``): initials with their dots ("H.C."), words
  with inner hyphens/apostrophes, numbers, single other characters. Training tokenises the
  text of the labelled sentences with the same expression (labels come from character
  offsets), so training and run time see the same tokens.
- Only capitalised tokens (and name particles such as "von" between two of them) are scored;
  every other token is "outside" (a lower-case word is never a name in the training data
  often enough to matter) but still serves as context. That keeps the cost per document to
  the few capitalised words, like the rules.
- Tags O/B/I, decoded greedily left to right (the previous tag is a feature). Averaged
  perceptron weights (Collins 2002) per (feature, tag), stored as a gzip'd JSON map
  ``feature -> [O, B, I]`` of the non-zero averaged weights (``data/names/name_tagger.json.gz``).
- Features (``token_features``): the lower-cased word, its 2-4 letter endings and 3 letter
  start, its shape, its ``NameFinder`` gazetteer class, whether only the US Census list has
  it as a given name, sentence-initial position (and whether the text also writes the word in
  lower case), the two words on each side and the classes of the capitalised neighbours, a
  title or reporting verb before, a reporting verb or an age in brackets after, and the rule
  of the ``NameFinder`` span covering the token (or none). The rules are thus a feature, not
  a separate vote.
- ``bias`` (``margin``) is added to the name tags' scores before the decision: the privacy
  knob (higher: more recall, less precision). It is fixed in the model file by the training
  script, chosen on an inner split of the training data (never on the reported splits).

- Training copies: every training sentence with a name is added twice more with its names
  replaced by Faker given names and surnames the gazetteers lack, so the weights learn the
  context of a name rather than the names of the training text; features seen once are
  dropped (without both: Bokmål held-out precision 0.727, recall 0.782).
- After decoding: document memory (a word tagged as a name somewhere is a name wherever it
  stands alone in the same text), and a span that is exactly a multi-word place name of
  Faker's address lists ("Jan Mayen") is dropped.

Measured 2026-12-07 (held out, span P / R, one sentence per text; rules -> rules + tagger):
DDT dev 0.888/0.865 -> 0.852/0.846, NorNE Bokmål B 0.611/0.774 -> 0.835/0.838, Nynorsk B
0.891/0.662 -> 0.915/0.713. The issue's target (recall >= 0.92 at precision >= 0.85) is not
reached; misses are unknown surnames repeated in one document ("Eminem", "Fardal"). Cost: pure
Python, every capitalised word scored: ``NameFinder.find`` 36 -> 281 µs per synthetic
document (load ~15), the whole scan ~3x slower. Hence opt-in (``names.DEFAULT_TAGGER``).

Training and figures: ``benchmarks/train_pii_name_tagger.py`` (seeded, reproducible) and
``benchmarks/bench_pii_names.py``; results in ``benchmarks/results/pii.md``. The shipped model
is trained on DDT train-10k and the first halves of NorNE dev Bokmål and Nynorsk; the
figures are reported on DDT dev and the second halves (held out). Data licences: DDT text CC
BY-SA 4.0 (so the model file, derived from it, is CC BY-SA 4.0); NorNE annotations CC0, its
texts are not republished (the model holds single lower-cased words and weights, no text).
"""

from __future__ import annotations

import bisect
import functools
import gzip
import json
import re
from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nordpipe.pii.names import NameFinder, NameSpan

TAGS = ("O", "B", "I")
O, B, I = 0, 1, 2  # noqa: E741 - the tag names of BIO

_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĴĶĹĻĽĿŁŃŅŇŊŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽ"
TOKEN_RE = re.compile(
    rf"(?:[{_UPPER}]\.)+(?=\s?[{_UPPER}])"  # initials ("H.C." before "Andersen")
    r"|[^\W\d_]+(?:[-'’][^\W\d_]+)*['’]?"  # words ("Poul-Erik", "O'Neill", "Jens'")
    r"|\d+"
    r"|\S"
)
_SENTENCE_END = frozenset('.!?:;"«»“”„()[]—–-•*#|\n')
_BRACKETS = ("(", " (")
_AGE_AFTER_RE = re.compile(r" ?\((?:[1-9]\d?|1[01]\d)(?: år)?\)")
MODEL_PATH = ("names", "name_tagger.json.gz")


def tokenize(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, token)`` of every token of ``text`` (``TOKEN_RE``)."""
    return [(m.start(), m.end(), m.group()) for m in TOKEN_RE.finditer(text)]


def shape(token: str) -> str:
    """A compressed word shape: ``Xx``, ``XX``, ``X.``, ``Xx-Xx``, ``x``..."""
    out = []
    for ch in token:
        c = "X" if ch.isupper() else "x" if ch.isalpha() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out[:6])


def _scored(token: str, particles: frozenset[str]) -> bool:
    return token[:1].isupper() or token in particles


class TextFeatures:
    """The per-token features of one text, except those of the previous tag."""

    def __init__(self, finder: NameFinder, text: str, tokens: list[tuple[int, int, str]], rule_spans: list[NameSpan]):
        from nordpipe.pii import names

        self.tokens = tokens
        rule_at: dict[int, str] = {}
        if rule_spans:
            starts = {s: e for s, e, _ in tokens}
            for span in rule_spans:
                for s in starts:
                    if span.start <= s < span.end:
                        rule_at[s] = ("B:" if s == span.start else "I:") + span.rule
        size = len(tokens)
        lowers = [t[2].lower() for t in tokens]
        classes: list[str] = []
        for _s, _e, tok in tokens:
            if tok[:1].isupper():
                classes.append(str(finder._classify(tok)))
            elif tok[:1].isalpha():
                classes.append("l")
            else:
                classes.append(tok if len(tok) == 1 else "d")
        self.scored = [i for i, (_s, _e, tok) in enumerate(tokens) if _scored(tok, names.PARTICLES)]
        self.features: dict[int, list[str]] = {}
        for i in self.scored:
            start, end, tok = tokens[i]
            low = lowers[i]
            prev = lowers[i - 1] if i > 0 else "^"
            prev2 = lowers[i - 2] if i > 1 else "^"
            nxt = lowers[i + 1] if i + 1 < size else "$"
            nxt2 = lowers[i + 2] if i + 2 < size else "$"
            initial = i == 0 or prev in _SENTENCE_END or tokens[i - 1][2] == "\n"
            cls = classes[i]
            pc = classes[i - 1] if i > 0 else "^"
            nc = classes[i + 1] if i + 1 < size else "$"
            rule = rule_at.get(start, "none")
            f = [
                "b", "c=" + cls, "w=" + low, "s2=" + low[-2:], "s3=" + low[-3:], "s4=" + low[-4:], "p3=" + low[:3],
                "sh=" + shape(tok), "pw=" + prev, "nw=" + nxt, "pw2=" + prev2, "nw2=" + nxt2,
                "pc=" + pc, "nc=" + nc, "pc|c=" + pc + "|" + cls, "c|nc=" + cls + "|" + nc,
                "r=" + rule, "r|c=" + rule + "|" + cls, "i=" + str(initial), "i|c=" + str(initial) + "|" + cls,
                "i|r=" + str(initial) + "|" + rule,
            ]
            if initial and finder._is_lowercase_elsewhere(text, tok):
                f.append("lower_elsewhere")
            if finder._foreign_only(tok):
                f.append("foreign_only")
            if prev in names.TITLE_WORDS or prev.endswith(names.TITLE_SUFFIXES):
                f.append("title_before")
            if prev in names.REPORTING_VERBS:
                f.append("verb_before")
            if nxt in names._REPORTING_AFTER:
                f.append("verb_after")
            if _AGE_AFTER_RE.match(text, end):
                f.append("age_after")
            base = tok.rstrip("'’")
            if base in finder.places:
                f.append("place")
            if base in names.world_cities():
                f.append("city")
            if base in finder.last:
                f.append("surname")
            if base in finder.first:
                f.append("given")
            self.features[i] = f


class NameTagger:
    """Averaged-perceptron tagger (``weights``: feature -> [O, B, I]); ``margin`` is added to
    the name tags' scores (higher: more recall)."""

    def __init__(self, weights: dict[str, list[float]], margin: float = 0.0, meta: dict | None = None):
        self.weights = weights
        self.margin = margin
        self.meta = meta or {}
        self.propagate = True
        self.drop_places = True
        self._split: dict[str, dict[str, list[float]]] | None = None
        self._static: dict[str, tuple[list[float], str]] = {}
        self._static_owner: NameFinder | None = None
        self._left: dict[str, list[float] | None] = {}
        self._right: dict[str, list[float] | None] = {}
        self._combo: dict[tuple[str, ...], list[float] | None] = {}

    def _tables(self) -> dict[str, dict[str, list[float]]]:
        """The weights split by template (``"pw=og"`` -> ``tables["pw"]["og"]``): run-time
        lookups need no string concatenation."""
        if self._split is None:
            tables: dict[str, dict[str, list[float]]] = {}
            for feature, w in self.weights.items():
                template, eq, value = feature.partition("=")
                if not eq:
                    template, value = "flag", feature
                tables.setdefault(template, {})[value] = w
            self._split = tables
        return self._split

    @classmethod
    def load(cls, path: str | None = None) -> NameTagger:
        """The model file at ``path``, or the shipped one (``nordpipe/data/names``)."""
        if path is None:
            data = json.loads(gzip.decompress(files("nordpipe.data").joinpath(*MODEL_PATH).read_bytes()))
        else:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                data = json.load(handle)
        return cls(data["weights"], data.get("margin", 0.0), data.get("meta"))

    def save(self, path: str) -> None:
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as handle:
            json.dump({"meta": self.meta, "margin": self.margin, "weights": self.weights}, handle,
                      separators=(",", ":"), sort_keys=True)

    def scores(self, features: list[str], prev_tag: int) -> list[float]:
        weights = self.weights
        s = [0.0, 0.0, 0.0]
        for f in (*features, "pt=" + TAGS[prev_tag], "pt=" + TAGS[prev_tag] + "|" + features[1]):
            w = weights.get(f)
            if w is not None:
                s[0] += w[0]
                s[1] += w[1]
                s[2] += w[2]
        return s

    def fast_decode(self, finder: NameFinder, text: str, tokens: list[tuple[int, int, str]], scored: list[int],
                    rule_spans: list[NameSpan]) -> list[int]:
        """``decode(TextFeatures(...))`` without building feature strings: the token-only
        features are summed once per distinct token (cached), the others are looked up per
        template. Same tags (``tests/test_pii.py`` compares the two)."""
        from nordpipe.pii import names

        tables = self._tables()
        empty: dict[str, list[float]] = {}
        t_pw, t_nw, t_pw2, t_nw2 = (tables.get(k, empty) for k in ("pw", "nw", "pw2", "nw2"))
        t_pc, t_nc, t_pcc, t_cnc = (tables.get(k, empty) for k in ("pc", "nc", "pc|c", "c|nc"))
        t_r, t_rc, t_i, t_ic, t_ir = (tables.get(k, empty) for k in ("r", "r|c", "i", "i|c", "i|r"))
        t_pt, flags = tables.get("pt", empty), tables.get("flag", empty)
        cache = self._static
        if len(cache) > 200_000 or self._static_owner is not finder:
            cache.clear()  # (the token-only features depend on the finder's gazetteers)
            self._left.clear()
            self._right.clear()
            self._combo.clear()
            self._static_owner = finder
        rule_at: dict[int, str] = {}
        if rule_spans:
            starts = [t[0] for t in tokens]
            for span in rule_spans:
                k = bisect.bisect_left(starts, span.start)
                while k < len(starts) and starts[k] < span.end:
                    rule_at[starts[k]] = ("B:" if starts[k] == span.start else "I:") + span.rule
                    k += 1
        size = len(tokens)
        margin = self.margin
        tags = [O] * size
        prev_i = -2
        left_cache, right_cache, combo_cache = self._left, self._right, self._combo
        for i in scored:
            start, end, tok = tokens[i]
            static = cache.get(tok)
            if static is None:
                static = cache[tok] = _static_vector(tables, finder, tok)
            vec, cls = static
            s0, s1, s2 = vec
            prev = tokens[i - 1][2].lower() if i > 0 else "^"
            nxt = tokens[i + 1][2].lower() if i + 1 < size else "$"
            # the words before and after (with the title/verb flags they raise), and the
            # combination of classes, position, rule and previous tag: each summed once and cached
            left = left_cache.get(prev)
            if left is None:
                keys = [t_pw.get(prev)]
                if prev in names.TITLE_WORDS or prev.endswith(names.TITLE_SUFFIXES):
                    keys.append(flags.get("title_before"))
                if prev in names.REPORTING_VERBS:
                    keys.append(flags.get("verb_before"))
                left = left_cache[prev] = _sum(keys)
            right = right_cache.get(nxt)
            if right is None:
                keys = [t_nw.get(nxt)]
                if nxt in names._REPORTING_AFTER:
                    keys.append(flags.get("verb_after"))
                right = right_cache[nxt] = _sum(keys)
            initial = "True" if (i == 0 or prev in _SENTENCE_END) else "False"
            pc = _token_class(finder, tokens[i - 1][2]) if i > 0 else "^"
            nc = _token_class(finder, tokens[i + 1][2]) if i + 1 < size else "$"
            rule = rule_at.get(start, "none")
            prev_tag = TAGS[tags[i - 1] if i - 1 == prev_i else O]
            combo_key = (pc, cls, nc, initial, rule, prev_tag)
            combo = combo_cache.get(combo_key)
            if combo is None:
                combo = combo_cache[combo_key] = _sum([
                    t_pc.get(pc), t_nc.get(nc), t_pcc.get(pc + "|" + cls), t_cnc.get(cls + "|" + nc),
                    t_r.get(rule), t_rc.get(rule + "|" + cls), t_i.get(initial), t_ic.get(initial + "|" + cls),
                    t_ir.get(initial + "|" + rule), t_pt.get(prev_tag), t_pt.get(prev_tag + "|c=" + cls),
                ])
            lookups = [left, right, combo,
                       t_pw2.get(tokens[i - 2][2].lower() if i > 1 else "^"),
                       t_nw2.get(tokens[i + 2][2].lower() if i + 2 < size else "$")]
            if initial == "True" and finder._is_lowercase_elsewhere(text, tok):
                lookups.append(flags.get("lower_elsewhere"))
            if text.startswith(_BRACKETS, end) and _AGE_AFTER_RE.match(text, end):
                lookups.append(flags.get("age_after"))
            for w in lookups:
                if w is not None:
                    s0 += w[0]
                    s1 += w[1]
                    s2 += w[2]
            s1 += margin
            s2 = s2 + margin if prev_tag != "O" else -1e18
            tags[i] = (B if s1 >= s2 else I) if max(s1, s2) > s0 else O
            prev_i = i
        return tags

    def decode(self, feats: TextFeatures, margin: float | None = None) -> list[int]:
        """Greedy left-to-right tags of every token (unscored tokens are O)."""
        margin = self.margin if margin is None else margin
        tags = [O] * len(feats.tokens)
        prev_i = -2
        for i in feats.scored:
            prev = tags[i - 1] if i - 1 == prev_i else O
            s = self.scores(feats.features[i], prev)
            s[1] += margin
            s[2] += margin
            if prev == O:
                s[2] = -1e18  # I only continues a name
            tag = max(range(3), key=s.__getitem__)
            tags[i] = tag
            prev_i = i
        return tags

    def spans(self, text: str, finder: NameFinder, rule_spans: list[NameSpan]) -> list[tuple[int, int]]:
        """``(start, end)`` of the names the tagger finds in ``text`` (a trailing particle is
        dropped)."""
        from nordpipe.pii import names

        tokens = tokenize(text)
        scored = [i for i, (_s, _e, tok) in enumerate(tokens) if tok[:1].isupper() or tok in names.PARTICLES]
        if not scored:
            return []
        tags = self.fast_decode(finder, text, tokens, scored, rule_spans)
        if self.propagate:
            _propagate(tokens, tags, scored)
        found = tags_to_spans(tokens, tags, names.PARTICLES)
        if self.drop_places:
            phrases = place_phrases()
            found = [(s, e) for s, e in found if " " not in text[s:e] or " ".join(text[s:e].split()) not in phrases]
        return found


def _static_vector(tables: dict[str, dict[str, list[float]]], finder: NameFinder, tok: str) -> tuple[list[float], str]:
    """The summed weights of the features that depend on the token alone, and its class."""
    from nordpipe.pii import names

    cls = _token_class(finder, tok)
    low = tok.lower()
    s = [0.0, 0.0, 0.0]
    flags = tables.get("flag", {})
    keys = [("flag", "b"), ("c", cls), ("w", low), ("s2", low[-2:]), ("s3", low[-3:]), ("s4", low[-4:]),
            ("p3", low[:3]), ("sh", shape(tok))]
    if finder._foreign_only(tok):
        keys.append(("flag", "foreign_only"))
    base = tok.rstrip("'’")
    if base in finder.places:
        keys.append(("flag", "place"))
    if base in names.world_cities():
        keys.append(("flag", "city"))
    if base in finder.last:
        keys.append(("flag", "surname"))
    if base in finder.first:
        keys.append(("flag", "given"))
    for template, value in keys:
        w = (flags if template == "flag" else tables.get(template, {})).get(value)
        if w is not None:
            s[0] += w[0]
            s[1] += w[1]
            s[2] += w[2]
    return s, cls


def _sum(vectors: list[list[float] | None]) -> list[float] | None:
    found = [v for v in vectors if v is not None]
    if not found:
        return None
    return [sum(v[0] for v in found), sum(v[1] for v in found), sum(v[2] for v in found)]


def _token_class(finder: NameFinder, tok: str) -> str:
    if tok[:1].isupper():
        return str(finder._classify(tok))
    if tok[:1].isalpha():
        return "l"
    return tok if len(tok) == 1 else "d"


def tags_to_spans(tokens: list[tuple[int, int, str]], tags: list[int], particles: frozenset[str]) -> list[tuple[int, int]]:
    """Runs of B (I)* as ``(start, end)``; a particle at either end of a run is not part of it."""
    out: list[tuple[int, int]] = []
    run: list[tuple[int, int, str]] = []

    def close() -> None:
        words = list(run)
        while words and words[-1][2] in particles:
            words.pop()
        while words and words[0][2] in particles:
            words.pop(0)
        if words:
            out.append((words[0][0], words[-1][1]))

    for token, tag in zip(tokens, tags, strict=True):
        if tag == I and run:
            run.append(token)
            continue
        if run:
            close()
        run = [token] if tag == B else []
    if run:
        close()
    return out


def _propagate(tokens: list[tuple[int, int, str]], tags: list[int], scored: list[int]) -> None:
    """Document memory: a capitalised word tagged as (part of) a name somewhere in the text is
    a name wherever else it stands alone in it ("Eminem" after "rapparen Eminem")."""
    named = {tokens[i][2].rstrip("'’") for i in scored if tags[i] != O}
    if not named:
        return
    for i in scored:
        if tags[i] == O and tokens[i][2][:1].isupper():
            base = tokens[i][2].rstrip("'’")
            if base in named or (base.endswith("s") and base[:-1] in named):
                prev_name = i > 0 and tags[i - 1] != O and tokens[i - 1][1] + 1 >= tokens[i][0]
                tags[i] = I if prev_name else B


@functools.lru_cache(maxsize=1)
def place_phrases() -> frozenset[str]:
    """Multi-word place names of Faker's address providers, and the capitalised runs inside them
    ("Jan Mayen" from "Svalbard und Jan Mayen"): a span that is exactly one is a place."""
    import importlib

    from nordpipe.pii import names

    phrases: set[str] = set()
    for locale in names.NORDIC_LOCALES + names.INTERNATIONAL_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        except ImportError:
            continue
        for attr in ("countries", "states", "cities", "city_names", "capitals"):
            for value in getattr(provider, attr, ()) or ():
                if not isinstance(value, str) or " " not in value:
                    continue
                phrases.add(value)
                run: list[str] = []
                for word in [*value.replace("(", " ").replace(")", " ").split(), "&"]:
                    if word[:1].isupper():
                        run.append(word)
                        continue
                    if len(run) > 1:
                        phrases.add(" ".join(run))
                    run = []
    return frozenset(phrases)


@functools.lru_cache(maxsize=1)
def shipped_tagger() -> NameTagger:
    """The model shipped in the package (loaded once per process)."""
    return NameTagger.load()
