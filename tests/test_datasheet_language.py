"""Datasheets never invent a language (``datasheet.sample_languages``), through ``nordpipe ingest``.

Without ``--language`` the datasheet's ``language`` is what language identification finds in a
bounded sample of the ingested records (an English WARC used to be labelled ``[da]``), or ``[]``
with "unknown" when nothing can be identified; records get no ``metadata.language`` unless one
language is stated. Synthetic WARC and jsonl here; the real Common Crawl / Dolma WARCs from
``../shared`` too when present.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from nordpipe.datasheet import LANGUAGE_SAMPLE, parse_front_matter
from nordpipe.documents import iter_document_lines

ENGLISH = ("The weather in London was grey again this morning, and the forecast promises more rain for the "
           "weekend. Commuters crowded the buses while the river rose slowly under the bridges. Story {i}.")
DANISH = ("Vejret i København var gråt igen i morges, og prognosen lover mere regn i weekenden. Pendlerne "
          "stimlede sammen i busserne, mens åen steg langsomt under broerne. Historie {i}.")
SWEDISH = ("Vädret i Stockholm var grått igen i morse, och prognosen lovar mer regn till helgen. Pendlarna "
           "trängdes på bussarna medan ån steg långsamt under broarna. Berättelse {i}.")
GERMAN = ("Das Wetter in Berlin war heute Morgen wieder grau, und die Vorhersage verspricht mehr Regen am "
          "Wochenende. Die Pendler drängten sich in den Bussen, während der Fluss langsam stieg. Geschichte {i}.")


def english_warc(path: Path, count: int = 12) -> Path:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for i in range(count):
            body = (f"<html><body><article><h1>Weather</h1><p>{ENGLISH.format(i=i)}</p>"
                    f"<p>{ENGLISH.format(i=i + 100)}</p></article></body></html>")
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                f"https://news.example.co.uk/{i}", "response", payload=io.BytesIO(body.encode()), http_headers=http,
                warc_headers_dict={"WARC-Date": "2023-05-01T12:00:00Z"}))
    return path


def jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    return path


def datasheet(dataset: Path) -> tuple[dict, str]:
    text = (dataset / "README.md").read_text(encoding="utf-8")
    return parse_front_matter(text), text


def records(dataset: Path) -> list[dict]:
    return [item.record for f in sorted((dataset / "documents").glob("*.jsonl.gz")) for item in iter_document_lines(str(f))]


def test_english_warc_without_language_is_english(tmp_path: Path, nordpipe_cli) -> None:
    raw = english_warc(tmp_path / "raw" / "crawl.warc.gz")
    nordpipe_cli("ingest", raw, "--dataset", "crawl", "--output", tmp_path / "out", check=True)
    matter, text = datasheet(tmp_path / "out" / "crawl")
    assert matter["language"] == ["en"]
    assert "| languages | en (identified by lingua in a sample of 12 records: en 100%) |" in text
    found = records(tmp_path / "out" / "crawl")
    assert len(found) == 12 and all("language" not in r["metadata"] for r in found)
    stats = json.loads((tmp_path / "out" / "crawl" / ".nordpipe" / "stats.json").read_text())
    assert stats["language_sample"] == {"en": 12}
    assert nordpipe_cli("validate", tmp_path / "out" / "crawl").returncode == 0

    # stated: the statement wins, no identification, and one stated language reaches the records
    nordpipe_cli("ingest", raw, "--dataset", "crawl", "--output", tmp_path / "stated", "--language", "da", check=True)
    matter, text = datasheet(tmp_path / "stated" / "crawl")
    assert matter["language"] == ["da"] and "| languages | da (stated) |" in text
    assert all(r["metadata"]["language"] == "da" for r in records(tmp_path / "stated" / "crawl"))
    assert "language_sample" not in json.loads((tmp_path / "stated" / "crawl" / ".nordpipe" / "stats.json").read_text())


def test_mixed_and_foreign_languages_are_listed_by_share(tmp_path: Path, nordpipe_cli) -> None:
    texts = ([DANISH.format(i=i) for i in range(10)] + [SWEDISH.format(i=i) for i in range(6)]
             + [GERMAN.format(i=i) for i in range(3)])
    raw = jsonl(tmp_path / "raw" / "mixed.jsonl", texts)
    nordpipe_cli("ingest", raw, "--dataset", "mixed", "--output", tmp_path / "out", "--text-field", "text",
                 "--created", "2024", check=True)
    matter, _ = datasheet(tmp_path / "out" / "mixed")
    # German is named German (not the nearest Nordic language), most frequent first
    assert matter["language"] == ["da", "sv", "de"]
    stats = json.loads((tmp_path / "out" / "mixed" / ".nordpipe" / "stats.json").read_text())
    assert stats["language_sample"] == {"da": 10, "sv": 6, "de": 3}


FAROESE = ("Hetta er ein føroysk tekstur um veðrið í Tórshavn í dag. Tað regnar nógv, og vindurin er harður við "
           "strondina. Veðurfrøðingarnir vænta meiri sól um vikuskiftið, men tað verður kalt um náttina. Søga {i}.")


def test_faroese_gets_its_second_opinion(tmp_path: Path, nordpipe_cli) -> None:
    raw = jsonl(tmp_path / "raw" / "fo.jsonl", [FAROESE.format(i=i) for i in range(5)])
    nordpipe_cli("ingest", raw, "--dataset", "fo", "--output", tmp_path / "out", "--text-field", "text",
                 "--created", "2024", check=True)
    assert datasheet(tmp_path / "out" / "fo")[0]["language"] == ["fo"]


def test_no_identifiable_text_is_unknown(tmp_path: Path, nordpipe_cli) -> None:
    raw = jsonl(tmp_path / "raw" / "numbers.jsonl", ["12 34 56 -- 78", "2024-01-01 12:00", "+45 12 34 56 78"])
    nordpipe_cli("ingest", raw, "--dataset", "numbers", "--output", tmp_path / "out", "--text-field", "text",
                 "--created", "2024", check=True)
    matter, text = datasheet(tmp_path / "out" / "numbers")
    assert matter["language"] == []
    assert "| languages | unknown (identified by lingua in a sample of 3 records: unknown 100%) |" in text
    assert nordpipe_cli("validate", tmp_path / "out" / "numbers").returncode == 0


def test_the_sample_is_bounded(tmp_path: Path, nordpipe_cli) -> None:
    raw = jsonl(tmp_path / "raw" / "many.jsonl", [DANISH.format(i=i) for i in range(LANGUAGE_SAMPLE + 50)])
    nordpipe_cli("ingest", raw, "--dataset", "many", "--output", tmp_path / "out", "--text-field", "text",
                 "--created", "2024", check=True)
    stats = json.loads((tmp_path / "out" / "many" / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_out"] == LANGUAGE_SAMPLE + 50
    assert stats["language_sample"] == {"da": LANGUAGE_SAMPLE}


def test_real_warcs_are_not_called_danish(tmp_path: Path, nordpipe_cli, shared: Path) -> None:
    for name in ("cc-whirlwind.warc.gz", "dolma-sample-0000.warc.gz", "warcio-example.warc.gz"):
        out = tmp_path / name.replace(".", "_")
        nordpipe_cli("ingest", shared / "data" / "warc" / name, "--dataset", "crawl", "--output", out, check=True)
        matter, _ = datasheet(out / "crawl")
        assert "da" not in matter["language"], (name, matter["language"])
        assert all("language" not in r["metadata"] for r in records(out / "crawl"))
