"""Each weighting method against an independent implementation (torchjd) or a closed form."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from mtlspec.weighting import METHODS
from mtlspec.weighting.nash_mtl import nash_solution

pytestmark = pytest.mark.stack
torchjd = pytest.importorskip("torchjd.aggregation")

SHAPES = [(2, 5), (3, 8), (3, 40), (5, 12), (6, 100)]


def jacobians(count: int = 12):
    for seed in range(count):
        g = torch.Generator().manual_seed(seed)
        for T, P in SHAPES:
            yield seed, torch.randn(T, P, generator=g, dtype=torch.float64)


def method(name: str, **fields):
    spec_fields = {"space": "params", **fields}
    return METHODS[name]([f"t{i}" for i in range(8)], NS(**spec_fields))


def close(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
    return bool((a - b).norm() <= rel * max(b.norm().item(), 1e-12))


# --- against torchjd -------------------------------------------------------------------------


def test_upgrad_matches_torchjd():
    from torchjd._linalg._dual_cone import QuadprogProjector

    reference = torchjd.UPGrad(projector=QuadprogProjector(norm_eps=0.0, reg_eps=0.0))
    ours = method("upgrad")
    for _, J in jacobians():
        assert close(ours.aggregate(J, torch.ones(len(J))), reference(J), 1e-7)


def test_mgda_matches_torchjd_frank_wolfe_at_convergence():
    reference = torchjd.MGDA(epsilon=1e-14, max_iters=200_000)
    ours = method("mgda", normalization="none")
    for _, J in jacobians(4):
        # Frank-Wolfe converges sublinearly; ours is the exact min-norm point, so compare the norms
        # (the optimum is unique in value) and the directions to Frank-Wolfe's accuracy.
        g, r = ours.aggregate(J, torch.ones(len(J))), reference(J)
        assert g.norm() <= r.norm() + 1e-9
        assert close(g, r, 2e-3)


def test_pcgrad_matches_torchjd_with_the_same_random_order():
    reference = torchjd.PCGrad()
    ours = method("pcgrad")
    for seed, J in jacobians():
        torch.manual_seed(seed)
        expected = reference(J)
        torch.manual_seed(seed)
        assert close(ours.aggregate(J, torch.ones(len(J))), expected, 1e-10)


def test_imtl_g_matches_torchjd():
    reference = torchjd.IMTLG()
    ours = method("imtl")
    for _, J in jacobians():
        assert close(ours.aggregate(J, torch.ones(len(J))), reference(J), 1e-7)


def cagrad_tightly(J: torch.Tensor, c: float) -> torch.Tensor:
    """CAGrad's dual (Liu et al., NeurIPS 2021, eq. 6) solved by cvxpy's Clarabel at 1e-12:
    min over the simplex of w.(J g0) + sqrt(phi) |J^T w|, phi = c^2 |g0|^2; then
    d = g0 + sqrt(phi) / |g_w| g_w, with g0 the mean gradient."""
    import cvxpy as cp

    A = J.double().numpy()
    g0 = A.mean(axis=0)
    root_phi = c * np.linalg.norm(g0)
    w = cp.Variable(len(A), nonneg=True)
    problem = cp.Problem(cp.Minimize(w @ (A @ g0) + root_phi * cp.norm(A.T @ w)), [cp.sum(w) == 1])
    with warnings.catch_warnings():  # at 1e-12 Clarabel may report "almost solved": still ~1e-8 from the optimum, measured
        warnings.simplefilter("ignore", UserWarning)
        problem.solve(cp.CLARABEL, tol_feas=1e-12, tol_gap_abs=1e-12, tol_gap_rel=1e-12, max_iter=500)
    assert problem.status in ("optimal", "optimal_inaccurate"), problem.status
    gw = A.T @ w.value
    return torch.from_numpy(g0 + root_phi / np.linalg.norm(gw) * gw)


def test_cagrad_matches_torchjd_without_the_rescale():
    """torchjd returns g0 + sqrt(phi)/|g_w| g_w (the paper's rescale=0); the paper's code default
    divides by 1 + c^2 (rescale=1, our default), pinned by the last assertion. torchjd solves its
    QP with Clarabel's default tolerances (feasibility 1e-8), which leave its answer up to ~1e-4
    (relative) from the optimum on these Jacobians, and a looser Clarabel release would move it:
    so the tight check is against the same dual solved at 1e-12, and torchjd's at 1e-3."""
    for c in (0.2, 0.5):
        reference = torchjd.CAGrad(c=c, norm_eps=0.0)
        for _, J in jacobians(3):
            g = method("cagrad", c=c, rescale=0).aggregate(J, torch.ones(len(J)))
            assert close(g, cagrad_tightly(J, c), 1e-6)
            assert close(g, reference(J), 1e-3)
            assert close(method("cagrad", c=c, rescale=1).aggregate(J, torch.ones(len(J))), g / (1 + c**2), 1e-9)


def test_aligned_mtl_matches_torchjd():
    reference = torchjd.AlignedMTL()
    ours = method("aligned_mtl")
    for _, J in jacobians():
        assert close(ours.aggregate(J, torch.ones(len(J))), reference(J), 1e-8)


def test_fairgrad_matches_torchjd():
    for alpha in (0.5, 1.0, 2.0):
        reference = torchjd.FairGrad(alpha=alpha)
        ours = method("fairgrad", alpha=alpha)
        for _, J in jacobians(3):
            assert close(ours.aggregate(J, torch.ones(len(J))), reference(J), 1e-6)


def test_gradvac_matches_torchjd_over_a_sequence():
    reference = torchjd.GradVac(beta=0.3)
    ours = method("gradvac", beta=0.3)
    g = torch.Generator().manual_seed(7)
    for step in range(6):
        J = torch.randn(4, 30, generator=g, dtype=torch.float64)
        torch.manual_seed(step)
        expected = reference(J)
        torch.manual_seed(step)
        # torchjd adds 1e-8 to |g_i||g_j| (about 30 here) in each cosine; mtlspec divides by the norms alone,
        # so its cosines are right for gradients of any scale: 3e-10 apart per cosine, compounding through the targets
        assert close(ours.aggregate(J, torch.ones(4)), expected, 1e-7), step


@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_graddrop_matches_torchjd_with_the_same_draws(leak):
    ours = method("graddrop", leak=leak)
    for seed, J in jacobians(4):
        reference = torchjd.GradDrop(leak=torch.full((len(J),), leak, dtype=J.dtype)) if leak else torchjd.GradDrop()
        torch.manual_seed(seed)
        expected = reference(J)
        torch.manual_seed(seed)
        assert torch.allclose(ours.aggregate(J, torch.ones(len(J))), expected)


def test_nash_mtl_against_torchjd():
    """torchjd follows the paper's code: `optim_niter` rounds of a convex-concave procedure that
    approach the bargaining solution; ours solves K a = 1/a exactly. They agree to the
    procedure's accuracy; the exact condition is pinned in test_nash_solution_solves_the_bargaining_condition."""
    pytest.importorskip("cvxpy")
    pytest.importorskip("ecos")
    for _, J in jacobians(3):
        T = len(J)
        reference = torchjd.NashMTL(n_tasks=T, max_norm=0.0, update_weights_every=1, optim_niter=20)
        ours = method("nash_mtl", max_norm=0.0, update_weights_every=1, optim_niter=20)
        assert close(ours.aggregate(J, torch.ones(T)), reference(J), 5e-2)


# --- closed forms and defining properties ------------------------------------------------------


def test_mgda_two_tasks_is_the_analytic_min_norm_point():
    for _, J in jacobians():
        if len(J) != 2:
            continue
        g1, g2 = J
        a = float(torch.clamp((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0, 1))
        assert close(method("mgda", normalization="none").aggregate(J, torch.ones(2)), a * g1 + (1 - a) * g2, 1e-10)


def test_pcgrad_removes_exactly_the_conflicting_component():
    g1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    g2 = torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64)
    out = method("pcgrad").aggregate(torch.stack([g1, g2]), torch.ones(2))
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert torch.allclose(out, p1 + p2) and abs(p1 @ g2) < 1e-12 and abs(p2 @ g1) < 1e-12
    no_conflict = torch.stack([g1, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)])
    assert torch.allclose(method("pcgrad").aggregate(no_conflict, torch.ones(2)), no_conflict.sum(0))


def test_upgrad_never_conflicts_with_a_task():
    for _, J in jacobians():
        g = method("upgrad").aggregate(J, torch.ones(len(J)))
        assert (J @ g >= -1e-9).all()


def test_imtl_projects_equally_onto_every_task():
    for _, J in jacobians():
        if len(J) > J.shape[1]:
            continue
        g = method("imtl").aggregate(J, torch.ones(len(J)))
        projections = (J / J.norm(dim=1, keepdim=True)) @ g
        assert torch.allclose(projections, projections[0].expand_as(projections), rtol=1e-8)


def test_aligned_mtl_equalises_singular_values():
    for _, J in jacobians():
        m = method("aligned_mtl")
        m.aggregate(J, torch.ones(len(J)))
        K = J @ J.T
        values, vectors = torch.linalg.eigh(K)
        B = values.min().sqrt() * vectors @ torch.diag(values.rsqrt()) @ vectors.T
        singular = torch.linalg.svdvals(B @ J)
        assert torch.allclose(singular, singular.min().expand_as(singular), rtol=1e-8)


def test_cagrad_with_c_zero_is_the_mean_gradient():
    for _, J in jacobians(2):
        assert close(method("cagrad", c=0.0, rescale=1).aggregate(J, torch.ones(len(J))), J.mean(0), 1e-9)


def test_nash_solution_solves_the_bargaining_condition():
    for _, J in jacobians():
        K = (J @ J.T).numpy()
        a = nash_solution(K)
        assert (a > 0).all() and np.allclose(K @ a, 1 / a, rtol=1e-8)


def test_uw_log_variances_reach_the_log_losses():
    losses = {"a": torch.tensor(0.5), "b": torch.tensor(4.0)}
    uw = METHODS["uw"](["a", "b"], NS())
    opt = torch.optim.Adam(uw.parameters(), lr=0.05)
    for _ in range(3000):
        w = uw.weights(losses)
        total = sum(w[t] * losses[t] for t in losses) + uw.extra_loss(losses)
        opt.zero_grad()
        total.backward()
        opt.step()
    assert torch.allclose(uw.log_vars.detach(), torch.log(torch.tensor([0.5, 4.0])), atol=1e-3)


def test_dwa_follows_its_formula():
    dwa = METHODS["dwa"](["a", "b"], NS(T=2.0))
    dwa.end_epoch({"a": 1.0, "b": 1.0})
    assert dwa.weights({"a": torch.tensor(1.0), "b": torch.tensor(1.0)}) == {"a": 1.0, "b": 1.0}
    dwa.end_epoch({"a": 0.5, "b": 0.9})
    ea, eb = math.exp(0.5 / 2), math.exp(0.9 / 2)
    w = dwa.weights({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
    assert math.isclose(float(w["a"]), 2 * ea / (ea + eb), rel_tol=1e-6) and math.isclose(float(w["b"]), 2 * eb / (ea + eb), rel_tol=1e-6)


def test_gls_weights_give_the_gradient_of_the_geometric_mean():
    x = torch.tensor([0.3, 1.7, 2.2], requires_grad=True)
    losses = {"a": x[0] ** 2, "b": x[1] ** 2, "c": x[2] * 3}
    (expected,) = torch.autograd.grad(torch.prod(torch.stack(list(losses.values()))) ** (1 / 3), x, retain_graph=True)
    w = METHODS["gls"](list(losses), NS()).weights(losses)
    (got,) = torch.autograd.grad(sum(w[t] * losses[t] for t in losses), x)
    assert torch.allclose(got, expected)


def test_famo_follows_its_update_rule_on_a_scripted_sequence():
    """An independent numpy transcription of FAMO's rule: z = softmax(xi); weights z/(c D);
    xi <- Adam(xi, grad = z * (delta - z . delta)), delta = log D_before - log D_after."""
    gamma, w_lr = 0.01, 0.1
    famo = METHODS["famo"](["a", "b", "c"], NS(gamma=gamma, w_lr=w_lr))
    sequence = [([1.0, 2.0, 3.0], [0.9, 1.9, 2.5]), ([0.9, 1.9, 2.5], [0.7, 1.85, 2.4]), ([0.7, 1.8, 2.4], [0.69, 1.5, 2.3])]
    xi, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    for step, (before, after) in enumerate(sequence, start=1):
        z = np.exp(xi) / np.exp(xi).sum()
        D = np.array(before) + 1e-8
        expected_w = z / ((z / D).sum() * D)
        w = famo.weights({t: torch.tensor(x) for t, x in zip("abc", before)})
        assert np.allclose([float(w[t]) for t in "abc"], expected_w, rtol=1e-6)
        famo.after_step(lambda: {t: torch.tensor(x) for t, x in zip("abc", after)})
        delta = np.log(D) - np.log(np.array(after) + 1e-8)
        grad = z * (delta - z @ delta) + gamma * xi  # Adam's weight decay adds gamma * xi
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        xi = xi - w_lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        assert np.allclose(famo.logits.detach().numpy(), xi, atol=1e-6)


def test_gradnorm_moves_weights_toward_equal_training_rates():
    """Two tasks with equal gradient norms; task a's loss stalls while b's halves: a trains slower,
    so GradNorm must raise a's weight (and keep the weights summing to 2)."""
    gn = METHODS["gradnorm"](["a", "b"], NS(alpha=1.5))
    opt = torch.optim.SGD(gn.parameters(), lr=0.05)
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    gaps = []
    for step in range(40):
        losses = torch.tensor([1.0, 1.0 / (1 + step)], dtype=torch.float64)
        gn.aggregate(G, losses)
        ratio = losses / gn.initial
        r = ratio / ratio.mean()
        norms = gn.w.detach().double().abs()
        gaps.append(float((norms - norms.mean() * r**1.5).abs().sum()))
        opt.step()
        gn.after_step(lambda: {})
    w = gn.w.detach()
    assert w[0] > 1.2 > 0.8 > w[1] and math.isclose(float(w.sum()), 2.0, rel_tol=1e-6)
    assert gaps[-1] < gaps[1]


def test_db_mtl_balances_log_gradient_magnitudes():
    db = method("db_mtl", beta=0.9, beta_sigma=0.5)
    G = torch.tensor([[3.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    losses = torch.tensor([2.0, 0.25], dtype=torch.float64)
    g = db.aggregate(G, losses)
    log_grads = G / losses[:, None]
    scaled = log_grads * (log_grads.norm(dim=1).max() / log_grads.norm(dim=1))[:, None]
    assert torch.allclose(g, scaled.sum(0), rtol=1e-6)
    assert torch.allclose(scaled.norm(dim=1), scaled.norm(dim=1)[0].expand(2), rtol=1e-6)


def test_db_mtl_keeps_its_moving_average_over_steps_and_absent_tasks():
    """The EMA of g_t / L_t with decay beta / step^sigma, by its definition: a task absent from a
    step (its row not passed) keeps its average unchanged and takes no part in that update."""
    beta, sigma = 0.9, 0.5
    db = method("db_mtl", beta=beta, beta_sigma=sigma)
    rng = np.random.default_rng(4)
    steps = [(rng.normal(size=(2, 5)), rng.uniform(0.5, 2, 2), [0, 1]), (rng.normal(size=(1, 5)), rng.uniform(0.5, 2, 1), [0]),
             (rng.normal(size=(2, 5)), rng.uniform(0.5, 2, 2), [0, 1])]
    average = {}
    for n, (G, L, active) in enumerate(steps, start=1):
        g = db.aggregate(torch.tensor(G), torch.tensor(L), active).numpy()
        decay = beta / n**sigma
        for k, t in enumerate(active):
            fresh = G[k] / (L[k] + 1e-8)
            average[t] = fresh if t not in average else decay * average[t] + (1 - decay) * fresh
        rows = np.stack([average[t] for t in active])
        norms = np.linalg.norm(rows, axis=1)
        np.testing.assert_allclose(g, ((norms.max() / (norms + 1e-8))[:, None] * rows).sum(0), rtol=1e-12)


def test_gradvac_reads_cosines_at_any_gradient_scale():
    """The same gradients scaled by 1e-5 give the same update, scaled by 1e-5 (an absolute epsilon
    in the cosine read 0.16 as 0.0016 there)."""
    g = torch.Generator().manual_seed(3)
    J = torch.randn(3, 20, generator=g, dtype=torch.float64)
    results = []
    for scale in (1.0, 1e-5):
        ours = method("gradvac", beta=0.5)
        torch.manual_seed(0)
        for _ in range(3):
            out = ours.aggregate(J * scale, torch.ones(3))
        results.append(out / scale)
    torch.testing.assert_close(results[1], results[0], rtol=1e-9, atol=0)


def test_the_gramian_of_float32_gradients_is_float64_accurate():
    """Millions of float32 columns, as a network's gradients come: K within 1e-7 of |g_i||g_j| of
    the float64 product (one float32 product over all columns was off by 1e-5)."""
    from mtlspec.weighting.base import gramian

    g = torch.Generator().manual_seed(0)
    G = torch.randn(6, 2_000_000, generator=g) * torch.rand(6, 1, generator=g) + 0.3 * torch.randn(1, 2_000_000, generator=g)
    exact = (G.double() @ G.double().T).numpy()
    norms = np.sqrt(np.diag(exact))
    assert np.max(np.abs(gramian(G) - exact) / np.outer(norms, norms)) < 1e-7


def test_cagrad_with_a_zero_gradient_row_solves_over_the_others():
    """A present task whose gradient is exactly zero: g0 still averages it, the minimisation runs
    over the other rows (checked against scipy's SLSQP on that problem, a well-conditioned random
    one, to SLSQP's accuracy), and no warning or slow fallback happens (the exact finish used to
    divide by the zero row's norm)."""
    import warnings

    from scipy.optimize import minimize

    from mtlspec.weighting.cagrad import cagrad_weights

    rng = np.random.default_rng(0)
    A = rng.normal(size=(8, 12))
    A[2] = A[5] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = cagrad_weights(A @ A.T, 0.5)
    B = np.delete(A, [2, 5], axis=0)
    g0 = A.mean(0)
    root_phi = 0.5 * np.linalg.norm(g0)
    found = minimize(lambda v: (B.T @ v) @ g0 + root_phi * np.linalg.norm(B.T @ v), np.full(6, 1 / 6), method="SLSQP",
                     bounds=[(0, 1)] * 6, constraints=({"type": "eq", "fun": lambda v: v.sum() - 1},), options={"ftol": 1e-15, "maxiter": 1000})
    g_w = B.T @ found.x
    expected = g0 + root_phi / np.linalg.norm(g_w) * g_w
    assert np.linalg.norm(A.T @ w - expected) <= 1e-6 * np.linalg.norm(expected)


def test_zero_gradients_do_not_break_the_solvers():
    Z = torch.zeros(3, 4, dtype=torch.float64)
    for name, fields in (("mgda", {"normalization": "none"}), ("upgrad", {}), ("imtl", {}), ("aligned_mtl", {})):
        g = method(name, **fields).aggregate(Z, torch.ones(3))
        assert torch.isfinite(g).all() and g.abs().max() == 0


def test_upgrad_is_half_of_pcgrad_for_two_tasks():
    for _, J in jacobians():
        if len(J) == 2:
            assert close(method("upgrad").aggregate(J, torch.ones(2)), method("pcgrad").aggregate(J, torch.ones(2)) / 2, 1e-9)
