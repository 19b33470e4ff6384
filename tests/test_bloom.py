"""The numpy Bloom filter, checked against pybloom-live (the reference implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pybloom_live import BloomFilter as ReferenceBloom

from nordpipe.bloom import BloomFilter, bloom_size, hash_key, probe_positions


def hashes_of(keys: list[str]) -> np.ndarray:
    return np.fromiter(map(hash_key, keys), dtype=np.uint64, count=len(keys))


@pytest.mark.parametrize(("items", "fpr"), [(1_000, 0.01), (200_000, 1e-3), (10_000_000, 1e-6)])
def test_sizing_follows_the_reference_formula_and_pybloom_live(items: int, fpr: float) -> None:
    bits, hashes = bloom_size(items, fpr)
    assert bits % 8 == 0
    assert bits == pytest.approx(-items * math.log(fpr) / math.log(2) ** 2, abs=8)
    assert hashes == round(bits / items * math.log(2))
    reference = ReferenceBloom(capacity=items, error_rate=fpr)
    assert bits == pytest.approx(reference.num_bits, rel=0.01)
    assert hashes == reference.num_slices


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        bloom_size(0, 0.01)
    with pytest.raises(ValueError):
        bloom_size(10, 1.5)
    with pytest.raises(ValueError):
        BloomFilter(12, 3)


def test_no_false_negatives_and_false_positive_rate_like_pybloom_live() -> None:
    items, fpr = 50_000, 0.01
    members = [f"linje {i} om cookies" for i in range(items)]
    strangers = [f"anden linje {i}" for i in range(100_000)]
    ours = BloomFilter.for_capacity(items, fpr)
    ours.add_hashes(hashes_of(members))
    reference = ReferenceBloom(capacity=items, error_rate=fpr)
    for key in members:
        reference.add(key)
    assert ours.contains_hashes(hashes_of(members)).all()
    assert all(key in reference for key in members)
    ours_rate = ours.contains_hashes(hashes_of(strangers)).mean()
    reference_rate = np.mean([key in reference for key in strangers])
    # 100k trials at p=0.01: standard deviation 0.0003; both must land near the target.
    assert ours_rate == pytest.approx(fpr, abs=0.002)
    assert reference_rate == pytest.approx(fpr, abs=0.002)
    assert ours.estimated_fpr() == pytest.approx(ours_rate, rel=0.25)


def test_one_at_a_time_api_agrees_with_pybloom_live() -> None:
    rng = np.random.default_rng(7)
    keys = [f"key {int(i)}" for i in rng.integers(0, 5_000, 20_000)]
    ours = BloomFilter.for_capacity(10_000, 1e-6)
    reference = ReferenceBloom(capacity=10_000, error_rate=1e-6)
    assert [ours.add(k) for k in keys] == [reference.add(k) for k in keys]
    assert ("key 1" in ours) == ("key 1" in reference)
    assert "not a key" not in ours


def test_packed_and_unpacked_representations_agree() -> None:
    keys = hashes_of([f"x{i}" for i in range(30_000)])
    packed = BloomFilter.for_capacity(20_000, 1e-4)
    packed.add_hashes(keys[:20_000])
    unpacked = BloomFilter.for_capacity(20_000, 1e-4)
    unpacked.unpack()
    unpacked.add_hashes(keys[:20_000])
    assert np.array_equal(unpacked.contains_hashes(keys), packed.contains_hashes(keys))
    assert unpacked.bits_set() == packed.bits_set()
    assert np.array_equal(unpacked.bits, packed.bits)


@pytest.mark.parametrize(("capacity", "fpr"), [(20_000, 1e-4), (7_777, 0.01), (300_000, 1e-6)])
def test_compiled_loops_equal_the_numpy_definition_on_packed_bits(capacity: int, fpr: float) -> None:
    """The C probes on packed bits (``_bloom_loops``, built by setup.py) set the same bits and
    give the same verdicts as the numpy definition, on random 64-bit hashes and the extremes."""
    pytest.importorskip("nordpipe._bloom_loops")
    rng = np.random.default_rng(capacity)
    keys = rng.integers(0, 2**64 - 1, size=capacity * 2, dtype=np.uint64, endpoint=True)
    keys[:3] = [0, 2**64 - 1, 2**63]
    compiled, numpy_side = BloomFilter.for_capacity(capacity, fpr), BloomFilter.for_capacity(capacity, fpr)
    assert compiled.num_bits & (compiled.num_bits - 1)  # not a power of two: the reductions mod m matter
    compiled.add_hashes(keys[:capacity])
    numpy_side.add_hashes_numpy(keys[:capacity])
    assert np.array_equal(compiled.bits, numpy_side.bits)
    assert compiled.items_added == numpy_side.items_added == capacity
    verdicts = compiled.contains_hashes(keys)
    assert np.array_equal(verdicts, numpy_side.contains_hashes_numpy(keys))
    assert verdicts[:capacity].all() and verdicts[capacity:].mean() < 20 * fpr + 1e-3


def test_save_and_load_round_trip(tmp_path) -> None:
    bloom = BloomFilter.for_capacity(1_000, 0.01)
    bloom.add_hashes(hashes_of(["a", "b", "c"]))
    path = str(tmp_path / "f.bloom")
    bloom.save(path)
    loaded = BloomFilter.load(path)
    assert (loaded.num_bits, loaded.num_hashes, loaded.items_added) == (bloom.num_bits, bloom.num_hashes, 3)
    assert np.array_equal(loaded.bits, bloom.bits)
    assert BloomFilter.read_header(path) == (bloom.num_bits, bloom.num_hashes, 3)
    assert "a" in loaded and "d" not in loaded


def test_load_refuses_truncated_or_foreign_files(tmp_path) -> None:
    bloom = BloomFilter.for_capacity(1_000, 0.01)
    path = tmp_path / "f.bloom"
    bloom.save(str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        BloomFilter.load(str(path))
    path.write_bytes(b"something else entirely")
    with pytest.raises(ValueError, match="not a nordpipe Bloom filter"):
        BloomFilter.load(str(path))


@pytest.mark.parametrize("num_bits", [64, 1_000_008, 2**33 + 8])
def test_bulk_probes_equal_the_one_key_probes(num_bits: int) -> None:
    """The vectorized probe positions (in-place, branch-free modular steps) are exactly the
    plain-Python ones, also near the top of the range where a wrong reduction would show."""
    keys = [f"linje {i}" for i in range(2_000)]
    bloom = BloomFilter(num_bits, 23)
    bulk = np.stack([pos.copy() for pos in probe_positions(hashes_of(keys), num_bits, 23)], axis=1)
    assert bulk.min() >= 0 and bulk.max() < num_bits
    assert bulk.tolist() == [bloom._key_positions(k) for k in keys]


def test_bulk_adds_set_the_bits_of_one_key_adds() -> None:
    keys = [f"k{i}" for i in range(5_000)]
    one_by_one = BloomFilter.for_capacity(5_000, 1e-5)
    for key in keys:
        one_by_one.add(key)
    bulk = BloomFilter.for_capacity(5_000, 1e-5)
    bulk.unpack()
    bulk.add_hashes(hashes_of(keys))
    # add() skips keys that look present already (false positives), so compare bits via membership.
    assert bulk.contains_hashes(hashes_of(keys)).all()
    assert np.array_equal(bulk.bits | one_by_one.bits, bulk.bits)
