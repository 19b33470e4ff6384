# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C loops of Gopher's n-gram repetition measures (compiled by ``setup.py``; issue 20).

Each function computes in one pass over a document's n-gram hashes what the numpy definition in
``nordpipe.quality`` computes with sorts and ``numpy.unique``; those definitions are the
pure-Python fallback used when this module is not built, and the tests compare the two on real
and random inputs:

- ``top_ngram_hashes``: ``quality.top_ngram_numpy`` (count of the most frequent n-gram and the
  position of the first occurrence of the first-occurring one among equally frequent);
- ``duplicated_chars``: ``quality.duplicated_ngram_chars_numpy`` (Gopher's left-to-right scan
  that jumps past each repeat);
- ``has_repeats``: ``quality.has_repeats_numpy``.

Why: per document the numpy versions cost a sort and several array passes for ~300 values, and
numpy's per-call overhead, not the arithmetic, was most of Gopher repetition's time
(``benchmarks/results/profile_quality.md``). An open-addressing hash table sized to the
document does each in O(n) without leaving C.

Hashes are compared for equality only, as the numpy versions do, so both give the same answer on
every input, collisions included.
"""

from libc.stdlib cimport calloc, free
from libc.stdint cimport uint64_t, int64_t, uint8_t


cdef struct Slot:
    uint64_t key
    int64_t count
    int64_t first
    uint8_t used


cdef inline Py_ssize_t _capacity(Py_ssize_t n) nogil:
    cdef Py_ssize_t size = 16
    while size < 2 * n:
        size <<= 1
    return size


cdef inline Py_ssize_t _find(Slot* table, Py_ssize_t mask, uint64_t key) nogil:
    # Fibonacci hashing spreads the n-gram hashes' high bits over the table.
    cdef Py_ssize_t i = <Py_ssize_t>((key * <uint64_t>11400714819323198485ULL) >> 32) & mask
    while table[i].used and table[i].key != key:
        i = (i + 1) & mask
    return i


def top_ngram_hashes(const uint64_t[::1] hashes):
    """(count of the most frequent value, position of the first occurrence of the value that
    occurs first among the most frequent); (1, 0) when no value repeats."""
    cdef Py_ssize_t n = hashes.shape[0]
    if n == 0:
        return 1, 0
    cdef Py_ssize_t size = _capacity(n), mask = size - 1, i, slot
    cdef Slot* table = <Slot*>calloc(size, sizeof(Slot))
    if table == NULL:
        raise MemoryError()
    cdef int64_t top = 0
    cdef int64_t first = 0
    try:
        for i in range(n):
            slot = _find(table, mask, hashes[i])
            if not table[slot].used:
                table[slot].used = 1
                table[slot].key = hashes[i]
                table[slot].first = i
            table[slot].count += 1
            if table[slot].count > top:
                top = table[slot].count
        if top == 1:
            return 1, 0
        # the first position whose value has the top count is that value's first occurrence,
        # and no other top value occurs before it
        for i in range(n):
            slot = _find(table, mask, hashes[i])
            if table[slot].count == top:
                first = table[slot].first
                break
        return int(top), int(first)
    finally:
        free(table)


def duplicated_chars(const uint64_t[::1] hashes, const int64_t[::1] cumulative, Py_ssize_t n):
    """Characters of the n-grams (``hashes``, one per start position) that repeat an earlier
    one, scanning left to right and jumping ``n`` tokens past each repeat; ``cumulative[i]`` is
    the characters of the first ``i`` tokens."""
    cdef Py_ssize_t count = hashes.shape[0]
    cdef Py_ssize_t size = _capacity(count), mask = size - 1, i, slot
    cdef Py_ssize_t skip_until = 0
    cdef int64_t total = 0
    if count == 0:
        return 0
    cdef Slot* table = <Slot*>calloc(size, sizeof(Slot))
    if table == NULL:
        raise MemoryError()
    try:
        for i in range(count):
            if i < skip_until:
                continue  # jumped over: not counted, not remembered
            slot = _find(table, mask, hashes[i])
            if table[slot].used:
                total += cumulative[i + n] - cumulative[i]
                skip_until = i + n
            else:
                table[slot].used = 1
                table[slot].key = hashes[i]
        return int(total)
    finally:
        free(table)


def has_repeats(const uint64_t[::1] hashes):
    """Whether any value occurs twice."""
    cdef Py_ssize_t n = hashes.shape[0]
    cdef Py_ssize_t size = _capacity(n), mask = size - 1, i, slot
    if n < 2:
        return False
    cdef Slot* table = <Slot*>calloc(size, sizeof(Slot))
    if table == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            slot = _find(table, mask, hashes[i])
            if table[slot].used:
                return True
            table[slot].used = 1
            table[slot].key = hashes[i]
        return False
    finally:
        free(table)
