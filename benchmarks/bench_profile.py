"""Profile the whole demo chain stage by stage on a reduced corpus, two nordpipe versions side by side (issue 20).

    .venv/bin/python benchmarks/bench_profile.py                                  # this tree only
    .venv/bin/python benchmarks/bench_profile.py --before /work/main/src \\
        --results benchmarks/results/profile.md                                   # before vs this tree

Input: ``nordpipe sample`` (the generator ``bench_pipeline.py`` uses, same seed) at ``--scale``
(default 50: 75,000 documents, ~7% of ``bench_pipeline.py``'s 1.05M), ``--files`` files per dump.
Chain: ``pipelines/demo.yaml``'s stages with ``--workers`` workers each, as ``bench_pipeline.py``
runs it, but one ``nordpipe run --from STAGE --until STAGE`` per stage so that each stage is a
process tree of its own, measured on its own:

- wall: the stage's ``nordpipe run`` (its stage command(s) and their start-up included);
- CPU: user + system time of every process of the tree. This script makes itself the child
  subreaper (``PR_SET_CHILD_SUBREAPER``) and reaps whatever is orphaned, so the kernel's
  ``RUSAGE_CHILDREN`` accounts every process that ran (forkserver and workers too), exactly;
- peak tree RSS: the largest sum of ``VmRSS`` over the tree's live processes, sampled every
  0.2 s (pages shared between forked workers count once per process: an upper bound), and the
  largest single process's peak (its ``VmHWM``, the kernel's high-water mark, read at every
  sample: a process that lives less than 0.2 s can be missed).

Each version (``--before`` / ``--after``: a ``src`` folder put first on ``PYTHONPATH``) runs on
its own output root; the stages alternate between the versions (before's ingest, after's ingest,
before's urls, ...) so that a change in the machine's load touches both alike. With
``--profile`` each version's chain runs once more under cProfile (``profile_hook/sitecustomize.py``:
every datatrove task and the stage process, any nordpipe version), and the report lists per stage
the functions with the most CPU of their own (tottime) and cumulative, summed over the stage's
tasks. Profiled runs are never the timed ones (cProfile slows pure-Python code ~1.5-2x).

Agreement: for every stage, every file of the two versions' outputs (``.nordpipe/`` bookkeeping
aside: logs, timings) is compared: ``*.jsonl.gz`` decoded line by line (``decode_record``: the
metadata string parsed, so a change of gzip level or of metadata key order would not count but a
changed value would), every other file byte for byte. Any difference is listed and the script
exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import os
import platform
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from proctree import become_subreaper, reap_descendants  # noqa: E402

VENV_BIN = Path(sys.executable).parent
HOOK = REPO / "benchmarks" / "profile_hook"
STAGES = ("ingest", "urls", "quality", "lines", "minhash", "pii", "tokenize")
TOP = 12


def make_sample(work: Path, scale: float, files: int, seed: int) -> dict[str, Any]:
    from bench_pipeline import make_sample as pipeline_sample

    return pipeline_sample(work, scale, files, seed)


def write_config(work: Path, root: Path, workers: int) -> Path:
    """``pipelines/demo.yaml`` pointed at the sample in ``work`` and writing to ``root``."""
    import yaml

    demo = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    sample = work / "sample"
    for dataset in demo["datasets"]:
        dataset["raw"] = [str(sample / "raw" / dataset["name"])]
        dataset["config"] = str(sample / "datasets" / f"{dataset['name']}.yaml")
        dataset["resources"] = {"workers": workers}
    for stage in demo["stages"]:
        stage["params"] = {k: (v.replace("{root}/sample", str(sample)).replace("{root}", str(root)) if isinstance(v, str) else v)
                           for k, v in stage.get("params", {}).items()}
        stage["resources"] = {"workers": workers}
    demo.pop("sample", None)
    demo["name"] = f"profile-{root.name}"
    demo["root"] = str(root)
    config = work / f"{root.name}.yaml"
    config.write_text(yaml.safe_dump(demo, sort_keys=False))
    return config


# --------------------------------------------------------------------------------------------
# measuring a process tree


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _tree_rss_kib(root_pid: int) -> tuple[int, int]:
    """(sum of ``VmRSS``, largest ``VmHWM``) over the live processes of ``root_pid``'s tree."""
    children = _children_map()
    total, largest, todo = 0, 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"VmHWM:"):
                        largest = max(largest, int(line.split()[1]))
                    elif line.startswith(b"VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total, largest


def measure(argv: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``argv``; wall s, CPU s of the whole tree, peak tree RSS and largest process peak (MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    peak_kib = largest_kib = 0
    with log.open("wb") as handle:
        process = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            while process.poll() is None:
                # the tree's own orphans (a forkserver outliving its stage) are ours to reap
                tree_kib, tree_largest = _tree_rss_kib(process.pid)
                orphans_kib, orphans_largest = _orphans_rss_kib(process.pid)
                peak_kib = max(peak_kib, tree_kib + orphans_kib)
                largest_kib = max(largest_kib, tree_largest, orphans_largest)
                time.sleep(0.2)
        finally:
            if process.poll() is None:  # this script stopped: `nordpipe run` stops its stage on SIGTERM
                process.terminate()
                process.wait()
    wall = time.perf_counter() - started
    deadline = time.time() + 30
    while time.time() < deadline and _our_children():
        time.sleep(0.1)
        reap_descendants()
    reap_descendants()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}); log {log}:\n{log.read_text()[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Not ``RUSAGE_CHILDREN``'s ``ru_maxrss``: that is the largest of every child this script
    # ever reaped (earlier stages, the other version's runs), not of this stage's processes.
    return {"wall": wall, "cpu": cpu, "peak_tree_rss_mb": peak_kib / 1024, "max_process_rss_mb": largest_kib / 1024}


def _our_children() -> list[int]:
    return _children_map().get(os.getpid(), [])


def _orphans_rss_kib(stage_pid: int) -> tuple[int, int]:
    """Processes reparented to us (subreaper) while the stage runs: count their trees too."""
    trees = [_tree_rss_kib(pid) for pid in _our_children() if pid != stage_pid]
    return sum(t for t, _ in trees), max((h for _, h in trees), default=0)


# --------------------------------------------------------------------------------------------
# running the chain


class Side:
    def __init__(self, name: str, src: Path, work: Path, workers: int):
        self.name = name
        self.src = src
        self.root = work / name
        self.config = write_config(work, self.root, workers)
        shutil.rmtree(self.root, ignore_errors=True)
        self.figures: dict[str, dict[str, float]] = {}

    def env(self, profile_dir: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(self.src)]
        if profile_dir is not None:
            paths.insert(0, str(HOOK))
            env["NORDPIPE_PROFILE_DIR"] = str(profile_dir)
        else:
            env.pop("NORDPIPE_PROFILE_DIR", None)
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def run_stage(self, stage: str, config: Path, profile_dir: Path | None = None) -> dict[str, float]:
        argv = [str(VENV_BIN / "nordpipe"), "run", str(config), "--from", stage, "--until", stage]
        log = config.parent / f"{config.stem}-{stage}.log"
        return measure(argv, self.env(profile_dir), log)

    def batch(self, root: Path | None = None) -> Path:
        return (root or self.root) / "batches" / "0001"


def stage_folder(batch: Path, stage: str) -> Path:
    if stage == "ingest":
        return batch / "ingest"
    matches = sorted(p for p in batch.iterdir() if p.is_dir() and p.name.split("-", 1)[-1] == stage)
    if len(matches) != 1:
        raise SystemExit(f"{batch}: expected one folder for stage {stage}, found {[m.name for m in matches]}")
    return matches[0]


def output_files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and ".nordpipe" not in p.relative_to(folder).parts}


def _decoded_lines(path: Path) -> list[Any]:
    from nordpipe.documents import decode_record

    with gzip.open(path, "rb") as handle:
        return [decode_record(orjson.loads(line)) for line in handle]


def compare_outputs(before: Path, after: Path) -> dict[str, Any]:
    """Every file of two stage outputs: jsonl.gz decoded and compared, others byte for byte."""
    files_before, files_after = output_files(before), output_files(after)
    differences = [f"only in before: {name}" for name in sorted(set(files_before) - set(files_after))]
    differences += [f"only in after: {name}" for name in sorted(set(files_after) - set(files_before))]
    documents = identical_bytes = 0
    for name in sorted(set(files_before) & set(files_after)):
        a, b = files_before[name], files_after[name]
        if name.endswith(".jsonl.gz"):
            lines_a, lines_b = _decoded_lines(a), _decoded_lines(b)
            documents += len(lines_a)
            if lines_a != lines_b:
                first = next((i for i, (x, y) in enumerate(zip(lines_a, lines_b, strict=False)) if x != y), min(len(lines_a), len(lines_b)))
                differences.append(f"{name}: {len(lines_a)} vs {len(lines_b)} records, first difference at line {first + 1}")
            elif a.read_bytes() == b.read_bytes():
                identical_bytes += 1
        elif a.read_bytes() != b.read_bytes():
            differences.append(f"{name}: bytes differ")
        else:
            identical_bytes += 1
    return {"files": len(files_before), "documents": documents, "identical_bytes": identical_bytes, "differences": differences}


def profile_summary(profile_dir: Path) -> dict[str, list[tuple[str, float, float, int]]]:
    """The stage's profiles merged: top functions by own time and by cumulative time."""
    paths = sorted(str(p) for p in profile_dir.glob("*.prof"))
    if not paths:
        return {}
    stream = io.StringIO()
    stats = pstats.Stats(*paths, stream=stream)
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename
        for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
            if marker in filename:
                where = filename.split(marker, 1)[1]
                break
        rows.append((f"{where}:{line}({function})", tottime, cumtime, calls))
    own = sorted(rows, key=lambda r: -r[1])[:TOP]
    skip = ("_run_for_rank", "run_for_rank", "<module>", "main", "__call__", "invoke", "_main", "run", "execute",
            "profiled_run_for_rank", "_worker_main", "_iter_pipeline", "<lambda>")
    cumulative = [r for r in sorted(rows, key=lambda r: -r[2]) if not r[0].endswith(tuple(f"({s})" for s in skip))][:TOP]
    return {"own": own, "cumulative": cumulative, "total": sum(r[1] for r in rows)}  # type: ignore[dict-item]


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=50.0)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--before", type=Path, default=None, help="src folder of the version to compare with (e.g. /work/main/src)")
    parser.add_argument("--after", type=Path, default=REPO / "src", help="src folder of the version measured (default: this tree)")
    parser.add_argument("--profile", choices=("none", "before", "after", "both"), default="both",
                        help="which versions' chains run once more under cProfile (default both)")
    parser.add_argument("--no-timed", dest="timed", action="store_false",
                        help="skip the timed runs and the agreement check (profiles only)")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "profile")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # runs measure's cleanup
    try:
        become_subreaper()
    except OSError as err:
        raise SystemExit(f"{err}: CPU times would miss orphaned processes") from None
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = make_sample(args.work, args.scale, args.files, args.seed)
    raw_bytes = sum(p.stat().st_size for p in (args.work / "sample" / "raw").rglob("*") if p.is_file())
    sides = [Side("after", args.after.resolve(), args.work, args.workers)]
    if args.before:
        sides.insert(0, Side("before", args.before.resolve(), args.work, args.workers))
    load_before = os.getloadavg()
    for stage in STAGES if args.timed else ():
        for side in sides:
            side.figures[stage] = figures = side.run_stage(stage, side.config)
            print(f"{side.name}\t{stage}\t{figures['wall']:.1f} s wall\t{figures['cpu']:.1f} s CPU\t"
                  f"{figures['peak_tree_rss_mb']:.0f} MB tree\tload {os.getloadavg()[0]:.2f}", flush=True)
    load_after = os.getloadavg()
    agreement: dict[str, dict[str, Any]] = {}
    if args.before and args.timed:
        for stage in STAGES:
            agreement[stage] = compare_outputs(stage_folder(sides[0].batch(), stage), stage_folder(sides[1].batch(), stage))
            print(f"agreement\t{stage}\t{agreement[stage]['documents']:,} documents\t"
                  f"{len(agreement[stage]['differences'])} differences", flush=True)
    profiles: dict[str, dict[str, Any]] = {}
    if args.profile != "none":
        for side in sides:
            if args.profile not in ("both", side.name):
                continue
            root = args.work / f"{side.name}-profiled"
            shutil.rmtree(root, ignore_errors=True)
            config = write_config(args.work, root, args.workers)
            profiles[side.name] = {}
            for stage in STAGES:
                profile_dir = args.work / "profiles" / side.name / stage
                shutil.rmtree(profile_dir, ignore_errors=True)
                side.run_stage(stage, config, profile_dir)
                profiles[side.name][stage] = profile_summary(profile_dir)
                print(f"profiled\t{side.name}\t{stage}", flush=True)
    report = render(args, manifest, raw_bytes, sides, agreement, profiles, load_before, load_after)
    print(report)
    if args.results:
        args.results.write_text(report)
    return 1 if any(a["differences"] for a in agreement.values()) else 0


def render(args: argparse.Namespace, manifest: dict[str, Any], raw_bytes: int, sides: list[Side],
           agreement: dict[str, dict[str, Any]], profiles: dict[str, dict[str, Any]],
           load_before: tuple[float, ...], load_after: tuple[float, ...]) -> str:
    command = (f".venv/bin/python benchmarks/bench_profile.py --scale {args.scale:g} --files {args.files} "
               f"--workers {args.workers}" + (f" --before {args.before}" if args.before else "")
               + f" --profile {args.profile}" + ("" if args.timed else " --no-timed"))
    lines = [
        "# Chain profile: every stage's wall, CPU and memory on a reduced corpus (issue 20)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores (shared with other work), "
        f"{platform.python_implementation()} {platform.python_version()}",
        f"- command: `{command}`",
        f"- input: `nordpipe sample --scale {args.scale:g} --files {args.files} --seed {args.seed}`: "
        f"{raw_bytes / 1e6:.1f} MB of raw dumps, {sum(manifest['counts'].values()):,} documents "
        f"({', '.join(f'{k} {v:,}' for k, v in manifest['counts'].items())})",
        f"- `pipelines/demo.yaml`'s stages, {args.workers} workers each, one `nordpipe run --from S --until S` per stage; "
        f"versions: " + ", ".join(f"{s.name} = `{s.src}`" for s in sides) + "; stages alternate between the versions",
        f"- load average (1, 5, 15 min) before the timed runs {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)}",
        "",
    ]
    if not args.timed:
        sides = []
    header = "| stage |"
    rule = "|---|"
    for side in sides:
        header += f" {side.name} wall s | {side.name} CPU s | {side.name} peak tree RSS MB | {side.name} largest process MB |"
        rule += "---|---|---|---|"
    if len(sides) == 2:
        header += " wall before/after |"
        rule += "---|"
    lines += [header, rule] if sides else ["(profiles only: no timed runs)"]
    for stage in [*STAGES, "total"] if sides else ():
        row = f"| {stage} |"
        for side in sides:
            if stage == "total":
                f = {k: sum(side.figures[s][k] for s in STAGES) for k in ("wall", "cpu")}
                f["peak_tree_rss_mb"] = max(side.figures[s]["peak_tree_rss_mb"] for s in STAGES)
                f["max_process_rss_mb"] = max(side.figures[s]["max_process_rss_mb"] for s in STAGES)
            else:
                f = side.figures[stage]
            row += f" {f['wall']:.1f} | {f['cpu']:.1f} | {f['peak_tree_rss_mb']:.0f} | {f['max_process_rss_mb']:.0f} |"
        if len(sides) == 2:
            walls = [sum(s.figures[x]["wall"] for x in STAGES) if stage == "total" else s.figures[stage]["wall"] for s in sides]
            row += f" **{walls[0] / walls[1]:.2f}x** |"
        lines.append(row)
    lines += [] if not sides else ["", "Peak tree RSS sums the tree's processes (pages forked workers share count once per process); "
              "largest process is the biggest single process's peak (`VmHWM`, sampled every 0.2 s)."]
    if agreement:
        lines += ["", "## Agreement: every stage's output, before vs after", "",
                  "| stage | files | documents decoded and compared | files byte-identical | differences |", "|---|---|---|---|---|"]
        for stage, a in agreement.items():
            lines.append(f"| {stage} | {a['files']} | {a['documents']:,} | {a['identical_bytes']} | "
                         f"{'; '.join(a['differences'][:5]) or 'none'} |")
    for side_name, stages in profiles.items():
        lines += ["", f"## cProfile, {side_name}: per stage, summed over the stage process and all its tasks", ""]
        for stage in STAGES:
            summary = stages.get(stage)
            if not summary:
                continue
            lines += [f"### {stage} ({side_name}; {summary['total']:.1f} s profiled CPU)", "",
                      "| own time s | cumulative s | calls | function (most own time) |", "|---|---|---|---|"]
            lines += [f"| {r[1]:.2f} | {r[2]:.2f} | {r[3]:,} | `{r[0]}` |" for r in summary["own"]]
            lines += ["", "| cumulative s | function (most cumulative time, wrappers left out) |", "|---|---|"]
            lines += [f"| {r[2]:.2f} | `{r[0]}` |" for r in summary["cumulative"]]
            lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
