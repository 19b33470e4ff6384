"""nordpipe's recognizers as presidio recognizers, and an offline presidio analyzer.

``offline_analyzer()`` builds a presidio ``AnalyzerEngine`` that needs no spaCy model and no
network: presidio's ``NoOpNlpEngine`` (no tokens, no NER) and a registry holding only
nordpipe's recognizers:

- ``NordicPatternRecognizer``: a presidio ``PatternRecognizer`` per ``PatternSpec`` (same
  regex, same validator; context rules applied to the raw text because the no-op engine
  produces no tokens for presidio's lemma-based context enhancer);
- ``NordicNameRecognizer``: a presidio ``EntityRecognizer`` running the built-in name finder.

E-mail validation uses tldextract with its bundled public-suffix snapshot
(``suffix_list_urls=()``), so presidio's usual fetch of the list never happens.

This is the reference the tests and the benchmark compare nordpipe's scanner against.

Presidio as an engine users extend (``nordpipe pii --engine presidio --recognizers FILE``):

- ``nordic_registry()`` is nordpipe's recognizers as a presidio ``RecognizerRegistry``, one
  copy per document language (presidio's ``language`` *is* the document's language: ``da``,
  ``nb``, ``nn``, ``sv``, ``fi``, ``is``, ``fo``, and ``und`` for a document without one),
  so the language-dependent rules (a WEAK HETU accepted in Finnish text, the score bonus of a
  country's identifier in its own language) decide exactly as in the fast scanner. A team's
  own script::

      from presidio_analyzer import AnalyzerEngine
      from nordpipe.pii.presidio import analyzer_languages, load_user_recognizers, nordic_registry, no_op_nlp_engine
      registry = nordic_registry()
      for recognizer in load_user_recognizers("our_recognizers.yaml"):  # all languages unless one is named
          registry.add_recognizer(recognizer)
      analyzer = AnalyzerEngine(registry=registry, nlp_engine=no_op_nlp_engine(), supported_languages=analyzer_languages())
      print(analyzer.analyze("cpr-nr. 010203-1235, medarbejder MA-123456", language="da"))

  (``registry.add_recognizers_from_yaml(path)`` works too, for entries that name their
  ``supported_language``: presidio's default, ``en``, is no language of this registry.)

- ``load_user_recognizers(path)`` reads a presidio recognizer YAML (the format of
  ``RecognizerRegistry.add_recognizers_from_yaml``) and checks it before any task starts. An
  entry without ``supported_language`` applies to documents of every language (presidio's own
  default, ``en``, would match no Nordic document); with one, only to that language's.
- ``PresidioScanner`` is the ``PiiScanner`` interface over such an analyzer: presidio's
  results become nordpipe ``Span``s and go through the fast scanner's overlap resolution, so
  both engines write byte-identical documents (``tests/test_pii_presidio.py``). It is slower
  (``benchmarks/results/pii.md``): presidio runs every regex on the whole text, without the
  fast scanner's prefilters.
- Context words of a user's recognizer do not raise its score: the no-op NLP engine gives
  presidio's lemma context enhancer no tokens. Put the context into the regex (a lookbehind)
  or give the pattern the score it needs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

from nordpipe.pii.engine import NAME_SCORE, Span, accept_candidate, resolve_overlaps
from nordpipe.pii.names import NameFinder
from nordpipe.pii.recognizers import ALL_ENTITIES, NAME, REJECT, PatternSpec, specs_for
from nordpipe.pii.replace import tag_for

DEFAULT_LANGUAGE = "da"
LANGUAGES = ("da", "nb", "nn", "sv", "fi", "is", "fo")
"""Document languages nordpipe's rules know; any other analyzes as ``UNDETERMINED``."""
UNDETERMINED = "und"


def analyzer_languages() -> list[str]:
    """The presidio languages of ``nordic_registry()``: the Nordic ones and ``und``."""
    return [*LANGUAGES, UNDETERMINED]


def presidio_language(language: str | None) -> str:
    """The presidio language a document of ``language`` is analyzed as."""
    return language if language in LANGUAGES else UNDETERMINED


def no_op_nlp_engine(languages: list[str] | None = None) -> NoOpNlpEngine:
    """presidio's NLP engine that loads no model (no spaCy download, no tokens)."""
    engine = NoOpNlpEngine(models=[{"lang_code": lang, "model_name": "no_op"} for lang in languages or analyzer_languages()])
    engine.load()
    return engine


class NordicPatternRecognizer(PatternRecognizer):
    """A nordpipe ``PatternSpec`` as a presidio ``PatternRecognizer``."""

    def __init__(self, spec: PatternSpec, supported_language: str = DEFAULT_LANGUAGE,
                 validate: Callable[[str], int] | None = None, document_language: str | None = None):
        self.spec = spec
        # the language nordpipe's rules see (None: as the fast scanner called without one)
        self.document_language = document_language
        self.validate = validate or spec.validate
        self._grades: dict[str, int] = {}
        super().__init__(
            supported_entity=spec.entity,
            name=f"nordpipe_{spec.name}",
            patterns=[Pattern(spec.name, spec.regex.pattern, spec.score)],
            context=list(spec.context),
            supported_language=supported_language,
            global_regex_flags=0,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        grade = self.validate(pattern_text)
        self._grades[pattern_text] = grade  # for the context rules in analyze(): validate once
        return grade != REJECT

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        self._grades: dict[str, int] = {}
        found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        if not found:
            return found
        # nordpipe's context rules (WEAK needs context; negative context; amounts) on the
        # raw text, since the no-op NLP engine gives presidio no tokens to look at
        kept = []
        for result in found:
            span = accept_candidate(self.spec, text, result.start, result.end, self.document_language,
                                    grade=self._grades.get(text[result.start : result.end]))
            if span is not None:
                result.score = span.score
                kept.append(result)
        return kept


class NordicNameRecognizer(EntityRecognizer):
    """nordpipe's built-in name finder as a presidio ``EntityRecognizer`` (entity ``NAME``)."""

    def __init__(self, supported_language: str = DEFAULT_LANGUAGE, finder: NameFinder | None = None):
        self.finder = finder or NameFinder()
        super().__init__(supported_entities=[NAME], name="nordpipe_names", supported_language=supported_language)

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if NAME not in entities:
            return []
        return [RecognizerResult(NAME, s.start, s.end, NAME_SCORE,
                                 recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                       RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                                                       "nordpipe_recognizer": "name:" + s.rule})
                for s in self.finder.find(text)]


Validators = Literal["nordpipe", "library"]


def pattern_recognizers(entities: set[str], language: str = DEFAULT_LANGUAGE,
                        validators: Validators = "nordpipe") -> list[NordicPatternRecognizer]:
    """nordpipe's pattern specs as presidio recognizers. ``validators="library"`` validates with
    python-stdnum / phonenumbers / tldextract on every candidate (``pii.reference``), as a
    presidio recognizer written without nordpipe's fast paths would; ``"nordpipe"`` shares
    nordpipe's fast validators. Both decide the same."""
    from nordpipe.pii.reference import REFERENCE_VALIDATORS

    table = REFERENCE_VALIDATORS if validators == "library" else {}
    return [NordicPatternRecognizer(spec, language, table.get(spec.name)) for spec in specs_for(entities)]


def offline_analyzer(entities: list[str] | None = None, language: str = DEFAULT_LANGUAGE,
                     validators: Validators = "nordpipe", nlp_engine: Any = None) -> AnalyzerEngine:
    """A presidio AnalyzerEngine with nordpipe's recognizers, no model, no network (presidio's
    no-op NLP engine unless ``nlp_engine`` is given)."""
    wanted = set(entities or ALL_ENTITIES)
    if nlp_engine is None:
        nlp_engine = NoOpNlpEngine(models=[{"lang_code": language, "model_name": "no_op"}])
        nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=[language])
    for recognizer in pattern_recognizers(wanted, language, validators):
        registry.add_recognizer(recognizer)
    if NAME in wanted:
        registry.add_recognizer(NordicNameRecognizer(language))
    with warnings.catch_warnings():
        # presidio warns that its lemma context enhancer sees no tokens with the no-op
        # engine; our recognizers apply their context rules themselves
        warnings.simplefilter("ignore", UserWarning)
        return AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=[language])


def tag_operators(entities: list[str] | None = None) -> dict[str, OperatorConfig]:
    """presidio anonymizer operators writing nordpipe's tags (``<CPR>``...)."""
    return {e: OperatorConfig("replace", {"new_value": tag_for(e)}) for e in (entities or ALL_ENTITIES)}


class PresidioPipeline:
    """Analyze + anonymize with presidio, tag mode: the reference for nordpipe's scanner."""

    def __init__(self, entities: list[str] | None = None, language: str = DEFAULT_LANGUAGE,
                 validators: Validators = "nordpipe", nlp_engine: Any = None):
        self.entities = list(entities or ALL_ENTITIES)
        self.language = language
        self.analyzer = offline_analyzer(self.entities, language, validators, nlp_engine)
        self.anonymizer = AnonymizerEngine()
        self.operators = tag_operators(self.entities)

    def analyze(self, text: str) -> list[RecognizerResult]:
        return self.analyzer.analyze(text, language=self.language, entities=self.entities)

    def redact(self, text: str) -> str:
        results = self.analyze(text)
        return self.anonymizer.anonymize(text, results, operators=self.operators).text


# --------------------------------------------------------------------------------------------
# presidio as an engine users extend


def nordic_registry(entities: list[str] | None = None, languages: list[str] | None = None,
                    name_finder: Any = None) -> RecognizerRegistry:
    """nordpipe's recognizers as a presidio registry, for each of ``languages`` (default
    ``analyzer_languages()``); ``name_finder``: a model-based finder instead of the built-in
    one (shared by all languages, as is the built-in one)."""
    wanted = set(entities or ALL_ENTITIES)
    langs = list(languages or analyzer_languages())
    registry = RecognizerRegistry(supported_languages=langs)
    finder = (name_finder or NameFinder()) if NAME in wanted else None
    specs = specs_for(wanted)
    for lang in langs:
        document_language = None if lang == UNDETERMINED else lang
        for spec in specs:
            registry.add_recognizer(NordicPatternRecognizer(spec, lang, document_language=document_language))
        if finder is not None:
            registry.add_recognizer(NordicNameRecognizer(lang, finder))
    return registry


class RecognizerFileError(ValueError):
    """A user's recognizer YAML cannot be used (the message names the file and the problem)."""


def load_user_recognizers(path: str) -> list[PatternRecognizer]:
    """The pattern recognizers of a presidio recognizer YAML, one per language it applies to.
    Raises ``RecognizerFileError`` naming the file (and entry) on any problem."""
    import re

    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as err:
        raise RecognizerFileError(f"{path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise RecognizerFileError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    entries = data.get("recognizers") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RecognizerFileError(f"{path}: expected a mapping with a non-empty list under "
                                  "'recognizers:' (presidio's recognizer YAML format)")
    known = analyzer_languages()
    found: list[PatternRecognizer] = []
    for number, entry in enumerate(entries, 1):
        where = f"{path}: recognizer {number}"
        if not isinstance(entry, dict):
            raise RecognizerFileError(f"{where}: expected a mapping, got {type(entry).__name__}")
        where += f" ({entry.get('name')!r})" if entry.get("name") else ""
        if not (entry.get("supported_entity") or entry.get("supported_entities")):
            raise RecognizerFileError(f"{where}: no supported_entity")
        if not (entry.get("patterns") or entry.get("deny_list")):
            raise RecognizerFileError(f"{where}: neither patterns nor deny_list")
        for pattern in entry.get("patterns") or []:
            try:
                re.compile(pattern["regex"])
            except (TypeError, KeyError) as err:
                raise RecognizerFileError(f"{where}: a pattern needs name, regex and score ({err})") from None
            except re.error as err:
                raise RecognizerFileError(f"{where}: regex {pattern['regex']!r}: {err}") from None
        langs = entry.get("supported_languages") or ([entry["supported_language"]] if entry.get("supported_language") else known)
        unknown = [lang for lang in langs if lang not in known]
        if unknown:
            raise RecognizerFileError(f"{where}: supported_language {', '.join(map(str, unknown))}; documents are "
                                      f"analyzed as one of {', '.join(known)} (leave it out for all)")
        for lang in langs:
            config = {k: v for k, v in entry.items() if k not in ("supported_languages", "score_thresholds")}
            config["supported_language"] = lang
            try:
                found.append(PatternRecognizer.from_dict(config))
            except (TypeError, ValueError, KeyError) as err:
                raise RecognizerFileError(f"{where}: {err}") from None
    return found


def nordic_analyzer(entities: list[str] | None = None, recognizers_file: str | None = None,
                    name_finder: Any = None) -> AnalyzerEngine:
    """An offline AnalyzerEngine over ``nordic_registry()`` plus the user's recognizers."""
    registry = nordic_registry(entities, name_finder=name_finder)
    if recognizers_file:
        for recognizer in load_user_recognizers(recognizers_file):
            registry.add_recognizer(recognizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the no-op engine's lemma enhancer warning
        return AnalyzerEngine(nlp_engine=no_op_nlp_engine(), registry=registry, supported_languages=analyzer_languages())


def user_entities(recognizers_file: str | None) -> list[str]:
    """Entity types the user's recognizer file adds (besides nordpipe's)."""
    if not recognizers_file:
        return []
    return sorted({e for rec in load_user_recognizers(recognizers_file) for e in rec.supported_entities} - set(ALL_ENTITIES))


class PresidioScanner:
    """``PiiScanner.scan`` over presidio's AnalyzerEngine: the step's ``--engine presidio``."""

    def __init__(self, entities: list[str] | None = None, recognizers_file: str | None = None, name_finder: Any = None):
        self.analyzer = nordic_analyzer(entities, recognizers_file, name_finder)

    def scan(self, text: str, language: str | None = None) -> list[Span]:
        if not text or text.isspace():
            return []
        spans = []
        for result in self.analyzer.analyze(text, language=presidio_language(language)):
            meta = result.recognition_metadata or {}
            name = meta.get("nordpipe_recognizer") or str(meta.get(RecognizerResult.RECOGNIZER_NAME_KEY, "presidio"))
            spans.append(Span(result.start, result.end, result.entity_type, name.removeprefix("nordpipe_"), result.score))
        return resolve_overlaps(spans)
