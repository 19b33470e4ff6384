"""``nordpipe report``: what every stage of one chain did, as a summary and a self-contained HTML page.

Which folders form the chain. A report covers one *chain*: ingest, then each stage that read the
one before it. The chain is followed, never guessed from folder names: every stage output's
completion record (``.nordpipe/complete.json``, ``upstream``) names the completed outputs its
INPUT consisted of (outputs written before that field existed are linked by the INPUT path in
their run record, ``run.json``). From the stage outputs found below ROOT, the report takes the
*final* ones (outputs no other output read) and follows each back to ingest:

- ROOT is itself a stage output: the chain ending there (its upstream may lie outside ROOT);
- a pipeline root (``nordpipe run``): every ``batches/NNNN/`` chain, merged stage by stage;
- any other folder (stages run by hand into arbitrary folder names): the longest chain. Stage
  outputs that are not part of it (an experiment on the side, another corpus, an unfinished run)
  are listed apart, never added in; two different chains of the same length are refused
  (``ReportError``, exit 1) with the folders to give instead.

Rows are in the stage registry's order (``nordpipe.stages.STAGES``), whatever the folder names.
Exports (``export sentences``, ``export pairs``) that read the chain's output are reported in a
table of their own: their removals are sentences or pairs, not corpus documents.

Figures come from the stages' own ``stats.json`` (line dedup's removed lines and characters from
its ``line_dedup`` block), the run and completion records (parameters, start and finish times,
the nordpipe version), the token manifest, the removed documents (``removed/``, when stages ran
with ``--keep-removed``: top domains and a few examples per reason) and a sample of the final
documents (the last stage that writes documents) for the length distribution. Example texts are
shown as the PII stage would write them in ``tag`` mode (``<NAME>``, ``<EMAIL>``...): the report
is a file people pass around, and removed documents were never redacted. The redaction runs on
the first ``EXAMPLE_SCAN_CHARS`` characters (cut at a space) and only then is the text cut to
``EXAMPLE_CHARS``, so a number or address is never split before the scanner sees it. The
examples' ids and every string of the stages' parameters (ingest's names its raw files) go
through the same redaction (``_Redactor.glued``): a raw file named after a person must not
reappear in the report of a chain whose PII stage renamed it.

The HTML draws its charts as inline SVG; its only script is an inline self-check (charts drawn,
labels inside the page) that the tests read in a headless browser. Nothing is fetched.

The plain (non-terminal) summary is ``stage<TAB>key<TAB>value`` lines, one value per line,
numbers without separators; lines about the report as a whole use the stage name ``report``.
"""

from __future__ import annotations

import datetime
import html
import itertools
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

from nordpipe.documents import iter_document_lines
from nordpipe.layout import DOCUMENTS, REMOVED, STATE_DIR, OutputLayout, list_document_files
from nordpipe.stages import STAGES

LENGTH_SAMPLE = 50_000
LENGTH_BUCKETS = [0, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 10**12]
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 240
EXAMPLE_SCAN_CHARS = 4_000
DISCOVER_DEPTH = 5
"""How deep below ROOT stage outputs are looked for (a pipeline's are at ``batches/NNNN/ingest/NAME``)."""
PLAIN_VALUE_CHARS = 300
"""Longest value in a plain summary line (ingest's parameters list every raw file)."""
SKIP_FOLDERS = {DOCUMENTS, REMOVED, "quarantine", "shards", "data", "jsonl", "ir"}


class ReportError(ValueError):
    """ROOT holds no chain to report, or several that cannot be told apart (exit 1)."""


# --------------------------------------------------------------------------------------------
# Finding the chain


@dataclass
class Output:
    """One stage output folder and its records."""

    path: str
    stage: str
    run: dict[str, Any]
    completion: dict[str, Any] | None
    stats: dict[str, Any] | None
    upstream: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.completion is not None and self.stats is not None

    @property
    def is_export(self) -> bool:
        return self.stage in STAGES and not STAGES[self.stage].in_pipelines and self.stage != "ingest"


def _load(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _read_output(path: str) -> Output | None:
    layout = OutputLayout.of(path)
    run = _load(layout.run_record)
    if not isinstance(run, dict) or not run.get("stage"):
        return None
    return Output(os.path.abspath(path), str(run["stage"]), run, layout.completed(), _load(layout.stats))


def _discover(root: str) -> list[Output]:
    """Stage outputs at or below ROOT (not inside another output)."""
    found: list[Output] = []
    root = os.path.abspath(root)
    for folder, subfolders, _files in os.walk(root):
        output = _read_output(folder) if os.path.isdir(os.path.join(folder, STATE_DIR)) else None
        if output is not None:
            found.append(output)
            subfolders.clear()
            continue
        depth = 0 if folder == root else folder[len(root) + 1:].count(os.sep) + 1
        subfolders[:] = sorted(s for s in subfolders
                               if not s.startswith(".") and s not in SKIP_FOLDERS and depth < DISCOVER_DEPTH)
    return found


def _upstream_paths(output: Output, found_ids: dict[str, str]) -> list[str]:
    """The outputs this output read: from its completion record, else from its INPUT path.

    ``found_ids`` maps completion ids to the folders found below ROOT: a recorded upstream is
    looked up by id first, so a chain copied or moved elsewhere links within its copy."""
    if output.stage == "ingest":
        return []
    recorded = (output.completion or {}).get("upstream")
    if isinstance(recorded, list):
        paths = [found_ids.get(str(item.get("id")), os.path.abspath(item["path"]))
                 for item in recorded if isinstance(item, dict) and item.get("path")]
        if paths:
            return paths
    from nordpipe.layout import upstream_outputs

    given = output.run.get("input")
    if not isinstance(given, str) or "://" in given or not os.path.exists(given):
        return []
    return [item["path"] for item in upstream_outputs(given)]


@dataclass
class Chain:
    """A final output and every output it was made from, level by level (ingest first)."""

    levels: list[list[Output]]
    exports: list[Output] = field(default_factory=list)

    @property
    def final(self) -> Output:
        return self.levels[-1][0]

    @property
    def outputs(self) -> list[Output]:
        return [o for level in self.levels for o in level]

    @property
    def stages(self) -> list[str]:
        return [level[0].stage for level in self.levels]


def _follow(final: Output, known: dict[str, Output], ids: dict[str, str]) -> Chain:
    levels = [[final]]
    seen = {final.path}
    while True:
        upstream: list[Output] = []
        for output in levels[0]:
            for path in _upstream_paths(output, ids):
                if path in seen:
                    continue
                item = known.get(path) or _read_output(path)
                if item is None:
                    continue
                known.setdefault(path, item)
                upstream.append(item)
                seen.add(path)
        if not upstream:
            return Chain(levels)
        levels.insert(0, sorted(upstream, key=lambda o: o.path))


def _longest(scope: str, chains: list[Chain]) -> Chain:
    """The longest of the chains found in one folder (a root, a pipeline's batch); ingest outputs
    alone (a root of datasets) are one chain; two different chains of one length are refused."""
    longest = max(len(c.levels) for c in chains)
    chosen = [c for c in chains if len(c.levels) == longest]
    if longest == 1 and all(c.stages == ["ingest"] for c in chosen):
        return Chain([[c.final for c in chosen]])
    if len(chosen) > 1:
        raise ReportError(
            f"{scope} mixes {len(chosen)} chains of {longest} stages ending in "
            + ", ".join(f"{c.final.path} ({' -> '.join(c.stages)})" for c in chosen)
            + ": report one of them, e.g. `nordpipe report " + chosen[0].final.path + "`"
        )
    return chosen[0]


@dataclass
class Selection:
    """The chains a report covers and the stage outputs below ROOT it leaves out."""

    chains: list[Chain]
    others: list[tuple[Output, str]]


def select(root: str) -> Selection:
    """The chain(s) below ROOT and the outputs that are not part of them (see the module docstring)."""
    if not os.path.isdir(root):
        raise ReportError(f"{root} does not exist or is not a folder")
    root = os.path.abspath(root)
    found = _discover(root)
    known = {o.path: o for o in found}
    ids = {str(o.completion["id"]): o.path for o in found if o.completion and o.completion.get("id")}
    if not found:
        raise ReportError(f"{root} holds no nordpipe stage output (no .nordpipe/run.json below it): "
                          "give a pipeline root, a folder of stage outputs or a stage output")
    complete = [o for o in found if o.complete]
    read = {path for o in complete if not o.is_export for path in _upstream_paths(o, ids)}
    finals = [o for o in complete if not o.is_export and o.path not in read]
    if not finals:
        raise ReportError(f"{root} holds no completed stage output (unfinished runs: "
                          f"{', '.join(o.path for o in found)}; `nordpipe status FOLDER`)")
    chains = [_follow(o, known, ids) for o in sorted(finals, key=lambda o: o.path)]
    if root in known and known[root].complete:
        chosen = [c for c in chains if c.final.path == root]
    else:
        # a pipeline root: one chain per batch; any other folder: one chain
        batches = os.path.join(root, "batches") + os.sep
        scopes: dict[str, list[Chain]] = {}
        for chain in chains:
            inside = chain.final.path[len(batches):].split(os.sep, 1)[0] if chain.final.path.startswith(batches) else None
            scopes.setdefault(batches + inside if inside else root, []).append(chain)
        if any(scope != root for scope in scopes):
            scopes.pop(root, None)  # stage outputs beside a pipeline's batches are not the pipeline's
        chosen = [_longest(scope, candidates) for scope, candidates in sorted(scopes.items())]
    members = {o.path for c in chosen for o in c.outputs}
    for chain in chosen:
        mine = {o.path for o in chain.outputs}
        chain.exports = [o for o in complete if o.is_export and set(_upstream_paths(o, ids)) & mine]
    members |= {o.path for c in chosen for o in c.exports}
    others = []
    for output in found:
        if output.path in members:
            continue
        if not output.complete:
            why = "unfinished run"
        else:
            reads = _upstream_paths(output, ids)
            why = f"reads {', '.join(reads)}" if reads else "not read by the chain"
            why = "not part of the chain: " + why
        others.append((output, why))
    return Selection(chosen, others)


# --------------------------------------------------------------------------------------------
# Figures


def _tokens(folder: str) -> int | None:
    for path in (os.path.join(folder, "manifest.json"), OutputLayout.of(folder).state_path("manifest.json")):
        manifest = _load(path)
        if isinstance(manifest, dict):
            for key in ("total_tokens", "tokens"):
                if isinstance(manifest.get(key), int):
                    return manifest[key]
            shards = manifest.get("shards") or []
            total = sum(int(s.get("tokens", 0)) for s in shards if isinstance(s, dict))
            if total:
                return total
    return None


def _stage_order(name: str) -> int:
    names = list(STAGES)
    return names.index(name) if name in names else len(names)


class _Redactor:
    """Removed-document snippets as the PII stage's ``tag`` mode would write them."""

    def __init__(self) -> None:
        from nordpipe.pii.engine import PiiScanner
        from nordpipe.pii.replace import Replacer

        self.scanner = PiiScanner()
        self.replacer = Replacer(default_mode="tag")

    def glued(self, value: str) -> str:
        """An id, file name or path as the PII stage writes it in ``tag`` mode (pieces glued
        with ``_``, ``/``, ``-`` scanned like ``pii.fields.scan_glued``)."""
        from nordpipe.pii.fields import scan_glued

        spans = scan_glued(lambda v: self.scanner.scan(v, None), value)
        return self.replacer.replace(value, spans)[0] if spans else value

    def value(self, value: Any) -> Any:
        """Every string in a (nested) parameter value through ``glued``: run records name raw
        files, whose names can hold personal data."""
        if isinstance(value, str):
            return self.glued(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def snippet(self, text: str, language: str | None) -> str:
        window = text[:EXAMPLE_SCAN_CHARS]
        if len(text) > EXAMPLE_SCAN_CHARS and " " in window:
            window = window.rsplit(" ", 1)[0]  # never cut a number or an address in two
        spans = self.scanner.scan(window, language)
        redacted, _ = self.replacer.replace(window, spans)
        redacted = " ".join(redacted.split())
        if len(redacted) > EXAMPLE_CHARS or len(window) < len(text):
            redacted = redacted[:EXAMPLE_CHARS].rsplit(" ", 1)[0] + " …"
        return redacted


def _removed_records(folders: list[str]) -> Any:
    for folder in folders:
        removed = os.path.join(folder, REMOVED)
        if not os.path.isdir(removed):
            continue
        for path in list_document_files(removed):
            for item in iter_document_lines(path):
                if isinstance(item.record, dict):
                    yield item.record


def _started(completion: dict[str, Any], stats: dict[str, Any]) -> str | None:
    """When the run started: its completion record's ``started``, or (records written before
    that field) its finish time less its duration."""
    if completion.get("started"):
        return str(completion["started"])
    try:
        finished = datetime.datetime.fromisoformat(str(completion["finished"]))
        return (finished - datetime.timedelta(seconds=float(stats.get("seconds") or 0))).strftime("%Y-%m-%dT%H:%M:%S")
    except (KeyError, ValueError):
        return None


def _parameters(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A stage's parameters; where batches ran with different values, every value seen."""
    merged: dict[str, Any] = {}
    for run in runs:
        for key, value in sorted((run.get("parameters") or {}).items()):
            merged.setdefault(key, [])
            if value not in merged[key]:
                merged[key].append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in merged.items()}


def _row(name: str, outputs: list[Output], redactor: Any, removed_domains: Counter[str],
         examples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    stats = [o.stats or {} for o in outputs]
    completions = [o.completion or {} for o in outputs]

    def total(key: str) -> int:
        return sum(int(s.get(key) or 0) for s in stats)

    removed: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for s in stats:
        removed.update({k: v for k, v in (s.get("removed") or {}).items() if not k.startswith("quarantine:")})
        quarantined.update(s.get("quarantined") or {})
        languages.update(s.get("languages_out") or {})
        sources.update(s.get("sources_out") or {})
        block = s.get("line_dedup")
        if isinstance(block, dict):
            for key in ("lines", "lines_checked", "lines_removed", "characters_removed", "documents_changed", "documents_emptied"):
                lines[key] += int(block.get(key) or 0)
    tokens = [t for t in (_tokens(o.path) for o in outputs) if t is not None]
    started = sorted(filter(None, (_started(c, s) for c, s in zip(completions, stats, strict=True))))
    finished = sorted(c["finished"] for c in completions if c.get("finished"))
    versions = sorted({str(c.get("nordpipe_version") or "unknown") for c in completions})
    row: dict[str, Any] = {
        "stage": name,
        "folders": [o.path for o in outputs],
        "documents_in": total("documents_in"),
        "documents_out": total("documents_out"),
        "removed": sum(removed.values()),
        "quarantined": sum(quarantined.values()),
        "characters_in": total("characters_in"),
        "characters_out": total("characters_out"),
        "tokens": sum(tokens) if tokens else None,
        "seconds": round(sum(float(s.get("seconds") or 0) for s in stats), 2),
        "started": started[0] if started else None,
        "finished": finished[-1] if finished else None,
        "nordpipe_version": ", ".join(versions),
        "parameters": redactor().value(_parameters([o.run for o in outputs])),
        "removed_by_reason": dict(removed.most_common()),
        "quarantined_by_reason": dict(quarantined.most_common()),
        "languages_out": dict(languages.most_common()),
        "sources_out": dict(sources.most_common()),
    }
    if lines:
        row["line_dedup"] = dict(lines)
    for record in _removed_records(row["folders"]):
        meta = record.get("metadata") or {}
        url = meta.get("url") if isinstance(meta, dict) else None
        if isinstance(url, str) and url:
            removed_domains[urlsplit(url).hostname or "?"] += 1
        nordpipe_meta = meta.get("nordpipe") if isinstance(meta, dict) else None
        reason = (nordpipe_meta or {}).get("removed") if isinstance(nordpipe_meta, dict) else None
        if not reason or str(reason).startswith("quarantine:"):
            continue
        shown = examples.setdefault(str(reason), [])
        if len(shown) < EXAMPLES_PER_REASON and isinstance(record.get("text"), str):
            language = (nordpipe_meta or {}).get("language")
            shown.append({"stage": name, "id": redactor().glued(str(record.get("id"))), "source": str(record.get("source")),
                          "text": redactor().snippet(record["text"], language if isinstance(language, str) else None)})
    return row


def collect(root: str) -> dict[str, Any]:
    """Gather the report's figures for the chain(s) below ROOT (``ReportError`` if there is none)."""
    selection = select(root)
    by_stage: dict[str, list[Output]] = {}
    for chain in selection.chains:
        occurrences: Counter[str] = Counter()
        for level in chain.levels:
            name = level[0].stage
            occurrences[name] += 1
            key = name if occurrences[name] == 1 else f"{name} #{occurrences[name]}"
            by_stage.setdefault(key, []).extend(level)
    order = sorted(by_stage, key=lambda k: (_stage_order(k.split(" #")[0]), k))
    redactor_box: list[_Redactor] = []

    def redactor() -> _Redactor:
        if not redactor_box:
            redactor_box.append(_Redactor())
        return redactor_box[0]

    removed_domains: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    rows = [_row(name, by_stage[name], redactor, removed_domains, examples) for name in order]
    export_rows = []
    exports: dict[str, list[Output]] = {}
    for chain in selection.chains:
        for output in chain.exports:
            exports.setdefault(output.stage, []).append(output)
    for name in sorted(exports, key=_stage_order):
        row = _row(name, exports[name], redactor, Counter(), {})
        row["extra"] = dict(sum((Counter({k: v for k, v in ((o.stats or {}).get("extra") or {}).items() if isinstance(v, int)})
                                 for o in exports[name]), Counter()))
        export_rows.append(row)
    reasons: Counter[str] = Counter()
    for row in rows:
        reasons.update(row["removed_by_reason"])
    languages: dict[str, int] = {}
    for row in reversed(rows):
        langs = {k: v for k, v in row["languages_out"].items() if k != "unknown"}
        if langs:
            languages = langs
            break
    # Lengths and per-dataset counts of the documents that leave the last stage writing documents.
    writers = [name for name in order if name.split(" #")[0] not in STAGES or DOCUMENTS in STAGES[name.split(" #")[0]].writes]
    final_name = writers[-1] if writers else None
    lengths: Counter[str] = Counter()
    sampled = 0
    for output in by_stage.get(final_name, []) if final_name else []:
        for path in list_document_files(OutputLayout.of(output.path).documents):
            for item in iter_document_lines(path):
                if sampled >= LENGTH_SAMPLE:
                    break
                if isinstance(item.record, dict):
                    lengths[_bucket(len(item.record.get("text") or ""))] += 1
                    sampled += 1
    datasets: dict[str, dict[str, Any]] = {}
    for output in by_stage.get("ingest", []):
        stats = output.stats or {}
        name = str((output.run.get("parameters") or {}).get("dataset") or os.path.basename(output.path))
        entry = datasets.setdefault(name, {"documents": 0, "characters": 0, "quarantined": 0, "final_documents": 0})
        entry["documents"] += int(stats.get("documents_out") or 0)
        entry["characters"] += int(stats.get("characters_out") or 0)
        entry["quarantined"] += int(stats.get("quarantined_total") or 0)
    final_row = next((r for r in rows if r["stage"] == final_name), None)
    for source, count in (final_row or {}).get("sources_out", {}).items():
        datasets.setdefault(source, {"documents": 0, "characters": 0, "quarantined": 0, "final_documents": 0})
        datasets[source]["final_documents"] += int(count)
    pii: Counter[str] = Counter()
    for output in by_stage.get("pii", []):
        for counter, value in ((output.stats or {}).get("steps", {}).get("pii") or {}).items():
            if counter.isupper() and isinstance(value, int | float):
                pii[counter] += int(value)
    started = sorted(r["started"] for r in rows if r["started"])
    finished = sorted(r["finished"] for r in rows if r["finished"])
    return {
        "root": os.path.abspath(root),
        "chains": [{"final": c.final.path, "stages": c.stages} for c in selection.chains],
        "started": started[0] if started else None,
        "finished": finished[-1] if finished else None,
        "nordpipe_versions": sorted({v.strip() for r in rows for v in r["nordpipe_version"].split(",")}),
        "stages": rows,
        "exports": export_rows,
        "not_in_chain": [{"folder": o.path, "stage": o.stage, "why": why} for o, why in selection.others],
        "final_stage": final_name,
        "removals": dict(reasons.most_common()),
        "removed_examples": examples,
        "languages": dict(sorted(languages.items(), key=lambda kv: -kv[1])),
        "lengths": {label: lengths.get(label, 0) for label in _bucket_labels()},
        "length_sample": sampled,
        "pii": dict(pii.most_common()),
        "removed_domains": dict(removed_domains.most_common(15)),
        "datasets": dict(sorted(datasets.items())),
    }


def _bucket_labels() -> list[str]:
    labels = []
    for low, high in itertools.pairwise(LENGTH_BUCKETS):
        labels.append(f"{low:,}+" if high >= 10**12 else f"{low:,}-{high:,}")
    return labels


def _bucket(length: int) -> str:
    labels = _bucket_labels()
    for i, high in enumerate(LENGTH_BUCKETS[1:]):
        if length < high:
            return labels[i]
    return labels[-1]


# --------------------------------------------------------------------------------------------
# Rendering

def _label_px(label: str) -> float:
    """Width budgeted for a label at 12px, generous for common sans-serif fonts (capitals and
    digits are the widest); the page's self-check measures the real widths in the browser."""
    return sum(9.0 if ch.isupper() or ch in "mwMW@%" else 7.0 for ch in label)


def _bar_chart(chart_id: str, title: str, values: dict[str, float], color: str = "#3b6ea5") -> str:
    """A horizontal bar chart as inline SVG; the label column is as wide as the longest label."""
    items = list(values.items())
    if not items:
        return f'<figure class="chart empty" data-chart="{chart_id}"><figcaption>{html.escape(title)}</figcaption><p>No data.</p></figure>'
    bar_h, gap, bar_w, value_w = 22, 6, 420, 90
    label_w = int(max(80, max(_label_px(str(label)) for label, _ in items) + 16))
    width = label_w + bar_w + value_w
    height = len(items) * (bar_h + gap) + 10
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        y = 5 + i * (bar_h + gap)
        w = max(1.0, bar_w * value / top) if value else 0
        rows.append(
            f'<text class="label" x="{label_w - 8}" y="{y + bar_h * 0.7:.0f}" text-anchor="end">{html.escape(str(label))}</text>'
            f'<rect class="bar" data-label="{html.escape(str(label), quote=True)}" data-value="{value}" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"><title>{html.escape(str(label))}: {value:,.0f}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h * 0.7:.0f}">{value:,.0f}</text>'
        )
    return (
        f'<figure class="chart" data-chart="{chart_id}"><figcaption>{html.escape(title)}</figcaption>'
        f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(rows)}</svg></figure>'
    )


def _funnel(stages: list[dict[str, Any]]) -> dict[str, float]:
    return {f"{s['stage']} (documents)": s["documents_out"] for s in stages if s["stage"] != "tokenize"}


def _cell(key: str, value: int | float | None) -> str:
    if value is None:
        return f'<td data-key="{key}" data-value=""></td>'
    shown = f"{value:,}" if isinstance(value, int) else f"{value}"
    return f'<td data-key="{key}" data-value="{value}">{shown}</td>'


def _text_cell(key: str, value: str | None) -> str:
    return f'<td class="text" data-key="{key}" data-value="{html.escape(value or "", quote=True)}">{html.escape(value or "")}</td>'


def _stage_rows(rows: list[dict[str, Any]]) -> str:
    out = []
    for s in rows:
        lines = s.get("line_dedup") or {}
        out.append(
            f'<tr data-stage="{html.escape(s["stage"], quote=True)}"><td>{html.escape(s["stage"])}</td>'
            + _cell("documents_in", s["documents_in"]) + _cell("documents_out", s["documents_out"])
            + _cell("removed", s["removed"]) + _cell("quarantined", s["quarantined"])
            + _cell("characters_out", s["characters_out"])
            + _cell("lines_removed", lines.get("lines_removed") if lines else None)
            + _cell("line_characters_removed", lines.get("characters_removed") if lines else None)
            + _cell("tokens", s["tokens"]) + _cell("seconds", s["seconds"])
            + _text_cell("finished", s["finished"]) + _text_cell("nordpipe_version", s["nordpipe_version"])
            + "</tr>"
        )
    return "".join(out)


def _parameter_blocks(rows: list[dict[str, Any]]) -> str:
    blocks = []
    for s in rows:
        folders = "".join(f"<li><code>{html.escape(f)}</code></li>" for f in s["folders"])
        params = html.escape(json.dumps(s["parameters"], indent=1, ensure_ascii=False, sort_keys=True, default=str))
        blocks.append(
            f'<details data-stage="{html.escape(s["stage"], quote=True)}"><summary>{html.escape(s["stage"])}: '
            f'started {html.escape(s["started"] or "?")}, finished {html.escape(s["finished"] or "?")}, '
            f'nordpipe {html.escape(s["nordpipe_version"])}, {len(s["folders"])} folder(s)</summary>'
            f"<ul>{folders}</ul><pre>{params}</pre></details>"
        )
    return "".join(blocks)


def _reason_tables(rows: list[dict[str, Any]]) -> str:
    out = []
    for s in rows:
        for reason, count in s["removed_by_reason"].items():
            out.append(f'<tr data-stage="{html.escape(s["stage"], quote=True)}"><td>{html.escape(s["stage"])}</td>'
                       f'<td class="text">{html.escape(reason)}</td>{_cell("documents", count)}</tr>')
        lines = s.get("line_dedup")
        if lines:
            out.append(f'<tr data-stage="{html.escape(s["stage"], quote=True)}"><td>{html.escape(s["stage"])}</td>'
                       f'<td class="text">lines removed (documents kept, shortened)</td>{_cell("lines", lines.get("lines_removed", 0))}</tr>')
    return "".join(out)


def _examples(examples: dict[str, list[dict[str, Any]]]) -> str:
    if not examples:
        return "<p>None kept: run the stages with <code>--keep-removed</code> to see examples.</p>"
    out = []
    for reason, items in sorted(examples.items()):
        entries = "".join(
            f'<li><code>{html.escape(item["id"])}</code> ({html.escape(item["source"])}): '
            f'<q class="example">{html.escape(item["text"])}</q></li>'
            for item in items
        )
        out.append(f'<section class="examples" data-reason="{html.escape(reason, quote=True)}">'
                   f"<h3>{html.escape(reason)} <small>({html.escape(items[0]['stage'])})</small></h3><ul>{entries}</ul></section>")
    return "".join(out)


def render_html(data: dict[str, Any], path: str) -> str:
    stages = data["stages"]
    tokens = {s["stage"]: s["tokens"] for s in stages if s.get("tokens")}
    line_rows = {k: v for s in stages for k, v in (("lines removed", (s.get("line_dedup") or {}).get("lines_removed")),
                                                     ("documents shortened", (s.get("line_dedup") or {}).get("documents_changed")))
                 if s.get("line_dedup") and v}
    dataset_rows = "".join(
        f'<tr data-dataset="{html.escape(name, quote=True)}"><td>{html.escape(name)}</td>{_cell("documents", d["documents"])}'
        f'{_cell("characters", d["characters"])}{_cell("quarantined", d["quarantined"])}{_cell("final_documents", d["final_documents"])}</tr>'
        for name, d in data["datasets"].items()
    )
    export_rows = "".join(
        f'<tr data-export="{html.escape(e["stage"], quote=True)}"><td>{html.escape(e["stage"])}</td>'
        + _cell("documents_in", e["documents_in"]) + _cell("documents_out", e["documents_out"])
        + f'<td>{html.escape(", ".join(f"{k}: {v:,}" for k, v in e["removed_by_reason"].items()))}</td>'
        + f'<td>{html.escape(", ".join(f"{k}: {v:,}" for k, v in e.get("extra", {}).items()))}</td>'
        + _text_cell("finished", e["finished"]) + "</tr>"
        for e in data["exports"]
    )
    others = "".join(
        f'<li data-folder="{html.escape(o["folder"], quote=True)}"><code>{html.escape(o["folder"])}</code> '
        f'({html.escape(o["stage"])}): {html.escape(o["why"])}</li>'
        for o in data["not_in_chain"]
    )
    charts = [
        _bar_chart("funnel", "Documents after each stage", _funnel(stages)),
        _bar_chart("tokens", "Tokens written", tokens, "#6a8f3b"),
        _bar_chart("removals", "Documents removed, by reason", data["removals"], "#b5523b"),
        _bar_chart("lines", "Line dedup: lines removed, documents shortened", line_rows, "#b5853b"),
        _bar_chart("languages", "Languages of the final documents", data["languages"], "#7a4fa0"),
        _bar_chart("lengths", f"Final document length in characters ({data['final_stage'] or 'none'} output, "
                   f"{data['length_sample']:,} documents)", data["lengths"], "#3b8f8f"),
        _bar_chart("pii", "Personal data replaced, by type", data["pii"], "#a08a3b"),
        _bar_chart("domains", "Top removed domains", data["removed_domains"], "#8f3b6a"),
    ]
    chain_text = "; ".join(" → ".join(c["stages"]) + f" (final: {c['final']})" for c in data["chains"])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nordpipe report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child,td.text{{text-align:left}}td.text{{white-space:nowrap}}figure{{margin:1.5em 0;overflow-x:auto}}figcaption{{font-weight:600;margin-bottom:.4em}}
svg text{{font-size:12px;fill:#222}}pre{{white-space:pre-wrap;word-break:break-all;font-size:12px}}
q.example{{display:block;font-size:13px;color:#444;margin:.2em 0 .6em}}
</style></head><body>
<h1>nordpipe report</h1>
<p id="root">{html.escape(data['root'])}</p>
<p id="run">Run <span data-key="started">{html.escape(data['started'] or '?')}</span> to
<span data-key="finished">{html.escape(data['finished'] or '?')}</span>, nordpipe
<span data-key="nordpipe_versions">{html.escape(', '.join(data['nordpipe_versions']))}</span>.
Chain: {html.escape(chain_text)}</p>
<h2>Stages</h2>
<table id="stages"><tr><th>stage</th><th>documents in</th><th>documents out</th><th>removed</th><th>quarantined</th><th>characters out</th>
<th>lines removed</th><th>line characters removed</th><th>tokens</th><th>seconds</th><th>finished</th><th>nordpipe</th></tr>{_stage_rows(stages)}</table>
<h2>Removed, by stage and reason</h2>
<table id="reasons"><tr><th>stage</th><th>reason</th><th>count</th></tr>{_reason_tables(stages)}</table>
<h2>Datasets</h2>
<table id="datasets"><tr><th>dataset</th><th>documents ingested</th><th>characters ingested</th><th>quarantined</th><th>documents in the final output</th></tr>{dataset_rows}</table>
<h2>Exports</h2>
{f'<table id="exports"><tr><th>export</th><th>documents in</th><th>documents used</th><th>removed (not documents)</th><th>written</th><th>finished</th></tr>{export_rows}</table>' if export_rows else '<p>No exports read this chain.</p>'}
<h2>Charts</h2>
{''.join(charts)}
<h2>Removed examples</h2>
<p>A few removed documents per reason, personal data replaced as <code>nordpipe pii --mode tag</code> would, cut to {EXAMPLE_CHARS} characters.</p>
{_examples(data['removed_examples'])}
<h2>Parameters</h2>
{_parameter_blocks(stages + data['exports'])}
<h2>Stage outputs below the root that are not part of this chain</h2>
{f'<ul id="not-in-chain">{others}</ul>' if others else '<p id="not-in-chain">None.</p>'}
<script>
// Self-check read by the tests: every chart with data drew bars, and no label runs off the chart.
(function () {{
  var figures = document.querySelectorAll('figure.chart');
  var drawn = 0, broken = [], clipped = [];
  figures.forEach(function (f) {{
    if (f.classList.contains('empty')) return;
    var bars = Array.prototype.filter.call(f.querySelectorAll('rect.bar'), function (r) {{ return r.getBBox().width > 0; }});
    if (bars.length) drawn++; else broken.push(f.dataset.chart);
    f.querySelectorAll('text.label').forEach(function (t) {{ if (t.getBBox().x < 0) clipped.push(t.textContent); }});
  }});
  if (broken.length) console.error('charts without bars: ' + broken.join(','));
  if (clipped.length) console.error('labels cut off: ' + clipped.join(' | '));
  document.title = 'nordpipe report: ' + drawn + ' charts rendered';
  document.body.setAttribute('data-charts-rendered', String(drawn));
  document.body.setAttribute('data-labels-clipped', String(clipped.length));
}})();
</script>
</body></html>
"""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(page)
    os.replace(path + ".tmp", path)
    return path


def _plain(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = " ".join(text.split())  # one line, no tabs
    return text if len(text) <= PLAIN_VALUE_CHARS else text[: PLAIN_VALUE_CHARS - 1] + "…"


def plain_lines(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The summary as (stage, key, value) triples, in chain order."""
    lines: list[tuple[str, str, str]] = [("report", "root", data["root"])]
    for chain in data["chains"]:
        lines += [("report", "chain", " -> ".join(chain["stages"])), ("report", "final", chain["final"])]
    lines += [("report", "started", data["started"] or ""), ("report", "finished", data["finished"] or "")]
    for row in [*data["stages"], *data["exports"]]:
        name = row["stage"]
        for key in ("documents_in", "documents_out", "removed", "quarantined", "characters_in", "characters_out"):
            lines.append((name, key, str(row[key])))
        for key, value in (row.get("line_dedup") or {}).items():
            lines.append((name, key, str(value)))
        if row["tokens"] is not None:
            lines.append((name, "tokens", str(row["tokens"])))
        for reason, count in row["removed_by_reason"].items():
            lines.append((name, f"removed:{reason}", str(count)))
        for reason, count in row["quarantined_by_reason"].items():
            lines.append((name, f"quarantined:{reason}", str(count)))
        for key, value in row.get("extra", {}).items():
            lines.append((name, key.replace(" ", "_"), str(value)))
        lines += [(name, "seconds", str(row["seconds"])), (name, "started", row["started"] or ""),
                  (name, "finished", row["finished"] or ""), (name, "nordpipe_version", row["nordpipe_version"])]
        lines += [(name, "folder", folder) for folder in row["folders"]]
        lines += [(name, f"param:{key}", _plain(value)) for key, value in row["parameters"].items()]
    for other in data["not_in_chain"]:
        lines.append(("report", "not_in_chain", f"{other['folder']} ({other['stage']}; {other['why']})"))
    return [(_plain(s), _plain(k), _plain(v)) for s, k, v in lines]


def write_plain(data: dict[str, Any], stream: TextIO) -> None:
    for stage, key, value in plain_lines(data):
        stream.write(f"{stage}\t{key}\t{value}\n")


def render_terminal(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"nordpipe report: {data['root']}")
    for column in ("stage", "documents in", "documents out", "removed", "quarantined", "lines removed", "tokens", "finished", "nordpipe"):
        table.add_column(column, justify="left" if column in ("stage", "finished") else "right")
    for s in [*data["stages"], *data["exports"]]:
        lines = (s.get("line_dedup") or {}).get("lines_removed")
        table.add_row(s["stage"], f"{s['documents_in']:,}", f"{s['documents_out']:,}", f"{s['removed']:,}", f"{s['quarantined']:,}",
                      "" if lines is None else f"{lines:,}", "" if s["tokens"] is None else f"{s['tokens']:,}",
                      s["finished"] or "", s["nordpipe_version"])
    console.print(table)
    if data["removals"]:
        removals = Table(title="documents removed, by reason")
        removals.add_column("reason")
        removals.add_column("documents", justify="right")
        for reason, count in list(data["removals"].items())[:20]:
            removals.add_row(reason, f"{count:,}")
        console.print(removals)
    for other in data["not_in_chain"]:
        console.print(f"not in the chain: {other['folder']} ({other['stage']}; {other['why']})", highlight=False, soft_wrap=True)
