"""Tests of ``nordpipe tokenize`` / ``nordpipe trace`` (issue 8).

The shard readers here are written from the published layouts (REFERENCE §7 and MosaicML's MDS
format description), independently of nordpipe's writers; expected tokens come straight from the
tokenizer libraries, never from nordpipe.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
import zstandard

from nordpipe.runner import RunError, RunOptions
from nordpipe.tokenize import (
    TOKENS_KEY,
    TokenizeConfig,
    TokenizeDocuments,
    TokenShardWriter,
    load_tokenizer,
    parse_size,
    run_tokenize,
)
from nordpipe.trace import trace_token

MISTRAL = str(files("mistral_common") / "data" / "tokenizer.model.v1")

# Nordic sentences with the characters that trip tokenizers: æøå, ð/þ, ä/ö, quotes, dashes,
# digits, emoji, tabs, several spaces, and leading/trailing whitespace.
SENTENCES = [
    "Det var en kold vinter i København, og søen var frosset til.",
    "Rødgrød med fløde er svært at udtale for udlændinge.",
    "Hvor mange æbler købte du på torvet i går?",
    "Jeg bor i Århus – tæt på Åen – siden 1998.",
    "Vi åt smörgåsbord på midsommarafton i Göteborg.",
    "Det är inte så lätt att förstå skärgårdens dialekter.",
    "Eg likar å gå tur i fjellet når det er fint vêr.",
    "Nordmenn drikker mye kaffe, særlig på søndager.",
    "Það er gott að búa á Íslandi þegar veðrið er þurrt.",
    "Hyvää huomenta! Äiti keitti kahvia keittiössä.",
    "Tórshavn er høvuðsstaðurin í Føroyum.",
    "Prisen steg 12,5 % til 1.234,56 kr. 🙂 — ifølge \"Børsen\".",
    "  To  mellemrum\tog en tabulator.",
    "Linjen slutter her.\nNy linje.\n\nNyt afsnit.",
]
LANGUAGES = ["da", "sv", "nb", "nn", "is", "fi", "fo"]


def make_corpus(folder: Path, files_count: int = 2, docs: int = 40, seed: int = 0, bad_lines: int = 1) -> list[dict[str, Any]]:
    """Write ``files_count`` jsonl.gz files of standardized records; return the records in order."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for f in range(files_count):
        with gzip.open(folder / f"{f:05d}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for i in range(docs):
                text = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 25)))
                if i % 7 == 3:
                    text = "  " + text + " \n"  # whitespace at both ends must survive the round trip
                record = {
                    "id": f"f{f}-d{i}",
                    "text": text,
                    "source": rng.choice(["netarkiv", "wiki", "books"]),
                    "added": "2024-05-01",
                    "created": "2020-01-01, 2024-01-01",
                    "metadata": {"url": f"https://example.dk/{f}/{i}", "language": rng.choice(LANGUAGES)},
                }
                records.append(record)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            for _ in range(bad_lines):
                handle.write("{not json\n")
    return records


@pytest.fixture(scope="module")
def sp() -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=MISTRAL)


# --------------------------------------------------------------------------------------------
# Independent readers (written from the published layouts)


def read_megatron(prefix: Path) -> tuple[np.dtype, list[np.ndarray]]:
    """Megatron indexed dataset: .idx header + arrays, .bin token ids."""
    codes = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16}
    raw = prefix.with_suffix(".idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version = int.from_bytes(raw[9:17], "little")
    assert version == 1
    dtype = np.dtype(codes[raw[17]])
    sequences = int.from_bytes(raw[18:26], "little")
    documents = int.from_bytes(raw[26:34], "little")
    at = 34
    lengths = np.frombuffer(raw, "<i4", sequences, at)
    at += 4 * sequences
    pointers = np.frombuffer(raw, "<i8", sequences, at)
    at += 8 * sequences
    doc_index = np.frombuffer(raw, "<i8", documents, at)
    at += 8 * documents
    assert at == len(raw), "trailing bytes in .idx"
    assert documents == sequences + 1 and doc_index.tolist() == list(range(sequences + 1))
    data = prefix.with_suffix(".bin").read_bytes()
    out = [np.frombuffer(data, dtype.newbyteorder("<"), int(n), int(p)) for n, p in zip(lengths, pointers, strict=True)]
    assert sum(a.nbytes for a in out) == len(data), ".bin holds bytes no sequence points at"
    return dtype, out


def read_datatrove(path: Path, dtype: str) -> list[np.ndarray]:
    """datatrove .ds: raw ids; .ds.index: uint64 cumulative document ends."""
    tokens = np.frombuffer(path.read_bytes(), np.dtype(dtype).newbyteorder("<"))
    ends = np.frombuffer(Path(str(path) + ".index").read_bytes(), "<u8")
    assert ends[-1] == len(tokens)
    starts = [0, *ends[:-1].tolist()]
    return [tokens[s:e] for s, e in zip(starts, ends.tolist(), strict=True)]


def read_mds_shard(path: Path) -> list[np.ndarray]:
    """MDS shard: u32 count, u32 offsets[count+1], JSON config, samples (u32 size + ndarray)."""
    data = path.read_bytes()
    if path.suffix == ".zstd":
        data = zstandard.ZstdDecompressor().decompress(data)
    count = int.from_bytes(data[:4], "little")
    offsets = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "little") for i in range(count + 1)]
    config = json.loads(data[4 + 4 * (count + 1) : offsets[0]])
    assert config["column_names"] == ["tokens"] and config["column_encodings"] == ["ndarray"]
    assert offsets[-1] == len(data)
    value_types = {8: "u1", 16: "u2", 32: "u4", 33: "i4", 65: "i8"}
    samples = []
    for i in range(count):
        sample = data[offsets[i] : offsets[i + 1]]
        size = int.from_bytes(sample[:4], "little")
        assert size == len(sample) - 4
        dtype = np.dtype("<" + value_types[sample[4]])
        ndim, width = sample[5] >> 2, 2 ** (sample[5] & 3)
        assert ndim == 1
        length = int.from_bytes(sample[6 : 6 + width], "little")
        values = np.frombuffer(sample[6 + width :], dtype)
        assert len(values) == length
        samples.append(values)
    return samples


def expected_sequence(sp: spm.SentencePieceProcessor, text: str, bos: bool = True, eos: bool = True) -> list[int]:
    return ([1] if bos else []) + sp.encode(text) + ([2] if eos else [])


def load_manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def provenance(out: Path, shard: dict[str, Any]) -> dict[str, list[Any]]:
    return pq.read_table(out / shard["provenance"]).to_pydict()


# --------------------------------------------------------------------------------------------
# Acceptance 1 + 2: round trip, manifest counts, independent readers


def test_megatron_round_trip_manifest_and_idx(tmp_path: Path, sp: spm.SentencePieceProcessor) -> None:
    records = make_corpus(tmp_path / "in", files_count=2, docs=40)
    by_id = {r["id"]: r for r in records}
    out = tmp_path / "out"
    stats = run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(), RunOptions(tasks=2))
    manifest = load_manifest(out)
    assert manifest["format"] == "megatron" and manifest["dtype"] == "uint16"
    assert manifest["tokenizer"]["vocab_size"] == 32000 and (manifest["bos_id"], manifest["eos_id"]) == (1, 2)
    assert [s["name"] for s in manifest["shards"]] == ["00000-00000", "00001-00000"]
    tokens_by_source: Counter[str] = Counter()
    tokens_by_language: Counter[str] = Counter()
    seen = []
    for shard in manifest["shards"]:
        dtype, sequences = read_megatron(out / "shards" / shard["name"])
        assert dtype == np.uint16
        rows = provenance(out, shard)
        assert len(sequences) == len(rows["id"]) == shard["documents"]
        assert sum(len(s) for s in sequences) == shard["tokens"]
        for i, sequence in enumerate(sequences):
            record = by_id[rows["id"][i]]
            # Acceptance 1: the document's token range decodes to decode(encode(text)).
            assert sequence.tolist() == expected_sequence(sp, record["text"])
            assert sp.decode(sequence[1:-1].tolist()) == sp.decode(sp.encode(record["text"]))
            offset = rows["token_offset"][i]
            assert offset == sum(len(s) for s in sequences[:i]) and rows["token_length"][i] == len(sequence)
            assert (rows["source"][i], rows["url"][i], rows["language"][i]) == (
                record["source"], record["metadata"]["url"], record["metadata"]["language"])
            tokens_by_source[record["source"]] += len(sequence)
            tokens_by_language[record["metadata"]["language"]] += len(sequence)
            seen.append(record["id"])
    assert seen == [r["id"] for r in records]  # document order kept without --shuffle
    assert manifest["tokens"] == sum(tokens_by_source.values())
    assert manifest["tokens_by_source"] == dict(tokens_by_source)
    assert manifest["tokens_by_language"] == dict(tokens_by_language)
    assert manifest["documents"] == len(records)
    # Bad input lines are quarantined and reported, not fatal.
    assert stats["quarantined_total"] == 2 and stats["documents_out"] == len(records)
    assert len((out / "quarantine" / "00000.jsonl").read_text().splitlines()) == 1
    assert stats["steps"]["tokenize"]["tokens"] == manifest["tokens"]


def test_datatrove_format_matches_datatrove_document_tokenizer(tmp_path: Path) -> None:
    """Same tokenizer.json, EOS only: nordpipe's .ds/.ds.index are byte-identical to datatrove's own."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    records = make_corpus(tmp_path / "in", files_count=1, docs=60, bad_lines=0)
    tokenizer_json = train_tiny_bpe(tmp_path / "tok", [r["text"] for r in records])
    out = tmp_path / "out"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(tokenizer=str(tokenizer_json), format="datatrove",
                                                               add_bos=False, eos_token="</s>"))
    manifest = load_manifest(out)
    assert manifest["bos_id"] is None and manifest["eos_id"] is not None and manifest["dtype"] == "uint16"
    ours = out / "shards" / "00000-00000.ds"
    peer = tmp_path / "peer"
    LocalPipelineExecutor(
        [JsonlReader(str(tmp_path / "in")),
         DocumentTokenizer(str(peer), tokenizer_name_or_path=str(tokenizer_json), eos_token="</s>", shuffle_documents=False)],
        tasks=1, logging_dir=str(tmp_path / "peer-logs"),
    ).run()
    theirs = peer / "00000_unshuffled.ds"
    assert ours.read_bytes() == theirs.read_bytes()
    assert Path(str(ours) + ".index").read_bytes() == Path(str(theirs) + ".index").read_bytes()
    sequences = read_datatrove(ours, manifest["dtype"])
    assert len(sequences) == len(records) and sum(map(len, sequences)) == manifest["tokens"]
    metadata = Path(str(ours) + ".metadata").read_text().splitlines()
    assert metadata[0].endswith("|2") and int(metadata[1]) == manifest["tokens"]


def test_mds_packing_index_and_round_trip(tmp_path: Path, sp: spm.SentencePieceProcessor) -> None:
    records = make_corpus(tmp_path / "in", files_count=2, docs=50, bad_lines=0)
    by_id = {r["id"]: r for r in records}
    out = tmp_path / "out"
    length = 64
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(format="mds", sequence_length=length,
                                                               max_shard_bytes=4096), RunOptions(tasks=2, workers=2))
    manifest = load_manifest(out)
    root_index = json.loads((out / "shards" / "index.json").read_text())
    assert len(root_index["shards"]) == len(manifest["shards"]) > 4  # the size limit split the series
    streams: dict[str, list[np.ndarray]] = {}
    for shard, entry in zip(manifest["shards"], root_index["shards"], strict=True):
        zip_path = out / "shards" / entry["zip_data"]["basename"]
        assert zip_path.stat().st_size == entry["zip_data"]["bytes"]
        assert len(zstandard.ZstdDecompressor().decompress(zip_path.read_bytes())) == entry["raw_data"]["bytes"]
        assert entry["raw_data"]["bytes"] <= 4096 and entry["compression"] == "zstd" and entry["format"] == "mds"
        samples = read_mds_shard(zip_path)
        assert len(samples) == entry["samples"] == shard["samples"]
        assert sum(map(len, samples)) == shard["tokens"]
        streams.setdefault(shard["input"], []).extend(samples)
    # Every sample is full length except the last of each input file's series.
    for samples in streams.values():
        assert all(len(s) == length for s in samples[:-1]) and 0 < len(samples[-1]) <= length
    # The packed stream is BOS + tokens + EOS of each document, in order.
    for stem, samples in streams.items():
        stream = np.concatenate(samples).tolist()
        expected = [t for r in records if r["id"].startswith(f"f{int(stem)}-") for t in expected_sequence(sp, r["text"])]
        assert stream == expected
    # Provenance segments reassemble every document, including those cut by a shard boundary.
    pieces: dict[str, list[int]] = {}
    split = 0
    for shard in manifest["shards"]:
        samples = read_mds_shard(out / shard["files"][0])
        shard_stream = np.concatenate(samples)
        rows = provenance(out, shard)
        for i, doc_id in enumerate(rows["id"]):
            segment = shard_stream[rows["token_offset"][i] : rows["token_offset"][i] + rows["token_length"][i]]
            assert rows["doc_token_offset"][i] == len(pieces.get(doc_id, []))
            pieces.setdefault(doc_id, []).extend(segment.tolist())
            split += rows["doc_token_offset"][i] > 0
    assert split > 0, "the test corpus should have documents straddling shards"
    for doc_id, tokens in pieces.items():
        assert tokens == expected_sequence(sp, by_id[doc_id]["text"])
        assert sp.decode(tokens[1:-1]) == sp.decode(sp.encode(by_id[doc_id]["text"]))
    assert len(pieces) == manifest["documents"] == len(records)


@pytest.mark.skipif(not os.environ.get("NORDPIPE_STREAMING_PYTHON"),
                    reason="set NORDPIPE_STREAMING_PYTHON to a python with mosaicml-streaming (it pulls torch)")
def test_mds_read_by_mosaicml_streaming(tmp_path: Path) -> None:
    """MosaicML's own StreamingDataset reads the merged index and returns our samples."""
    make_corpus(tmp_path / "in", files_count=2, docs=30, bad_lines=0)
    out = tmp_path / "out"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(format="mds", sequence_length=128, max_shard_bytes=8192))
    manifest = load_manifest(out)
    ours = [s.tolist() for shard in manifest["shards"] for s in read_mds_shard(out / shard["files"][0])]
    local = tmp_path / "streaming-local"
    shutil.copytree(out / "shards", local)  # StreamingDataset unpacks shards beside the index
    script = (
        "import json, sys, numpy as np\n"
        "from streaming import StreamingDataset\n"
        "ds = StreamingDataset(local=sys.argv[1], shuffle=False, batch_size=1)\n"
        "print(json.dumps([np.asarray(ds[i]['tokens']).tolist() for i in range(ds.num_samples)]))\n"
    )
    result = subprocess.run([os.environ["NORDPIPE_STREAMING_PYTHON"], "-c", script, str(local)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ours


# --------------------------------------------------------------------------------------------
# Acceptance 3: trace


@pytest.mark.slow
def test_trace_cli_finds_document_for_random_tokens(tmp_path: Path, sp: spm.SentencePieceProcessor, nordpipe_cli: Any) -> None:
    records = make_corpus(tmp_path / "in", files_count=2, docs=30, bad_lines=0)
    out = tmp_path / "out"
    result = nordpipe_cli("tokenize", tmp_path / "in", out, "--shard-size", "12KiB")
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(out)
    assert len(manifest["shards"]) > 2  # shard size limit applied
    # Expected owner of every token, computed from the input alone: unshuffled order, documents
    # never split, a new shard when the next document would pass 12 KiB.
    owners: dict[str, list[str]] = {}
    for stem in ("00000", "00001"):
        shard_index, size = 0, 0
        for record in (r for r in records if r["id"].startswith(f"f{int(stem)}-")):
            n = len(expected_sequence(sp, record["text"]))
            if size and (size + n) * 2 > 12 * 1024:
                shard_index, size = shard_index + 1, 0
            owners.setdefault(f"{stem}-{shard_index:05d}", []).extend([record["id"]] * n)
            size += n
    assert sorted(owners) == [s["name"] for s in manifest["shards"]]
    rng = random.Random(5)
    picks = [(s, rng.randrange(len(owners[s]))) for s in rng.choices(sorted(owners), k=30)]
    picks += [(sorted(owners)[0], 0), (sorted(owners)[-1], len(owners[sorted(owners)[-1]]) - 1)]
    by_id = {r["id"]: r for r in records}
    for n, (shard, token) in enumerate(picks):
        if n < 2:  # the console script, end to end
            traced = nordpipe_cli("trace", out, "--shard", shard, "--token", token, "--json")
            assert traced.returncode == 0, traced.stderr
            found = json.loads(traced.stdout)
        else:
            found = trace_token(str(out), shard, token)
        assert found["id"] == owners[shard][token], (shard, token)
        assert found["text"] == sp.decode(sp.encode(by_id[found["id"]]["text"]))
        assert found["url"] == by_id[found["id"]]["metadata"]["url"]
    plain = nordpipe_cli("trace", out, "--shard", f"shards/{picks[0][0]}.bin", "--token", picks[0][1])
    assert plain.returncode == 0 and f"id\t{owners[picks[0][0]][picks[0][1]]}" in plain.stdout
    assert nordpipe_cli("trace", out, "--shard", "nope", "--token", 0).returncode == 1
    assert nordpipe_cli("trace", out, "--shard", picks[0][0], "--token", 10**9).returncode == 1


def test_trace_mds_and_shuffled_random_offsets(tmp_path: Path, sp: spm.SentencePieceProcessor) -> None:
    records = make_corpus(tmp_path / "in", files_count=1, docs=40, bad_lines=0)
    by_id = {r["id"]: r for r in records}
    out = tmp_path / "out"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(format="mds", sequence_length=100, max_shard_bytes=3000,
                                                               shuffle_seed=11))
    manifest = load_manifest(out)
    rng = random.Random(1)
    for _ in range(25):
        shard = rng.choice(manifest["shards"])
        stream = np.concatenate(read_mds_shard(out / shard["files"][0]))
        token = rng.randrange(len(stream))
        found = trace_token(str(out), shard["name"], token)
        expected = expected_sequence(sp, by_id[found["id"]]["text"])
        # The token really is that document's token at the reported position ...
        assert expected[found["position_in_document"]] == stream[token] == found["token_id"]
        # ... and the whole document (joined across shards when cut) decodes to its text.
        assert found["text"] == sp.decode(sp.encode(by_id[found["id"]]["text"]))


# --------------------------------------------------------------------------------------------
# Determinism, parallel tasks, shard limits, shuffle


def shard_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "shards").rglob("*")) if p.is_file()}


def test_output_independent_of_tasks_and_shuffle_deterministic(tmp_path: Path) -> None:
    records = make_corpus(tmp_path / "in", files_count=3, docs=25, bad_lines=0)
    config = TokenizeConfig(shuffle_seed=7)
    run_tokenize(str(tmp_path / "in"), str(tmp_path / "a"), config, RunOptions(tasks=1))
    run_tokenize(str(tmp_path / "in"), str(tmp_path / "b"), config, RunOptions(tasks=3, workers=2))
    assert shard_files(tmp_path / "a") == shard_files(tmp_path / "b")
    assert load_manifest(tmp_path / "a") == load_manifest(tmp_path / "b")
    run_tokenize(str(tmp_path / "in"), str(tmp_path / "c"), TokenizeConfig(shuffle_seed=8), RunOptions(tasks=1))
    order_a = [i for s in load_manifest(tmp_path / "a")["shards"] for i in provenance(tmp_path / "a", s)["id"]]
    order_c = [i for s in load_manifest(tmp_path / "c")["shards"] for i in provenance(tmp_path / "c", s)["id"]]
    assert order_a != order_c and sorted(order_a) == sorted(order_c) == sorted(r["id"] for r in records)
    assert order_a != [r["id"] for r in records]  # it did shuffle
    assert load_manifest(tmp_path / "a")["tokens"] == load_manifest(tmp_path / "c")["tokens"]


def test_shard_size_limit_keeps_documents_whole(tmp_path: Path, sp: spm.SentencePieceProcessor) -> None:
    records = make_corpus(tmp_path / "in", files_count=1, docs=60, bad_lines=0)
    out = tmp_path / "out"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(max_shard_bytes=parse_size("8KiB")))
    manifest = load_manifest(out)
    assert len(manifest["shards"]) > 3
    ids = []
    for index, shard in enumerate(manifest["shards"]):
        assert shard["name"] == f"00000-{index:05d}"
        _, sequences = read_megatron(out / "shards" / shard["name"])
        assert sum(s.nbytes for s in sequences) <= 8192 or len(sequences) == 1
        ids += provenance(out, shard)["id"]
    assert ids == [r["id"] for r in records]


# --------------------------------------------------------------------------------------------
# Tokenizers


def train_tiny_bpe(folder: Path, texts: list[str]) -> Path:
    """A small byte-level BPE tokenizer.json trained on the corpus, with <s> and </s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def write_tiktoken_file(path: Path, extra_tokens: int, seed: int = 0) -> None:
    """A tiktoken rank file: the 256 bytes, frequent Nordic pieces, then random filler tokens."""
    import base64

    ranks = [bytes([b]) for b in range(256)]
    for piece in ("en", "er", "de", " d", " s", "et", "ing", " og", "æ", "ø", "å", " på", " det"):
        data = piece.encode()
        if data not in ranks:
            ranks.append(data)
    rng = random.Random(seed)
    seen = set(ranks)
    while len(ranks) < 256 + extra_tokens:
        token = bytes(rng.randrange(97, 123) for _ in range(4))
        if token not in seen:
            seen.add(token)
            ranks.append(token)
    path.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(ranks)))


def test_tokenizer_sources_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = make_corpus(tmp_path / "in", files_count=1, docs=15, bad_lines=0)
    texts = [r["text"] for r in records]
    tokenizer_json = train_tiny_bpe(tmp_path / "bpe", texts)
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(tokenizer_json))
    # A Hugging Face name resolved from a local hub cache, offline.
    cache = tmp_path / "hub"
    snapshot = cache / "models--nordic--tiny-bpe" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(tokenizer_json, snapshot / "tokenizer.json")
    (cache / "models--nordic--tiny-bpe" / "refs").mkdir()
    (cache / "models--nordic--tiny-bpe" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec in (str(tokenizer_json), str(tmp_path / "bpe"), "nordic/tiny-bpe"):
        tok = load_tokenizer(spec)
        assert tok.kind == "huggingface" and (tok.bos_id, tok.eos_id) == (0, 1)
        assert tok.encode_batch(texts) == [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    with pytest.raises(ValueError):
        load_tokenizer("nordic/not-cached")
    with pytest.raises(FileNotFoundError):
        load_tokenizer(str(tmp_path / "missing.json"))

    # SentencePiece by path: the same model as the default.
    assert load_tokenizer(MISTRAL).encode_batch(texts) == load_tokenizer().encode_batch(texts)

    # A tiktoken file with more than 65,536 ids needs 32-bit tokens: int32 for Megatron.
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    big = tmp_path / "big.tiktoken"
    write_tiktoken_file(big, extra_tokens=66_000)
    tok = load_tokenizer(str(big))
    assert tok.kind == "tiktoken" and tok.vocab_size > 65_536 and tok.bos_id is None
    reference = tiktoken.Encoding("ref", pat_str=tok.encoding._pat_str, mergeable_ranks=load_tiktoken_bpe(str(big)),
                                  special_tokens={})
    out = tmp_path / "out-tiktoken"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(tokenizer=str(big)))
    manifest = load_manifest(out)
    assert manifest["dtype"] == "int32" and manifest["bos_id"] is None
    dtype, sequences = read_megatron(out / "shards" / "00000-00000")
    assert dtype == np.int32
    for record, sequence in zip(records, sequences, strict=True):
        assert sequence[:-1].tolist() == reference.encode_ordinary(record["text"])
        assert sequence[-1] == tok.eos_id
        assert tok.decode(sequence[:-1].tolist()) == record["text"]  # byte-level BPE is lossless
    with pytest.raises(ValueError, match="no BOS"):
        run_tokenize(str(tmp_path / "in"), str(tmp_path / "out-bos"), TokenizeConfig(tokenizer=str(big), add_bos=True))


def test_bos_eos_switches_and_empty_documents(tmp_path: Path, sp: spm.SentencePieceProcessor) -> None:
    records = make_corpus(tmp_path / "in", files_count=1, docs=10, bad_lines=0)
    out = tmp_path / "out"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(format="datatrove", add_bos=False, add_eos=False))
    sequences = read_datatrove(out / "shards" / "00000-00000.ds", "uint16")
    assert [s.tolist() for s in sequences] == [sp.encode(r["text"]) for r in records]
    # The step on its own (as in a plain datatrove pipeline): empty text is marked, not dropped.
    from datatrove.data import Document

    step = TokenizeDocuments(add_bos=True, add_eos=True)
    docs = list(step.run(iter([Document(text="", id="e"), Document(text="Hej", id="h")])))
    assert [d.id for d in docs] == ["e", "h"]
    assert docs[0].metadata["nordpipe"]["removed"] == "tokenize:empty" and TOKENS_KEY not in docs[0].metadata
    assert docs[1].metadata[TOKENS_KEY].tolist() == [1, *sp.encode("Hej"), 2]


def test_steps_in_a_plain_datatrove_pipeline(tmp_path: Path, sp: spm.SentencePieceProcessor) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader

    records = make_corpus(tmp_path / "in", files_count=1, docs=12, bad_lines=0)
    out = tmp_path / "out"
    LocalPipelineExecutor(
        [JsonlReader(str(tmp_path / "in")), TokenizeDocuments(), TokenShardWriter(str(out), vocab_size=32000)],
        tasks=1, logging_dir=str(tmp_path / "logs"),
    ).run()
    _, sequences = read_megatron(out / "shards" / "00000-00000")
    assert [s.tolist() for s in sequences] == [expected_sequence(sp, r["text"]) for r in records]
    assert pq.read_table(out / "shards" / "00000-00000.provenance.parquet").column("id").to_pylist() == [
        r["id"] for r in records]


# --------------------------------------------------------------------------------------------
# Runs: resume, parameter changes, CLI conventions


def test_rerun_resumes_and_force_replaces(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in", files_count=2, docs=10, bad_lines=0)
    out = tmp_path / "out"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig())
    before = shard_files(out)
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig())  # completed tasks are skipped
    assert shard_files(out) == before
    with pytest.raises(RunError, match="other parameters"):
        run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(format="datatrove"))
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig(format="datatrove"), RunOptions(force=True))
    names = sorted(shard_files(out))
    assert names and all(".bin" not in n and ".idx" not in n for n in names)  # old format's shards are gone
    assert load_manifest(out)["format"] == "datatrove"


@pytest.mark.slow
def test_cli_help_and_errors(tmp_path: Path, nordpipe_cli: Any) -> None:
    make_corpus(tmp_path / "in", files_count=1, docs=3, bad_lines=0)
    help_text = nordpipe_cli("tokenize", "--help")
    assert help_text.returncode == 0 and "--format" in help_text.stdout and "provenance" in help_text.stdout
    assert nordpipe_cli("trace", "--help").returncode == 0
    assert nordpipe_cli("tokenize", tmp_path / "in", tmp_path / "o1", "--format", "parquet").returncode == 2
    assert nordpipe_cli("tokenize", tmp_path / "in", tmp_path / "o2", "--shard-size", "lots").returncode == 2
    missing = nordpipe_cli("tokenize", tmp_path / "in", tmp_path / "o3", "--tokenizer", tmp_path / "nope.model")
    assert missing.returncode == 1 and "nope.model" in missing.stderr
    assert nordpipe_cli("trace", tmp_path / "o3", "--shard", "x", "--token", 0).returncode == 1


def test_real_danish_sentences_round_trip(tmp_path: Path, shared: Path, sp: spm.SentencePieceProcessor) -> None:
    """Real Danish and Swedish UD sentences, composed into documents (round trip on real text)."""
    sentences = [line[9:].rstrip("\n") for name in ("da_ddt-ud-dev.conllu", "sv_talbanken-ud-dev.conllu")
                 for line in (shared / "data" / "ud" / name).read_text(encoding="utf-8").splitlines(True)
                 if line.startswith("# text = ")]
    rng = random.Random(3)
    (tmp_path / "in").mkdir()
    records = []
    for i in range(80):
        text = "\n\n".join(" ".join(rng.choice(sentences) for _ in range(rng.randint(2, 6))) for _ in range(3))
        records.append({"id": str(i), "text": text, "source": "ud", "added": "2024-01-01",
                        "created": "2020-01-01, 2020-12-31", "metadata": {}})
    (tmp_path / "in" / "ud.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    out = tmp_path / "out"
    run_tokenize(str(tmp_path / "in"), str(out), TokenizeConfig())
    _, sequences = read_megatron(out / "shards" / "ud-00000")
    for record, sequence in zip(records, sequences, strict=True):
        assert sp.decode(sequence[1:-1].tolist()) == sp.decode(sp.encode(record["text"]))
    assert load_manifest(out)["tokens_by_language"] == {"unknown": sum(map(len, sequences))}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
