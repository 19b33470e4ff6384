"""Trace tokens in ``nordpipe tokenize`` shards back to the documents they came from.

A shard's token stream is its tokens in file order (for MDS: its samples back to back). The
shard's provenance index gives, per document, the offset and length of its tokens in that
stream, so finding the document of token N is a binary search; the document's text is the
tokenizer's decoding of its token range (BOS/EOS stripped).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nordpipe.tokenize import SHARDS_DIR, read_manifest, tokenizer_from_manifest


class TraceError(ValueError):
    """The shard or token asked for does not exist; the message says what does."""


def find_shard(manifest: dict[str, Any], shard: str) -> dict[str, Any]:
    """A shard entry by name (``00000-00000``, ``ds__00000/shard.00001``) or by one of its files."""
    wanted = shard.strip()
    if f"/{SHARDS_DIR}/" in wanted:  # a path to a shard file
        wanted = wanted.rsplit(f"/{SHARDS_DIR}/", 1)[1]
    wanted = wanted.removeprefix(f"{SHARDS_DIR}/")
    for entry in manifest["shards"]:
        names = {entry["name"]}
        for path in [*entry["files"], entry["provenance"]]:
            rel = path.removeprefix(f"{SHARDS_DIR}/")
            names.add(rel)
            if "/" not in entry["name"]:  # MDS file names repeat in every series folder
                names.add(os.path.basename(rel))
        if wanted in names or (os.path.basename(wanted) in names and "/" not in entry["name"]):
            return entry
    known = [entry["name"] for entry in manifest["shards"]]
    preview = ", ".join(known[:5]) + (f", ... ({len(known)} shards)" if len(known) > 5 else "")
    raise TraceError(f"no shard {shard!r} in the manifest (shards: {preview or 'none'})")


def shard_tokens(output_path: str, manifest: dict[str, Any], entry: dict[str, Any]) -> np.ndarray:
    """All tokens of one shard, in stream order (memory-mapped for megatron/datatrove)."""
    dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
    data_file = os.path.join(output_path, entry["files"][0])
    if manifest["format"] in ("megatron", "datatrove"):
        if os.path.getsize(data_file) == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(data_file, dtype=dtype, mode="r")
    return np.concatenate(read_mds_samples(data_file)) if entry.get("samples") else np.zeros(0, dtype=dtype)


def read_mds_samples(path: str) -> list[np.ndarray]:
    """Samples of an MDS shard written by nordpipe (one ``ndarray`` column, zstd or raw)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if path.endswith(".zstd"):
        import zstandard

        data = zstandard.ZstdDecompressor().decompress(data)
    count = int(np.frombuffer(data, "<u4", 1)[0])
    offsets = np.frombuffer(data, "<u4", count + 1, 4)
    codes = {8: "u1", 9: "i1", 16: "u2", 17: "i2", 32: "u4", 33: "i4", 64: "u8", 65: "i8"}
    samples = []
    for i in range(count):
        start = int(offsets[i]) + 4  # skip the column size
        dtype = np.dtype("<" + codes[data[start]])
        shape_byte = data[start + 1]
        ndim, shape_width = shape_byte >> 2, 1 << (shape_byte & 3)
        values = start + 2 + ndim * shape_width
        samples.append(np.frombuffer(data[values : int(offsets[i + 1])], dtype))
    return samples


def _provenance(output_path: str, entry: dict[str, Any]) -> dict[str, list[Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(os.path.join(output_path, entry["provenance"])).to_pydict()


def trace_token(output_path: str, shard: str, token: int, with_text: bool = True) -> dict[str, Any]:
    """The document that token ``token`` (0-based, in the shard's stream) belongs to."""
    manifest = read_manifest(output_path)
    entry = find_shard(manifest, shard)
    if not 0 <= token < entry["tokens"]:
        raise TraceError(f"token {token} is outside shard {entry['name']} (it holds tokens 0..{entry['tokens'] - 1})")
    rows = _provenance(output_path, entry)
    offsets = np.asarray(rows["token_offset"], dtype=np.int64)
    row = int(np.searchsorted(offsets, token, side="right")) - 1
    if row < 0 or token >= offsets[row] + rows["token_length"][row]:
        raise TraceError(f"token {token} of shard {entry['name']} is not covered by its provenance index")
    tokens = shard_tokens(output_path, manifest, entry)
    found = {key: rows[key][row] for key in rows}
    position = token - found["token_offset"] + found["doc_token_offset"]
    result: dict[str, Any] = {
        "shard": entry["name"],
        "token": token,
        "token_id": int(tokens[token]),
        "position_in_document": int(position),
        **found,
    }
    tokenizer = tokenizer_from_manifest(manifest)
    result["piece"] = tokenizer.piece(int(tokens[token]))
    if with_text:
        sequence = document_sequence(output_path, manifest, entry, found, tokens)
        if manifest.get("bos_id") is not None and len(sequence) and sequence[0] == manifest["bos_id"]:
            sequence = sequence[1:]
        if manifest.get("eos_id") is not None and len(sequence) and sequence[-1] == manifest["eos_id"]:
            sequence = sequence[:-1]
        result["text"] = tokenizer.decode(sequence.tolist())
    return result


def document_sequence(
    output_path: str, manifest: dict[str, Any], entry: dict[str, Any], row: dict[str, Any], tokens: np.ndarray
) -> np.ndarray:
    """A document's whole token sequence, joining its segments when an MDS shard boundary cut it."""
    start = row["token_offset"]
    parts = [np.asarray(tokens[start : start + row["token_length"]])]
    if row["doc_token_offset"] == 0 and row["token_length"] == row["doc_tokens"]:
        return parts[0]
    series = [s for s in manifest["shards"] if s["input"] == entry["input"]]
    at = next(i for i, s in enumerate(series) if s["name"] == entry["name"])
    key = (row["input"], row["line"], row["id"])
    for step in (-1, 1):
        i = at + step
        while 0 <= i < len(series):
            other = _provenance(output_path, series[i])
            match = [j for j in range(len(other["id"])) if (other["input"][j], other["line"][j], other["id"][j]) == key]
            if not match:
                break
            j = match[0]
            segment = shard_tokens(output_path, manifest, series[i])
            piece = np.asarray(segment[other["token_offset"][j] : other["token_offset"][j] + other["token_length"][j]])
            if step < 0:
                parts.insert(0, piece)
            else:
                parts.append(piece)
            i += step
    return np.concatenate(parts)
