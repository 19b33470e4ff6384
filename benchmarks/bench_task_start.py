"""What a worker pays before and between its tasks, two nordpipe versions side by side (issue 20).

    .venv/bin/python benchmarks/bench_task_start.py --before /tmp/before/src
    .venv/bin/python benchmarks/bench_task_start.py --before /tmp/before/src --quick
    .venv/bin/python benchmarks/bench_task_start.py --before /tmp/before/src --results benchmarks/results/task_start.md

A local worker runs its tasks one after another, each on a fresh deep copy of the pipeline
(``runner.executors``). Measured here, each in a fresh Python process per version, versions
alternating, ``--repeats`` times (the best is reported):

- ``pii``: building the PII scanner (``PiiReplace().scanner()``) in a fresh process and scanning
  one sentence: CPU seconds, the process's peak RSS (``ru_maxrss``), whether spaCy was imported;
- ``urls``: ``--tasks`` task copies of ``UrlBlocklistFilter`` (the shipped project lists and
  datatrove's bundled list, the ``filter urls`` defaults), each filtering 100 URLs: CPU seconds
  for all of them, and per task after the first;
- ``langid``: ``--tasks`` task copies of ``LanguageIdentifier(da,nb,nn,sv,en)`` each labelling
  one Faroese-looking text (a "ð" sends it to py3langid): CPU seconds, per task after the first;
- ``tokenize``: ``--tasks`` task copies of ``TokenizeDocuments()`` (the default Mistral
  tokenizer) each encoding one text.

The decisions must be equal between the versions (removal reasons, labels, token ids, spans):
the script exits 1 if they differ.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import copy, json, resource, sys, time
kind, tasks = sys.argv[1], int(sys.argv[2])
start = time.process_time()
result = None
if kind == "pii":
    from nordpipe.pii.step import PiiReplace
    spans = PiiReplace().scanner().scan("Hr. Poul-Erik Dyremose ringede fra 21 43 65 87, mail pe@example.dk.")
    result = [(s.start, s.end, s.entity) for s in spans]
    per_task = None
elif kind == "urls":
    from nordpipe.urls import UrlBlocklistFilter
    step = UrlBlocklistFilter()
    urls = [f"https://site{n}.{'dk' if n % 3 else 'com'}/sex-{n}" if n % 7 == 0 else f"https://www.site{n}.dk/side/{n}" for n in range(100)]
    result, marks = [], []
    for task in range(tasks):
        result.append([d[0] for d in copy.deepcopy(step).decide(urls)])
        marks.append(time.process_time())
elif kind == "langid":
    from nordpipe.langid import LanguageIdentifier
    step = LanguageIdentifier(languages=["da", "nb", "nn", "sv", "en"])
    text = "Kommunan hevur gjørt av at umvæla gamla skúlan í komandi tveimum árunum, og næmingarnir gleða seg til. " * 3
    result, marks = [], []
    for task in range(tasks):
        result.append(copy.deepcopy(step).identify(text)[0])
        marks.append(time.process_time())
elif kind == "tokenize":
    from nordpipe.tokenize import TokenizeDocuments
    step = TokenizeDocuments()
    result, marks = [], []
    for task in range(tasks):
        result.append(copy.deepcopy(step).tokenizer.encode_batch(["Det er en god dag i København."]))
        marks.append(time.process_time())
cpu = time.process_time() - start
if kind != "pii":
    per_task = (marks[-1] - marks[0]) / max(1, len(marks) - 1)
print(json.dumps({"cpu": cpu, "per_task": per_task, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "spacy": "spacy" in sys.modules, "result": result}))
"""

KINDS = ("pii", "urls", "langid", "tokenize")


def run(src: Path, kind: str, tasks: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(tasks)], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="src folder of the older version")
    parser.add_argument("--after", type=Path, default=REPO / "src")
    parser.add_argument("--tasks", type=int, default=12, help="task copies per worker (default 12)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="3 task copies, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.repeats = 3, 1
    load_before = os.getloadavg()
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for _ in range(args.repeats):
        for kind in KINDS:
            for side, src in (("before", args.before), ("after", args.after)):
                figures = run(src, kind, args.tasks)
                key = (kind, side)
                if key not in best or figures["cpu"] < best[key]["cpu"]:
                    best[key] = figures
    load_after = os.getloadavg()
    lines = [
        "## Generated report",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, CPython {platform.python_version()}",
        f"- command: `python benchmarks/bench_task_start.py {' '.join(sys.argv[1:])}`",
        f"- before: `{args.before}`; after: `{args.after}`; {args.tasks} task copies per process; best of {args.repeats}",
        f"- load average before: {' '.join(f'{x:.2f}' for x in load_before)}; after: {' '.join(f'{x:.2f}' for x in load_after)}",
        "",
        "| what | before: CPU s | after: CPU s | before: per further task s | after: per further task s | before: peak RSS MB | after: peak RSS MB | spaCy imported (before / after) | same result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    same_everywhere = True
    for kind in KINDS:
        b, a = best[(kind, "before")], best[(kind, "after")]
        same = b["result"] == a["result"]
        same_everywhere &= same

        def task(x: dict[str, Any]) -> str:
            return "-" if x["per_task"] is None else f"{x['per_task']:.3f}"

        lines.append(f"| {kind} | {b['cpu']:.2f} | {a['cpu']:.2f} | {task(b)} | {task(a)} | {b['maxrss_mb']:.0f} | "
                     f"{a['maxrss_mb']:.0f} | {'yes' if b['spacy'] else 'no'} / {'yes' if a['spacy'] else 'no'} | {'yes' if same else 'NO'} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.results:
        args.results.write_text(report)
    if not same_everywhere:
        raise SystemExit("the versions decided differently")


if __name__ == "__main__":
    main()
