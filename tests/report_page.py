"""Helpers for the report tests: render a report in headless Chromium, read the rendered DOM,
and count what stage outputs hold straight from their files (never from their stats)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """Debian's chromium, or skip (outside CI) / fail (in CI, where make test installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("CI must run the report tests: install Debian's chromium (make test does as root)")
        pytest.skip("chromium is not installed")
    return found


def dump_dom(html_path: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    """The DOM after the page's scripts ran (``--dump-dom``), with the browser's console on stderr."""
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120)


@dataclass
class ReportPage:
    """What a rendered report shows: stage rows (in page order) with their raw values."""

    body: dict[str, str] = field(default_factory=dict)
    stages: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    datasets: dict[str, dict[str, str]] = field(default_factory=dict)
    exports: list[str] = field(default_factory=list)
    run: dict[str, str] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    not_in_chain: list[str] = field(default_factory=list)
    chart_labels: dict[str, list[str]] = field(default_factory=dict)
    """The label texts drawn in each chart."""
    charts: dict[str, dict[str, float]] = field(default_factory=dict)
    """Each chart's bars: label -> value."""

    def stage(self, name: str) -> dict[str, str]:
        return next(values for stage, values in self.stages if stage == name)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = ReportPage()
        self._row: dict[str, str] | None = None
        self._table: str | None = None
        self._reason: str | None = None
        self._chart: str | None = None
        self._text: list[str] | None = None
        self._text_kind = ""
        self._run_key: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.page.body = a
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "tr" and self._table == "stages" and "data-stage" in a:
            self._row = {}
            self.page.stages.append((a["data-stage"], self._row))
        elif tag == "tr" and self._table == "datasets" and "data-dataset" in a:
            self._row = self.page.datasets.setdefault(a["data-dataset"], {})
        elif tag == "tr" and self._table == "exports" and "data-export" in a:
            self.page.exports.append(a["data-export"])
        elif tag == "td" and self._row is not None and "data-key" in a:
            self._row[a["data-key"]] = a.get("data-value", "")
        elif tag == "span" and "data-key" in a:
            self._run_key, self._text, self._text_kind = a["data-key"], [], "run"
        elif tag == "section" and "data-reason" in a:
            self._reason = a["data-reason"]
            self.page.examples[self._reason] = []
        elif tag == "q" and self._reason is not None:
            self._text, self._text_kind = [], "example"
        elif tag == "li" and "data-folder" in a:
            self.page.not_in_chain.append(a["data-folder"])
        elif tag == "figure" and "data-chart" in a:
            self._chart = a["data-chart"]
            self.page.chart_labels[self._chart] = []
        elif tag == "rect" and self._chart is not None and "data-label" in a:
            self.page.charts.setdefault(self._chart, {})[a["data-label"]] = float(a["data-value"])
        elif tag == "text" and self._chart is not None and "label" in a.get("class", "").split():
            self._text, self._text_kind = [], "label"

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag == "section":
            self._reason = None
        elif tag == "figure":
            self._chart = None
        elif tag in ("q", "text", "span") and self._text is not None:
            text = "".join(self._text)
            if self._text_kind == "example" and self._reason is not None:
                self.page.examples[self._reason].append(text)
            elif self._text_kind == "label" and self._chart is not None:
                self.page.chart_labels[self._chart].append(text)
            elif self._text_kind == "run" and self._run_key is not None:
                self.page.run[self._run_key] = text
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def parse_report(dom: str) -> ReportPage:
    parser = _Parser()
    parser.feed(dom)
    return parser.page


def read_records(folder: Path, sub: str = "documents") -> list[dict[str, Any]]:
    """Every record in ``folder/sub/*.jsonl.gz``, or over ``folder/*/sub/`` (a root of datasets)."""
    files = sorted((folder / sub).glob("*.jsonl.gz")) if (folder / sub).is_dir() else sorted(folder.glob(f"*/{sub}/*.jsonl.gz"))
    records = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records += [json.loads(line) for line in handle if line.strip()]
    for record in records:  # metadata is a JSON string on disk (README, "The standardized format")
        if isinstance(record.get("metadata"), str):
            record["metadata"] = json.loads(record["metadata"])
    return records


def line_dedup_removals(folder: Path) -> tuple[int, int]:
    """(lines, characters) line dedup removed, summed from its documents' own metadata."""
    lines = chars = 0
    for record in read_records(folder) + read_records(folder, "removed"):
        meta = (record.get("metadata") or {}).get("nordpipe", {}).get("line_dedup") or {}
        lines += meta.get("lines_removed", 0)
        chars += meta.get("characters_removed", 0)
    return lines, chars
