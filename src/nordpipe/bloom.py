"""A Bloom filter over 64-bit hashes, vectorized with numpy, with save/load.

pybloom-live is the reference implementation (``tests/test_bloom.py`` compares the two), but it
adds one key at a time in Python (224k adds/s measured here, REFERENCE §2). This filter works on
whole numpy arrays of 64-bit key hashes at once.

Sizing (REFERENCE §4): ``m = -n ln p / (ln 2)^2`` bits (rounded up to whole bytes) and
``k = round((m / n) ln 2)`` hash functions, for ``n`` expected items and false-positive rate ``p``.

Probe positions use enhanced double hashing over two values mixed from the key's 64-bit hash
(``splitmix64`` finalizers with different constants), so one 64-bit hash per key is enough.

Representation: the bits are kept packed (``numpy.uint8``, little-endian bit order, 1 bit per
bit) and that is what ``save`` writes. Bulk probes (``contains_hashes``, ``add_hashes``) on packed
bits run in C (``nordpipe._bloom_loops``, built by ``setup.py``): hash by hash, no temporaries,
no unpacking (issue 20: line dedup's peak memory). The numpy path below is the definition and
the fallback when the extension is not built; with it, ``prepare_bulk()`` switches to one byte
per bit, which makes a probe a plain gather or scatter (numpy fancy indexing) instead of a
read-modify-write on shared bytes: ~5x faster than numpy on packed bits but 8x the memory, so
callers prepare only filters (or filter parts) of bounded size and ``pack()`` them again.

File format: the 8-byte magic ``NPBLOOM1``, a little-endian header ``num_bits, num_hashes,
items_added`` (three uint64), then the packed bits.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator

import numpy as np
import xxhash

try:  # C loops on the packed bits (setup.py builds them; the numpy path otherwise)
    from nordpipe import _bloom_loops
except ImportError:  # pragma: no cover - a build without Cython or a C compiler
    _bloom_loops = None

MAGIC = b"NPBLOOM1"
_HEADER = struct.Struct("<8sQQQ")
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT = np.uint64(0xD6E8FEB86659FD93)


def bloom_size(expected_items: int, fpr: float) -> tuple[int, int]:
    """``(num_bits, num_hashes)`` for ``expected_items`` keys at false-positive rate ``fpr``."""
    if expected_items < 1:
        raise ValueError(f"expected items must be at least 1, got {expected_items}")
    if not 0 < fpr < 1:
        raise ValueError(f"false-positive rate must be between 0 and 1, got {fpr}")
    bits = math.ceil(-expected_items * math.log(fpr) / math.log(2) ** 2)
    bits = max(64, -(-bits // 8) * 8)
    hashes = max(1, round(bits / expected_items * math.log(2)))
    return bits, hashes


def hash_key(key: str | bytes) -> int:
    """The 64-bit hash of one key (xxh3-64 of its UTF-8 bytes); the batch methods take these."""
    return xxhash.xxh3_64_intdigest(key)


def _mix(values: np.ndarray, salt: np.uint64) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the whole output word."""
    with np.errstate(over="ignore"):
        z = values ^ salt
        z = z * _GOLDEN
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
    return z


def _mix_int(value: int, salt: int) -> int:
    """``_mix`` for one Python int."""
    mask = (1 << 64) - 1
    z = ((value ^ salt) * int(_GOLDEN)) & mask
    z ^= z >> 30
    z = (z * int(_M1)) & mask
    z ^= z >> 27
    z = (z * int(_M2)) & mask
    return z ^ (z >> 31)


def probe_positions(hashes: np.ndarray, num_bits: int, num_hashes: int) -> Iterator[np.ndarray]:
    """Yield, for each of the ``num_hashes`` probes, the bit position of every hash (int64).

    Enhanced double hashing: ``g_0 = a mod m``, ``g_{i+1} = g_i + d_i mod m`` with
    ``d_0 = b mod m`` and ``d_{i+1} = d_i + i mod m``; kept reduced, so no division per probe.
    The yielded array is reused for the next probe: use it before advancing the iterator.
    """
    m = np.uint64(num_bits)
    hashes = np.asarray(hashes, dtype=np.uint64)
    g = _mix(hashes, np.uint64(0)) % m
    d = _mix(hashes, _SALT) % m
    scratch = np.empty_like(g)
    with np.errstate(over="ignore"):
        for i in range(num_hashes):
            yield g.view(np.int64)  # positions < m < 2**63
            if i + 1 == num_hashes:
                break
            # x mod m for x < 2m, in place and branch-free: in unsigned arithmetic x - m wraps
            # to a huge value when x < m, so min(x, x - m) is the reduced value.
            g += d
            np.subtract(g, m, out=scratch)
            np.minimum(g, scratch, out=g)
            d += np.uint64(i + 1)
            np.subtract(d, m, out=scratch)
            np.minimum(d, scratch, out=d)


class BloomFilter:
    """A Bloom filter over 64-bit hashes.

    Args:
        num_bits: size of the bit array (a multiple of 8).
        num_hashes: probes per key.
        bits: packed bits to start from (None: empty).
    """

    def __init__(self, num_bits: int, num_hashes: int, bits: np.ndarray | None = None, items_added: int = 0):
        if num_bits < 8 or num_bits % 8:
            raise ValueError(f"num_bits must be a positive multiple of 8, got {num_bits}")
        if num_hashes < 1:
            raise ValueError(f"num_hashes must be at least 1, got {num_hashes}")
        self.num_bits = int(num_bits)
        self.num_hashes = int(num_hashes)
        self.items_added = int(items_added)
        if bits is None:
            bits = np.zeros(self.num_bits // 8, dtype=np.uint8)
        elif bits.dtype != np.uint8 or bits.shape != (self.num_bits // 8,):
            raise ValueError(f"bits must be {self.num_bits // 8} uint8 values")
        self._packed: np.ndarray | None = bits
        self._unpacked: np.ndarray | None = None

    @classmethod
    def for_capacity(cls, expected_items: int, fpr: float) -> BloomFilter:
        """An empty filter sized for ``expected_items`` keys at false-positive rate ``fpr``."""
        return cls(*bloom_size(expected_items, fpr))

    # -- representation ----------------------------------------------------------------------

    def unpack(self) -> None:
        """Switch to one byte per bit (8x memory, ~5x faster bulk probes)."""
        if self._unpacked is None:
            assert self._packed is not None
            self._unpacked = np.unpackbits(self._packed, bitorder="little").view(np.bool_)
            self._packed = None

    def prepare_bulk(self) -> None:
        """Make bulk probes fast: nothing with the compiled loops (they read the packed bits),
        ``unpack()`` without them."""
        if _bloom_loops is None:
            self.unpack()

    def pack(self) -> None:
        """Switch back to the packed representation."""
        if self._packed is None:
            assert self._unpacked is not None
            self._packed = np.packbits(self._unpacked, bitorder="little")
            self._unpacked = None

    @property
    def bits(self) -> np.ndarray:
        """The packed bits (packs the filter if it was unpacked)."""
        self.pack()
        assert self._packed is not None
        return self._packed

    @property
    def nbytes(self) -> int:
        """Size of the packed bit array (the theoretical filter size)."""
        return self.num_bits // 8

    # -- bulk operations on 64-bit hashes ----------------------------------------------------

    def contains_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean array: which hashes the filter (probably) holds."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if self._packed is not None and _bloom_loops is not None and len(hashes):
            return _bloom_loops.contains_packed(np.ascontiguousarray(hashes), self._packed, self.num_bits,
                                                self.num_hashes, int(_SALT))
        return self.contains_hashes_numpy(hashes)

    def contains_hashes_numpy(self, hashes: np.ndarray) -> np.ndarray:
        """``contains_hashes`` with numpy (``probe_positions``): the definition the compiled loop
        is tested against, and the path on unpacked bits."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        found = np.ones(len(hashes), dtype=np.bool_)
        if not len(hashes):
            return found
        for pos in probe_positions(hashes, self.num_bits, self.num_hashes):
            if self._unpacked is not None:
                found &= self._unpacked[pos]
            else:
                assert self._packed is not None
                found &= ((self._packed[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1).astype(np.bool_)
        return found

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Insert all ``hashes``."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not len(hashes):
            return
        if self._packed is not None and _bloom_loops is not None:
            _bloom_loops.add_packed(np.ascontiguousarray(hashes), self._packed, self.num_bits, self.num_hashes,
                                    int(_SALT))
            self.items_added += len(hashes)
            return
        self.add_hashes_numpy(hashes)

    def add_hashes_numpy(self, hashes: np.ndarray) -> None:
        """``add_hashes`` with numpy (``probe_positions``): the definition the compiled loop is
        tested against, and the path on unpacked bits."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not len(hashes):
            return
        for pos in probe_positions(hashes, self.num_bits, self.num_hashes):
            if self._unpacked is not None:
                self._unpacked[pos] = True
            else:
                assert self._packed is not None
                # ``a[i] |= v`` with repeated i loses updates unless every repeat writes the same
                # value: one pass per bit position guarantees that.
                byte, bit = pos >> 3, (pos & 7).astype(np.uint8)
                for b in range(8):
                    self._packed[byte[bit == b]] |= np.uint8(1 << b)
        self.items_added += len(hashes)

    # -- one key at a time (pybloom-live style) ----------------------------------------------

    def _key_positions(self, key: str | bytes) -> list[int]:
        """``probe_positions`` for one key in plain Python (numpy's per-call cost dominates here)."""
        h = hash_key(key)
        m = self.num_bits
        g, d = _mix_int(h, 0) % m, _mix_int(h, int(_SALT)) % m
        positions = []
        for i in range(self.num_hashes):
            positions.append(g)
            g = (g + d) % m
            d = (d + i + 1) % m
        return positions

    def add(self, key: str | bytes) -> bool:
        """Insert ``key``; True if it was (probably) present already, like pybloom-live."""
        present = key in self
        if not present:
            positions = self._key_positions(key)
            if self._unpacked is not None:
                self._unpacked[positions] = True
            else:
                assert self._packed is not None
                for pos in positions:
                    self._packed[pos >> 3] |= 1 << (pos & 7)
            self.items_added += 1
        return present

    def __contains__(self, key: str | bytes) -> bool:
        positions = self._key_positions(key)
        if self._unpacked is not None:
            return bool(self._unpacked[positions].all())
        assert self._packed is not None
        packed = self._packed
        return all(packed[pos >> 3] >> (pos & 7) & 1 for pos in positions)

    # -- statistics ----------------------------------------------------------------------------

    def bits_set(self) -> int:
        if self._unpacked is not None:
            return int(np.count_nonzero(self._unpacked))
        assert self._packed is not None
        return int(np.bitwise_count(self._packed).sum(dtype=np.int64))

    def fill_ratio(self) -> float:
        return self.bits_set() / self.num_bits

    def estimated_fpr(self) -> float:
        """False-positive rate of a lookup now: (fraction of bits set) ** k."""
        return self.fill_ratio() ** self.num_hashes

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write the filter to ``path`` atomically (temp file, fsync, rename)."""
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as handle:
            handle.write(_HEADER.pack(MAGIC, self.num_bits, self.num_hashes, self.items_added))
            handle.write(memoryview(self.bits))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> BloomFilter:
        with open(path, "rb") as handle:
            header = handle.read(_HEADER.size)
            if len(header) != _HEADER.size or header[:8] != MAGIC:
                raise ValueError(f"{path} is not a nordpipe Bloom filter file")
            _, num_bits, num_hashes, items = _HEADER.unpack(header)
            bits = np.fromfile(handle, dtype=np.uint8)
        if bits.shape != (num_bits // 8,):
            raise ValueError(f"{path} is truncated: {bits.size} of {num_bits // 8} bytes")
        return cls(num_bits, num_hashes, bits, items)

    @staticmethod
    def read_header(path: str) -> tuple[int, int, int]:
        """``(num_bits, num_hashes, items_added)`` without reading the bits."""
        with open(path, "rb") as handle:
            header = handle.read(_HEADER.size)
        if len(header) != _HEADER.size or header[:8] != MAGIC:
            raise ValueError(f"{path} is not a nordpipe Bloom filter file")
        return tuple(_HEADER.unpack(header)[1:])  # type: ignore[return-value]
