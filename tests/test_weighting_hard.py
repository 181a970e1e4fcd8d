"""The gradient methods on the Jacobians training produces: rows whose norms differ by 10^8,
near-parallel and opposed rows, rank-deficient and zero rows, float32 input, 2 to 40 tasks.
Each against a 60-digit reference (tests/weighting_oracles.py: brute force over active sets,
closed forms, or mpmath's root finder) that shares no code with mtlspec. torchjd is the
cross-check on well-conditioned Jacobians (tests/test_weighting.py); on these it is no reference:
its IMTL-G (a pseudo-inverse of the unscaled Gramian) is off by 10x on rows parallel to 1e-5, and
its UPGrad adds 1e-4 to the Gramian's diagonal before solving.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import weighting_oracles as oracle
from mtlspec.language.root import Spec
from mtlspec.weighting import METHODS

pytestmark = pytest.mark.stack

EXAMPLES = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def method(name: str, **fields):
    base = {"name": "h", "data": {"datasets": {"d": {"type": "multidigits"}}}, "tasks": {"t": {"type": "depth", "dataset": "d"}}}
    spec = Spec.model_validate({**base, "weighting": {"type": name, **fields}}).weighting
    return METHODS[name]([f"t{i}" for i in range(40)], spec)


def run(name: str, A: np.ndarray, **fields) -> np.ndarray:
    G = torch.as_tensor(A)
    return method(name, **fields).aggregate(G, torch.ones(len(A), dtype=G.dtype)).double().numpy()


@st.composite
def jacobians(draw, max_tasks: int = 5, full_rank: bool = False, parallel: float = 1e-6):
    """Rows of norms 10^-4 .. 10^4, made near-parallel (apart by `parallel` of their norm),
    opposed, repeated, zero or fewer in dimension than in number, as training produces them."""
    T = draw(st.integers(2, max_tasks))
    P = draw(st.integers(T if full_rank else 1, T + 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.normal(size=(T, P)) * 10.0 ** rng.uniform(-4, 4, size=(T, 1))
    kind = draw(st.sampled_from(["scaled", "near-parallel", "opposed", "repeated", "zero"] if not full_rank else ["scaled", "near-parallel", "opposed"]))
    if kind == "near-parallel":
        A[1] = A[0] * 10.0 ** rng.uniform(-2, 2)
        A[1] += parallel * np.linalg.norm(A[1]) * rng.normal(size=P) / np.sqrt(P)
    elif kind == "opposed":  # exactly opposed (a power of two keeps them so in float64), or nearly
        A[1] = -A[0] * 2.0 ** int(rng.integers(-7, 8)) + (1e-3 * np.linalg.norm(A[0]) * rng.normal(size=P) if full_rank else 0)
    elif kind == "repeated":
        A[-1] = A[0]
    elif kind == "zero":
        A[-1] = 0.0
    return A


def within_rounding(ours: np.ndarray, reference, A: np.ndarray) -> bool:
    """ours is the reference direction on A up to what float64 allows: EXACT of its norm, plus
    1e-12 of the largest row (a reference of ~0, the origin of a hull, is met to the rows'
    rounding), plus SENSITIVITY times how far the reference itself moves when the Gramian moves
    by one rounding of its entries (`jitter`). Near-parallel rows make a Gramian ill-conditioned
    and any float64 solver on it moves with it; that term measures the condition on the problem
    at hand, with the 60-digit reference alone, rather than assuming it."""
    want = reference(A, None)
    allowed = EXACT * np.linalg.norm(want) + 1e-12 * np.linalg.norm(A, axis=1).max() + 1e-300
    distance = np.linalg.norm(ours - want)
    if distance <= allowed:
        return True
    moved = max(np.linalg.norm(reference(A, seed) - want) for seed in (1, 2))
    assert distance <= allowed + SENSITIVITY * moved, (distance, allowed, moved)
    return True


# Every solver here is exact up to rounding; rows 10^8 apart put Gramian entries 10^16 apart, at
# the edge of float64, so directions are checked to 1e-7 relative.
EXACT = 1e-7
# Two random roundings estimate the problem's sensitivity to within a factor of about sqrt(T * P)
# (a random direction against the worst one) and a solver's backward error is a few roundings.
SENSITIVITY = 100.0


@EXAMPLES
@given(A=jacobians())
def test_mgda_is_the_min_norm_point(A):
    assert within_rounding(run("mgda", A, normalization="none"), oracle.min_norm_point, A)


# 5 rows in 3 dimensions: once the active set spans the rank, what the remaining multiplier holds
# back is rounding (1e-12 of the terms it sums), and a tolerance relative to |q| alone cycled.
RANK_DEFICIENT = np.array([
    [-1.3731390638855288e+01, 1.5197033358830383e+00, -1.1574277525984060e+00],
    [4.8000807769494411e+00, -1.4415846098879079e+00, -4.0544736018572722e+00],
    [1.1553530625291264e+00, 1.7924287575730241e-03, 4.9450999571940589e-03],
    [-6.7928129398256126e-02, -3.9547866159252910e-02, 2.8770230982432730e-02],
    [3.9350088297794390e-03, -3.3957580762763147e-03, -4.4487232535383170e-02]])


@EXAMPLES
@given(A=jacobians())
@example(A=RANK_DEFICIENT)
def test_upgrad_projects_exactly(A):
    assert within_rounding(run("upgrad", A), oracle.upgrad, A)


@EXAMPLES
@given(A=jacobians(full_rank=True))
def test_cagrad_is_exact(A):
    assert within_rounding(run("cagrad", A, c=0.5, rescale=0), lambda B, jitter: oracle.cagrad(B, 0.5, jitter), A)


@EXAMPLES
@given(A=jacobians(full_rank=True))
def test_nash_mtl_solves_the_bargaining_condition(A):
    ours = run("nash_mtl", A, max_norm=0.0)
    start = oracle.power_fair_weights(A, ours)
    assert within_rounding(ours, lambda B, jitter: oracle.power_fair(B, 1.0, jitter, start), A)


@EXAMPLES
@given(A=jacobians(full_rank=True), alpha=st.sampled_from([0.5, 1.0, 2.0]))
def test_fairgrad_solves_its_allocation(A, alpha):
    ours = run("fairgrad", A, alpha=alpha)
    start = oracle.power_fair_weights(A, ours)
    assert within_rounding(ours, lambda B, jitter: oracle.power_fair(B, alpha, jitter, start), A)


@EXAMPLES
@given(A=jacobians(full_rank=True))
def test_imtl_g_is_exact(A):
    """Rows parallel to rounding (1 - cos <= 4 x 2^-52, an angle under 4e-8) are one direction to
    IMTL-G and share its weight; exactly, rows that close are still two, and the answer there is
    set by their tiny difference (nearly 0 when a third row is present): the answer jumps at the
    cut, so rows closer than 100 times it are not drawn (the reference is for full rank anyway)."""
    from mtlspec.weighting.imtl import PARALLEL

    units = A / np.linalg.norm(A, axis=1, keepdims=True)
    gaps = [np.linalg.norm(units[i] - units[j]) ** 2 / 2 for i in range(len(A)) for j in range(i)]  # 1 - cos, without cancellation
    assume(min(gaps) > PARALLEL * 100)
    assert within_rounding(run("imtl", A), oracle.imtl_g, A)


@EXAMPLES
@given(A=jacobians(full_rank=True))
def test_aligned_mtl_is_exact(A):
    """Aligned-MTL keeps the eigenvalues above l_max T 2^-52 (its definition, and torchjd's): an
    eigenvalue within a factor 100 of that cut is kept or dropped by rounding, and the answer
    jumps with it, so such matrices are not drawn."""
    values = np.linalg.eigvalsh(A @ A.T)
    cut = values.max() * len(A) * 2.0**-52
    assume(not ((values > cut / 100) & (values < cut * 100)).any())
    assert within_rounding(run("aligned_mtl", A), oracle.aligned_mtl, A)


@pytest.mark.parametrize("name, fields", [("mgda", {"normalization": "none"}), ("upgrad", {}), ("cagrad", {"c": 0.5}),
                                          ("nash_mtl", {"max_norm": 0.0}), ("fairgrad", {"alpha": 1.0}), ("imtl", {})])
def test_float32_gradients_give_the_float64_answer(name, fields):
    """Gradients arrive in float32: the answer moves no more than their rounding (6e-8) amplified
    by the problem's own sensitivity; near-rank-deficient Jacobians included (FairGrad's
    least-squares solve moved by more than 100% there)."""
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(20):
        T = int(rng.integers(2, 8))
        A = rng.normal(size=(T, 40))
        A[-1] = A[0] + 1e-3 * rng.normal(size=40)  # near-rank-deficient
        d64 = run(name, A, **fields)
        d32 = run(name, A.astype(np.float32).astype(np.float64), **fields)
        worst = max(worst, np.linalg.norm(d32 - d64) / np.linalg.norm(d64))
    assert worst <= 1e-3, worst


@pytest.mark.parametrize("T", [2, 8, 16, 40])
def test_every_gradient_method_gives_a_finite_direction_at_any_task_count(T):
    rng = np.random.default_rng(T)
    A = rng.normal(size=(T, 200)) * 10.0 ** rng.uniform(-3, 3, size=(T, 1))
    for name in ("mgda", "upgrad", "cagrad", "imtl", "nash_mtl", "fairgrad", "aligned_mtl", "pcgrad", "gradvac", "gradnorm", "db_mtl", "graddrop"):
        d = run(name, A)
        assert np.isfinite(d).all() and d.shape == (200,), name
