"""Quality filtering: Gopher quality, Gopher repetition and C4 rules with per-language settings.

Three datatrove pipeline steps, each a ``DocumentFilter``:

- ``GopherQualityFilter`` (``gopher_quality:<rule>``): word count, mean word length, hash and
  ellipsis ratios, bullet and ellipsis lines, share of words with a letter, stop words.
- ``GopherRepetitionFilter`` (``gopher_repetition:<rule>``): duplicate paragraphs and lines (by
  count and by characters), top 2-4-gram and duplicated 5-10-gram character fractions.
- ``C4QualityFilter`` (``c4:<rule>``): drops lines without terminal punctuation, with too few
  words, mentioning javascript or holding a cookie/privacy/terms notice (in the document's
  language and English), then removes the document for lorem ipsum, curly brackets or too few
  sentences. Like C4 it edits the text (the dropped lines are gone from the output).

The rules and their defaults are those of datatrove 0.10.1's ``GopherQualityFilter``,
``GopherRepetitionFilter`` and ``C4QualityFilter``; ``benchmarks/bench_quality.py`` runs both on
the same documents and reports their agreement. The thresholds come from per-language settings
files shipped in ``nordpipe/data/quality/<lang>.yaml`` (FineWeb-2's Nordic settings, English
defaults), chosen per document from the language that ``LanguageIdentifier`` (or the source's
``metadata.language``) gave it, and overridable per run with a YAML file (``load_settings``).

Why not call datatrove's filters: they split words with spaCy, which dominates their cost (~100
docs/s for Gopher + C4 on 2 KB Danish documents, REFERENCE §2). Here words are split as spaCy's
tokenizer splits Nordic text (``split_words``: whitespace first, then punctuation, keeping
"e-mail", "3,5", "14.", "H.C." and the language's abbreviations whole), each token's hash,
length and properties come from one per-process table lookup, the three filters share one
tokenization per document, and n-grams are counted as numpy hashes instead of joined strings.
The n-gram measures of Gopher repetition (most frequent n-gram, duplicated n-grams, any repeat) run
in C (``_ngram_loops.pyx``, one pass with a hash table per measure; issue 20: filters 2,243 -> 3,055
docs/s per core on real sentences, ``benchmarks/results/quality_stage.md``) when ``setup.py`` built
it, with the numpy functions here (``top_ngram_numpy`` ...) as their definitions and fallback.
datatrove stays the reference: ``benchmarks/bench_quality.py`` and ``tests/test_quality.py``
compare the two.

Each step records the figures that decided a document in
``metadata["nordpipe"]["quality"][<step>]`` so thresholds can be studied later.

Departures from the references, for real Nordic prose (issue 19). Each is a setting, so
``DATATROVE_RULES`` (an override for ``load_settings``) restores datatrove's rule and the
agreement checks compare the shared rules exactly; ``benchmarks/bench_prose.py`` measures them on
documents composed of real da/nb/nn/sv sentences (UD, NorNE) and on generated junk
(``benchmarks/results/prose.md``: before 2a9947d / after, same run):

- Dialogue dashes (``gopher_quality.dialogue_dashes``, da/nb/nn/sv/is/fo): Gopher and datatrove
  count every line starting with "-" or "•" as a bullet point. Nordic news and fiction open
  quotations with a dash ("- Vi har barn som går i barnehagen, sier hun."), so a one-paragraph
  quote or interview was removed as ``too_many_bullets`` (bullet ratio 1.0). A dash line with two
  or more words ending in sentence-final punctuation (``is_dialogue_line``) is not a bullet; menu
  and list items ("- Forside") still are. Cost: a list whose items are whole sentences ending in
  "." is no longer a bullet list either (other rules judge it).
- Alpha ratio over words (``gopher_quality.alpha_ratio_over: words``): Gopher requires 80% of
  *words* to hold a letter; datatrove divides by every token, punctuation included, which takes
  ~0.1 off clean prose (clean Swedish 0.818 < FineWeb-2's 0.841). Words here are tokens with a
  character that is not punctuation, as Gopher's symbol ratios already use. FineWeb-2's
  thresholds (derived on datatrove's measure) are kept, so the rule is looser on prose; digits,
  tables and code still fail it (the lowest real paragraph measures 0.84, junk "numbers" 0.0).
- Top n-gram only when it repeats (``gopher_repetition.top_n_gram_min_count: 2``): Gopher's "top
  n-gram character fraction" is a repetition measure ("fraction of characters contained within
  the most frequently-occurring n-gram"); datatrove takes ``Counter.most_common(1)`` even when
  every n-gram occurs once, so in a short unique text the first n-gram alone (two long words,
  ~10% of a 300-character text) passed Bokmål's 0.087 and the text was removed as
  ``top_2_gram``. An n-gram that occurs once now scores 0: a short unique text is judged by
  length (``gopher_quality:short_doc``), never by repetition.
- Thresholds: Bokmål's and Nynorsk's FineWeb-2 top n-gram thresholds (0.087/0.107/0.131 and
  0.899/0.705/0.375) are replaced by Gopher's 0.20/0.18/0.16 (reasons in nb.yaml); C4's
  ``min_num_sentences`` is 3, not 5, for the Nordic languages (5 Nordic sentences are 67-88
  words, more than Gopher's 50-word minimum; reasons in da.yaml). The other FineWeb-2 values
  were checked against real da/nb/nn/sv prose and kept; is/fo/fi have no real text in
  ``../shared`` and keep FineWeb-2's values unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from datatrove.data import Document
from datatrove.utils.text import PUNCTUATION_SET

from nordpipe.documents import NORDPIPE_KEY, nordpipe_meta
from nordpipe.languages import DEFAULT_LANGUAGE, LANGUAGES, normalize_language
from nordpipe.settings import SECTIONS, load_settings
from nordpipe.steps import DocumentFilter

# --------------------------------------------------------------------------------------------
# Languages and settings

# The language facts live in nordpipe.languages and the settings loader in nordpipe.settings
# (shared with nordpipe.langid, so neither imports the other at module level).
_LANGUAGE_SET = frozenset(LANGUAGES)


def document_language(doc: Document, default: str = DEFAULT_LANGUAGE) -> str:
    """The language whose settings apply: nordpipe's language id, else the source's, else ``default``."""
    meta = doc.metadata.get(NORDPIPE_KEY) or {}
    label = meta.get("language")
    if label in _LANGUAGE_SET:  # the usual case, set by LanguageIdentifier
        return label
    return normalize_language(label) or normalize_language(doc.metadata.get("language")) or default


# --------------------------------------------------------------------------------------------
# Words

# Splits one whitespace-free chunk the way spaCy's tokenizer does on Nordic text: URLs whole
# (minus trailing punctuation), words and numbers with inner - ' ’ . , : kept whole ("e-mail",
# "1.000", "3,5", "DR's"), "/" between digits too ("26/8"), ".." and longer dot runs as one
# token, any other symbol alone.
_CHUNK_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'()\[\]{}]+(?<![.,;:!?])"
    r"|\w+(?:[-'’.,:]\w+|(?<=\d)/\d\w*)*"
    r"|\.\.+"
    r"|[^\w\s]"
)
_find_tokens = _CHUNK_RE.findall


# spaCy keeps the period on day numbers ("den 14. maj") but splits it off other numbers ("i 1926.").
_DAY_NUMBERS = frozenset(str(day) for day in range(1, 32))


def _keeps_period(word: str, abbreviations: frozenset[str]) -> bool:
    """Whether spaCy keeps a following "." on ``word``: day numbers ("14." but not "1926." or
    "3.5."), single letters, initials ("H.C.") and the language's abbreviations ("f.eks.")."""
    if word in _DAY_NUMBERS or (len(word) == 1 and word.isalpha()):
        return True
    if len(word) >= 2 and word[-2] == "." and word[-1].isupper():
        return True
    return bool(abbreviations) and (word + ".").lower() in abbreviations


def split_chunk(chunk: str, abbreviations: frozenset[str] = frozenset()) -> list[str]:
    """Tokens of one whitespace-free chunk that is not plain letters and digits."""
    tokens = _find_tokens(chunk)
    if "." in tokens:
        merged: list[str] = []
        for token in tokens:
            if token == "." and merged and merged[-1][-1:].isalnum() and _keeps_period(merged[-1], abbreviations):
                merged[-1] += "."
            else:
                merged.append(token)
        return merged
    return tokens


def split_words(text: str, abbreviations: frozenset[str] = frozenset()) -> list[str]:
    """The text's words and punctuation tokens, split like spaCy's tokenizer (see ``split_chunk``).

    Splits on whitespace first (no token spans whitespace), keeps plain words as they are,
    splits the common "word," / "word." / "(word" chunks by hand and sends only the rest through
    the regular expression: ~2x faster than one regular expression over the text, same tokens.
    """
    tokens: list[str] = []
    add = tokens.append
    isalnum = str.isalnum
    for chunk in text.split():
        if isalnum(chunk):
            add(chunk)
            continue
        head = chunk[:-1]
        if isalnum(head):
            last = chunk[-1]
            if last == ".":
                if head in _DAY_NUMBERS or (len(head) == 1 and head.isalpha()) or (head.lower() + ".") in abbreviations:
                    add(chunk)
                else:
                    add(head)
                    add(".")
                continue
            if last != "_" and not isalnum(last):
                add(head)
                add(last)
                continue
        first = chunk[0]
        if first not in "._" and not isalnum(first) and isalnum(chunk[1:]):
            add(first)
            add(chunk[1:])
        else:
            tokens.extend(split_chunk(chunk, abbreviations))
    return tokens


_PUNCTUATION_CHARS = "".join(sorted(PUNCTUATION_SET))
_IS_WORD_BIT = 1  # has a character that is not punctuation (a "word" for Gopher)
_HAS_LETTER_BIT = 2
_LENGTH_SHIFT = 2
_LENGTH_BITS = 12
_LENGTH_CAP = (1 << _LENGTH_BITS) - 1  # longer tokens: exact lengths are taken from the words
_HASH_SHIFT = _LENGTH_SHIFT + _LENGTH_BITS


class _TokenCodes(dict):  # type: ignore[type-arg]
    """token -> one int: a 50-bit hash, the length (12 bits, capped) and two property bits.

    ``map(codes.__getitem__, words)`` stays in C for every token seen before, which is most of
    them in natural text, and one lookup gives all a filter needs. Bounded, so a huge corpus
    cannot grow it without limit.
    """

    max_size = 300_000

    def __missing__(self, token: str) -> int:
        if len(self) >= self.max_size:
            self.clear()
        code = (
            (hash(token) << _HASH_SHIFT)
            | (min(len(token), _LENGTH_CAP) << _LENGTH_SHIFT)
            | (_IS_WORD_BIT if token.strip(_PUNCTUATION_CHARS) else 0)
            | (_HAS_LETTER_BIT if any(map(str.isalpha, token)) else 0)
        ) & 0x7FFF_FFFF_FFFF_FFFF
        self[token] = code
        return code


_CODES = _TokenCodes()


class _ChunkCodes(dict):  # type: ignore[type-arg]
    """whitespace-free chunk -> the codes of its tokens as packed native int64 bytes, for one
    abbreviation list.

    With this, a document's codes come from ``text.split()``, one C-level lookup per chunk and
    one ``bytes.join``; only chunks never seen before go through ``split_words`` in Python.
    Packed bytes rather than tuples of ints: joining them is C-level, where flattening tuples
    into ``numpy.fromiter`` walked every int in Python (46 vs 66 us per 1.6 KB document, ~5% of
    the three filters; issue 20). Bounded like ``_TokenCodes``.
    """

    max_size = 300_000

    def __init__(self, abbreviations: frozenset[str]):
        super().__init__()
        self.abbreviations = abbreviations

    def __missing__(self, chunk: str) -> bytes:
        if len(self) >= self.max_size:
            self.clear()
        codes = list(map(_CODES.__getitem__, split_words(chunk, self.abbreviations)))
        value = self[chunk] = np.array(codes, dtype=np.int64).tobytes()
        return value


_CHUNK_TABLES: dict[frozenset[str], _ChunkCodes] = {}


class TextProfile:
    """One document's per-token arrays, shared by the filters that need them."""

    __slots__ = ("_codes", "_lengths", "abbreviations", "text")

    def __init__(self, text: str, abbreviations: frozenset[str] = frozenset()):
        self.text = text
        self.abbreviations = abbreviations
        self._codes: np.ndarray | None = None
        self._lengths: np.ndarray | None = None

    @property
    def words(self) -> list[str]:
        """The tokens themselves (``split_words``); the filters only need ``codes``."""
        return split_words(self.text, self.abbreviations)

    @property
    def codes(self) -> np.ndarray:
        """Per token: hash from bit ``_HASH_SHIFT`` up, length, ``_IS_WORD_BIT``, ``_HAS_LETTER_BIT``."""
        if self._codes is None:
            table = _CHUNK_TABLES.get(self.abbreviations)
            if table is None:
                table = _CHUNK_TABLES[self.abbreviations] = _ChunkCodes(self.abbreviations)
            self._codes = np.frombuffer(b"".join(map(table.__getitem__, self.text.split())), dtype=np.int64)
        return self._codes

    @property
    def count(self) -> int:
        """Number of tokens."""
        return int(self.codes.size)

    @property
    def lengths(self) -> np.ndarray:
        """Characters of each token."""
        if self._lengths is None:
            lengths = (self.codes >> _LENGTH_SHIFT) & _LENGTH_CAP
            if lengths.size and int(lengths.max()) == _LENGTH_CAP:
                lengths = np.fromiter(map(len, self.words), dtype=np.int64, count=lengths.size)
            self._lengths = lengths
        return self._lengths

    @property
    def hashes(self) -> np.ndarray:
        """Per token hash (equal tokens, equal hashes) as uint64, for n-gram hashing."""
        return (self.codes >> _HASH_SHIFT).view(np.uint64)


_last_profile: TextProfile | None = None
_last_abbreviations: frozenset[str] | None = None


def profile_of(text: str, abbreviations: frozenset[str] = frozenset()) -> TextProfile:
    """``TextProfile`` with a one-entry cache: consecutive steps see the same text object."""
    global _last_profile, _last_abbreviations
    if _last_profile is None or _last_profile.text is not text or _last_abbreviations != abbreviations:
        _last_profile = TextProfile(text, abbreviations)
        _last_abbreviations = abbreviations
    return _last_profile


def _record(doc: Document, step: str, scores: dict[str, Any]) -> None:
    nordpipe_meta(doc).setdefault("quality", {})[step] = scores


class _SettingsStep(DocumentFilter):
    """Shared by the three filters: settings per language, chosen per document."""

    section = ""

    def __init__(self, settings: str | Mapping[str, Any] | None = None, default_language: str = DEFAULT_LANGUAGE,
                 record_scores: bool = True):
        super().__init__()
        language = normalize_language(default_language)
        if language is None:
            raise ValueError(f"unknown default language {default_language!r} (known: {', '.join(LANGUAGES)})")
        self.default_language = language
        self.record_scores = record_scores
        all_settings = load_settings(settings)
        self.settings: dict[str, dict[str, Any]] = {}
        for lang in LANGUAGES:
            cfg = self.prepare(dict(all_settings[lang][self.section]))
            cfg["abbreviations"] = frozenset(a.lower() for a in all_settings[lang].get("abbreviations") or ())
            self.settings[lang] = cfg

    def prepare(self, section: dict[str, Any]) -> dict[str, Any]:
        """Turn a settings section into what ``check`` needs (sets, compiled patterns)."""
        return section

    def __getstate__(self) -> dict[str, Any]:
        # Token codes hold str hashes, which differ between processes (Slurm tasks): drop them.
        state = self.__dict__.copy()
        state["settings"] = {
            lang: {k: v for k, v in cfg.items() if k != "stop_word_codes"} for lang, cfg in self.settings.items()
        }
        return state

    def filter(self, doc: Document) -> str | None:
        cfg = self.settings[document_language(doc, self.default_language)]
        rule, scores = self.check(doc, cfg)
        if self.record_scores:
            _record(doc, self.name, scores)
        return rule

    def check(self, doc: Document, cfg: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Gopher quality

_BULLET_AFTER_BREAK_RE = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]\\s*[-•]")


def _may_have_bullets(text: str) -> bool:
    """False only when no line can start with "-" or "•" after its indentation: most prose
    documents, whose line loop is then skipped."""
    if "-" not in text and "•" not in text:
        return False
    return text.lstrip()[:1] in ("-", "•") or _BULLET_AFTER_BREAK_RE.search(text) is not None


# Characters that end a sentence at the end of a line: C4's terminal punctuation, and the
# closing quotes and ellipsis of Nordic quotations ("»", "”", "…").
_DIALOGUE_ENDS = (".", "?", "!", '"', "'", "»", "”", "…")
_DIALOGUE_MIN_WORDS = 2


def is_dialogue_line(stripped: str) -> bool:
    """Whether a line (without its indentation) is a quotation opened by a dialogue dash, as
    Danish, Norwegian, Swedish, Icelandic and Faroese news and fiction mark speech:
    ``- Vi har barn som går i barnehagen, sier hun.`` A dash (``-``, ``–``, ``—``), whitespace,
    at least two words, and sentence-final punctuation at the end of the line. A list item
    ("- Forside", "- Gratis fragt") lacks the final punctuation and stays a bullet."""
    return (
        stripped[:1] in ("-", "–", "—")
        and stripped[1:2].isspace()
        and stripped.rstrip().endswith(_DIALOGUE_ENDS)
        and len(stripped.split(None, _DIALOGUE_MIN_WORDS + 1)) > _DIALOGUE_MIN_WORDS
    )


def _is_bullet_line(line: str, dialogue_dashes: bool) -> bool:
    stripped = line.lstrip()
    if stripped.startswith("•"):
        return True
    return stripped.startswith("-") and not (dialogue_dashes and is_dialogue_line(stripped))


def gopher_quality(profile: TextProfile, cfg: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Gopher's quality rules; returns (rule that failed or None, the figures computed)."""
    text = profile.text
    scores: dict[str, Any] = {}
    codes = profile.codes
    n_tokens = int(codes.size)
    # Tokens by their two property bits: [neither, word only, letter only, word with letter].
    by_flags = np.bincount(codes & (_IS_WORD_BIT | _HAS_LETTER_BIT), minlength=4)
    n_words = int(by_flags[_IS_WORD_BIT] + by_flags[_IS_WORD_BIT | _HAS_LETTER_BIT])
    scores["words"] = n_words
    if cfg["min_doc_words"] and n_words < cfg["min_doc_words"]:
        return "short_doc", scores
    if cfg["max_doc_words"] and n_words > cfg["max_doc_words"]:
        return "long_doc", scores
    if n_words == 0:  # only reachable with min_doc_words off
        return "short_doc", scores
    mean_length = float(np.dot(profile.lengths, codes & _IS_WORD_BIT)) / n_words
    scores["mean_word_length"] = round(mean_length, 4)
    if cfg["min_avg_word_length"] and mean_length < cfg["min_avg_word_length"]:
        return "below_avg_word_length", scores
    if cfg["max_avg_word_length"] and mean_length > cfg["max_avg_word_length"]:
        return "above_avg_word_length", scores
    max_symbols = cfg["max_symbol_word_ratio"]
    hash_ratio = text.count("#") / n_tokens
    scores["hash_ratio"] = round(hash_ratio, 4)
    if max_symbols and hash_ratio > max_symbols:
        return "too_many_hashes", scores
    ellipsis_ratio = (text.count("...") + text.count("…")) / n_tokens
    scores["ellipsis_ratio"] = round(ellipsis_ratio, 4)
    if max_symbols and ellipsis_ratio > max_symbols:
        return "too_many_ellipsis", scores
    lines = text.splitlines() or [""]
    if cfg["max_bullet_lines_ratio"]:
        bullets = 0.0
        if _may_have_bullets(text):
            dialogue = cfg["dialogue_dashes"]
            bullets = sum(1 for line in lines if _is_bullet_line(line, dialogue)) / len(lines)
        scores["bullet_lines_ratio"] = round(bullets, 4)
        if bullets > cfg["max_bullet_lines_ratio"]:
            return "too_many_bullets", scores
    if cfg["max_ellipsis_lines_ratio"]:
        ellipsis_lines = 0.0
        if "..." in text or "…" in text:
            ellipsis_lines = sum(1 for line in lines if line.rstrip().endswith(("...", "…"))) / len(lines)
        scores["ellipsis_lines_ratio"] = round(ellipsis_lines, 4)
        if ellipsis_lines > cfg["max_ellipsis_lines_ratio"]:
            return "too_many_end_ellipsis", scores
    # Gopher's name for it; the value is the minimum share of words that hold a letter. Gopher
    # counts words (``alpha_ratio_over: words``); datatrove divides by every token, punctuation
    # included (``tokens``), which takes ~0.1 off clean prose (see the module docstring).
    with_letter = int(by_flags[_HAS_LETTER_BIT] + by_flags[_IS_WORD_BIT | _HAS_LETTER_BIT])
    alpha_ratio = with_letter / (n_words if cfg["alpha_ratio_over"] == "words" else n_tokens)
    scores["alpha_words_ratio"] = round(alpha_ratio, 4)
    if cfg["max_non_alpha_words_ratio"] and alpha_ratio < cfg["max_non_alpha_words_ratio"]:
        return "below_alpha_ratio", scores
    if cfg["min_stop_words"]:
        stop_codes = cfg.get("stop_word_codes")
        if stop_codes is None:  # per process: codes hold str hashes, which differ between processes
            stop_codes = cfg["stop_word_codes"] = np.array(sorted(map(_CODES.__getitem__, cfg["stop_words"])), dtype=np.int64)
        stop_words = 0
        if stop_codes.size:
            # Which stop words occur, by binary search of every token's code among theirs.
            where = np.minimum(np.searchsorted(stop_codes, codes), stop_codes.size - 1)
            found = where[stop_codes[where] == codes]
            stop_words = int(np.count_nonzero(np.bincount(found, minlength=1))) if found.size else 0
        scores["stop_words"] = stop_words
        if stop_words < cfg["min_stop_words"]:
            return "stop_words", scores
    return None, scores


class GopherQualityFilter(_SettingsStep):
    """Gopher's quality rules (Rae et al. 2021, as datatrove's ``GopherQualityFilter``).

    Rules (``gopher_quality:<rule>``): ``short_doc``/``long_doc`` (words outside
    ``min_doc_words``..``max_doc_words``), ``below_avg_word_length``/``above_avg_word_length``,
    ``too_many_hashes``/``too_many_ellipsis`` (per token, ``max_symbol_word_ratio``),
    ``too_many_bullets`` (lines starting with "•" or "-", not counting dialogue-dash lines when
    ``dialogue_dashes``), ``too_many_end_ellipsis``, ``below_alpha_ratio`` (share of words --
    of all tokens with ``alpha_ratio_over: tokens`` -- with a letter below
    ``max_non_alpha_words_ratio``), ``stop_words`` (fewer than ``min_stop_words`` distinct stop
    words of the document's language).

    Args:
        settings: a YAML file or mapping overriding the shipped per-language settings
            (``load_settings``); default None uses the shipped ones.
        default_language: settings for documents without a known language (default ``da``).
        record_scores: keep the figures in ``metadata["nordpipe"]["quality"]["gopher_quality"]``
            (default True).
    """

    name = "gopher_quality"
    section = "gopher_quality"

    def prepare(self, section: dict[str, Any]) -> dict[str, Any]:
        section["stop_words"] = frozenset(section.get("stop_words") or ())
        if section.get("alpha_ratio_over") not in ("words", "tokens"):
            raise ValueError(f"settings: gopher_quality.alpha_ratio_over must be words or tokens, "
                             f"not {section.get('alpha_ratio_over')!r}")
        return section

    def check(self, doc: Document, cfg: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        return gopher_quality(profile_of(doc.text, cfg["abbreviations"]), cfg)


# --------------------------------------------------------------------------------------------
# Gopher repetition

_PARAGRAPH_RE = re.compile(r"\n{2,}")
# Odd 64-bit multipliers that mix token hashes into n-gram hashes (fixed, so results are stable
# within a process; token hashes themselves come from Python's str hash).
_MIX = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD,
     0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9, 0x2545F4914F6CDD1D, 0x9FB21C651E98DF25],
    dtype=np.uint64,
)


def split_lines(text: str) -> list[str]:
    """``re.split(r"\\n+", text)`` with str methods: lines, runs of newlines as one break."""
    lines = [line for line in text.split("\n") if line]
    if text.startswith("\n") or not lines:
        lines.insert(0, "")
    if text.endswith("\n"):
        lines.append("")
    return lines


def duplicates(parts: list[str]) -> tuple[int, int]:
    """(number of elements equal to an earlier one, their characters)."""
    unique = set(parts)
    if len(unique) == len(parts):
        return 0, 0
    return len(parts) - len(unique), sum(map(len, parts)) - sum(map(len, unique))


try:  # C loops of the n-gram measures (setup.py builds them; the numpy definitions otherwise)
    from nordpipe import _ngram_loops
except ImportError:  # pragma: no cover - a build without Cython or a C compiler
    _ngram_loops = None


class NGrams:
    """N-grams of one document's tokens as 64-bit hashes (no n-gram strings are built).

    Two different tokens share a hash with probability ~2**-50 per pair: ~1e-10 for a 2 KB
    document, far below the disagreement that tokenization causes.
    """

    def __init__(self, profile: TextProfile):
        self.count = profile.count
        self.hashes = profile.hashes
        self.cumulative = np.zeros(self.count + 1, dtype=np.int64)
        np.cumsum(profile.lengths, out=self.cumulative[1:])
        self._grams: dict[int, np.ndarray] = {1: self.hashes * _MIX[0]}

    def of(self, n: int) -> np.ndarray:
        """Hash of the n-gram starting at each position (``count - n + 1`` values), built from
        the longest shorter one already made (n-gram = (n-1)-gram + next token * multiplier)."""
        grams = self._grams.get(n)
        if grams is None:
            k = max(k for k in self._grams if k < n)
            grams = self._grams[k]
            for j in range(k, n):
                grams = grams[:-1] + self.hashes[j:] * _MIX[j]  # wraps around mod 2**64 by design
                self._grams[j + 1] = grams
        return grams

    def chars(self, start: int, n: int) -> int:
        """Characters of the n tokens from ``start``, concatenated without separator."""
        return int(self.cumulative[start + n] - self.cumulative[start])

    def longest(self, n: int) -> int:
        """Characters of the longest run of n tokens."""
        return int((self.cumulative[n:] - self.cumulative[:-n]).max())


def top_ngram(grams: NGrams, n: int) -> tuple[int, int]:
    """(count of the most frequent n-gram, position of its first occurrence); among equally
    frequent n-grams the first to occur wins, as with ``Counter.most_common``. The compiled
    ``_ngram_loops.top_ngram_hashes`` when built, else ``top_ngram_numpy``."""
    hashes = grams.of(n)
    if _ngram_loops is not None:
        return _ngram_loops.top_ngram_hashes(np.ascontiguousarray(hashes))
    return top_ngram_numpy(hashes)


def top_ngram_numpy(hashes: np.ndarray) -> tuple[int, int]:
    """``top_ngram`` on the n-gram hashes, by sorting: the definition the compiled loop is
    tested against."""
    ordered = np.sort(hashes)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return 1, 0
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = ordered.size
    runs = ends - starts
    top = int(runs.max())
    tops = ordered[starts[runs == top]]
    if tops.size > 4:
        return top, int(np.isin(hashes, tops).argmax())
    return top, min(int((hashes == value).argmax()) for value in tops)


def top_ngram_chars(grams: NGrams, n: int) -> int:
    """Characters covered by the most frequent n-gram: its length with the tokens joined by
    spaces, times its count (Gopher's top n-gram measure, as datatrove's ``find_top_duplicate``)."""
    top, first = top_ngram(grams, n)
    return (grams.chars(first, n) + n - 1) * top


def duplicated_ngram_chars(grams: NGrams, n: int, hashes: np.ndarray) -> int:
    """Characters of n-grams that repeat an earlier n-gram, scanning left to right and jumping
    past each repeat (Gopher's duplicate n-gram measure, as datatrove's ``find_all_duplicate``).
    The compiled ``_ngram_loops.duplicated_chars`` when built, else
    ``duplicated_ngram_chars_numpy``."""
    if _ngram_loops is not None:
        return _ngram_loops.duplicated_chars(np.ascontiguousarray(hashes), grams.cumulative, n)
    return duplicated_ngram_chars_numpy(grams, n, hashes)


def duplicated_ngram_chars_numpy(grams: NGrams, n: int, hashes: np.ndarray) -> int:
    """``duplicated_ngram_chars`` in numpy and Python: the definition the compiled loop is
    tested against.

    Only positions whose n-gram occurs more than once can change the scan, so the loop visits
    just those, in order; the others are accounted for without visiting them.
    """
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts[inverse] > 1)
    seen: set[int] = set()
    skip_until = 0
    total = 0
    for position, gram in zip(repeated.tolist(), inverse[repeated].tolist(), strict=True):
        if position < skip_until:
            continue  # jumped over, as the scan does after a repeat
        if gram in seen:
            total += grams.chars(position, n)
            skip_until = position + n
        else:
            seen.add(gram)
    return total


def _has_repeats(hashes: np.ndarray) -> bool:
    if _ngram_loops is not None:
        return _ngram_loops.has_repeats(np.ascontiguousarray(hashes))
    return has_repeats_numpy(hashes)


def has_repeats_numpy(hashes: np.ndarray) -> bool:
    """Whether any n-gram hash occurs twice, by sorting (the compiled loop's definition)."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())


def gopher_repetition(profile: TextProfile, cfg: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Gopher's repetition rules; returns (rule that failed or None, the figures computed)."""
    text = profile.text
    scores: dict[str, Any] = {}
    if not text:
        return "empty", scores
    n_chars = len(text)
    stripped = text.strip()
    paragraphs = _PARAGRAPH_RE.split(stripped) if "\n\n" in stripped else [stripped]
    dup_paragraphs, dup_paragraph_chars = duplicates(paragraphs)
    scores["dup_para_frac"] = round(dup_paragraphs / len(paragraphs), 4)
    if cfg["dup_para_frac"] and dup_paragraphs / len(paragraphs) > cfg["dup_para_frac"]:
        return "dup_para_frac", scores
    scores["dup_para_char_frac"] = round(dup_paragraph_chars / n_chars, 4)
    if cfg["dup_para_char_frac"] and dup_paragraph_chars / n_chars > cfg["dup_para_char_frac"]:
        return "dup_para_char_frac", scores
    lines = split_lines(text)
    dup_lines, dup_line_chars = duplicates(lines)
    scores["dup_line_frac"] = round(dup_lines / len(lines), 4)
    if cfg["dup_line_frac"] and dup_lines / len(lines) > cfg["dup_line_frac"]:
        return "dup_line_frac", scores
    scores["dup_line_char_frac"] = round(dup_line_chars / n_chars, 4)
    if cfg["dup_line_char_frac"] and dup_line_chars / n_chars > cfg["dup_line_char_frac"]:
        return "dup_line_char_frac", scores
    grams = NGrams(profile)
    # An n-gram occurs at most as often as the shorter n-grams it starts with, so once the top
    # count times the longest n-gram cannot pass a threshold, the exact figure is not needed.
    top_count = 0
    min_count = cfg["top_n_gram_min_count"]
    for n, threshold in cfg["top_n_grams"]:
        if grams.count < n:
            continue
        if top_count and top_count < min_count:
            scores[f"top_{n}_gram"] = 0.0  # no shorter n-gram repeats, so no longer one does
            continue
        if top_count and top_count * (grams.longest(n) + n - 1) <= threshold * n_chars:
            continue
        count, first = top_ngram(grams, n)
        # Only an n-gram that repeats measures repetition (``top_n_gram_min_count``, see the
        # module docstring): with count 1 the "top" n-gram is just the first one.
        fraction = (grams.chars(first, n) + n - 1) * count / n_chars if count >= min_count else 0.0
        scores[f"top_{n}_gram"] = round(fraction, 4)
        if fraction > threshold:
            return f"top_{n}_gram", scores
        top_count = count if not top_count else min(top_count, count)
    # A repeated n-gram contains a repeated (n-1)-gram, so once no n-gram repeats no longer one
    # does: for most prose the 5-grams settle all six measures.
    repeats = True
    for n, threshold in cfg["dup_n_grams"]:
        fraction = 0.0
        if repeats and grams.count >= n:
            hashes = grams.of(n)
            repeats = _has_repeats(hashes)
            if repeats:
                fraction = duplicated_ngram_chars(grams, n, hashes) / n_chars
        scores[f"duplicated_{n}_n_grams"] = round(fraction, 4)
        if fraction > threshold:
            return f"duplicated_{n}_n_grams", scores
    return None, scores


class GopherRepetitionFilter(_SettingsStep):
    """Gopher's repetition rules (as datatrove's ``GopherRepetitionFilter``).

    Rules (``gopher_repetition:<rule>``): ``empty``, ``dup_para_frac``, ``dup_para_char_frac``,
    ``dup_line_frac``, ``dup_line_char_frac``, ``top_<n>_gram`` (the most frequent n-gram, if it occurs
    at least ``top_n_gram_min_count`` times, covers more than the threshold of the characters, n
    in ``top_n_grams``), ``duplicated_<n>_n_grams``
    (repeated n-grams cover more than the threshold, n in ``dup_n_grams``).

    Args: as ``GopherQualityFilter``.
    """

    name = "gopher_repetition"
    section = "gopher_repetition"

    def prepare(self, section: dict[str, Any]) -> dict[str, Any]:
        section["top_n_grams"] = sorted((int(n), float(t)) for n, t in section.get("top_n_grams") or ())
        # Ascending n, so that the shortcuts in gopher_repetition hold.
        section["dup_n_grams"] = sorted((int(n), float(t)) for n, t in section.get("dup_n_grams") or ())
        return section

    def check(self, doc: Document, cfg: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        return gopher_repetition(profile_of(doc.text, cfg["abbreviations"]), cfg)


# --------------------------------------------------------------------------------------------
# C4

_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_END_PUNCTUATION = (".", "?", "!", '"', "'")


# A sentence end inside a line, as spaCy's sentencizer sees it after spaCy's tokenizer: "!", "?"
# or a "." that the tokenizer splits off as its own token (not in a dot run, not after a number
# "14." or a single letter or initial "H.", "H.C."), then any punctuation, a space, and a token
# that is not punctuation on the same line. Each pattern starts with the mark itself and checks
# what precedes it afterwards: look-behinds tried at every position made this 5-10x slower.
_SENTENCE_TAIL = r"[^\w\s]*[^\S\n][^\w\n]*(?=\w)"
_UPPER = "A-ZÀ-ÖØ-Þ"
_SENTENCE_END_RE = re.compile(
    rf"[.!?](?:(?<=[!?])|(?<!\.\.)(?<!(?<![\w.])[^\W\d_]\.)(?<!\.[{_UPPER}]\.)(?!\.))" + _SENTENCE_TAIL
)
# A "." after digits: no sentence end after a day number that is a token of its own ("14.").
_NUMBER_END_RE = re.compile(r"\.(?<=\d\.)(?!\.)" + _SENTENCE_TAIL)


@lru_cache(maxsize=64)
def _abbreviation_end_pattern(abbreviations: frozenset[str]) -> re.Pattern[str] | None:
    """Sentence ends that ``_SENTENCE_END_RE`` counts but that end one of ``abbreviations``
    (which spaCy keeps whole, so no sentence ends there); None without such abbreviations."""
    by_length: dict[int, list[str]] = {}
    for abbreviation in abbreviations:
        word = abbreviation[:-1]
        # Single letters and initials ("H.C.") are not counted by _SENTENCE_END_RE anyway; the
        # lower-case and capitalised forms are matched (case-sensitively, so "BL.A." is not).
        if abbreviation.endswith(".") and len(word) >= 2 and word[-1].isalpha():
            for form in {word, word[0].upper() + word[1:]}:
                by_length.setdefault(len(form), []).append(re.escape(form))
    if not by_length:
        return None
    behinds = "|".join(
        rf"(?<=(?<![\w.])(?:{'|'.join(sorted(words))})\.)" for _, words in sorted(by_length.items())
    )
    return re.compile(r"\.(?<=[^\W\d_]\.)(?:" + behinds + r")(?!\.)" + _SENTENCE_TAIL)


def count_sentence_ends(text: str, abbreviations: frozenset[str] = frozenset()) -> int:
    """Sentence ends followed by more text on the same line, summed over the lines of ``text``.

    One fast pattern counts candidates; those after a day number ("den 14. maj") or ending an
    abbreviation are then taken off (spaCy keeps such periods on the word).
    """
    count = len(_SENTENCE_END_RE.findall(text))
    if not count:
        return 0
    for match in _NUMBER_END_RE.finditer(text):
        end = match.start()
        start = end - 1
        while start > 0 and text[start - 1].isdigit():
            start -= 1
        before = text[start - 1] if start else " "
        if not before.isalnum() and before not in ".,/_" and text[start:end] in _DAY_NUMBERS:
            count -= 1
    if abbreviations:
        pattern = _abbreviation_end_pattern(abbreviations)
        if pattern is not None:
            count -= len(pattern.findall(text))
    return count


def count_sentences(line: str, abbreviations: frozenset[str] = frozenset()) -> int:
    """Sentences in one line, as datatrove's C4 filter counts them with spaCy."""
    return 1 + count_sentence_ends(line, abbreviations)


def anchor_words(phrases: tuple[str, ...], size: int = 6) -> tuple[str, ...]:
    """Few substrings (``size`` letters, no spaces) such that every phrase holds one of them,
    chosen greedily by how many phrases each covers: a cheap first test for all the phrases."""
    def pieces(phrase: str) -> set[str]:
        out = {w[i : i + size] for w in phrase.split() for i in range(len(w) - size + 1)}
        return out or {max(phrase.split(), key=len)}

    candidates = {phrase: pieces(phrase) for phrase in phrases}
    uncovered = set(phrases)
    anchors: list[str] = []
    while uncovered:
        counts: dict[str, int] = {}
        for phrase in uncovered:
            for piece in candidates[phrase]:
                counts[piece] = counts.get(piece, 0) + 1
        best = max(sorted(counts), key=counts.__getitem__)
        anchors.append(best)
        uncovered = {p for p in uncovered if best not in p}
    return tuple(anchors)


def c4_lines(text: str, cfg: Mapping[str, Any]) -> tuple[str | None, list[str], dict[str, Any]]:
    """C4's rules: (rule that removes the document or None, kept lines, counts)."""
    lines_removed = {"too_long_word": 0, "no_terminal_punct": 0, "too_few_words": 0, "javascript": 0, "policy": 0}
    kept: list[str] = []
    max_word_length = cfg["max_word_length"]
    terminal = cfg["filter_no_terminal_punct"]
    min_words = cfg["min_words_per_line"]
    # The phrase rules look at lower-cased lines; one look at the whole text tells whether any
    # line can match, so most documents never lower-case a line.
    lowered_text = text.lower()
    lorem = cfg["filter_lorem_ipsum"] and "lorem ipsum" in lowered_text
    javascript = cfg["filter_javascript"] and "javascript" in lowered_text
    phrases = cfg["policy_phrases_all"]
    # Substring tests beat one alternation regular expression 4x here; a few anchor words, one
    # of which every phrase contains, rule most documents out before the phrases are tried.
    policy = (
        cfg["filter_policy"]
        and any(map(lowered_text.__contains__, cfg["policy_anchors"]))
        and any(map(lowered_text.__contains__, phrases))
    )
    curly = cfg["filter_curly_bracket"] and "{" in text
    citations = cfg["remove_citations"] and "[" in text
    for raw in text.splitlines():
        line = stripped = raw.strip()
        if not line:
            if terminal:
                lines_removed["no_terminal_punct"] += 1
            elif min_words > 0:
                lines_removed["too_few_words"] += 1
            else:
                kept.append(line)
            continue
        if max_word_length != -1 and len(line) > max_word_length and max(map(len, line.split())) > max_word_length:
            lines_removed["too_long_word"] += 1
            continue
        if citations and "[" in line:
            line = _CITATION_RE.sub("", line)
        if terminal and (not line.endswith(_END_PUNCTUATION) or line.endswith("...")):
            lines_removed["no_terminal_punct"] += 1
            continue
        if min_words > 0 and len(stripped.split()) < min_words:  # words before citations went
            lines_removed["too_few_words"] += 1
            continue
        if lorem or javascript or policy:
            lowered = line.lower()
            if lorem and "lorem ipsum" in lowered:
                return "lorem_ipsum", kept, {"lines_removed": lines_removed}
            if javascript and "javascript" in lowered:
                lines_removed["javascript"] += 1
                continue
            if curly and "{" in line:
                return "curly_bracket", kept, {"lines_removed": lines_removed}
            if policy and any(map(lowered.__contains__, phrases)):
                lines_removed["policy"] += 1
                continue
        elif curly and "{" in line:
            return "curly_bracket", kept, {"lines_removed": lines_removed}
        kept.append(line)
    scores: dict[str, Any] = {"lines_kept": len(kept), "lines_removed": lines_removed}
    if cfg["min_num_sentences"] != -1:
        # Each kept line holds one sentence, plus one per sentence end inside it.
        sentences = len(kept)
        if cfg["split_paragraph"] and kept:
            sentences += count_sentence_ends("\n".join(kept), cfg["abbreviations"])
        scores["sentences"] = sentences
        if sentences < cfg["min_num_sentences"]:
            return "too_few_sentences", kept, scores
    return None, kept, scores


class C4QualityFilter(_SettingsStep):
    """C4's rules (Raffel et al. 2020, as datatrove's ``C4QualityFilter``), with Nordic notices.

    Line rules (the line is dropped from the text): a word longer than ``max_word_length``,
    no terminal punctuation (``filter_no_terminal_punct``), fewer than ``min_words_per_line``
    words, "javascript", a policy phrase of the document's language or English
    (``policy_phrases`` + ``policy_phrases_extra``). Citation marks like ``[1]`` are removed.
    Document rules (``c4:<rule>``): ``lorem_ipsum``, ``curly_bracket`` (in a line that passed
    the line rules before it), ``too_few_sentences`` (fewer than ``min_num_sentences`` in the
    kept lines), ``empty`` (nothing left when the sentence rule is off).

    Kept documents carry the edited text (the original length goes to
    ``metadata["nordpipe"]["chars_in"]``); counts of dropped lines go to the step's stats
    (``lines_removed_<why>``) and to ``metadata["nordpipe"]["quality"]["c4"]``.

    Args: as ``GopherQualityFilter``, and ``edit_text`` (default True): write the kept lines
        back as C4 does; False only judges.
    """

    name = "c4"
    section = "c4"

    def __init__(self, settings: str | Mapping[str, Any] | None = None, default_language: str = DEFAULT_LANGUAGE,
                 record_scores: bool = True, edit_text: bool = True):
        super().__init__(settings, default_language, record_scores)
        self.edit_text = edit_text

    def prepare(self, section: dict[str, Any]) -> dict[str, Any]:
        phrases = [p.lower() for p in (section.get("policy_phrases") or []) + (section.get("policy_phrases_extra") or [])]
        section["policy_phrases_all"] = tuple(dict.fromkeys(phrases))
        section["policy_anchors"] = anchor_words(section["policy_phrases_all"])
        section["filter_policy"] = bool(section.get("filter_policy")) and bool(phrases)
        return section

    def check(self, doc: Document, cfg: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        rule, kept, scores = c4_lines(doc.text, cfg)
        for why, count in scores["lines_removed"].items():
            if count:
                self.stat_update(f"lines_removed_{why}", value=count)
        if rule is None and self.edit_text:
            text = ("\n" if cfg["split_paragraph"] else " ").join(kept).strip()
            if text != doc.text:
                nordpipe_meta(doc).setdefault("chars_in", len(doc.text))
                doc.text = text
            if not text:
                return "empty", scores
        return rule, scores


DATATROVE_RULES: dict[str, Any] = {
    "all": {
        "gopher_quality": {"dialogue_dashes": False, "alpha_ratio_over": "tokens"},
        "gopher_repetition": {"top_n_gram_min_count": 1},
    }
}
"""Settings override that turns nordpipe's departures from datatrove 0.10.1's rules off (the
thresholds stay the shipped ones): what the agreement checks compare with datatrove."""


def quality_steps(settings: str | Mapping[str, Any] | None = None,
                  default_language: str = DEFAULT_LANGUAGE) -> list[DocumentFilter]:
    """The three filters in FineWeb's order: repetition, quality, C4 (settings read once)."""
    loaded = load_settings(settings)
    return [
        GopherRepetitionFilter(loaded, default_language),
        GopherQualityFilter(loaded, default_language),
        C4QualityFilter(loaded, default_language),
    ]


def run_quality(
    input_path: str,
    output_path: str,
    options: Any = None,
    languages: str | list[str] | None = None,
    min_language_scores: str | float | Mapping[str, float] | None = None,
    settings: str | None = None,
    default_language: str = DEFAULT_LANGUAGE,
    identify_language: bool = True,
) -> dict[str, Any]:
    """The ``filter quality`` stage: language identification, then Gopher repetition, Gopher
    quality and C4, from INPUT to OUTPUT with ``runner.run_stage``; returns the stats, with
    per-language figures under ``extra`` for the summary."""
    from nordpipe.langid import LanguageIdentifier, parse_languages, parse_min_scores
    from nordpipe.runner import RunOptions, run_stage

    wanted = parse_languages(languages)
    minimums = parse_min_scores(min_language_scores)
    loaded = load_settings(settings)  # fails fast on a bad settings file, before any task starts
    steps: list[Any] = []
    if identify_language:
        steps.append(LanguageIdentifier(languages=wanted, min_scores=minimums, settings=loaded))
    elif wanted:
        raise ValueError("--languages needs language identification (drop --no-language-id)")
    steps += quality_steps(loaded, default_language)
    parameters = {
        "languages": list(wanted) if wanted else None,
        "min_language_scores": minimums,
        "settings": settings,
        "settings_values": {lang: {k: v for k, v in loaded[lang].items() if k in SECTIONS} for lang in LANGUAGES},
        "default_language": normalize_language(default_language),
        "identify_language": identify_language,
    }
    stats = run_stage("quality", steps, input_path, output_path, options or RunOptions(), parameters=parameters)
    if stats:
        extra: dict[str, Any] = {}
        for language, count in sorted(stats.get("languages_out", {}).items()):
            extra[f"kept {language}"] = count
        for language, reasons in sorted(stats.get("removed_by_language", {}).items()):
            extra[f"removed {language}"] = sum(reasons.values())
        c4_stats = stats.get("steps", {}).get("c4", {})
        for key, value in sorted(c4_stats.items()):
            if key.startswith("lines_removed_"):
                extra[f"c4 {key.replace('_', ' ')}"] = int(value)
        stats["extra"] = extra
    return stats
