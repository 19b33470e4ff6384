"""The trained person-name tagger (``nordpipe.pii.name_model``, issue 18): held-out figures on
the shared NER data, and a synthetic twin that checks the same behaviour without it."""

from __future__ import annotations

import gzip
import json
from importlib.resources import files

import pytest
from bench_modules import load_benchmark

from nordpipe.documents import decode_record
from nordpipe.pii import names
from nordpipe.pii.engine import PiiScanner
from nordpipe.pii.name_model import NameTagger, TextFeatures, shipped_tagger, tags_to_spans, tokenize
from nordpipe.pii.names import NameFinder, load_ner_model


@pytest.fixture(scope="module")
def tagged() -> NameFinder:
    return NameFinder(tagger="shipped")


def _bench_names():
    """benchmarks/bench_pii_names.py (the NER readers and scoring the benchmark reports with)."""
    return load_benchmark("bench_pii_names")


@pytest.mark.parametrize(("language", "split", "recall", "precision"), [
    # floors a little under the figures measured 2026-12-07 (benchmarks/results/pii.md) on the
    # splits the tagger was not trained on, span recall / precision, one sentence per text:
    # DDT dev 0.846 / 0.852, NorNE nb B 0.838 / 0.835, nn B 0.713 / 0.915
    ("da", "DDT dev", 0.83, 0.83),
    ("nb", "NorNE dev B", 0.82, 0.82),
    ("nn", "NorNE dev B", 0.70, 0.90),
])
def test_tagger_on_held_out_nordic_ner_text(shared, tagged, language, split, recall, precision):
    bench = _bench_names()
    (name, half), = [(f, h) for lang, label, f, h, _role in bench.SPLITS if (lang, label) == (language, split)]
    scores = bench.evaluate(tagged, bench.split_sentences(shared / "data" / "ner" / name, half))
    assert scores["span_recall"] >= recall and scores["span_precision"] >= precision, scores


def test_tagger_lifts_norwegian_over_the_rules(shared, tagged):
    """On the held-out Bokmål half the tagger beats the rules on both precision and recall (the
    rules take "Jan Mayen" and "Rock Band" for people)."""
    bench = _bench_names()
    sentences = bench.split_sentences(shared / "data" / "ner" / "norne-no_bokmaal-ud-dev.conllu", 1)
    rules = bench.evaluate(NameFinder(tagger=None), sentences)
    tagger = bench.evaluate(tagged, sentences)
    assert tagger["span_precision"] > rules["span_precision"] + 0.1, (rules, tagger)
    assert tagger["span_recall"] > rules["span_recall"], (rules, tagger)


def test_fast_decoding_equals_the_feature_strings(shared):
    """``NameTagger.fast_decode`` (cached sums, run time) tags exactly what ``decode`` over the
    feature strings (training) tags, on real sentences."""
    bench = _bench_names()
    finder = NameFinder(tagger=None)
    tagger = shipped_tagger()
    checked = 0
    for name, half in (("da_ddt-ud-ner-dev.conll", None), ("norne-no_nynorsk-ud-dev.conllu", 1)):
        for sentence in bench.split_sentences(shared / "data" / "ner" / name, half)[:400]:
            text, _ = bench.sentence_text(sentence)
            assert _both_decodings(finder, tagger, text), text
            checked += 1
    assert checked == 800


def _both_decodings(finder: NameFinder, tagger: NameTagger, text: str) -> bool:
    rules = finder.find(text)
    tokens = tokenize(text)
    slow = tagger.decode(TextFeatures(finder, text, tokens, rules))
    scored = [i for i, (_s, _e, tok) in enumerate(tokens) if tok[:1].isupper() or tok in names.PARTICLES]
    return slow == tagger.fast_decode(finder, text, tokens, scored, rules)


# Synthetic twin: sentences written for this test (Danish, Bokmål, Nynorsk, Swedish) with names
# the gazetteers do not know and capitalised look-alikes (places, organisations, titles).
WRITTEN = [
    # names the rules miss (a lone unknown surname) and the tagger finds
    ("I går møtte vi Diarra på trening.", ["Diarra"]),
    ("Da Solbakken kom inn, jublet publikum.", ["Solbakken"]),
    ("Ifølge Hverven er boka god.", ["Hverven"]),
    ("Boka om Knausgård selde godt, men Hersoug var ikkje nøgd.", ["Knausgård", "Hersoug"]),
    # look-alikes the rules take for people and the tagger does not: a place, a company, a game
    ("Statsminister Jens Stoltenberg besøkte Jan Mayen i august.", ["Jens Stoltenberg"]),
    ("Fra Svalbard og Jan Mayen kom det ingen meldinger.", []),
    ("Direktør Hanne Bjerregaard fra Novo Nordisk siger, at salget steg.", ["Hanne Bjerregaard"]),
    ("Bandet spelte Rock Band på konserten.", []),
    # what both find, and places only
    ("I går kom rapparen Eminem til Oslo, og Eminem spelte to timar.", ["Eminem", "Eminem"]),
    ("Igår sa Gunnhild Wik at Wik ville stille.", ["Gunnhild Wik", "Wik"]),
    ("I dag mötte Anna Lindqvist statsministern i Stockholm.", ["Anna Lindqvist"]),
    ("Vi reiste fra Bergen til Trondheim med Hurtigruten.", []),
]


@pytest.mark.parametrize(("text", "expected"), WRITTEN)
def test_tagger_on_written_sentences(tagged, text, expected):
    assert [text[s.start : s.end] for s in tagged.find(text)] == expected


@pytest.mark.parametrize(("text", "_expected"), WRITTEN)
def test_fast_decoding_equals_the_feature_strings_on_written_sentences(text, _expected):
    assert _both_decodings(NameFinder(tagger=None), shipped_tagger(), text)


def test_particles_do_not_end_a_name():
    tokens = tokenize("Ludwig van Beethoven og von")
    # B I I O I: "von" alone after "og" is no name; "van" inside is kept
    assert tags_to_spans(tokens, [1, 2, 2, 0, 1], names.PARTICLES) == [(0, 20)]


def test_shipped_model_is_small_package_data_with_its_license():
    """The model is package data (``nordpipe/data/names``), a few hundred KB at most, and says
    what it was trained on and under which licence."""
    resource = files("nordpipe.data").joinpath("names", "name_tagger.json.gz")
    raw = resource.read_bytes()
    assert len(raw) < 2_000_000
    data = json.loads(gzip.decompress(raw))
    assert "CC BY-SA 4.0" in data["meta"]["license"]
    assert any("train-10k" in source for source in data["meta"]["trained_on"])
    readme = files("nordpipe.data").joinpath("names", "README.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in readme and "NorNE" in readme


def test_default_finder_is_the_rules_alone():
    """The tagger is opt-in (``--ner-model tagger``): ``NameFinder()`` keeps the fast rules."""
    assert NameFinder().tagger is None
    assert isinstance(load_ner_model("tagger"), NameFinder) and load_ner_model("tagger").tagger is not None


def test_scanner_with_the_tagger_replaces_names():
    text = "I går møtte vi Diarra på trening i Oslo."
    scanner = PiiScanner(name_finder=load_ner_model("tagger"))
    assert [(text[s.start : s.end], s.entity) for s in scanner.scan(text)] == [("Diarra", "NAME")]
    assert PiiScanner().scan(text) == []


def test_cli_ner_model_tagger(tmp_path, nordpipe_cli, make_records):
    """``nordpipe pii --ner-model tagger`` (a real subprocess) replaces a name only the tagger
    finds, and leaves the place."""
    text = "I går møtte vi Diarra på trening i Oslo."
    assert NameFinder().find(text) == []  # the rules alone do not know "Diarra"
    (tmp_path / "in").mkdir()
    with gzip.open(tmp_path / "in" / "part-0.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(make_records("doc-1", text, language="nb"), ensure_ascii=False) + "\n")
    result = nordpipe_cli("pii", tmp_path / "in", tmp_path / "out", "--ner-model", "tagger", "--mode", "tag")
    assert result.returncode == 0, result.stderr
    written = []
    for path in sorted((tmp_path / "out" / "documents").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            written.extend(decode_record(json.loads(line))["text"] for line in handle)
    assert written == ["I går møtte vi <NAME> på trening i Oslo."], written
