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

from nordpipe.pii.engine import NAME_SCORE, accept_candidate
from nordpipe.pii.names import NameFinder
from nordpipe.pii.recognizers import ALL_ENTITIES, NAME, REJECT, PatternSpec, specs_for
from nordpipe.pii.replace import tag_for

DEFAULT_LANGUAGE = "da"


class NordicPatternRecognizer(PatternRecognizer):
    """A nordpipe ``PatternSpec`` as a presidio ``PatternRecognizer``."""

    def __init__(self, spec: PatternSpec, supported_language: str = DEFAULT_LANGUAGE,
                 validate: Callable[[str], int] | None = None):
        self.spec = spec
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
            span = accept_candidate(self.spec, text, result.start, result.end,
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
        return [RecognizerResult(NAME, s.start, s.end, NAME_SCORE) for s in self.finder.find(text)]


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
