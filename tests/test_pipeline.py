"""`nordpipe run`: config checking, plans, batches, locks, and the shipped pipelines."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import nordpipe_executable
from report_page import CHROMIUM_FLAGS, chromium, dump_dom, line_dedup_removals, parse_report, read_records

import nordpipe
from nordpipe.pipeline import PipelineLock, final_outputs
from nordpipe.sample import generate_sample

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_errors_name_the_line_and_allowed_values(tmp_path, nordpipe_cli):
    bad_key = _write(tmp_path / "a.yaml", "name: x\ndatasets:\n  - name: d\n    raw: [r]\nstages:\n  - type: quality\n    parms: {}\n")
    result = nordpipe_cli("run", bad_key)
    assert result.returncode == 2
    assert "a.yaml:7" in result.stderr and "parms" in result.stderr and "params" in result.stderr
    bad_type = _write(tmp_path / "b.yaml", "datasets:\n  - {name: d, raw: [r]}\nstages:\n  - type: qualty\n")
    result = nordpipe_cli("run", bad_type)
    assert result.returncode == 2 and "b.yaml:4" in result.stderr and "urls, quality, lines, minhash, pii, tokenize" in result.stderr
    bad_param = _write(tmp_path / "c.yaml", "datasets:\n  - {name: d, raw: [r]}\nstages:\n  - type: tokenize\n    params:\n      no_such_option: 1\n")
    result = nordpipe_cli("run", bad_param)
    assert result.returncode == 2 and "c.yaml:6" in result.stderr and "no_such_option" in result.stderr
    bad_executor = _write(tmp_path / "d.yaml", "executor: kubernetes\ndatasets:\n  - {name: d, raw: [r]}\n")
    result = nordpipe_cli("run", bad_executor)
    assert result.returncode == 2 and "d.yaml:1" in result.stderr and "local, slurm" in result.stderr


def test_shipped_pipelines_parse_and_plan(tmp_path, nordpipe_cli):
    result = nordpipe_cli("run", REPO / "pipelines" / "demo.yaml", "--root", tmp_path / "demo.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr
    # munin-da's raw dumps live on the cluster: here its raw paths match nothing, which is a
    # config error (a misspelled raw path used to be skipped silently) ...
    munin_text = (REPO / "pipelines" / "munin-da.yaml").read_text()
    result = nordpipe_cli("run", REPO / "pipelines" / "munin-da.yaml", "--root", tmp_path / "munin", "--dry-run", cwd=REPO)
    if not os.path.exists("/data/raw/retsinformation"):
        raw_line = next(i for i, line in enumerate(munin_text.splitlines(), 1) if "/data/raw/retsinformation" in line)
        assert result.returncode == 2 and f"munin-da.yaml:{raw_line}:" in result.stderr and "/data/raw/retsinformation" in result.stderr
    # ... and with raw data in place, every parameter of the file is valid for its stage.
    munin = yaml.safe_load(munin_text)
    for dataset in munin["datasets"]:
        folder = tmp_path / "raw" / dataset["name"]
        folder.mkdir(parents=True)
        (folder / "dump.csv").write_text("text\nhej\n")
        dataset["raw"] = [str(folder), str(folder / "*.csv")]
    copy = _write(tmp_path / "munin-da.yaml", yaml.safe_dump(munin))
    result = nordpipe_cli("run", copy, "--root", tmp_path / "munin", "--dry-run", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "--mode tag" in result.stdout and "--fpr 1e-08" in result.stdout
    plan = nordpipe_cli("run", REPO / "pipelines" / "demo.yaml", "--root", tmp_path / "demo", "--dry-run").stdout.splitlines()
    stages = [line.split("\t")[1] for line in plan]
    assert stages == ["ingest"] * 5 + ["urls", "quality", "lines", "minhash", "pii", "tokenize"]
    until = nordpipe_cli("run", REPO / "pipelines" / "demo.yaml", "--root", tmp_path / "demo", "--dry-run", "--from", "lines", "--until", "pii")
    assert [line.split("\t")[1] for line in until.stdout.splitlines()] == ["lines", "minhash", "pii"]
    wrong = nordpipe_cli("run", REPO / "pipelines" / "demo.yaml", "--root", tmp_path / "demo", "--dry-run", "--until", "nope")
    assert wrong.returncode == 2 and "ingest, urls, quality" in wrong.stderr


def _ingest_only_pipeline(tmp_path: Path, raw: Path) -> Path:
    return _write(tmp_path / "p.yaml", yaml.safe_dump({
        "name": "t", "root": str(tmp_path / "root"),
        "datasets": [{"name": "nyheder", "raw": [str(raw)], "config": str(tmp_path / "s" / "datasets" / "nyheder.yaml"),
                      "params": {"added": "2024-01-01"}}],
        "stages": [],
    }))


def test_batches_take_only_new_raw_files_and_lock_stops_overlap(tmp_path, nordpipe_cli):
    generate_sample(tmp_path / "s", seed=2, scale=0.2)
    raw = tmp_path / "raw"
    raw.mkdir()
    files = sorted((tmp_path / "s" / "raw" / "nyheder").glob("*.jsonl.gz"))
    shutil.copy(files[0], raw)
    pipeline = _ingest_only_pipeline(tmp_path, raw)
    first = nordpipe_cli("run", pipeline, check=True)
    assert "batch\t0001\t1 new raw files" in first.stdout
    again = nordpipe_cli("run", pipeline, check=True)
    assert "nothing to do" in again.stdout
    shutil.copy(files[1], raw)
    second = nordpipe_cli("run", pipeline, check=True)
    assert "batch\t0002\t1 new raw files" in second.stdout
    ingested = json.loads((tmp_path / "root" / "state" / "ingested.json").read_text())
    assert len(ingested["nyheder"]) == 2
    datasheet = (tmp_path / "root" / "datasets" / "nyheder" / "README.md").read_text()
    total = sum(1 for f in files[:2] for _ in gzip.open(f))
    assert f"| records | {total:,} |" in datasheet
    with PipelineLock(str(tmp_path / "root")):
        locked = nordpipe_cli("run", pipeline)
    assert locked.returncode == 1 and "another nordpipe run" in locked.stderr


# ---------------------------------------------------------------------------------------------
# The demo chain end to end (needs every stage)


def _final_documents(root: Path) -> dict[str, str]:
    docs = {}
    for folder in final_outputs(str(root)):
        previous = sorted(d for d in os.listdir(os.path.dirname(folder)) if d[:2].isdigit())[-2]
        for file in sorted(Path(os.path.dirname(folder), previous, "documents").glob("*.jsonl.gz")):
            for line in gzip.open(file, "rt", encoding="utf-8"):
                record = json.loads(line)
                docs[record["id"]] = record["text"]
    return docs


def _shards(root: Path) -> dict[str, bytes]:
    out = {}
    for folder in final_outputs(str(root)):
        for file in sorted(Path(folder).rglob("*")):
            if file.is_file() and ".nordpipe" not in file.parts and file.suffix in (".bin", ".idx", ".ds", ".index", ".mds", ".parquet"):
                out[str(file.relative_to(root))] = file.read_bytes()
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "root"
    result = subprocess.run([*nordpipe_executable(), "run", str(REPO / "pipelines" / "demo.yaml"), "--root", str(root)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.mark.slow
def test_demo_pipeline_runs_end_to_end(demo_run):
    shards = _shards(demo_run)
    assert any(name.endswith(".bin") for name in shards)
    stats = {}
    for stage_dir in sorted((demo_run / "batches" / "0001").iterdir()):
        if (stage_dir / ".nordpipe" / "stats.json").exists():
            stats[stage_dir.name] = json.loads((stage_dir / ".nordpipe" / "stats.json").read_text())
    # Every stage removed something it was built to find in the sample data.
    assert stats["01-urls"]["removed_total"] > 0
    assert stats["02-quality"]["removed_total"] > 0
    assert stats["04-minhash"]["removed_total"] > 0
    docs = _final_documents(demo_run)
    assert docs and not any("casino" in text for text in docs.values())


@pytest.mark.slow
def test_report_renders_in_headless_chromium(demo_run, nordpipe_cli, tmp_path):
    chromium()  # skips (fails in CI) without Debian's chromium
    html_path = tmp_path / "report.html"
    nordpipe_cli("report", demo_run, "--html", html_path, check=True)
    dom = dump_dom(html_path, tmp_path / "profile")
    page = parse_report(dom.stdout)
    assert int(page.body["data-charts-rendered"]) >= 6
    assert page.body["data-labels-clipped"] == "0"
    # The page logs nothing when all is well; any console message (errors included) is a failure.
    console_errors = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console_errors, console_errors

    # Stage rows in chain order, each with the documents its output folders hold, counted here
    # from the files: a stage's input is what the stage before it wrote.
    batch = demo_run / "batches" / "0001"
    folders = {"ingest": batch / "ingest", **{d.name.split("-", 1)[1]: d for d in batch.iterdir() if d.name[:2].isdigit()}}
    assert [name for name, _ in page.stages] == ["ingest", "urls", "quality", "lines", "minhash", "pii", "tokenize"]
    counted = {name: len(read_records(folder)) for name, folder in folders.items() if name != "tokenize"}
    previous = None
    for name, row in page.stages:
        if previous is not None:
            assert int(row["documents_in"]) == counted[previous], name
        if name != "tokenize":
            assert int(row["documents_out"]) == counted[name], name
        previous = name
    assert int(page.stage("ingest")["documents_out"]) == sum(len(read_records(d)) for d in (batch / "ingest").iterdir())
    tokens = sum(p.stat().st_size for p in (batch / "06-tokenize" / "shards").glob("*.bin")) // 2  # uint16 ids
    assert int(page.stage("tokenize")["tokens"]) == tokens
    # Line dedup removes lines, not documents: its removed lines and characters are shown.
    lines, chars = line_dedup_removals(folders["lines"])
    assert lines > 0
    assert (int(page.stage("lines")["lines_removed"]), int(page.stage("lines")["line_characters_removed"])) == (lines, chars)
    # Datasets: what ingest wrote per dataset, and what is left of it in the final documents.
    assert sorted(page.datasets) == sorted(d.name for d in (batch / "ingest").iterdir())
    final = read_records(folders["pii"])
    # Lengths of the final documents: the PII stage's output (tokenize writes no documents).
    assert sum(page.charts["lengths"].values()) == len(final)
    for name, row in page.datasets.items():
        assert int(row["documents"]) == len(read_records(batch / "ingest" / name))
        assert int(row["final_documents"]) == sum(1 for r in final if r["source"] == name)
    # Run dates and the nordpipe version, per stage and for the run.
    for name, row in page.stages:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row["finished"]), name
        assert row["nordpipe_version"] == nordpipe.__version__, name
    assert page.run["nordpipe_versions"] == nordpipe.__version__ and page.run["started"] <= page.run["finished"]
    # Labels are whole, however long (the page's own check above measured them in the browser).
    removed = json.loads((folders["quality"] / ".nordpipe" / "stats.json").read_text())["removed"]
    assert set(removed) <= set(page.chart_labels["removals"])
    assert max(map(len, page.chart_labels["removals"])) > 30
    # Removed examples (the demo keeps removed documents): redacted as the PII stage would.
    assert page.examples and all(len(texts) <= 3 for texts in page.examples.values())
    reasons = set().union(*(json.loads((folder / ".nordpipe" / "stats.json").read_text())["removed"]
                            for name, folder in folders.items() if name != "ingest"))
    assert set(page.examples) <= reasons
    assert not page.not_in_chain

    # A stage output beside the batches (an experiment on the side) is listed apart, not added in.
    side = demo_run / "experiments" / "urls-again"
    try:
        nordpipe_cli("filter", "urls", batch / "ingest", side, check=True)
        data = json.loads(nordpipe_cli("report", demo_run, "--json", "--html", tmp_path / "again.html", check=True).stdout)
        assert [(row["stage"], row["documents_in"], row["documents_out"]) for row in data["stages"]] == \
            [(name, int(row["documents_in"]), int(row["documents_out"])) for name, row in page.stages]
        assert [item["folder"] for item in data["not_in_chain"]] == [str(side)]
    finally:
        shutil.rmtree(demo_run / "experiments", ignore_errors=True)

    screenshot = REPO / "benchmarks" / "results" / "report-screenshot.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1100,2600", html_path.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
    shutil.copy(shot, screenshot)


@pytest.mark.slow
def test_kill_9_in_a_middle_stage_then_rerun_gives_identical_shards(demo_run, tmp_path):
    root = tmp_path / "root"
    process = subprocess.Popen([*nordpipe_executable(), "run", str(REPO / "pipelines" / "demo.yaml"), "--root", str(root)],
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = root / "batches" / "0001" / "03-lines"
    deadline = time.time() + 600
    while time.time() < deadline and not marker.exists():
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (root / "batches" / "0001" / "06-tokenize" / ".nordpipe" / "pipeline-done").exists()
    subprocess.run([*nordpipe_executable(), "run", str(REPO / "pipelines" / "demo.yaml"), "--root", str(root)], check=True,
                   capture_output=True, timeout=1800)
    ours = {k.replace(str(root), ""): v for k, v in _shards(root).items()}
    reference = {k.replace(str(demo_run), ""): v for k, v in _shards(demo_run).items()}
    assert ours and ours == reference


@pytest.mark.slow
def test_two_cron_runs_equal_one_run_over_both_days(tmp_path, shared):
    # Needs the real sentences of ../shared: built from the 30-sentence fallback pool, the sample's
    # documents overlap so much that a day-2 document can bridge two day-1 near-duplicate clusters;
    # one run over both days then removes a day-1 document that the first cron run had already
    # released (released documents are not withdrawn). See nordpipe.pipeline's docstring.
    generate_sample(tmp_path / "s", seed=9, scale=0.5, shared=shared)
    day1, day2, both = tmp_path / "day1", tmp_path / "day2", tmp_path / "both"
    for folder in (day1, day2, both):
        folder.mkdir()
    files = sorted((tmp_path / "s" / "raw" / "nyheder").glob("*.jsonl.gz"))
    for i, file in enumerate(files):
        shutil.copy(file, day1 if i < len(files) // 2 else day2)
        shutil.copy(file, both)
    demo = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())

    def pipeline(name: str, raw: Path) -> Path:
        spec = {**demo, "root": str(tmp_path / name), "sample": None,
                "datasets": [{"name": "nyheder", "raw": [str(raw)], "config": str(tmp_path / "s" / "datasets" / "nyheder.yaml"),
                              "params": {"added": "2024-01-01"}}]}
        spec["stages"] = [dict(s, params={k: (v.replace("{root}/sample/blocklist.txt", str(tmp_path / "s" / "blocklist.txt")) if isinstance(v, str) else v)
                                          for k, v in s["params"].items()}) for s in demo["stages"]]
        return _write(tmp_path / f"{name}.yaml", yaml.safe_dump(spec))

    cron = pipeline("cron", day1)
    subprocess.run([*nordpipe_executable(), "run", str(cron)], check=True, capture_output=True, timeout=1800)
    for file in day2.iterdir():
        shutil.copy(file, day1)
    subprocess.run([*nordpipe_executable(), "run", str(cron)], check=True, capture_output=True, timeout=1800)
    single = pipeline("single", both)
    subprocess.run([*nordpipe_executable(), "run", str(single)], check=True, capture_output=True, timeout=1800)
    assert len(final_outputs(str(tmp_path / "cron"))) == 2
    cron_docs, single_docs = _final_documents(tmp_path / "cron"), _final_documents(tmp_path / "single")
    assert cron_docs and cron_docs == single_docs


@pytest.mark.slow
@pytest.mark.slurm
def test_demo_on_slurm_gives_the_same_shards(demo_run, slurm_cluster, tmp_path):
    root = tmp_path / "root"
    result = subprocess.run([*nordpipe_executable(), "run", str(REPO / "pipelines" / "demo.yaml"), "--root", str(root), "--executor", "slurm"],
                            capture_output=True, text=True, timeout=2400)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in (root / "logs").glob("*")) if (root / "logs").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + logs
    # five ingests and six stages, each its phases' arrays and a finish job, all queued at once
    assert result.stdout.count("\tfinish\t") == 11
    ours = {k.replace(str(root), ""): v for k, v in _shards(root).items()}
    reference = {k.replace(str(demo_run), ""): v for k, v in _shards(demo_run).items()}
    assert ours and ours == reference


def test_thousands_of_raw_files_reach_ingest_through_a_list_file(tmp_path, nordpipe_cli):
    """A folder of loose text files can hold more files than fit on a command line: past
    MAX_INLINE_FILES the pipeline hands them to ``nordpipe ingest --files-from``."""
    from nordpipe.pipeline import MAX_INLINE_FILES

    letters = tmp_path / "raw" / "letters"
    letters.mkdir(parents=True)
    count = MAX_INLINE_FILES + 50
    for n in range(count):
        (letters / f"letter-{n:04d}.txt").write_text(f"Kære modtager nummer {n}.\n\nTak for brevet.\n", encoding="utf-8")
    config = _write(tmp_path / "letters.yaml", (
        f"root: {tmp_path / 'out'}\n"
        f"datasets:\n  - name: letters\n    raw: [{letters}]\n"
        "    params: {license: cc0-1.0, created: '2020-01-01, 2020-12-31', language: da}\n"))
    plan = nordpipe_cli("run", config, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "--files-from" in plan.stdout and "letter-0001.txt" not in plan.stdout
    assert not (tmp_path / "out" / "batches").exists()  # a dry run writes nothing
    result = nordpipe_cli("run", config)
    assert result.returncode == 0, result.stderr
    listed = (tmp_path / "out" / "batches" / "0001" / "inputs" / "letters.txt").read_text().splitlines()
    assert len(listed) == count
    documents = []
    for path in (tmp_path / "out" / "batches" / "0001" / "ingest" / "letters" / "documents").glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            documents += [json.loads(line) for line in handle]
    assert len(documents) == count
    assert {d["text"].split("\n")[0] for d in documents} == {f"Kære modtager nummer {n}." for n in range(count)}


def test_sample_split_into_files_holds_the_same_documents(tmp_path):
    """``nordpipe sample --files N`` splits the dumps for parallel reading; the documents are
    those of the one-file sample."""
    import csv

    import pyarrow.parquet as pq
    from warcio.archiveiterator import ArchiveIterator

    one = generate_sample(tmp_path / "one", seed=3, scale=0.4)
    three = generate_sample(tmp_path / "three", seed=3, scale=0.4, files=3)
    assert one["counts"] == three["counts"]

    def forum(root: Path) -> list[list[str]]:
        rows = []
        for path in sorted((root / "raw" / "forum").glob("*.csv")):
            with open(path, newline="", encoding="utf-8") as handle:
                rows += list(csv.reader(handle))[1:]
        return rows

    def wiki(root: Path) -> list[dict]:
        return [row for path in sorted((root / "raw" / "wiki").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]

    def web(root: Path) -> list[tuple[str, bytes]]:
        pages = []
        for path in sorted((root / "raw" / "web").glob("*.warc.gz")):
            with open(path, "rb") as handle:
                pages += [(r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read()) for r in ArchiveIterator(handle)]
        return pages

    def letters(root: Path) -> dict[str, str]:
        return {p.name: p.read_text(encoding="utf-8") for p in (root / "raw" / "breve").rglob("*.txt")}

    assert len(list((tmp_path / "three" / "raw" / "forum").glob("*.csv"))) == 3
    assert len([p for p in (tmp_path / "three" / "raw" / "breve").iterdir() if p.is_dir()]) == 3
    for read in (forum, wiki, web, letters):
        assert read(tmp_path / "one") == read(tmp_path / "three"), read.__name__
        assert read(tmp_path / "one"), read.__name__


def test_sample_holds_the_documents_its_manifest_counts(tmp_path):
    """At scale 17 the news dump is split into 64 files, which 10,200 articles do not fill
    evenly: every article is still written (the remainder went missing before)."""
    manifest = generate_sample(tmp_path / "s", seed=5, scale=17)
    files = sorted((tmp_path / "s" / "raw" / "nyheder").glob("*.jsonl.gz"))
    assert len(files) == 64
    written = 0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            written += sum(1 for _ in handle)
    assert written == manifest["counts"]["nyheder"] == 10200
