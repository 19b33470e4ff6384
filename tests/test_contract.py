"""The stage contract, checked for every stage of the registry (``nordpipe.stages.STAGES``).

Each test runs the real ``nordpipe`` command of every stage that reads documents, as a user
would, on small standardized datasets written here: wrong inputs exit 1 with a hint, a valid
empty input gives a valid empty output, OUTPUT overlapping INPUT exits 2, ``--force`` deletes
only what the stage wrote, relative and absolute paths give the same bytes, SIGTERM/SIGINT
stop every process and release the lock, a worker killed with -9 fails the stage naming the
task, and every interrupted run reruns to the output of an uninterrupted one.

Tasks are stopped at a known point with the ``NORDPIPE_TEST_PAUSE_DIR`` hook (each task
announces itself with a file and sleeps), never by guessing how long a stage takes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import nordpipe_executable, record, wait_for

from nordpipe.documents import decode_record
from nordpipe.runner import PAUSE_ENV, descendants
from nordpipe.stages import STAGES, Stage

# What each stage needs on its command line besides INPUT and OUTPUT ({state}: a fresh folder).
STAGE_ARGS: dict[str, list[str]] = {
    "urls": ["--no-datatrove-list"],
    "quality": [],
    "lines": ["--state", "{state}"],
    "minhash": [],
    "pii": [],
    "tokenize": [],
    "export sentences": [],
    "export pairs": ["--anchor", "metadata.title", "--positive", "text"],
    "export hf": [],
}
# Another value of a parameter the run record holds, for the --force tests.
OTHER_PARAMETERS: dict[str, list[str]] = {
    "urls": ["--tasks", "1"],
    "quality": ["--tasks", "1"],
    "lines": ["--tasks", "1"],
    "minhash": ["--tasks", "1"],
    "pii": ["--tasks", "1"],
    "tokenize": ["--tasks", "1"],
    "export sentences": ["--min-chars", "5"],
    "export pairs": ["--test-ratio", "0.5"],
    "export hf": ["--row-group-size", "1MiB"],
}
REBUILDS_EVERY_RUN = {"export sentences", "export pairs", "export hf"}
"""Stages without --force: they rebuild OUTPUT on every run (still only their own OUTPUT)."""


def force_flag(stage: Stage) -> list[str]:
    return [] if stage.name in REBUILDS_EVERY_RUN else ["--force"]


DOCUMENT_STAGES = [stage for stage in STAGES.values() if stage.reads == "documents"]
TASK_STAGES = [stage for stage in DOCUMENT_STAGES if not stage.name.startswith("export")]
"""Stages that run datatrove tasks in workers (the exports run in the stage process)."""

WORDS = [
    *["og", "i", "at", "det", "er", "en", "til", "på", "som", "de", "med", "han", "af", "for", "ikke", "der", "var", "men", "havde", "sig", "jeg", "har", "om", "vi", "min"],
    *["byen", "huset", "skolen", "vejret", "arbejdet", "kommunen", "regeringen", "haven", "vinteren", "sommeren", "fjorden"],
    *["gik", "kom", "sagde", "fandt", "byggede", "skrev", "læste", "åbnede", "lukkede", "flyttede"],
]


def danish_text(rng: random.Random, sentences: int) -> str:
    lines = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(" ".join(lines[i : i + 3]) for i in range(0, len(lines), 3))


def write_dataset(root: Path, name: str, files: dict[str, int], seed: int = 0) -> None:
    """``root/name/documents/<file>.jsonl.gz`` with the given number of documents each."""
    rng = random.Random(f"{name}-{seed}")
    folder = root / name / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    for file, count in files.items():
        with gzip.open(folder / f"{file}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for i in range(count):
                doc = record(f"{name}-{file}-{i}", danish_text(rng, rng.randint(6, 14)), source=name,
                             url=f"https://www.{name}.dk/{file}/{i % 7}", title=f"Artikel {i} om {rng.choice(WORDS)}")
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Two datasets whose files have the same name (``dump``) under one root, as in a real
    collection; the output of a stage must keep both."""
    root = tmp_path / "data"
    write_dataset(root, "alpha", {"dump": 40, "more": 30})
    write_dataset(root, "beta", {"dump": 35})
    return root


def argv(stage: Stage, inp: str | Path, out: str | Path, state: Path, *extra: str) -> list[str]:
    args = [a.format(state=state) for a in STAGE_ARGS[stage.name]]
    return [*stage.command, str(inp), str(out), *args, *extra]


def run(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*nordpipe_executable(), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (state folders excluded) and the hash of its bytes."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and ".nordpipe" not in rel.parts:
            digests[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def outputs(stage: Stage, out: Path) -> dict[str, str]:
    """The bytes a stage wrote (its registry ``writes``), for comparing runs."""
    found: dict[str, str] = {}
    for name in stage.writes:
        target = out / name
        if target.is_dir():
            found.update({f"{name}/{k}": v for k, v in tree_digest(target).items()})
        elif target.is_file():
            found[name] = hashlib.sha256(_stable(target)).hexdigest()
    return found


def _stable(path: Path) -> bytes:
    """A file's bytes, with the absolute OUTPUT path a manifest may name taken out."""
    data = path.read_bytes()
    if path.name == "manifest.json":
        manifest = json.loads(data)
        manifest.pop("output", None)
        return json.dumps(manifest, sort_keys=True).encode()
    return data


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (a test's unique tmp path)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry))
    return found


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run (zombies count as gone)."""
    found = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(pid)
    return found


def start_paused(args: list[str], pause_dir: Path, cwd: Path | None = None) -> tuple[subprocess.Popen[str], list[Path]]:
    """Start a stage whose tasks stop at their start; return once a task has announced itself."""
    process = subprocess.Popen([*nordpipe_executable(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=cwd, env={**os.environ, PAUSE_ENV: str(pause_dir)})

    def paused() -> list[Path]:
        if process.poll() is not None:
            raise AssertionError(f"the stage ended before pausing: {process.communicate()}")
        return sorted(pause_dir.glob("*-*")) if pause_dir.is_dir() else []

    return process, wait_for(paused, what="a task to start")


def ids(stage: Stage) -> str:
    return stage.name.replace(" ", "-")


@pytest.fixture(params=DOCUMENT_STAGES, ids=ids)
def stage(request: pytest.FixtureRequest) -> Iterator[Stage]:
    yield request.param


def test_every_document_stage_is_covered() -> None:
    assert set(STAGE_ARGS) == {s.name for s in DOCUMENT_STAGES} == set(OTHER_PARAMETERS)


# --------------------------------------------------------------------------------------------
# Inputs


def test_missing_input_exits_1(stage: Stage, tmp_path: Path) -> None:
    result = run(argv(stage, tmp_path / "no-such-folder", tmp_path / "out", tmp_path / "state"))
    assert result.returncode == 1, result.stderr
    assert "does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def _raw_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    raw_jsonl = tmp_path / "raw" / "dump.jsonl"
    raw_jsonl.parent.mkdir()
    raw_jsonl.write_text('{"body": "Hej med dig", "date": "2024-01-01"}\n')
    warc = tmp_path / "crawl" / "CC-0001.warc.gz"
    warc.parent.mkdir()
    with gzip.open(warc, "wb") as handle:
        handle.write(b"WARC/1.0\r\nWARC-Type: warcinfo\r\nContent-Length: 0\r\n\r\n\r\n\r\n")
    datasheet = tmp_path / "ds" / "README.md"
    datasheet.parent.mkdir()
    datasheet.write_text("---\npretty_name: x\n---\n")
    return {
        "raw jsonl file": (raw_jsonl, "looks like raw data: run `nordpipe ingest"),
        "folder of raw jsonl": (raw_jsonl.parent, "looks like raw data: run `nordpipe ingest"),
        "WARC file": (warc, "looks like raw data: run `nordpipe ingest"),
        "folder of WARCs": (warc.parent, "looks like raw data: run `nordpipe ingest"),
        "datasheet": (datasheet, "is a datasheet"),
    }


@pytest.mark.parametrize("kind", ["raw jsonl file", "folder of raw jsonl", "WARC file", "folder of WARCs", "datasheet"])
def test_raw_data_where_documents_are_expected_exits_1_with_a_hint(stage: Stage, kind: str, tmp_path: Path) -> None:
    path, hint = _raw_inputs(tmp_path)[kind]
    result = run(argv(stage, path, tmp_path / "out", tmp_path / "state"))
    assert result.returncode == 1, result.stderr
    assert hint in result.stderr
    assert not (tmp_path / "out" / "documents").exists()


def test_valid_empty_input_gives_a_valid_empty_output(stage: Stage, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "documents").mkdir(parents=True)
    out = tmp_path / "out"
    result = run(argv(stage, empty, out, tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    completion = json.loads((out / ".nordpipe" / "complete.json").read_text())
    assert completion["stage"] == stage.name and completion["documents_out"] == 0
    stats = json.loads((out / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_in"] == 0


def test_empty_input_flows_through_the_whole_chain(tmp_path: Path) -> None:
    """Every stage after an empty one proceeds (exit 0); tokenize writes 0 tokens."""
    previous = tmp_path / "empty"
    (previous / "documents").mkdir(parents=True)
    for stage in TASK_STAGES:
        out = tmp_path / stage.name
        result = run(argv(stage, previous, out, tmp_path / "state"))
        assert result.returncode == 0, (stage.name, result.stderr)
        previous = out
    assert json.loads((previous / "manifest.json").read_text())["tokens"] == 0


def test_unfinished_upstream_output_is_refused(tmp_path: Path, corpus: Path) -> None:
    """A stage killed in the middle leaves an output that no later stage may read."""
    quality = STAGES["quality"]
    upstream = tmp_path / "quality"
    process, _ = start_paused(argv(quality, corpus, upstream, tmp_path / "state"), tmp_path / "pause")
    process.kill()  # kill -9: no cleanup at all
    process.communicate(timeout=60)
    result = run(argv(STAGES["minhash"], upstream, tmp_path / "docs", tmp_path / "state"))
    assert result.returncode == 1
    assert "unfinished nordpipe quality output" in result.stderr and "0/3 tasks complete" in result.stderr


def test_two_files_with_one_output_name_exit_1(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    for sub in ("a__b", "a/b"):
        (folder / sub).mkdir(parents=True)
        with gzip.open(folder / sub / "x.jsonl.gz", "wt") as handle:
            handle.write(json.dumps(record(f"{sub}-1", "Hej med dig og dem.")) + "\n")
    result = run(argv(STAGES["quality"], folder, tmp_path / "out", tmp_path / "state"))
    assert result.returncode == 1
    assert "would both be written as a__b__x.jsonl.gz" in result.stderr


# --------------------------------------------------------------------------------------------
# OUTPUT and --force


@pytest.mark.parametrize("where", ["input itself", "inside input", "containing input"])
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_output_overlapping_input_exits_2_and_touches_nothing(stage: Stage, where: str, force: bool,
                                                              tmp_path: Path, corpus: Path) -> None:
    before = tree_digest(tmp_path)
    inp = {"input itself": corpus, "inside input": corpus, "containing input": corpus / "alpha"}[where]
    out = {"input itself": corpus, "inside input": corpus / "out", "containing input": corpus}[where]
    if force and stage.name in REBUILDS_EVERY_RUN:
        pytest.skip("this stage has no --force")
    result = run(argv(stage, inp, out, tmp_path / "state", *(force_flag(stage) if force else [])))
    assert result.returncode == 2, result.stderr
    assert "usage error" in result.stderr
    assert tree_digest(tmp_path) == before
    assert not list(tmp_path.rglob(".nordpipe"))


def test_force_deletes_only_what_this_stage_wrote(stage: Stage, tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    first = run(argv(stage, corpus, out, tmp_path / "state1"))
    assert first.returncode == 0, first.stderr
    (out / "notes.txt").write_text("mine")
    (out / "keep").mkdir()
    (out / "keep" / "x.jsonl.gz").write_bytes(b"not nordpipe's")
    other = OTHER_PARAMETERS[stage.name]
    refused = run(argv(stage, corpus, out, tmp_path / "state2", *other))
    assert refused.returncode == 1 if not stage.name.startswith("export") else refused.returncode == 0
    if refused.returncode == 1:
        assert "rerun with --force" in refused.stderr
        forced = run(argv(stage, corpus, out, tmp_path / "state2", *other, "--force"))
        assert forced.returncode == 0, forced.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "keep" / "x.jsonl.gz").read_bytes() == b"not nordpipe's"
    assert outputs(stage, out)


def test_another_stages_output_is_never_overwritten(stage: Stage, tmp_path: Path, corpus: Path) -> None:
    other = STAGES["quality"] if stage.name != "quality" else STAGES["urls"]
    out = tmp_path / "out"
    assert run(argv(other, corpus, out, tmp_path / "s1")).returncode == 0
    before = tree_digest(out)
    result = run(argv(stage, corpus, out, tmp_path / "s2", *force_flag(stage)))
    assert result.returncode == 2, result.stderr
    assert f"holds the output of stage {other.name!r}" in result.stderr
    assert tree_digest(out) == before


def test_a_folder_that_is_not_a_nordpipe_output_is_refused(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    result = run(argv(STAGES["quality"], corpus, out, tmp_path / "s", "--force"))
    assert result.returncode == 2 and "holds no nordpipe run" in result.stderr
    assert (out / "thesis.tex").read_text() == "years of work"


# --------------------------------------------------------------------------------------------
# Paths


def test_relative_and_absolute_paths_give_identical_outputs(stage: Stage, tmp_path: Path, corpus: Path) -> None:
    relative = run(argv(stage, "data", "out-rel", Path("state-rel")), cwd=tmp_path)
    assert relative.returncode == 0, relative.stderr
    absolute = run(argv(stage, corpus, tmp_path / "out-abs", tmp_path / "state-abs"))
    assert absolute.returncode == 0, absolute.stderr
    rel_outputs = outputs(stage, tmp_path / "out-rel")
    assert rel_outputs and rel_outputs == outputs(stage, tmp_path / "out-abs")
    if stage.writes[0] == "documents":
        # both datasets' dump.jsonl.gz are kept, under dataset-qualified names
        names = {Path(k).name for k in rel_outputs if k.startswith("documents/")}
        assert {"alpha__dump.jsonl.gz", "beta__dump.jsonl.gz"} <= names, names
        stats = json.loads((tmp_path / "out-rel" / ".nordpipe" / "stats.json").read_text())
        assert stats["documents_in"] == 105


# --------------------------------------------------------------------------------------------
# Signals, killed workers, stale locks


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_every_process_and_a_rerun_completes_identically(stage: Stage, signum: int,
                                                                       tmp_path: Path, corpus: Path) -> None:
    if signum == signal.SIGINT and stage.name not in ("quality", "minhash", "export sentences"):
        pytest.skip("SIGINT is checked on one stage of each kind; SIGTERM on all")
    out = tmp_path / "out"
    args = argv(stage, corpus, out, tmp_path / "state", "--workers", "2") if stage in TASK_STAGES else \
        argv(stage, corpus, out, tmp_path / "state")
    process, _ = start_paused(args, tmp_path / "pause")
    family = descendants(process.pid)  # workers, the forkserver, pools
    assert family or stage not in TASK_STAGES
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert "rerun the same command to resume" in stderr
    assert wait_for(lambda: not alive(family) and not processes_mentioning(str(tmp_path)), 20,
                    f"no process of the run left: {alive(family)}")
    lock = json.loads((out / ".nordpipe" / "lock").read_text())
    assert lock.get("released") is True
    assert not (out / ".nordpipe" / "complete.json").exists()
    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr
    assert "taking over" not in rerun.stderr
    reference = run(argv(stage, corpus, tmp_path / "reference", tmp_path / "state-ref"))
    assert reference.returncode == 0, reference.stderr
    assert outputs(stage, out) == outputs(stage, tmp_path / "reference")


@pytest.mark.parametrize("stage", TASK_STAGES, ids=ids)
def test_worker_killed_with_9_fails_the_stage_naming_the_task(stage: Stage, tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    args = argv(stage, corpus, out, tmp_path / "state", "--workers", "2")
    process, paused = start_paused(args, tmp_path / "pause")
    family = descendants(process.pid)
    worker_pid = int(paused[0].name.rsplit("-", 1)[1])
    task = paused[0].name.split("-")[0].removeprefix("task")
    killed_at = time.time()
    os.kill(worker_pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert time.time() - killed_at < 15
    assert f"task {task} was killed by SIGKILL" in stderr
    assert wait_for(lambda: not alive(family), 20, f"no process of the run left: {alive(family)}")
    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr
    reference = run(argv(stage, corpus, tmp_path / "reference", tmp_path / "state-ref"))
    assert reference.returncode == 0, reference.stderr
    assert outputs(stage, out) == outputs(stage, tmp_path / "reference")


@pytest.mark.parametrize("stage", [STAGES["quality"], STAGES["lines"], STAGES["export pairs"]], ids=ids)
def test_lock_of_a_killed_stage_is_taken_over_with_a_note(stage: Stage, tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    args = argv(stage, corpus, out, tmp_path / "state")
    process, _ = start_paused(args, tmp_path / "pause")
    family = descendants(process.pid)
    process.kill()  # the stage itself, with -9: it cannot release anything
    process.communicate(timeout=60)
    # its workers follow it (they die with their parent) and stop writing
    assert wait_for(lambda: not alive(family), 20, f"the killed stage's workers to exit: {alive(family)}")
    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr
    assert "taking over" in rerun.stderr and "which is gone" in rerun.stderr
    reference = run(argv(stage, corpus, tmp_path / "reference", tmp_path / "state-ref"))
    assert reference.returncode == 0, reference.stderr
    assert outputs(stage, out) == outputs(stage, tmp_path / "reference")


def test_a_running_stage_keeps_its_lock(tmp_path: Path, corpus: Path) -> None:
    stage = STAGES["quality"]
    process, _ = start_paused(argv(stage, corpus, tmp_path / "out", tmp_path / "s"), tmp_path / "pause")
    try:
        second = run(argv(stage, corpus, tmp_path / "out", tmp_path / "s"))
        assert second.returncode == 1 and "is in use by a running nordpipe (pid" in second.stderr
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_readme_documents_every_stage_and_parameter_as_generated() -> None:
    """README's stage table and pipeline parameter schema are ``nordpipe stages --markdown``."""
    from nordpipe.cli.main import app  # noqa: F401 - registers the commands the schema reads
    from nordpipe.cli.stages import stages_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    embedded = readme.split("<!-- stages:begin -->\n", 1)[1].split("<!-- stages:end -->", 1)[0]
    generated = stages_markdown()
    assert embedded == generated, "README is stale: paste `nordpipe stages --markdown` between the stages markers"
    for stage in STAGES.values():
        assert f"| `{stage.name}` | `{stage.cli}` |" in generated
    assert "| `state` | text | required |" in generated


def test_no_stage_internal_field_leaks_and_characters_chain_up(tmp_path: Path, corpus: Path) -> None:
    """Steps that shorten texts (C4's line filter, line dedup) keep the original length in
    ``metadata.nordpipe.chars_in`` while the stage runs; it never reaches a written record, so
    each stage's ``characters_in`` is exactly what the stage before it wrote."""
    previous, previous_stats = corpus, None
    for stage in (STAGES["quality"], STAGES["lines"], STAGES["minhash"]):
        out = tmp_path / stage.name
        result = run(argv(stage, previous, out, tmp_path / "state", "--keep-removed"))
        assert result.returncode == 0, result.stderr
        stats = json.loads((out / ".nordpipe" / "stats.json").read_text())
        written = 0
        for path in [*out.glob("documents/*.jsonl.gz"), *out.glob("removed/*.jsonl.gz")]:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    doc = decode_record(json.loads(line))
                    assert "chars_in" not in doc["metadata"].get("nordpipe", {}), (stage.name, doc["id"])
                    if "documents" in path.parts:
                        written += len(doc["text"])
        assert stats["characters_out"] == written
        if previous_stats is not None:
            assert stats["characters_in"] == previous_stats["characters_out"]
            assert stats["documents_in"] == previous_stats["documents_out"]
        previous, previous_stats = out, stats
    assert previous_stats and previous_stats["documents_out"] > 0


def test_registry_names_commands_and_run_functions_that_exist() -> None:
    from nordpipe.cli.pipeline import command_params
    from nordpipe.pipeline import STAGE_COMMANDS

    for stage in STAGES.values():
        assert callable(stage.run_function()), stage.name
        assert command_params(list(stage.command)), stage.cli  # the command exists and has options
    assert {name: list(s.command) for name, s in STAGES.items() if s.in_pipelines} == \
        {name: list(command) for name, command in STAGE_COMMANDS.items()}


def test_a_stage_runs_without_the_cli(tmp_path: Path, corpus: Path) -> None:
    """The run function of the registry is the stage: the same protocol, no CLI in between."""
    run_urls = STAGES["urls"].run_function()
    stats = run_urls(str(corpus), str(tmp_path / "out"), datatrove_list=False)
    assert stats["stage"] == "urls" and stats["documents_in"] == 105
    assert json.loads((tmp_path / "out" / ".nordpipe" / "complete.json").read_text())["documents_out"] == \
        stats["documents_out"]


# --------------------------------------------------------------------------------------------
# Ingest: the same contract, with raw files as input


@pytest.fixture
def raw_dump(tmp_path: Path) -> Path:
    """Two raw jsonl files of forum posts, with their own field names."""
    folder = tmp_path / "raw"
    folder.mkdir()
    rng = random.Random(3)
    for part in range(2):
        with open(folder / f"posts-{part}.jsonl", "w", encoding="utf-8") as handle:
            for i in range(40):
                post = {"post_id": f"{part}-{i}", "body": danish_text(rng, 5), "date": f"2023-0{part + 1}-1{i % 9}"}
                handle.write(json.dumps(post, ensure_ascii=False) + "\n")
    return folder


def ingest_args(raw: str | Path, output: str | Path, *extra: str) -> list[str]:
    return ["ingest", str(raw), "--dataset", "forum", "--output", str(output), "--text-field", "body",
            "--id-field", "post_id", "--created-field", "date", "--added", "2024-06-01", *extra]


def test_ingest_missing_raw_input_exits_1(tmp_path: Path) -> None:
    result = run(ingest_args(tmp_path / "no-such-dump.jsonl", tmp_path / "data"))
    assert result.returncode == 1, result.stderr
    assert "no-such-dump.jsonl" in result.stderr
    assert not (tmp_path / "data" / "forum" / "documents").exists()


@pytest.mark.parametrize("where", ["inside input", "input itself", "containing input"])
def test_ingest_output_overlapping_raw_input_exits_2(tmp_path: Path, raw_dump: Path, where: str) -> None:
    """The dataset folder OUTPUT/NAME is what must not overlap the raw files."""
    if where == "containing input":
        nested = tmp_path / "forum" / "dumps"
        nested.parent.mkdir()
        raw_dump.rename(nested)
        raw_dump = nested
    before = tree_digest(tmp_path)
    if where == "inside input":
        args = ingest_args(raw_dump, raw_dump / "out")
    else:  # OUTPUT/forum is the raw folder itself, or the folder holding it
        target = raw_dump if where == "input itself" else raw_dump.parent
        args = ["ingest", str(raw_dump), "--dataset", target.name, "--output", str(target.parent),
                "--text-field", "body", "--created", "2024"]
    result = run(args)
    assert result.returncode == 2, result.stderr
    assert "usage error" in result.stderr
    assert tree_digest(tmp_path) == before


def test_ingest_relative_and_absolute_paths_give_identical_outputs(tmp_path: Path, raw_dump: Path) -> None:
    assert run(ingest_args("raw", "data-rel"), cwd=tmp_path).returncode == 0
    assert run(ingest_args(raw_dump, tmp_path / "data-abs")).returncode == 0
    rel = tree_digest(tmp_path / "data-rel" / "forum" / "documents")
    assert rel and rel == tree_digest(tmp_path / "data-abs" / "forum" / "documents")


def test_ingest_sigterm_and_killed_worker_then_rerun_identically(tmp_path: Path, raw_dump: Path) -> None:
    args = ingest_args(raw_dump, tmp_path / "data", "--workers", "2")
    process, paused = start_paused(args, tmp_path / "pause")
    family = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert wait_for(lambda: not alive(family), 20, "no process of the run left")
    process, paused = start_paused(args, tmp_path / "pause2")
    os.kill(int(paused[0].name.rsplit("-", 1)[1]), signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "was killed by SIGKILL" in stderr, stderr
    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr
    assert run(ingest_args(raw_dump, tmp_path / "reference")).returncode == 0
    assert tree_digest(tmp_path / "data" / "forum" / "documents") == \
        tree_digest(tmp_path / "reference" / "forum" / "documents")
