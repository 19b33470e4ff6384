"""Line deduplication (``nordpipe dedup lines``): exact reference, task-count independence,
incremental runs, kill -9 and resume, parameters, exemptions, CLI."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import nordpipe_executable, record

import nordpipe.lines as lines_module
from nordpipe.bloom import BloomFilter
from nordpipe.documents import decode_record
from nordpipe.lines import LineDedupConfig, normalized_lines, remove_lines, run_line_dedup
from nordpipe.runner import RunError, RunOptions

WORDS = ("vejret", "kommunen", "skolen", "havnen", "bussen", "regeringen", "borgerne", "toget", "marken",
         "sommeren", "vinteren", "byrådet", "forældrene", "lægen", "butikken", "cyklen", "fjorden", "skoven")
BOILERPLATE = (
    "Vi bruger cookies for at forbedre din oplevelse",
    "Del artiklen på Facebook eller Twitter",
    "Abonnér på vores nyhedsbrev og få de seneste nyheder",
    "Kontakt redaktionen på telefon 33 12 34 56",
    "Alle rettigheder forbeholdes",
    "Læs også: Sådan sparer du på varmen",
)


def sentence(rng: random.Random) -> str:
    words = rng.sample(WORDS, 6)
    return f"{words[0].capitalize()} {' '.join(words[1:])} {rng.randrange(10**6)}."


def make_corpus(folder: Path, files: int, docs: int, seed: int, prefix: str = "", source: str = "web",
                shared_pool: list[str] | None = None) -> None:
    """Documents of unique sentences, boilerplate lines (with whitespace and case variants),
    a pool of lines repeated across files, blank lines and short lines."""
    rng = random.Random(seed)
    pool = shared_pool if shared_pool is not None else [sentence(rng) for _ in range(40)]
    out = folder / "documents"
    out.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        with gzip.open(out / f"{prefix}{f:03d}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for d in range(docs):
                lines = []
                for _ in range(rng.randrange(2, 12)):
                    roll = rng.random()
                    if roll < 0.2:
                        line = rng.choice(BOILERPLATE)
                        line = rng.choice([line, "  " + line.replace(" ", "\t", 1) + " ", line.upper()])
                    elif roll < 0.35:
                        line = rng.choice(pool)
                    elif roll < 0.42:
                        line = ""
                    elif roll < 0.47:
                        line = rng.choice(["Ja.", "Nej.", "Menu"])
                    else:
                        line = sentence(rng)
                    lines.append(line)
                text = "\n".join(lines)
                if not text.strip():
                    text = sentence(rng)
                handle.write(json.dumps(record(f"{prefix}{f}-{d}", text, source=source)) + "\n")


def read_documents(output: Path) -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted((output / "documents").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                doc = decode_record(json.loads(line))
                docs[doc["id"]] = doc
    return docs


def read_inputs(folder: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((folder / "documents").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            docs.extend(decode_record(json.loads(line)) for line in handle)
    return docs


def output_files(output: Path) -> dict[str, bytes]:
    """Decompressed output shards by name (documents and removed)."""
    found = {}
    for kind in ("documents", "removed"):
        for path in sorted((output / kind).glob("*.jsonl.gz")) if (output / kind).exists() else []:
            found[f"{kind}/{path.name}"] = gzip.decompress(path.read_bytes())
    return found


def filter_bits(state: Path) -> dict[str, bytes]:
    current = (state / "CURRENT").read_text().strip()
    return {p.name: BloomFilter.load(str(p)).bits.tobytes() for p in sorted((state / current).glob("part-*.bloom"))}


def reference_texts(docs: list[dict[str, Any]], config: LineDedupConfig, seen: set[str] | None = None,
                    exempt: frozenset[str] = frozenset()) -> tuple[dict[str, str | None], int]:
    """Exact line dedup with a Python set: expected text per id (None: emptied), lines removed."""
    seen = set() if seen is None else seen
    expected: dict[str, str | None] = {}
    removed = 0
    for doc in docs:
        if doc["source"] in exempt:
            expected[doc["id"]] = doc["text"]
            continue
        lines = doc["text"].split("\n")
        flags = []
        for key in normalized_lines(doc["text"], config):
            tracked = len(key.strip()) >= max(1, config.min_line_chars)
            flags.append(tracked and key in seen)
            if tracked:
                seen.add(key)
        removed += sum(flags)
        text = "\n".join(remove_lines(lines, flags)) if any(flags) else doc["text"]
        expected[doc["id"]] = text if text.strip() else None
    return expected, removed


def run(inp: Path, out: Path, state: Path, tasks: int = 1, workers: int = 1, keep_removed: bool = False,
        rerun_seen: bool = False, keep_generations: int = 3, **config: Any) -> dict[str, Any]:
    config = {"expected_lines": 100_000, **config}
    options = RunOptions(tasks=tasks, workers=workers, keep_removed=keep_removed)
    return run_line_dedup(str(inp), str(out), str(state), config, options, config.pop("exempt", ()),
                          rerun_seen=rerun_seen, keep_generations=keep_generations)


# --------------------------------------------------------------------------------------------


def test_normalization_keeps_lines_aligned() -> None:
    text = "  Hej\tverden  \nHEJ VERDEN\r\nÅr 2024\n\n"
    plain = LineDedupConfig()
    assert normalized_lines(text, plain) == ["Hej verden", "HEJ VERDEN", "År 2024", "", ""]
    folded = LineDedupConfig(lowercase=True, normalize_digits=True)
    assert normalized_lines(text, folded) == ["hej verden", "hej verden", "år 0000", "", ""]
    exact = LineDedupConfig(normalize_whitespace=False)
    assert normalized_lines(text, exact) == text.split("\n")


def test_remove_lines_closes_the_gaps_it_leaves() -> None:
    lines = ["Cookie", "", "Tekst", "", "Cookie", "", "Mere tekst", "", "Cookie"]
    flags = [line == "Cookie" for line in lines]
    assert remove_lines(lines, flags) == ["Tekst", "", "Mere tekst"]
    assert remove_lines(["a", "", "", "b"], [False] * 4) == ["a", "", "", "b"]


def test_first_occurrences_equal_numpy_unique() -> None:
    rng = np.random.default_rng(3)
    for size in (0, 1, 2, 50, 5_000):
        values = rng.integers(0, max(1, size // 3), size).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        unique, first = lines_module.first_occurrences(values)
        expected_unique, expected_first = np.unique(values, return_index=True)
        assert np.array_equal(unique, expected_unique) and np.array_equal(first, expected_first)


def test_removed_lines_equal_an_exact_reference(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in", files=3, docs=120, seed=1)
    stats = run(tmp_path / "in", tmp_path / "out", tmp_path / "state", tasks=2)
    config = LineDedupConfig(expected_lines=100_000)
    expected, removed = reference_texts(read_inputs(tmp_path / "in"), config)
    got = read_documents(tmp_path / "out")
    assert removed > 300
    assert {k: v for k, v in expected.items() if v is not None} == {k: d["text"] for k, d in got.items()}
    emptied = [k for k, v in expected.items() if v is None]
    summary = stats["line_dedup"]
    assert summary["lines_removed"] == removed
    assert summary["documents_emptied"] == len(emptied) == stats["removed"].get("line_dedup:empty", 0)
    assert summary["characters_removed"] > 0
    assert stats["characters_in"] - stats["characters_out"] >= summary["characters_removed"]
    assert 0 < summary["filter_estimated_fpr"] < 1e-6


def test_false_positives_stay_within_the_configured_rate(tmp_path: Path) -> None:
    """A deliberately small filter (rate 5% at 3,000 lines): lines of run B that are new are
    sometimes taken for lines of run A, but no more often than the rate allows, and every true
    duplicate is still removed."""
    pool = [sentence(random.Random(i)) for i in range(40)]
    make_corpus(tmp_path / "a", files=2, docs=150, seed=2, prefix="a", shared_pool=pool)
    make_corpus(tmp_path / "b", files=2, docs=150, seed=3, prefix="b", shared_pool=pool)
    config = {"expected_lines": 3_000, "fpr": 0.05}
    run(tmp_path / "a", tmp_path / "out-a", tmp_path / "state", **config)
    stats_b = run(tmp_path / "b", tmp_path / "out-b", tmp_path / "state", **config)
    cfg = LineDedupConfig(**config)
    seen: set[str] = set()
    reference_texts(read_inputs(tmp_path / "a"), cfg, seen)
    expected, removed = reference_texts(read_inputs(tmp_path / "b"), cfg, seen)
    got = read_documents(tmp_path / "out-b")
    # Every line the reference removes is gone; the extra removals are Bloom false positives.
    extra = stats_b["line_dedup"]["lines_removed"] - removed
    assert extra >= 0
    assert stats_b["line_dedup"]["duplicates_of_earlier_runs"] > 0
    new_lines = stats_b["line_dedup"]["lines_checked"] - removed
    bound = stats_b["line_dedup"]["filter_estimated_fpr"]
    assert bound <= 0.05 + 1e-9
    # Binomial upper bound (mean + 4 standard deviations) on the false positives among new lines.
    assert extra <= 0.05 * new_lines + 4 * (0.05 * new_lines) ** 0.5
    for doc_id, text in expected.items():
        if text is not None and doc_id in got:
            assert len(got[doc_id]["text"]) <= len(text)


def test_one_and_four_tasks_give_identical_outputs_and_state(tmp_path: Path, monkeypatch) -> None:
    make_corpus(tmp_path / "in", files=5, docs=60, seed=4)
    run(tmp_path / "in", tmp_path / "out1", tmp_path / "state1", tasks=1, keep_removed=True, partitions=3)
    # The 4-task run also writes each file's hashes in many small chunks: same result.
    monkeypatch.setattr(lines_module, "FLUSH_LINES", 7)
    run(tmp_path / "in", tmp_path / "out4", tmp_path / "state4", tasks=4, workers=2, keep_removed=True, partitions=3)
    one, four = output_files(tmp_path / "out1"), output_files(tmp_path / "out4")
    assert one and one == four
    index = json.loads((tmp_path / "out4/.nordpipe/lines/signature/t00000.index.json").read_text())
    assert len(index["files"]) > 5  # chunked
    assert filter_bits(tmp_path / "state1") == filter_bits(tmp_path / "state4")


def test_incremental_runs_equal_one_run_over_everything(tmp_path: Path) -> None:
    pool = [sentence(random.Random(i)) for i in range(40)]
    make_corpus(tmp_path / "a", files=2, docs=80, seed=5, prefix="a", shared_pool=pool)
    make_corpus(tmp_path / "b", files=2, docs=80, seed=6, prefix="b", shared_pool=pool)
    both = tmp_path / "ab" / "documents"
    both.mkdir(parents=True)
    for part in ("a", "b"):
        for path in (tmp_path / part / "documents").iterdir():
            os.link(path, both / path.name)
    run(tmp_path / "ab", tmp_path / "out-ab", tmp_path / "state-ab", tasks=3, partitions=2)
    run(tmp_path / "a", tmp_path / "out-a", tmp_path / "state", tasks=2, partitions=2)
    stats_b = run(tmp_path / "b", tmp_path / "out-b", tmp_path / "state", tasks=1, partitions=2)
    single = {k: v for k, v in output_files(tmp_path / "out-ab").items() if "/b" in k}
    assert single and single == output_files(tmp_path / "out-b")
    assert stats_b["line_dedup"]["duplicates_of_earlier_runs"] > 0
    assert filter_bits(tmp_path / "state") == filter_bits(tmp_path / "state-ab")
    state = json.loads((tmp_path / "state" / (tmp_path / "state" / "CURRENT").read_text().strip() / "state.json").read_text())
    assert [run["input"] for run in state["runs"]] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert state["generation"] == 2 and len(state["runs"][0]["inputs"]) == 2
    assert state["runs"][1]["parent"] == 1 and state["kind"] == "lines"


def test_state_refuses_other_parameters_and_stays_unchanged(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in", files=1, docs=20, seed=7)
    run(tmp_path / "in", tmp_path / "out", tmp_path / "state")
    before = filter_bits(tmp_path / "state")
    for change in ({"fpr": 1e-3}, {"min_line_chars": 3}, {"lowercase": True}, {"partitions": 4}):
        with pytest.raises(RunError, match="other parameters"):
            run(tmp_path / "in", tmp_path / f"out-{len(change)}", tmp_path / "state", **change)
    assert filter_bits(tmp_path / "state") == before
    # Unset options come from the state: a rerun without --expected-lines uses the state's (the
    # input is the state's own, so the run must say --rerun-seen).
    with pytest.raises(RunError, match="already in the line-dedup state"):
        run_line_dedup(str(tmp_path / "in"), str(tmp_path / "again"), str(tmp_path / "state"), {}, RunOptions())
    stats = run_line_dedup(str(tmp_path / "in"), str(tmp_path / "again"), str(tmp_path / "state"), {}, RunOptions(),
                           rerun_seen=True)
    assert stats["line_dedup"]["state_generation"] == 2
    assert stats["line_dedup"]["input_files_seen_before"] == 1


def test_exempt_sources_short_lines_and_removed_documents(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in", files=1, docs=60, seed=8, source="web")
    make_corpus(tmp_path / "legal", files=1, docs=60, seed=8, prefix="legal", source="legal")
    inp = tmp_path / "mixed" / "documents"
    inp.mkdir(parents=True)
    for folder in ("in", "legal"):
        for path in (tmp_path / folder / "documents").iterdir():
            os.link(path, inp / path.name)
    stats = run(tmp_path / "mixed", tmp_path / "out", tmp_path / "state", keep_removed=True,
                min_line_chars=0, exempt=["legal"])
    docs = read_documents(tmp_path / "out")
    legal_in = [d for d in read_inputs(tmp_path / "mixed") if d["source"] == "legal"]
    assert all(docs[d["id"]]["text"] == d["text"] for d in legal_in)
    expected, _ = reference_texts(read_inputs(tmp_path / "mixed"), LineDedupConfig(min_line_chars=0),
                                  exempt=frozenset({"legal"}))
    assert {k: v for k, v in expected.items() if v is not None} == {k: d["text"] for k, d in docs.items()}
    # min_line_chars=0: short lines such as "Menu" are deduplicated too.
    web = [d for d in docs.values() if d["source"] == "web"]
    assert sum(d["text"].split("\n").count("Menu") for d in web) <= 1
    removed_files = list((tmp_path / "out" / "removed").glob("*.jsonl.gz"))
    if stats["line_dedup"]["documents_emptied"]:
        removed = [decode_record(json.loads(line)) for p in removed_files for line in gzip.open(p, "rt")]
        assert {d["metadata"]["nordpipe"]["removed"] for d in removed} == {"line_dedup:empty"}
        assert all(d["metadata"]["nordpipe"]["line_dedup"]["lines_removed"] > 0 for d in removed)


def test_default_min_line_chars_keeps_short_lines(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in", files=1, docs=80, seed=9)
    run(tmp_path / "in", tmp_path / "out", tmp_path / "state")
    texts = [d["text"] for d in read_documents(tmp_path / "out").values()]
    assert sum(t.split("\n").count("Menu") for t in texts) > 5


def test_bad_input_is_quarantined_not_fatal(tmp_path: Path) -> None:
    docs = tmp_path / "in" / "documents"
    docs.mkdir(parents=True)
    good = [record(f"d{i}", f"Vi bruger cookies for at forbedre din oplevelse\nTekst nummer {i} her.") for i in range(5)]
    lines = [json.dumps(r) for r in good[:2]] + ["{not json", json.dumps({**good[2], "text": "   "})]
    lines += [json.dumps(r) for r in good[3:]]
    (docs / "x.jsonl").write_text("\n".join(lines) + "\n")
    stats = run(tmp_path / "in", tmp_path / "out", tmp_path / "state")
    assert stats["quarantined_total"] == 2
    assert stats["line_dedup"]["lines_removed"] == 3
    assert len(read_documents(tmp_path / "out")) == 4


def make_messy_inputs(folder: Path) -> None:
    """Clean and bad records in every format the fast paths treat differently: a clean gzip
    file, a gzip file of bad records, a truncated gzip file, plain jsonl, zstd (reference path)."""
    import zstandard

    docs = folder / "documents"
    docs.mkdir(parents=True)
    rng = random.Random(12)

    def good(i: int, **changes: Any) -> str:
        lines = [rng.choice(BOILERPLATE), sentence(rng), "", rng.choice(BOILERPLATE), sentence(rng)]
        return json.dumps({**record(f"m{i}", "\n".join(lines)), **changes}, ensure_ascii=False)

    clean = [good(i) for i in range(40)]
    bad = [good(100), "{not json", good(101, text="   \n "), good(102, added="2024-13-01"),
           good(103, created="2024-01-01, 2020-01-01"), good(104, text="Nul\x00 her"), good(105, metadata=[]),
           good(106, id=7), good(107, id=""), json.dumps(["an", "array"]), good(100), "",
           json.dumps({k: v for k, v in record("m108", "Ingen kilde her").items() if k != "source"}),
           good(109, added="2023-02-01"), good(110, added="2023-02-01"), good(111, text="x" * 200),
           good(112, added=["2024-05-01"]), good(113, created={"a": 1}), good(114, text=None)]
    with gzip.open(docs / "a-clean.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(clean) + "\n")
    with gzip.open(docs / "b-bad.jsonl.gz", "wb") as handle:
        handle.write("\n".join(bad).encode() + b"\n" + b'{"id": "u", "text": "\xff\xfe"}\n')
    truncated = gzip.compress(("\n".join(good(200 + i) for i in range(60)) + "\n").encode())
    (docs / "c-truncated.jsonl.gz").write_bytes(truncated[: len(truncated) * 2 // 3])
    (docs / "d-plain.jsonl").write_text("\n".join(good(300 + i) for i in range(20)) + "\n")
    (docs / "e-zstd.jsonl.zst").write_bytes(zstandard.compress(("\n".join(good(400 + i) for i in range(20)) + "\n").encode()))


def test_fast_paths_equal_the_reference_reader(tmp_path: Path, monkeypatch) -> None:
    """Phase 1 reads without building Documents and phase 3 skips validating files phase 1
    checked; both must see exactly what DocumentReader sees, bad records included."""
    make_messy_inputs(tmp_path / "in")
    config = {"expected_lines": 10_000}
    # Small chunks: the truncated file's fast read writes chunks that must be rolled back.
    monkeypatch.setattr(lines_module, "FLUSH_LINES", 5)
    fast = run(tmp_path / "in", tmp_path / "fast", tmp_path / "state-fast", keep_removed=True, **config)
    index = json.loads((tmp_path / "fast/.nordpipe/lines/signature/t00000.index.json").read_text())
    checked = {entry["stem"]: entry["checked"] for entry in index["files"]}
    assert checked == {"a-clean": True, "b-bad": False, "c-truncated": False, "d-plain": True, "e-zstd": False}
    monkeypatch.setattr(lines_module, "open_fast", lambda path: None)  # reference reader everywhere
    slow = run(tmp_path / "in", tmp_path / "slow", tmp_path / "state-slow", keep_removed=True, **config)
    signature = tmp_path / "{}/.nordpipe/lines/signature"
    for suffix in ("hashes", "parts", "docs", "counts.npy"):
        name = f"t00000.{suffix}"
        assert (Path(str(signature).format("fast")) / name).read_bytes() == (Path(str(signature).format("slow")) / name).read_bytes()
    assert output_files(tmp_path / "fast") == output_files(tmp_path / "slow")
    quarantine = {p.name: p.read_bytes() for p in sorted((tmp_path / "fast/quarantine").glob("*"))}
    assert quarantine == {p.name: p.read_bytes() for p in sorted((tmp_path / "slow/quarantine").glob("*"))}
    assert fast["quarantined_total"] == slow["quarantined_total"] == 16  # 15 bad lines, 1 broken stream
    assert fast["line_dedup"] | {"state_generation": 0} == slow["line_dedup"] | {"state_generation": 0}
    assert filter_bits(tmp_path / "state-fast") == filter_bits(tmp_path / "state-slow")
    # And the reference reader agrees with the exact reference on the documents it accepted.
    from nordpipe.steps import DocumentReader, is_active

    accepted = [{"id": d.id, "text": d.text, "source": d.metadata["source"]}
                for d in DocumentReader(str(tmp_path / "in")).run() if is_active(d)]
    expected, removed = reference_texts(accepted, LineDedupConfig(expected_lines=10_000))
    assert fast["line_dedup"]["lines_removed"] == removed > 0
    kept = read_documents(tmp_path / "fast")
    assert {k: v for k, v in expected.items() if v is not None} == {k: d["text"] for k, d in kept.items()}


def test_interrupted_commit_leaves_the_previous_state_valid(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in", files=1, docs=30, seed=10)
    run(tmp_path / "in", tmp_path / "out", tmp_path / "state")
    state = tmp_path / "state"
    before = filter_bits(state)
    # What a commit killed half-way leaves: a partial next generation.
    partial = state / "gen-000002.tmp"
    partial.mkdir()
    (partial / "part-00000.bloom").write_bytes(b"NPBLOOM1 partial")
    assert filter_bits(state) == before
    stats = run(tmp_path / "in", tmp_path / "out2", state, rerun_seen=True, keep_generations=1)
    assert stats["line_dedup"]["state_generation"] == 2
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("gen-")) == ["gen-000002"]


# --------------------------------------------------------------------------------------------
# The CLI


def test_cli_help_usage_and_summary(tmp_path: Path, nordpipe_cli) -> None:
    result = nordpipe_cli("dedup", "lines", "--help")
    assert result.returncode == 0 and "--state" in result.stdout and "--exempt-source" in result.stdout
    assert nordpipe_cli("dedup", "lines", "in", "out").returncode == 2  # --state missing
    assert nordpipe_cli("dedup", "lines", "in", "out", "--state", "s", "--fpr", "0").returncode == 2
    missing = nordpipe_cli("dedup", "lines", tmp_path / "nothing", tmp_path / "o", "--state", tmp_path / "s")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "s" / "CURRENT").exists()
    make_corpus(tmp_path / "in", files=2, docs=30, seed=11)
    result = nordpipe_cli("dedup", "lines", tmp_path / "in", tmp_path / "out", "--state", tmp_path / "st",
                          "--expected-lines", "10000", "--fpr", "1e-5", "--tasks", "2", "--ignore-case")
    assert result.returncode == 0, result.stderr
    rows = dict(line.split("\t")[1:] for line in result.stdout.splitlines())
    assert int(rows["lines_removed"]) > 0 and int(rows["characters_removed"]) > 0
    assert "documents_emptied" in rows and float(rows["filter_estimated_fpr"]) < 1e-5
    result = nordpipe_cli("dedup", "lines", tmp_path / "in", tmp_path / "out2", "--state", tmp_path / "st",
                          "--fpr", "0.01")
    assert result.returncode == 1 and "other parameters" in result.stderr


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*nordpipe_executable(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["signature", "decide", "filter"])
def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path: Path, kill_when: str) -> None:
    make_corpus(tmp_path / "in", files=8, docs=400, seed=12)
    common = ["--expected-lines", "2000000", "--tasks", "8", "--partitions", "4"]
    subprocess.run([*nordpipe_executable(), "dedup", "lines", str(tmp_path / "in"), str(tmp_path / "ref"),
                    "--state", str(tmp_path / "ref-state"), *common], check=True, capture_output=True)
    args = ["dedup", "lines", str(tmp_path / "in"), str(tmp_path / "out"), "--state", str(tmp_path / "state"), *common]
    marker = {
        "signature": tmp_path / "out/.nordpipe/lines/logs-signature/completions",
        "decide": tmp_path / "out/.nordpipe/lines/logs-decide/completions",
        "filter": tmp_path / "out/.nordpipe/tasks",
    }[kill_when]
    process = _start(args)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if marker.exists() and any(marker.iterdir()):
            break
        time.sleep(0.005)
    if process.poll() is not None:
        pytest.fail(f"the run ended before it could be killed at {kill_when}: {process.stderr.read().decode()}")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "state" / "CURRENT").exists()  # nothing committed by the killed run
    rerun = subprocess.run([*nordpipe_executable(), *args], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert output_files(tmp_path / "out") == output_files(tmp_path / "ref")
    assert filter_bits(tmp_path / "state") == filter_bits(tmp_path / "ref-state")
    ours = json.loads((tmp_path / "out/.nordpipe/stats.json").read_text())["line_dedup"]
    ref = json.loads((tmp_path / "ref/.nordpipe/stats.json").read_text())["line_dedup"]
    assert ours == ref


def test_real_danish_sentences(tmp_path: Path, shared: Path) -> None:
    sentences = [line[len("# text = "):].strip() for line in (shared / "data/ud/da_ddt-ud-dev.conllu").read_text().splitlines()
                 if line.startswith("# text = ")]
    rng = random.Random(13)
    docs = tmp_path / "in" / "documents"
    docs.mkdir(parents=True)
    records = []
    for i in range(200):
        lines = [*rng.sample(sentences, 4), rng.choice(BOILERPLATE)]
        rng.shuffle(lines)
        records.append(record(f"ud{i}", "\n".join(lines)))
    (docs / "ud.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run(tmp_path / "in", tmp_path / "out", tmp_path / "state")
    expected, removed = reference_texts(records, LineDedupConfig())
    got = read_documents(tmp_path / "out")
    assert removed >= 190
    assert {k: v for k, v in expected.items() if v is not None} == {k: d["text"] for k, d in got.items()}
    assert np.mean([len(d["text"]) for d in got.values()]) > 100


def test_a_run_overtaken_by_another_run_on_the_state_refuses_until_forced(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in", files=1, docs=30, seed=14)
    # What a run killed before its commit leaves, if another run then updates the state.
    work = tmp_path / "late" / ".nordpipe" / "lines"
    work.mkdir(parents=True)
    (work / "base.json").write_text(json.dumps({"generation": 0, "run_id": "killed-run"}))
    run(tmp_path / "in", tmp_path / "first", tmp_path / "state")
    with pytest.raises(RunError, match="changed since this run started"):
        run(tmp_path / "in", tmp_path / "late", tmp_path / "state")
    options = RunOptions(tasks=1, force=True)
    stats = run_line_dedup(str(tmp_path / "in"), str(tmp_path / "late"), str(tmp_path / "state"), {}, options, rerun_seen=True)
    assert stats["line_dedup"]["state_generation"] == 2
    assert stats["line_dedup"]["duplicates_of_earlier_runs"] == stats["line_dedup"]["lines_checked"] - stats["line_dedup"]["duplicates_within_run"]
