"""The fast PII scanner: cheap prefilters, pattern recognizers, names, overlap resolution.

``PiiScanner.scan(text)`` returns non-overlapping ``Span``s. It is the fast path; the same
recognizers run inside presidio (``nordpipe.pii.presidio``) as the reference the tests and the
benchmark compare against.

Why it is fast (each shortcut gives exactly the matches of the plain expressions; the tests
and the benchmark compare with presidio running the plain ones):

- the character loops are C, compiled at install by ``setup.py``
  (``_loops.pyx``: number runs, IBAN starts, chains of capitalised words, the word before a
  name, sentence starts, digits, IBAN mod 97), each with its pure-Python definition kept as
  the fallback the tests compare it with;
- one pass finds the runs of digits; a number recognizer runs only inside runs with as many
  digits, dots and as long an unbroken group as its matches need
  (``PatternSpec.run_digits/run_dots/run_group``), and only at the run's start or after a
  space, bracket or colon (where its leading ``_WB`` lets a match begin);
- e-mail runs only around each ``@``; IBAN only where two capitals and two digits start
  (``PatternSpec.anchor``/``starts``);
- validators decide the common case without library overhead (length tests first for
  phones, phonenumbers' metadata patterns, mod 97 + cached BBAN layouts for IBAN, CPR and
  fødselsnummer dates and check digits, the HETU and kennitala check characters before
  stdnum) and fall back to the libraries otherwise;
- context words are looked for with one trie-shaped expression per recognizer, the sentence
  start only when a context word is there at all;
- names come from one pass over whole chains of capitalised words, and a lone function
  word, place or unknown word without context costs one dictionary lookup.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from nordpipe.pii.names import NameFinder, NameSpan
from nordpipe.pii.recognizers import (
    ALL_ENTITIES,
    CONTEXT_WINDOW,
    IP_ADDRESS,
    NAME,
    PHONE,
    WEAK,
    PatternSpec,
    specs_for,
    structured_number,
)

NAME_SCORE = 0.6
_STRUCTURED_ENTITIES = frozenset((IP_ADDRESS, PHONE))
_SENTENCE_START = re.compile(r"[.!?]\s+[A-ZÆØÅÄÖÜ]|\n")
_NEGATIVE_WINDOW = 25
_NON_SPACE = re.compile(r"\S*")
# a number followed by a currency or unit is an amount, not a phone number
_AMOUNT_AFTER = re.compile(r"\s?(?:kr\b|kr\.|kroner|kronor|dkk|nok|sek|isk|eur|euro|€|\$|,-|mio|mia|procent|pct|%)", re.I)


# A run of digits with the separators identifiers, phones, cards and IPv4 addresses use
# (spaces only between digit groups). Number recognizers search only inside these runs.
# (It starts with a character class, the "+" or "(" only before a digit, so the regex
# engine can skip ahead to candidates.)
NUMBER_RUN = re.compile(r"[+(\d](?<=\d|[+(](?=\d))[\dA-Y\-.+()/:]*(?: [+(]?\d[\dA-Y\-.+()/:]*)*")
_MIN_DIGITS = 7  # the shortest number recognizer match without dots (an Icelandic phone)
_DIGIT_GROUP = re.compile(r"\d+")


_RUN_STARTS = re.compile(r"[ ():](?=.)", re.S)


def number_runs_regex(text: str, min_length: int) -> list[tuple[int, int, int, int, int, tuple[int, ...]]]:
    """``(start, end, digits, longest_digit_group, dots, starts)`` of every ``NUMBER_RUN``
    match at least ``min_length`` characters long. ``starts``: the positions in the run where
    a number recognizer's match can begin (the run's start and the positions after a space,
    bracket or colon: every number recognizer's expression begins with ``_WB``, which rules
    out the other characters of a run before a match). The definition; ``_loops.number_runs``
    (compiled) does the same in one pass over the characters."""
    found = []
    for run in NUMBER_RUN.finditer(text):
        start, end = run.span()
        if end - start < min_length:
            continue
        chunk = run.group()
        groups = [len(g) for g in _DIGIT_GROUP.findall(chunk)]
        starts = (start, *(start + m.end() for m in _RUN_STARTS.finditer(chunk)))
        found.append((start, end, sum(groups), max(groups), chunk.count("."), starts))
    return found


try:
    from nordpipe.pii._loops import number_runs
except ImportError:  # not compiled (no Cython or C compiler at install): same result, slower
    number_runs = number_runs_regex


def sentence_start_regex(text: str, lo: int, hi: int) -> int:
    """Where the sentence holding ``hi`` starts within ``text[lo:hi]`` (the last sentence start
    ``_SENTENCE_START`` finds there: a capital after ``.``/``!``/``?`` and whitespace, or a line
    break), ``lo`` when there is none. The definition; ``_loops.sentence_start`` (compiled)
    walks back from ``hi`` in C instead."""
    boundaries = list(_SENTENCE_START.finditer(text[lo:hi]))
    return lo + boundaries[-1].end() - 1 if boundaries else lo


try:
    from nordpipe.pii._loops import sentence_start
except ImportError:  # not compiled: same result, slower
    sentence_start = sentence_start_regex


def _own_sentence(text: str, start: int, context_window: int) -> str:
    """The ``context_window`` characters before ``start``, cut at a sentence start, lower case."""
    return text[sentence_start(text, max(0, start - context_window), start) : start].lower()


class Span(NamedTuple):
    """A piece of personal data found in a text (``text[start:end]``). (A named tuple: made
    for every candidate, and ~5x cheaper to create than a frozen dataclass.)"""

    start: int
    end: int
    entity: str
    recognizer: str
    score: float


class NameRecognizer(Protocol):
    def find(self, text: str) -> list[NameSpan]: ...


def candidate_spans(spec: PatternSpec, text: str, language: str | None = None,
                    context_window: int = CONTEXT_WINDOW) -> Iterable[Span]:
    """Spans one pattern recognizer accepts in ``text`` (no prefilter, no overlap resolution).

    A STRONG candidate is accepted; a WEAK one only with a context word in the
    ``context_window`` characters before it; any candidate with a negative context word
    (``sagsnr``, ``cvr``...) right before it is dropped.
    """
    for match in spec.regex.finditer(text):
        span = accept_candidate(spec, text, match.start("v"), match.end("v"), language, context_window)
        if span is not None:
            yield span


def accept_candidate(spec: PatternSpec, text: str, start: int, end: int, language: str | None = None,
                     context_window: int = CONTEXT_WINDOW, grade: int | None = None) -> Span | None:
    """Grade one candidate ``text[start:end]`` of ``spec``: the span to keep, or None.
    ``grade``: the validator's verdict when the caller has it already."""
    if grade is None:
        grade = spec.validate(text[start:end])
    if not grade:
        return None
    if spec.entity == PHONE and _AMOUNT_AFTER.match(text, end):
        return None
    if spec.entity in _STRUCTURED_ENTITIES and structured_number(text, start, end):
        return None  # a section number, law reference or version ("kap. 3.5.2.2", "§ 12 stk. 3")
    # context belongs to the candidate's own sentence; the sentence start is looked for only
    # when the whole window holds a context word at all (most do not)
    has_context = False
    negative = spec.negative_regex
    context = spec.context_regex
    if negative is not None or context is not None:
        lo = start - context_window if start > context_window else 0
        window = text[lo:start].lower()
        before: str | None = None
        if negative is not None:
            # the negative words count only in the last characters (sliced from the lowered
            # window unless lower() changed its length)
            tail = (window[-_NEGATIVE_WINDOW:] if context_window >= _NEGATIVE_WINDOW and len(window) == start - lo
                    else text[max(0, start - _NEGATIVE_WINDOW) : start].lower())
            if negative.search(tail):
                before = _own_sentence(text, start, context_window)
                if negative.search(before[-_NEGATIVE_WINDOW:]):
                    return None
        if context is not None and context.search(window):
            if before is None:
                before = _own_sentence(text, start, context_window)
            has_context = context.search(before) is not None
    if grade == WEAK and not has_context and not (spec.weak_ok_in_language and language and language == spec.language):
        return None
    # a context word of the recognizer's own type outweighs another type's check digits
    # ("cpr-nummer 0107081239" stays a CPR even if its digits also pass Luhn)
    score = spec.scores[grade == WEAK, has_context, bool(language) and spec.language == language]
    return _new_span((start, end, spec.entity, spec.name, score))


# ``Span(...)`` goes through the named tuple's Python-level ``__new__``, which does exactly this
_new_span = functools.partial(tuple.__new__, Span)


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the best of overlapping spans: higher score, then longer, then earlier."""
    if len(spans) < 2:
        return spans
    ranked = sorted(spans, key=lambda s: (-s.score, s.start - s.end, s.start))
    starts: list[int] = []
    kept: list[Span] = []
    for span in ranked:
        i = bisect.bisect_right(starts, span.start)
        if i > 0 and kept[i - 1].end > span.start:
            continue
        if i < len(kept) and kept[i].start < span.end:
            continue
        starts.insert(i, span.start)
        kept.insert(i, span)
    return kept


class PiiScanner:
    """Find personal data in text.

    Args:
        entities: entity types to find (default: all, ``recognizers.ALL_ENTITIES``).
        name_finder: the name recognizer (default: the built-in ``NameFinder``); pass a
            ``SpacyNameFinder``/``TransformersNameFinder`` to use a model instead.
        context_window: characters before a candidate searched for context words (default 60).
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        name_finder: NameRecognizer | None = None,
        context_window: int = CONTEXT_WINDOW,
    ):
        wanted = set(entities) if entities is not None else set(ALL_ENTITIES)
        unknown = wanted - set(ALL_ENTITIES)
        if unknown:
            raise ValueError(f"unknown entity types: {', '.join(sorted(unknown))} (known: {', '.join(ALL_ENTITIES)})")
        self.entities = wanted
        self.specs = specs_for(wanted)
        self.number_specs = tuple(s for s in self.specs if s.in_numbers)
        self.text_specs = tuple(s for s in self.specs if not s.in_numbers)
        self._number_plan = tuple((s.run_digits, s.run_group, s.run_dots, s) for s in self.number_specs)
        self.context_window = context_window
        self.name_finder: NameRecognizer | None = None
        if NAME in wanted:
            self.name_finder = name_finder or NameFinder()

    def scan(self, text: str, language: str | None = None) -> list[Span]:
        """Non-overlapping spans sorted by position. Never raises on odd input (empty,
        whitespace-only, very long texts)."""
        if not text or text.isspace():
            return []
        found: list[Span] = []
        passed: dict[object, bool] = {}
        for spec in self.text_specs:
            if spec.starts is not None:
                # the start search is the prefilter
                found.extend(self._scan_starts(spec, text, language))
                continue
            check = spec.prefilter
            if check in passed:
                ok = passed[check]
            else:
                ok = passed[check] = bool(check(text))
            if ok:
                if spec.anchor:
                    found.extend(self._scan_anchored(spec, text, language))
                else:
                    regex = spec.scan_regex or spec.regex
                    for match in regex.finditer(text):
                        span = accept_candidate(spec, text, match.start("v"), match.end("v"), language, self.context_window)
                        if span is not None:
                            found.append(span)
        if self.number_specs:
            found.extend(self._scan_numbers(text, language))
        if self.name_finder is not None:
            found.extend(_new_span((n.start, n.end, NAME, "name:" + n.rule, NAME_SCORE)) for n in self.name_finder.find(text))
        return resolve_overlaps(found)

    def _scan_numbers(self, text: str, language: str | None) -> list[Span]:
        """Run the number recognizers only inside runs of digits long enough to hold a match,
        each only where the run has as many digits, dots and as long a group as its matches,
        and only at the run's ``starts``."""
        found: list[Span] = []
        size = len(text)
        plan = self._number_plan
        for _start, end, digits, longest, dots, starts in number_runs(text, 7):
            if digits < _MIN_DIGITS and not dots:
                continue
            # lookbehinds see before the run; lookaheads need two characters past its end
            stop = min(size, end + 2)
            for run_digits, run_group, run_dots, spec in plan:
                if digits < run_digits or longest < run_group or dots < run_dots:
                    continue
                self._scan_at(spec, text, starts, stop, language, found)
        return found

    def _scan_starts(self, spec: PatternSpec, text: str, language: str | None) -> list[Span]:
        """Try ``spec.regex`` only where ``spec.starts`` says a match can begin."""
        found: list[Span] = []
        self._scan_at(spec, text, spec.starts(text), len(text), language, found)
        return found

    def _scan_at(self, spec: PatternSpec, text: str, positions: Iterable[int], stop: int, language: str | None,
                 found: list[Span]) -> None:
        """Append the spans ``spec.regex`` gives where matches can begin (``positions``, in
        order): what ``spec.regex.finditer(text, first position, stop)`` finds, since matches do
        not overlap and a position inside the last match is skipped."""
        match_at = spec.regex.match
        after = 0
        for position in positions:
            if position < after:
                continue
            match = match_at(text, position, stop)
            if match is None:
                continue
            after = match.end()
            span = accept_candidate(spec, text, match.start("v"), match.end("v"), language, self.context_window)
            if span is not None:
                found.append(span)

    def _scan_anchored(self, spec: PatternSpec, text: str, language: str | None) -> list[Span]:
        """Run ``spec.regex`` only on the pieces of text around each ``spec.anchor``: the run
        of non-space characters holding it (no match crosses whitespace), each piece once."""
        found: list[Span] = []
        anchor = spec.anchor or ""
        i = text.find(anchor)
        while i >= 0:
            lo = i
            while lo > 0 and not text[lo - 1].isspace():
                lo -= 1
            hi = _NON_SPACE.match(text, i).end()
            for match in spec.regex.finditer(text, lo, hi):
                span = accept_candidate(spec, text, match.start("v"), match.end("v"), language, self.context_window)
                if span is not None:
                    found.append(span)
            i = text.find(anchor, hi)
        return found
