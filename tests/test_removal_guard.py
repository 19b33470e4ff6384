"""The removal-share guard (``runner.removal_guard``) through the real ``nordpipe`` commands.

A stage that removes more than ``--max-removed-share`` (default 0.95) of its input exits 1,
names the stage, the counts, the share and the top reasons, and leaves its output without a
completion record, so the next stage refuses it; a rerun with a higher limit accepts the output
already written (the same files, not recomputed); an empty input has no share. ``nordpipe run``
applies the limit per stage and to the whole chain. Synthetic data only: the rule needs no
real text.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from conftest import nordpipe_executable


def run(*args: Any, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True, timeout=900,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200"})


TEXT = ("Dette er dokument nummer {i} om vejret i Danmark. Det regner meget i dag, og vinden er hård ved kysten. "
        "Meteorologerne venter mere sol i weekenden, men det bliver koldt om natten.")


def records(hosts: list[str], text: str | None = None) -> list[dict[str, Any]]:
    return [{"id": f"d{i}", "text": (text or TEXT).format(i=i), "source": "test", "added": "2024-01-01",
             "created": "2024-01-01, 2024-01-01", "metadata": {"url": f"https://{host}/side/{i}"}}
            for i, host in enumerate(hosts)]


def dataset(folder: Path, rows: list[dict[str, Any]]) -> Path:
    (folder / "documents").mkdir(parents=True)
    with gzip.open(folder / "documents" / "part.jsonl.gz", "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return folder


def blocklist(path: Path, *domains: str) -> Path:
    path.write_text("".join(f"{d}\n" for d in domains), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under OUTPUT/documents with its inode and modification time: equal snapshots
    mean the files were not written again."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted((folder / "documents").rglob("*")) if p.is_file()}


def test_stage_over_the_limit_fails_and_is_not_complete(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data", records(["blocked.dk"] * 19 + ["fine.dk"] * 1 + ["blocked.dk"] * 20))
    block = blocklist(tmp_path / "block.txt", "blocked.dk")
    out = tmp_path / "urls"
    refused = run("filter", "urls", data, out, "--blocklist", block)
    assert refused.returncode == 1, refused.stderr
    message = " ".join(refused.stderr.split())
    assert "stage urls (nordpipe filter urls) removed 97.5% of its input" in message
    assert "more than --max-removed-share 0.95" in message
    assert "40 documents in, 1 kept, 39 removed" in message
    assert "urls:blocklist(user) 39" in message
    assert "NOT marked complete" in message and "--max-removed-share 1" in message
    assert not (out / ".nordpipe" / "complete.json").exists()
    stats = json.loads((out / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_out"] == 1 and stats["removed_total"] == 39
    status = run("status", out)
    assert status.returncode == 1
    # stage<TAB>key<TAB>value lines, as the README promises for plain-text summaries
    fields = dict(line.split("\t")[1:] for line in status.stdout.splitlines())
    assert all(line.split("\t")[0] == "urls" for line in status.stdout.splitlines())
    assert fields["complete"] == "no" and fields["documents_out"] == "1" and fields["removed_total"] == "39"

    # the next stage will not read it
    downstream = run("dedup", "docs", out, tmp_path / "docs")
    assert downstream.returncode == 1 and "unfinished nordpipe urls output" in " ".join(downstream.stderr.split())

    # told that it is expected: the output already written is accepted, not written again
    before = snapshot(out)
    assert before, "the refused run wrote its documents"
    accepted = run("filter", "urls", data, out, "--blocklist", block, "--max-removed-share", "1")
    assert accepted.returncode == 0, accepted.stderr
    assert snapshot(out) == before
    completion = json.loads((out / ".nordpipe" / "complete.json").read_text())
    assert completion["documents_out"] == 1
    assert run("dedup", "docs", out, tmp_path / "docs").returncode == 0

    # the same command without the permission refuses the output again and withdraws it
    again = run("filter", "urls", data, out, "--blocklist", block)
    assert again.returncode == 1 and not (out / ".nordpipe" / "complete.json").exists()


def test_share_at_the_limit_passes_and_the_limit_is_configurable(tmp_path: Path) -> None:
    # 19 of 20 removed: exactly 95%, which is not more than the default
    data = dataset(tmp_path / "data", records(["blocked.dk"] * 19 + ["fine.dk"]))
    block = blocklist(tmp_path / "block.txt", "blocked.dk")
    passed = run("filter", "urls", data, tmp_path / "default", "--blocklist", block)
    assert passed.returncode == 0, passed.stderr
    assert (tmp_path / "default" / ".nordpipe" / "complete.json").exists()
    strict = run("filter", "urls", data, tmp_path / "strict", "--blocklist", block, "--max-removed-share", "0.5")
    assert strict.returncode == 1
    assert "removed 95.0% of its input, more than --max-removed-share 0.5" in " ".join(strict.stderr.split())
    assert run("filter", "urls", data, tmp_path / "x", "--max-removed-share", "1.5").returncode == 2


def test_empty_input_has_no_share(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "documents").mkdir(parents=True)
    result = run("filter", "urls", empty, tmp_path / "out", "--blocklist", blocklist(tmp_path / "b.txt", "x.dk"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / ".nordpipe" / "complete.json").exists()


def test_dedup_stages_count_removed_documents(tmp_path: Path) -> None:
    """MinHash: 30 copies of one text keep 1 (96.7% removed): refused, then accepted by a rerun
    that reuses the finished phases. Line dedup: a document emptied by line removal is a removed
    document; the same data again with --rerun-seen is emptied entirely."""
    same = "Én og samme tekst om vejret, gentaget i mange kopier på nettet. " * 6
    copies = dataset(tmp_path / "copies", records(["a.dk"] * 30, text=same + " "))
    out = tmp_path / "docs"
    refused = run("dedup", "docs", copies, out)
    assert refused.returncode == 1
    assert "stage minhash (nordpipe dedup docs) removed 96.7% of its input" in " ".join(refused.stderr.split())
    assert "30 documents in, 1 kept, 29 removed" in " ".join(refused.stderr.split())
    before = snapshot(out)
    accepted = run("dedup", "docs", copies, out, "--max-removed-share", "1")
    assert accepted.returncode == 0, accepted.stderr
    assert snapshot(out) == before

    data = dataset(tmp_path / "lines-data", records([f"h{i}.dk" for i in range(10)]))
    state = tmp_path / "state"
    assert run("dedup", "lines", data, tmp_path / "first", "--state", state).returncode == 0
    again = run("dedup", "lines", data, tmp_path / "again", "--state", state, "--rerun-seen")
    assert again.returncode == 1
    assert "stage lines (nordpipe dedup lines) removed 100.0% of its input" in " ".join(again.stderr.split())
    accepted = run("dedup", "lines", data, tmp_path / "again", "--state", state, "--rerun-seen", "--max-removed-share", "1")
    assert accepted.returncode == 0, accepted.stderr
    stats = json.loads((tmp_path / "again" / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_out"] == 0 and stats["documents_in"] == 10


def test_only_removing_stages_take_the_option() -> None:
    for command, has in ((["filter", "urls"], True), (["filter", "quality"], True), (["dedup", "lines"], True),
                         (["dedup", "docs"], True), (["pii"], False), (["tokenize"], False), (["ingest"], False)):
        assert ("--max-removed-share" in run(*command, "--help").stdout) is has, command


def _pipeline(tmp_path: Path, top: str = "", urls_params: str = "") -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    raw.mkdir()
    hosts = ["a.dk"] * 80 + ["b.dk"] * 16 + ["c.dk"] * 4
    with open(raw / "web.jsonl", "w", encoding="utf-8") as handle:
        for i, host in enumerate(hosts):
            handle.write(json.dumps({"id": f"w{i}", "text": TEXT.format(i=i), "url": f"https://{host}/{i}"}) + "\n")
    root = tmp_path / "root"
    path = tmp_path / "p.yaml"
    path.write_text(
        f"root: {root}\n{top}"
        "datasets:\n"
        "  - name: web\n"
        f"    raw: ['{raw}']\n"
        "    params: {text_field: text, url_field: url, language: da, license: cc0-1.0, created: '2024'}\n"
        "stages:\n"
        "  - type: urls\n"
        "    name: urls-a\n"
        f"    params: {{blocklist: '{blocklist(tmp_path / 'a.txt', 'a.dk')}'{urls_params}}}\n"
        "  - type: urls\n"
        "    name: urls-b\n"
        f"    params: {{blocklist: '{blocklist(tmp_path / 'b.txt', 'b.dk')}'}}\n", encoding="utf-8")
    return path, root


def test_pipeline_checks_the_whole_chain(tmp_path: Path) -> None:
    """80% then 80% of the rest: each stage passes, the chain removed 96% of the ingested
    documents and the batch stays unfinished until a run with a higher limit accepts it."""
    path, root = _pipeline(tmp_path)
    first = run("run", path)
    assert first.returncode == 1
    message = " ".join(first.stderr.split())
    assert "the stages together removed 96.0% of the ingested documents" in message
    assert "100 documents ingested, 4 kept, 96 removed" in message
    assert "urls-a: urls:blocklist(user) 80" in message and "urls-b: urls:blocklist(user) 16" in message
    batch = json.loads((root / "batches" / "0001" / "batch.json").read_text())
    assert not batch.get("done")

    accepted = run("run", path, "--max-removed-share", "1")
    assert accepted.returncode == 0, accepted.stderr
    assert "skip\turls-a" in accepted.stdout and "skip\turls-b" in accepted.stdout
    assert "finished\tbatch 0001" in accepted.stdout
    assert json.loads((root / "batches" / "0001" / "batch.json").read_text())["done"] is True


def test_pipeline_stage_limits(tmp_path: Path) -> None:
    """The file's max_removed_share reaches every removing stage; a stage's own params win."""
    path, root = _pipeline(tmp_path, top="max_removed_share: 0.5\n")
    refused = run("run", path)
    assert refused.returncode == 1
    assert "stage urls-a failed" in refused.stderr
    assert "removed 80.0% of its input, more than --max-removed-share 0.5" in " ".join(refused.stderr.split())
    assert not (root / "batches" / "0001" / "01-urls-a" / ".nordpipe" / "complete.json").exists()

    (tmp_path / "own").mkdir()
    path, root = _pipeline(tmp_path / "own", top="max_removed_share: 0.97\n", urls_params=", max_removed_share: 0.5")
    own = run("run", path)
    assert own.returncode == 1 and "more than --max-removed-share 0.5" in " ".join(own.stderr.split())
    accepted = run("run", path, "--max-removed-share", "1")
    # the stage's own 0.5 still applies to it: the command line sets the others and the chain
    assert accepted.returncode == 1 and "more than --max-removed-share 0.5" in " ".join(accepted.stderr.split())

    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("max_removed_share: 0.97", "max_removed_share: 2"))
    result = run("run", bad)
    assert result.returncode == 2 and f"{bad}:2: max_removed_share 2" in " ".join(result.stderr.split())
