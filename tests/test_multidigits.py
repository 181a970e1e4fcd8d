"""The embedded dataset: deterministic bytes, labels that agree with each other, disjoint splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mtlspec.data.multidigits import BACKGROUND_DEPTH, MultiDigitsParams, MultiDigitsSource, generate, load, split_pools

pytestmark = pytest.mark.stack


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _digest(arrays):
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes():
    p = MultiDigitsParams(canvas=48, size=40, seed=3)
    assert _digest(generate(p)) == _digest(generate(p))
    assert _digest(generate(MultiDigitsParams(canvas=48, size=40, seed=4))) != _digest(generate(p))


def test_cache_returns_the_generated_arrays(tmp_path):
    p = MultiDigitsParams(canvas=32, size=10, max_objects=2)
    first = load(p)
    files = list((tmp_path / "cache" / "multidigits").glob("*.npz"))
    assert len(files) == 1
    assert _digest(load(p)) == _digest(first)


def test_labels_agree_with_each_other():
    source = MultiDigitsSource("d", MultiDigitsParams(canvas=64, size=200, max_objects=3, split="val"))
    for i in range(len(source)):
        r = source.record(i)
        boxes, digits, mask, depth = r["boxes"], r["box_labels"], r["mask"], r["depth"]
        assert 1 <= len(boxes) <= 3
        assert r["labels"]["num_digits"] == len(boxes) == r["labels"]["count"]
        assert r["labels"]["largest_digit"] == digits.max() and r["labels"]["smallest_digit"] == digits.min()
        assert np.array_equal(np.flatnonzero(r["labels"]["present"]), np.unique(digits))
        assert set(np.unique(mask)) - {0} <= {d + 1 for d in digits}
        for (x1, y1, x2, y2), d in zip(boxes.astype(int), digits):
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            inside = mask[y1:y2, x1:x2] == d + 1
            assert inside.any(), f"sample {i}: the box of digit {d} holds none of its pixels"
        assert (depth[mask == 0] == BACKGROUND_DEPTH).all()
        assert (depth[mask > 0] < BACKGROUND_DEPTH).all()


def test_nearer_digits_are_larger():
    a = generate(MultiDigitsParams(canvas=64, size=150, max_objects=1, min_objects=1))
    sizes = (a["boxes"][:, 2] - a["boxes"][:, 0]) * (a["boxes"][:, 3] - a["boxes"][:, 1])
    depths = np.array([a["depths"][i][a["masks"][i] > 0].mean() for i in range(150)])
    assert np.corrcoef(sizes, depths)[0, 1] < -0.5


def test_splits_never_share_source_scans():
    pools = split_pools(1797, seed=0)
    assert not set(pools["train"]) & set(pools["val"]) and not set(pools["train"]) & set(pools["test"])
    assert not set(pools["val"]) & set(pools["test"])
    used = {s: set(generate(MultiDigitsParams(canvas=32, size=30, max_objects=2, split=s))["scan_ids"]) for s in ("train", "val", "test")}
    assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]
    assert used["val"] <= set(pools["val"])


def test_a_subset_of_digits_holds_the_others_out_with_the_same_labels(tmp_path, monkeypatch):
    """`digits: [0..4]` draws only those digits' scans, from the same split pools; labels keep
    their values and every earlier dataset keeps its cache key."""
    from mtlspec.data.multidigits import MultiDigitsParams, MultiDigitsSource, split_pools, _scans

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path))
    base = MultiDigitsSource("d", MultiDigitsParams(canvas=32, min_objects=1, max_objects=2, split="val", size=60, seed=3, digits=(0, 1, 2, 3, 4)))
    seen = {int(v) for i in range(len(base)) for v in base.record(i)["box_labels"]}
    assert seen <= {0, 1, 2, 3, 4} and len(seen) >= 4
    labels = _scans()[1]
    assert set(base.arrays["scan_ids"].tolist()) <= set(split_pools(len(labels), 3)["val"].tolist())
    assert all(labels[s] < 5 for s in base.arrays["scan_ids"])
    assert MultiDigitsParams(canvas=32).key() == MultiDigitsParams(canvas=32, digits=None).key() != MultiDigitsParams(canvas=32, digits=(1, 2)).key()
