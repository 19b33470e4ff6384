"""`nordpipe report` over a chain run stage by stage by hand, into folder names whose sorted order
is not the chain's: the chain is followed through the stage outputs' records, unrelated stage
outputs beside it are listed apart (or, when two chains are equally long, refused), exports
are reported apart from the corpus, and removed examples are shown with personal data replaced.

Every figure checked here is counted from the stage outputs' files, not read from their stats.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import nordpipe_executable
from report_page import dump_dom, line_dedup_removals, parse_report, read_records

from nordpipe.report import EXAMPLE_CHARS

pytestmark = pytest.mark.slow

CHAIN = ["ingest", "urls", "quality", "lines", "minhash", "pii"]
PLANTED_EMAIL = "jens.hansen@firma.dk"
PLANTED_PHONE = "+45 20 12 34 56"
LONG_SUBDOMAIN = "konkurrencer-og-gevinster-hver-eneste-dag"


@pytest.fixture(scope="module")
def hand_chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ingest -> urls -> quality -> lines -> minhash -> pii, by hand, into work/{zz,a,m,b,c0,0-final},
    plus an export of the final documents."""
    base = tmp_path_factory.mktemp("hand")
    work = base / "work"
    sample = base / "sample"

    def run(*args: Any) -> None:
        result = subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"nordpipe {' '.join(map(str, args))}\n{result.stdout}\n{result.stderr}"

    run("sample", sample, "--scale", "0.1")
    blocked = next(line for line in (sample / "blocklist.txt").read_text().splitlines() if line and not line.startswith("#"))
    planted = base / "planted.jsonl"
    filler = " ".join(["Kommunen har i år brugt flere penge på veje og skoler end planlagt, oplyser borgmesteren."] * 12)
    planted.write_text(json.dumps({
        "id": "planted-1", "url": f"https://{LONG_SUBDOMAIN}.{blocked}/kontakt",
        "text": f"Skriv til {PLANTED_EMAIL} eller ring på {PLANTED_PHONE} for at vinde. {filler}",
    }) + "\n")
    folders = {name: work / folder for name, folder in
               zip(CHAIN, ["zz", "a", "m", "b", "c0", "0-final"], strict=True)}
    run("ingest", sample / "raw" / "nyheder", "--config", sample / "datasets" / "nyheder.yaml", "--output", folders["ingest"])
    run("ingest", planted, "--dataset", "planted", "--output", folders["ingest"], "--text-field", "text",
        "--url-field", "url", "--language", "da", "--license", "cc0-1.0", "--created", "2024")
    run("filter", "urls", folders["ingest"], folders["urls"], "--blocklist", sample / "blocklist.txt", "--keep-removed")
    run("filter", "quality", folders["urls"], folders["quality"], "--languages", "da,nb,nn,sv,en", "--keep-removed")
    run("dedup", "lines", folders["quality"], folders["lines"], "--state", base / "state" / "lines", "--keep-removed")
    run("dedup", "docs", folders["lines"], folders["minhash"], "--index", base / "state" / "minhash", "--keep-removed")
    run("pii", folders["minhash"], folders["pii"], "--mode", "tag")
    run("export", "sentences", folders["pii"], work / "aa-sentences")
    return {"work": work, "base": base, **folders}


def _plain(result: Any) -> list[tuple[str, str, str]]:
    lines = result.stdout.splitlines()
    assert lines and all(line.count("\t") == 2 for line in lines), lines
    return [tuple(line.split("\t")) for line in lines]  # type: ignore[misc]


def _values(triples: list[tuple[str, str, str]]) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {}
    for stage, key, value in triples:
        found.setdefault(stage, {}).setdefault(key, []).append(value)
    return found


def _check_chain_figures(rows: dict[str, dict[str, str]], folders: dict[str, Path]) -> None:
    """documents in/out of each stage against the records in the folders (a stage's input is
    what the stage before it wrote), and line dedup's removed lines against its documents."""
    previous = None
    for name in CHAIN:
        assert int(rows[name]["documents_out"]) == len(read_records(folders[name])), name
        if previous:
            assert int(rows[name]["documents_in"]) == len(read_records(folders[previous])), name
        previous = name
    lines, chars = line_dedup_removals(folders["lines"])
    assert lines > 0 and int(rows["lines"]["lines_removed"]) == lines
    assert int(rows["lines"]["characters_removed" if "characters_removed" in rows["lines"] else "line_characters_removed"]) == chars


def test_hand_run_chain_plain_summary(hand_chain: dict[str, Path], nordpipe_cli: Any) -> None:
    result = nordpipe_cli("report", hand_chain["work"], "--html", hand_chain["base"] / "r.html")
    assert result.returncode == 0, result.stderr
    triples = _plain(result)
    stages = list(dict.fromkeys(stage for stage, _, _ in triples if stage != "report"))
    assert stages == [*CHAIN, "export sentences"]
    values = _values(triples)
    assert values["report"]["chain"] == [" -> ".join(CHAIN)]
    assert "not_in_chain" not in values["report"]
    _check_chain_figures({name: {k: v[0] for k, v in values[name].items()} for name in CHAIN}, hand_chain)
    # numbers are plain digits, one value per line
    for stage, key, value in triples:
        if key in ("documents_in", "documents_out", "lines_removed", "characters_out"):
            assert value.isdigit(), (stage, key, value)
    # run records: dates, version, parameters
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", values["quality"]["finished"][0])
    assert json.loads(values["quality"]["param:languages"][0]) == ["da", "nb", "nn", "sv", "en"]
    # exports are counted apart: sentence removals are not corpus removals
    corpus_reasons = {key for stage in CHAIN for key in values[stage] if key.startswith("removed:")}
    assert not any("sentence" in key for key in corpus_reasons)
    assert int(values["export sentences"]["documents_in"][0]) == len(read_records(hand_chain["pii"]))
    # --json gives the same figures
    data = json.loads(nordpipe_cli("report", hand_chain["work"], "--json", "--html", hand_chain["base"] / "r.html").stdout)
    assert [row["stage"] for row in data["stages"]] == CHAIN
    assert [row["stage"] for row in data["exports"]] == ["export sentences"]
    assert not any(reason.startswith("sentence") for reason in data["removals"])


def test_hand_run_chain_in_chromium(hand_chain: dict[str, Path], nordpipe_cli: Any, tmp_path: Path) -> None:
    html_path = tmp_path / "report.html"
    nordpipe_cli("report", hand_chain["work"], "--html", html_path, check=True)
    text = html_path.read_text()
    assert "<script src" not in text and "http://" not in text.split("<body>")[0] and "<link" not in text
    dom = dump_dom(html_path, tmp_path / "profile")
    page = parse_report(dom.stdout)
    assert page.body["data-labels-clipped"] == "0" and int(page.body["data-charts-rendered"]) >= 5
    assert not [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert [name for name, _ in page.stages] == CHAIN
    _check_chain_figures(dict(page.stages), hand_chain)
    for name, row in page.stages:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row["finished"]) and row["nordpipe_version"], name
    assert page.exports == ["export sentences"]
    assert sorted(page.datasets) == ["nyheder", "planted"]
    assert int(page.datasets["planted"]["documents"]) == 1 and int(page.datasets["planted"]["final_documents"]) == 0
    # The planted document was removed for its blocked URL: shown, with its personal data replaced.
    url_reasons = {r["metadata"]["nordpipe"]["removed"] for r in read_records(hand_chain["urls"], "removed")}
    shown = [t for reason in url_reasons for t in page.examples.get(reason, [])]
    planted = [t for t in shown if "for at vinde" in t]
    assert planted, page.examples
    assert "<EMAIL>" in planted[0] and "<PHONE>" in planted[0]
    assert PLANTED_EMAIL not in dom.stdout and "20 12 34 56" not in dom.stdout
    assert all(len(t) <= EXAMPLE_CHARS + 2 for texts in page.examples.values() for t in texts)
    # A long label (the planted document's host name) is drawn whole, inside the page.
    host = next(label for label in page.chart_labels["domains"] if label.startswith(LONG_SUBDOMAIN))
    assert len(host) > 60 and page.charts["domains"][host] == 1


def test_unrelated_outputs_are_listed_apart(hand_chain: dict[str, Path], nordpipe_cli: Any, tmp_path: Path) -> None:
    """A branch (quality run again on the urls output) and another corpus's ingest beside the
    chain: the report is the same chain, and names both folders as not part of it."""
    work = tmp_path / "work"
    shutil.copytree(hand_chain["work"], work, symlinks=True)
    nordpipe_cli("filter", "quality", work / "a", work / "exp-strict", "--languages", "da", check=True)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "o1", "text": "Et helt andet korpus med sin egen tekst."}) + "\n")
    nordpipe_cli("ingest", other, "--dataset", "andet", "--output", work / "b-other", "--text-field", "text", "--created", "2024",
                 "--language", "da", "--license", "cc0-1.0", check=True)
    result = nordpipe_cli("report", work, "--html", tmp_path / "r.html")
    assert result.returncode == 0, result.stderr
    values = _values(_plain(result))
    assert values["report"]["chain"] == [" -> ".join(CHAIN)]
    apart = values["report"]["not_in_chain"]
    assert len(apart) == 2
    assert any(str(work / "exp-strict") in line for line in apart) and any(str(work / "b-other" / "andet") in line for line in apart)
    folders = {name: work / Path(hand_chain[name]).name for name in CHAIN}
    folders["ingest"] = work / "zz"
    _check_chain_figures({name: {k: v[0] for k, v in values[name].items()} for name in CHAIN}, folders)
    assert values["quality"]["folder"] == [str(work / "m")]


def test_two_chains_of_one_length_are_refused(tmp_path: Path, nordpipe_cli: Any) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Dokument nummer {i} handler om noget."}) + "\n" for i in range(3)))
    root = tmp_path / "root"
    nordpipe_cli("ingest", raw, "--dataset", "d", "--output", root / "in", "--text-field", "text", "--created", "2024", "--language", "da",
                 "--license", "cc0-1.0", check=True)
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("blocked.example\n")
    nordpipe_cli("filter", "urls", root / "in", root / "x", "--blocklist", blocklist, check=True)
    nordpipe_cli("filter", "urls", root / "in", root / "y", "--blocklist", blocklist, check=True)
    result = nordpipe_cli("report", root)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "mixes 2 chains" in message and str(root / "x") in message and str(root / "y") in message
    assert not (root / "report.html").exists()
    # made explicit: the final stage output of one chain
    result = nordpipe_cli("report", root / "x", "--html", tmp_path / "x.html")
    assert result.returncode == 0, result.stderr
    values = _values(_plain(result))
    assert values["report"]["chain"] == ["ingest -> urls"] and values["urls"]["documents_out"] == ["3"]
    # nothing to report
    (tmp_path / "empty").mkdir()
    result = nordpipe_cli("report", tmp_path / "empty")
    assert result.returncode == 1 and "no nordpipe stage output" in result.stderr
