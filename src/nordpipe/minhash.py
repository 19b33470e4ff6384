"""Near-duplicate document removal with MinHash LSH: out-of-core, multi-task, incremental.

``nordpipe dedup docs INPUT OUTPUT`` runs five phases, each a datatrove pipeline run through
``runner.execute`` with its state under ``OUTPUT/.nordpipe/minhash/<phase>/`` (so each phase is
resumable and runs locally or as a Slurm array):

1. ``signatures`` (one task per input file group): a MinHash signature per document, written
   with pyarrow to ``sigs/<file>.parquet`` together with the document's band hashes, id,
   length and dates.
2. ``buckets`` (tasks split the bands): band by band, polars groups documents whose band hash
   is equal and writes candidate edges (each member to the bucket's smallest key). Memory is
   that of one band column (16 bytes per document), not of the whole signature matrix.
3. ``verify`` (optional, ``jaccard_check``): recompute the shingles of the documents in
   candidate pairs and keep only pairs whose exact Jaccard similarity reaches the threshold.
4. ``clusters`` (one task): union-find (vectorized with numpy) over the edges; a survivor per
   cluster by the survivor policy; ``clusters/<file>.parquet`` lists every member.
5. ``filter`` (one task per input file group): ``[DocumentReader, MinhashFilter,
   DocumentWriter]`` marks every member except the survivor ``minhash:duplicate``.

Documents are identified by ``key = file_index << 32 | line`` (file index in the sorted input
listing, line in the file), never by task-local counters, and every survivor choice is a
deterministic function of the cluster, so results do not depend on the number of tasks.

Hashing follows datasketch 2.0 (``datasketch.MinHash(scheme="affine32")``, the new default:
the 32-bit input hash is pre-mixed with the MurmurHash3 finalizer, then permuted as
``a * h + b mod 2**32`` with odd ``a``; permutations drawn from ``RandomState(seed)``). The
input hash of a shingle is ``shingle_hash32``; ``MinhashHasher.datasketch_minhash`` builds the
reference sketch with datasketch itself, and the tests check that the vectorized signatures
equal it bit for bit. (Before datasketch 2.0 the only scheme was "legacy", ``(a*h+b) mod
(2**61-1)`` truncated to 32 bits; that is also what datatrove computes. Sketches of different
schemes cannot be compared.)

Incremental runs keep an index folder of band hashes and signatures of earlier releases
(``MinhashIndex``). Documents of the new batch that fall into a cluster with an index document
are removed (the index document is the survivor), and the kept documents of the batch are added
to the index as a new part when the run completes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import glob
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from nordpipe.documents import INPUT_KEY, LINE_KEY, mark_removed, nordpipe_meta
from nordpipe.layout import OutputLayout, absolute, atomic_write_json, input_digests, input_files
from nordpipe.runner.options import RunError
from nordpipe.runner.processes import kill_point
from nordpipe.state import DEFAULT_KEEP_GENERATIONS, Generation, StateDirectory, check_unseen, redone_run, run_parent
from nordpipe.steps import DocumentReader, is_active

STAGE = "minhash"
REMOVED_RULE = "duplicate"
SURVIVOR_POLICIES = ("first", "longest", "newest", "oldest")
INDEX_KEY_BASE = -(1 << 62)
"""Keys of index documents are ``INDEX_KEY_BASE + (part << 36) + row``: all negative, so they
never collide with batch keys (``file << 32 | line``)."""

_MASK64 = (1 << 64) - 1
_FMIX64 = (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33)
_FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_WORD_RE = re.compile(r"\w+")


# --------------------------------------------------------------------------------------------
# Configuration and the detection-probability curve


@dataclass(frozen=True)
class MinhashConfig:
    """MinHash LSH parameters.

    Args:
        ngram: shingle size: words (default 5), or characters with ``char_ngrams`` (default 24
            then, NeMo Curator's choice).
        char_ngrams: shingle by characters of the normalized text instead of by words.
        bands: LSH bands (default 16).
        rows: hashes per band (default 7). 16 x 7 = 112 hashes, like FineWeb's 14 x 8, but the
            curve is shifted left: P(detect | J=0.8) = 0.977 instead of 0.924, threshold ~0.67.
        seed: seed of the permutations (datasketch's ``seed``; default 1).
    """

    ngram: int | None = None
    char_ngrams: bool = False
    bands: int = 16
    rows: int = 7
    seed: int = 1

    @property
    def shingle_size(self) -> int:
        return self.ngram or (24 if self.char_ngrams else 5)

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def to_json(self) -> dict[str, Any]:
        return {
            "ngram": self.shingle_size,
            "char_ngrams": self.char_ngrams,
            "bands": self.bands,
            "rows": self.rows,
            "seed": self.seed,
            "scheme": "affine32",
            "hash": "nordpipe-xxh3-v1",
        }


def detection_probability(jaccard: float, bands: int, rows: int) -> float:
    """Probability that two documents with Jaccard similarity ``jaccard`` share a band."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


def lsh_threshold(bands: int, rows: int) -> float:
    """The similarity where the detection curve is steepest, ~ (1/b)^(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


def probability_curve(bands: int, rows: int, threshold: float | None = None, width: int = 40) -> str:
    """A printable table of P(detect | J) for J = 0.30 ... 1.00, with a bar per row."""
    lines = [
        f"MinHash LSH: {bands} bands x {rows} rows = {bands * rows} hashes; "
        f"curve threshold (1/b)^(1/r) = {lsh_threshold(bands, rows):.3f}",
    ]
    if threshold is not None:
        lines.append(f"P(detect | J={threshold:.2f}) = {detection_probability(threshold, bands, rows):.4f}")
    lines.append("  J     P(detect)")
    for step in range(30, 101, 5):
        j = step / 100
        p = detection_probability(j, bands, rows)
        mark = " <- threshold" if threshold is not None and abs(j - threshold) < 1e-9 else ""
        lines.append(f"  {j:.2f}  {p:9.4f}  {'#' * round(p * width)}{mark}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Hashing


def _fmix64_int(value: int) -> int:
    s1, m1, s2, m2, s3 = _FMIX64
    value ^= value >> s1
    value = (value * m1) & _MASK64
    value ^= value >> s2
    value = (value * m2) & _MASK64
    return value ^ (value >> s3)


def _fmix64(values: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = (np.uint64(c) for c in _FMIX64)
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def _fmix32(values: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = (np.uint32(c) for c in _FMIX32)
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def normalize_words(text: str) -> list[str]:
    """Lowercase words of a text, numbers folded to ``0``, punctuation dropped.

    Like datatrove's ``simplify_text`` (lowercase, numbers, punctuation, whitespace), but keeps
    diacritics: æ/ø/å/ä/ö/ð/þ distinguish Nordic words.
    """
    return _WORD_RE.findall(_NUMBER_RE.sub("0", text.lower()))


class MinhashHasher:
    """Shingles, MinHash signatures and band hashes for one ``MinhashConfig``.

    A shingle's 64-bit hash is ``fmix64(sum_k token_hash[k] * C_k mod 2**64)`` over its tokens
    (word: ``xxh3_64(word)``; character: ``fmix64(code point)``), with fixed odd constants
    ``C_k``; its 32-bit MinHash input hash is the top half. Because a shingle's hash is a sum
    over its tokens, it is computed for all shingles of a batch of documents with a handful of
    numpy operations instead of one Python call per shingle.
    """

    def __init__(self, config: MinhashConfig):
        self.config = config
        self.n = config.shingle_size
        self.coefficients = [_fmix64_int((k + 1) * 0x9E3779B97F4A7C15 & _MASK64) | 1 for k in range(self.n)]
        self._coefficients = np.array(self.coefficients, dtype=np.uint64)
        # The permutations datasketch draws for MinHash(num_perm, seed, scheme="affine32").
        gen = np.random.RandomState(config.seed)
        self.a = gen.randint(0, 1 << 31, config.num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        self.b = gen.randint(0, 1 << 32, config.num_perm, dtype=np.uint32)
        band_gen = np.random.RandomState(config.seed + 0x5EED)
        self._band_coefficients = band_gen.randint(0, 1 << 63, config.rows, dtype=np.uint64) * np.uint64(2) + np.uint64(
            1
        )

    # ---- reference path (pure Python; what datasketch is fed) ----

    def tokens(self, text: str) -> list[str]:
        words = normalize_words(text)
        return list(" ".join(words)) if self.config.char_ngrams else words

    def shingles(self, text: str) -> list[tuple[str, ...]]:
        """The shingles of a text as token tuples; a text shorter than one shingle is one shingle."""
        tokens = self.tokens(text)
        if not tokens:
            return []
        if len(tokens) < self.n:
            return [tuple(tokens)]
        return [tuple(tokens[i : i + self.n]) for i in range(len(tokens) - self.n + 1)]

    def _token_hash_int(self, token: str) -> int:
        return _fmix64_int(ord(token)) if self.config.char_ngrams else xxhash.xxh3_64_intdigest(token)

    def shingle_hash64(self, shingle: Sequence[str]) -> int:
        total = 0
        for k, token in enumerate(shingle):
            total = (total + self._token_hash_int(token) * self.coefficients[k]) & _MASK64
        return _fmix64_int(total)

    def shingle_hash32(self, shingle: Sequence[str]) -> int:
        """The 32-bit hash datasketch's MinHash is given for a shingle (its ``hashfunc``)."""
        return self.shingle_hash64(shingle) >> 32

    def datasketch_minhash(self, text: str) -> Any:
        """The reference: datasketch's own MinHash of the text's shingles."""
        from datasketch import MinHash

        sketch = MinHash(
            num_perm=self.config.num_perm, seed=self.config.seed, hashfunc=self.shingle_hash32, scheme="affine32"
        )
        sketch.update_batch(self.shingles(text))
        return sketch

    # ---- fast path ----

    def token_hashes(self, text: str) -> np.ndarray:
        words = normalize_words(text)
        if self.config.char_ngrams:
            joined = " ".join(words)
            codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
            return _fmix64(codes)
        return np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))

    def _shingle_hashes(self, token_hashes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """64-bit shingle hashes of several documents, concatenated, and shingles per document."""
        lengths = np.fromiter((len(t) for t in token_hashes), dtype=np.int64, count=len(token_hashes))
        counts = np.where(lengths >= self.n, lengths - self.n + 1, np.minimum(lengths, 1))
        if not len(token_hashes) or counts.sum() == 0:
            return np.zeros(0, dtype=np.uint64), counts
        tokens = np.concatenate(token_hashes) if len(token_hashes) > 1 else token_hashes[0]
        token_offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        long_docs = lengths >= self.n
        long_counts = counts * long_docs
        starts = np.repeat(token_offsets - np.concatenate(([0], np.cumsum(long_counts)[:-1])), long_counts)
        starts = starts + np.arange(starts.size, dtype=np.int64)
        sums = np.zeros(starts.size, dtype=np.uint64)
        for k in range(self.n):
            sums += tokens[starts + k] * self._coefficients[k]
        if long_docs.all():
            return _fmix64(sums), counts
        # Documents shorter than one shingle: one shingle of all their tokens.
        out = np.empty(int(counts.sum()), dtype=np.uint64)
        out_offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        out[np.repeat(long_docs, counts)] = sums
        for i in np.flatnonzero(~long_docs & (lengths > 0)):
            t = tokens[token_offsets[i] : token_offsets[i] + lengths[i]]
            out[out_offsets[i]] = np.sum(t * self._coefficients[: lengths[i]], dtype=np.uint64)
        return _fmix64(out), counts

    def shingle_set(self, text: str) -> np.ndarray:
        """Sorted unique 64-bit shingle hashes of a text (for the exact Jaccard check)."""
        hashes, _ = self._shingle_hashes([self.token_hashes(text)])
        return np.unique(hashes)

    def signatures(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """MinHash signatures ``(len(texts), num_perm)`` uint32, and a mask of texts with shingles.

        Texts without any word have no signature (their row is all 0xFFFFFFFF and mask False).
        """
        hashes, counts = self._shingle_hashes([self.token_hashes(t) for t in texts])
        return self._minhash(hashes, counts), counts > 0

    def _minhash(self, hashes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        sig = np.full((counts.size, self.config.num_perm), 0xFFFFFFFF, dtype=np.uint32)
        if hashes.size == 0:
            return sig
        inputs = _fmix32((hashes >> np.uint64(32)).astype(np.uint32))
        has_shingles = counts > 0
        starts = np.concatenate(([0], np.cumsum(counts[has_shingles])[:-1]))
        # One permutation at a time over all shingles of the batch: 1-D multiply-add and a 1-D
        # min per document (reduceat) stay in cache and run ~5x faster than the
        # (shingles x permutations) matrix datasketch builds, with the same result.
        permuted = np.empty_like(inputs)
        out = np.empty((starts.size, self.config.num_perm), dtype=np.uint32)
        for k in range(self.config.num_perm):
            np.multiply(inputs, self.a[k], out=permuted)
            permuted += self.b[k]
            out[:, k] = np.minimum.reduceat(permuted, starts)
        sig[has_shingles] = out
        return sig

    def band_hashes(self, sig: np.ndarray) -> np.ndarray:
        """One 64-bit hash per band ``(n, bands)``; equal bands give equal hashes."""
        bands = sig.reshape(sig.shape[0], self.config.bands, self.config.rows).astype(np.uint64)
        total = np.zeros(bands.shape[:2], dtype=np.uint64)
        for r in range(self.config.rows):
            total += _fmix64(bands[:, :, r]) * self._band_coefficients[r]
        return _fmix64(total)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.count_nonzero(sig_a == sig_b)) / sig_a.size


def exact_jaccard(set_a: np.ndarray, set_b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays."""
    if set_a.size == 0 and set_b.size == 0:
        return 1.0
    common = np.intersect1d(set_a, set_b, assume_unique=True).size
    return common / (set_a.size + set_b.size - common)


# --------------------------------------------------------------------------------------------
# State layout


def band_column(band: int) -> str:
    return f"b{band:03d}"


def make_key(file_index: int, line: int) -> int:
    return (file_index << 32) | line


def _write_parquet_atomic(table: Any, path: str) -> None:
    import pyarrow.parquet as pq

    tmp = f"{path}.tmp-{os.getpid()}"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


class ParquetStream:
    """Write record batches to a parquet file in row groups of ``rows_per_group`` rows, with
    bounded memory; the file appears under its name only when ``close`` is called."""

    def __init__(self, path: str, schema: Any, rows_per_group: int = 16384):
        import pyarrow.parquet as pq

        self.path, self.schema, self.rows_per_group = path, schema, rows_per_group
        self.tmp = f"{path}.tmp-{os.getpid()}"
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.pending: list[Any] = []
        self.pending_rows = 0

    def write(self, batch: Any) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, schema=self.schema))
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.path)


def _signature_schema(config: MinhashConfig) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("key", pa.int64()),
        pa.field("id", pa.string()),
        pa.field("length", pa.int64()),
        pa.field("created_start", pa.string()),
        pa.field("created_end", pa.string()),
        pa.field("added", pa.string()),
        pa.field("source", pa.string()),
    ]
    fields += [pa.field(band_column(i), pa.uint64()) for i in range(config.bands)]
    fields.append(pa.field("sig", pa.binary(4 * config.num_perm)))
    return pa.schema(fields)


def _split_created(created: Any) -> tuple[str | None, str | None]:
    if isinstance(created, str) and ", " in created:
        start, end = created.split(", ", 1)
        return start, end
    return None, None


# --------------------------------------------------------------------------------------------
# Phase 1: signatures


class MinhashSignatures(PipelineStep):
    """Write a MinHash signature per document to ``<state>/sigs/<file index>.parquet``.

    Task ``rank`` handles input files ``rank, rank + world_size, ...``; each file's signatures
    are written atomically, so a rerun of an interrupted task rewrites whole files.

    Args:
        input_path: the stage's INPUT.
        state_dir: ``OUTPUT/.nordpipe/minhash``.
        config: the ``MinhashConfig``.
        batch_size: documents hashed together (default 512).
    """

    type = "🫂 - DEDUP"
    name = "minhash signatures"

    def __init__(self, input_path: str, state_dir: str, config: MinhashConfig, batch_size: int = 512):
        super().__init__()
        self.input_path = input_path
        self.state_dir = state_dir
        self.config = config
        self.batch_size = batch_size

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        hasher = MinhashHasher(self.config)
        reader = DocumentReader(self.input_path)
        out_dir = os.path.join(self.state_dir, "sigs")
        os.makedirs(out_dir, exist_ok=True)
        files = input_files(self.input_path)
        for index in range(rank, len(files), world_size):
            path, stem = files[index]
            with self.track_time():
                out = ParquetStream(os.path.join(out_dir, f"{index:06d}.parquet"), _signature_schema(self.config))
                self._signatures_of_file(hasher, reader.read_file(path, stem), index, out)
                out.close()
            self.stat_update("files")

    def _signatures_of_file(
        self, hasher: MinhashHasher, docs: Iterable[Document], index: int, out: ParquetStream
    ) -> None:
        import pyarrow as pa

        schema = out.schema
        batch: list[Document] = []

        def flush() -> None:
            sig, has_shingles = hasher.signatures([d.text for d in batch])
            self.stat_update("no_shingles", value=int((~has_shingles).sum()))
            keep = np.flatnonzero(has_shingles)
            if keep.size == 0:
                return
            sig = sig[keep]
            docs = [batch[i] for i in keep]
            bands = hasher.band_hashes(sig)
            created = [_split_created(d.metadata.get("created")) for d in docs]
            columns = [
                pa.array([make_key(index, d.metadata[LINE_KEY]) for d in docs], pa.int64()),
                pa.array([d.id for d in docs], pa.string()),
                pa.array([len(d.text) for d in docs], pa.int64()),
                pa.array([c[0] for c in created], pa.string()),
                pa.array([c[1] for c in created], pa.string()),
                pa.array([d.metadata.get("added") for d in docs], pa.string()),
                pa.array([d.metadata.get("source") for d in docs], pa.string()),
            ]
            columns += [pa.array(bands[:, i]) for i in range(self.config.bands)]
            columns.append(
                pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(4 * self.config.num_perm),
                    len(docs),
                    [None, pa.py_buffer(np.ascontiguousarray(sig).tobytes())],
                )
            )
            out.write(pa.RecordBatch.from_arrays(columns, schema=schema))
            self.stat_update("documents", value=len(docs))

        for doc in docs:
            if not is_active(doc):  # quarantined records have no text to hash
                continue
            batch.append(doc)
            if len(batch) >= self.batch_size:
                flush()
                batch = []
        if batch:
            flush()


# --------------------------------------------------------------------------------------------
# Incremental index


INDEX_KIND = "minhash"
LEGACY_INDEX_FILE = "index.json"


class MinhashIndex:
    """The index of earlier releases: a versioned state directory (``state.StateDirectory``,
    kind ``minhash``) whose generations hold parquet parts of signatures, one per run.

    Each generation's ``state.json`` records the MinHash parameters (a run with other parameters
    refuses the index) and its runs, each with its part, its OUTPUT and the content digests of its
    input files. A part is immutable and named by its run (``part-<run id>.parquet``), so the
    same name means the same file in every generation (hard links, no copies). A rerun of the
    OUTPUT of the index's *last* run replaces that run's part (the batch is never deduplicated
    against itself); any other input already in the index is refused (``state.check_unseen``).
    Indexes written before generations (``index.json`` + ``part-*.parquet`` in the folder) are
    read as they are and moved into generation 1 by the next run that adds a part.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.store = StateDirectory(self.path, INDEX_KIND)

    def current(self) -> Generation:
        generation = self.store.current()
        if generation.number or not os.path.exists(os.path.join(self.path, LEGACY_INDEX_FILE)):
            return generation
        with open(os.path.join(self.path, LEGACY_INDEX_FILE)) as handle:
            legacy = json.load(handle)
        runs = [{"run_id": p["name"], "part": p["name"], "output": p.get("output"), "documents": p.get("documents"),
                 "finished": p.get("added"), "generation": 0} for p in legacy.get("parts", [])]
        return Generation(self.path, 0, {"parameters": legacy.get("config"), "runs": runs})

    def load(self) -> dict[str, Any]:
        """``{"config", "parts": [{"name", "output", "documents", "added"}]}`` of the current generation."""
        generation = self.current()
        parts = [{"name": r["part"], "output": r.get("output"), "documents": r.get("documents"), "added": r.get("finished")}
                 for r in generation.runs if r.get("part")]
        return {"config": generation.record.get("parameters"), "parts": parts}

    def check(self, config: MinhashConfig) -> None:
        meta = self.load()
        if meta["config"] is not None and meta["config"] != config.to_json():
            raise ValueError(
                f"index {self.path} was built with other MinHash parameters ({meta['config']}); "
                f"this run uses {config.to_json()}"
            )

    def redone_run(self, output_path: str, input_path: str | None = None) -> dict[str, Any] | None:
        """The index's last run when it wrote ``output_path`` from ``input_path``: a new run of
        that INPUT into that OUTPUT redoes it and replaces its part (the batch is never
        deduplicated against itself); another INPUT into that OUTPUT is a new run."""
        return redone_run(self.current().runs, output_path, input_path)

    def part_paths(self, names: Sequence[str]) -> list[str]:
        """Where the parts named ``names`` are (in the current generation)."""
        generation = self.current()
        paths = []
        for name in names:
            path = generation.path(name) if generation.number else os.path.join(self.path, name)
            if not os.path.exists(path):
                raise RunError(f"the index {self.path} no longer holds {name} (it was rolled back or changed since this "
                               "run started): rerun with --force to start over against the index as it is")
            paths.append(path)
        return paths

    def add_part(self, table: Any, config: MinhashConfig, output_path: str, run: dict[str, Any],
                 keep: int = DEFAULT_KEEP_GENERATIONS) -> str:
        """Commit a generation with the parts of the current one (minus the part of an earlier
        run into the same OUTPUT) and this run's ``table``; idempotent per ``run["run_id"]``."""
        current = base = self.current()
        name = f"part-{run['run_id'][:16]}.parquet"
        if base.has_run(run["run_id"]):
            return name
        redo = self.redone_run(output_path, run.get("input"))
        if redo is not None and base.number:
            # a redo of the last run builds on the generation before it, as that run did
            parent = run_parent(redo)
            if parent == 0 or parent in {g.number for g in self.store.generations()}:
                base = self.store.generation(parent)
        own = os.path.abspath(output_path)
        # the parts are those of the current generation minus the redone run's (the parent
        # generation 0 of a converted legacy index holds no parts: they live in ``current``)
        runs = [r for r in current.runs if redo is None or r.get("run_id") != redo.get("run_id")]
        files = {}
        for other in runs:
            if other.get("part"):
                files[other["part"]] = (current.path(other["part"]) if current.number
                                        else os.path.join(self.path, other["part"]))
        staging = os.path.join(self.path, f".staging-{run['run_id'][:16]}")
        os.makedirs(staging, exist_ok=True)
        _write_parquet_atomic(table, os.path.join(staging, name))
        files[name] = os.path.join(staging, name)
        record = {"parameters": config.to_json(), "runs": runs,
                  "summary": {"parts": len(files), "documents": sum(int(r.get("documents") or 0) for r in runs) + table.num_rows}}
        self.store.commit(base, {**run, "part": name, "output": own, "documents": table.num_rows}, record, files, keep)
        self.tidy()
        return name

    def tidy(self) -> None:
        """Remove what a committed run no longer needs: staged parts, and the files of a legacy
        index once its parts live in a generation (a kill right after a commit leaves them)."""
        for entry in os.listdir(self.path):
            if entry.startswith(".staging-"):
                shutil.rmtree(os.path.join(self.path, entry), ignore_errors=True)
        legacy = os.path.join(self.path, LEGACY_INDEX_FILE)
        if self.store.current().number and os.path.exists(legacy):
            with open(legacy) as handle:
                names = [p["name"] for p in json.load(handle).get("parts", [])]
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.path, name))
            os.remove(legacy)


def _path_tag(path: str) -> str:
    return xxhash.xxh3_64_hexdigest(path)[:8]


def scan_index(index_path: str | None, parts: Sequence[str], columns: Sequence[str]) -> Any:
    """A polars LazyFrame of the index parts with index keys, or None without an index."""
    import polars as pl

    if not index_path or not parts:
        return None
    frames = []
    for number, name in enumerate(parts):
        frame = pl.scan_parquet(os.path.join(index_path, name)).with_row_index("row")
        frame = frame.with_columns(
            key=(pl.lit(INDEX_KEY_BASE + (number << 36), pl.Int64) + pl.col("row").cast(pl.Int64))
        )
        frames.append(frame.select(list(columns)))
    return pl.concat(frames)


def _scan_signatures(state_dir: str, columns: Sequence[str]) -> Any:
    import polars as pl

    files = sorted(glob.glob(os.path.join(state_dir, "sigs", "*.parquet")))
    if not files:
        return None
    return pl.scan_parquet(files).select(list(columns))


def _scan_all(state_dir: str, index_path: str | None, parts: Sequence[str], columns: Sequence[str]) -> Any:
    import polars as pl

    frames = [
        f for f in (_scan_signatures(state_dir, columns), scan_index(index_path, parts, columns)) if f is not None
    ]
    return pl.concat(frames) if frames else None


# --------------------------------------------------------------------------------------------
# Phase 2: buckets


class MinhashBuckets(PipelineStep):
    """Group documents band by band and write candidate edges to ``<state>/buckets/``.

    Task ``rank`` handles bands ``rank, rank + world_size, ...``. For each bucket of equal band
    hashes with more than one document, every member gets an edge to the bucket's smallest key
    (enough for connectivity); with ``chain_edges`` also to its predecessor, so that the exact
    Jaccard check can still join members that are similar to each other but not to the
    smallest one.
    """

    type = "🫂 - DEDUP"
    name = "minhash buckets"

    def __init__(
        self,
        state_dir: str,
        config: MinhashConfig,
        index_path: str | None = None,
        index_parts: Sequence[str] = (),
        chain_edges: bool = False,
    ):
        super().__init__()
        self.state_dir = state_dir
        self.config = config
        self.index_path = index_path
        self.index_parts = list(index_parts)
        self.chain_edges = chain_edges

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        import polars as pl

        out_dir = os.path.join(self.state_dir, "buckets")
        os.makedirs(out_dir, exist_ok=True)
        for band in range(rank, self.config.bands, world_size):
            with self.track_time():
                column = band_column(band)
                frame = _scan_all(self.state_dir, self.index_path, self.index_parts, ["key", column])
                if frame is None:
                    edges = pl.DataFrame({"a": [], "b": []}, schema={"a": pl.Int64, "b": pl.Int64})
                else:
                    members = (
                        frame.rename({column: "h"})
                        .filter(pl.col("h").is_duplicated())
                        .sort(["h", "key"])
                        .with_columns(root=pl.col("key").first().over("h"), prev=pl.col("key").shift(1).over("h"))
                    )
                    star = members.filter(pl.col("key") != pl.col("root")).select(a=pl.col("key"), b=pl.col("root"))
                    parts = [star]
                    if self.chain_edges:
                        parts.append(
                            members.filter(pl.col("prev").is_not_null() & (pl.col("prev") != pl.col("root"))).select(
                                a=pl.col("key"), b=pl.col("prev")
                            )
                        )
                    edges = pl.concat(parts).collect()
                _write_parquet_atomic(edges.to_arrow(), os.path.join(out_dir, f"band_{band:03d}.parquet"))
            self.stat_update("candidate_edges", value=edges.height)
            self.stat_update("bands")


def _unique_edges(state_dir: str) -> Any:
    import polars as pl

    files = sorted(glob.glob(os.path.join(state_dir, "buckets", "band_*.parquet")))
    if not files:
        return pl.DataFrame({"a": [], "b": []}, schema={"a": pl.Int64, "b": pl.Int64})
    return pl.scan_parquet(files).unique().sort(["a", "b"]).collect()


# --------------------------------------------------------------------------------------------
# Phase 3 (optional): exact Jaccard check


class MinhashShingles(PipelineStep):
    """Recompute the shingle sets of documents that appear in candidate pairs.

    Writes ``<state>/shingles/<file index>.parquet`` (key, sorted unique 64-bit shingle hashes)
    for the input files of this task; only files with candidates are read.
    """

    type = "🫂 - DEDUP"
    name = "minhash shingles"

    def __init__(self, input_path: str, state_dir: str, config: MinhashConfig):
        super().__init__()
        self.input_path = input_path
        self.state_dir = state_dir
        self.config = config

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        import polars as pl
        import pyarrow as pa

        hasher = MinhashHasher(self.config)
        reader = DocumentReader(self.input_path, validate=True)
        out_dir = os.path.join(self.state_dir, "shingles")
        os.makedirs(out_dir, exist_ok=True)
        edges = pl.read_parquet(os.path.join(self.state_dir, "verify", "candidates.parquet"))
        needed_keys = pl.concat([edges["a"], edges["b"]]).unique()
        needed_keys = needed_keys.filter(needed_keys >= 0)
        by_file = (
            needed_keys.to_frame("key").with_columns(file=pl.col("key") // (1 << 32)).partition_by("file", as_dict=True)
        )
        files = input_files(self.input_path)
        for index in range(rank, len(files), world_size):
            frame = by_file.get((index,))
            if frame is None:
                continue
            with self.track_time():
                wanted = set(frame["key"].to_list())
                path, stem = files[index]
                schema = pa.schema([pa.field("key", pa.int64()), pa.field("shingles", pa.large_list(pa.uint64()))])
                out = ParquetStream(os.path.join(out_dir, f"{index:06d}.parquet"), schema, rows_per_group=1024)
                keys: list[int] = []
                sets: list[np.ndarray] = []
                for doc in reader.read_file(path, stem):
                    key = make_key(index, doc.metadata[LINE_KEY])
                    if key in wanted:
                        keys.append(key)
                        sets.append(hasher.shingle_set(doc.text))
                    if len(keys) >= 256:
                        out.write(
                            pa.RecordBatch.from_arrays(
                                [pa.array(keys, pa.int64()), pa.array(sets, pa.large_list(pa.uint64()))], schema=schema
                            )
                        )
                        self.stat_update("documents", value=len(keys))
                        keys, sets = [], []
                if keys:
                    out.write(
                        pa.RecordBatch.from_arrays(
                            [pa.array(keys, pa.int64()), pa.array(sets, pa.large_list(pa.uint64()))], schema=schema
                        )
                    )
                    self.stat_update("documents", value=len(keys))
                out.close()


class MinhashVerify(PipelineStep):
    """Keep candidate pairs whose exact Jaccard similarity is at least ``threshold``.

    Task ``rank`` checks the pairs whose first key hashes to ``rank``; it loads the shingle sets
    of only the documents in its pairs. Pairs with an index document (whose text is not at
    hand) are checked against the similarity estimated from the two signatures instead.
    """

    type = "🫂 - DEDUP"
    name = "minhash verify"

    def __init__(
        self,
        state_dir: str,
        config: MinhashConfig,
        threshold: float,
        index_path: str | None = None,
        index_parts: Sequence[str] = (),
    ):
        super().__init__()
        self.state_dir = state_dir
        self.config = config
        self.threshold = threshold
        self.index_path = index_path
        self.index_parts = list(index_parts)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        import polars as pl

        verify_dir = os.path.join(self.state_dir, "verify")
        edges = pl.read_parquet(os.path.join(verify_dir, "candidates.parquet"))
        edges = edges.filter((pl.col("a").hash(seed=7) % world_size) == rank)
        keys = pl.concat([edges["a"], edges["b"]]).unique()
        shingle_files = sorted(glob.glob(os.path.join(self.state_dir, "shingles", "*.parquet")))
        sets: dict[int, np.ndarray] = {}
        if shingle_files and keys.len():
            table = pl.scan_parquet(shingle_files).filter(pl.col("key").is_in(keys.implode())).collect()
            for key, values in zip(table["key"].to_list(), table["shingles"].to_list(), strict=True):
                sets[key] = np.asarray(values, dtype=np.uint64)
        sigs: dict[int, np.ndarray] = {}
        index_edges = edges.filter((pl.col("a") < 0) | (pl.col("b") < 0))
        if index_edges.height:
            sig_keys = pl.concat([index_edges["a"], index_edges["b"]]).unique()
            frame = _scan_all(self.state_dir, self.index_path, self.index_parts, ["key", "sig"])
            table = frame.filter(pl.col("key").is_in(sig_keys.implode())).collect()
            for key, sig in zip(table["key"].to_list(), table["sig"].to_list(), strict=True):
                sigs[key] = np.frombuffer(sig, dtype=np.uint32)
        keep = np.zeros(edges.height, dtype=bool)
        with self.track_time():
            for i, (a, b) in enumerate(zip(edges["a"].to_list(), edges["b"].to_list(), strict=True)):
                if a >= 0 and b >= 0 and a in sets and b in sets:
                    similarity = exact_jaccard(sets[a], sets[b])
                elif a in sigs and b in sigs:
                    similarity = estimated_jaccard(sigs[a], sigs[b])
                    self.stat_update("estimated_pairs")
                else:
                    continue
                keep[i] = similarity >= self.threshold
        self.stat_update("checked_pairs", value=edges.height)
        self.stat_update("rejected_pairs", value=int((~keep).sum()))
        _write_parquet_atomic(
            edges.filter(pl.Series(keep)).to_arrow(), os.path.join(verify_dir, f"verified_{rank:05d}.parquet")
        )


# --------------------------------------------------------------------------------------------
# Phase 4: clusters


def connected_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union-find over edges ``(a[i], b[i])``: returns ``(nodes, root)`` where ``root[i]`` is the
    smallest node of ``nodes[i]``'s component.

    Vectorized hooking and pointer jumping: every round hooks each root that has an edge to a
    smaller root onto the smallest such root, then compresses all paths. A root only ever
    points to a smaller node, so there are no cycles, and each round removes at least one root.
    """
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inverse[: a.size], inverse[a.size :]
    parent = np.arange(nodes.size)
    while True:
        ra, rb = parent[ia], parent[ib]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        differ = lo != hi
        if not differ.any():
            break
        np.minimum.at(parent, hi[differ], lo[differ])
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return nodes, nodes[parent]


def _survivor_order(policy: str) -> tuple[list[Any], list[bool]]:
    import polars as pl

    in_index = (pl.col("key") < 0).alias("in_index")
    if policy == "first":
        return [in_index, pl.col("key")], [True, False]
    if policy == "longest":
        return [in_index, pl.col("length"), pl.col("key")], [True, True, False]
    if policy == "newest":
        return [in_index, pl.col("created_end"), pl.col("added"), pl.col("key")], [True, True, True, False]
    if policy == "oldest":
        return [in_index, pl.col("created_start"), pl.col("added"), pl.col("key")], [True, False, False, False]
    raise ValueError(f"unknown survivor policy {policy!r} (use one of {', '.join(SURVIVOR_POLICIES)})")


class MinhashClusters(PipelineStep):
    """Cluster the edges (union-find) and choose a survivor per cluster.

    Writes ``<state>/clusters/<file index>.parquet`` with every clustered document of that file:
    ``key, cluster, size, survivor_key, survivor_id, survivor_in_index``. The cluster id is
    ``<stem>:<line>`` of the cluster's smallest key (``index:<part>:<row>`` for an index
    document), so it does not depend on the survivor policy or the number of tasks. Index
    documents always survive (they were released already).

    Args:
        survivor: ``first`` (smallest key: first input file, first line), ``longest``,
            ``newest`` (latest ``created`` end, then ``added``) or ``oldest`` (earliest
            ``created`` start, then ``added``); ties go to the smallest key.
    """

    type = "🫂 - DEDUP"
    name = "minhash clusters"

    def __init__(
        self,
        state_dir: str,
        config: MinhashConfig,
        survivor: str = "first",
        verified: bool = False,
        index_path: str | None = None,
        index_parts: Sequence[str] = (),
    ):
        super().__init__()
        if survivor not in SURVIVOR_POLICIES:
            raise ValueError(f"unknown survivor policy {survivor!r} (use one of {', '.join(SURVIVOR_POLICIES)})")
        self.state_dir = state_dir
        self.config = config
        self.survivor = survivor
        self.verified = verified
        self.index_path = index_path
        self.index_parts = list(index_parts)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        import polars as pl

        # The folder is also this phase's datatrove logging folder (task logs, the Slurm script
        # and its logs, completion markers): replace only the parquet files of an earlier try.
        # (No folder swap is needed for atomicity: the filter phase reads these files only
        # after this phase's completion marker exists.)
        out_dir = os.path.join(self.state_dir, "clusters")
        os.makedirs(out_dir, exist_ok=True)
        for earlier in glob.glob(os.path.join(out_dir, "*.parquet")):
            os.remove(earlier)
        with self.track_time():
            if self.verified:
                files = sorted(glob.glob(os.path.join(self.state_dir, "verify", "verified_*.parquet")))
                edges = pl.read_parquet(files) if files else pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
            else:
                edges = _unique_edges(self.state_dir)
            nodes, roots = connected_components(edges["a"].to_numpy(), edges["b"].to_numpy())
            members = pl.DataFrame({"key": nodes, "root": roots}, schema={"key": pl.Int64, "root": pl.Int64})
            attributes = ["key", "id", "length", "created_start", "created_end", "added"]
            frame = _scan_all(self.state_dir, self.index_path, self.index_parts, attributes)
            if frame is not None and members.height:
                attrs = frame.join(members.lazy().select("key"), on="key", how="semi").collect()
                members = members.join(attrs, on="key", how="left")
                order, descending = _survivor_order(self.survivor)
                survivors = (
                    members.sort(order, descending=descending, nulls_last=True)
                    .group_by("root", maintain_order=True)
                    .first()
                    .select(root="root", survivor_key="key", survivor_id="id")
                )
                sizes = members.group_by("root").agg(size=pl.len())
                members = members.join(survivors, on="root").join(sizes, on="root")
                stems = _load_stems(self.state_dir)
                roots = members["root"].unique()
                labels = pl.DataFrame(
                    {"root": roots, "cluster": [_key_label(k, stems) for k in roots.to_list()]},
                    schema={"root": pl.Int64, "cluster": pl.String},
                )
                members = members.join(labels, on="root")
                batch_members = members.filter(pl.col("key") >= 0).with_columns(file=pl.col("key") // (1 << 32))
                self.stat_update("clusters", value=int(members["root"].n_unique()))
                self.stat_update("clustered_documents", value=members.height)
                self.stat_update("to_remove", value=int((batch_members["key"] != batch_members["survivor_key"]).sum()))
                columns = ["key", "cluster", "size", "survivor_key", "survivor_id"]
                for (file_index,), part in batch_members.partition_by("file", as_dict=True).items():
                    part = part.with_columns(survivor_in_index=pl.col("survivor_key") < 0).select(
                        [*columns, "survivor_in_index"]
                    )
                    _write_parquet_atomic(
                        part.sort("key").to_arrow(), os.path.join(out_dir, f"{file_index:06d}.parquet")
                    )


def _load_stems(state_dir: str) -> list[str]:
    with open(os.path.join(state_dir, "files.json")) as handle:
        return json.load(handle)["stems"]


def _key_label(key: int, stems: Sequence[str]) -> str:
    if key < 0:
        offset = key - INDEX_KEY_BASE
        return f"index:{offset >> 36}:{offset & ((1 << 36) - 1)}"
    return f"{stems[key >> 32]}:{key & 0xFFFFFFFF}"


# --------------------------------------------------------------------------------------------
# Phase 5: filter


class MinhashFilter(PipelineStep):
    """Mark every clustered document except its cluster's survivor ``minhash:duplicate``.

    Survivors get ``metadata.nordpipe.minhash = {cluster, size}``; removed documents also
    ``survivor`` (the survivor's id) and ``survivor_in_index`` when the survivor is a document
    of an earlier release. Reads ``<state>/clusters/<file index>.parquet`` for the input file a
    document came from (its ``INPUT_KEY`` stem).

    Args:
        state_dir: ``OUTPUT/.nordpipe/minhash``.
    """

    type = "🫂 - DEDUP"
    name = "minhash"

    def __init__(self, state_dir: str):
        super().__init__()
        self.state_dir = state_dir

    def _clusters_of(self, stem: str) -> dict[int, tuple[str, int, int, str, bool]]:
        import pyarrow.parquet as pq

        index = self._file_index.get(stem)
        path = os.path.join(self.state_dir, "clusters", f"{index:06d}.parquet") if index is not None else None
        if path is None or not os.path.exists(path):
            return {}
        table = pq.read_table(path).to_pydict()
        return {
            key: (cluster, size, survivor_key, survivor_id, in_index)
            for key, cluster, size, survivor_key, survivor_id, in_index in zip(
                table["key"],
                table["cluster"],
                table["size"],
                table["survivor_key"],
                table["survivor_id"],
                table["survivor_in_index"],
                strict=True,
            )
        }

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._file_index = {stem: i for i, stem in enumerate(_load_stems(self.state_dir))}
        current_stem: str | None = None
        clusters: dict[int, tuple[str, int, int, str, bool]] = {}
        for doc in data:
            if not is_active(doc):
                yield doc
                continue
            stem = doc.metadata.get(INPUT_KEY)
            if stem != current_stem:
                current_stem, clusters = stem, self._clusters_of(stem)
            index = self._file_index.get(stem)
            entry = clusters.get(make_key(index, doc.metadata[LINE_KEY])) if index is not None else None
            if entry is None:
                self.stat_update("unique")
                yield doc
                continue
            cluster, size, survivor_key, survivor_id, in_index = entry
            info: dict[str, Any] = {"cluster": cluster, "size": size}
            if survivor_key == make_key(index, doc.metadata[LINE_KEY]):
                self.stat_update("survivors")
            else:
                info["survivor"] = survivor_id
                if in_index:
                    info["survivor_in_index"] = True
                    self.stat_update("removed_against_index")
                mark_removed(doc, f"minhash:{REMOVED_RULE}")
                self.stat_update("removed")
            nordpipe_meta(doc)["minhash"] = info
            yield doc


# --------------------------------------------------------------------------------------------
# Orchestration


def _phase_options(options: Any, tasks: int) -> Any:
    return dataclasses.replace(options, tasks=tasks)


def run_minhash(
    input_path: str,
    output_path: str,
    config: MinhashConfig | None = None,
    options: Any = None,
    survivor: str = "first",
    jaccard_check: bool = False,
    jaccard_threshold: float = 0.8,
    index_path: str | None = None,
    update_index: bool = True,
    rerun_seen: bool = False,
    keep_generations: int = DEFAULT_KEEP_GENERATIONS,
) -> dict[str, Any]:
    """Run near-duplicate removal from INPUT to OUTPUT; returns the stage's stats.

    ``options`` is a ``runner.RunOptions``; ``options.tasks`` sets the tasks of the signature,
    shingle and filter phases (default: one per input file); the bucket phase runs
    ``min(tasks, bands)`` tasks and the cluster phase one. With ``index_path``, input files
    whose content the index holds already are refused unless ``rerun_seen``, and the index keeps
    ``keep_generations`` generations.
    """
    from nordpipe.runner import RunError, RunOptions, StageRun

    config = config or MinhashConfig()
    options = options or RunOptions()
    # Imported (not used) here once, so that the forked phase processes do not each import them.
    import datatrove.executor  # noqa: F401
    import polars  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if survivor not in SURVIVOR_POLICIES:
        raise ValueError(f"unknown survivor policy {survivor!r} (use one of {', '.join(SURVIVOR_POLICIES)})")
    if not 0.0 < jaccard_threshold <= 1.0:
        raise ValueError(f"Jaccard threshold {jaccard_threshold} is not in (0, 1]")
    if config.shingle_size < 1 or config.bands < 1 or config.rows < 1:
        raise ValueError("ngram, bands and rows must be at least 1")
    index = MinhashIndex(index_path) if index_path else None
    resolved: dict[str, Any] = {"parts": []}

    def parameters() -> dict[str, Any]:
        # read under the index's lock, so that no other run commits a generation meanwhile
        if index is not None:
            index.check(config)
            this_run = resolved["run"] = _index_run(output_path, input_path, new=options.force)
            current = index.current()
            view = current
            if not current.has_run(this_run["run_id"]):
                # a redo of the index's last run does not see that run's part
                redo = index.redone_run(output_path, input_path)
                if redo is not None:
                    view = Generation(current.directory, current.number,
                                      {**current.record, "runs": [r for r in current.runs if r.get("run_id") != redo.get("run_id")]})
                # Before anything is written: documents of files the index holds already would all
                # be near duplicates of themselves. Refuse, unless this is the same run being finished.
                if not rerun_seen:
                    check_unseen(index.store, view, this_run["inputs"], "MinHash index", output=output_path,
                                 input_path=input_path)
            resolved["parts"] = [r["part"] for r in view.runs if r.get("part") and r.get("run_id") != this_run["run_id"]]
        return {
            **config.to_json(),
            "survivor": survivor,
            "jaccard_check": jaccard_check,
            "jaccard_threshold": jaccard_threshold if jaccard_check else None,
            "index": index.path if index is not None else None,
            "index_parts": resolved["parts"],
            "update_index": update_index,
        }

    file_count = len(input_files_or_none(input_path))
    tasks = max(1, min(options.tasks or file_count, file_count, MAX_TASKS))
    locks = (index_path,) if index_path else ()
    with StageRun(STAGE, input_path, output_path, options, parameters, tasks=tasks, extra_locks=locks) as run:
        if run.empty:
            run.execute([DocumentReader(input_path), run.writer()])
            return run.finish()
        files = input_files(input_path)
        output_path = run.output_path
        mh_state = os.path.join(run.state, "minhash")
        os.makedirs(mh_state, exist_ok=True)
        files_json = os.path.join(mh_state, "files.json")
        stems = [stem for _, stem in files]
        if os.path.exists(files_json):
            if _load_stems(mh_state) != stems:
                raise RunError(f"the input files under {input_path} changed since this run started; rerun with --force")
        else:
            # written once: the tasks of a Slurm phase array all pass here at the same time
            atomic_write_json(files_json, {"stems": stems, "paths": [p for p, _ in files]})
        index_parts: list[str] = resolved["parts"]
        part_paths: list[str] = []
        if index is not None:
            _save_index_run(mh_state, resolved["run"])
            part_paths = index.part_paths(index_parts)

        def phase(name: str, steps: list[PipelineStep], phase_tasks: int, depends: str | None) -> str | None:
            return run.execute(steps, os.path.join(mh_state, name), phase_tasks, job_name=f"nordpipe-minhash-{name}",
                               depends_job_id=depends, options=_phase_options(options, phase_tasks))

        job = phase("signatures", [MinhashSignatures(input_path, mh_state, config)], tasks, None)
        bucket_tasks = max(1, min(tasks, config.bands))
        job = phase("buckets", [MinhashBuckets(mh_state, config, index_path, part_paths, chain_edges=jaccard_check)],
                    bucket_tasks, job) or job
        if jaccard_check:
            job = phase("candidates", [_WriteCandidates(mh_state)], 1, job) or job
            job = phase("shingles", [MinhashShingles(input_path, mh_state, config)], tasks, job) or job
            job = phase("verify", [MinhashVerify(mh_state, config, jaccard_threshold, index_path, part_paths)],
                        bucket_tasks, job) or job
        job = phase("clusters", [MinhashClusters(mh_state, config, survivor, jaccard_check, index_path, part_paths)],
                    1, job) or job
        run.execute([DocumentReader(input_path), MinhashFilter(mh_state), run.writer()],
                    job_name="nordpipe-minhash-filter", depends_job_id=job)
        if run.submitted_only:
            return run.submit()
        run.finishing()
        stats = run.merge_stats()
        if index is not None and update_index:
            # polars in a spawned child: the orchestrating process never uses polars (see _isolated)
            kill_point("minhash.before-index-commit")
            _isolated(_update_index, index, mh_state, config, output_path, keep_generations)
            kill_point("minhash.after-index-commit")
        stats = _add_minhash_stats(stats, output_path, mh_state, config, jaccard_check, index_parts)
        return run.complete(stats)


def input_files_or_none(input_path: str) -> list[tuple[str, str]]:
    """``input_files``, or none where INPUT is not there (``StageRun`` then says what is wrong)."""
    try:
        return input_files(input_path)
    except (FileNotFoundError, OSError):
        return []


MAX_TASKS = 1024


def _isolated(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``function`` in a child process and return its result (or raise its error).

    polars' thread pool does not survive ``fork``: a forked child that uses polars after its
    parent did deadlocks. The orchestrating process must therefore never use polars itself, and
    its children are spawned (clean processes), not from a fork of a parent that may
    already have used polars (a test run, a notebook, a program embedding nordpipe).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args, **kwargs).result()


class _WriteCandidates(PipelineStep):
    """Deduplicate the bucket edges into ``<state>/verify/candidates.parquet`` (one task)."""

    type = "🫂 - DEDUP"
    name = "minhash candidates"

    def __init__(self, state_dir: str):
        super().__init__()
        self.state_dir = state_dir

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        verify_dir = os.path.join(self.state_dir, "verify")
        os.makedirs(verify_dir, exist_ok=True)
        edges = _unique_edges(self.state_dir)
        self.stat_update("candidate_pairs", value=edges.height)
        _write_parquet_atomic(edges.to_arrow(), os.path.join(verify_dir, "candidates.parquet"))


INDEX_RUN_FILE = "index-run.json"


def _index_run(output_path: str, input_path: str, new: bool = False) -> dict[str, Any]:
    """This run's record for the index (run id and input digests): the one an earlier run of
    OUTPUT saved (so that a resumed run is recognized as the same run), else (or with ``new``,
    for ``--force``) a new one."""
    path = OutputLayout.of(output_path).state_path(STAGE, INDEX_RUN_FILE)
    if os.path.exists(path) and not new:
        with open(path) as handle:
            return dict(json.load(handle))
    return {"run_id": uuid.uuid4().hex, "input": absolute(input_path), "output": os.path.abspath(output_path),
            "inputs": input_digests(input_path)}


def _save_index_run(mh_state: str, run: dict[str, Any]) -> None:
    atomic_write_json(os.path.join(mh_state, INDEX_RUN_FILE), run)


def _update_index(index: MinhashIndex, mh_state: str, config: MinhashConfig, output_path: str,
                  keep: int = DEFAULT_KEEP_GENERATIONS) -> None:
    """Add the batch's documents to the index as a new generation (once per run: the run id
    makes a rerun after a kill find its generation committed and do nothing).

    Removed documents are indexed too, not only survivors: near-duplicate clusters chain
    (A ~ B, B ~ C, A !~ C), and a later batch's C must meet B to land in A's cluster, exactly as
    it would have in one run over both batches.
    """
    with open(os.path.join(mh_state, INDEX_RUN_FILE)) as handle:
        run = json.load(handle)
    if index.current().has_run(run["run_id"]):
        index.store.prune(keep)  # a run killed right after its commit had not pruned or tidied yet
        index.tidy()
        return
    frame = _scan_signatures(mh_state, [c.name for c in _signature_schema(config)])
    if frame is None:
        return
    table = frame.sort("key").drop("key").collect().to_arrow()
    run["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    index.add_part(table, config, output_path, run, keep)


def _add_minhash_stats(
    stats: dict[str, Any],
    output_path: str,
    mh_state: str,
    config: MinhashConfig,
    jaccard_check: bool,
    index_parts: Sequence[str],
) -> dict[str, Any]:
    from nordpipe.runner.stage_run import datatrove_step_stats

    phases = {}
    for name in ("signatures", "buckets", "candidates", "shingles", "verify", "clusters"):
        merged = datatrove_step_stats(os.path.join(mh_state, name))
        if merged:
            phases[name] = next(iter(merged.values()))
    stats["minhash"] = {"config": config.to_json(), "phases": phases, "index_parts": list(index_parts)}
    extra = {
        "bands x rows": f"{config.bands} x {config.rows}",
        "shingles": f"{config.shingle_size}-{'char' if config.char_ngrams else 'word'} grams",
        "candidate edges": int(phases.get("buckets", {}).get("candidate_edges", 0)),
        "clusters": int(phases.get("clusters", {}).get("clusters", 0)),
        "clustered documents": int(phases.get("clusters", {}).get("clustered_documents", 0)),
    }
    if jaccard_check:
        extra["pairs checked"] = int(phases.get("verify", {}).get("checked_pairs", 0))
        extra["pairs rejected by Jaccard check"] = int(phases.get("verify", {}).get("rejected_pairs", 0))
    if index_parts:
        extra["removed against index"] = int(stats.get("steps", {}).get("minhash", {}).get("removed_against_index", 0))
    stats["extra"] = extra
    return stats


def iter_clusters(output_path: str) -> Iterator[dict[str, Any]]:
    """Every clustered document of a finished run (key, cluster, size, survivor ...)."""
    import pyarrow.parquet as pq

    for path in sorted(glob.glob(OutputLayout.of(output_path).state_path("minhash", "clusters", "*.parquet"))):
        yield from pq.read_table(path).to_pylist()
