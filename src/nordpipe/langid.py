"""Language identification: label every document, optionally keep only some languages.

``LanguageIdentifier`` is a datatrove pipeline step. It runs lingua (offline, models shipped in
the wheel) restricted to the Nordic languages plus English, so Bokmål and Nynorsk are told
apart, and writes ``metadata["nordpipe"]["language"]`` (ISO 639-1: da, nb, nn, sv, is, fo, fi,
en) and ``["language_score"]`` (lingua's confidence, 0-1, relative to the other candidates; where the
word first pass below decides, the share of the text's marker words that belong to the language,
0.8-1).
The quality filters pick their per-language settings from that label, and the writer counts
removals by it.

Bokmål and Nynorsk are close: lingua alone labels ~1% of real Nynorsk paragraphs and ~8-11% of
single Nynorsk sentences Bokmål (and the reverse). Once lingua has said one of the two, the
frequent words whose standard forms differ (``languages.NORWEGIAN_FORM_WORDS``: ikke/ikkje,
jeg/eg, hva/kva, fra/frå, ...) decide which; the score is then lingua's confidence for the two
together. On the report split of ``benchmarks/bench_langid.py`` this gives 100% on da, nb, nn
and sv paragraphs (50-150 words; lingua alone: 99.0% nb, 99.4% nn) and +2-3 points on nb/nn
sentences. py3langid as that second opinion was measured too and loses Nynorsk sentences.

Only the middle 500 characters of a longer text are read (``max_chars``): ~1.8x faster on
2,000-character documents than the 1,000 used before, equally accurate with the word evidence.

Short first pass (issue 20): lingua's cost grows with the sample (from 120 letters on it uses
trigrams only, so low-accuracy mode saves nothing on documents), and it was half of the quality
stage's CPU. A sample of 400 characters or more is first judged on its middle 200
(``first_pass_chars``); the answer is taken when lingua is sure (``sure_score``, 0.99) *and*
cheap evidence in the whole 500-character sample backs it among the close languages
(``_confirms``: Swedish needs more "ä"/"ö" than "æ"/"ø", Danish and Norwegian the reverse or
neither; Danish needs more Danish than Norwegian ``languages.DANISH_NORWEGIAN_WORDS`` -- af/av, efter/etter, sig/seg, blev/ble, ... -- and
Bokmål/Nynorsk the reverse; Bokmål vs Nynorsk is then settled by the form words as before).
Otherwise lingua reads the whole sample, exactly as without the first pass. A 200-character
sample with fewer than 120 letters (menus, tables) skips the first pass: lingua would read it
with all its n-gram models, slower and loading them on first use (``LINGUA_TRIGRAM_LETTERS``).
Confidence alone is not enough: on 200 characters lingua calls some Danish paragraphs Bokmål at
0.9999. Measured on 4,000 documents of real da/nb/nn/sv sentences (``benchmarks/bench_quality_stage.py``'s corpus):
the same label as without the first pass on every document, ~1.6x faster (1,000 -> 1,600 docs/s
per core under load); ``benchmarks/results/quality_stage.md`` has the stage figures.

Word first pass (issue 20, second round): lingua was still ~45% of the quality stage after the
short first pass. Before any lingua call, the sample's words are looked up in
``languages.MARKER_WORDS`` -- frequent words of exactly one candidate (da, Norwegian, sv, en, fi,
is) -- in the middle ``marker_chars`` (1,500) characters, and the answer is taken when at least
``marker_min_words`` (4) of them are found, at least
``marker_share`` (0.8) of them belong to one language, frequent German/Dutch/French/Spanish/
Italian words (``OTHER_LANGUAGE_WORDS``) occur at most once (a single one is mostly a name:
"Los Angeles"), and ``_confirms`` backs it; Norwegian is then
Bokmål or Nynorsk by the form words (a tie goes to lingua). The score is that share. A dictionary
lookup per word costs ~1/20 of lingua on 500 characters. fastText's compressed ``lid.176.ftz`` was
measured as a first pass too and was no cheaper than lingua's 200-character pass (~4,700 vs ~3,600
calls/s on 500 vs 200 characters), so it is not used. Measured agreement with lingua and accuracy:
``benchmarks/results/quality_stage.md``.

``--languages no`` keeps both written forms: ``parse_languages`` expands groups
(``languages.GROUPS``); every code, alias and detector name lives in ``nordpipe.languages``.

lingua has no Faroese model. Faroese shares "ð" with Icelandic and much vocabulary with
Danish and Norwegian, so a document lingua calls Icelandic, Danish or Norwegian and that holds
"ð" gets a second opinion from py3langid (langid.py's model, shipped in its wheel, restricted
to the same languages), which knows Faroese.

With ``languages`` set, documents in other languages are removed (``language:other``) and so
are those below the language's minimum score (``language:low_score``); the minimum comes from
the per-language settings (``language_id.min_score``) unless ``min_scores`` overrides it.

Detectors are built lazily in each process (steps are pickled to Slurm tasks; lingua's
detectors are not picklable) and reused for every document.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from nordpipe.documents import mark_removed, nordpipe_meta
from nordpipe.languages import (
    DANISH_NORWEGIAN_WORDS,
    DETECTOR_LANGUAGES,
    LANGUAGES,
    LINGUA_NAMES,
    MARKER_WORDS,
    NORWEGIAN_FORM_WORDS,
    OTHER_LANGUAGE_WORDS,
    PY3LANGID_CODES,
    UnknownLanguage,
    expand_language,
    expand_languages,
    valid_codes_text,
)
from nordpipe.process_cache import shared
from nordpipe.settings import load_settings
from nordpipe.steps import add_counts, is_active

_FAROESE_CANDIDATES = ("is", "da", "nb", "nn")
LINGUA_TRIGRAM_LETTERS = 120
"""lingua reads a text of at least this many letters with its trigram models only, and a shorter
one with all its n-gram models (1-5): more per call (0.34 against 0.27 ms on 200-character samples,
warm), and the first such call in a process loads those models (~1.9 s CPU here). Measured: on
120+ letters the default and the low-accuracy detector give identical confidences, on 118 they
differ. The 200-character first pass is skipped when its sample has fewer letters (navigation
menus, tables): reading the whole sample then is what happens without the first pass, and stays
in trigram mode when that sample has enough letters. A whole sample with fewer letters (a short
document) still needs the full models: on the quality benchmark's corpus 60 of 20,000 documents
do, so each process there still loads them once (issue 20)."""
_WORD = re.compile(r"[^\W\d_]+")
_OTHER = "other"
# Occurrences of ``OTHER_LANGUAGE_WORDS`` that send a sample to lingua. Two, not one: a single
# one is mostly part of a name ("Los Angeles", "von Trier", "Kim Jong-il"), and a text in one of
# those languages holds dozens.
_OTHER_VETO = 2


def _word_tags() -> dict[str, tuple[str | None, str | None, str | None]]:
    """word -> (``MARKER_WORDS`` language or ``_OTHER``, ``NORWEGIAN_FORM_WORDS`` form,
    ``DANISH_NORWEGIAN_WORDS`` side): every word list the word pass reads, in one lookup."""
    tags: dict[str, list[str | None]] = {}
    for family, words in MARKER_WORDS.items():
        for word in words:
            tags.setdefault(word, [None, None, None])[0] = family
    for word in OTHER_LANGUAGE_WORDS:
        tags.setdefault(word, [None, None, None])[0] = _OTHER
    for form, words in NORWEGIAN_FORM_WORDS.items():
        for word in words:
            tags.setdefault(word, [None, None, None])[1] = form
    for side, words in DANISH_NORWEGIAN_WORDS.items():
        for word in words:
            tags.setdefault(word, [None, None, None])[2] = side
    return {word: (family, form, side) for word, (family, form, side) in tags.items()}


_WORD_TAGS = _word_tags()
_NO_TAGS = (None, None, None)
_LANGID_LANGUAGES = [PY3LANGID_CODES[c] for c in (*DETECTOR_LANGUAGES, "fo")]

UNKNOWN = "unknown"


def detector_languages() -> tuple[str, ...]:
    """Every label ``LanguageIdentifier`` can give (besides ``unknown``)."""
    return (*DETECTOR_LANGUAGES, "fo")


def parse_min_scores(value: str | float | Mapping[str, float] | None) -> dict[str, float] | None:
    """``0.6`` (every language) or ``"da=0.5,nb=0.7"`` -> {language: minimum}; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return dict.fromkeys(LANGUAGES, float(value))
    if isinstance(value, Mapping):
        pairs = value.items()
    else:
        text = str(value).strip()
        try:
            return dict.fromkeys(LANGUAGES, float(text))
        except ValueError:
            pairs = []
            for part in text.split(","):
                if "=" not in part:
                    raise ValueError(f"minimum score {part!r}: use 0.6 or da=0.5,nb=0.7") from None
                code, _, number = part.partition("=")
                pairs.append((code, number))  # type: ignore[arg-type]
    scores: dict[str, float] = {}
    for code, number in pairs:
        try:
            languages = expand_language(code)
        except UnknownLanguage:
            raise ValueError(f"minimum score: unknown language {code!r} (valid: {valid_codes_text()})") from None
        score = float(number)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"minimum score for {code.strip()}: {score} is not between 0 and 1")
        scores.update(dict.fromkeys(languages, score))
    return scores


def parse_languages(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"da,nob"`` -> ("da", "nb"), ``"no"`` -> ("nb", "nn") (``languages.expand_languages``);
    unknown codes raise ``ValueError`` listing the valid ones."""
    return expand_languages(value)


class LanguageIdentifier(PipelineStep):
    """Label each document's language with lingua; keep only ``languages`` when given.

    Args:
        languages: languages to keep (e.g. ``("da", "nb")``); None keeps every document and only
            labels it (default).
        min_scores: minimum confidence per language for a kept document, overriding the
            settings' ``language_id.min_score``; a float applies to every language.
        settings: settings override (YAML path or mapping, see ``quality.load_settings``).
        max_chars: longer texts are judged on their middle ``max_chars`` characters (default
            500, about 80 words): lingua's cost grows with the length (2,000-character documents:
            ~770 docs/s per core at 1,000 characters, ~1,270 at 500, ~1,900 at 300) while its
            answer does not change past a paragraph, and the middle of a web page is its text,
            not its menus and banners. 500 with ``norwegian_words`` is as accurate as 1,000
            without on real paragraphs (``benchmarks/results/langid.md``); 300 loses Nynorsk.
        low_accuracy: lingua's low-accuracy mode (trigrams only; default False). On paragraphs
            it is as accurate and no faster here; on single sentences it is ~6x faster and 5-8
            points less accurate for da/nb/nn, so it is off.
        first_pass_chars: judge a sample of at least twice this many characters on its middle
            ``first_pass_chars`` first (default 200; 0 turns the first pass off). 130 was
            measured slower (more fall-backs), 250 no more accurate.
        sure_score: the first pass's answer is taken only at this confidence or above (default
            0.99; 0.95 gave the same labels here but leaves less margin) and with ``_confirms``.
        norwegian_words: when lingua says Bokmål or Nynorsk, let ``NORWEGIAN_FORM_WORDS``
            decide which (more words of one form than the other), with lingua's confidence
            for the two together as the score (default True). lingua alone mislabels ~1% of
            Nynorsk paragraphs and ~8-11% of single Nynorsk sentences as Bokmål.
        word_first_pass: settle a sample by its ``MARKER_WORDS`` before asking lingua (default
            True; False is lingua alone with its short first pass, as before).
        marker_min_words: marker words of one language the word pass needs (default 4).
        marker_share: the share of the sample's marker words that must belong to that language
            (default 0.8); it is also the score the word pass gives.
        marker_chars: the word pass reads the middle ``marker_chars`` characters (default 1,500:
            a dictionary lookup per word is cheap, and on 500 characters ~45% of the Danish and
            Bokmål documents of the benchmark corpus hold fewer than four marker words).
    """

    type = "🔤 - LANGUAGE"
    name = "language"

    def __init__(
        self,
        languages: Iterable[str] | str | None = None,
        min_scores: Mapping[str, float] | float | str | None = None,
        settings: str | Mapping[str, Any] | None = None,
        max_chars: int = 500,
        low_accuracy: bool = False,
        norwegian_words: bool = True,
        first_pass_chars: int = 200,
        sure_score: float = 0.99,
        word_first_pass: bool = True,
        marker_min_words: int = 4,
        marker_share: float = 0.8,
        marker_chars: int = 1500,
    ):
        super().__init__()
        self.languages = parse_languages(languages)
        loaded = load_settings(settings)
        thresholds = {lang: float(loaded[lang]["language_id"]["min_score"]) for lang in LANGUAGES}
        thresholds.update(parse_min_scores(min_scores) or {})
        self.min_scores = thresholds
        self.max_chars = max_chars
        self.low_accuracy = low_accuracy
        self.norwegian_words = norwegian_words
        self.first_pass_chars = first_pass_chars
        self.sure_score = sure_score
        self.word_first_pass = word_first_pass
        self.marker_min_words = marker_min_words
        self.marker_share = marker_share
        self.marker_chars = marker_chars
        self._lingua: Any = None
        self._langid: Any = None

    # Detectors: built on first use in each process, never pickled.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lingua"] = state["_langid"] = None
        return state

    def _lingua_detector(self) -> Any:
        if self._lingua is None:
            from lingua import Language, LanguageDetectorBuilder

            builder = LanguageDetectorBuilder.from_languages(*(getattr(Language, LINGUA_NAMES[c]) for c in DETECTOR_LANGUAGES))
            if self.low_accuracy:
                builder = builder.with_low_accuracy_mode()
            self._lingua = builder.build()
        return self._lingua

    def _langid_identifier(self) -> Any:
        if self._langid is None:
            # Once per process, not per task (0.4 s each time; ``nordpipe.process_cache``).
            # lingua keeps its models in a process-wide cache of its own.
            self._langid = shared(("langid.py3langid", tuple(_LANGID_LANGUAGES)), _py3langid_identifier)
        return self._langid

    def identify(self, text: str) -> tuple[str, float]:
        """(language, confidence) of ``text``; ``("unknown", 0.0)`` when it holds no letters."""
        sample = _middle(text, self.max_chars)
        if not any(ch.isalpha() for ch in sample):
            return UNKNOWN, 0.0
        found = self._word_pass(_middle(text, self.marker_chars)) if self.word_first_pass else None
        if found is not None:
            return self._faroese_check(found, sample)
        detector = self._lingua_detector()
        if self.first_pass_chars and len(sample) >= 2 * self.first_pass_chars:
            first = _middle(sample, self.first_pass_chars)
            # Skipped when lingua would read it in its slow mode (see LINGUA_TRIGRAM_LETTERS).
            if sum(map(str.isalpha, first)) >= LINGUA_TRIGRAM_LETTERS:
                found = self._judge(detector.compute_language_confidence_values(first), sample, self.sure_score)
                if found is not None and not _confirms(found[0], sample):
                    found = None
        if found is None:
            found = self._judge(detector.compute_language_confidence_values(sample), sample, 0.0)
        if found is None:
            return UNKNOWN, 0.0
        return self._faroese_check(found, sample)

    def _faroese_check(self, found: tuple[str, float], sample: str) -> tuple[str, float]:
        """lingua has no Faroese: an Icelandic, Danish or Norwegian answer on a text with "ð" gets
        py3langid's second opinion, which knows Faroese."""
        code, score = found
        if code in _FAROESE_CANDIDATES and "ð" in sample.lower():
            label, probability = self._langid_identifier().classify(sample)
            if label == "fo":
                return "fo", float(probability)
        return code, score

    def _word_pass(self, sample: str) -> tuple[str, float] | None:
        """(language, share of its marker words) when ``sample``'s ``MARKER_WORDS`` settle it (see
        the module docstring); None sends the sample to lingua. The checks are those of
        ``marker_vote``, ``norwegian_form`` and ``_confirms``, made from one pass over the words."""
        lowered = sample.lower()
        counts = dict.fromkeys(MARKER_WORDS, 0)
        forms = {"nb": 0, "nn": 0}
        close = {"da": 0, "no": 0}
        others = 0
        # Only tagged words reach the Python loop (the lookups and the filtering stay in C): most
        # words are in no list.
        for family, form, side in filter(None, map(_WORD_TAGS.get, _WORD.findall(lowered))):
            if family == _OTHER:
                others += 1
                if others >= _OTHER_VETO:
                    return None
                continue
            if family is not None:
                counts[family] += 1
            if form is not None:
                forms[form] += 1
            if side is not None:
                close[side] += 1
        found = _settled(counts, self.marker_min_words, self.marker_share)
        if found is None:
            return None
        code, share = found
        if code == "no":
            if not self.norwegian_words or forms["nb"] == forms["nn"]:
                return None
            code = "nb" if forms["nb"] > forms["nn"] else "nn"
        # A share under the language's minimum score would remove the document on the word
        # count alone: lingua, the reference, judges those.
        if share < self.min_scores.get(code, 0.0) or not _backed(code, lowered, close):
            return None
        return code, share

    def _judge(self, values: list[Any], sample: str, sure: float) -> tuple[str, float] | None:
        """(language, confidence) from lingua's ``values``; None when there are none or when
        the confidence is below ``sure`` (the first pass then defers to lingua on the whole
        sample). Bokmål and Nynorsk are judged together (their summed confidence) and told
        apart by ``norwegian_form`` on the whole ``sample``; a first pass leaves a tie of the
        form words to lingua on the whole sample too."""
        if not values:
            return None
        best = values[0]
        code = _code_of(best.language)
        score = float(best.value)
        if self.norwegian_words and code in ("nb", "nn"):
            form = norwegian_form(sample)
            if form is not None:
                code = form
                score = sum(float(v.value) for v in values if _code_of(v.language) in ("nb", "nn"))
            elif sure:
                return None
        if score < sure:
            return None
        return code, score

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        labelled: Counter[str] = Counter()
        try:
            for doc in data:
                if is_active(doc):
                    with self.track_time():
                        labelled[self.label(doc)] += 1
                yield doc
        finally:
            add_counts(self, {f"language_{language}": count for language, count in labelled.items()})

    def label(self, doc: Document) -> str:
        """Label ``doc`` (and mark it removed when its language is not kept); returns the language."""
        language, score = self.identify(doc.text)
        meta = nordpipe_meta(doc)
        meta["language"] = language
        meta["language_score"] = round(score, 4)
        if self.languages is None:
            return language
        if language not in self.languages:
            mark_removed(doc, f"{self.name}:other")
            self.stat_update("removed", "removed:other")
        elif score < self.min_scores.get(language, 0.0):
            mark_removed(doc, f"{self.name}:low_score")
            self.stat_update("removed", "removed:low_score")
        return language


_CLOSE_CHECKS = {"da": "da", "nb": "no", "nn": "no"}


def _confirms(code: str, sample: str) -> bool:
    """Whether cheap evidence in the whole ``sample`` backs a short first pass's answer among the
    close languages: Swedish needs more "ä"/"ö" than "æ"/"ø"; Danish and Norwegian need none of
    "ä"/"ö" or more "æ"/"ø" than them (a name such as "Malmö" does not make Danish Swedish);
    Danish needs more Danish than Norwegian ``DANISH_NORWEGIAN_WORDS``, Bokmål and Nynorsk the
    reverse. lingua on 200 characters calls some Danish paragraphs Bokmål with
    0.9999 confidence (and the reverse), so its confidence alone cannot vouch for it."""
    lowered = sample.lower()
    votes = {"da": 0, "no": 0}
    if code in _CLOSE_CHECKS:
        da_words, no_words = DANISH_NORWEGIAN_WORDS["da"], DANISH_NORWEGIAN_WORDS["no"]
        for word in _WORD.findall(lowered):
            if word in da_words:
                votes["da"] += 1
            elif word in no_words:
                votes["no"] += 1
    return _backed(code, lowered, votes)


def marker_vote(text: str, min_words: int = 4, min_share: float = 0.8) -> tuple[str, float] | None:
    """(language, share) when ``text`` holds at least ``min_words`` ``MARKER_WORDS`` and at least
    ``min_share`` of them belong to one language ("no" = Bokmål or Nynorsk); None when the words
    do not settle it or frequent words of a language outside the candidates occur twice."""
    counts = dict.fromkeys(MARKER_WORDS, 0)
    others = 0
    for word in _WORD.findall(text.lower()):
        family = _WORD_TAGS.get(word, _NO_TAGS)[0]
        if family == _OTHER:
            others += 1
            if others >= _OTHER_VETO:
                return None
            continue
        if family is not None:
            counts[family] += 1
    return _settled(counts, min_words, min_share)


def _settled(counts: dict[str, int], min_words: int, min_share: float) -> tuple[str, float] | None:
    total = sum(counts.values())
    if total < min_words:
        return None
    family = max(counts, key=counts.__getitem__)
    share = counts[family] / total
    if counts[family] < min_words or share < min_share:
        return None
    return family, share


def _backed(code: str, lowered: str, close: dict[str, int]) -> bool:
    """``_confirms`` given the lowered sample and its Danish/Norwegian word counts (``close``),
    so the word pass can count them in its own single pass over the words."""
    if code not in ("da", "nb", "nn", "sv"):
        return True
    # Letters of one side only. By count, not presence: a Danish text quoting "Malmö" or
    # "Björn" still has far more "æ"/"ø" than "ä"/"ö", and a Swedish text naming "Søren" the
    # reverse (presence alone sent ~6% of real Danish documents to lingua; issue 20).
    swedish = lowered.count("ä") + lowered.count("ö")
    danish_norwegian = lowered.count("æ") + lowered.count("ø")
    if code == "sv":
        return swedish > danish_norwegian
    if swedish and swedish >= danish_norwegian:
        return False
    family = _CLOSE_CHECKS[code]
    other = "no" if family == "da" else "da"
    return close[family] > close[other]


def _py3langid_identifier() -> Any:
    """py3langid's model restricted to the languages lingua is asked about, plus Faroese."""
    from py3langid import langid

    identifier = langid.LanguageIdentifier.from_modelpath(langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True)
    identifier.set_languages(_LANGID_LANGUAGES)
    return identifier


def _middle(text: str, chars: int) -> str:
    """The middle ``chars`` characters of ``text`` (all of it when shorter)."""
    if len(text) <= chars:
        return text
    start = (len(text) - chars) // 2
    return text[start : start + chars]


def _code_of(language: Any) -> str:
    name = language.name
    for code, lingua_name in LINGUA_NAMES.items():
        if lingua_name == name:
            return code
    return UNKNOWN


def norwegian_form(text: str) -> str | None:
    """``nb`` or ``nn``: the form most of ``text``'s ``NORWEGIAN_FORM_WORDS`` belong to; None on a tie."""
    nb = nn = 0
    nb_words, nn_words = NORWEGIAN_FORM_WORDS["nb"], NORWEGIAN_FORM_WORDS["nn"]
    for word in _WORD.findall(text.lower()):
        if word in nb_words:
            nb += 1
        elif word in nn_words:
            nn += 1
    if nb == nn:
        return None
    return "nb" if nb > nn else "nn"
