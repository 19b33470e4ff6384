# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C loops of the Bloom filter's bulk probes on its packed bits (compiled by ``setup.py``; issue 20).

``nordpipe.bloom.BloomFilter`` keeps its bits packed (one bit per bit). Its numpy path
(``bloom.probe_positions``) computes the probe positions of a whole array of hashes one probe at
a time, which needs the bits unpacked to one byte per bit to be fast (8x the filter's memory)
and three temporary 8-byte arrays the length of the batch. Line dedup holds one filter part at a
time, and those two were most of its peak memory above the imports: a 4 MiB part became 32 MiB
unpacked plus ~30 MB of positions for a part's ~1.2M line hashes
(``benchmarks/results/lines.md``).

These loops probe the packed bits directly, hash by hash, with the same positions: the
``splitmix64`` finalizer of the hash (salt 0 and ``bloom._SALT``) gives ``a`` and ``b``; probe
``i`` is ``g_i`` with ``g_0 = a mod m``, ``d_0 = b mod m``, ``g_{i+1} = g_i + d_i mod m``,
``d_{i+1} = d_i + i + 1 mod m``. No allocation besides the result. The numpy path stays the
definition (``tests/test_bloom.py`` compares both on random hashes and on pybloom-live's
verdicts).
"""

import numpy as np

from libc.stdint cimport uint8_t, uint64_t

cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL
cdef uint64_t M1 = 0xBF58476D1CE4E5B9ULL
cdef uint64_t M2 = 0x94D049BB133111EBULL


cdef inline uint64_t mix(uint64_t value, uint64_t salt) nogil:
    cdef uint64_t z = (value ^ salt) * GOLDEN
    z ^= z >> 30
    z *= M1
    z ^= z >> 27
    z *= M2
    return z ^ (z >> 31)


cdef inline void advance(uint64_t* g, uint64_t* d, int i, uint64_t num_bits) nogil:
    """From probe ``i`` to ``i + 1``: ``g += d``, ``d += i + 1``, both kept below ``num_bits``."""
    g[0] += d[0]
    if g[0] >= num_bits:
        g[0] -= num_bits
    d[0] += i + 1
    if d[0] >= num_bits:
        d[0] -= num_bits


def contains_packed(const uint64_t[::1] hashes, const uint8_t[::1] bits, uint64_t num_bits,
                    int num_hashes, uint64_t salt):
    """Boolean array: whether every probe bit of each hash is set in the packed ``bits``."""
    cdef Py_ssize_t n = hashes.shape[0], j
    cdef int i
    cdef uint64_t g, d
    found = np.ones(n, dtype=np.bool_)
    cdef uint8_t[::1] out = found.view(np.uint8)
    with nogil:
        for j in range(n):
            g = mix(hashes[j], 0) % num_bits
            d = mix(hashes[j], salt) % num_bits
            for i in range(num_hashes):
                if not (bits[g >> 3] >> (g & 7)) & 1:
                    out[j] = 0
                    break
                if i + 1 == num_hashes:
                    break
                advance(&g, &d, i, num_bits)
    return found


def add_packed(const uint64_t[::1] hashes, uint8_t[::1] bits, uint64_t num_bits, int num_hashes,
               uint64_t salt):
    """Set every probe bit of each hash in the packed ``bits``."""
    cdef Py_ssize_t n = hashes.shape[0], j
    cdef int i
    cdef uint64_t g, d
    with nogil:
        for j in range(n):
            g = mix(hashes[j], 0) % num_bits
            d = mix(hashes[j], salt) % num_bits
            for i in range(num_hashes):
                bits[g >> 3] |= <uint8_t>(1 << (g & 7))
                if i + 1 == num_hashes:
                    break
                advance(&g, &d, i, num_bits)
