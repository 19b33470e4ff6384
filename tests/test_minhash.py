"""Near-duplicate document removal with MinHash (issue 6)."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nordpipe.documents import decode_record
from nordpipe.minhash import (
    MinhashConfig,
    MinhashHasher,
    MinhashIndex,
    connected_components,
    detection_probability,
    exact_jaccard,
    lsh_threshold,
    probability_curve,
    run_minhash,
)
from nordpipe.runner import RunError, RunOptions

# --------------------------------------------------------------------------------------------
# Corpus helpers (seeded; no network, no shared data)


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    letters = "abdefghijklmnoprstuvyæøå"
    return sorted({"".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(size)})


def record(
    doc_id: str, text: str, created: str = "2020-01-01, 2024-01-01", added: str = "2024-05-01"
) -> dict[str, Any]:
    return {"id": doc_id, "text": text, "source": "test", "added": added, "created": created, "metadata": {}}


def write_files(folder: Path, files: list[list[dict[str, Any]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, records in enumerate(files):
        with gzip.open(folder / f"{number:03d}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for item in records:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    return folder


def read_output(output: Path) -> dict[str, dict[str, Any]]:
    """id -> record, over documents/ and removed/."""
    found = {}
    for sub in ("documents", "removed"):
        for path in sorted((output / sub).glob("*.jsonl.gz")) if (output / sub).exists() else []:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    item = decode_record(json.loads(line))
                    found[item["id"]] = item
    return found


def minhash_info(item: dict[str, Any]) -> dict[str, Any] | None:
    return item["metadata"].get("nordpipe", {}).get("minhash")


def word_shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Independent reference shingling for the generated texts (no digits in them)."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def true_jaccard(x: str, y: str) -> float:
    a, b = word_shingles(x), word_shingles(y)
    return len(a & b) / len(a | b)


def planted_corpus(seed: int = 6) -> tuple[list[list[dict[str, Any]]], list[tuple[str, str]]]:
    """4 files: 600 unrelated documents plus 330 planted pairs at J from 0.5 to 1.0.

    The copy of a pair replaces ``m`` words spaced 10 apart, each replacement changing 5
    shingles, so J = (N - 5m) / (N + 5m) for N shingles; pairs are spread across files.
    """
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    docs: list[dict[str, Any]] = []
    pairs = []
    words_per_doc = 150
    shingles = words_per_doc - 4
    for i in range(600):
        docs.append(record(f"bg{i}", " ".join(rng.choice(vocab) for _ in range(words_per_doc)) + "."))
    for level in range(11):
        target = 0.5 + 0.05 * level
        m = round(shingles * (1 - target) / (5 * (1 + target)))
        for j in range(30):
            words = [rng.choice(vocab) for _ in range(words_per_doc)]
            copy = list(words)
            offset = rng.randint(5, 9)
            for k in range(m):
                copy[offset + 10 * k] = f"ny{rng.randint(0, 10**9)}x"
            a, b = f"p{level}-{j}a", f"p{level}-{j}b"
            docs.append(record(a, " ".join(words) + "."))
            docs.append(record(b, " ".join(copy) + "."))
            pairs.append((a, b))
    rng.shuffle(docs)
    files = [docs[i::4] for i in range(4)]
    return files, pairs


def clusters_by_id(output: Path) -> dict[str, tuple[str, int, str | None]]:
    """id -> (cluster, size, survivor id or None) for every clustered document."""
    found = {}
    for doc_id, item in read_output(output).items():
        info = minhash_info(item)
        if info:
            found[doc_id] = (info["cluster"], info["size"], info.get("survivor"))
    return found


# --------------------------------------------------------------------------------------------
# Hashing: datasketch is the reference


@pytest.mark.parametrize(
    "config",
    [MinhashConfig(), MinhashConfig(char_ngrams=True), MinhashConfig(ngram=3, bands=5, rows=4, seed=42)],
    ids=["words", "chars", "custom"],
)
def test_signatures_equal_datasketch(config: MinhashConfig) -> None:
    datasketch = pytest.importorskip("datasketch")
    rng = random.Random(1)
    vocab = vocabulary(rng, 500)
    texts = [
        "Det var en mørk og stormfuld nat i København, og 12.500 kroner forsvandt.",
        "Kort.",  # fewer words than one shingle: one shingle of all words
        "Þetta er íslenska; ÆØÅ æøå ÄÖ äö, og 3,5 % – tal.",
        *(" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 400))) for _ in range(40)),
    ]
    hasher = MinhashHasher(config)
    signatures, has_shingles = hasher.signatures(texts)
    assert has_shingles.all()
    for text, signature in zip(texts, signatures, strict=True):
        reference = hasher.datasketch_minhash(text)
        assert isinstance(reference, datasketch.MinHash) and reference.scheme == "affine32"
        assert reference.hashvalues.dtype == np.uint32
        np.testing.assert_array_equal(signature, reference.hashvalues)
        # the shingle set used by the exact check is the set of shingles datasketch was fed
        assert set(hasher.shingle_set(text).tolist()) == {hasher.shingle_hash64(s) for s in hasher.shingles(text)}


def test_text_without_words_has_no_signature() -> None:
    hasher = MinhashHasher(MinhashConfig())
    signatures, has_shingles = hasher.signatures(["...", "ord og ord", "!!! ???"])
    assert has_shingles.tolist() == [False, True, False]
    assert (signatures[0] == 0xFFFFFFFF).all()


def test_band_hashes_match_exactly_when_bands_match() -> None:
    hasher = MinhashHasher(MinhashConfig(bands=4, rows=3))
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, size=(3, 12), dtype=np.uint32)
    sig[1, :3] = sig[0, :3]  # same first band
    sig[2] = sig[0]
    sig[2, 11] ^= 1  # differs in the last band only
    bands = hasher.band_hashes(sig)
    assert bands[0, 0] == bands[1, 0] and (bands[0, 1:] != bands[1, 1:]).all()
    assert (bands[0, :3] == bands[2, :3]).all() and bands[0, 3] != bands[2, 3]


def test_signature_similarity_estimates_jaccard() -> None:
    hasher = MinhashHasher(MinhashConfig(bands=32, rows=8))
    rng = random.Random(3)
    vocab = vocabulary(rng, 3000)
    words = [rng.choice(vocab) for _ in range(400)]
    copy = list(words)
    for k in range(20):
        copy[5 + 15 * k] = f"new{k}"
    a, b = " ".join(words), " ".join(copy)
    sig, _ = hasher.signatures([a, b])
    estimate = float((sig[0] == sig[1]).mean())
    exact = exact_jaccard(hasher.shingle_set(a), hasher.shingle_set(b))
    assert exact == pytest.approx(true_jaccard(a, b))
    assert abs(estimate - exact) < 0.08


def test_connected_components_equal_reference_union_find() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 3000, 2500) * 7 - 1000
    b = rng.integers(0, 3000, 2500) * 7 - 1000
    nodes, roots = connected_components(a, b)
    # reference: plain union-find with path halving
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    expected = {x: find(x) for x in parent}
    assert sorted(expected) == nodes.tolist()
    groups: dict[int, list[int]] = defaultdict(list)
    for node in expected:
        groups[expected[node]].append(node)
    smallest = {node: min(groups[root]) for node, root in expected.items()}
    assert dict(zip(nodes.tolist(), roots.tolist(), strict=True)) == smallest


def test_probability_curve_helper(nordpipe_cli: Any) -> None:
    assert detection_probability(0.8, 14, 8) == pytest.approx(0.9235, abs=1e-4)  # REFERENCE §4
    assert lsh_threshold(14, 8) == pytest.approx(0.719, abs=1e-3)
    text = probability_curve(16, 7, threshold=0.8)
    assert "16 bands x 7 rows = 112 hashes" in text and "0.80     0.9769" in text
    result = nordpipe_cli("dedup", "docs", "--curve", "--bands", "14", "--rows", "8")
    assert result.returncode == 0, result.stderr
    assert "P(detect | J=0.80) = 0.9235" in result.stdout


# --------------------------------------------------------------------------------------------
# Acceptance 1: planted near-duplicates


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str]], dict[str, str]]:
    root = tmp_path_factory.mktemp("planted")
    files, pairs = planted_corpus()
    texts = {item["id"]: item["text"] for records in files for item in records}
    return write_files(root / "in", files), pairs, texts


@pytest.mark.slow
def test_planted_near_duplicates_recall_precision_tasks_and_determinism(planted: Any, tmp_path: Path) -> None:
    inp, pairs, texts = planted
    runs = {}
    for name, tasks in (("one", 1), ("four", 4), ("again", 1)):
        out = tmp_path / name
        stats = run_minhash(
            str(inp),
            str(out),
            MinhashConfig(),
            RunOptions(tasks=tasks, keep_removed=True),
            jaccard_check=True,
            jaccard_threshold=0.8,
        )
        assert stats["documents_in"] == len(texts)
        runs[name] = clusters_by_id(out)
    # the same clusters, survivors and sizes for 1 and 4 tasks, and on a rerun
    assert runs["one"] == runs["four"] == runs["again"]
    clusters = runs["one"]
    jaccard = {pair: true_jaccard(texts[pair[0]], texts[pair[1]]) for pair in pairs}
    assert min(jaccard.values()) < 0.52 and max(jaccard.values()) == 1.0

    def same_cluster(x: str, y: str) -> bool:
        return x in clusters and y in clusters and clusters[x][0] == clusters[y][0]

    similar = [pair for pair, j in jaccard.items() if j >= 0.8]
    recall = sum(same_cluster(*pair) for pair in similar) / len(similar)
    members: dict[str, list[str]] = defaultdict(list)
    for doc_id, (cluster, _, _) in clusters.items():
        members[cluster].append(doc_id)
    predicted = [p for group in members.values() for p in itertools.combinations(sorted(group), 2)]
    correct = sum(true_jaccard(texts[x], texts[y]) >= 0.8 for x, y in predicted)
    precision = correct / len(predicted)
    print(
        f"pairs J>=0.8: {len(similar)}, recall {recall:.3f}; predicted pairs {len(predicted)}, precision {precision:.3f}"
    )
    assert len(similar) >= 120
    assert recall >= 0.95
    assert precision >= 0.99
    # every cluster keeps exactly one document
    for group in members.values():
        assert sum(clusters[d][2] is None for d in group) == 1


@pytest.mark.slow
def test_without_the_check_lower_similarities_are_caught_too(planted: Any, tmp_path: Path) -> None:
    """The LSH alone (16 x 7) also clusters pairs around J = 0.6-0.7: the check is what removes them."""
    inp, pairs, texts = planted
    out = tmp_path / "nocheck"
    run_minhash(str(inp), str(out), MinhashConfig(), RunOptions(keep_removed=True))
    clusters = clusters_by_id(out)
    low = [p for p in pairs if true_jaccard(texts[p[0]], texts[p[1]]) < 0.7]
    caught_low = sum(p[0] in clusters and p[1] in clusters and clusters[p[0]][0] == clusters[p[1]][0] for p in low)
    assert caught_low > 0


# --------------------------------------------------------------------------------------------
# Survivor policies and metadata


def survivor_corpus(tmp_path: Path) -> Path:
    rng = random.Random(11)
    vocab = vocabulary(rng, 2000)
    base = [rng.choice(vocab) for _ in range(120)]
    longer = [*base, "ekstra", "afsnit", "her"]
    other = " ".join(rng.choice(vocab) for _ in range(120))
    files = [
        [record("a", " ".join(base), created="2019-01-01, 2019-06-01", added="2024-01-01"), record("unique", other)],
        [
            record("b", " ".join(longer), created="2020-01-01, 2020-02-01", added="2024-01-01"),
            record("c", " ".join(base), created="2018-01-01, 2018-12-31", added="2024-01-01"),
            record("d", " ".join(base), created="2021-01-01, 2022-12-31", added="2024-01-01"),
        ],
    ]
    return write_files(tmp_path / "in", files)


@pytest.mark.parametrize(("policy", "expected"), [("first", "a"), ("longest", "b"), ("newest", "d"), ("oldest", "c")])
def test_survivor_policies(tmp_path: Path, policy: str, expected: str) -> None:
    inp = survivor_corpus(tmp_path)
    out = tmp_path / policy
    stats = run_minhash(str(inp), str(out), options=RunOptions(keep_removed=True), survivor=policy)
    found = read_output(out)
    assert stats["removed"] == {"minhash:duplicate": 3}
    assert minhash_info(found["unique"]) is None and "removed" not in found["unique"]["metadata"].get("nordpipe", {})
    survivor = found[expected]
    assert minhash_info(survivor) == {"cluster": "000:1", "size": 4}
    for doc_id in {"a", "b", "c", "d"} - {expected}:
        meta = found[doc_id]["metadata"]["nordpipe"]
        assert meta["removed"] == "minhash:duplicate"
        assert meta["minhash"] == {"cluster": "000:1", "size": 4, "survivor": expected}
    kept = {p.name for p in (out / "documents").glob("*.jsonl.gz")}
    assert kept <= {"000.jsonl.gz", "001.jsonl.gz"}


def test_cli_run_summary_and_usage_errors(tmp_path: Path, nordpipe_cli: Any) -> None:
    inp = survivor_corpus(tmp_path)
    out = tmp_path / "out"
    result = nordpipe_cli("dedup", "docs", inp, out, "--survivor", "longest", "--jaccard-check", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "minhash\tremoved minhash:duplicate\t3" in result.stdout
    assert "minhash\tclusters\t1" in result.stdout
    stats = json.loads((out / ".nordpipe" / "stats.json").read_text())
    assert stats["documents_out"] == 2 and stats["minhash"]["config"]["bands"] == 16
    # a rerun with other parameters refuses (exit 1), --force starts over
    result = nordpipe_cli("dedup", "docs", inp, out, "--survivor", "first")
    assert result.returncode == 1 and "other parameters" in result.stderr
    result = nordpipe_cli("dedup", "docs", inp, out, "--survivor", "first", "--force", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["removed"] == {"minhash:duplicate": 3}
    # usage errors exit 2
    assert nordpipe_cli("dedup", "docs", inp).returncode == 2
    assert nordpipe_cli("dedup", "docs", inp, out, "--survivor", "random").returncode == 2
    assert nordpipe_cli("dedup", "docs", inp, out, "--bands", "0").returncode == 2
    help_text = nordpipe_cli("dedup", "docs", "--help").stdout
    for flag in (
        "--ngram",
        "--char-ngrams",
        "--bands",
        "--rows",
        "--jaccard-check",
        "--survivor",
        "--index",
        "--curve",
    ):
        assert flag in help_text


def test_bad_input_is_quarantined_not_fatal(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    good = " ".join(f"ord{i}" for i in range(60))
    lines = [
        json.dumps(record("x", good)),
        "{not json",
        json.dumps(record("y", good)),
        json.dumps(record("punct", "... !!! ???")),
        json.dumps({"id": "z", "text": good}),
    ]
    (inp / "000.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    stats = run_minhash(str(inp), str(out), options=RunOptions(keep_removed=True))
    assert stats["documents_in"] == 5
    assert stats["quarantined_total"] == 2
    assert stats["removed"].get("minhash:duplicate") == 1
    assert stats["documents_out"] == 2  # x (survivor of x/y) and the punctuation-only document
    assert stats["minhash"]["phases"]["signatures"]["no_shingles"] == 1


def test_resume_after_an_interrupted_cluster_phase(tmp_path: Path) -> None:
    files, _ = planted_corpus(seed=2)
    inp = write_files(tmp_path / "in", [f[:120] for f in files])
    out = tmp_path / "out"
    first = run_minhash(str(inp), str(out), options=RunOptions(tasks=2))
    before = clusters_by_id(out)
    sigs = sorted((out / ".nordpipe" / "minhash" / "sigs").glob("*.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in sigs]
    # simulate a crash during clustering: the cluster phase and everything after it are gone
    import shutil

    state = out / ".nordpipe"
    for path in (
        state / "minhash" / "clusters",
        state / "minhash" / "clusters.tmp",
        out / "documents",
        state / "tasks",
        state / "datatrove",
    ):
        shutil.rmtree(path, ignore_errors=True)
    (state / "minhash" / "clusters.tmp").mkdir()  # half-written state is discarded
    second = run_minhash(str(inp), str(out), options=RunOptions(tasks=2))
    assert clusters_by_id(out) == before
    assert second["removed"] == first["removed"] and second["documents_out"] == first["documents_out"]
    # the signature phase had completed and was not run again
    assert [p.stat().st_mtime_ns for p in sigs] == mtimes


# --------------------------------------------------------------------------------------------
# Acceptance 2: incremental runs against an index


def test_incremental_run_removes_copies_of_earlier_release(tmp_path: Path, nordpipe_cli: Any) -> None:
    rng = random.Random(21)
    vocab = vocabulary(rng, 4000)

    def text() -> list[str]:
        return [rng.choice(vocab) for _ in range(150)]

    old = [(f"old{i}", text()) for i in range(40)]
    batch1 = [[record(doc_id, " ".join(words)) for doc_id, words in old]]
    copies = []
    for doc_id, words in old[:10]:
        edited = list(words)
        edited[70] = "rettet"
        copies.append(record(f"copy-of-{doc_id}", " ".join(edited)))
    fresh = [(f"new{i}", text()) for i in range(20)]
    batch2 = [
        copies[:5] + [record(d, " ".join(w)) for d, w in fresh[:10]],
        copies[5:] + [record(d, " ".join(w)) for d, w in fresh[10:]] + [record("new0-again", " ".join(fresh[0][1]))],
    ]
    in1, in2 = write_files(tmp_path / "in1", batch1), write_files(tmp_path / "in2", batch2)
    index = tmp_path / "index"

    result = nordpipe_cli("dedup", "docs", in1, tmp_path / "out1", "--index", index)
    assert result.returncode == 0, result.stderr
    assert [p["documents"] for p in MinhashIndex(str(index)).load()["parts"]] == [40]

    result = nordpipe_cli("dedup", "docs", in2, tmp_path / "out2", "--index", index, "--keep-removed", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["removed"] == {"minhash:duplicate": 11}
    assert stats["extra"]["removed against index"] == 10
    found = read_output(tmp_path / "out2")
    for i in range(10):
        info = minhash_info(found[f"copy-of-old{i}"])
        assert found[f"copy-of-old{i}"]["metadata"]["nordpipe"]["removed"] == "minhash:duplicate"
        assert info["survivor"] == f"old{i}" and info["survivor_in_index"] is True
    assert minhash_info(found["new0"]) == {"cluster": "000:6", "size": 2}
    assert minhash_info(found["new0-again"])["survivor"] == "new0"
    assert all("removed" not in found[f"new{i}"]["metadata"].get("nordpipe", {}) for i in range(20))
    # all 31 documents of the batch (kept and removed: clusters chain) were added as a second part
    assert [p["documents"] for p in MinhashIndex(str(index)).load()["parts"]] == [40, 31]

    # rerunning the same batch from scratch does not deduplicate it against its own part
    again = run_minhash(
        str(in2), str(tmp_path / "out2"), options=RunOptions(force=True), index_path=str(index), update_index=True
    )
    assert again["removed"] == {"minhash:duplicate": 11}
    assert [p["documents"] for p in MinhashIndex(str(index)).load()["parts"]] == [40, 31]

    # an index built with other parameters is refused
    with pytest.raises(ValueError, match="other MinHash parameters"):
        run_minhash(str(in2), str(tmp_path / "out3"), MinhashConfig(bands=10, rows=5), index_path=str(index))


def test_run_refuses_changed_input_files(tmp_path: Path) -> None:
    inp = survivor_corpus(tmp_path)
    out = tmp_path / "out"
    run_minhash(str(inp), str(out))
    os.rename(inp / "001.jsonl.gz", inp / "005.jsonl.gz")
    with pytest.raises(RunError, match="input files"):
        run_minhash(str(inp), str(out))


def test_single_file_input_completes(tmp_path: Path, nordpipe_cli: Any) -> None:
    """A single jsonl.gz file as INPUT (no ``.nordpipe/`` beside it) runs to completion; it used to
    fail at the very end reading ``FILE/.nordpipe/complete.json`` (NotADirectoryError)."""
    rng = random.Random(5)
    vocab = vocabulary(rng, 2000)
    words = [rng.choice(vocab) for _ in range(120)]
    docs = [record("a", " ".join(words)), record("a-copy", " ".join(words)),
            record("b", " ".join(rng.choice(vocab) for _ in range(120)))]
    source = write_files(tmp_path / "in", [docs]) / "000.jsonl.gz"
    assert source.is_file()
    result = nordpipe_cli("dedup", "docs", source, tmp_path / "out", "--index", tmp_path / "index", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["removed"] == {"minhash:duplicate": 1}
    assert (tmp_path / "out" / ".nordpipe" / "complete.json").exists()
