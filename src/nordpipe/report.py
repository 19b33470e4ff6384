"""``nordpipe report``: what every stage did, as a terminal table and a self-contained HTML page.

The HTML report draws its charts as inline SVG: no scripts or fonts are fetched, so it opens
offline (and in a headless browser for the tests). Figures come from the stages' own
``.nordpipe/stats.json`` files, the token manifest, the removed documents (when stages ran with
``--keep-removed``) and a sample of the final documents for the length distribution.
"""

from __future__ import annotations

import html
import itertools
import json
import os
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from nordpipe.documents import iter_document_lines
from nordpipe.layout import OutputLayout
from nordpipe.runner import merge_task_stats
from nordpipe.steps import list_document_files

LENGTH_SAMPLE = 50_000
LENGTH_BUCKETS = [0, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 10**12]


def _load(path: str) -> dict[str, Any] | None:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    return None


def _stage_dirs(root: str) -> list[tuple[str, str]]:
    """(stage name, output folder) in chain order, over all batches of a pipeline root."""
    found: list[tuple[str, str]] = []
    batches = os.path.join(root, "batches")
    if os.path.isdir(batches):
        for batch in sorted(os.listdir(batches)):
            base = os.path.join(batches, batch)
            ingest = os.path.join(base, "ingest")
            if os.path.isdir(ingest):
                found += [("ingest", os.path.join(ingest, d)) for d in sorted(os.listdir(ingest))]
            found += [(d.split("-", 1)[1], os.path.join(base, d)) for d in sorted(os.listdir(base)) if d[:2].isdigit() and "-" in d]
    elif os.path.exists(OutputLayout.of(root).stats):
        found.append((_load(OutputLayout.of(root).stats).get("stage", "stage"), root))  # type: ignore[union-attr]
    else:
        for name in sorted(os.listdir(root)):
            stats_file = OutputLayout.of(os.path.join(root, name)).stats
            if os.path.exists(stats_file):
                found.append((_load(stats_file).get("stage", name), os.path.join(root, name)))  # type: ignore[union-attr]
    return found


def _numeric_steps(stats: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for step, counters in (stats.get("steps") or {}).items():
        for key, value in counters.items():
            if isinstance(value, int | float):
                flat[f"{step}:{key}"] = value
    return flat


def _tokens(folder: str) -> int | None:
    for name in ("manifest.json", os.path.relpath(OutputLayout.of(".").state_path("manifest.json"))):
        manifest = _load(os.path.join(folder, name))
        if manifest:
            for key in ("total_tokens", "tokens"):
                if isinstance(manifest.get(key), int):
                    return manifest[key]
            shards = manifest.get("shards") or []
            total = sum(int(s.get("tokens", 0)) for s in shards if isinstance(s, dict))
            if total:
                return total
    return None


def collect(root: str) -> dict[str, Any]:
    """Gather the report's figures from a pipeline root or a single stage output."""
    stages: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    datasets: dict[str, dict[str, Any]] = {}
    removed_domains: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    dirs = _stage_dirs(root)
    for name, folder in dirs:
        stats = _load(OutputLayout.of(folder).stats)
        if not stats:
            continue
        if name not in stages:
            order.append(name)
            stages[name] = {"runs": []}
        stages[name]["runs"].append(stats)
        if name == "ingest":
            entry = datasets.setdefault(os.path.basename(folder), {"documents": 0, "characters": 0, "quarantined": 0})
            entry["documents"] += stats.get("documents_out", 0)
            entry["characters"] += stats.get("characters_out", 0)
            entry["quarantined"] += stats.get("quarantined_total", 0)
        tokens = _tokens(folder)
        if tokens is not None:
            stages[name]["tokens"] = stages[name].get("tokens", 0) + tokens
        if name == "pii" or "pii" in name:
            for key, value in _numeric_steps(stats).items():
                _step, _, counter = key.partition(":")
                if counter.isupper() or counter.startswith(("entity:", "pii:")):
                    pii[counter.split(":")[-1]] += int(value)
        for path in list_document_files(os.path.join(folder, "removed")) if os.path.isdir(os.path.join(folder, "removed")) else []:
            for item in iter_document_lines(path):
                url = (item.record or {}).get("metadata", {}).get("url") if item.record else None
                if url:
                    removed_domains[urlsplit(url).hostname or "?"] += 1
    summary = []
    reasons: Counter[str] = Counter()
    for name in order:
        runs = stages[name]["runs"]
        merged = merge_task_stats([{k: v for k, v in r.items() if k in ("documents_in", "documents_out", "characters_in", "characters_out", "removed", "quarantined", "languages_out")} for r in runs])
        reasons.update({k: v for k, v in (merged.get("removed") or {}).items() if not k.startswith("quarantine:")})
        summary.append({
            "stage": name,
            "documents_in": merged.get("documents_in", 0),
            "documents_out": merged.get("documents_out", 0),
            "characters_out": merged.get("characters_out", 0),
            "removed": merged.get("removed", {}),
            "quarantined": sum((merged.get("quarantined") or {}).values()),
            "languages_out": merged.get("languages_out", {}),
            "tokens": stages[name].get("tokens"),
            "seconds": round(sum(r.get("seconds", 0) for r in runs), 2),
        })
    languages: dict[str, int] = {}
    for entry in reversed(summary):
        langs = {k: v for k, v in entry["languages_out"].items() if k != "unknown"}
        if langs:
            languages = langs
            break
    lengths: Counter[str] = Counter()
    # Lengths of the documents that leave the last stage that writes documents (tokenize does not).
    with_documents = [name for name, folder in dirs if os.path.isdir(os.path.join(folder, "documents"))]
    final = [folder for name, folder in dirs if with_documents and name == with_documents[-1]]
    sampled = 0
    for folder in final:
        for path in list_document_files(folder):
            for item in iter_document_lines(path):
                if sampled >= LENGTH_SAMPLE or item.record is None:
                    break
                lengths[_bucket(len(item.record.get("text", "")))] += 1
                sampled += 1
    return {
        "root": root,
        "stages": summary,
        "removals": dict(reasons.most_common()),
        "languages": dict(sorted(languages.items(), key=lambda kv: -kv[1])),
        "lengths": {label: lengths.get(label, 0) for label in _bucket_labels()},
        "pii": dict(pii.most_common()),
        "removed_domains": dict(removed_domains.most_common(15)),
        "datasets": datasets,
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


def _bar_chart(chart_id: str, title: str, values: dict[str, float], color: str = "#3b6ea5") -> str:
    """A horizontal bar chart as inline SVG."""
    items = list(values.items())
    if not items:
        return f'<figure class="chart empty" data-chart="{chart_id}"><figcaption>{html.escape(title)}</figcaption><p>No data.</p></figure>'
    width, label_w, bar_h, gap = 760, 250, 22, 6
    height = len(items) * (bar_h + gap) + 10
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        y = 5 + i * (bar_h + gap)
        w = max(1.0, (width - label_w - 90) * value / top) if value else 0
        rows.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.0f}" text-anchor="end">{html.escape(str(label)[:40])}</text>'
            f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"><title>{html.escape(str(label))}: {value:,.0f}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h * 0.7:.0f}">{value:,.0f}</text>'
        )
    return (
        f'<figure class="chart" data-chart="{chart_id}"><figcaption>{html.escape(title)}</figcaption>'
        f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(rows)}</svg></figure>'
    )


def _funnel(stages: list[dict[str, Any]]) -> dict[str, float]:
    return {f"{s['stage']} (documents)": s["documents_out"] for s in stages}


def render_html(data: dict[str, Any], path: str) -> str:
    stages = data["stages"]
    tokens = {s["stage"]: s["tokens"] for s in stages if s.get("tokens")}
    table_rows = "".join(
        f"<tr><td>{html.escape(s['stage'])}</td><td>{s['documents_in']:,}</td><td>{s['documents_out']:,}</td>"
        f"<td>{s['documents_in'] - s['documents_out'] - s['quarantined']:,}</td><td>{s['quarantined']:,}</td>"
        f"<td>{s['characters_out']:,}</td><td>{'' if s['tokens'] is None else format(s['tokens'], ',')}</td><td>{s['seconds']}</td></tr>"
        for s in stages
    )
    dataset_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{d['documents']:,}</td><td>{d['characters']:,}</td><td>{d['quarantined']:,}</td></tr>"
        for name, d in sorted(data["datasets"].items())
    )
    charts = [
        _bar_chart("funnel", "Documents after each stage", _funnel(stages)),
        _bar_chart("tokens", "Tokens written", tokens, "#6a8f3b"),
        _bar_chart("removals", "Documents removed, by reason", data["removals"], "#b5523b"),
        _bar_chart("languages", "Languages of the final documents", data["languages"], "#7a4fa0"),
        _bar_chart("lengths", "Final document length (characters)", data["lengths"], "#3b8f8f"),
        _bar_chart("pii", "Personal data replaced, by type", data["pii"], "#a08a3b"),
        _bar_chart("domains", "Top removed domains", data["removed_domains"], "#8f3b6a"),
    ]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nordpipe report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}figcaption{{font-weight:600;margin-bottom:.4em}}
svg text{{font-size:12px;fill:#222}}
</style></head><body>
<h1>nordpipe report</h1><p>{html.escape(data['root'])}</p>
<h2>Stages</h2>
<table><tr><th>stage</th><th>documents in</th><th>documents out</th><th>removed</th><th>quarantined</th><th>characters out</th><th>tokens</th><th>seconds</th></tr>{table_rows}</table>
<h2>Datasets</h2>
<table><tr><th>dataset</th><th>documents</th><th>characters</th><th>quarantined</th></tr>{dataset_rows}</table>
<h2>Charts</h2>
{''.join(charts)}
<script>
// Self-check used by the tests: every chart with data must have drawn bars.
(function () {{
  var figures = document.querySelectorAll('figure.chart');
  var drawn = 0, broken = [];
  figures.forEach(function (f) {{
    if (f.classList.contains('empty')) return;
    var bars = Array.prototype.filter.call(f.querySelectorAll('rect.bar'), function (r) {{ return r.getBBox().width > 0; }});
    if (bars.length) drawn++; else broken.push(f.dataset.chart);
  }});
  if (broken.length) console.error('charts without bars: ' + broken.join(','));
  document.title = 'nordpipe report: ' + drawn + ' charts rendered';
  document.body.setAttribute('data-charts-rendered', String(drawn));
}})();
</script>
</body></html>
"""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(page)
    os.replace(path + ".tmp", path)
    return path


def render_terminal(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if not console.is_terminal:
        for s in data["stages"]:
            console.print(f"stage\t{s['stage']}\tin={s['documents_in']}\tout={s['documents_out']}\ttokens={s['tokens'] or 0}", highlight=False)
        for reason, count in data["removals"].items():
            console.print(f"removed\t{reason}\t{count}", highlight=False)
        return
    table = Table(title=f"nordpipe report: {data['root']}")
    for column in ("stage", "documents in", "documents out", "quarantined", "tokens", "seconds"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in data["stages"]:
        table.add_row(s["stage"], f"{s['documents_in']:,}", f"{s['documents_out']:,}", f"{s['quarantined']:,}", f"{(s['tokens'] or 0):,}", f"{s['seconds']}")
    console.print(table)
    if data["removals"]:
        removals = Table(title="removed, by reason")
        removals.add_column("reason")
        removals.add_column("documents", justify="right")
        for reason, count in list(data["removals"].items())[:20]:
            removals.add_row(reason, f"{count:,}")
        console.print(removals)

