"""Tests of ``nordpipe export sentences`` / ``nordpipe export pairs`` (issue 10).

The sample corpus is generated here (seeded): Danish, Norwegian and Swedish documents composed
from template sentences (with abbreviations, ordinals and boilerplate repeated across
documents), plus real Universal Dependencies sentences from ../shared when it is present.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from nordpipe.export import (
    PairExport,
    SentenceExport,
    SentenceSplitter,
    clean_field_text,
    html_to_text,
    load_ir_evaluation,
    normalize_language,
    split_sentences,
    url_group,
)
from nordpipe.layout import UsageError

SHARED_UD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"

# --------------------------------------------------------------------------------------------
# Sample corpus

NAMES = ["Mette", "Lars", "Ingrid", "Ole", "Astrid", "Henrik", "Sofie", "Anders", "Kari", "Björn", "Åsa", "Ærø"]
CITIES = ["Odense", "Aarhus", "Bergen", "Tromsø", "Malmö", "Uppsala", "Roskilde", "Trondheim", "Göteborg", "Aalborg"]
THINGS = ["cykel", "bog", "kaffemaskine", "båd", "lampe", "sofa", "computer", "jakke"]
TEMPLATES = {
    "da": [
        "{name} bor i {city} og arbejder som lærer på den lokale skole nr. {n}.",
        "Mødet i {city} starter kl. {hour} den {day}. maj, og alle er velkomne.",
        "Prisen for en {thing} er ca. {n}00 kr. om måneden, f.eks. i {city}.",
        "Ifølge {name} er en {thing} bl.a. populær blandt unge i {city}.",
        "Hvorfor flyttede {name} egentlig til {city} i år {year}?",
        "H.C. Andersen besøgte {city} i {year}, hvor han mødte {name}.",
    ],
    "nb": [
        "{name} bor i {city} og jobber som sykepleier ved sykehus nr. {n}.",
        "Møtet starter kl. {hour}, dvs. rett etter lunsj i {city}.",
        "Vi har bl.a. {thing} og mye annet på lager i {city} i {year}.",
        "Det koster ca. {n}00 kr. for en {thing} i {city}, sier {name}.",
    ],
    "sv": [
        "{name} bor i {city} och arbetar som snickare sedan {year}.",
        "Mötet börjar kl. {hour}, t.ex. i stora salen i {city}.",
        "Det finns bl.a. en {thing} i huset i {city} som {name} köpte.",
        "Varför reste {name} till {city} den {day}. juni {year}?",
    ],
}
BOILERPLATE = {
    "da": ["Alle rettigheder forbeholdes redaktionen.", "Læs også vores andre artikler om emnet."],
    "nb": ["Alle rettigheter forbeholdt redaksjonen.", "Les også våre andre artikler om temaet."],
    "sv": ["Alla rättigheter förbehålls redaktionen.", "Läs också våra andra artiklar om ämnet."],
}


def ud_sentences() -> dict[str, list[str]]:
    """Real sentences from ../shared (empty without it)."""
    found: dict[str, list[str]] = {}
    for lang, name in (("da", "da_ddt-ud-dev.conllu"), ("sv", "sv_talbanken-ud-dev.conllu")):
        path = SHARED_UD / name
        if path.exists():
            found[lang] = [
                line[len("# text = ") :].strip()
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.startswith("# text = ")
            ]
    return found


def make_sentence(rng: random.Random, lang: str) -> str:
    return rng.choice(TEMPLATES[lang]).format(
        name=rng.choice(NAMES), city=rng.choice(CITIES), thing=rng.choice(THINGS), n=rng.randint(1, 99),
        hour=rng.randint(8, 20), day=rng.randint(1, 28), year=rng.randint(1900, 2024),
    )


def make_document(rng: random.Random, doc_id: str, lang: str, real: dict[str, list[str]]) -> dict[str, Any]:
    paragraphs = []
    for _ in range(rng.randint(1, 4)):
        sentences = []
        for _ in range(rng.randint(1, 5)):
            roll = rng.random()
            if roll < 0.15:
                sentences.append(rng.choice(BOILERPLATE[lang]))
            elif roll < 0.2:
                sentences.append("Ja.")  # too short for the default min_chars
            elif roll < 0.45 and real.get(lang):
                sentences.append(rng.choice(real[lang]))
            else:
                sentences.append(make_sentence(rng, lang))
        paragraphs.append(" ".join(sentences))
    return {
        "id": doc_id, "text": "\n\n".join(paragraphs), "source": "sample", "added": "2024-05-01",
        "created": "2020-01-01, 2024-01-01", "metadata": {"language": lang, "url": f"https://example.{lang}/{doc_id}"},
    }


def write_jsonl_gz(path: Path, records: list[Any], extra_lines: list[bytes] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        for line in extra_lines:
            handle.write(line + b"\n")


def build_corpus(root: Path, n_files: int = 3, docs_per_file: int = 80, seed: int = 7, start: int = 0) -> list[dict]:
    rng = random.Random(seed)
    real = ud_sentences()
    documents = []
    for f in range(n_files):
        records = []
        for i in range(docs_per_file):
            lang = rng.choice(["da", "nb", "sv"])
            records.append(make_document(rng, f"doc-{start + f:02d}-{i:04d}", lang, real))
        write_jsonl_gz(root / "documents" / f"part-{start + f:04d}.jsonl.gz", records)
        documents.extend(records)
    return documents


def expected_sentences(documents: list[dict], min_chars: int = 20, max_chars: int = 1000) -> dict[str, str]:
    """Distinct kept sentence -> id of the first document (in input order) containing it."""
    first: dict[str, str] = {}
    for doc in documents:
        for sentence in split_sentences(doc["text"], doc["metadata"].get("language")):
            if min_chars <= len(sentence) <= max_chars:
                first.setdefault(sentence, doc["id"])
    return first


def file_digests(root: Path, folders: tuple[str, ...] = ("data", "jsonl", "ir", "quarantine")) -> dict[str, str]:
    digests = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*")) if (root / folder).exists() else []:
            if path.is_file():
                digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def read_split(root: Path, split: str) -> pl.DataFrame:
    files = sorted((root / "data").glob(f"{split}-*.parquet"))
    if not files:  # an empty split writes no file
        return pl.DataFrame(schema={"text": pl.String, "document_id": pl.String})
    return pl.concat([pl.read_parquet(f) for f in files])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("corpus") / "sample"
    return root, build_corpus(root)


# --------------------------------------------------------------------------------------------
# Sentence splitting


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        ("da", "Vi mødes kl. 14 i morgen. Tag f.eks. Peter med!",
         ["Vi mødes kl. 14 i morgen.", "Tag f.eks. Peter med!"]),
        ("da", "H.C. Andersen blev født d. 2. april 1805 i Odense. Han skrev eventyr, digte osv. Mange læser dem.",
         ["H.C. Andersen blev født d. 2. april 1805 i Odense.", "Han skrev eventyr, digte osv.", "Mange læser dem."]),
        ("da", "Prisen er 100 kr. Det er billigt. Mødet er den 3. maj kl. 10.30.",
         ["Prisen er 100 kr.", "Det er billigt.", "Mødet er den 3. maj kl. 10.30."]),
        ("da", "Han sagde: »Kom nu!« Så gik han. Hvad? sagde hun.",
         ["Han sagde: »Kom nu!«", "Så gik han.", "Hvad? sagde hun."]),
        ("da", "Se www.dr.dk for mere. Det koster ca. 5 mio. kr. om året.",
         ["Se www.dr.dk for mere.", "Det koster ca. 5 mio. kr. om året."]),
        ("da", "Hr. Jensen og Dr. Hansen kom, jf. aftalen. Prof. Olsen også.",
         ["Hr. Jensen og Dr. Hansen kom, jf. aftalen.", "Prof. Olsen også."]),
        ("da", "Vi har bl.a. Danmark og Norge. Det er mv. Sverige er med.",
         ["Vi har bl.a. Danmark og Norge.", "Det er mv.", "Sverige er med."]),
        ("nb", "«Kom hit!» ropte han. Det var i 2019. 2020 var verre.",
         ["«Kom hit!» ropte han.", "Det var i 2019.", "2020 var verre."]),
        ("nb", "Møtet er ca. kl. 9, dvs. Petter kommer tidlig. Vi har epler, pærer osv. Det er godt.",
         ["Møtet er ca. kl. 9, dvs. Petter kommer tidlig.", "Vi har epler, pærer osv.", "Det er godt."]),
        ("nn", "Vi har t.d. Bergen og m.a. Voss. Det er fint.", ["Vi har t.d. Bergen og m.a. Voss.", "Det er fint."]),
        ("sv", "Det finns t.ex. Malmö och bl.a. Lund m.m. Det är bra. Se s. 45 i boken.",
         ["Det finns t.ex. Malmö och bl.a. Lund m.m.", "Det är bra.", "Se s. 45 i boken."]),
        ("sv", "Publicerad i Children 1958, Vol. 5, s. 179. Nästa fråga?", ["Publicerad i Children 1958, Vol. 5, s. 179.",
                                                                          "Nästa fråga?"]),
        ("is", "Þetta er t.d. Reykjavík og o.fl. Það er gott.", ["Þetta er t.d. Reykjavík og o.fl.", "Það er gott."]),
        ("fi", "Tämä on esim. Helsinki. Se on hyvä.", ["Tämä on esim. Helsinki.", "Se on hyvä."]),
        ("da", "Ja... Nej! Måske?", ["Ja...", "Nej!", "Måske?"]),
        # Paragraphs: a blank line or a heading line always splits; a hard wrap does not.
        ("da", "Overskrift\nDette er en lang sætning der er\nbrudt over to linjer.\n\nNy del",
         ["Overskrift", "Dette er en lang sætning der er brudt over to linjer.", "Ny del"]),
        ("da", "Vi køber:\n- æbler\n- pærer og\nblommer\n2) mælk", ["Vi køber:", "- æbler", "- pærer og blommer", "2) mælk"]),
        ("da", "  Mange   mellemrum\tog\u00a0tabs.  Næste sætning. ", ["Mange mellemrum og tabs.", "Næste sætning."]),
    ],
)
def test_splitter_rules(lang: str, text: str, expected: list[str]) -> None:
    assert SentenceSplitter(lang).split(text) == expected


def test_splitter_language_codes_and_union() -> None:
    assert normalize_language("dan_Latn") == "da"
    assert normalize_language("nob") == "nb"
    assert normalize_language("no") == "nb"
    assert normalize_language("sv-SE") == "sv"
    assert normalize_language("en") is None
    union = SentenceSplitter(None)
    # With no language, every list applies: t.ex. (Swedish) and f.eks. (Danish) both hold.
    assert union.split("Vi har t.ex. Malmö og f.eks. Odense. Slut.") == ["Vi har t.ex. Malmö og f.eks. Odense.", "Slut."]
    # NFC: a decomposed å equals the composed one after splitting.
    assert split_sentences("Pa\u030aske er godt.") == ["Påske er godt."]
    assert split_sentences("") == []
    assert split_sentences("   \n\n  ") == []


def _boundary_scores(split: Any, paragraphs: list[list[str]]) -> float:
    """F1 of sentence boundaries predicted inside paragraphs built from gold sentences."""
    gold: set[tuple[int, int]] = set()
    pred: set[tuple[int, int]] = set()
    for index, sentences in enumerate(paragraphs):
        offset = 0
        for sentence in sentences[:-1]:
            offset += len(sentence.replace(" ", ""))
            gold.add((index, offset))
        offset = 0
        for sentence in split(" ".join(sentences))[:-1]:
            offset += len(sentence.replace(" ", ""))
            pred.add((index, offset))
    true = len(gold & pred)
    precision, recall = true / len(pred), true / len(gold)
    return 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("lang", ["da", "sv"])
def test_splitter_on_real_ud_sentences_beats_spacy_sentencizer(shared: Path, lang: str) -> None:
    """Real gold sentences (UD dev sets) glued into 5-sentence paragraphs; our boundaries must
    be good in absolute terms and at least as good as spaCy's rule-based sentencizer's."""
    spacy = pytest.importorskip("spacy")
    sentences = ud_sentences()[lang]
    paragraphs = [sentences[i : i + 5] for i in range(0, len(sentences), 5)]
    ours = _boundary_scores(SentenceSplitter(lang).split, paragraphs)
    nlp = spacy.blank(lang)
    nlp.add_pipe("sentencizer")
    theirs = _boundary_scores(lambda text: [s.text for s in nlp(text).sents], paragraphs)
    # UD headlines carry no final punctuation: no punctuation-based splitter finds those boundaries.
    assert ours >= 0.93, ours
    assert ours >= theirs, (ours, theirs)


# --------------------------------------------------------------------------------------------
# HTML


def test_html_to_text_uses_a_parser() -> None:
    html = (
        "<div><h2>Affald &amp; genbrug</h2><p>Sortér dit <b>affald</b>&nbsp;her.<br>Ny linje</p>"
        "<script>var x = '<p>nej</p>';</script><style>p {color: red}</style><!-- kommentar -->"
        "<ul><li>Glas</li><li>Pap</li></ul></div>"
    )
    assert clean_field_text(html, single_line=False) == "Affald & genbrug\nSortér dit affald her.\nNy linje\nGlas\nPap"
    assert clean_field_text(html, single_line=True) == "Affald & genbrug Sortér dit affald her. Ny linje Glas Pap"
    # Plain text is not parsed: a lone '<' survives, as do words between angle brackets.
    assert html_to_text("a < b og c > d") == "a < b og c > d"
    assert clean_field_text("&lt;p&gt; er et tag", single_line=True) == "<p> er et tag"
    assert clean_field_text("<html><head><title>T</title></head><body><p>Brødtekst</p></body></html>",
                            single_line=True) == "Brødtekst"


def test_url_group() -> None:
    assert url_group("https://www.KK.dk/borger/affald/sortering?x=1#top", 1) == "www.kk.dk/borger"
    assert url_group("https://www.kk.dk/borger/affald/sortering?x=1", None) == "www.kk.dk/borger/affald/sortering"
    assert url_group("https://www.kk.dk/", 2) == "www.kk.dk"


# --------------------------------------------------------------------------------------------
# Sentence export


def test_sentence_export_cli_unique_provenance_split_sizes_rerun(
    corpus: tuple[Path, list[dict]], tmp_path: Path, nordpipe_cli: Any
) -> None:
    root, documents = corpus
    out = tmp_path / "mlm"
    args = ("export", "sentences", root, out, "--validation-count", "37", "--format", "both", "--json")
    first = nordpipe_cli(*args, check=True)
    stats = json.loads(first.stdout)
    train, validation = read_split(out, "train"), read_split(out, "validation")
    both = pl.concat([train, validation])

    # Split sizes as asked, and as reported.
    assert validation.height == 37
    assert stats["splits"] == {"train": train.height, "validation": 37}

    # No duplicate sentence, and nothing lost: exactly the distinct kept sentences of the input.
    assert both["text"].n_unique() == both.height
    expected = expected_sentences(documents)
    assert set(both["text"]) == set(expected)

    # Provenance for every row: the first document that contains the sentence, and its index.
    by_id = {doc["id"]: doc for doc in documents}
    assert both["document_id"].null_count() == 0
    for text, doc_id, source, index in both.select("text", "document_id", "source", "sentence_index").iter_rows():
        assert doc_id == expected[text]
        assert source == "sample"
        doc = by_id[doc_id]
        assert split_sentences(doc["text"], doc["metadata"]["language"])[index] == text

    # Occurrences count the duplicates that were removed; boilerplate shows up many times.
    assert int(both["occurrences"].sum()) - both.height == stats["removed"]["sentence:duplicate"]
    assert int(both["occurrences"].max()) > 5
    assert stats["removed"]["sentence:too_short"] > 0

    # jsonl holds the same rows as parquet.
    jsonl = pl.concat([pl.read_ndjson(p) for p in sorted((out / "jsonl").glob("*.jsonl"))])
    assert sorted(jsonl["text"]) == sorted(both["text"])

    # Rerun: byte-identical files; no temp files left behind.
    digests = file_digests(out)
    assert digests and all(name.startswith(("data/", "jsonl/")) for name in digests)
    nordpipe_cli(*args, check=True)
    assert file_digests(out) == digests
    assert not (out / ".nordpipe" / "tmp").exists()


def test_sentence_export_ratio_is_stable_when_documents_are_added(corpus: tuple[Path, list[dict]],
                                                                  tmp_path: Path) -> None:
    root, _documents = corpus
    grown = tmp_path / "grown"
    for path in (root / "documents").iterdir():
        (grown / "documents").mkdir(parents=True, exist_ok=True)
        (grown / "documents" / path.name).write_bytes(path.read_bytes())
    export = SentenceExport(validation_ratio=0.2)
    export.run(str(grown), str(tmp_path / "before"))
    before = pl.concat([read_split(tmp_path / "before", s).with_columns(split=pl.lit(s)) for s in ("train", "validation")])
    n = before.height
    # Ratio splits are by hash: the validation share is close to the ratio (binomial, 5 sigma).
    assert abs(before.filter(pl.col("split") == "validation").height - 0.2 * n) < 5 * (n * 0.2 * 0.8) ** 0.5

    build_corpus(grown, n_files=2, docs_per_file=60, seed=99, start=50)  # new files, new sentences
    stats = export.run(str(grown), str(tmp_path / "after"))
    after = pl.concat([read_split(tmp_path / "after", s).with_columns(split=pl.lit(s)) for s in ("train", "validation")])
    assert after.height > n
    joined = before.join(after, on="text", how="left", suffix="_after")
    assert joined["split_after"].null_count() == 0  # every old sentence is still there ...
    assert (joined["split"] == joined["split_after"]).all()  # ... in the same split
    assert stats["splits"]["validation"] > 0


def test_sentence_export_output_independent_of_workers_and_split_by_document(
    corpus: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    root, _documents = corpus
    one = SentenceExport(validation_ratio=0.3, split_by="document", partitions=5, rows_per_shard=100)
    two = SentenceExport(validation_ratio=0.3, split_by="document", partitions=5, rows_per_shard=100, workers=2)
    one.run(str(root), str(tmp_path / "one"))
    two.run(str(root), str(tmp_path / "two"))
    digests = file_digests(tmp_path / "one")
    assert len([d for d in digests if d.startswith("data/train-")]) > 1  # sharded at 100 rows
    assert digests == file_digests(tmp_path / "two")
    # split_by=document: no document has sentences in both splits.
    splits = pl.concat([
        read_split(tmp_path / "one", s).with_columns(split=pl.lit(s)) for s in ("train", "validation")
    ])
    per_doc = splits.group_by("document_id").agg(pl.col("split").n_unique().alias("n"))
    assert per_doc["n"].max() == 1
    assert splits.filter(pl.col("split") == "validation").height > 0
    # Shards are named as the datasets library expects and sum to the total.
    names = sorted(p.name for p in (tmp_path / "one" / "data").iterdir())
    total = len([n for n in names if n.startswith("train-")])
    assert f"train-00000-of-{total:05d}.parquet" in names


def test_sentence_export_survives_bad_input(tmp_path: Path, make_records: Any, nordpipe_cli: Any) -> None:
    good = [make_records(f"g{i}", f"Dette er en fin og lang sætning nummer {i}. Og her er en til, nr. {i}.")
            for i in range(5)]
    removed = make_records("r1", "Denne sætning var fjernet af et tidligere trin.")
    removed["metadata"] = {"nordpipe": {"removed": "gopher_quality:stop_words"}}
    write_jsonl_gz(tmp_path / "in" / "a.jsonl.gz", [*good, removed, [1, 2], {"id": "x"}],
                   extra_lines=[b"{not json", b"\xff\xfe"])
    broken = gzip.compress(b"".join(json.dumps(make_records(f"b{i}", "En helt anden lang sætning her.")).encode()
                                    + b"\n" for i in range(50)))
    (tmp_path / "in" / "b.jsonl.gz").write_bytes(broken[: len(broken) // 2])  # truncated gzip
    out = tmp_path / "out"
    result = nordpipe_cli("export", "sentences", tmp_path / "in", out, "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["quarantined"]["invalid JSON"] == 1
    assert stats["quarantined"]["invalid UTF-8"] == 1
    assert stats["quarantined"]["not an object"] == 1
    assert stats["quarantined"]["missing field"] == 1
    assert stats["quarantined"]["removed upstream"] == 1
    assert any(k.startswith("broken compression") for k in stats["quarantined"])
    lines = [json.loads(x) for x in (out / "quarantine" / "export.jsonl").read_text().splitlines()]
    assert len(lines) == stats["quarantined_total"]
    assert {"file", "line", "reason"} <= set(lines[0])
    texts = set(read_split(out, "train")["text"]) | set(read_split(out, "validation")["text"])
    assert "Dette er en fin og lang sætning nummer 3." in texts
    # --strict turns quarantined input into exit 1 (after writing the output).
    assert nordpipe_cli("export", "sentences", tmp_path / "in", out, "--strict").returncode == 1


def test_export_cli_usage_errors(tmp_path: Path, nordpipe_cli: Any) -> None:
    from typer.testing import CliRunner

    from nordpipe.cli.main import app

    (tmp_path / "in.jsonl").write_text("")
    inp, out = str(tmp_path / "in.jsonl"), str(tmp_path / "o")
    runner = CliRunner()
    usage = [
        ["export", "sentences", inp, out, "--validation-ratio", "0.1", "--validation-count", "5"],
        ["export", "sentences", inp, out, "--format", "csv"],
        ["export", "sentences", inp, out, "--split-by", "document", "--validation-count", "5"],
        ["export", "sentences", inp, out, "--language", "en"],
        ["export", "pairs", inp, out, "--anchor", "title"],
        ["export", "pairs", inp, out, "--anchor", "text", "--positive", "text"],
    ]
    for args in usage:
        assert runner.invoke(app, args).exit_code == 2, args
    for command in ("sentences", "pairs"):
        helped = runner.invoke(app, ["export", command, "--help"])
        assert helped.exit_code == 0 and "Example" in helped.output
    # The real console script: a usage error exits 2, a missing input 1 with a one-line reason.
    assert nordpipe_cli("export", "pairs", inp, out, "--anchor", "title").returncode == 2
    missing = nordpipe_cli("export", "sentences", tmp_path / "nowhere", out)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "o" / "data").exists()


# --------------------------------------------------------------------------------------------
# Pair export


def site_documents(make_records: Any) -> list[dict]:
    """A hand-made municipal site: titles, HTML bodies and URLs."""
    def page(doc_id: str, title: str, body: str, url: str) -> dict:
        return make_records(doc_id, body, source="kommune", title=title, url=url)

    return [
        page("p1", "Affald", "<p>Sortér <b>glas</b> og metal.</p>", "https://kk.dk/borger/affald/glas"),
        page("p2", "Affald", "<p>Pap hentes hver <i>anden</i> uge.</p>", "https://kk.dk/borger/affald/pap"),
        page("p3", "Storskrald", "<p>Pap hentes hver <i>anden</i> uge.</p>", "https://kk.dk/borger/storskrald"),
        page("p4", "Parkering", "<div>Licens koster 1.000&nbsp;kr.</div><script>track()</script>",
             "https://kk.dk/erhverv/parkering"),
        page("p5", "Affald", "<p>Sortér <b>glas</b> og metal.</p>", "https://kk.dk/borger/affald/glas?print=1"),
        page("p6", "", "<p>Side uden titel.</p>", "https://kk.dk/tom"),
        make_records("p7", "Ingen titel i metadata.", source="kommune", url="https://kk.dk/x"),
    ]


def test_pairs_relevant_docs_hand_checked(tmp_path: Path, make_records: Any, nordpipe_cli: Any) -> None:
    write_jsonl_gz(tmp_path / "site" / "documents" / "pages.jsonl.gz", site_documents(make_records))
    out = tmp_path / "pairs"
    result = nordpipe_cli("export", "pairs", tmp_path / "site", out, "--anchor", "title", "--positive", "text",
                          "--group-by", "url", "--group-depth", "1", "--test-ratio", "1", "--json", check=True)
    stats = json.loads(result.stdout)
    assert stats["removed"] == {"pair:duplicate_pair": 1, "pair:missing_anchor": 1, "pair:short_anchor": 1}
    test = read_split(out, "test")
    assert sorted(test["document_id"]) == ["p1", "p2", "p3", "p4"]
    row = dict(zip(test["document_id"], test.iter_rows(named=True), strict=True))
    assert row["p4"]["positive"] == "Licens koster 1.000 kr."  # HTML stripped, script dropped, &nbsp; decoded
    assert row["p1"]["group"] == row["p2"]["group"] == "kk.dk/borger"

    queries, corpus, relevant = load_ir_evaluation(str(out))
    # Three queries (the distinct titles) and three corpus texts (p2 and p3 share a body).
    assert sorted(queries.values()) == ["Affald", "Parkering", "Storskrald"]
    assert sorted(corpus.values()) == ["Licens koster 1.000 kr.", "Pap hentes hver anden uge.",
                                       "Sortér glas og metal."]
    by_text = {text: cid for cid, text in corpus.items()}
    named = {queries[qid]: {corpus[cid] for cid in cids} for qid, cids in relevant.items()}
    assert named == {
        "Affald": {"Sortér glas og metal.", "Pap hentes hver anden uge."},  # one title, two pages
        "Storskrald": {"Pap hentes hver anden uge."},  # the body p2 shares
        "Parkering": {"Licens koster 1.000 kr."},
    }
    assert relevant[row["p3"]["query_id"]] == {by_text["Pap hentes hver anden uge."]}
    assert all(isinstance(v, set) for v in relevant.values())


def test_pairs_groups_never_straddle_and_rows_never_move(tmp_path: Path, make_records: Any) -> None:
    rng = random.Random(3)
    sections = [f"sektion{i}" for i in range(40)]

    def pages(start: int, count: int) -> list[dict]:
        records = []
        for i in range(start, start + count):
            section = rng.choice(sections)
            records.append(make_records(
                f"page-{i:05d}", f"<p>Brødtekst for side {i} i {section}.</p>", source="site",
                title=f"Side {i}", url=f"https://www.kommune.dk/{section}/side-{i}?ref=x",
            ))
        return records

    write_jsonl_gz(tmp_path / "site" / "documents" / "a.jsonl.gz", pages(0, 600))
    export = PairExport(anchor="title", positive="text", group_by="url", group_depth=1, test_ratio=0.3)
    export.run(str(tmp_path / "site"), str(tmp_path / "before"))

    def splits(out: Path) -> pl.DataFrame:
        return pl.concat([read_split(out, s).with_columns(split=pl.lit(s)) for s in ("train", "test")])

    before = splits(tmp_path / "before")
    assert before.height == 600
    per_group = before.group_by("group").agg(pl.col("split").n_unique().alias("n"), pl.len())
    assert per_group["n"].max() == 1  # no group straddles the split
    assert set(before["split"]) == {"train", "test"}
    assert per_group["len"].max() > 1  # groups really hold several documents

    # Add documents: new ones in existing sections and in new sections, in an earlier-sorting file.
    sections.extend(f"ny{i}" for i in range(10))
    write_jsonl_gz(tmp_path / "site" / "documents" / "0-new.jsonl.gz", pages(600, 300))
    export.run(str(tmp_path / "site"), str(tmp_path / "after"))
    after = splits(tmp_path / "after")
    assert after.height == 900
    joined = before.join(after, on="document_id", how="left", suffix="_after")
    assert joined["split_after"].null_count() == 0
    assert (joined["split"] == joined["split_after"]).all()
    assert after.group_by("group").agg(pl.col("split").n_unique().alias("n"))["n"].max() == 1
    # Test queries and corpus come from test rows only (corpus='test').
    queries, corpus, relevant = load_ir_evaluation(str(tmp_path / "after"))
    test = after.filter(pl.col("split") == "test")
    assert set(queries) == set(test["query_id"]) and set(corpus) == set(test["corpus_id"])
    assert sum(len(v) for v in relevant.values()) == test.height


# --------------------------------------------------------------------------------------------
# Loading with polars and with the datasets library


def test_exports_load_with_datasets_library(corpus: tuple[Path, list[dict]], tmp_path: Path,
                                            make_records: Any) -> None:
    datasets = pytest.importorskip("datasets")
    root, _ = corpus
    SentenceExport(validation_count=25, rows_per_shard=200).run(str(root), str(tmp_path / "mlm"))
    write_jsonl_gz(tmp_path / "site" / "documents" / "pages.jsonl.gz", site_documents(make_records))
    PairExport(anchor="title", positive="text", test_ratio=0.5).run(str(tmp_path / "site"), str(tmp_path / "pairs"))

    # A subprocess, so that the offline switches are set before datasets is imported.
    script = (
        "import json, sys, datasets\n"
        "out = {}\n"
        "for name in ('mlm', 'pairs'):\n"
        "    d = datasets.load_dataset('parquet', data_dir=sys.argv[1] + '/' + name, cache_dir=sys.argv[1] + '/hf')\n"
        "    out[name] = {k: [v.num_rows, list(v.column_names)] for k, v in d.items()}\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    mlm_train, mlm_validation = read_split(tmp_path / "mlm", "train"), read_split(tmp_path / "mlm", "validation")
    assert loaded["mlm"]["validation"][0] == 25 == mlm_validation.height
    assert loaded["mlm"]["train"][0] == mlm_train.height
    assert loaded["mlm"]["train"][1] == ["text", "document_id", "source", "sentence_index", "occurrences"]
    pairs = {s: read_split(tmp_path / "pairs", s).height for s in ("train", "test")}
    assert {k: v[0] for k, v in loaded["pairs"].items()} == {k: v for k, v in pairs.items() if v}
    assert datasets.__version__


def test_sentence_counts_match_independent_count(corpus: tuple[Path, list[dict]], tmp_path: Path) -> None:
    """Cross-check the spill/partition dedup against a plain in-memory Counter."""
    root, documents = corpus
    stats = SentenceExport(validation_ratio=0.0, partitions=3, min_chars=1).run(str(root), str(tmp_path / "o"))
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(split_sentences(doc["text"], doc["metadata"]["language"]))
    train = read_split(tmp_path / "o", "train")
    assert dict(zip(train["text"], train["occurrences"], strict=True)) == dict(counts)
    assert stats["splits"] == {"train": len(counts), "validation": 0}
    assert all(unicodedata.is_normalized("NFC", t) for t in train["text"])


def test_failed_export_keeps_previous_output(corpus: tuple[Path, list[dict]], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs appear atomically: a run that dies while writing leaves the previous run's files
    as they were and no temp folder behind."""
    import nordpipe.export as export_module

    root, _ = corpus
    out = tmp_path / "out"
    SentenceExport(validation_count=10, rows_per_shard=50).run(str(root), str(out))
    digests = file_digests(out)
    calls = {"n": 0}
    original = export_module._SplitWriter._write

    def dying_write(self: Any, frame: pl.DataFrame) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write
        original(self, frame)

    monkeypatch.setattr(export_module._SplitWriter, "_write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        SentenceExport(validation_count=10, rows_per_shard=20).run(str(root), str(out))
    assert file_digests(out) == digests
    assert not (out / ".nordpipe" / "tmp").exists()


def test_parquet_input_gives_the_same_pairs(tmp_path: Path, make_records: Any) -> None:
    from nordpipe.documents import write_records

    records = site_documents(make_records)
    write_jsonl_gz(tmp_path / "a" / "documents" / "pages.jsonl.gz", records)
    (tmp_path / "b" / "documents").mkdir(parents=True)
    write_records(str(tmp_path / "b" / "documents" / "pages.parquet"), records)
    export = PairExport(anchor="metadata.title", positive="text", group_by="url", test_ratio=0.5)
    export.run(str(tmp_path / "a"), str(tmp_path / "out-a"))
    export.run(str(tmp_path / "b"), str(tmp_path / "out-b"))
    assert file_digests(tmp_path / "out-a", ("data", "ir")) == file_digests(tmp_path / "out-b", ("data", "ir"))
    assert read_split(tmp_path / "out-a", "train").height + read_split(tmp_path / "out-a", "test").height == 4


def test_export_refuses_an_output_that_is_not_its_own(corpus: tuple[Path, list[dict]], tmp_path: Path,
                                                      nordpipe_cli: Any) -> None:
    root, _ = corpus
    # A dataset folder (its quarantine/ must not be replaced by the export's).
    refused = nordpipe_cli("export", "sentences", root, root)
    assert refused.returncode == 2 and "is the input" in refused.stderr
    assert not (root / "data").exists()
    # Another export's output.
    SentenceExport().run(str(root), str(tmp_path / "mlm"))
    with pytest.raises(UsageError, match="export sentences"):
        PairExport(anchor="url", positive="text").run(str(root), str(tmp_path / "mlm"))
    assert read_split(tmp_path / "mlm", "train").height > 0


def test_pairs_keep_pii_placeholder_tags(tmp_path: Path, make_records: Any, nordpipe_cli: Any) -> None:
    """``nordpipe pii`` writes ``<NAME>``, ``<EMAIL>``...; the pair export strips HTML but must not take
    those tags for markup (they were dropped, leaving "Kontakt  på ")."""
    docs = [
        make_records("d1", "<p>Kontakt <b>Mette Frederiksen</b> på mette.frederiksen@example.dk i dag.</p>",
                     source="kommune", title="Kontakt", url="https://kk.dk/kontakt/a"),
        make_records("d2", "<div>Du kan ringe til Lars Løkke Rasmussen på 20 30 40 50.</div>",
                     source="kommune", title="Telefon", url="https://kk.dk/kontakt/b"),
    ]
    write_jsonl_gz(tmp_path / "site" / "documents" / "pages.jsonl.gz", docs)
    nordpipe_cli("pii", tmp_path / "site", tmp_path / "pii", check=True)
    out = tmp_path / "pairs"
    nordpipe_cli("export", "pairs", tmp_path / "pii", out, "--anchor", "title", "--positive", "text",
                 "--test-ratio", "1", check=True)
    rows = {row["document_id"]: row for row in read_split(out, "test").iter_rows(named=True)}
    assert rows["d1"]["positive"] == "Kontakt <NAME> på <EMAIL> i dag."
    assert rows["d2"]["positive"] == "Du kan ringe til <NAME> på <PHONE>."
    # Genuine markup is still removed, in upper case too.
    assert clean_field_text("<P>Hej <B><NAME></B>!</P>", single_line=True) == "Hej <NAME>!"
