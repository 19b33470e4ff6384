"""Tests of language identification (nordpipe.langid)."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import pytest
from datatrove.data import Document

from nordpipe.documents import removal_reason
from nordpipe.langid import LanguageIdentifier, detector_languages, parse_languages, parse_min_scores

SENTENCES = {
    "da": "Kommunen har besluttet at renovere den gamle skole i løbet af de næste to år, og eleverne glæder sig.",
    "nb": "Kommunen har bestemt at den gamle skolen skal pusses opp i løpet av de neste to årene, og elevene gleder seg.",
    "nn": "Kommunen har bestemt at den gamle skulen skal pussast opp i løpet av dei neste to åra, og elevane gler seg.",
    "sv": "Kommunen har beslutat att renovera den gamla skolan under de kommande två åren, och eleverna ser fram emot det.",
    "is": "Sveitarfélagið hefur ákveðið að gera upp gamla skólann á næstu tveimur árum og nemendurnir hlakka til.",
    "fo": "Kommunan hevur gjørt av at umvæla gamla skúlan í komandi tveimum árunum, og næmingarnir gleða seg til.",
    "fi": "Kunta on päättänyt kunnostaa vanhan koulun kahden seuraavan vuoden aikana, ja oppilaat odottavat sitä innolla.",
    "en": "The council has decided to renovate the old school over the next two years, and the pupils look forward to it.",
}


def label(step: LanguageIdentifier, texts: list[str]) -> list[Document]:
    docs = [Document(text=t, id=str(i), metadata={}) for i, t in enumerate(texts)]
    return list(step.run(iter(docs)))


def test_labels_each_nordic_language_and_english() -> None:
    step = LanguageIdentifier()
    for code, text in SENTENCES.items():
        doc = label(step, [f"{text} {text}"])[0]
        assert doc.metadata["nordpipe"]["language"] == code, (code, doc.metadata["nordpipe"])
        assert 0.0 < doc.metadata["nordpipe"]["language_score"] <= 1.0
    assert set(SENTENCES) == set(detector_languages())


def test_accuracy_on_real_paragraphs(shared: Path) -> None:
    rng = random.Random(1)
    step = LanguageIdentifier()
    for code, name in (("da", "da_ddt-ud-dev.conllu"), ("sv", "sv_talbanken-ud-dev.conllu")):
        text = (shared / "data" / "ud" / name).read_text(encoding="utf-8")
        sentences = [line[9:] for line in text.splitlines() if line.startswith("# text = ")]
        paragraphs = [" ".join(rng.sample(sentences, rng.randint(1, 3))) for _ in range(150)]
        labels = [d.metadata["nordpipe"]["language"] for d in label(step, paragraphs)]
        assert labels.count(code) >= 0.93 * len(paragraphs), (code, labels.count(code))


@pytest.mark.parametrize("text", ["", " ", "\n\t \n", "12 345 678 !!!", "🙂🙂🙂", "\x85\u2028"])
def test_letterless_text_is_unknown(text: str) -> None:
    doc = label(LanguageIdentifier(), [text])[0]
    assert doc.metadata["nordpipe"]["language"] == "unknown"
    assert doc.metadata["nordpipe"]["language_score"] == 0.0


def test_multi_megabyte_text_reads_only_a_sample() -> None:
    text = (SENTENCES["sv"] + " ") * 40_000
    assert len(text) > 4_000_000
    doc = label(LanguageIdentifier(max_chars=1000), [text])[0]
    assert doc.metadata["nordpipe"]["language"] == "sv"


def test_keeps_only_requested_languages_with_minimum_scores() -> None:
    texts = [SENTENCES["da"], SENTENCES["nb"], SENTENCES["en"], "1234"]
    docs = label(LanguageIdentifier(languages="da,nb"), texts)
    assert [removal_reason(d) for d in docs] == [None, None, "language:other", "language:other"]
    # An impossible minimum for Danish removes the Danish document for its score.
    docs = label(LanguageIdentifier(languages=["da"], min_scores="da=1.0"), [f"{SENTENCES['da']} {SENTENCES['nb']}"])
    assert removal_reason(docs[0]) in ("language:low_score", "language:other")
    docs = label(LanguageIdentifier(languages=["da"], min_scores=0.0), [SENTENCES["da"]])
    assert removal_reason(docs[0]) is None


def test_already_removed_documents_are_not_labelled() -> None:
    doc = Document(text=SENTENCES["da"], id="1", metadata={"nordpipe": {"removed": "urls:blocked"}})
    out = next(iter(LanguageIdentifier().run(iter([doc]))))
    assert "language" not in out.metadata["nordpipe"]


def test_pickles_without_detectors_after_use() -> None:
    step = LanguageIdentifier(languages="sv")
    label(step, [SENTENCES["sv"]])
    assert step._lingua is not None
    copy: Any = pickle.loads(pickle.dumps(step))
    assert copy._lingua is None
    assert label(copy, [SENTENCES["sv"]])[0].metadata["nordpipe"]["language"] == "sv"


def test_parse_options() -> None:
    assert parse_languages("da, nob,nn") == ("da", "nb", "nn")
    assert parse_languages(None) is None
    assert parse_min_scores("0.4")["fi"] == 0.4
    assert parse_min_scores("da=0.3,nb=0.7") == {"da": 0.3, "nb": 0.7}
    with pytest.raises(ValueError, match="unknown language"):
        parse_languages("da,xx")
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_min_scores("da=2")
    with pytest.raises(ValueError):
        parse_min_scores("da")
