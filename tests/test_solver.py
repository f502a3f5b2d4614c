"""The prompt-free gap solver against METHOD.md's properties and scalar reference root finders."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.special import expit
from torch import Tensor

from rmcore.decomposition import solver
from rmcore.decomposition.solver import solve_free_gap

TOL = 1e-8
EPS = np.finfo(np.float64).eps


# -----------------------------------------------------------------------------
# references, written independently of the solver's numerics


def brentq_exact(g: np.ndarray, w: np.ndarray) -> float:
    """brentq on the naive balanced residual evaluated in arbitrary precision.

    float64 cannot evaluate sum w s(g - c) - 1/2 once the gaps are ~1e3 apart (the root
    is decided by e^-1000 tails), so mpmath evaluates it with enough digits and brentq sees
    sign(v) log1p(|v| 10^digits): same sign, same root, strictly monotone, float-sized.
    """
    keep = w > 0
    g, w = g[keep], w[keep]
    if g.min() == g.max():
        return float(g[0])
    # tails below e^-(spread/2) never decide the root; 30 digits on top of that
    digits = int((g.max() - g.min()) / 2 / math.log(10)) + 30
    with mpmath.workdps(digits):
        gs, ws = [mpmath.mpf(float(x)) for x in g], [mpmath.mpf(float(x)) for x in w]
        half, scale = mpmath.fsum(ws) / 2, mpmath.mpf(10) ** digits

        def residual(c: float) -> float:
            cm = mpmath.mpf(c)
            v = (
                mpmath.fsum(wk / (1 + mpmath.exp(cm - gk)) for gk, wk in zip(gs, ws, strict=True))
                - half
            )
            return float(mpmath.sign(v) * mpmath.log1p(abs(v) * scale))

        return brentq(residual, g.min(), g.max(), xtol=1e-12, rtol=4 * EPS)


def brentq_float64(g: np.ndarray, w: np.ndarray) -> float:
    """The textbook reference: brentq on the normalized residual in float64 (moderate gaps)."""
    keep = w > 0
    g, w = g[keep], w[keep] / w[keep].sum()
    if g.min() == g.max():
        return float(g[0])
    return brentq(lambda c: float(w @ expit(g - c)) - 0.5, g.min(), g.max(), xtol=1e-12)


def naive_residual(g: np.ndarray, w: np.ndarray, c: float) -> float:
    return float(w @ expit(g - c) / w.sum()) - 0.5


def random_problem(seed: int, n: int, k: int, scale: float, kind: str) -> tuple[Tensor, Tensor]:
    """Rows of gaps (pair effect + prompt effect) and weights of one kind, some zero."""
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 1, (n, 1)) * scale + rng.normal(0, 1, (n, k)) * scale
    g = np.clip(g, -1000, 1000)
    if kind == "equal":
        w = np.full((n, k), 0.37)
    elif kind == "integer":  # exact ties of weight sums are common here
        w = rng.integers(0, 4, (n, k)).astype(np.float64)
    else:
        w = rng.uniform(0.01, 1.0, (n, k))
    w[rng.random((n, k)) < 0.25] = 0.0
    w[:, 0] = np.where(w.sum(1) == 0, 1.0, w[:, 0])  # all-zero rows are tested separately
    if rng.random() < 0.2:
        g[:] = g[:, :1]  # all-equal gaps
    return torch.from_numpy(g), torch.from_numpy(w)


gap_values = st.floats(-1000, 1000, allow_nan=False, allow_subnormal=False)


@st.composite
def problems(draw: st.DrawFn, max_k: int = 6) -> tuple[Tensor, Tensor]:
    """One row of hypothesis-chosen gaps and integer weights (at least one positive)."""
    k = draw(st.integers(1, max_k))
    g = draw(st.lists(gap_values, min_size=k, max_size=k))
    w = draw(st.lists(st.integers(0, 3), min_size=k, max_size=k))
    if sum(w) == 0:
        w[draw(st.integers(0, k - 1))] = 1
    return torch.tensor([g], dtype=torch.float64), torch.tensor([w], dtype=torch.float64)


# -----------------------------------------------------------------------------
# agreement with scalar references


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 6),
    scale=st.sampled_from([0.5, 5.0, 300.0, 1000.0]),
    kind=st.sampled_from(["equal", "integer", "continuous"]),
)
def test_balanced_matches_high_precision_brentq(seed: int, k: int, scale: float, kind: str):
    g, w = random_problem(seed, 4, k, scale, kind)
    d = solve_free_gap(g, w, tol=TOL)
    assert d.converged.all()
    for i in range(g.shape[0]):
        ref = brentq_exact(g[i].numpy(), w[i].numpy())
        assert abs(d.free[i].item() - ref) <= TOL + 1e-10, (i, g[i], w[i])


@pytest.mark.parametrize(
    ("gaps", "weights"),
    [
        ([-1000.0, -990.0, 900.0, 1000.0], [1.0, 1.0, 1.0, 1.0]),  # tails below float64 range
        ([-1000.0, 1000.0, 0.0], [0.25, 0.25, 0.0]),  # exact symmetry, zero weight at root
        ([1000.0, -1000.0, 999.0, -998.0], [0.3, 0.2, 0.2, 0.3]),  # sums tie up to rounding
        ([-1000.0, 1000.0], [0.3, 0.7]),  # root near a gap, slope O(1)
        ([5.0, 5.0 + 1e-12, 5.0 - 1e-12], [1.0, 2.0, 3.0]),  # bracket below tol
    ],
)
def test_balanced_hard_cases(gaps: list[float], weights: list[float]):
    g, w = torch.tensor([gaps], dtype=torch.float64), torch.tensor([weights])
    d = solve_free_gap(g, w)
    assert d.converged.all()
    assert abs(d.free.item() - brentq_exact(g[0].numpy(), w[0].numpy())) <= TOL + 1e-10


def test_balanced_matches_float64_brentq_on_typical_gaps():
    g, w = random_problem(7, 300, 17, 2.0, "continuous")
    d = solve_free_gap(g, w)
    refs = np.array([brentq_float64(g[i].numpy(), w[i].numpy()) for i in range(300)])
    np.testing.assert_allclose(d.free.numpy(), refs, rtol=0, atol=TOL)
    # Newton, not bisection, does the work on well-conditioned rows
    assert d.iterations.float().median() <= 8


def test_logit_mean_matches_direct_formula():
    g, w = random_problem(3, 500, 9, 3.0, "continuous")
    gn, wn = g.numpy(), w.numpy()
    p = (wn * expit(gn)).sum(1) / wn.sum(1)
    d = solve_free_gap(g, w, criterion="logit-mean")
    np.testing.assert_allclose(d.free.numpy(), np.log(p / (1 - p)), rtol=1e-10, atol=1e-10)
    assert (d.iterations == 0).all() and d.converged.all()


def test_logit_mean_stays_finite_for_extreme_gaps():
    g = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0], [1000.0, -1000.0], [1000.0, 990.0]])
    d = solve_free_gap(g, criterion="logit-mean")
    assert torch.isfinite(d.free).all()
    assert d.free[0] == 1000.0 and d.free[1] == -1000.0
    assert abs(d.free[2].item()) < 1e-12  # p = 1/2 exactly
    # logit((s(1000) + s(990)) / 2) = log 2 - log(e^-1000 + e^-990) up to e^-990
    assert abs(d.free[3].item() - (math.log(2) + 990 - math.log1p(math.exp(-10)))) < 1e-9


# -----------------------------------------------------------------------------
# METHOD.md properties


@settings(max_examples=100, deadline=None)
@given(problems())
def test_root_and_bracket(problem: tuple[Tensor, Tensor]):
    g, w = problem
    c = solve_free_gap(g, w).free.item()
    active = g[0][w[0] > 0].numpy()
    assert active.min() <= c <= active.max()
    # the residual changes sign across c (it may be a float64 zero on both sides)
    gn, wn = g[0].numpy(), w[0].numpy()
    delta = 2 * TOL + 4 * np.spacing(abs(c))
    assert naive_residual(gn, wn, c - delta) >= -EPS
    assert naive_residual(gn, wn, c + delta) <= EPS


@settings(max_examples=100, deadline=None)
@given(problems(), st.sampled_from(["balanced", "logit-mean"]))
def test_antisymmetry(problem: tuple[Tensor, Tensor], criterion: str):
    g, w = problem
    c = solve_free_gap(g, w, criterion=criterion).free
    c_swapped = solve_free_gap(-g, w, criterion=criterion).free
    assert abs(c_swapped.item() + c.item()) <= 2 * TOL + 1e-12


@settings(max_examples=100, deadline=None)
@given(problems(), st.floats(-500, 500))
def test_shift_equivariance(problem: tuple[Tensor, Tensor], shift: float):
    g, w = problem
    c = solve_free_gap(g, w).free.item()
    c_shifted = solve_free_gap(g + shift, w).free.item()
    # c is 1-Lipschitz in the gaps, so rounding of g + shift moves it by at most one ulp
    assert abs(c_shifted - (c + shift)) <= 2 * TOL + 2 * np.spacing(1500.0)


@settings(max_examples=100, deadline=None)
@given(
    center=st.floats(-100, 100),
    offsets=st.lists(st.floats(0, 900), min_size=1, max_size=4),
    pair_weights=st.lists(st.floats(0.01, 10), min_size=4, max_size=4),
    middle_weight=st.floats(0, 5),
    order_seed=st.integers(0, 1000),
)
def test_recovery_of_symmetric_prompt_effects(
    center: float,
    offsets: list[float],
    pair_weights: list[float],
    middle_weight: float,
    order_seed: int,
):
    h = np.array([*offsets, *(-x for x in offsets), 0.0])  # symmetric about 0 ...
    v = pair_weights[: len(offsets)]
    w = np.array([*v, *v, middle_weight])  # ... under the weights
    perm = np.random.default_rng(order_seed).permutation(len(h))
    g = torch.from_numpy(center + h[perm])[None]
    d = solve_free_gap(g, torch.from_numpy(w[perm])[None])
    assert abs(d.free.item() - center) <= TOL + 2 * np.spacing(1000.0)


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(0, 5), st.floats(0, 50))
def test_monotone_and_nonexpansive_in_gaps(problem: tuple[Tensor, Tensor], j: int, bump: float):
    g, w = problem
    g2 = g.clone()
    g2[0, j % g.shape[1]] += bump
    c, c2 = solve_free_gap(g, w).free.item(), solve_free_gap(g2, w).free.item()
    assert c - 2 * TOL <= c2 <= c + bump + 2 * TOL + 2 * np.spacing(1100.0)


# -----------------------------------------------------------------------------
# edge cases: K = 1, equal gaps, zero weights, dtypes, validation


def test_single_prompt_and_equal_gaps_return_the_gap_exactly():
    d = solve_free_gap(torch.tensor([[3.5], [-1000.0]]))
    assert d.free.tolist() == [3.5, -1000.0] and (d.iterations == 0).all()
    d = solve_free_gap(torch.full((2, 5), -7.25), torch.rand(2, 5) + 0.1)
    assert (d.free == -7.25).all() and (d.related == 0).all() and d.converged.all()


def test_zero_weight_prompts_have_no_influence():
    g, w = random_problem(11, 64, 8, 50.0, "continuous")
    ref = solve_free_gap(g, w)
    junk = torch.tensor([float("nan"), 1e6, -1e6, 0.0]).repeat(2)  # (8,)
    d = solve_free_gap(torch.where(w > 0, g, junk), w)
    assert torch.equal(d.free, ref.free) and torch.equal(d.iterations, ref.iterations)
    # and the same as solving the problem without those columns at all
    for i in range(8):
        keep = w[i] > 0
        c = solve_free_gap(g[i, keep][None], w[i, keep][None]).free.item()
        assert abs(c - ref.free[i].item()) <= 2 * TOL


def test_all_zero_weights_fall_back_to_uniform_and_are_flagged():
    g = torch.tensor([[1.0, 2.0, 6.0], [1.0, 2.0, 6.0]])
    w = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]])
    d = solve_free_gap(g, w)
    assert d.uniform_fallback.tolist() == [True, False]
    assert d.free[0] == solve_free_gap(g[:1]).free[0]
    assert d.free[1] == 1.0


def test_float32_inputs_are_solved_in_float64():
    g32 = torch.randn(50, 5, generator=torch.Generator().manual_seed(0))
    d32, d64 = solve_free_gap(g32), solve_free_gap(g32.double())
    assert d32.free.dtype == torch.float64 and torch.equal(d32.free, d64.free)
    assert torch.equal(d32.own, g32[:, 0].double())
    assert torch.equal(d32.related, d32.own - d32.free)


def test_max_iter_limits_work_and_reports_non_convergence():
    g, w = random_problem(5, 100, 6, 300.0, "integer")
    d = solve_free_gap(g, w, max_iter=1)
    assert (d.iterations <= 1).all() and not d.converged.all()


@pytest.mark.parametrize(
    ("gaps", "weights", "message"),
    [
        ([[1.0, 2.0]], [[1.0, -1.0]], ">= 0"),
        ([[1.0, 2.0]], [[1.0, float("inf")]], "finite"),
        ([[1.0, float("nan")]], [[1.0, 1.0]], "finite wherever"),
        ([[1.0, 2.0]], [[1.0, 1.0, 1.0]], "must match"),
    ],
)
def test_invalid_inputs_are_rejected(gaps, weights, message: str):
    with pytest.raises(ValueError, match=message):
        solve_free_gap(torch.tensor(gaps), torch.tensor(weights))


def test_unknown_criterion_is_rejected():
    with pytest.raises(ValueError, match="criterion"):
        solve_free_gap(torch.zeros(1, 2), criterion="median")  # type: ignore[arg-type]


# -----------------------------------------------------------------------------
# the fast path: certified Newton stop, uniform detection, many rows at once


@settings(max_examples=100, deadline=None)
@given(
    g=st.lists(st.floats(-20, 20), min_size=2, max_size=8),
    w_seed=st.integers(0, 2**32 - 1),
    offset=st.floats(-3, 3),
)
def test_newton_step_error_bound_of_the_stopping_rule(g: list[float], w_seed: int, offset: float):
    """The docstring's bound that lets a row stop after one Newton step of size d < 1:
    the root lies between log(1 + d) and -log(1 - d) from c, in the step's direction."""
    gn = np.array(g)
    if gn.max() - gn.min() < 1e-6:
        return
    wn = np.random.default_rng(w_seed).uniform(0.1, 3.0, gn.size)
    root = brentq_float64(gn, wn)
    c = root + offset
    s = expit(gn - c)
    f, df = float(wn @ s - wn.sum() / 2), float(-(wn @ (s * (1 - s))))
    d = -f / df
    if not abs(d) < 0.9:
        return
    dist, slack = (root - c) * np.sign(d), 1e-10  # float64 residual + brentq tolerance
    assert math.log1p(abs(d)) - slack <= dist <= -math.log1p(-abs(d)) + slack


def test_equal_weights_take_the_uniform_path_exactly():
    g, _ = random_problem(2, 200, 9, 3.0, "continuous")
    scale = torch.rand(200, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = scale.expand(200, 9).clone()  # equal within each row, different across rows
    w[:5] = 0.0  # all-zero rows fall back to uniform
    d, ref = solve_free_gap(g, w), solve_free_gap(g)
    assert torch.equal(d.free, ref.free) and torch.equal(d.iterations, ref.iterations)
    assert d.uniform_fallback.tolist() == [True] * 5 + [False] * 195


def test_many_rows_of_mixed_difficulty_match_brentq():
    """One call mixing typical rows (scale 1-5, weighted and not) with rows whose gaps are
    hundreds apart, as a real batch does: each kind must reach its own reference root."""
    typical, w = random_problem(21, 2000, 17, 3.0, "continuous")
    w[:1000] = 1.0  # half uniform, half weighted
    extreme, w_ext = random_problem(22, 40, 17, 300.0, "continuous")
    g = torch.cat([typical, extreme])
    d = solve_free_gap(g, torch.cat([w, w_ext]))
    assert d.converged.all()
    refs = np.array([brentq_float64(typical[i].numpy(), w[i].numpy()) for i in range(2000)])
    np.testing.assert_allclose(d.free[:2000].numpy(), refs, rtol=0, atol=TOL)
    exact = [brentq_exact(extreme[i].numpy(), w_ext[i].numpy()) for i in range(40)]
    np.testing.assert_allclose(d.free[2000:].numpy(), exact, rtol=0, atol=TOL + 1e-10)
    # typical rows: the float32 start leaves one certified float64 step for nearly all
    assert (d.iterations[:2000] == 1).float().mean() >= 0.95
    # far-apart rows restart from the weighted median instead of bisecting from an end
    assert d.iterations[2000:].max() <= 10


@pytest.mark.parametrize("criterion", ["balanced", "logit-mean"])
def test_no_rows(criterion: str):
    d = solve_free_gap(torch.zeros(0, 4), torch.zeros(0, 4), criterion=criterion)
    assert d.free.shape == (0,) and d.iterations.shape == (0,)


# -----------------------------------------------------------------------------
# blocks: the solver runs BLOCK_ELEMENTS numbers at a time; any block size gives the same roots


def mixed_batch(seed: int, k: int) -> tuple[Tensor, Tensor]:
    """Rows of every kind in one batch, in an order that puts each kind in several blocks:
    typical and far-apart gaps, equal and unequal weights, zero weights over NaN padding,
    all-zero rows, and weight scales that need (and do not need) rescaling."""
    typical, w_typ = random_problem(seed, 60, k, 3.0, "continuous")
    extreme, w_ext = random_problem(seed + 1, 20, k, 300.0, "integer")
    g = torch.cat([typical, extreme])
    w = torch.cat([w_typ, w_ext])
    w[::7] = 0.25  # equal within the row
    w[3::11] = 0.0  # all zero: uniform fallback
    w[5::13] *= 1e-30  # below the scale-free range: rescaled
    w[6::13] *= 1e30  # above it
    padding = (w == 0) & (w.amax(1, keepdim=True) > 0)  # all-zero rows use every gap
    g = torch.where(padding, torch.nan, g)
    order = torch.randperm(g.shape[0], generator=torch.Generator().manual_seed(seed))
    return g[order], w[order]


@pytest.mark.parametrize("k", [1, 2, 17])
@pytest.mark.parametrize("block", [1, 40, 1000])
def test_blocks_agree_with_one_block(monkeypatch: pytest.MonkeyPatch, k: int, block: int):
    g, w = mixed_batch(31 + k, k)
    whole = solve_free_gap(g, w)
    logit_whole = solve_free_gap(g, w, criterion="logit-mean")
    monkeypatch.setattr(solver, "BLOCK_ELEMENTS", block)  # 1: a row or two per block
    d = solve_free_gap(g, w)
    assert d.converged.all() and whole.converged.all()
    np.testing.assert_allclose(d.free.numpy(), whole.free.numpy(), rtol=0, atol=2 * TOL)
    assert torch.equal(d.uniform_fallback, whole.uniform_fallback)
    assert d.uniform_fallback.sum() == (w.amax(1) == 0).sum()
    logit = solve_free_gap(g, w, criterion="logit-mean")
    np.testing.assert_allclose(logit.free.numpy(), logit_whole.free.numpy(), rtol=1e-12, atol=1e-12)
    # and each row against the scalar reference
    for i in range(g.shape[0]):
        wi = w[i] if w[i].amax() > 0 else torch.ones_like(w[i])
        ref = brentq_exact(torch.nan_to_num(g[i]).numpy(), wi.numpy())
        assert abs(d.free[i].item() - ref) <= TOL + 1e-10, (i, g[i], w[i])


def test_uniform_detection_reads_every_block(monkeypatch: pytest.MonkeyPatch):
    """Equal weights in the first blocks and unequal ones only in the last: weighted path."""
    monkeypatch.setattr(solver, "BLOCK_ELEMENTS", 20)
    g, _ = random_problem(41, 50, 5, 3.0, "continuous")
    w = torch.full_like(g, 0.2)
    w[-1] = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2])
    d = solve_free_gap(g, w)
    assert abs(d.free[-1].item() - brentq_float64(g[-1].numpy(), w[-1].numpy())) <= TOL
    np.testing.assert_allclose(d.free[:-1].numpy(), solve_free_gap(g[:-1]).free.numpy(), atol=TOL)
    w[-1] = 0.7  # now equal everywhere: exactly the unweighted solve
    assert torch.equal(solve_free_gap(g, w).free, solve_free_gap(g).free)


@pytest.mark.parametrize("criterion", ["balanced", "logit-mean"])
def test_invalid_input_in_a_later_block_is_rejected(
    monkeypatch: pytest.MonkeyPatch, criterion: str
):
    monkeypatch.setattr(solver, "BLOCK_ELEMENTS", 8)
    g, w = random_problem(43, 40, 4, 3.0, "continuous")
    w_bad = w.clone()
    w_bad[-1, 1] = -1.0
    with pytest.raises(ValueError, match=">= 0"):
        solve_free_gap(g, w_bad, criterion=criterion)
    g_bad = g.clone()
    g_bad[-1, 0], w[-1, 0] = torch.inf, 1.0
    with pytest.raises(ValueError, match="finite wherever"):
        solve_free_gap(g_bad, w, criterion=criterion)


def test_weight_scale_does_not_change_the_root():
    """Rows inside the scale-free range skip the power-of-two rescaling, rows outside get it:
    both give the root of the same problem."""
    g, w = random_problem(47, 300, 9, 5.0, "continuous")
    ref = solve_free_gap(g, w).free
    for factor in (2.0**-19, 2.0**19, 1e-30, 1e30, 2.0**-1000):
        np.testing.assert_allclose(solve_free_gap(g, w * factor).free, ref, rtol=0, atol=2 * TOL)
