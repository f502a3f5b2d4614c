"""The prompt-free gap estimator: split each pair's reward gap into free + related parts.

Math (docs/METHOD.md, "Estimating the prompt-free gap"). Pair i is scored under K prompts
(column 0 = its own prompt), giving gaps g_k = r(x_k, y_w) - r(x_k, y_l) and weights
w_k >= 0 approximating P(x_k | y_w, y_l). The prompt-free gap is the c that makes the
weighted preference left over after removing c a coin flip:

    balanced:    sum_k w_k sigmoid(g_k - c) = 1/2 * sum_k w_k
    logit-mean:  c = logit(sum_k w_k sigmoid(g_k) / sum_k w_k)

and own = g_0, related = own - free.

Weights. Only the prompts with w_k > 0 count: they alone define the bracket and the
sums, and their gaps must be finite (other gaps may be anything, even NaN: padding).
Both criteria are invariant to the scale of w, so no sum-to-one is needed; a row whose
weights are all zero has no information about P(x | y_w, y_l) and falls back to uniform
weights over all K prompts, flagged in `Decomposition.uniform_fallback`.

Numerics of the balanced root. f(c) = sum_k w_k (sigmoid(g_k - c) - 1/2) is strictly
decreasing with its root in [min g_k, max g_k]. Written naively it cancels badly once the
gaps are far apart: each term is +-w_k/2 plus an exponentially small tail, and the root
is decided by the tails. With x_k = g_k - c and tail e_k = sigmoid(-|x_k|) <= 1/2:

    f(c) = P - Q,   P = T_below + max(d, 0) / 2,   Q = T_above + max(-d, 0) / 2
    d = W_above - W_below,  W_side = sum_{k on side} w_k,  T_side = sum_{k on side} w_k e_k

(above: x_k > 0). P and Q are sums of positive terms, so log P and log Q are exact by
log-sum-exp even for tails of e^-1000, and phi = log P - log Q has the sign and the root
of f, with slope -(|P'| / P + Q' / Q) that never underflows. d must then carry no rounding
error of its own: weights are rescaled by a power of two (exact), sorted, and each side is
summed left to right with Neumaier compensation, so equal weights, 0/1 masks and weights
that pair up exactly across c give d == 0 exactly.

Most rows never need that care: where |f'| >= 1e-3 sum_k w_k, plain float64
f = sum_k w_k tanh(x_k / 2) / 2 has rounding error ~K eps sum_k w_k, which moves the root
by ~K eps 1e3 << tol, so each iteration evaluates it first and the log form only on rows
with a flat f (gaps far apart, or all prompts far from the iterate).

Newton steps on phi (or f) inside a bracket kept by its sign (rtsafe, Numerical Recipes 9.4);
a step that leaves the bracket, is not finite or shrinks too slowly is replaced by
bisection, so every row converges in at most ~log2(width / tol) iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Criterion = Literal["balanced", "logit-mean"]
FLAT_SLOPE = 1e-3  # |f'| / sum w below which plain float64 f is not trusted (docstring)


@dataclass(frozen=True)
class Decomposition:
    """Per-pair result of `solve_free_gap`; all float tensors are float64."""

    free: Tensor  # (N,) prompt-free gap c
    own: Tensor  # (N,) gap under the pair's own prompt, gaps[:, 0]
    related: Tensor  # (N,) own - free
    iterations: Tensor  # (N,) int64, solver iterations used (0 for closed forms)
    converged: Tensor  # (N,) bool, |free - root| <= tol reached within max_iter
    uniform_fallback: Tensor  # (N,) bool, all weights were zero so uniform ones were used


# -----------------------------------------------------------------------------
# input checks: one place that decides which prompts count


def _prepare(gaps: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """float64 gaps, exactly rescaled weights, prompts sorted by weight, unweighted gaps -> 0."""
    if gaps.ndim != 2 or gaps.shape[1] < 1:
        raise ValueError(f"gaps must be (N, K) with K >= 1, got {tuple(gaps.shape)}")
    g = gaps.to(torch.float64)  # (N, K)
    w = torch.ones_like(g) if weights is None else weights.to(torch.float64)  # (N, K)
    if w.shape != g.shape:
        raise ValueError(f"weights {tuple(w.shape)} must match gaps {tuple(g.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    fallback = (w == 0).all(dim=1)  # (N,)
    w = torch.where(fallback[:, None], torch.ones_like(w), w)
    w = torch.ldexp(w, -torch.frexp(w.amax(dim=1, keepdim=True)).exponent)  # max in [1/2, 1)
    w, order = w.sort(dim=1, stable=True)  # (N, K) ascending: a fixed summation order
    g = g.gather(1, order)  # (N, K) the criteria do not depend on the order of prompts
    active = w > 0  # (N, K)
    if not torch.isfinite(g[active]).all():
        raise ValueError("gaps must be finite wherever the weight is > 0")
    g = torch.where(active, g, torch.zeros_like(g))  # padding cannot leak NaN into sums
    return g, w, fallback


def _log_sigmoid(x: Tensor) -> Tensor:
    """log sigmoid(x), exact to float64 for any x.

    Not F.logsigmoid: in torch 2.13 on CPU it costs ~15 ms per call even on 6 numbers. The
    softplus threshold of 40 is where log1p(e^-x) drops below float64 resolution.
    """
    return -F.softplus(-x, threshold=40.0)


# -----------------------------------------------------------------------------
# logit-mean: closed form, log-sum-exp so it stays finite for |gap| ~ 1e3


def _logit_mean(g: Tensor, logw: Tensor) -> Tensor:
    """logit(p) = log p - log(1 - p) with p = sum w s(g) / sum w; the sum w cancels."""
    log_p = torch.logsumexp(logw + _log_sigmoid(g), dim=1)  # (N,)
    log_q = torch.logsumexp(logw + _log_sigmoid(-g), dim=1)  # (N,)
    return log_p - log_q


# -----------------------------------------------------------------------------
# balanced: residual with exact sign, then safeguarded Newton on all rows at once


def _side_sums(v: Tensor) -> Tensor:
    """(S, n, K) -> (2, S, n): left-to-right sums over K and their Neumaier compensations.

    Adding a zero is exact, so two sides holding the same weights in the same (sorted) order
    get bit-identical sums, and the compensation keeps unequal sides exact to ~eps^2.
    """
    v = v.movedim(-1, 0).contiguous()  # (K, S, n) so each step reads contiguous memory
    total = torch.zeros_like(v[0])  # (S, n)
    error = torch.zeros_like(total)  # (S, n)
    for x in v:
        t = total + x
        error += torch.where(total.abs() >= x.abs(), (total - t) + x, (x - t) + total)
        total = t
    return torch.stack([total, error])  # (2, S, n)


def _lse(v: Tensor, mask: Tensor) -> Tensor:
    """log sum over the masked entries of exp(v), (n, K) -> (n,); -inf where none."""
    return torch.logsumexp(torch.where(mask, v, torch.full_like(v, -torch.inf)), dim=1)


def _plain_residual(g: Tensor, w: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """(f, f') at c in plain float64: 9 passes over (n, K) instead of ~30."""
    t = torch.tanh(0.5 * (g - c[:, None]))  # (n, K) 2 s - 1, exact near 0 unlike s - 1/2
    f = 0.5 * (w * t).sum(1)  # (n,)
    df = -0.25 * (w * (1 - t * t)).sum(1)  # (n,) s (1 - s) = (1 - t^2) / 4
    return f, df


def _residual(g: Tensor, w: Tensor, logw: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """(phi, Newton step) at c; phi = log P - log Q has the sign and root of f."""
    x = g - c[:, None]  # (n, K)
    above, below = (x > 0) & (w > 0), (x < 0) & (w > 0)
    sums = _side_sums(torch.stack([w * above, w * below]))  # (2, 2, n)
    d = (sums[0, 0] - sums[0, 1]) + (sums[1, 0] - sums[1, 1])  # (n,) W_above - W_below
    log_tail = logw + _log_sigmoid(-x.abs())  # (n, K) log w e
    log_dtail = log_tail + _log_sigmoid(x.abs())  # (n, K) log w e (1 - e) = log |d(w e)/dc|
    log_p = torch.logaddexp(_lse(log_tail, below), (0.5 * d.clamp(min=0)).log())  # (n,)
    log_q = torch.logaddexp(_lse(log_tail, above), (-0.5 * d.clamp(max=0)).log())  # (n,)
    log_dp, log_dq = _lse(log_dtail, below), _lse(log_dtail, above)  # (n,) log |P'|, log Q'
    # phi jumps where a gap changes sides (the bulk d/2 moves from P to Q) but is smooth
    # where d == 0, so Newton steps on phi there and on the analytic f elsewhere; both
    # steps are formed from logs, so e^-1000 tails do not underflow them
    phi = log_p - log_q
    step_phi = phi / ((log_dp - log_p).exp() + (log_dq - log_q).exp())
    log_df = torch.logaddexp(log_dp, log_dq)  # (n,) log |f'|
    step_f = (log_p - log_df).exp() - (log_q - log_df).exp()
    return phi, torch.where(d == 0, step_phi, step_f)


def _balanced(
    g: Tensor, w: Tensor, logw: Tensor, start: Tensor, tol: float, max_iter: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Root c of f per row, with iterations used and converged flags."""
    n = g.shape[0]
    active = w > 0  # (N, K)
    lo = torch.where(active, g, torch.full_like(g, torch.inf)).amin(1)  # (N,) f(lo) >= 0
    hi = torch.where(active, g, torch.full_like(g, -torch.inf)).amax(1)  # (N,) f(hi) <= 0
    w_total = w.sum(1)  # (N,)
    c = start.clamp(lo, hi)  # (N,)
    step_prev = hi - lo  # (N,) rtsafe: demand that Newton at least halves the step before last
    iterations = torch.zeros(n, dtype=torch.int64, device=g.device)
    done = hi - lo <= 2 * tol  # (N,) includes K = 1 and all-equal gaps
    c = torch.where(done, 0.5 * (lo + hi), c)
    for _ in range(max_iter):
        idx = (~done).nonzero().squeeze(1)  # (n,) rows still running
        if idx.numel() == 0:
            break
        ci, loi, hii = c[idx], lo[idx], hi[idx]
        # P and Q need a prompt strictly on each side: keep the iterate off the bracket ends
        ci = torch.where((ci <= loi) | (ci >= hii), 0.5 * (loi + hii), ci)
        val, df = _plain_residual(g[idx], w[idx], ci)
        newton_step = -val / df  # (n,) inf/nan when f' underflowed to 0
        flat = (df.abs() < FLAT_SLOPE * w_total[idx]).nonzero().squeeze(1)  # (r,)
        if flat.numel():
            rows = idx[flat]
            val[flat], newton_step[flat] = _residual(g[rows], w[rows], logw[rows], ci[flat])
        loi = torch.where(val > 0, ci, loi)  # root is above ci
        hii = torch.where(val < 0, ci, hii)  # root is below ci
        newton = ci + newton_step  # (n,)
        step = newton_step.abs()
        inside = torch.isfinite(newton) & (newton >= loi) & (newton <= hii)
        # converged: exact zero, a Newton step below tol (quadratic convergence makes the
        # last step an upper bound on the error), or a bracket narrower than 2 tol
        newton_done = inside & (step <= tol)
        narrow = hii - loi <= 2 * tol
        use_newton = inside & (newton > loi) & (newton < hii) & (2 * step <= step_prev[idx])
        step_prev[idx] = torch.where(use_newton, step, 0.5 * (hii - loi))
        c_next = torch.where(use_newton & ~narrow, newton, 0.5 * (loi + hii))
        c_next = torch.where(newton_done, newton, c_next)
        c_next = torch.where(val == 0, ci, c_next)
        finished = (val == 0) | newton_done | narrow
        c[idx], lo[idx], hi[idx] = c_next, loi, hii
        iterations[idx] += 1
        done[idx] = finished
    return c, iterations, done


# -----------------------------------------------------------------------------
# public entry point


def solve_free_gap(
    gaps: Tensor,
    weights: Tensor | None = None,
    *,
    criterion: Criterion = "balanced",
    tol: float = 1e-8,
    max_iter: int = 100,
) -> Decomposition:
    """Prompt-free gap of every pair at once.

    gaps: (N, K), column 0 under the pair's own prompt. weights: (N, K) >= 0, any scale,
    None = uniform. Computation is float64 whatever the input dtype, because tol = 1e-8
    absolute on gaps of size ~1e3 is beyond float32.
    """
    if criterion not in ("balanced", "logit-mean"):
        raise ValueError(f"unknown criterion {criterion!r}")
    g, w, fallback = _prepare(gaps, weights)
    n = g.shape[0]
    logw = w.log()  # (N, K), -inf on zero-weight prompts
    start = _logit_mean(g, logw)  # (N,) within [min g, max g]: a quasi-arithmetic mean
    if criterion == "logit-mean":
        free = start
        iterations = torch.zeros(n, dtype=torch.int64, device=g.device)
        converged = torch.isfinite(free)
    else:
        free, iterations, converged = _balanced(g, w, logw, start, tol, max_iter)
    own = gaps[:, 0].to(torch.float64)
    return Decomposition(
        free=free,
        own=own,
        related=own - free,
        iterations=iterations,
        converged=converged,
        uniform_fallback=fallback,
    )
