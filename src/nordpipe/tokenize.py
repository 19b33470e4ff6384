"""Tokenization into training shards with provenance back to the documents.

Pipeline (one datatrove task per input file by default)::

    [DocumentReader(INPUT), TokenizeDocuments(tokenizer), TokenShardWriter(OUTPUT, format)]

``TokenizeDocuments`` encodes texts in batches with the tokenizer library's own batch call and
attaches each document's token sequence (BOS + text tokens + EOS) as a numpy array under a
transient metadata key. ``TokenShardWriter`` writes the sequences to shards in one of three
formats (REFERENCE §7):

- ``megatron`` (default): ``<name>.bin`` + ``<name>.idx`` (megatron-core / NeMo indexed dataset);
- ``datatrove``: ``<name>.ds`` + ``<name>.ds.index`` (+ ``.ds.metadata``), read by nanotron;
- ``mds``: MosaicML Streaming shards, sequences packed back to back into fixed-length samples of
  ``sequence_length`` tokens (column ``tokens``, encoding ``ndarray``), zstd-compressed, with an
  ``index.json`` per series and a merged ``shards/index.json`` for llm-foundry.

Every shard has a provenance index beside it (``<name>.provenance.parquet``): one row per
document (segment, for MDS documents that straddle two shards) in shard order, with ``id``,
``source``, ``url``, ``language``, ``input`` file stem, ``line``, ``token_offset`` and
``token_length`` in the shard's token stream. ``OUTPUT/manifest.json`` lists the shards with token
counts per source and language; ``nordpipe trace`` (``nordpipe.trace``) maps a token back to its
document.

Shards are named after the input file they come from (``<stem>-00000``, ``<stem>-00001``, ...), so
the output does not depend on the number of tasks or workers; with ``shuffle_seed`` the documents
of each input file are shuffled with a generator seeded by ``(seed, stem)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, BinaryIO

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from nordpipe.documents import INPUT_KEY, LINE_KEY, NORDPIPE_KEY, QUARANTINE_KEY, mark_removed, removal_reason
from nordpipe.layout import OutputLayout
from nordpipe.process_cache import file_identity, shared
from nordpipe.runner import RunError
from nordpipe.steps import DocumentReader, TaskStats, is_active, reason_category

DEFAULT_TOKENIZER = "mistral-7b-v0.1"
"""The Mistral-7B-v0.1 SentencePiece vocabulary shipped inside ``mistral-common`` (loads offline)."""

FORMATS = ("megatron", "datatrove", "mds")
DEFAULT_FORMAT = "megatron"
DEFAULT_SEQUENCE_LENGTH = 4096
"""MDS sample length in tokens (what DFM trained Munin with)."""
DEFAULT_MDS_SHARD_BYTES = 1 << 27
"""MDS raw shard size limit, 128 MiB (MDSWriter ``size_limit`` used by DFM)."""
DEFAULT_BATCH_SIZE = 512
"""Documents per call to the tokenizer's batch encode."""

SHARDS_DIR = "shards"
MANIFEST = "manifest.json"
PROVENANCE_SUFFIX = ".provenance.parquet"
STATE_PHASE = "tokenize"
TOKENS_KEY = "_nordpipe_tokens"
"""Transient metadata key holding a document's token sequence (numpy array) between steps."""

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
MDS_VALUE_DTYPE_CODES = {
    np.dtype(np.uint8): 8,
    np.dtype(np.int8): 9,
    np.dtype(np.uint16): 16,
    np.dtype(np.int16): 17,
    np.dtype(np.uint32): 32,
    np.dtype(np.int32): 33,
    np.dtype(np.uint64): 64,
    np.dtype(np.int64): 65,
}

# Names of BOS/EOS tokens in common Hugging Face / tiktoken vocabularies, tried in this order when
# neither the caller nor a tokenizer_config.json names them.
_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "[BOS]")
_EOS_NAMES = ("</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", "[EOS]")

# The pre-tokenization pattern of OpenAI's cl100k_base, the usual choice for a bare tiktoken
# rank file (the file itself carries only the byte-pair ranks).
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)


# --------------------------------------------------------------------------------------------
# Tokenizers


class TextTokenizer:
    """A tokenizer as nordpipe uses it: batch encode without special tokens, decode, BOS/EOS ids."""

    kind = "abstract"

    def __init__(self, spec: str, path: str | None, vocab_size: int, bos_id: int | None, eos_id: int | None):
        self.spec = spec
        self.path = path
        self.vocab_size = vocab_size
        self.bos_id = bos_id
        self.eos_id = eos_id

    def encode_batch(self, texts: list[str]) -> list[list[int]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def piece(self, token_id: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the manifest records, enough for ``load_tokenizer`` to load it again."""
        return {
            "spec": self.spec,
            "kind": self.kind,
            "path": self.path,
            "sha256": file_sha256(self.path) if self.path else None,
            "vocab_size": self.vocab_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
        }


class SentencePieceTokenizer(TextTokenizer):
    """A SentencePiece ``.model`` file (the default Mistral-7B-v0.1 vocabulary is one)."""

    kind = "sentencepiece"

    def __init__(self, spec: str, path: str):
        import sentencepiece as spm

        self.processor = spm.SentencePieceProcessor(model_file=path)
        bos, eos = self.processor.bos_id(), self.processor.eos_id()
        super().__init__(spec, path, self.processor.get_piece_size(), bos if bos >= 0 else None, eos if eos >= 0 else None)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # One thread: nordpipe runs one task per core; threads inside a task would oversubscribe.
        return self.processor.encode(texts, num_threads=1)

    def decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode([int(i) for i in ids])

    def piece(self, token_id: int) -> str:
        return self.processor.id_to_piece(int(token_id))


class HFTokenizer(TextTokenizer):
    """A Hugging Face ``tokenizers`` ``tokenizer.json`` (local, or from the hub cache)."""

    kind = "huggingface"

    def __init__(self, spec: str, path: str, bos_token: str | None = None, eos_token: str | None = None):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(path)
        config = _tokenizer_config(os.path.dirname(path))
        bos = _special_id(self.tokenizer.token_to_id, bos_token or config.get("bos_token"), _BOS_NAMES, bos_token)
        eos = _special_id(self.tokenizer.token_to_id, eos_token or config.get("eos_token"), _EOS_NAMES, eos_token)
        super().__init__(spec, path, self.tokenizer.get_vocab_size(with_added_tokens=True), bos, eos)
        self._encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self._encode(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def piece(self, token_id: int) -> str:
        return self.tokenizer.id_to_token(int(token_id)) or ""


class TiktokenTokenizer(TextTokenizer):
    """A tiktoken rank file (``<base64 bytes> <rank>`` per line); ``<|endoftext|>`` follows the ranks."""

    kind = "tiktoken"

    def __init__(self, spec: str, path: str, eos_token: str | None = None, pattern: str = CL100K_PATTERN):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks = load_tiktoken_bpe(path)
        eos_name = eos_token or "<|endoftext|>"
        self.encoding = tiktoken.Encoding(
            name=os.path.basename(path), pat_str=pattern, mergeable_ranks=ranks, special_tokens={eos_name: len(ranks)}
        )
        super().__init__(spec, path, self.encoding.n_vocab, None, len(ranks))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(texts, num_threads=1)

    def decode(self, ids: Sequence[int]) -> str:
        return self.encoding.decode([int(i) for i in ids])

    def piece(self, token_id: int) -> str:
        return self.encoding.decode_single_token_bytes(int(token_id)).decode("utf-8", "backslashreplace")


def _tokenizer_config(folder: str) -> dict[str, Any]:
    """BOS/EOS names from a ``tokenizer_config.json`` beside a ``tokenizer.json``, if any."""
    path = os.path.join(folder, "tokenizer_config.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return {}
    names = {}
    for key in ("bos_token", "eos_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            names[key] = value
    return names


def _special_id(token_to_id: Any, name: str | None, fallbacks: Sequence[str], explicit: str | None) -> int | None:
    if name:
        token_id = token_to_id(name)
        if token_id is None and explicit:
            raise ValueError(f"the tokenizer has no token {explicit!r}")
        if token_id is not None:
            return int(token_id)
    for candidate in fallbacks:
        token_id = token_to_id(candidate)
        if token_id is not None:
            return int(token_id)
    return None


def default_tokenizer_path() -> str:
    """Path of the Mistral-7B-v0.1 SentencePiece model inside the installed ``mistral-common``."""
    from importlib.resources import files

    path = files("mistral_common") / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise FileNotFoundError(f"mistral-common does not ship {path}; reinstall mistral-common")
    return str(path)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_FILE_SUFFIXES = (".json", ".model", ".tiktoken", ".v1", ".v2", ".v3")
_TIKTOKEN_LINE = re.compile(rb"^[A-Za-z0-9+/=]+ \d+$")


def _looks_like_tiktoken(path: str) -> bool:
    with open(path, "rb") as handle:
        first = handle.readline().strip()
    return bool(_TIKTOKEN_LINE.match(first))


def load_tokenizer(spec: str | None = None, bos_token: str | None = None, eos_token: str | None = None) -> TextTokenizer:
    """Load a tokenizer without touching the network unless a hub name is not cached.

    ``spec`` is ``mistral-7b-v0.1`` (the default, shipped in ``mistral-common``), a local
    ``tokenizer.json``, SentencePiece ``.model`` or tiktoken rank file, a folder holding one of
    them, or a Hugging Face model name (its ``tokenizer.json`` or ``tokenizer.model`` is taken from
    the local hub cache, or downloaded when the hub is reachable). ``bos_token``/``eos_token`` name
    the special tokens for tokenizer.json and tiktoken files when the defaults do not fit.
    """
    spec = spec or DEFAULT_TOKENIZER
    if spec.lower() in (DEFAULT_TOKENIZER, "default", "mistral"):
        return SentencePieceTokenizer(DEFAULT_TOKENIZER, default_tokenizer_path())
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        for name in ("tokenizer.json", "tokenizer.model"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise FileNotFoundError(f"{spec}: folder holds no tokenizer.json or tokenizer.model")
    if os.path.isfile(path):
        return _load_file(spec, os.path.abspath(path), bos_token, eos_token)
    looks_like_path = spec.startswith((".", "~", "/")) or spec.count("/") > 1 or spec.endswith(_FILE_SUFFIXES)
    if looks_like_path:
        raise FileNotFoundError(f"tokenizer {spec!r}: no such file, and not a Hugging Face model name")
    return _load_from_hub(spec, bos_token, eos_token)


def _load_file(spec: str, path: str, bos_token: str | None, eos_token: str | None) -> TextTokenizer:
    if path.endswith(".json"):
        return HFTokenizer(spec, path, bos_token, eos_token)
    if path.endswith(".tiktoken") or _looks_like_tiktoken(path):
        return TiktokenTokenizer(spec, path, eos_token)
    try:
        return SentencePieceTokenizer(spec, path)
    except (RuntimeError, OSError) as err:
        raise ValueError(
            f"{spec}: not a tokenizer.json, SentencePiece model or tiktoken file ({err})"
        ) from err


def _load_from_hub(name: str, bos_token: str | None, eos_token: str | None) -> TextTokenizer:
    """A hub model's tokenizer, from the local cache first (works offline once cached)."""
    from huggingface_hub import hf_hub_download

    errors = []
    for filename in ("tokenizer.json", "tokenizer.model"):
        for local_only in (True, False):
            if not local_only and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
                continue
            try:
                # The cache folder is read at call time so that HF_HUB_CACHE set by a caller counts.
                cache_dir = os.environ.get("HF_HUB_CACHE")
                path = hf_hub_download(name, filename, local_files_only=local_only, cache_dir=cache_dir)
            except Exception as err:  # not cached / not reachable / no such file: try the next way
                errors.append(f"{filename}{' (cache)' if local_only else ''}: {type(err).__name__}")
                continue
            if filename == "tokenizer.json":
                with contextlib.suppress(Exception):  # optional: it only names BOS/EOS
                    hf_hub_download(name, "tokenizer_config.json", local_files_only=local_only, cache_dir=cache_dir)
                return HFTokenizer(name, path, bos_token, eos_token)
            return SentencePieceTokenizer(name, path)
    raise ValueError(f"tokenizer {name!r}: not a local file and not loadable from the Hugging Face hub ({'; '.join(errors)})")


def token_dtype(vocab_size: int, fmt: str = DEFAULT_FORMAT) -> np.dtype:
    """Smallest token dtype for a vocabulary: uint16 up to 65,536 ids, else 32 bits.

    Megatron's indexed dataset has no uint32 code, so it gets int32 (ids stay below 2**31).
    """
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32) if fmt == "megatron" else np.dtype(np.uint32)


# --------------------------------------------------------------------------------------------
# Step 1: tokenize


class TokenizeDocuments(PipelineStep):
    """Encode documents in batches and attach their token sequences (BOS + text + EOS).

    The sequence is a numpy array (uint16 for vocabularies up to 65,536 ids, else uint32) under
    ``doc.metadata[TOKENS_KEY]``; ``metadata["nordpipe"]["tokens"]`` holds its length. Documents
    that yield no text tokens are marked removed as ``tokenize:empty``.

    Args:
        tokenizer: tokenizer spec for ``load_tokenizer`` (default ``mistral-7b-v0.1``).
        add_bos: start each sequence with BOS (default: when the tokenizer has one).
        add_eos: end each sequence with EOS (default: when the tokenizer has one).
        bos_token: name of the BOS token (tokenizer.json/tiktoken files; default: detected).
        eos_token: name of the EOS token (default: detected).
        batch_size: documents per batch-encode call (default 512).
    """

    type = "🔢 - TOKENIZER"
    name = "tokenize"

    def __init__(
        self,
        tokenizer: str = DEFAULT_TOKENIZER,
        add_bos: bool | None = None,
        add_eos: bool | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__()
        self.tokenizer_spec = tokenizer
        self.add_bos = add_bos
        self.add_eos = add_eos
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.batch_size = batch_size

    @cached_property
    def tokenizer(self) -> TextTokenizer:
        # Once per worker process, not per task (``nordpipe.process_cache``); encoding keeps
        # no state in the tokenizer.
        key = ("tokenize.tokenizer", self.tokenizer_spec, self.bos_token, self.eos_token,
               file_identity(os.path.expanduser(self.tokenizer_spec or DEFAULT_TOKENIZER)))
        return shared(key, lambda: load_tokenizer(self.tokenizer_spec, self.bos_token, self.eos_token))

    @cached_property
    def specials(self) -> tuple[int | None, int | None]:
        """(bos id or None, eos id or None) actually added."""
        return resolve_specials(self.tokenizer, self.add_bos, self.add_eos)

    def __getstate__(self) -> dict[str, Any]:
        # Tokenizer objects do not pickle; workers and Slurm tasks load their own.
        state = self.__dict__.copy()
        state.pop("tokenizer", None)
        state.pop("specials", None)
        return state

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        batch: list[Document] = []
        for doc in data:
            batch.append(doc)
            if len(batch) >= self.batch_size:
                yield from self._encode(batch)
                batch = []
        if batch:
            yield from self._encode(batch)

    def _encode(self, batch: list[Document]) -> Iterator[Document]:
        active = [doc for doc in batch if is_active(doc)]
        if active:
            with self.track_time(unit="batch"):
                encoded = self.tokenizer.encode_batch([doc.text for doc in active])
                bos, eos = self.specials
                dtype = token_dtype(self.tokenizer.vocab_size, "datatrove")
                total = 0
                for doc, ids in zip(active, encoded, strict=True):
                    if not ids:
                        mark_removed(doc, f"{self.name}:empty")
                        self.stat_update("empty")
                        continue
                    doc.metadata[TOKENS_KEY] = sequence = as_sequence(ids, bos, eos, dtype)
                    doc.metadata.setdefault(NORDPIPE_KEY, {})["tokens"] = len(sequence)
                    total += len(sequence)
                self.stat_update("documents", value=len(active))
                self.stat_update("tokens", value=total)
        yield from batch


def resolve_specials(tokenizer: TextTokenizer, add_bos: bool | None, add_eos: bool | None) -> tuple[int | None, int | None]:
    """BOS/EOS ids to add; asking for one the tokenizer lacks is an error."""
    if add_bos and tokenizer.bos_id is None:
        raise ValueError(f"tokenizer {tokenizer.spec!r} has no BOS token: use --no-bos or --bos-token NAME")
    if add_eos and tokenizer.eos_id is None:
        raise ValueError(f"tokenizer {tokenizer.spec!r} has no EOS token: use --no-eos or --eos-token NAME")
    bos = tokenizer.bos_id if add_bos is not False else None
    eos = tokenizer.eos_id if add_eos is not False else None
    return bos, eos


def as_sequence(ids: list[int], bos: int | None, eos: int | None, dtype: np.dtype) -> np.ndarray:
    """BOS + ids + EOS as one numpy array (one allocation, one C-level copy of the list)."""
    start = 1 if bos is not None else 0
    sequence = np.empty(len(ids) + start + (1 if eos is not None else 0), dtype=dtype)
    sequence[start : start + len(ids)] = ids
    if bos is not None:
        sequence[0] = bos
    if eos is not None:
        sequence[-1] = eos
    return sequence


# --------------------------------------------------------------------------------------------
# Step 2: write shards


@dataclass
class Provenance:
    """Where one document came from (one provenance row, before offsets)."""

    id: str
    source: str | None
    url: str | None
    language: str | None
    input: str
    line: int


def provenance_of(doc: Document, stem: str) -> Provenance:
    meta = doc.metadata
    nordpipe = meta.get(NORDPIPE_KEY) or {}
    language = nordpipe.get("language") or meta.get("language")
    url = meta.get("url")
    return Provenance(
        id=str(doc.id),
        source=None if meta.get("source") is None else str(meta.get("source")),
        url=None if url is None else str(url),
        language=None if language is None else str(language),
        input=stem,
        line=int(meta.get(LINE_KEY) or 0),
    )


PROVENANCE_COLUMNS = (
    "document", "id", "source", "url", "language", "input", "line",
    "token_offset", "token_length", "doc_token_offset", "doc_tokens",
)


class _ProvenanceTable:
    """Rows of one shard's provenance index, kept as columns until the shard closes."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in PROVENANCE_COLUMNS}
        self.tokens_by_source: Counter[str] = Counter()
        self.tokens_by_language: Counter[str] = Counter()
        self.documents_by_source: Counter[str] = Counter()
        self.documents_by_language: Counter[str] = Counter()
        self.documents = 0

    def add(self, prov: Provenance, offset: int, length: int, doc_offset: int, doc_tokens: int) -> None:
        cols = self.columns
        cols["document"].append(len(cols["id"]))
        cols["id"].append(prov.id)
        cols["source"].append(prov.source)
        cols["url"].append(prov.url)
        cols["language"].append(prov.language)
        cols["input"].append(prov.input)
        cols["line"].append(prov.line)
        cols["token_offset"].append(offset)
        cols["token_length"].append(length)
        cols["doc_token_offset"].append(doc_offset)
        cols["doc_tokens"].append(doc_tokens)
        source, language = prov.source or "unknown", prov.language or "unknown"
        self.tokens_by_source[source] += length
        self.tokens_by_language[language] += length
        if doc_offset == 0:
            self.documents += 1
            self.documents_by_source[source] += 1
            self.documents_by_language[language] += 1

    def extend_last(self, length: int) -> None:
        self.columns["token_length"][-1] += length
        self.tokens_by_source[self.columns["source"][-1] or "unknown"] += length
        self.tokens_by_language[self.columns["language"][-1] or "unknown"] += length

    def write(self, path: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([
            ("document", pa.int64()), ("id", pa.string()), ("source", pa.string()), ("url", pa.string()),
            ("language", pa.string()), ("input", pa.string()), ("line", pa.int64()),
            ("token_offset", pa.int64()), ("token_length", pa.int64()),
            ("doc_token_offset", pa.int64()), ("doc_tokens", pa.int64()),
        ])
        pq.write_table(pa.table(self.columns, schema=schema), path, compression="zstd")


@dataclass
class ShardInfo:
    """One shard as the manifest lists it (paths relative to OUTPUT)."""

    name: str
    input: str
    files: list[str]
    provenance: str
    documents: int
    segments: int
    tokens: int
    tokens_by_source: dict[str, int]
    tokens_by_language: dict[str, int]
    documents_by_source: dict[str, int]
    documents_by_language: dict[str, int]
    samples: int | None = None
    mds: dict[str, Any] | None = None


@dataclass
class ShardConfig:
    """Everything a shard series needs to know (picklable, shared by all tasks)."""

    tmp_dir: str
    fmt: str
    dtype: str
    max_shard_bytes: int | None
    sequence_length: int
    mds_compression: str | None
    tokenizer_name: str
    files: list[str] = field(default_factory=list)


class _AlignedSeries:
    """Megatron or datatrove shards of one input file: documents never split, new shard at the limit."""

    def __init__(self, config: ShardConfig, stem: str, first_shard: int):
        self.config, self.stem = config, stem
        self.dtype = np.dtype(config.dtype)
        self.shard_index = first_shard
        self.handle: BinaryIO | None = None
        self.shards: list[ShardInfo] = []

    def _open(self) -> None:
        self.name = f"{self.stem}-{self.shard_index:05d}"
        suffix = ".bin" if self.config.fmt == "megatron" else ".ds"
        self.data_file = self.name + suffix
        self.handle = open(os.path.join(self.config.tmp_dir, self.data_file), "wb", buffering=1 << 20)
        self.lengths: list[int] = []
        self.tokens = 0
        self.table = _ProvenanceTable()

    def add(self, tokens: np.ndarray, prov: Provenance) -> None:
        size = len(tokens) * self.dtype.itemsize
        limit = self.config.max_shard_bytes
        if self.handle is not None and limit and self.tokens and (self.tokens * self.dtype.itemsize + size > limit):
            self._close_shard()
        if self.handle is None:
            self._open()
        assert self.handle is not None
        self.handle.write(tokens.astype(self.dtype, copy=False).tobytes())
        self.table.add(prov, self.tokens, len(tokens), 0, len(tokens))
        self.lengths.append(len(tokens))
        self.tokens += len(tokens)

    def _close_shard(self) -> None:
        assert self.handle is not None
        self.handle.close()
        self.handle = None
        tmp = self.config.tmp_dir
        lengths = np.asarray(self.lengths, dtype=np.int64)
        files = [self.data_file]
        if self.config.fmt == "megatron":
            files.append(self.name + ".idx")
            write_megatron_index(os.path.join(tmp, self.name + ".idx"), lengths, self.dtype)
        else:
            files += [self.data_file + ".index", self.data_file + ".metadata"]
            with open(os.path.join(tmp, self.data_file + ".index"), "wb") as handle:
                handle.write(np.cumsum(lengths, dtype="<u8").tobytes())
            with open(os.path.join(tmp, self.data_file + ".metadata"), "w") as handle:
                # The layout datatrove's TokenizedFile writes: "<tokenizer>|<token bytes>", count.
                handle.write(f"{self.config.tokenizer_name}|{self.dtype.itemsize}\n{self.tokens}\n")
        provenance = self.name + PROVENANCE_SUFFIX
        self.table.write(os.path.join(tmp, provenance))
        self.config.files.extend([*files, provenance])
        self.shards.append(_shard_info(self.name, self.stem, files, provenance, self.table, self.tokens))
        self.shard_index += 1

    def close(self) -> list[ShardInfo]:
        if self.handle is not None:
            self._close_shard()
        return self.shards


def _shard_info(
    name: str, stem: str, files: list[str], provenance: str, table: _ProvenanceTable, tokens: int, **extra: Any
) -> ShardInfo:
    return ShardInfo(
        name=name,
        input=stem,
        files=[f"{SHARDS_DIR}/{f}" for f in files],
        provenance=f"{SHARDS_DIR}/{provenance}",
        documents=table.documents,
        segments=len(table.columns["id"]),
        tokens=tokens,
        tokens_by_source=dict(sorted(table.tokens_by_source.items())),
        tokens_by_language=dict(sorted(table.tokens_by_language.items())),
        documents_by_source=dict(sorted(table.documents_by_source.items())),
        documents_by_language=dict(sorted(table.documents_by_language.items())),
        **extra,
    )


def write_megatron_index(path: str, lengths: np.ndarray, dtype: np.dtype) -> None:
    """Megatron ``.idx``: magic, version 1, dtype code, counts, lengths, byte pointers, doc indices."""
    n = len(lengths)
    pointers = np.zeros(n, dtype="<i8")
    if n > 1:
        np.cumsum(lengths[:-1] * dtype.itemsize, out=pointers[1:])
    with open(path, "wb") as handle:
        handle.write(MEGATRON_MAGIC)
        handle.write(np.array([1], dtype="<u8").tobytes())
        handle.write(np.array([MEGATRON_DTYPE_CODES[dtype]], dtype="<u1").tobytes())
        handle.write(np.array([n, n + 1], dtype="<u8").tobytes())
        handle.write(lengths.astype("<i4").tobytes())
        handle.write(pointers.tobytes())
        handle.write(np.arange(n + 1, dtype="<i8").tobytes())


class _MDSSeries:
    """MosaicML MDS shards of one input file: sequences packed into ``sequence_length`` samples.

    Shard file layout (MDS version 2): uint32 sample count, uint32 offsets[count + 1] from the
    file start, the JSON config, then the samples; a sample of the single variable-size column
    ``tokens`` (encoding ``ndarray``) is uint32 size, dtype code (uint8), ``ndim << 2 | shape
    dtype`` (uint8), the shape, then the values. Samples go to a temp file while the shard fills;
    closing it streams header + samples through zstd.
    """

    def __init__(self, config: ShardConfig, stem: str, first_shard: int):
        self.config, self.stem = config, stem
        self.dtype = np.dtype(config.dtype)
        self.length = config.sequence_length
        self.limit = config.max_shard_bytes
        self.shard_index = first_shard
        self.folder = os.path.join(config.tmp_dir, stem)
        os.makedirs(self.folder, exist_ok=True)
        self.chunk = np.empty(self.length, dtype=self.dtype)
        self.fill = 0
        self.pieces: list[tuple[int, Provenance, int, int, int, int]] = []  # serial, prov, doc offset, chunk offset, len, doc tokens
        self.serial = 0
        self.handle: BinaryIO | None = None
        self.shards: list[ShardInfo] = []
        self.index_entries: list[dict[str, Any]] = []
        self.config_json = json.dumps(
            {
                "column_encodings": ["ndarray"],
                "column_names": ["tokens"],
                "column_sizes": [None],
                "compression": config.mds_compression,
                "format": "mds",
                "hashes": [],
                "size_limit": self.limit,
                "version": 2,
            },
            sort_keys=True,
        ).encode()

    def _open(self) -> None:
        self.raw_name = f"shard.{self.shard_index:05d}.mds"
        self.handle = open(os.path.join(self.folder, self.raw_name + ".samples"), "wb", buffering=1 << 20)
        self.sample_sizes: list[int] = []
        self.shard_bytes = 8 + len(self.config_json)  # count + final offset + config
        self.tokens = 0
        self.table = _ProvenanceTable()
        self.last_serial = -1

    def add(self, tokens: np.ndarray, prov: Provenance) -> None:
        serial = self.serial
        self.serial += 1
        done = 0
        while done < len(tokens):
            take = min(self.length - self.fill, len(tokens) - done)
            self.chunk[self.fill : self.fill + take] = tokens[done : done + take]
            self.pieces.append((serial, prov, done, self.fill, take, len(tokens)))
            self.fill += take
            done += take
            if self.fill == self.length:
                self._emit()

    def _emit(self) -> None:
        sample = self.chunk[: self.fill]
        # The shape is stored in the smallest unsigned type that holds it (code 0: uint8 ... 3: uint64).
        shape_code = 0 if len(sample) < 1 << 8 else 1 if len(sample) < 1 << 16 else 2
        shape_bytes = np.array([len(sample)], dtype=("<u1", "<u2", "<u4")[shape_code]).tobytes()
        body = bytes([MDS_VALUE_DTYPE_CODES[self.dtype], (1 << 2) | shape_code]) + shape_bytes + sample.tobytes()
        record = np.array([len(body)], dtype="<u4").tobytes() + body
        if self.handle is not None and self.limit and self.sample_sizes and self.shard_bytes + len(record) + 4 > self.limit:
            self._close_shard()
        if self.handle is None:
            self._open()
        assert self.handle is not None
        self.handle.write(record)
        self.sample_sizes.append(len(record))
        self.shard_bytes += len(record) + 4
        for serial, prov, doc_offset, chunk_offset, length, doc_tokens in self.pieces:
            if serial == self.last_serial:
                self.table.extend_last(length)
            else:
                self.table.add(prov, self.tokens + chunk_offset, length, doc_offset, doc_tokens)
                self.last_serial = serial
        self.tokens += self.fill
        self.pieces = []
        self.fill = 0

    def _close_shard(self) -> None:
        assert self.handle is not None
        self.handle.close()
        self.handle = None
        samples_path = os.path.join(self.folder, self.raw_name + ".samples")
        count = len(self.sample_sizes)
        offsets = np.zeros(count + 1, dtype="<u4")
        offsets[1:] = np.cumsum(self.sample_sizes)
        header_size = 4 + 4 * (count + 1) + len(self.config_json)
        offsets += header_size
        header = np.array([count], dtype="<u4").tobytes() + offsets.tobytes() + self.config_json
        raw_bytes = header_size + sum(self.sample_sizes)
        rel = f"{self.stem}/{self.raw_name}"
        entry: dict[str, Any] = {
            "column_encodings": ["ndarray"],
            "column_names": ["tokens"],
            "column_sizes": [None],
            "compression": self.config.mds_compression,
            "format": "mds",
            "hashes": [],
            "raw_data": {"basename": self.raw_name, "bytes": raw_bytes, "hashes": {}},
            "samples": count,
            "size_limit": self.limit,
            "version": 2,
            "zip_data": None,
        }
        if self.config.mds_compression:
            import zstandard

            level = int(self.config.mds_compression.split(":", 1)[1]) if ":" in self.config.mds_compression else 3
            zip_name = self.raw_name + ".zstd"
            with open(os.path.join(self.folder, zip_name), "wb") as out, open(samples_path, "rb") as samples:
                with zstandard.ZstdCompressor(level=level).stream_writer(out, size=raw_bytes, closefd=False) as writer:
                    writer.write(header)
                    shutil.copyfileobj(samples, writer, 1 << 20)
                zip_bytes = out.tell()
            os.remove(samples_path)
            entry["zip_data"] = {"basename": zip_name, "bytes": zip_bytes, "hashes": {}}
            data_file = f"{self.stem}/{zip_name}"
        else:
            with open(os.path.join(self.folder, self.raw_name), "wb") as out, open(samples_path, "rb") as samples:
                out.write(header)
                shutil.copyfileobj(samples, out, 1 << 20)
            os.remove(samples_path)
            data_file = rel
        name = f"{self.stem}/shard.{self.shard_index:05d}"
        provenance = f"{name}{PROVENANCE_SUFFIX}"
        self.table.write(os.path.join(self.config.tmp_dir, provenance))
        self.index_entries.append(entry)
        self.config.files.extend([data_file, provenance])
        self.shards.append(
            _shard_info(name, self.stem, [data_file], provenance, self.table, self.tokens, samples=count, mds=entry)
        )
        self.shard_index += 1

    def close(self) -> list[ShardInfo]:
        if self.fill:
            self._emit()  # the last, shorter sample: nothing is dropped
        if self.handle is not None:
            self._close_shard()
        return self.shards


class _ShuffleBuffer:
    """Spills a series' sequences to a temp file, then replays them in a seeded random order."""

    def __init__(self, tmp_dir: str, stem: str, dtype: np.dtype):
        self.path = os.path.join(tmp_dir, f".{stem}.unshuffled")
        self.dtype = dtype
        self.handle = open(self.path, "wb", buffering=1 << 20)
        self.lengths: list[int] = []
        self.provenance: list[Provenance] = []

    def add(self, tokens: np.ndarray, prov: Provenance) -> None:
        self.handle.write(tokens.astype(self.dtype, copy=False).tobytes())
        self.lengths.append(len(tokens))
        self.provenance.append(prov)

    def replay(self, seed: int, stem: str) -> Iterator[tuple[np.ndarray, Provenance]]:
        self.handle.close()
        if self.lengths:
            rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])
            order = rng.permutation(len(self.lengths))
            starts = np.zeros(len(self.lengths), dtype=np.int64)
            np.cumsum(self.lengths[:-1], out=starts[1:])
            tokens = np.memmap(self.path, dtype=self.dtype, mode="r")
            for i in order:
                yield np.asarray(tokens[starts[i] : starts[i] + self.lengths[i]]), self.provenance[i]
            del tokens
        os.remove(self.path)


class TokenShardWriter(PipelineStep):
    """Write token sequences from ``TokenizeDocuments`` to shards with provenance, atomically.

    Files are written to ``OUTPUT/.nordpipe/tmp/tokenize/<rank>/`` and moved to
    ``OUTPUT/shards/`` when the task ends; the task's shard list and stats then go to
    ``OUTPUT/.nordpipe/tokenize/<rank>.json`` and ``OUTPUT/.nordpipe/tasks/<rank>.json``.
    ``finalize_tokenize`` merges them into ``manifest.json``. Removed documents are counted;
    quarantined records go to ``OUTPUT/quarantine/`` with file, line and reason.

    Args:
        output_path: the output folder (local path).
        format: ``megatron`` (default), ``datatrove`` or ``mds``.
        vocab_size: tokenizer vocabulary size, for the token dtype (default: from the arrays).
        max_shard_bytes: start a new shard after this many bytes of tokens (megatron/datatrove
            default: no limit, one shard per input file) or raw shard bytes (mds default 128 MiB).
        sequence_length: MDS sample length in tokens (default 4096).
        shuffle_seed: shuffle each input file's documents with this seed (default: keep order).
        mds_compression: ``zstd`` (default), ``zstd:<level>`` or None.
        tokenizer_name: recorded in datatrove ``.ds.metadata`` files.
    """

    type = "💽 - WRITER"
    name = "token shards"

    def __init__(
        self,
        output_path: str,
        format: str = DEFAULT_FORMAT,
        vocab_size: int | None = None,
        max_shard_bytes: int | None = None,
        sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
        shuffle_seed: int | None = None,
        mds_compression: str | None = "zstd",
        tokenizer_name: str = DEFAULT_TOKENIZER,
    ):
        super().__init__()
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r} (use one of {', '.join(FORMATS)})")
        if sequence_length < 1:
            raise ValueError("sequence_length must be at least 1")
        if mds_compression and mds_compression.split(":", 1)[0] != "zstd":
            raise ValueError(f"unsupported MDS compression {mds_compression!r} (use zstd, zstd:<level> or none)")
        self.output_path = output_path.rstrip("/")
        self.format = format
        self.vocab_size = vocab_size
        self.max_shard_bytes = max_shard_bytes if max_shard_bytes else (DEFAULT_MDS_SHARD_BYTES if format == "mds" else None)
        self.sequence_length = sequence_length
        self.shuffle_seed = shuffle_seed
        self.mds_compression = mds_compression
        self.tokenizer_name = tokenizer_name

    def _dtype(self, tokens: np.ndarray | None) -> np.dtype:
        if self.vocab_size is not None:
            return token_dtype(self.vocab_size, self.format)
        if tokens is not None and tokens.dtype.itemsize <= 2:
            return np.dtype(np.uint16)
        return token_dtype(1 << 17, self.format)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        layout = OutputLayout.of(self.output_path)
        state = layout.state
        tmp = layout.tmp(STATE_PHASE, f"{rank:05d}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        config: ShardConfig | None = None
        stats = TaskStats()
        quarantine: dict[str, BinaryIO] = {}
        shards: list[ShardInfo] = []
        next_shard: dict[str, int] = {}
        series: _AlignedSeries | _MDSSeries | None = None
        buffer: _ShuffleBuffer | None = None
        stem: str | None = None
        mds_index: dict[str, list[dict[str, Any]]] = {}

        def close_series() -> None:
            nonlocal series, buffer
            if buffer is not None and series is not None and stem is not None:
                for tokens, prov in buffer.replay(self.shuffle_seed or 0, stem):
                    series.add(tokens, prov)
            if series is not None and stem is not None:
                shards.extend(series.close())
                next_shard[stem] = series.shard_index
                if isinstance(series, _MDSSeries):
                    mds_index.setdefault(stem, []).extend(series.index_entries)
            series, buffer = None, None

        for doc in data:
            doc_stem = str(doc.metadata.get(INPUT_KEY) or f"{rank:05d}")
            stats.docs_in += 1
            record = doc.metadata.get(QUARANTINE_KEY)
            if record is not None:
                stats.quarantined[reason_category(record["reason"])] += 1
                handle = quarantine.get(doc_stem)
                if handle is None:
                    os.makedirs(os.path.join(tmp, "quarantine"), exist_ok=True)
                    handle = quarantine[doc_stem] = open(os.path.join(tmp, "quarantine", f"{doc_stem}.jsonl"), "wb")
                handle.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
                continue
            stats.chars_in += len(doc.text)
            tokens = doc.metadata.pop(TOKENS_KEY, None)
            reason = removal_reason(doc) or (None if tokens is not None else f"{self.name}:not_tokenized")
            language = str((doc.metadata.get(NORDPIPE_KEY) or {}).get("language") or doc.metadata.get("language") or "unknown")
            if reason:
                stats.removed[reason] += 1
                stats.removed_chars[reason] += len(doc.text)
                stats.removed_by_language[language][reason] += 1
                self.stat_update("removed", f"removed:{reason}")
                continue
            assert tokens is not None
            if config is None:
                config = ShardConfig(
                    tmp_dir=os.path.join(tmp, SHARDS_DIR),
                    fmt=self.format,
                    dtype=self._dtype(tokens).str,
                    max_shard_bytes=self.max_shard_bytes,
                    sequence_length=self.sequence_length,
                    mds_compression=self.mds_compression,
                    tokenizer_name=self.tokenizer_name,
                )
                os.makedirs(config.tmp_dir)
            if doc_stem != stem:
                close_series()
                stem = doc_stem
                kind = _MDSSeries if self.format == "mds" else _AlignedSeries
                series = kind(config, stem, next_shard.get(stem, 0))
                if self.shuffle_seed is not None:
                    buffer = _ShuffleBuffer(config.tmp_dir, stem, np.dtype(config.dtype))
            with self.track_time():
                prov = provenance_of(doc, doc_stem)
                if buffer is not None:
                    buffer.add(tokens, prov)
                else:
                    assert series is not None
                    series.add(tokens, prov)
            stats.docs_out += 1
            stats.chars_out += len(doc.text)
            stats.languages_out[language] += 1
            stats.sources_out[str(doc.metadata.get("source"))] += 1
            stats.add_created(doc.metadata.get("created"))
            self.stat_update("tokens", value=len(tokens))
            yield doc
        with self.track_time():
            close_series()
        for handle in quarantine.values():
            handle.close()
        self._commit(tmp, state, rank, config, shards, stats, mds_index, sorted(quarantine))

    def _commit(
        self,
        tmp: str,
        state: str,
        rank: int,
        config: ShardConfig | None,
        shards: list[ShardInfo],
        stats: TaskStats,
        mds_index: dict[str, list[dict[str, Any]]],
        quarantined: list[str],
    ) -> None:
        """Move the task's files into place, then record it (the record marks the task done)."""
        final = os.path.join(self.output_path, SHARDS_DIR)
        if config is not None:
            for stem, entries in mds_index.items():
                _write_json(os.path.join(config.tmp_dir, stem, "index.json"), {"shards": entries, "version": 2})
                config.files.append(f"{stem}/index.json")
            for rel in config.files:
                target = os.path.join(final, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(os.path.join(config.tmp_dir, rel), target)
        for stem in quarantined:
            os.makedirs(os.path.join(self.output_path, "quarantine"), exist_ok=True)
            os.replace(os.path.join(tmp, "quarantine", f"{stem}.jsonl"), os.path.join(self.output_path, "quarantine", f"{stem}.jsonl"))
        fragment = {
            "rank": rank,
            "format": self.format,
            "dtype": config.dtype if config else None,
            "shards": [asdict(shard) for shard in shards],
        }
        _write_json(os.path.join(state, STATE_PHASE, f"{rank:05d}.json"), fragment)
        _write_json(os.path.join(state, "tasks", f"{rank:05d}.json"), stats.to_json())
        shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: str, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# The stage


@dataclass
class TokenizeConfig:
    """Parameters of a tokenize run (recorded in run.json and the manifest)."""

    tokenizer: str = DEFAULT_TOKENIZER
    format: str = DEFAULT_FORMAT
    add_bos: bool | None = None
    add_eos: bool | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH
    max_shard_bytes: int | None = None
    shuffle_seed: int | None = None
    mds_compression: str | None = "zstd"
    batch_size: int = DEFAULT_BATCH_SIZE


def tokenize_steps(config: TokenizeConfig, output_path: str, tokenizer: TextTokenizer | None = None) -> list[PipelineStep]:
    """The two stage steps (after a reader): ``TokenizeDocuments`` and ``TokenShardWriter``."""
    tokenizer = tokenizer or load_tokenizer(config.tokenizer, config.bos_token, config.eos_token)
    resolve_specials(tokenizer, config.add_bos, config.add_eos)  # fail before any task starts
    return [
        TokenizeDocuments(
            # The resolved file, so that workers and Slurm tasks never ask the hub again.
            tokenizer=tokenizer.path or config.tokenizer,
            add_bos=config.add_bos,
            add_eos=config.add_eos,
            bos_token=config.bos_token,
            eos_token=config.eos_token,
            batch_size=config.batch_size,
        ),
        TokenShardWriter(
            output_path,
            format=config.format,
            vocab_size=tokenizer.vocab_size,
            max_shard_bytes=config.max_shard_bytes,
            sequence_length=config.sequence_length,
            shuffle_seed=config.shuffle_seed,
            mds_compression=config.mds_compression,
            tokenizer_name=tokenizer.spec,
        ),
    ]


def run_tokenize(input_path: str, output_path: str, config: TokenizeConfig, options: Any = None) -> dict[str, Any]:
    """Run the tokenize stage from INPUT to OUTPUT; returns the stats (also in stats.json).

    Writes ``OUTPUT/shards/``, ``OUTPUT/manifest.json``, ``OUTPUT/quarantine/`` and state under
    ``OUTPUT/.nordpipe/``. Rerunning resumes; other parameters need ``options.force``.
    """
    from nordpipe import runner

    options = options or runner.RunOptions()
    tokenizer = load_tokenizer(config.tokenizer, config.bos_token, config.eos_token)
    parameters = {**asdict(config), "tokenizer_sha256": tokenizer.describe()["sha256"]}
    with runner.StageRun("tokenize", input_path, output_path, options, parameters,
                         record_extra={"keep_removed": False, "max_shard_bytes": None}) as run:
        output_path = run.output_path
        steps = tokenize_steps(config, output_path, tokenizer)
        run.execute([DocumentReader(input_path), *steps])
        if run.submitted_only:
            return run.submit()
        run.finishing()
        manifest = finalize_tokenize(output_path, tokenizer, config, run.tasks)
        stats = run.merge_stats()
        stats["extra"] = {
            "tokens": manifest["tokens"],
            "shards": len(manifest["shards"]),
            "format": manifest["format"],
            "tokenizer": manifest["tokenizer"]["spec"],
            "manifest": os.path.join(output_path, MANIFEST),
        }
        return run.complete(stats)


def finalize_tokenize(output_path: str, tokenizer: TextTokenizer, config: TokenizeConfig, tasks: int) -> dict[str, Any]:
    """Merge the tasks' shard lists into ``manifest.json`` (and the MDS root ``index.json``)."""
    phase = OutputLayout.of(output_path).state_path(STATE_PHASE)
    fragments = []
    for name in sorted(os.listdir(phase)) if os.path.isdir(phase) else []:
        if name.endswith(".json"):
            with open(os.path.join(phase, name)) as handle:
                fragments.append(json.load(handle))
    missing = tasks - len(fragments)
    if missing > 0:
        raise RunError(f"{missing} of {tasks} tokenize tasks left no record in {phase}")
    shards = sorted((s for f in fragments for s in f["shards"]), key=lambda s: s["name"])
    totals: dict[str, Counter[str]] = {k: Counter() for k in (
        "tokens_by_source", "tokens_by_language", "documents_by_source", "documents_by_language")}
    for shard in shards:
        for key, counter in totals.items():
            counter.update(shard[key])
    bos, eos = resolve_specials(tokenizer, config.add_bos, config.add_eos)
    dtype = np.dtype(token_dtype(tokenizer.vocab_size, config.format))
    manifest: dict[str, Any] = {
        "format": config.format,
        "tokenizer": tokenizer.describe(),
        "dtype": dtype.name,
        "bos_id": bos,
        "eos_id": eos,
        "sequence_length": config.sequence_length if config.format == "mds" else None,
        "max_shard_bytes": config.max_shard_bytes or (DEFAULT_MDS_SHARD_BYTES if config.format == "mds" else None),
        "shuffle_seed": config.shuffle_seed,
        "documents": sum(s["documents"] for s in shards),
        "tokens": sum(s["tokens"] for s in shards),
        **{k: dict(sorted(v.items())) for k, v in totals.items()},
        "shards": [{k: v for k, v in s.items() if k != "mds"} for s in shards],
    }
    if config.format == "mds":
        entries = []
        for shard in shards:
            entry = json.loads(json.dumps(shard["mds"]))
            for key in ("raw_data", "zip_data"):
                if entry.get(key):
                    entry[key]["basename"] = f"{shard['input']}/{entry[key]['basename']}"
            entries.append(entry)
        _write_json(os.path.join(output_path, SHARDS_DIR, "index.json"), {"shards": entries, "version": 2})
    _write_json(os.path.join(output_path, MANIFEST), manifest)
    return manifest


def read_manifest(output_path: str) -> dict[str, Any]:
    path = os.path.join(output_path, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{output_path}: no {MANIFEST} (is this a finished `nordpipe tokenize` output?)")
    with open(path) as handle:
        return json.load(handle)


def tokenizer_from_manifest(manifest: dict[str, Any]) -> TextTokenizer:
    """Load the tokenizer a run used (its recorded file, else its spec)."""
    info = manifest["tokenizer"]
    if info.get("spec") == DEFAULT_TOKENIZER:
        return load_tokenizer(DEFAULT_TOKENIZER)
    path = info.get("path")
    if path and os.path.isfile(path):
        if info.get("kind") == "sentencepiece":
            return SentencePieceTokenizer(info["spec"], path)
        if info.get("kind") == "tiktoken":
            return TiktokenTokenizer(info["spec"], path)
        return HFTokenizer(info["spec"], path)
    return load_tokenizer(info["spec"])


def parse_size(text: str | None) -> int | None:
    """``"128MiB"``, ``"1GB"``, ``"500k"``, ``"1048576"`` -> bytes; None/empty/``0`` -> None."""
    if text is None or str(text).strip() in ("", "0", "none"):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 128MiB, 2GB, 500000)")
    number, unit, binary = match.groups()
    base = 1024 if binary or not unit else 1000
    return int(float(number) * base ** " kmgt".index(unit or " "))
