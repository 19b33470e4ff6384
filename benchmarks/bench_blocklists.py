"""Benchmark the cost of the shipped blocklists: sizes, wheel bytes, and what loading them costs
every ``filter urls`` worker (time and memory), before (the ``.example`` placeholders) and after
(the UT1 lists), side by side in one run.

Measured, each load in a fresh process (5 runs, median; peak RSS added by the load):

1. the project lists alone: ``UrlBlocklistFilter(datatrove_list=False, blocklists_dir=...).load()``
   for the placeholder folder (taken from git, commit ``BEFORE``) and for the shipped folder;
2. the default filter (datatrove's UT1 adult index + banned words + project lists + the Nordic
   allowlist), as ``filter urls`` loads it in a worker, placeholders vs shipped;
3. parsing the shipped files: the bulk parser (``read_list_file``) against the line-by-line
   parser it replaced (``parse_list_line`` per line), same process;
4. ``nordpipe filter urls`` on a 100-document input, whole command wall time and peak RSS, with
   the shipped lists and with ``--no-project-lists`` (runs interleaved).

Sizes: entries, bytes on disk, bytes in a wheel (zip deflate, as ``pip wheel`` stores files)
for the ``.txt.gz`` files shipped and for the same lists as plain ``.txt``.

    .venv/bin/python benchmarks/bench_blocklists.py            # writes benchmarks/results/blocklists.md
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "blocklists"
SHIPPED = REPO / "src" / "nordpipe" / "data" / "blocklists"
BEFORE = "6693252"
"""The last commit with the ``.example`` placeholder lists."""
PY = sys.executable

LOAD = r"""
import json, resource, sys, time
from pathlib import Path
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from nordpipe.urls import UrlBlocklistFilter
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
step = UrlBlocklistFilter(datatrove_list=sys.argv[2] == "default", blocklists_dir=sys.argv[1],
                          store=sys.argv[3])
step.load()
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rss_delta_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - imported) / 1024,
                  "own_domains": len(step._own), "own_urls": len(step._own_urls), "allow": len(step._allow)}))
"""

PARSE = r"""
import gzip, json, sys, time
from pathlib import Path
from nordpipe.blocklists import category_list_files, parse_list_line, read_list_file
files = category_list_files(sys.argv[1])
read_list_file(files[-1][1], files[-1][0])  # warm-up: imports and polars' first regex, paid once per worker
t = time.perf_counter()
bulk = [read_list_file(path, category) for category, path in files]
bulk_s = time.perf_counter() - t
t = time.perf_counter()
count = 0
for category, path in files:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith(("#", "!", "[")):
                count += parse_list_line(line) is not None
line_s = time.perf_counter() - t
print(json.dumps({"bulk_s": bulk_s, "line_s": line_s, "entries": count,
                  "bulk_entries": sum(len(b.domains) + len(b.urls) for b in bulk)}))
"""


def placeholder_lists() -> Path:
    """The blocklists folder of commit ``BEFORE`` (the placeholders), unpacked from git."""
    target = WORK / "before"
    if not target.exists():
        archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE, "src/nordpipe/data/blocklists"],
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(WORK / "before-tree", filter="data")
        (WORK / "before-tree" / "src" / "nordpipe" / "data" / "blocklists").rename(target)
    return target


def run_json(code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_runs(runs: int, code: str, *args: str) -> dict:
    results = [run_json(code, *args) for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]} | {
        "runs": [round(r["seconds"], 3) for r in results] if "seconds" in results[0] else []}


def sizes(folder: Path) -> dict:
    """Entries and bytes of the category lists of a folder: on disk, and deflated into a zip."""
    from nordpipe.blocklists import category_list_files, read_list_file

    entries = disk = raw = zipped_as_is = zipped_plain = 0
    for category, path in category_list_files(folder):
        parsed = read_list_file(path, category)
        entries += len(parsed.domains) + len(parsed.urls)
        data = path.read_bytes()
        text = gzip.decompress(data) if path.suffix == ".gz" else data
        disk += len(data)
        raw += len(text)
        for content, counter in ((data, "as_is"), (text, "plain")):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(path.name, content)
            if counter == "as_is":
                zipped_as_is += len(buffer.getvalue())
            else:
                zipped_plain += len(buffer.getvalue())
    return {"entries": entries, "disk": disk, "text": raw, "wheel_as_shipped": zipped_as_is, "wheel_if_plain": zipped_plain}


def cli_run(runs: int) -> dict:
    """``nordpipe filter urls`` on 100 documents, default lists vs ``--no-project-lists``
    (interleaved): wall time and peak RSS."""
    inp = WORK / "cli-in"
    if not inp.exists():
        inp.mkdir(parents=True)
        with gzip.open(inp / "00000.jsonl.gz", "wt", encoding="utf-8") as out:
            for number in range(100):
                record = {"id": f"d{number}", "text": "Tekst.", "source": "b", "added": "2026-01-01",
                          "created": "2026-01-01, 2026-01-01", "metadata": {"url": f"https://site{number}.dk/a"}}
                out.write(json.dumps(record) + "\n")
    found: dict[str, dict[str, list[float]]] = {v: {"walls": [], "peaks": []} for v in ("with", "without")}
    for number in range(runs):
        for variant, extra in (("with", []), ("without", ["--no-project-lists"])):
            out = WORK / f"cli-out-{variant}-{number}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            started = time.perf_counter()
            result = subprocess.run(["/usr/bin/time", "-f", "%M", str(Path(PY).parent / "nordpipe"), "filter", "urls",
                                     str(inp), str(out), "--json", *extra], capture_output=True, text=True,
                                    env={**os.environ, "PYTHONPATH": str(REPO / "src"),
                                         "NORDPIPE_BLOCKLIST_STORE": str(WORK / "no-store")})
            found[variant]["walls"].append(time.perf_counter() - started)
            assert result.returncode == 0, result.stderr
            found[variant]["peaks"].append(int(result.stderr.strip().splitlines()[-1]) / 1024)
    return {variant: {"wall_s": statistics.median(v["walls"]), "peak_rss_mb": statistics.median(v["peaks"]),
                      "walls": [round(w, 2) for w in v["walls"]]} for variant, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "blocklists.md")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "src"))
    before = placeholder_lists()
    store = str(WORK / "no-store")
    load_before_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures = {
        "size_before": sizes(before), "size_after": sizes(SHIPPED),
        "own_before": median_runs(args.runs, LOAD, str(before), "own", store),
        "own_after": median_runs(args.runs, LOAD, str(SHIPPED), "own", store),
        "default_before": median_runs(args.runs, LOAD, str(before), "default", store),
        "default_after": median_runs(args.runs, LOAD, str(SHIPPED), "default", store),
        "parse": median_runs(args.runs, PARSE, str(SHIPPED)),
        "cli": cli_run(args.runs),
    }
    load_after = os.getloadavg()
    print(json.dumps(figures, indent=2))
    from importlib.metadata import version

    import polars

    sb, sa = figures["size_before"], figures["size_after"]
    ob, oa, db, da = figures["own_before"], figures["own_after"], figures["default_before"], figures["default_after"]
    parse, cli = figures["parse"], figures["cli"]
    lines = [
        "# bench_blocklists: the shipped UT1 lists, size and load cost",
        "",
        f"- Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared with other helpers'"
        " jobs (timings noisy: medians of "
        f"{args.runs} runs, each load in a fresh process).",
        f"- Date: {started}. Load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before_start)},"
        f" after: {' / '.join(f'{x:.2f}' for x in load_after)}.",
        "- Command: `.venv/bin/python benchmarks/bench_blocklists.py`",
        f"- Versions: datatrove {version('datatrove')}, polars"
        f" {polars.__version__}, Python {platform.python_version()}.",
        f"- Before: the `.example` placeholder lists of commit `{BEFORE}`; after: the UT1 lists shipped now;"
        " both loaded by the current code (so both include the Nordic allowlist).",
        "",
        "## Sizes (category lists of `src/nordpipe/data/blocklists/`)",
        "",
        "| | before (placeholders) | after (UT1) |",
        "|---|---|---|",
        f"| entries (domains + URLs) | {sb['entries']:,} | {sa['entries']:,} |",
        f"| bytes on disk / installed | {sb['disk']:,} | {sa['disk']:,} (`.txt.gz`) |",
        f"| bytes of text | {sb['text']:,} | {sa['text']:,} |",
        f"| bytes in the wheel (zip deflate) | {sb['wheel_as_shipped']:,} | {sa['wheel_as_shipped']:,} "
        f"(as plain `.txt`: {sa['wheel_if_plain']:,}) |",
        "",
        "A wheel deflates every file, so plain `.txt` lists would cost the wheel about as much as the"
        " `.txt.gz` shipped; gzip saves the difference between text and gzip bytes in the checkout and"
        " in the installed package.",
        "",
        "## Load cost per `filter urls` worker",
        "",
        "Time of `UrlBlocklistFilter.load()` and the peak RSS it adds (after imports), median of "
        f"{args.runs} fresh processes.",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| project lists only (`--no-datatrove-list`), s | {ob['seconds']:.3f} | {oa['seconds']:.3f} |",
        f"| same, RSS added, MB | {ob['rss_delta_mb']:.1f} | {oa['rss_delta_mb']:.1f} |",
        f"| domains / exact URLs / allowlisted domains in the index | {ob['own_domains']:,.0f} / {ob['own_urls']:,.0f} /"
        f" {ob['allow']:,.0f} | {oa['own_domains']:,.0f} / {oa['own_urls']:,.0f} / {oa['allow']:,.0f} |",
        f"| default filter (datatrove UT1 adult index + words + project lists), s | {db['seconds']:.3f} |"
        f" {da['seconds']:.3f} |",
        f"| same, RSS added, MB | {db['rss_delta_mb']:.1f} | {da['rss_delta_mb']:.1f} |",
        "",
        f"Runs (s): project lists before {ob['runs']}, after {oa['runs']}; default before {db['runs']},"
        f" after {da['runs']}.",
        "",
        "## Parsing the shipped files",
        "",
        "| parser | s |",
        "|---|---|",
        f"| bulk (`read_list_file`: plain lines matched in one polars pass) | {parse['bulk_s']:.3f} |",
        f"| line by line (`parse_list_line`, the parser before this change) | {parse['line_s']:.3f} |",
        "",
        f"Both give the same {parse['entries']:,.0f} entries (`tests/test_blocklists_ut1.py` checks equality line by line).",
        "",
        "## `nordpipe filter urls`, 100 documents, default lists",
        "",
        "Whole command (Python start, imports, list load in the worker, 100 documents, output), median;"
        " the two variants ran interleaved.",
        "",
        "| | s wall | peak RSS, MB | runs (s) |",
        "|---|---|---|---|",
        f"| default (shipped UT1 lists + datatrove UT1 adult) | {cli['with']['wall_s']:.2f} |"
        f" {cli['with']['peak_rss_mb']:.0f} | {cli['with']['walls']} |",
        f"| `--no-project-lists` (datatrove UT1 adult only) | {cli['without']['wall_s']:.2f} |"
        f" {cli['without']['peak_rss_mb']:.0f} | {cli['without']['walls']} |",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
