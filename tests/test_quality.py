"""Tests of the quality filters (nordpipe.quality) and ``nordpipe filter quality``.

The filters are compared with datatrove's own GopherQualityFilter / GopherRepetitionFilter /
C4QualityFilter configured with the same settings (nordpipe's deliberate departures turned off
with ``DATATROVE_RULES``; the departures have tests of their own). Real prose -- Danish and
Swedish UD sentences, Bokmål and Nynorsk NorNE sentences -- comes from ``../shared/data``
(skipped without it) composed into documents by ``prose_corpus.py``; junk is generated there.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from datatrove.data import Document
from datatrove.utils.text import PUNCTUATION_SET
from prose_corpus import (
    BUCKETS,
    DANISH_WORDS,
    JUNK_KINDS,
    WEB_PARTS,
    compose,
    junk_documents,
    language_stream,
    real_documents,
    ud_sentences,
)

from nordpipe.documents import decode_record, removal_reason
from nordpipe.quality import (
    DATATROVE_RULES,
    C4QualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    load_settings,
    normalize_language,
    quality_steps,
    split_chunk,
    split_lines,
    split_words,
)

# --------------------------------------------------------------------------------------------
# Helpers


def run_steps(texts: list[str], steps: list[Any] | None = None, language: str | None = None) -> list[Document]:
    docs = []
    for i, text in enumerate(texts):
        metadata: dict[str, Any] = {} if language is None else {"nordpipe": {"language": language}}
        docs.append(Document(text=text, id=str(i), metadata=metadata))
    stream: Any = iter(docs)
    for step in steps if steps is not None else quality_steps():
        stream = step.run(stream)
    return list(stream)


# --------------------------------------------------------------------------------------------
# Settings


def test_shipped_settings_come_from_fineweb2(shared: Path) -> None:
    import yaml

    settings = load_settings()
    for code, name in {"da": "dan", "nb": "nob", "nn": "nno", "sv": "swe", "is": "isl", "fo": "fao", "fi": "fin"}.items():
        reference = yaml.safe_load((shared / "reference" / "fineweb2" / f"{name}_Latn.yml").read_text())
        ours = settings[code]
        assert ours["gopher_quality"]["stop_words"] == reference["stopwords"]
        assert ours["gopher_quality"]["max_non_alpha_words_ratio"] == reference["max_non_alpha_words_ratio"]
        assert ours["gopher_quality"]["min_avg_word_length"] == reference["min_avg_word_length"]
        assert ours["gopher_quality"]["max_avg_word_length"] == reference["max_avg_word_length"]
        assert ours["gopher_repetition"]["dup_line_frac"] == reference["dup_line_frac"]
        if code in ("nb", "nn"):
            # Deliberate departure (issue 19, reasons in nb.yaml/nn.yaml): Gopher's thresholds
            # instead of FineWeb-2's 0.087/0.107/0.131 (nb) and 0.899/0.705/0.375 (nn).
            assert reference["top_n_grams"] != ours["gopher_repetition"]["top_n_grams"]
            assert ours["gopher_repetition"]["top_n_grams"] == [[2, 0.2], [3, 0.18], [4, 0.16]]
        else:
            assert ours["gopher_repetition"]["top_n_grams"] == reference["top_n_grams"]
        assert ours["gopher_repetition"]["dup_n_grams"] == reference["dup_n_grams"]
        assert ours["gopher_quality"]["min_stop_words"] == 2
        # Departures of every Nordic language (module docstring): C4's 5 sentences -> 3, alpha
        # ratio over words, top n-grams only when they repeat; dialogue dashes except in Finnish.
        assert ours["c4"]["min_num_sentences"] == 3
        assert ours["gopher_quality"]["alpha_ratio_over"] == "words"
        assert ours["gopher_repetition"]["top_n_gram_min_count"] == 2
        assert ours["gopher_quality"]["dialogue_dashes"] is (code != "fi")
        assert ours["c4"]["policy_phrases"], f"{code} has no policy phrases"
    assert settings["en"]["gopher_quality"]["stop_words"] == ["the", "be", "to", "of", "and", "that", "have", "with"]


def test_settings_override_file_and_errors(tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("all:\n  c4: {min_num_sentences: 2}\nnob:\n  gopher_quality: {min_doc_words: 7}\n")
    settings = load_settings(str(override))
    assert settings["nb"]["gopher_quality"]["min_doc_words"] == 7
    assert settings["da"]["gopher_quality"]["min_doc_words"] == 50
    assert all(settings[lang]["c4"]["min_num_sentences"] == 2 for lang in settings)
    for bad, message in (
        ("xx:\n  c4: {}\n", "unknown language"),
        ("da:\n  c5: {}\n", "unknown section"),
        ("da:\n  c4: {min_sentences: 3}\n", "unknown key"),
    ):
        override.write_text(bad)
        with pytest.raises(ValueError, match=message):
            load_settings(str(override))


def test_normalize_language() -> None:
    assert normalize_language("dan_Latn") == "da"
    assert normalize_language("nob") == "nb"
    assert normalize_language("no") == "nb"
    assert normalize_language("NN") == "nn"
    assert normalize_language("de") is None
    assert normalize_language(None) is None


# --------------------------------------------------------------------------------------------
# Words


def test_split_words_like_spacy() -> None:
    abbreviations = frozenset(load_settings()["da"]["abbreviations"])
    text = 'Hr. Jensen kom kl. 14.30, f.eks. om e-mail (se www.dr.dk/nyheder). "Det er 3,5% bedre!" ... H.C. Andersen'
    assert split_words(text, abbreviations) == [
        "Hr.", "Jensen", "kom", "kl.", "14.30", ",", "f.eks.", "om", "e-mail", "(", "se", "www.dr.dk/nyheder",
        ")", ".", '"', "Det", "er", "3,5", "%", "bedre", "!", '"', "...", "H.C.", "Andersen",
    ]


def test_split_words_fast_path_equals_the_regex_path() -> None:
    """split_words hand-splits common chunks; it must give what the regular expression gives."""
    abbreviations = frozenset(load_settings()["da"]["abbreviations"])
    rng = random.Random(7)
    alphabet = [*"ab1.,-'’:!?()\"_#…«»xæøå HC/\t\n", "f.eks.", "ca.", "http://x.dk/a.", "..", "14.", "ð", "²", "Bl.a."]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        expected = [token for chunk in text.split() for token in split_chunk(chunk, abbreviations)]
        assert split_words(text, abbreviations) == expected, repr(text)


def test_split_lines_matches_regex_split() -> None:
    rng = random.Random(3)
    for _ in range(5000):
        text = "".join(rng.choice(["a", "\n", " ", "b"]) for _ in range(rng.randint(0, 10)))
        assert split_lines(text) == re.split(r"\n+", text)


def test_bullet_precheck_never_misses_a_bullet_line() -> None:
    from nordpipe.quality import _may_have_bullets

    rng = random.Random(5)
    alphabet = ["-", "•", " ", "\n", "a", "\t", "\r", "\xa0", "\u2028", "\x0c", "\u2003"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        if any(line.lstrip().startswith(("•", "-")) for line in text.splitlines()):
            assert _may_have_bullets(text), repr(text)


def test_sentence_count_matches_spacy_sentencizer() -> None:
    from datatrove.utils.text import split_into_sentences

    from nordpipe.quality import count_sentences

    abbreviations = frozenset(load_settings()["da"]["abbreviations"])
    lines = [
        "Vi så H.C. Andersen. Så kom 14. Derefter x. Y Hr. Jensen! Hej!!! Nu, og (f.eks. her). Det var 5 kr. Nej.",
        'Slut. (Start her.) Ny. "Citat." Næste',
        "Han er ph.d. Og så 3.5. Hmm 1.000. Nu 14. Ja H.C. Ok bl.a. Nej p.g.a. Ja nu a.b. Nu 3,5. Så 26/8. Ok",
        "Det er f.eks., at din. Ok.. Så ... nej! - Jo.",
        "Han kom i 1926. Den 14. maj kostede det 0,15 kr. pr. liter. Ja.",
    ]
    for line in lines:
        assert count_sentences(line, abbreviations) == len(split_into_sentences(line, "dan")), line


# --------------------------------------------------------------------------------------------
# Agreement with datatrove, rule by rule


def datatrove_filters(language: str = "da") -> list[Any]:
    import datatrove.pipeline.filters.c4_filters as c4_module
    from datatrove.pipeline.filters import C4QualityFilter as DtC4
    from datatrove.pipeline.filters import GopherQualityFilter as DtGq
    from datatrove.pipeline.filters import GopherRepetitionFilter as DtGr

    s = load_settings()[language]
    gq, gr, c4 = s["gopher_quality"], s["gopher_repetition"], s["c4"]
    c4_module.POLICY_SUBSTRINGS = [p.lower() for p in c4["policy_phrases"] + c4["policy_phrases_extra"]]
    return [
        DtGr(dup_line_frac=gr["dup_line_frac"], dup_para_frac=gr["dup_para_frac"],
             dup_line_char_frac=gr["dup_line_char_frac"], dup_para_char_frac=gr["dup_para_char_frac"],
             top_n_grams=[tuple(x) for x in gr["top_n_grams"]], dup_n_grams=[tuple(x) for x in gr["dup_n_grams"]],
             language="dan"),
        DtGq(min_doc_words=gq["min_doc_words"], max_doc_words=gq["max_doc_words"],
             min_avg_word_length=gq["min_avg_word_length"], max_avg_word_length=gq["max_avg_word_length"],
             max_symbol_word_ratio=gq["max_symbol_word_ratio"], max_bullet_lines_ratio=gq["max_bullet_lines_ratio"],
             max_ellipsis_lines_ratio=gq["max_ellipsis_lines_ratio"],
             max_non_alpha_words_ratio=gq["max_non_alpha_words_ratio"], min_stop_words=gq["min_stop_words"],
             stop_words=gq["stop_words"], language="dan"),
        DtC4(min_num_sentences=c4["min_num_sentences"], min_words_per_line=c4["min_words_per_line"], language="dan"),
    ]


def datatrove_keeps(steps: list[Any], text: str) -> tuple[bool, str]:
    doc = Document(text=text, id="x")
    for step in steps:
        if step.filter(doc) is not True:
            return False, doc.text
    return True, doc.text


def test_agrees_with_datatrove_on_prose_and_junk(shared: Path) -> None:
    rng = random.Random(11)
    sentences = ud_sentences(shared, "da_ddt-ud-dev.conllu")
    texts = [compose(rng, sentences, rng.randint(300, 2500)) for _ in range(40)]
    texts += [t for group in junk_documents(rng, 3).values() for t in group]
    theirs = datatrove_filters()
    # nordpipe's departures (module docstring) turned off: the shared rules must agree as before.
    ours = run_steps(texts, quality_steps(DATATROVE_RULES), language="da")
    agree = 0
    for text, doc in zip(texts, ours, strict=True):
        kept, their_text = datatrove_keeps(theirs, text)
        if kept == (removal_reason(doc) is None):
            agree += 1
            if kept:
                assert doc.text == their_text  # C4 dropped the same lines
    assert agree >= 0.97 * len(texts)


DEPARTURE_RULES = ("gopher_quality:too_many_bullets", "gopher_quality:below_alpha_ratio",
                   "gopher_repetition:top_2_gram", "gopher_repetition:top_3_gram", "gopher_repetition:top_4_gram")


def test_departures_from_datatrove_start_at_a_departed_rule(shared: Path) -> None:
    """With the shipped settings, a document judged differently than with DATATROVE_RULES is one
    that a departed rule (bullets, alpha ratio, top n-gram) removes there; here it is kept or a
    later rule removes it."""
    departures = []
    for language in ("da", "nb"):
        texts = real_documents(shared, language, "paragraph")[:120]
        texts += [t for group in junk_documents(random.Random(12), 3).values() for t in group]
        compatible = run_steps(texts, quality_steps(DATATROVE_RULES), language=language)
        shipped = run_steps(texts, language=language)
        departures += [(removal_reason(c), removal_reason(d)) for c, d in zip(compatible, shipped, strict=True)
                       if removal_reason(c) != removal_reason(d)]
    assert departures, "real paragraphs meet no departed rule: the departures are untested"
    for theirs, ours in departures:
        assert theirs in DEPARTURE_RULES, (theirs, ours)
    assert any(ours is None for _, ours in departures)


def test_rules_fire_with_their_reasons() -> None:
    rng = random.Random(5)
    def prose_line() -> str:
        return " ".join(["Det", "er", "en", *rng.sample(DANISH_WORDS, 9)]) + "."
    good = "\n".join(prose_line() for _ in range(12))
    cases = {
        "gopher_quality:stop_words": "\n".join(" ".join(rng.sample(DANISH_WORDS, 10)) + "." for _ in range(12)),
        "gopher_quality:too_many_hashes": good + "\n" + " ".join(f"#{w}" for w in DANISH_WORDS),
        # List items without sentence-final punctuation: a dash line ending a sentence would be a
        # dialogue line (not a bullet) in Danish since issue 19.
        "gopher_quality:too_many_bullets": "\n".join("- " + prose_line().rstrip(".") for _ in range(12)),
        "gopher_repetition:dup_line_frac": "\n".join([prose_line()] * 8 + [prose_line() for _ in range(8)]),
        "c4:lorem_ipsum": good + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "c4:curly_bracket": good + "\nHer er en {klamme} i teksten, som C4 ikke vil have.",
        "c4:too_few_sentences": "\n".join(" ".join(["Det", "er", "en", *rng.sample(DANISH_WORDS, 9)]) for _ in range(12)),
    }
    docs = run_steps(list(cases.values()), language="da")
    for (reason, _), doc in zip(cases.items(), docs, strict=True):
        assert removal_reason(doc) == reason
    # A very short text is removed for its length; repetition runs first but an n-gram that
    # occurs once is no repetition (issue 19: datatrove's rule removed it as top_2_gram).
    short = run_steps(["Det er kort og godt."], language="da")[0]
    assert removal_reason(short) == "gopher_quality:short_doc"
    assert short.metadata["nordpipe"]["quality"]["gopher_repetition"]["top_2_gram"] == 0.0
    kept = run_steps([good], language="da")[0]
    assert removal_reason(kept) is None
    scores = kept.metadata["nordpipe"]["quality"]
    assert scores["gopher_quality"]["stop_words"] >= 2
    assert set(scores) == {"gopher_repetition", "gopher_quality", "c4"}


def test_c4_drops_policy_lines_in_each_language() -> None:
    body = "\n".join(f"Linje {i} er en helt almindelig sætning med nok ord i." for i in range(6))
    notices = {
        "da": "Vi bruger cookies for at forbedre din oplevelse.",
        "nb": "Vi bruker informasjonskapsler for å gi deg en bedre opplevelse.",
        "sv": "Vi använder cookies för att ge dig en bättre upplevelse.",
        "fi": "Tämä sivusto käyttää evästeitä parantaakseen käyttökokemusta.",
        "is": "Þessi vefur notar vafrakökur til að bæta upplifun þína.",
        "en": "This site uses cookies to improve your experience.",
    }
    step = C4QualityFilter()
    for language, notice in notices.items():
        doc = run_steps([f"{body}\n{notice}"], [step], language=language)[0]
        assert removal_reason(doc) is None, language
        assert notice not in doc.text, language
        assert doc.metadata["nordpipe"]["quality"]["c4"]["lines_removed"]["policy"] == 1
        assert doc.metadata["nordpipe"]["chars_in"] > len(doc.text)


def test_settings_follow_the_documents_language() -> None:
    # FineWeb-2's Finnish 2-gram threshold (0.101) is far stricter than Danish's (0.367). (This
    # test used Bokmål's 0.087 until issue 19 replaced it with Gopher's 0.2, see nb.yaml.)
    thresholds = {lang: dict(load_settings()[lang]["gopher_repetition"]["top_n_grams"])[2] for lang in ("da", "fi")}
    assert thresholds == {"da": 0.367, "fi": 0.101}
    rng = random.Random(4)
    text = "\n".join("Det er " + " ".join(rng.sample(DANISH_WORDS, 6)) + "." for _ in range(12))
    danish = run_steps([text], [GopherRepetitionFilter()], language=None)[0]  # default language: da
    assert removal_reason(danish) is None
    assert 0.101 < danish.metadata["nordpipe"]["quality"]["gopher_repetition"]["top_2_gram"] < 0.367
    finnish = run_steps([text], [GopherRepetitionFilter()], language="fi")[0]
    assert removal_reason(finnish) == "gopher_repetition:top_2_gram"


@pytest.mark.parametrize("text", ["", " ", "   \n\t  \n", "12345 67890 !!! ---", "…" * 5000, "\u2028\u2029\x85"])
def test_robust_to_degenerate_documents(text: str) -> None:
    docs = run_steps([text], language=None)
    assert len(docs) == 1  # removed or kept, never raised


def test_multi_megabyte_document() -> None:
    rng = random.Random(1)
    paragraph = " ".join(rng.choice(["og", "det", "er", "i", *DANISH_WORDS]) for _ in range(300)) + "."
    text = "\n\n".join(f"{paragraph} Afsnit {i}." for i in range(1500))
    assert len(text) > 2_000_000
    doc = run_steps([text], language="da")[0]
    assert removal_reason(doc) is not None  # 1,500 near-identical paragraphs: repetition
    assert doc.metadata["nordpipe"]["quality"]["gopher_repetition"]


def test_removed_documents_are_left_alone() -> None:
    doc = Document(text="kort", id="1", metadata={"nordpipe": {"removed": "urls:blocked"}})
    out = list(GopherQualityFilter().run(iter([doc])))
    assert removal_reason(out[0]) == "urls:blocked"
    assert "quality" not in out[0].metadata["nordpipe"]


# --------------------------------------------------------------------------------------------
# Acceptance 2: real prose kept, junk removed


def test_real_prose_kept_and_junk_removed(shared: Path) -> None:
    from nordpipe.langid import LanguageIdentifier

    rng = random.Random(2024)
    prose = []
    for name in ("da_ddt-ud-dev.conllu", "sv_talbanken-ud-dev.conllu"):
        sentences = ud_sentences(shared, name)
        prose += [compose(rng, sentences, rng.randint(1500, 3000)) for _ in range(40)]
    junk = junk_documents(rng, 20)
    steps = [LanguageIdentifier(), *quality_steps()]
    kept = [removal_reason(d) is None for d in run_steps(prose, steps)]
    assert sum(kept) >= 0.95 * len(prose), f"kept {sum(kept)} of {len(prose)} prose documents"
    for kind, texts in junk.items():
        removed = [removal_reason(d) is not None for d in run_steps(texts, [LanguageIdentifier(), *quality_steps()])]
        assert sum(removed) >= 0.95 * len(texts), f"{kind}: removed {sum(removed)} of {len(texts)}"


# --------------------------------------------------------------------------------------------
# Real Nordic prose (issue 19): one test per departure from datatrove on real sentences from
# ../shared, each with a synthetic twin that checks the same rule without it.

FINEWEB2_TOP_N_GRAMS = {"nb": [[2, 0.087], [3, 0.107], [4, 0.131]], "nn": [[2, 0.899], [3, 0.705], [4, 0.375]]}


def real_dash_paragraph(shared: Path, language: str, words: int = 60) -> str:
    """Consecutive real sentences from the first one opened by a dialogue dash whose run of at
    least ``words`` words ends a sentence, on one line (one paragraph)."""
    stream = [sentence for sentence, _, _ in language_stream(shared, language)]
    for start, sentence in enumerate(stream):
        if not sentence.startswith("- "):
            continue
        taken: list[str] = []
        for following in stream[start:]:
            taken.append(following)
            if sum(len(t.split()) for t in taken) >= words:
                break
        if taken[-1].endswith((".", "!", "?")):
            return " ".join(taken)
    raise AssertionError(f"no real {language} paragraph opened by a dialogue dash")


@pytest.mark.parametrize("language", ["da", "nb", "nn"])
def test_real_dialogue_dash_paragraph_is_not_a_bullet_list(shared: Path, language: str) -> None:
    text = real_dash_paragraph(shared, language)
    kept = run_steps([text], [GopherQualityFilter()], language=language)[0]
    assert removal_reason(kept) is None
    assert kept.metadata["nordpipe"]["quality"]["gopher_quality"]["bullet_lines_ratio"] == 0.0
    # datatrove's rule: one line starting with "-" is a 100% bullet list.
    theirs = run_steps([text], [GopherQualityFilter(DATATROVE_RULES)], language=language)[0]
    assert removal_reason(theirs) == "gopher_quality:too_many_bullets"


def test_dialogue_dash_lines_synthetic() -> None:
    from nordpipe.quality import is_dialogue_line

    assert is_dialogue_line("- Vi har barn som går i barnehagen, sier hun.")
    assert is_dialogue_line("– Det er for sent nå?")
    assert is_dialogue_line("— Kom hit!»")
    for line in ("- Forside", "- Gratis fragt over 500 kr", "-Nej.", "- Ja.", "• Det er en lang linje her.", "-- x y."):
        assert not is_dialogue_line(line), line
    speech = ("- Vi har barn som går i barnehagen her, og de trenger en trygg skolevei hver eneste dag, sier hun. "
              "Hun har bodd i bygda i mange år og mener kommunen må ta ansvar for veien. Nå vil hun samle "
              "naboene til et møte i neste uke, og hun håper at ordføreren kommer for å høre på dem.")
    assert len(speech.split()) >= 50
    assert removal_reason(run_steps([speech], [GopherQualityFilter()], language="nb")[0]) is None
    # With the setting off (Finnish, DATATROVE_RULES) the line is a bullet, as in Gopher.
    dashes_off = {"nb": {"gopher_quality": {"dialogue_dashes": False}}}
    for settings in (dashes_off, DATATROVE_RULES):
        doc = run_steps([speech], [GopherQualityFilter(settings)], language="nb")[0]
        assert removal_reason(doc) == "gopher_quality:too_many_bullets"
    menu = "\n".join(f"- {item}" for item in WEB_PARTS["nb"]["menu"]) + "\n" + speech[2:]
    assert removal_reason(run_steps([menu], [GopherQualityFilter()], language="nb")[0]) == "gopher_quality:too_many_bullets"


def test_real_prose_alpha_ratio_counts_words_not_punctuation(shared: Path) -> None:
    """Real paragraphs that datatrove's measure (letters per token, punctuation included) removes
    pass Gopher's (letters per word); the figure recorded is the share of words."""
    removed_by_token_measure = []
    for language in ("da", "nb", "nn", "sv"):
        texts = real_documents(shared, language, "paragraph")
        tokens = run_steps(texts, [GopherQualityFilter(DATATROVE_RULES)], language=language)
        removed_by_token_measure += [(language, doc.text) for doc in tokens
                                     if removal_reason(doc) == "gopher_quality:below_alpha_ratio"]
    assert removed_by_token_measure, "no real paragraph fails the token measure: nothing tested"
    for language, text in removed_by_token_measure:
        doc = run_steps([text], [GopherQualityFilter()], language=language)[0]
        assert removal_reason(doc) is None, (language, text[:200])
        words = [w for w in split_words(text) if w.strip("".join(PUNCTUATION_SET))]
        expected = sum(any(c.isalpha() for c in w) for w in words) / len(words)
        assert doc.metadata["nordpipe"]["quality"]["gopher_quality"]["alpha_words_ratio"] == pytest.approx(expected, abs=1e-4)


def test_alpha_ratio_counts_words_synthetic() -> None:
    # 60 Swedish words, each followed by a comma: half the tokens are punctuation.
    words = ["och", "i", "staden", "bor", "många", "människor", "som", "arbetar", "hårt", "varje", "dag"]
    text = ", ".join(words[i % len(words)] for i in range(60)) + "."
    assert removal_reason(run_steps([text], [GopherQualityFilter()], language="sv")[0]) is None
    their = run_steps([text], [GopherQualityFilter(DATATROVE_RULES)], language="sv")[0]
    assert removal_reason(their) == "gopher_quality:below_alpha_ratio"
    # Numbers are words without letters: a table with a few words still fails.
    table = "och i " + " ".join(f"{i * 7.25:.2f} {i}" for i in range(40))
    assert removal_reason(run_steps([table], [GopherQualityFilter()], language="sv")[0]) == "gopher_quality:below_alpha_ratio"


def short_real_texts(shared: Path, language: str, count: int = 60) -> list[str]:
    """Runs of consecutive real sentences with 15-45 words (below Gopher's 50-word minimum)."""
    stream = [sentence for sentence, _, _ in language_stream(shared, language)]
    texts, taken = [], []
    for sentence in stream:
        taken.append(sentence)
        n = sum(len(t.split()) for t in taken)
        if n >= 15:
            if n <= 45:
                texts.append(" ".join(taken))
            taken = []
        if len(texts) == count:
            break
    return texts


def test_real_short_unique_texts_are_short_not_repetitive(shared: Path) -> None:
    texts = short_real_texts(shared, "nb")
    assert len(texts) >= 30
    # The reported failure: FineWeb-2's Bokmål thresholds with datatrove's top n-gram (an n-gram
    # occurring once counts) remove short unique texts as repetition.
    old_rule = {"nb": {"gopher_repetition": {"top_n_grams": FINEWEB2_TOP_N_GRAMS["nb"], "top_n_gram_min_count": 1}}}
    before = [removal_reason(d) for d in run_steps(texts, quality_steps(old_rule), language="nb")]
    assert sum(str(r).startswith("gopher_repetition:top_") for r in before) >= len(texts) // 4, before
    after = run_steps(texts, language="nb")
    unique = 0
    for doc in after:
        assert removal_reason(doc) == "gopher_quality:short_doc", (removal_reason(doc), doc.text)
        scores = doc.metadata["nordpipe"]["quality"]["gopher_repetition"]
        unique += all(scores[k] == 0.0 for k in scores if k.startswith("top_"))
    assert unique >= len(texts) // 2  # most short texts repeat no 2-gram: their top n-grams score 0


def test_top_ngram_counts_only_repeated_ngrams_synthetic() -> None:
    text = "Stortingets budsjettbehandling fortsetter neste uke med nye forhandlinger."
    with_once = {"nb": {"gopher_repetition": {"top_n_grams": FINEWEB2_TOP_N_GRAMS["nb"], "top_n_gram_min_count": 1}}}
    assert removal_reason(run_steps([text], [GopherRepetitionFilter(with_once)], language="nb")[0]) == "gopher_repetition:top_2_gram"
    doc = run_steps([text], [GopherRepetitionFilter()], language="nb")[0]
    assert removal_reason(doc) is None
    assert doc.metadata["nordpipe"]["quality"]["gopher_repetition"]["top_2_gram"] == 0.0
    # A repeated 2-gram still counts, with its full share of the characters.
    spam = " ".join(["billige flybilletter"] * 10 + ["til", "Oslo", "og", "Bergen", "i", "dag"])
    doc = run_steps([spam], [GopherRepetitionFilter()], language="nb")[0]
    assert removal_reason(doc) == "gopher_repetition:top_2_gram"
    assert doc.metadata["nordpipe"]["quality"]["gopher_repetition"]["top_2_gram"] == pytest.approx(
        len("billige flybilletter") * 10 / len(spam), abs=1e-4)


def test_real_norwegian_paragraphs_pass_gophers_top_ngram_thresholds(shared: Path) -> None:
    """FineWeb-2's Bokmål thresholds removed real Bokmål paragraphs (a 3-gram said twice in
    ~600 characters); Gopher's, now shipped for nb and nn, remove none of the real paragraphs."""
    texts = real_documents(shared, "nb", "paragraph")
    fineweb2 = {"nb": {"gopher_repetition": {"top_n_grams": FINEWEB2_TOP_N_GRAMS["nb"]}}}
    before = [removal_reason(d) for d in run_steps(texts, [GopherRepetitionFilter(fineweb2)], language="nb")]
    assert any(str(r).startswith("gopher_repetition:top_") for r in before)
    for language in ("nb", "nn"):
        texts = real_documents(shared, language, "paragraph") + real_documents(shared, language, "article")
        after = [removal_reason(d) for d in run_steps(texts, [GopherRepetitionFilter()], language=language)]
        assert not any(str(r).startswith("gopher_repetition:top_") for r in after), language


def test_norwegian_top_ngram_thresholds_synthetic() -> None:
    # The top 2-gram covers about half: over Gopher's 0.2, under FineWeb-2's Nynorsk 0.899; no
    # 3-gram repeats.
    places = ["Førde", "Voss", "Volda", "Ørsta", "Odda"]
    text = " ".join(f"billeg straum {word} {place}" for word, place in zip(["i", "på", "til", "frå", "ved"], places, strict=True))
    for language in ("nb", "nn"):
        doc = run_steps([text], [GopherRepetitionFilter()], language=language)[0]
        assert removal_reason(doc) == "gopher_repetition:top_2_gram", language
    fineweb2 = {"nn": {"gopher_repetition": {"top_n_grams": FINEWEB2_TOP_N_GRAMS["nn"]}}}
    assert removal_reason(run_steps([text], [GopherRepetitionFilter(fineweb2)], language="nn")[0]) is None


def test_real_paragraphs_of_three_sentences_pass_c4(shared: Path) -> None:
    five = {"all": {"c4": {"min_num_sentences": 5}}}
    for language in ("da", "nb", "nn", "sv"):
        texts = real_documents(shared, language, "paragraph")
        docs = run_steps(texts, [C4QualityFilter(edit_text=False)], language=language)
        sentences = [d.metadata["nordpipe"]["quality"]["c4"].get("sentences", 0) for d in docs]
        short = [t for t, n in zip(texts, sentences, strict=True) if n in (3, 4)]
        assert short, language
        assert all(removal_reason(d) is None for d in run_steps(short, [C4QualityFilter()], language=language))
        assert all(removal_reason(d) == "c4:too_few_sentences"
                   for d in run_steps(short, [C4QualityFilter(five)], language=language))


def test_c4_needs_three_sentences_synthetic() -> None:
    three = ("Kommunen har besluttet at bygge en ny skole i den nordlige del af byen til næste år. "
             "Forslaget blev vedtaget på mødet i går med stort flertal blandt politikerne i byrådet. "
             "Borgerne i området har længe ønsket sig en skole tættere på deres hjem og børn.")
    two = three.rsplit(" Borgerne", 1)[0]
    step = C4QualityFilter()
    assert removal_reason(run_steps([three], [step], language="da")[0]) is None
    assert removal_reason(run_steps([two], [step], language="da")[0]) == "c4:too_few_sentences"
    assert removal_reason(run_steps([three], [step], language="en")[0]) == "c4:too_few_sentences"  # C4's 5


def test_real_prose_evaluation_meets_the_goals(shared: Path) -> None:
    """The evaluation of benchmarks/bench_prose.py (filters with each document's true language):
    >= 98% of article-length and >= 90% of paragraph-length real prose kept in da, nb, nn and
    sv, >= 97% of generated junk removed in each."""
    from collections import Counter

    from prose_corpus import EVALUATED_LANGUAGES, GOALS, filter_reasons, language_junk

    for language in EVALUATED_LANGUAGES:
        for bucket in ("article", "paragraph"):
            texts = real_documents(shared, language, bucket)
            reasons = filter_reasons(texts, language)
            kept = reasons.count(None) / len(texts)
            assert len(texts) >= 20
            assert kept >= GOALS[bucket], f"{language} {bucket}: kept {kept:.1%}, {Counter(filter(None, reasons))}"
        junk = [t for texts in language_junk(shared, language).values() for t in texts]
        removed = sum(r is not None for r in filter_reasons(junk, language)) / len(junk)
        assert removed >= GOALS["junk_removed"], f"{language} junk: removed {removed:.1%}"


def test_prose_evaluation_synthetic() -> None:
    """Without ../shared: junk of every kind removed in each language's settings, and prose with
    a dialogue-dash paragraph, short paragraphs of three sentences and commas kept."""
    from prose_corpus import EVALUATED_LANGUAGES, filter_reasons, language_junk

    for language in EVALUATED_LANGUAGES:
        junk = language_junk(None, language, per_kind=5)
        assert set(junk) == set(JUNK_KINDS)
        for kind, texts in junk.items():
            assert all(r is not None for r in filter_reasons(texts, language)), (language, kind)
    paragraph = ("- Vi har barn som går i barnehagen her, og de trenger en trygg skolevei hver dag, sier hun. "
                 "Hun har bodd i bygda i mange år, og hun mener at kommunen må ta ansvar for veien. "
                 "Nå vil hun samle naboene til et møte i neste uke for å snakke om saken.")
    assert filter_reasons([paragraph], "nb") == [None]


# --------------------------------------------------------------------------------------------
# The command


def write_input(path: Path, texts: list[str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with gzip.open(path / "part-0.jsonl.gz", "wt", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"d{i}", "text": text, "source": "test", "added": "2024-01-01",
                                     "created": "2020-01-01, 2021-01-01", "metadata": {}}) + "\n")


def read_jsonl_gz(folder: Path) -> list[dict[str, Any]]:
    records = []
    for file in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(file, "rt", encoding="utf-8") as handle:
            records += [decode_record(json.loads(line)) for line in handle]
    return records


@pytest.mark.slow
def test_cli_filters_and_reports(tmp_path: Path, nordpipe_cli: Any) -> None:
    rng = random.Random(9)
    good = ["\n\n".join(" ".join(["Det", "er", "en", *rng.sample(DANISH_WORDS, 10)]) + "." for _ in range(10))
            for _ in range(5)]
    junk = junk_documents(rng, 1)
    english = "\n".join("The weather was good and the people of the town had a walk with their dogs." for _ in range(3))
    write_input(tmp_path / "in", [*good, junk["menu"][0], junk["spam"][0], english])
    out = tmp_path / "out"
    result = nordpipe_cli("filter", "quality", tmp_path / "in", out, "--languages", "da", "--keep-removed")
    assert result.returncode == 0, result.stderr
    assert "quality\tdocuments in\t8" in result.stdout
    kept = read_jsonl_gz(out / "documents")
    removed = read_jsonl_gz(out / "removed")
    assert len(kept) == 5
    assert all(r["metadata"]["nordpipe"]["language"] == "da" for r in kept)
    reasons = {r["metadata"]["nordpipe"]["removed"] for r in removed}
    assert "language:other" in reasons
    stats = json.loads((out / ".nordpipe" / "stats.json").read_text())
    assert stats["removed_by_language"]["en"] == {"language:other": 1}
    assert sum(stats["removed"].values()) == 3

    bad = tmp_path / "bad.yaml"
    bad.write_text("da:\n  gopher_quality: {min_words: 3}\n")
    result = nordpipe_cli("filter", "quality", tmp_path / "in", tmp_path / "out2", "--settings", bad)
    assert result.returncode == 2
    assert "min_words" in result.stderr
    result = nordpipe_cli("filter", "quality", tmp_path / "in", tmp_path / "out3", "--languages", "xx")
    assert result.returncode == 2
    assert nordpipe_cli("filter", "quality", "--help").returncode == 0


@pytest.mark.slow
def test_cli_stage_keeps_real_prose(shared: Path, tmp_path: Path, nordpipe_cli: Any) -> None:
    """The whole stage (lingua language id, then the filters with the language it gives) on
    real prose of da, nb, nn and sv through the CLI: the goals of the true-language evaluation
    hold for the documents lingua labels right; its confusions are counted apart."""
    from collections import Counter

    from prose_corpus import EVALUATED_LANGUAGES, GOALS

    docs = [(f"{lang}-{bucket}-{i}", lang, bucket, text) for lang in EVALUATED_LANGUAGES for bucket in ("paragraph", "article")
            for i, text in enumerate(real_documents(shared, lang, bucket))]
    path = tmp_path / "in"
    path.mkdir()
    with gzip.open(path / "part-0.jsonl.gz", "wt", encoding="utf-8") as handle:
        for doc_id, _, _, text in docs:
            handle.write(json.dumps({"id": doc_id, "text": text, "source": "ud", "added": "2026-12-07",
                                     "created": "2020-01-01, 2021-01-01", "metadata": {}}) + "\n")
    out = tmp_path / "out"
    result = nordpipe_cli("filter", "quality", path, out, "--languages", "da,nb,nn,sv,is,fo,fi", "--keep-removed")
    assert result.returncode == 0, result.stderr
    verdicts = {r["id"]: r["metadata"]["nordpipe"] for r in read_jsonl_gz(out / "documents") + read_jsonl_gz(out / "removed")}
    assert len(verdicts) == len(docs)
    confused = sum(verdicts[doc_id]["language"] != lang for doc_id, lang, _, _ in docs)
    assert confused <= 0.02 * len(docs), f"lingua mislabelled {confused} of {len(docs)}"
    for lang in EVALUATED_LANGUAGES:
        for bucket in ("paragraph", "article"):
            right = [verdicts[d] for d, lg, b, _ in docs if lg == lang and b == bucket and verdicts[d]["language"] == lang]
            kept = sum("removed" not in v for v in right) / len(right)
            reasons = Counter(v.get("removed") for v in right if "removed" in v)
            assert kept >= GOALS[bucket], f"{lang} {bucket}: kept {kept:.1%} ({reasons})"


def test_steps_pickle_without_per_process_codes() -> None:
    """Steps travel pickled to Slurm tasks; token codes (str hashes) must not travel with them."""
    import pickle

    rng = random.Random(8)
    text = "\n".join(" ".join(["Det", "er", "en", *rng.sample(DANISH_WORDS, 9)]) + "." for _ in range(12))
    steps = quality_steps()
    assert removal_reason(run_steps([text], steps, language="da")[0]) is None
    assert "stop_word_codes" in steps[1].settings["da"]
    copies = pickle.loads(pickle.dumps(steps))
    assert "stop_word_codes" not in copies[1].settings["da"]
    assert removal_reason(run_steps([text], copies, language="da")[0]) is None


def _ngram_inputs(texts: list[str]) -> list[tuple[Any, int]]:
    from nordpipe.quality import NGrams, TextProfile

    out = []
    for text in texts:
        grams = NGrams(TextProfile(text))
        out += [(grams, n) for n in range(1, 11) if grams.count >= n]
    return out


def _check_ngram_loops_equal_numpy(texts: list[str]) -> int:
    import numpy as np

    from nordpipe import _ngram_loops
    from nordpipe.quality import duplicated_ngram_chars_numpy, has_repeats_numpy, top_ngram_numpy

    checked = 0
    for grams, n in _ngram_inputs(texts):
        hashes = np.ascontiguousarray(grams.of(n))
        assert _ngram_loops.top_ngram_hashes(hashes) == top_ngram_numpy(hashes)
        assert _ngram_loops.has_repeats(hashes) == has_repeats_numpy(hashes)
        assert (_ngram_loops.duplicated_chars(hashes, grams.cumulative, n)
                == duplicated_ngram_chars_numpy(grams, n, hashes))
        checked += 1
    return checked


def test_compiled_ngram_loops_equal_the_numpy_definitions() -> None:
    """The C loops of Gopher repetition (``_ngram_loops``, built by setup.py) give what the numpy
    definitions give: random token streams with few distinct tokens (many repeats and ties),
    repeated paragraphs and lines, and generated junk."""
    import numpy as np

    pytest.importorskip("nordpipe._ngram_loops")
    from nordpipe import _ngram_loops
    from nordpipe.quality import has_repeats_numpy, top_ngram_numpy

    rng = np.random.default_rng(20)
    for _ in range(5000):
        values = rng.integers(0, int(rng.integers(1, 9)), size=int(rng.integers(1, 80))).astype(np.uint64)
        hashes = values * np.uint64(0x9E3779B97F4A7C15)
        assert _ngram_loops.top_ngram_hashes(hashes) == top_ngram_numpy(hashes)
        assert _ngram_loops.has_repeats(hashes) == has_repeats_numpy(hashes)
    words = ["a", "b", "c", "hus", "og", "det", "er"]
    texts = [" ".join(random.Random(seed).choice(words) for _ in range(random.Random(seed).randint(1, 300)))
             for seed in range(300)]
    for language in ("da", "nb", "sv"):
        texts += [text for kind in junk_documents(random.Random(5), 20, language).values() for text in kind]
    assert _check_ngram_loops_equal_numpy(texts) > 2000


def test_compiled_ngram_loops_equal_numpy_on_real_text(shared: Path) -> None:
    pytest.importorskip("nordpipe._ngram_loops")
    texts = []
    for language in ("da", "nb", "nn", "sv"):
        for bucket in BUCKETS:
            for text in real_documents(shared, language, bucket)[:40]:
                texts += [text, f"{text}\n\n{text}"]  # and with every n-gram repeated
    assert _check_ngram_loops_equal_numpy(texts) > 1000


def test_gopher_repetition_without_the_compiled_loops_gives_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build without Cython or a C compiler uses the numpy definitions: same rule, same
    recorded figures for every document (generated junk and repeated text, where the n-gram
    measures decide)."""
    from nordpipe import quality

    pytest.importorskip("nordpipe._ngram_loops")
    cfg = quality.GopherRepetitionFilter().settings["da"]
    texts = [text for kind in junk_documents(random.Random(8), 15, "da").values() for text in kind]
    texts += ["ord " * 50, "a b c d e f " * 30, "Det er en dag. " * 40]
    compiled = [quality.gopher_repetition(quality.TextProfile(t), cfg) for t in texts]
    monkeypatch.setattr(quality, "_ngram_loops", None)
    assert [quality.gopher_repetition(quality.TextProfile(t), cfg) for t in texts] == compiled
    assert any(rule and rule.startswith(("top_", "duplicated_")) for rule, _ in compiled)
