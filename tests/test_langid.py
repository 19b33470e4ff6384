"""Tests of language identification (nordpipe.langid)."""

from __future__ import annotations

import gzip
import json
import pickle
import random
import re
from pathlib import Path
from typing import Any

import pytest
from datatrove.data import Document
from prose_corpus import conllu_stream

from nordpipe import languages
from nordpipe.documents import removal_reason
from nordpipe.langid import LanguageIdentifier, detector_languages, norwegian_form, parse_languages, parse_min_scores

REPO = Path(__file__).resolve().parents[1]

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


def decoded_line(line: str) -> dict[str, Any]:
    """A record of a stage output with its metadata as a dict (on disk it is a JSON string)."""
    record = json.loads(line)
    if isinstance(record.get("metadata"), str):
        record["metadata"] = json.loads(record["metadata"])
    return record


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
    assert parse_languages("no") == ("nb", "nn")
    assert parse_languages(["dan_Latn", "Norwegian", "nb"]) == ("da", "nb", "nn")
    assert parse_languages("nor") == parse_languages("norsk") == ("nb", "nn")
    assert parse_min_scores("no=0.3") == {"nb": 0.3, "nn": 0.3}
    assert parse_languages(None) is None
    assert parse_min_scores("0.4")["fi"] == 0.4
    assert parse_min_scores("da=0.3,nb=0.7") == {"da": 0.3, "nb": 0.7}
    with pytest.raises(ValueError, match="unknown language"):
        parse_languages("da,xx")
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_min_scores("da=2")
    with pytest.raises(ValueError):
        parse_min_scores("da")


# --------------------------------------------------------------------------------------------
# The languages module: one source of codes, aliases and groups


def test_language_codes_aliases_and_groups() -> None:
    assert languages.normalize_language("dan_Latn") == "da"
    assert languages.normalize_language("nno_Latn") == "nn"
    assert languages.normalize_language("sv-SE") == "sv"
    assert languages.normalize_language("no") == "nb"  # settings of a source's "no": Bokmål's
    assert languages.normalize_language("xx") is None
    assert languages.expand_languages("no, da") == ("nb", "nn", "da")
    assert languages.datasheet_code("nor") == "no"
    assert languages.datasheet_code("dansk") == "da"
    for alias, code in languages.ALIASES.items():
        assert languages.canonical_code(alias.upper()) == code, alias
    with pytest.raises(ValueError, match=r"unknown language 'dk' \(valid: da, nb, nn, sv, is, fo, fi, en, no"):
        languages.expand_languages("da,dk")
    with pytest.raises(ValueError, match="write 'no' in quotes"):
        languages.expand_languages([False])  # type: ignore[list-item]  # YAML's bare no


def test_quality_and_langid_do_not_import_each_other() -> None:
    for module, other in (("quality", "langid"), ("langid", "quality")):
        source = (REPO / "src" / "nordpipe" / f"{module}.py").read_text(encoding="utf-8")
        top_level = [line for line in source.splitlines() if re.match(r"(from|import) ", line)]
        assert not [line for line in top_level if f"nordpipe.{other}" in line], module


def test_every_alias_is_documented_in_readme_and_help(nordpipe_cli: Any) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- languages:begin -->\n", 1)[1].split("<!-- languages:end -->", 1)[0]
    for alias, code in languages.ALIASES.items():
        assert re.search(rf"^\| `{code}` \|.*`{re.escape(alias)}`", table, re.M), alias
    for code in (*languages.LANGUAGES, *languages.GROUPS):
        assert f"| `{code}` |" in table
    help_text = " ".join(nordpipe_cli("filter", "quality", "--help", check=True).stdout.split())
    for code in (*languages.LANGUAGES, "no = nb+nn", "nor", "norwegian", "dan_Latn"):
        assert code in help_text, code
    for alias in (a for a in languages.ALIASES if len(a) == 3):
        assert alias in help_text, alias


# --------------------------------------------------------------------------------------------
# Bokmål and Nynorsk apart; accuracy on real paragraphs (synthetic twins without ../shared)

PARAGRAPHS = {
    "nn": [
        "Kommunen har bestemt at den gamle skulen i bygda skal pussast opp i løpet av dei neste to åra. Elevane og "
        "lærarane har venta lenge på dette, for bygningen er kald om vinteren og taket lek når det regnar. Ordføraren "
        "seier at arbeidet skal starte til hausten, og at undervisninga skal halde fram i mellombelse lokale medan "
        "byggjearbeidet går føre seg. Foreldra er glade for avgjerda, men nokre av dei meiner at kommunen burde ha "
        "gjort dette for mange år sidan. Ein ny gymsal er òg med i planane, og han skal kunne nyttast av idrettslaget "
        "om kveldane.",
        "Det har vore ein lang prosess å kome hit. Eg har sjølv vore med i arbeidsgruppa sidan starten, seier rektor "
        "Kari Nes. Vi har hatt mange møte med kommunen, og det har ikkje alltid vore lett å bli einige om kva som er "
        "viktigast. No ser det ut til at vi får både nye klasserom, eit betre bibliotek og ein skuleplass med meir "
        "plass til leik.",
    ],
    "nb": [
        "Kommunen har bestemt at den gamle skolen i bygda skal pusses opp i løpet av de neste to årene. Elevene og "
        "lærerne har ventet lenge på dette, for bygningen er kald om vinteren og taket lekker når det regner. "
        "Ordføreren sier at arbeidet skal starte til høsten, og at undervisningen skal fortsette i midlertidige "
        "lokaler mens byggearbeidet pågår. Foreldrene er glade for avgjørelsen, men noen av dem mener at kommunen "
        "burde ha gjort dette for mange år siden. En ny gymsal er også med i planene, og den skal kunne brukes av "
        "idrettslaget om kveldene.",
        "Det har vært en lang prosess å komme hit. Jeg har selv vært med i arbeidsgruppen siden starten, sier rektor "
        "Kari Nes. Vi har hatt mange møter med kommunen, og det har ikke alltid vært lett å bli enige om hva som er "
        "viktigst. Nå ser det ut til at vi får både nye klasserom, et bedre bibliotek og en skolegård med mer plass "
        "til lek.",
    ],
    "da": [
        "Kommunen har besluttet, at den gamle skole i landsbyen skal renoveres i løbet af de næste to år. Eleverne og "
        "lærerne har ventet længe på dette, for bygningen er kold om vinteren, og taget er utæt, når det regner. "
        "Borgmesteren siger, at arbejdet skal begynde til efteråret, og at undervisningen skal fortsætte i "
        "midlertidige lokaler, mens byggeriet står på. Forældrene er glade for beslutningen, men nogle af dem mener, "
        "at kommunen burde have gjort dette for mange år siden. En ny gymnastiksal er også med i planerne, og den skal "
        "kunne bruges af idrætsforeningen om aftenen.",
        "Det har været en lang proces at komme hertil. Jeg har selv været med i arbejdsgruppen fra starten, siger "
        "skoleleder Kari Nielsen. Vi har haft mange møder med kommunen, og det har ikke altid været let at blive enige "
        "om, hvad der er vigtigst. Nu ser det ud til, at vi får både nye klasselokaler, et bedre bibliotek og en "
        "skolegård med mere plads til leg.",
    ],
}


def test_norwegian_form_words() -> None:
    assert norwegian_form("Eg veit ikkje kva ho meiner.") == "nn"
    assert norwegian_form("Jeg vet ikke hva hun mener.") == "nb"
    assert norwegian_form("Vi ser også på det.") is None  # both forms write these words
    assert languages.NORWEGIAN_FORM_WORDS["nb"].isdisjoint(languages.NORWEGIAN_FORM_WORDS["nn"])


def test_synthetic_paragraphs_tell_bokmal_nynorsk_and_danish_apart() -> None:
    step = LanguageIdentifier()
    for code, texts in PARAGRAPHS.items():
        for doc in label(step, texts):
            assert doc.metadata["nordpipe"]["language"] == code, (code, doc.text[:60])
            assert doc.metadata["nordpipe"]["language_score"] >= 0.5
    # The word evidence decides between the two forms only: Danish stays Danish.
    step = LanguageIdentifier(norwegian_words=False)
    assert [d.metadata["nordpipe"]["language"] for d in label(step, PARAGRAPHS["da"])] == ["da", "da"]


def real_paragraphs(shared: Path) -> dict[str, list[str]]:
    """Paragraphs (consecutive sentences, >= 80 words) of the report split benchmarks/bench_langid.py
    reports on: DDT dev (da), the second half of NorNE dev (nb, nn), Talbanken dev's second half of
    the documents (sv)."""
    def sentences(path: Path) -> list[tuple[str, bool]]:
        return [(text, new_doc) for text, _, new_doc in conllu_stream(path)]

    data = shared / "data"
    split = {"da": [s for s, _ in sentences(data / "ud" / "da_ddt-ud-dev.conllu")]}
    for code, name in (("nb", "bokmaal"), ("nn", "nynorsk")):
        all_sentences = [s for s, _ in sentences(data / "ner" / f"norne-no_{name}-ud-dev.conllu")]
        split[code] = all_sentences[len(all_sentences) // 2 :]
    swedish = sentences(data / "ud" / "sv_talbanken-ud-dev.conllu")
    starts = [i for i, (_, new) in enumerate(swedish) if new]
    split["sv"] = [s for s, _ in swedish[starts[len(starts) // 2] :]]
    out: dict[str, list[str]] = {}
    for code, items in split.items():
        paragraphs, current = [], []
        for sentence in items:
            current.append(sentence)
            if sum(len(s.split()) for s in current) >= 80:
                paragraphs.append(" ".join(current))
                current = []
        out[code] = paragraphs
    return out


def test_accuracy_on_real_paragraphs_by_language(shared: Path) -> None:
    step = LanguageIdentifier()
    for code, paragraphs in real_paragraphs(shared).items():
        assert len(paragraphs) >= 40, code
        labels = [d.metadata["nordpipe"]["language"] for d in label(step, paragraphs)]
        assert labels.count(code) >= 0.97 * len(labels), (code, {c: labels.count(c) for c in set(labels)})


def test_first_pass_gives_the_full_sample_labels_on_real_articles(shared: Path) -> None:
    """The short first pass (lingua on 200 characters, backed by script and word evidence) must
    label real text as lingua on the whole 500-character sample does: articles of consecutive
    real paragraphs, each >= 400 characters so the first pass runs."""
    fast, full = LanguageIdentifier(), LanguageIdentifier(first_pass_chars=0)
    for code, paragraphs in real_paragraphs(shared).items():
        texts = ["\n\n".join(paragraphs[i : i + 2]) for i in range(0, len(paragraphs) - 1, 2)]
        assert all(len(t) >= 400 for t in texts)
        got = [fast.identify(t)[0] for t in texts]
        assert got == [full.identify(t)[0] for t in texts], code
        assert got.count(code) >= 0.97 * len(got), (code, {c: got.count(c) for c in set(got)})


def test_first_pass_defers_to_the_full_sample_without_backing_evidence() -> None:
    """Synthetic twin: Danish, Bokmål, Nynorsk and Swedish texts long enough for the first pass
    keep their labels, and the evidence check refuses a close-language answer the words or
    letters contradict (lingua on 200 characters can call Danish Bokmål at 0.9999)."""
    from nordpipe.langid import _confirms

    fast, full = LanguageIdentifier(), LanguageIdentifier(first_pass_chars=0)
    for code, texts in PARAGRAPHS.items():
        for text in texts:
            long_text = f"{text}\n\n{text}"
            assert len(long_text) >= 400
            assert fast.identify(long_text)[0] == full.identify(long_text)[0] == code
    swedish = f"{SENTENCES['sv']} {SENTENCES['sv']}"
    assert fast.identify(swedish)[0] == "sv"
    danish = "Det er et problem for hotellerne, at de efter krigen blev fyldt af flygtninge, og hvad nu?"
    assert _confirms("da", danish) and not _confirms("nb", danish) and not _confirms("nn", danish)
    norwegian = "Det er eit problem for hotella at dei etter krigen vart fylte av flyktningar, og kva no?"
    assert _confirms("nn", norwegian) and _confirms("nb", norwegian) and not _confirms("da", norwegian)
    swedish_letters = "Det är ett problem för hotellen att de efter kriget fylldes av flyktingar."
    assert not _confirms("sv", danish) and _confirms("sv", swedish_letters) and not _confirms("da", swedish_letters)
    assert not _confirms("sv", SENTENCES["sv"])  # no "ä"/"ö": lingua reads the whole sample
    assert not _confirms("da", "Det er en dag.")  # no evidence either way: lingua reads the whole sample
    assert _confirms("en", SENTENCES["en"])  # only the close languages need backing


# --------------------------------------------------------------------------------------------
# The command: --languages no keeps both written forms of Norwegian


def test_cli_languages_no_keeps_bokmal_and_nynorsk(tmp_path: Path, nordpipe_cli: Any) -> None:
    texts = {"nn": "\n\n".join(PARAGRAPHS["nn"]), "nb": "\n\n".join(PARAGRAPHS["nb"]), "da": "\n\n".join(PARAGRAPHS["da"])}
    (tmp_path / "in").mkdir()
    with gzip.open(tmp_path / "in" / "part-0.jsonl.gz", "wt", encoding="utf-8") as handle:
        for code, text in texts.items():
            handle.write(json.dumps({"id": code, "text": text, "source": "test", "added": "2024-01-01",
                                     "created": "2020-01-01, 2021-01-01", "metadata": {"language": "no"}}) + "\n")
    out = tmp_path / "out"
    result = nordpipe_cli("filter", "quality", tmp_path / "in", out, "--languages", "no", "--keep-removed")
    assert result.returncode == 0, result.stderr

    def read(folder: Path) -> dict[str, dict[str, Any]]:
        records = {}
        for file in folder.glob("*.jsonl.gz"):
            with gzip.open(file, "rt", encoding="utf-8") as handle:
                records.update((r["id"], r) for r in map(decoded_line, handle))
        return records

    kept, removed = read(out / "documents"), read(out / "removed")
    assert sorted(kept) == ["nb", "nn"]
    assert kept["nn"]["metadata"]["nordpipe"]["language"] == "nn"
    assert kept["nb"]["metadata"]["nordpipe"]["language"] == "nb"
    assert removed["da"]["metadata"]["nordpipe"]["removed"] == "language:other"

    result = nordpipe_cli("filter", "quality", tmp_path / "in", tmp_path / "out2", "--languages", "da,dk")
    assert result.returncode == 2
    assert "'dk'" in result.stderr and "da, nb, nn, sv, is, fo, fi, en, no" in " ".join(result.stderr.split())


def test_source_language_no_means_bokmal_settings_only_without_a_label() -> None:
    from nordpipe.quality import document_language

    source_only = Document(text="x", id="1", metadata={"language": "no"})
    assert document_language(source_only) == "nb"
    labelled = Document(text="x", id="2", metadata={"language": "no", "nordpipe": {"language": "nn"}})
    assert document_language(labelled) == "nn"
    unknown = Document(text="x", id="3", metadata={"language": "nno_Latn", "nordpipe": {"language": "unknown"}})
    assert document_language(unknown) == "nn"


def test_ingest_datasheet_keeps_no_and_refuses_unknown_codes(tmp_path: Path, nordpipe_cli: Any) -> None:
    from nordpipe.datasheet import parse_front_matter

    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps({"text": PARAGRAPHS["nn"][0]}) + "\n", encoding="utf-8")
    common = ["--license", "cc0-1.0", "--created", "2020"]
    nordpipe_cli("ingest", raw, "--dataset", "nyn", "--output", tmp_path / "out", "--language", "nor,nno_Latn,Bokmål",
                 *common, check=True)
    matter = parse_front_matter((tmp_path / "out" / "nyn" / "README.md").read_text(encoding="utf-8"))
    assert matter["language"] == ["no", "nn", "nb"]
    result = nordpipe_cli("ingest", raw, "--dataset", "bad", "--output", tmp_path / "out", "--language", "da,dk", *common)
    assert result.returncode == 2
    assert "'dk'" in result.stderr and "valid: da, nb, nn" in " ".join(result.stderr.split())
    assert not (tmp_path / "out" / "bad").exists()


def test_word_pass_gives_lingua_labels_on_real_articles(shared: Path) -> None:
    """The word first pass (``languages.MARKER_WORDS``) must answer only where lingua gives the
    same label, and must answer on most real articles (that is its point): articles of 1-4
    consecutive real paragraphs per language, compared with lingua's passes alone."""
    from nordpipe.langid import _middle

    fast, lingua = LanguageIdentifier(), LanguageIdentifier(word_first_pass=False)
    for code, paragraphs in real_paragraphs(shared).items():
        texts = ["\n\n".join(paragraphs[i : i + 1 + i % 4]) for i in range(len(paragraphs))]
        answered = [t for t in texts if fast._word_pass(_middle(t, fast.marker_chars)) is not None]
        assert len(answered) >= 0.5 * len(texts), (code, len(answered), len(texts))
        got = [fast.identify(t) for t in texts]
        assert [c for c, _ in got] == [lingua.identify(t)[0] for t in texts], code
        assert all(0.0 < score <= 1.0 + 1e-9 for _, score in got), [s for _, s in got if not 0.0 < s <= 1.0 + 1e-9]


def test_word_pass_answers_only_on_clear_evidence() -> None:
    """Synthetic twin: clear Danish, Bokmål, Nynorsk, Swedish, English, Finnish and Icelandic
    texts are settled by their marker words with lingua's label; mixed, foreign and evidence-poor
    texts go to lingua."""
    from nordpipe.langid import marker_vote

    fast, lingua = LanguageIdentifier(), LanguageIdentifier(word_first_pass=False)
    texts = {
        "da": "Hun sagde, at hun havde været ude af huset i lidt over en time, og at hun måske ville gå "
              "tilbage igen senere. Hvad der skete mellem dem, vidste ingen noget om, men nogle mente, "
              "at de havde set hende gå gennem parken uden sin hund.",
        "nb": "Hun sier at hun hadde vært ute av huset i litt over en time, og at hun kanskje ville gå "
              "tilbake igjen etter hvert. Hva som skjedde mellom dem, visste ingen noe om, men noen "
              "mente at de hadde sett henne gå gjennom parken uten hunden sin. Det var blitt mye verre.",
        "nn": "Ho seier at ho hadde vore ute av huset i litt over ein time, og at ho kanskje ville gå "
              "tilbake att etter kvart. Kva som hende mellom dei, visste ingen noko om, men nokon meinte "
              "at dei hadde sett henne gå gjennom parken utan hunden sin. Det var ikkje berre mykje verre.",
        "sv": "Hon sade att hon hade varit ute ur huset i lite mer än en timme, och att hon kanske skulle gå "
              "tillbaka senare. Vad som hände mellan dem visste ingen något om, men några menade att de "
              "hade sett henne gå genom parken utan sin hund. Det är inte mycket att säga om det.",
        "en": "She said that she had been out of the house for a little over an hour, and that she would "
              "perhaps go back there later. What happened between them was not known, but they were sure "
              "that it was about the dog, which has also been seen in the park.",
        "fi": "Hän sanoi, että oli ollut poissa talosta vähän yli tunnin, ja että hän ehkä menisi takaisin "
              "myöhemmin. Mitä heidän välillään tapahtui, sitä kukaan ei tiennyt, mutta jotkut sanoivat, "
              "että he olivat nähneet hänen kävelevän puiston läpi ilman koiraansa, kuin myös sekä vain tämä.",
        "is": "Hún sagði að hún hefði verið úti í rúman klukkutíma og að hún myndi kannski fara aftur "
              "seinna. Það sem gerðist á milli þeirra vissi enginn, en sumir töldu að þeir hefðu séð hana "
              "ganga í gegnum garðinn með hundinn, þegar það var kalt, eða um kvöldið.",
    }
    for code, text in texts.items():
        found = fast._word_pass(text)
        assert found is not None and found[0] == code, (code, found)
        assert fast.identify(text)[0] == lingua.identify(text)[0] == code
    # Danish and Bokmål marker words mixed half and half: no language has 80% of them.
    mixed = texts["da"][:120] + " " + texts["nb"][:150]
    assert marker_vote(mixed) is None
    # German shares "die"/"und" with none of the candidates: lingua decides.
    german = "Die Gemeinde hat beschlossen, und das ist nicht neu, die alte Schule von Grund auf zu renovieren."
    assert marker_vote(german + " " + texts["da"]) is None
    # Fewer than four marker words: lingua decides.
    assert marker_vote("Det er en dag af mange.") is None
    # Nynorsk and Bokmål are one family for the count; the form words then pick the written form.
    assert marker_vote(texts["nn"])[0] == "no" and marker_vote(texts["nb"])[0] == "no"


def test_word_pass_reads_names_letters_and_foreign_words_by_count() -> None:
    """Synthetic twin: a Nordic text that names "Malmö", "Søren" or "Los Angeles" is still
    settled by its words (a name's letter or foreign word is outnumbered), while Swedish letters
    that outnumber Danish ones, or two foreign words, still send it to lingua."""
    from nordpipe.langid import _confirms, marker_vote

    fast, lingua = LanguageIdentifier(), LanguageIdentifier(word_first_pass=False)
    danish = ("Søren og Bjørn kørte over broen til Malmö, hvor de mødte Björn. De havde været ude af "
              "byen i lidt over en uge, og hvad de fik at vide mellem møderne, vidste ingen noget om.")
    swedish = ("Hon träffade Søren i Malmö. Vad som hände mellan dem visste ingen något om, men några "
               "menade att de hade sett honom gå genom parken, och det är inte mycket att säga om det.")
    assert fast._word_pass(danish) == ("da", 1.0)
    assert fast._word_pass(swedish) == ("sv", 1.0)
    assert fast.identify(danish)[0] == lingua.identify(danish)[0] == "da"
    assert fast.identify(swedish)[0] == lingua.identify(swedish)[0] == "sv"
    assert _confirms("da", danish) and not _confirms("sv", danish)
    assert _confirms("sv", swedish) and not _confirms("da", swedish)
    # As many "ä"/"ö" as "æ"/"ø": neither side is backed by its letters.
    even = "Det er af hvad noget nogle: Malmö og Søren."
    assert not _confirms("da", even) and not _confirms("sv", even)
    # One foreign word is part of a name; two are a foreign text (or too much of one).
    assert marker_vote(danish + " Hun bor nu i Los Angeles.") == ("da", 1.0)
    assert marker_vote(danish + " Los Angeles og Las Vegas.") is None


def test_first_pass_is_skipped_where_lingua_would_read_all_its_models() -> None:
    """Synthetic twin: a sample whose middle 200 characters hold fewer than 120 letters (a
    table, a menu) would put lingua into its all-n-gram mode, which is slower and loads every
    model on first use; the first pass is skipped and lingua reads the whole sample, which gives
    the label and score of running without a first pass."""
    from nordpipe.langid import LINGUA_TRIGRAM_LETTERS, _middle

    fast, full = LanguageIdentifier(word_first_pass=False), LanguageIdentifier(word_first_pass=False, first_pass_chars=0)
    real = fast._lingua_detector()
    seen: list[str] = []

    class Recording:  # the real detector; records what it was asked to read
        def compute_language_confidence_values(self, text: str) -> Any:
            seen.append(text)
            return real.compute_language_confidence_values(text)

    fast._lingua = Recording()
    table = "\n".join(f"{i:>4} | {i * 37 % 1000:>6} | {i * 91 % 10000:>8} | kr." for i in range(12))
    text = f"Priserne for januar og februar står i tabellen herunder, og de gælder hele året.\n{table}\n" \
           f"Spørgsmål om priserne kan sendes til kundeservice, som svarer inden for to hverdage."
    sample = _middle(text, fast.max_chars)
    assert len(sample) >= 2 * fast.first_pass_chars
    assert sum(map(str.isalpha, _middle(sample, fast.first_pass_chars))) < LINGUA_TRIGRAM_LETTERS
    assert fast.identify(text) == full.identify(text)
    assert seen == [sample]  # the whole sample only, no 200-character pass
    # Prose with enough letters in its middle keeps the cheap first pass.
    seen.clear()
    prose = " ".join(PARAGRAPHS["da"])
    fast.identify(prose)
    assert seen and len(seen[0]) == fast.first_pass_chars
