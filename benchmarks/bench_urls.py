"""Benchmark `nordpipe filter urls` against datatrove's URLFilter, and `nordpipe robots fetch`.

Side by side in one run, each in its own process (so peak RSS is per process):

1. step level: the filter alone over the same URLs, read from a file in chunks of 10,000 and
   made into Documents (not timed); timed: list load + the time inside the filter. Ours through
   its pipeline `run()` (batches, marking, stats), datatrove's `URLFilter.filter()` called per
   document (its decision alone, without `BaseFilter.run`'s per-document stats, which only
   favours datatrove). The whole process time (with reading and Document creation) is
   reported too ("total");
2. end to end: `nordpipe filter urls IN OUT --datatrove-compatible --no-project-lists --tasks 1`
   (and, with --old-src, the same command from another checkout)
   against a datatrove pipeline JsonlReader -> URLFilter -> JsonlWriter (1 task) on the same
   files;
3. agreement: per-document decisions (step level) and kept ids (end to end) compared;
4. `robots fetch` throughput: HOSTS virtual hosts on a local server (its own process).

The corpus is generated here (seeded): short Danish-like texts whose URLs mix hosts on
datatrove's list (and subdomains of them), ordinary Nordic/international hosts, banned and
soft words, and a few odd URLs. datatrove's URLFilter gets tldextract's offline snapshot (as
ours uses), otherwise it first tries to download the Public Suffix List.

    .venv/bin/python benchmarks/bench_urls.py            # 1,000,000 documents, 1,000 hosts
    .venv/bin/python benchmarks/bench_urls.py --quick    # 50,000 documents, 200 hosts
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "urls"
PY = sys.executable
SRC = REPO / "src"
OLD_SRC: Path | None = None  # --old-src: the same commands from another checkout, side by side

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import run_tree  # noqa: E402

STEP_OURS = r"""
import json, resource, sys, time
from itertools import islice
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
from datatrove.data import Document
from nordpipe.documents import removal_reason
from nordpipe.urls import UrlBlocklistFilter
step = UrlBlocklistFilter(project_lists=False, datatrove_compatible=sys.argv[3] == "compatible")
step.load()
load = time.perf_counter() - t
inside = 0.0
with open(sys.argv[1]) as lines, open(sys.argv[2], "w") as out:
    while chunk := list(islice(lines, 10_000)):
        docs = [Document(text="x", id=str(n), metadata={"url": line.rstrip("\n")}) for n, line in enumerate(chunk)]
        started = time.perf_counter()
        docs = list(step.run(docs))
        inside += time.perf_counter() - started
        for doc in docs:
            reason = removal_reason(doc)
            out.write((reason.split(":", 1)[1] if reason else "-") + "\n")
total = time.perf_counter() - t
print(json.dumps({"seconds": load + inside, "total": total, "load": load, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_delta_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""

STEP_PEER = r"""
import json, resource, sys, time, warnings
from itertools import islice
warnings.simplefilter("ignore")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
from datatrove.data import Document
from datatrove.pipeline.filters import URLFilter
from datatrove.utils.logging import logger
from tldextract import TLDExtract
from nordpipe.urls import DATATROVE_REASONS
logger.remove()
peer = URLFilter()
peer.tldextractor = TLDExtract(suffix_list_urls=())
peer.download_data()
load = time.perf_counter() - t
inside = 0.0
with open(sys.argv[1]) as lines, open(sys.argv[2], "w") as out:
    while chunk := list(islice(lines, 10_000)):
        docs = [Document(text="x", id=str(n), metadata={"url": line.rstrip("\n")}) for n, line in enumerate(chunk)]
        started = time.perf_counter()
        verdicts = [peer.filter(doc) for doc in docs]
        inside += time.perf_counter() - started
        for verdict in verdicts:
            out.write(("-" if verdict is True else DATATROVE_REASONS[verdict[1]]) + "\n")
total = time.perf_counter() - t
print(json.dumps({"seconds": load + inside, "total": total, "load": load, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_delta_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""

E2E_PEER = r"""
import sys, warnings
warnings.simplefilter("ignore")
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import URLFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from tldextract import TLDExtract
peer = URLFilter()
peer.tldextractor = TLDExtract(suffix_list_urls=())
LocalPipelineExecutor(pipeline=[JsonlReader(sys.argv[1], glob_pattern="*.jsonl.gz"), peer,
                                JsonlWriter(sys.argv[2] + "/documents")],
                      tasks=1, workers=1, logging_dir=sys.argv[2] + "/logs").run()
"""

SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def handle_one_request(self):
        try:
            super().handle_one_request()
        except ConnectionError:  # the client closed a kept-alive connection: not news
            self.close_connection = True
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        n = int(host.split(".")[0][1:] or 0)
        if self.path == "/robots.txt":
            body = b"User-agent: GPTBot\nDisallow: /\n" if n % 5 == 0 else b"User-agent: *\nAllow: /\n"
            status = 200
        else:
            body, status = b"not found", 404
        self.send_response(status); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def run_measured(args: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run a command; wall seconds and the peak RSS (MB) of that process alone."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024, subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def make_corpus(folder: Path, docs: int, files: int, seed: int) -> Path:
    """Standardized jsonl.gz files with metadata.url; and urls.txt in the same order."""
    from nordpipe.blocklists import DATATROVE_LIST_ARCHIVE, datatrove_assets

    marker = folder / f"done-{docs}-{files}-{seed}"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "in").mkdir(parents=True)
    rng = random.Random(seed)
    listed: list[str] = []
    with tarfile.open(datatrove_assets() / DATATROVE_LIST_ARCHIVE) as tar:
        member = tar.extractfile("domains")
        assert member is not None
        for number, line in enumerate(member):
            if number % 151 == 0:
                listed.append(line.decode().strip())
    tlds = ["dk"] * 4 + ["no"] * 3 + ["se"] * 3 + ["fi", "is", "fo", "com", "com", "org", "net", "de", "co.uk", "eu"]
    words = ["nyheder", "sport", "kultur", "artikel", "om-os", "kontakt", "produkter", "blog", "2024", "side",
             "index.html", "debat", "opskrift", "bolig", "job", "slut", "fag", "sex", "porn", "escort", "naked",
             "hot-chat", "webcam"]
    odd = ["http://127.0.0.1/a", "localhost/x", "HTTPS://WWW.Example.COM/Side", "https://blåbær.dk/", "//cdn.dk/x",
           "https://a..b.com/", "https://[::1]/x", "ftp://files.example.org/x"]
    text = "Dette er et kort dokument om vejret i Danmark i dag."
    with open(folder / "urls.txt", "w") as url_file:
        per_file = docs // files
        for f in range(files):
            with gzip.open(folder / "in" / f"{f:05d}.jsonl.gz", "wt", compresslevel=1) as handle:
                for i in range(per_file):
                    roll = rng.random()
                    if roll < 0.08:
                        host = rng.choice(["", "www.", "m.", "a.b."]) + rng.choice(listed)
                    elif roll < 0.081:
                        url = rng.choice(odd)
                        host = None
                    else:
                        host = f"{rng.choice(['', 'www.'])}site{rng.randrange(300_000)}.{rng.choice(tlds)}"
                    if host is not None:
                        path = "/".join(rng.choice(words[:14] if rng.random() < 0.9 else words)
                                        for _ in range(rng.randint(1, 3)))
                        url = f"https://{host}/{path}?id={rng.randrange(10**6)}"
                    doc_id = f"{f}-{i}"
                    handle.write(json.dumps({"id": doc_id, "text": text, "source": "bench", "added": "2024-05-01",
                                             "created": "2020-01-01, 2024-01-01", "metadata": {"url": url}}) + "\n")
                    url_file.write(url + "\n")
    marker.touch()
    return folder


def kept_ids(folder: Path) -> set[str]:
    ids: set[str] = set()
    for file in sorted(folder.rglob("*.jsonl.gz")):
        with gzip.open(file, "rt") as handle:
            ids.update(json.loads(line)["id"] for line in handle)
    return ids


def bench_filter(corpus: Path, docs: int) -> dict[str, object]:
    urls = corpus / "urls.txt"
    results: dict[str, object] = {}
    runs = {}
    for name, code, mode in (("peer_step", STEP_PEER, ""), ("ours_step", STEP_OURS, "compatible"),
                             ("ours_step_default", STEP_OURS, "default")):
        out = corpus / f"{name}.decisions"
        wall, rss, proc = run_measured([PY, "-c", code, str(urls), str(out), mode])
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1]) | {"wall": wall, "peak_rss_mb": rss}
        runs[name]["decisions"] = out.read_text().splitlines()
        print(f"{name}: {docs / runs[name]['seconds']:,.0f} docs/s (load {runs[name]['load']:.2f} s; "
              f"{docs / runs[name]['total']:,.0f} docs/s with reading and Document creation), "
              f"peak RSS {rss:,.0f} MB (+{runs[name]['rss_delta_mb']:,.0f} MB for the filter)", flush=True)
    peer, ours, default = runs["peer_step"], runs["ours_step"], runs["ours_step_default"]
    same = sum(a == b for a, b in zip(peer["decisions"], ours["decisions"], strict=True))
    same_keep = sum((a == "-") == (b == "-") for a, b in zip(peer["decisions"], ours["decisions"], strict=True))
    differ_default = [(a, b) for a, b in zip(peer["decisions"], default["decisions"], strict=True) if a != b]
    from collections import Counter

    results["step"] = {
        "peer_docs_per_s": docs / peer["seconds"], "ours_docs_per_s": docs / ours["seconds"],
        "ours_default_docs_per_s": docs / default["seconds"],
        "speedup": peer["seconds"] / ours["seconds"], "peer_load_s": peer["load"], "ours_load_s": ours["load"],
        "peer_total_docs_per_s": docs / peer["total"], "ours_total_docs_per_s": docs / ours["total"],
        "total_speedup": peer["total"] / ours["total"],
        "peer_rss_delta_mb": peer["rss_delta_mb"], "ours_rss_delta_mb": ours["rss_delta_mb"],
        "peer_peak_rss_mb": peer["peak_rss_mb"], "ours_peak_rss_mb": ours["peak_rss_mb"],
        "identical_reasons": same, "identical_keep_remove": same_keep, "docs": docs,
        "removed_by_peer": sum(d != "-" for d in peer["decisions"]),
        "default_mode_differences": dict(Counter(f"{a} -> {b}" for a, b in differ_default).most_common(8)),
    }
    results["e2e"] = bench_e2e(corpus, docs, OLD_SRC)
    return results


def bench_e2e(corpus: Path, docs: int, old_src: Path | None) -> dict[str, object]:
    """End to end, same input files, one task each: this tree's `nordpipe filter urls`, the
    same command from ``old_src`` (the commit before, when given) and datatrove's pipeline, in
    turn. Memory is the whole process tree's (``proctree``: stage process, forkserver, resource
    tracker, worker; datatrove: its process and its resource tracker)."""
    runs: dict[str, dict[str, object]] = {}
    nordpipe = str(Path(PY).parent / "nordpipe")
    sides: list[tuple[str, list[str], dict[str, str]]] = []
    for name, src in (("ours", SRC), ("old", old_src)):
        if src is None:
            continue
        out = corpus / f"e2e-{name}"
        sides.append((name, [nordpipe, "filter", "urls", str(corpus / "in"), str(out), "--tasks", "1",
                             "--no-project-lists", "--datatrove-compatible", "--json"],
                      {**os.environ, "PYTHONPATH": str(src)}))
    sides.append(("datatrove", [PY, "-c", E2E_PEER, str(corpus / "in"), str(corpus / "e2e-datatrove")], dict(os.environ)))
    for name, args, env in sides:
        shutil.rmtree(corpus / f"e2e-{name}", ignore_errors=True)
        load = os.getloadavg()
        run = run_tree(args, env=env)
        kept = kept_ids(corpus / f"e2e-{name}" / "documents")
        runs[name] = {**run.as_dict(), "load_before": load, "docs_per_s": docs / run.wall, "kept": len(kept),
                      "kept_ids": kept}
        print(f"end to end {name}: {run.wall:.1f} s wall ({docs / run.wall:,.0f} docs/s), {run.cpu:.1f} CPU s, "
              f"tree peak RSS {run.peak_rss_mib:,.0f} MiB / PSS {run.peak_pss_mib:,.0f} MiB, largest process "
              f"{run.max_process_rss_mib:,.0f} MiB, kept {len(kept):,} (load {load[0]:.1f})", flush=True)
    peer = runs["datatrove"]
    for run in runs.values():
        run["kept_identical_to_datatrove"] = run["kept_ids"] == peer["kept_ids"]
    for run in runs.values():
        del run["kept_ids"]
    figures: dict[str, object] = {"runs": runs}
    for name in ("ours", "old"):
        if name in runs:
            mine = runs[name]
            figures[f"{name}_vs_datatrove"] = {
                "wall_speedup": peer["wall"] / mine["wall"], "cpu_speedup": peer["cpu"] / mine["cpu"],
                "tree_rss_share": mine["peak_rss_mib"] / peer["peak_rss_mib"],
                "tree_pss_share": mine["peak_pss_mib"] / peer["peak_pss_mib"],
                "largest_process_share": mine["max_process_rss_mib"] / peer["max_process_rss_mib"],
            }
            print(f"{name} / datatrove: x{peer['wall'] / mine['wall']:.2f} wall, x{peer['cpu'] / mine['cpu']:.2f} CPU; "
                  f"tree RSS {mine['peak_rss_mib'] / peer['peak_rss_mib']:.0%}, tree PSS "
                  f"{mine['peak_pss_mib'] / peer['peak_pss_mib']:.0%}, largest process "
                  f"{mine['max_process_rss_mib'] / peer['max_process_rss_mib']:.0%}", flush=True)
    return figures


def import_cost(old_src: Path | None) -> dict[str, object]:
    """What the CLI costs before a stage does anything: wall time and peak RSS of `nordpipe --help`
    and of `nordpipe filter urls --help` (imports the command's module), and the total import
    time `python -X importtime` reports for `nordpipe --help`; this tree and ``old_src``."""
    figures: dict[str, object] = {}
    for name, src in (("ours", SRC), ("old", old_src)):
        if src is None:
            continue
        env = {**os.environ, "PYTHONPATH": str(src)}
        mine: dict[str, object] = {}
        for label, argv in (("help", ["--help"]), ("filter_urls_help", ["filter", "urls", "--help"])):
            # VmHWM of the command's own process at exit (the kernel's peak RSS since its exec)
            code = ("import atexit, sys, time\nt = time.perf_counter()\n"
                    "atexit.register(lambda: sys.stderr.write('HWM %s %f\\n' % ([l for l in open('/proc/self/status') "
                    "if l.startswith('VmHWM')][0].split()[1], time.perf_counter() - t)))\n"
                    f"from nordpipe.cli.main import main\nsys.argv = ['nordpipe', *{argv!r}]\nmain()\n")
            best = None
            for _ in range(3):
                out = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env).stderr
                kib, seconds = [ln for ln in out.splitlines() if ln.startswith("HWM ")][-1].split()[1:]
                if best is None or float(seconds) < best[1]:
                    best = (int(kib) / 1024, float(seconds))
            assert best is not None
            mine[label] = {"wall_s": best[1], "peak_rss_mib": best[0]}
        proc = subprocess.run([PY, "-X", "importtime", "-c", "import sys; from nordpipe.cli.main import main; "
                               "sys.argv = ['nordpipe', '--help']; main()"],
                              capture_output=True, text=True, env=env)
        rows = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:")]
        top = [r for r in rows if len(r) == 3 and not r[2].startswith("  ")]
        mine["help_import_s"] = sum(int(r[1]) for r in top[1:] if r[1].strip().isdigit()) / 1e6
        mine["help_modules"] = len(rows)
        figures[name] = mine
        print(f"import cost {name}: --help {mine['help']['wall_s']:.2f} s {mine['help']['peak_rss_mib']:.0f} MiB "
              f"({mine['help_modules']} modules, {mine['help_import_s']:.2f} s importing); filter urls --help "
              f"{mine['filter_urls_help']['wall_s']:.2f} s {mine['filter_urls_help']['peak_rss_mib']:.0f} MiB", flush=True)
    return figures


def bench_fetch(hosts: int) -> dict[str, object]:
    folder = WORK / "fetch"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    server = subprocess.Popen([PY, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        (folder / "urls.txt").write_text("".join(f"http://h{n}.bench.test:{port}/side\n" for n in range(hosts)))
        nordpipe = str(Path(PY).parent / "nordpipe")
        args = [nordpipe, "robots", "fetch", str(folder / "urls.txt"), "--cache", str(folder / "c.sqlite"),
                "--resolve", "*.bench.test:127.0.0.1", "--allow-private", "--concurrency", "64", "--json"]
        wall, rss, proc = run_measured(args)
        first = json.loads(proc.stdout)
        wall2, _, proc2 = run_measured(args)
        second = json.loads(proc2.stdout)
    finally:
        server.terminate()
        server.wait()
    result = {"hosts": hosts, "fetches": first["fetched"], "fetch_seconds": first["seconds"], "wall_s": wall,
              "fetches_per_s": first["fetched"] / first["seconds"], "hosts_per_s": hosts / first["seconds"],
              "peak_rss_mb": rss, "outcomes": first["outcomes"], "second_run_fetched": second["fetched"],
              "second_run_wall_s": wall2}
    print(f"robots fetch: {hosts} hosts, {first['fetched']} fetches in {first['seconds']:.1f} s = "
          f"{result['fetches_per_s']:,.0f} fetches/s ({result['hosts_per_s']:,.0f} hosts/s); "
          f"second run fetched {second['fetched']} in {wall2:.1f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="50,000 documents and 200 hosts")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--old-src", type=Path, help="also run the end-to-end and import figures with this src "
                        "folder on PYTHONPATH (e.g. /work/main/src: the commit before)")
    parser.add_argument("--only", choices=["e2e"], help="only the end-to-end and import figures (no step level, no fetch)")
    args = parser.parse_args()
    global OLD_SRC
    OLD_SRC = args.old_src
    if args.quick:
        args.docs, args.hosts = 50_000, 200
    import datatrove
    import httpx
    import protego

    print(f"uptime: {os.getloadavg()} (1/5/15 min load), cpus {os.cpu_count()}", flush=True)
    corpus = make_corpus(WORK / f"corpus-{args.docs}", args.docs, args.files, args.seed)
    figures = {"docs": args.docs, "load_before": os.getloadavg(),
               "versions": {"datatrove": getattr(datatrove, "__version__", "0.10.1"), "httpx": httpx.__version__,
                            "protego": getattr(protego, "__version__", "?")}}
    figures["imports"] = import_cost(args.old_src)
    if args.only == "e2e":
        figures["e2e"] = bench_e2e(corpus, args.docs, args.old_src)
    else:
        figures |= bench_filter(corpus, args.docs)
        figures["fetch"] = bench_fetch(args.hosts)
    figures["load_after"] = os.getloadavg()
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
