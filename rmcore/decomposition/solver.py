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
weights over all K prompts, flagged in `Decomposition.uniform_fallback`. Rows whose
weights are all equal (the `uniform` scoring setting) skip every product with w.

Numerics of the balanced root. f(c) = sum_k w_k (sigmoid(g_k - c) - 1/2) is strictly
decreasing with its root in [min g_k, max g_k]. Written naively it cancels badly once the
gaps are far apart: each term is +-w_k/2 plus an exponentially small tail, and the root
is decided by the tails. With x_k = g_k - c and tail e_k = sigmoid(-|x_k|) <= 1/2:

    f(c) = P - Q,   P = T_below + max(d, 0) / 2,   Q = T_above + max(-d, 0) / 2
    d = W_above - W_below,  W_side = sum_{k on side} w_k,  T_side = sum_{k on side} w_k e_k

(above: x_k > 0). P and Q are sums of positive terms, so log P and log Q are exact by
log-sum-exp even for tails of e^-1000, and phi = log P - log Q has the sign and the root
of f, with slope -(|P'| / P + Q' / Q) that never underflows. d must then carry no rounding
error of its own: a plain float64 sum is exact to K eps sum w, and the rare rows whose
sides tie that closely (a weight of 1e-85 beside weights of 1 can still decide the root)
are summed exactly by math.fsum, so weights that pair up exactly across c give d == 0.

Most rows never need that care: where |f'| >= 1e-3 sum_k w_k, plain float64
f = sum_k w_k s_k - sum_k w_k / 2 and f' = sum_k w_k s_k^2 - sum_k w_k s_k (s_k the
sigmoids) have rounding error ~K eps sum_k w_k, which moves the root by ~K eps 1e3 << tol,
so each iteration evaluates them first and the log form only on rows with a flat f (gaps
far apart, or all prompts far from the iterate).

Newton steps on phi (or f) inside a bracket kept by its sign (rtsafe, Numerical Recipes 9.4);
a step that leaves the bracket, is not finite or shrinks too slowly is replaced by
bisection, so every row converges in at most ~log2(width / tol) iterations.

When to stop. |f''| = |sum_k w_k s_k (1 - s_k)(1 - 2 s_k)| <= |f'|, so log |f'| is
1-Lipschitz in c. Integrating f' from c to the root then puts the root within
[log(1 + d), -log(1 - d)] of c in the direction of a Newton step of size d < 1, so the
new iterate c + d is within -log(1 - d) - d ~ d^2 / 2 of the root: a step below ~sqrt(tol)
finishes a row without a confirming iteration. Steps on phi (flat rows) stop at d <= tol.

Speed. The safeguarded float64 solver starts from a few plain Newton steps in float32 on
every row, from the weighted mean of the gaps: it costs half the memory traffic, only has
to land near the root (any start in the bracket gives the same answer), and leaves most
rows one float64 iteration from done. Rows leave the working set as they finish, so late
iterations touch only the few slow rows.

Every row's work is independent of the others, so the start and the first float64 step run
on a block of BLOCK_ELEMENTS numbers (rows x K) per thread at a time: a block's ~30 passes
then hit the cache instead of main memory (at N = 1e5, K = 17 the gaps and weights alone
are 27 MB), with scratch allocated once. Validation reads the weights block by block too
and stops at the first block with unequal weights; the rows a block does not finish are
solved by `_rtsafe` all together, so its per-iteration overhead is paid once. Weights whose
row maxima are near 1 are used in place, not rescaled (`_rows`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Criterion = Literal["balanced", "logit-mean"]
EPS = torch.finfo(torch.float64).eps
FLAT_SLOPE = 1e-3  # |f'| / sum w below which plain float64 f is not trusted (docstring)
START_STEPS = 3  # float32 Newton steps that pick the float64 solver's start
BLOCK_ELEMENTS = 1 << 18  # rows x K solved at a time, so that a block stays in cache
# blocks whose row maxima all lie in [SCALE_FREE, 1 / SCALE_FREE] skip the rescaling copy
SCALE_FREE = 2.0**-20
TINY_SUM = 1e-290  # logit-mean sums below this lose precision to subnormals: redo in logs


@dataclass(frozen=True)
class Decomposition:
    """Per-pair result of `solve_free_gap`; all float tensors are float64."""

    free: Tensor  # (N,) prompt-free gap c
    own: Tensor  # (N,) gap under the pair's own prompt, gaps[:, 0]
    related: Tensor  # (N,) own - free
    iterations: Tensor  # (N,) int64, float64 solver iterations (0 for closed forms)
    converged: Tensor  # (N,) bool, |free - root| <= tol reached within max_iter
    uniform_fallback: Tensor  # (N,) bool, all weights were zero so uniform ones were used


# -----------------------------------------------------------------------------
# input checks: one place that decides which prompts count


def _block_rows(k: int) -> int:
    """Rows per block: BLOCK_ELEMENTS numbers per torch thread (each thread's share of a
    block stays in its cache, and fewer blocks mean fewer parallel regions), at least one."""
    return max(1, BLOCK_ELEMENTS * torch.get_num_threads() // k)


def _check_weights(w_min: Tensor, w_max: Tensor) -> None:
    if w_min.numel() and not (w_min.min() >= 0 and w_max.max() < torch.inf):  # NaN fails both
        raise ValueError("weights must be finite and >= 0")


def _validate(gaps: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(g, w, fallback): float64 views of the inputs (copies only for other dtypes).

    w is None when every row's weights are equal, all-zero rows included: the uniform path,
    whose all-zero rows `fallback` (N,) then flags. Deciding that reads the weights a block
    at a time and stops at the first block with unequal weights (there `fallback` is None:
    `_rows` checks, scales and flags each block as it solves it)."""
    if gaps.ndim != 2 or gaps.shape[1] < 1:
        raise ValueError(f"gaps must be (N, K) with K >= 1, got {tuple(gaps.shape)}")
    g = gaps.to(torch.float64)  # (N, K)
    n, k = g.shape
    if weights is None:
        return g, None, torch.zeros(n, dtype=torch.bool, device=g.device)
    w = weights.to(torch.float64)  # (N, K)
    if w.shape != g.shape:
        raise ValueError(f"weights {tuple(w.shape)} must match gaps {tuple(g.shape)}")
    row_max = []
    for first in range(0, n, _block_rows(k)):
        wb = w[first : first + _block_rows(k)]  # (m, K)
        w_min, w_max = wb.amin(1), wb.amax(1)  # (m,) NaN propagates into both
        _check_weights(w_min, w_max)
        if not torch.equal(w_min, w_max):
            return g, w, None
        row_max.append(w_max)
    fallback = torch.cat(row_max) == 0 if row_max else torch.zeros(0, dtype=torch.bool)
    return g, None, fallback


def _rows(
    g: Tensor, w: Tensor | None, rows: slice | Tensor, out: Tensor | None = None
) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor | None]:
    """(g, w, lo, hi, fallback) of some rows, ready to solve.

    Weights are checked and scaled by a power of two (exact) so each row's max is in
    [1/2, 1), unless every row's max is already within 2^+-20 of 1: the root is invariant
    to the scale and so is every rounding short of the subnormal range, so the copy is
    skipped where it cannot matter. All-zero rows (flagged in `fallback`) get ones.
    Unweighted gaps are set to 0 so padding cannot leak NaN into sums; [lo, hi] brackets
    the weighted gaps. `out` (>= 2, n, K) float64 scratch receives the scaled w and the
    masked g; the returned w may be a view of the input, never written."""
    gr = g[rows]  # (n, K)
    if w is None:
        return gr, None, gr.amin(1), gr.amax(1), None  # NaN propagates into the caller's check
    wr = w[rows]  # (n, K)
    n = gr.shape[0]
    w_min, w_max = wr.amin(1), wr.amax(1)  # (n,)
    _check_weights(w_min, w_max)
    fallback = w_max == 0  # (n,)
    any_fallback = bool(fallback.any())
    out = torch.empty((2, *gr.shape), dtype=g.dtype, device=g.device) if out is None else out
    if any_fallback or not (w_max.min() >= SCALE_FREE and w_max.max() <= 1 / SCALE_FREE):
        top = torch.where(fallback, 1.0, w_max)  # (n,)
        scale = torch.ldexp(torch.ones_like(top), -torch.frexp(top).exponent)  # (n,)
        wr = torch.mul(wr, scale[:, None], out=out[0, :n])  # (n, K)
        wr[fallback] = 1.0
    if bool(((w_min > 0) | fallback).all()):  # every prompt counts
        return gr, wr, gr.amin(1), gr.amax(1), fallback
    active = wr > 0  # (n, K)
    gr = torch.where(active, gr, torch.zeros((), dtype=g.dtype), out=out[1, :n])
    lo = torch.where(active, gr, torch.inf).amin(1)  # (n,)
    hi = torch.where(active, gr, -torch.inf).amax(1)  # (n,)
    return gr, wr, lo, hi, fallback


def _check_bracket(width: Tensor) -> None:
    if not torch.isfinite(width).all():  # an infinite or NaN bracket end
        raise ValueError("gaps must be finite wherever the weight is > 0")


def _weighted_sum(v: Tensor, w: Tensor | None) -> Tensor:
    """(n, K) -> (n,) sum_k w_k v_k."""
    return v.sum(1) if w is None else (w * v).sum(1)


def _log_sigmoid(x: Tensor) -> Tensor:
    """log sigmoid(x), exact to float64 for any x.

    Not F.logsigmoid: in torch 2.13 on CPU it costs ~15 ms per call even on 6 numbers. The
    softplus threshold of 40 is where log1p(e^-x) drops below float64 resolution.
    """
    return -F.softplus(-x, threshold=40.0)


# -----------------------------------------------------------------------------
# logit-mean: closed form, log-sum-exp only for the rows whose sums underflow


def _logit_mean(g: Tensor, w: Tensor | None) -> Tensor:
    """logit(p) = log p - log(1 - p) with p = sum w s(g) / sum w; the sum w cancels.

    1 - p is summed from s(-g), not subtracted, so both logs keep full relative precision
    until a sum underflows (gaps beyond ~700); those rows are redone in log space."""
    p = _weighted_sum(torch.sigmoid(g), w)  # (N,)
    q = _weighted_sum(torch.sigmoid(-g), w)  # (N,)
    out = p.log() - q.log()
    rows = ((p < TINY_SUM) | (q < TINY_SUM)).nonzero().squeeze(1)  # (r,)
    if rows.numel():
        gr = g[rows]  # (r, K)
        logw = torch.zeros_like(gr) if w is None else w[rows].log()  # (r, K)
        log_p = torch.logsumexp(logw + _log_sigmoid(gr), dim=1)  # (r,)
        log_q = torch.logsumexp(logw + _log_sigmoid(-gr), dim=1)  # (r,)
        out[rows] = log_p - log_q
    return out


# -----------------------------------------------------------------------------
# balanced: plain residual on all rows, exact-sign residual on the flat ones


def _plain_residual(
    g: Tensor, w: Tensor | None, w_total: Tensor, c: Tensor, buf: Tensor
) -> tuple[Tensor, Tensor]:
    """(f, f') at c in the dtype of g: f = sum w s - sum w / 2, f' = sum w s^2 - sum w s.

    Five passes over (n, K) (six with weights), all inside the scratch `buf` (>= 1 or 2, n, K)
    so an iteration allocates no (n, K) tensor: at N = 1e5 page faults cost as much as math."""
    n = g.shape[0]
    s = torch.sub(g, c[:, None], out=buf[0, :n]).sigmoid_()  # (n, K) s_k = sigmoid(g_k - c)
    ws = s if w is None else torch.mul(w, s, out=buf[1, :n])  # (n, K) w s
    ones = s.new_ones(s.shape[1])  # (K,) a matrix-vector product sums short rows 2x faster
    sum_ws = ws @ ones  # (n,)
    sum_ws2 = ws.mul_(s) @ ones  # (n,) in place: w s^2
    return sum_ws - 0.5 * w_total, sum_ws2 - sum_ws


def _lse(v: Tensor, mask: Tensor) -> Tensor:
    """log sum over the masked entries of exp(v), (n, K) -> (n,); -inf where none."""
    return torch.logsumexp(torch.where(mask, v, torch.full_like(v, -torch.inf)), dim=1)


def _residual(g: Tensor, w: Tensor | None, c: Tensor) -> tuple[Tensor, Tensor]:
    """(phi, Newton step) at c; phi = log P - log Q has the sign and root of f."""
    counts = w is None  # unit weights: d counts prompts, exact in any order
    w = torch.ones_like(g) if w is None else w  # (n, K)
    x = g - c[:, None]  # (n, K)
    above, below = (x > 0) & (w > 0), (x < 0) & (w > 0)
    signed = w * above - w * below  # (n, K) exact: one of the two products is 0
    d = signed.sum(1)  # (n,) W_above - W_below, exact unless the two sides nearly tie
    if not counts:  # near ties are rare: sum those rows exactly (module docstring)
        tie = d.abs() <= 2 * g.shape[1] * EPS * w.sum(1)  # (n,)
        for i in tie.nonzero().squeeze(1).tolist():
            d[i] = math.fsum(signed[i].tolist())
    log_tail = w.log() + _log_sigmoid(-x.abs())  # (n, K) log w e
    log_dtail = log_tail + _log_sigmoid(x.abs())  # (n, K) log w e (1 - e) = log |d(w e)/dc|
    log_p = torch.logaddexp(_lse(log_tail, below), (0.5 * d.clamp(min=0)).log())  # (n,)
    log_q = torch.logaddexp(_lse(log_tail, above), (-0.5 * d.clamp(max=0)).log())  # (n,)
    log_dp, log_dq = _lse(log_dtail, below), _lse(log_dtail, above)  # (n,) log |P'|, log Q'
    # phi jumps where a gap changes sides (the bulk d/2 moves from P to Q) but is smooth
    # where d == 0, so Newton steps on phi there and on the analytic f elsewhere (and where
    # c sits exactly on a gap: that prompt adds 0 to f but w/4 to f'); both steps are
    # formed from logs, so e^-1000 tails do not underflow them
    phi = log_p - log_q
    step_phi = phi / ((log_dp - log_p).exp() + (log_dq - log_q).exp())
    log_df = _lse(log_dtail, w > 0)  # (n,) log |f'|, over every prompt
    step_f = (log_p - log_df).exp() - (log_q - log_df).exp()
    on_gap = ((x == 0) & (w > 0)).any(1)  # (n,)
    return phi, torch.where((d == 0) & ~on_gap, step_phi, step_f)


def _float32_start(
    g: Tensor, w: Tensor | None, w_total: Tensor, lo: Tensor, hi: Tensor, buf: Tensor
) -> Tensor:
    """(n,) plain Newton steps in float32 from the weighted mean of the gaps.

    Unsafeguarded and rounded to ~1e-6, but any start in [lo, hi] gives the same root, and
    one from here is usually a single float64 step from done (module docstring, Speed).
    `buf` (4, >= n, K) float32 scratch holds g, w and the residual's products."""
    n = g.shape[0]
    g32 = buf[0, :n].copy_(g)  # (n, K)
    w32 = None if w is None else buf[1, :n].copy_(w)  # (n, K)
    wt32, lo32, hi32 = w_total.float(), lo.float(), hi.float()  # (n,)
    ones = g32.new_ones(g32.shape[1])  # (K,)
    c = (g32 if w32 is None else torch.mul(w32, g32, out=buf[2, :n])) @ ones / wt32  # (n,)
    for _ in range(START_STEPS):
        f, df = _plain_residual(g32, w32, wt32, c, buf[2:])
        c = torch.addcdiv(c, f, df, value=-1).clamp_(lo32, hi32)  # f' = 0: to a bracket end
    c = c.double().clamp(lo, hi)  # (n,)
    return torch.where(torch.isfinite(c), c, 0.5 * (lo + hi))  # 0/0, or gaps beyond float32


def _weighted_median(g: Tensor, w: Tensor | None) -> Tensor:
    """(n,) the smallest gap with at least half of the weight at or below it."""
    g, order = g.sort(dim=1)  # (n, K)
    w = torch.ones_like(g) if w is None else w.gather(1, order)  # (n, K)
    cum = w.cumsum(1)  # (n, K)
    first = (cum < 0.5 * cum[:, -1:]).sum(1, keepdim=True)  # (n, 1)
    return g.gather(1, first).squeeze(1)


def _keep(mask: Tensor, *ts: Tensor | None) -> list[Tensor | None]:
    """Rows `mask` of each tensor (dim 0); no copy when every row is kept."""
    if mask.all():
        return list(ts)
    idx = mask.nonzero().squeeze(1)
    return [None if t is None else t.index_select(0, idx) for t in ts]


def _rtsafe(
    g: Tensor,
    w: Tensor | None,
    w_total: Tensor,
    lo: Tensor,
    hi: Tensor,
    c: Tensor,
    tol: float,
    max_iter: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Safeguarded Newton from c for rows with lo < root < hi: (root, iterations, converged).

    State lives on the working set (suffix i); a row's result is written to the (n,) outputs
    the iteration it finishes, and the row leaves the set, so late iterations are cheap."""
    n = g.shape[0]
    c, iterations = c.clone(), torch.full((n,), max_iter, dtype=torch.int64, device=g.device)
    converged = torch.zeros(n, dtype=torch.bool, device=g.device)
    idx, gi, wi, wti, ci, loi, hii = torch.arange(n, device=g.device), g, w, w_total, c, lo, hi
    # rtsafe: a Newton step must be at most half the step before last (not the last one,
    # which would bisect away good iterates whenever Newton converges only linearly)
    last = before = hii - loi  # (n,)
    buf = torch.empty((1 if w is None else 2, *g.shape), dtype=g.dtype, device=g.device)
    for it in range(1, max_iter + 1):
        if idx.numel() == 0:
            break
        # P and Q need a prompt strictly on each side: keep the iterate off the bracket ends
        ci = torch.where((ci <= loi) | (ci >= hii), 0.5 * (loi + hii), ci)
        val, df = _plain_residual(gi, wi, wti, ci, buf)
        step = -val / df  # (n,) inf/nan when f' underflowed to 0
        flat = df.abs() < FLAT_SLOPE * wti  # (n,)
        if flat.any():
            rows = flat.nonzero().squeeze(1)  # (r,)
            val[rows], step[rows] = _residual(gi[rows], None if wi is None else wi[rows], ci[rows])
        loi = torch.where(val > 0, ci, loi)  # root is above ci
        hii = torch.where(val < 0, ci, hii)  # root is below ci
        newton, size = ci + step, step.abs()  # (n,)
        inside = torch.isfinite(newton) & (newton >= loi) & (newton <= hii)
        # converged: exact zero, a bracket narrower than 2 tol, or a Newton step whose error
        # bound is below tol / 2 (docstring, When to stop); steps on phi: the step itself
        bound_ok = (flat & (size <= tol)) | (~flat & (-torch.log1p(-size) - size <= 0.5 * tol))
        newton_done = inside & bound_ok
        narrow = hii - loi <= 2 * tol
        use_newton = inside & (newton > loi) & (newton < hii) & (2 * size <= before)
        last, before = torch.where(use_newton, size, 0.5 * (hii - loi)), last
        c_next = torch.where(newton_done | (use_newton & ~narrow), newton, 0.5 * (loi + hii))
        ci = torch.where(val == 0, ci, c_next)
        finished = (val == 0) | newton_done | narrow
        if finished.any():
            out = idx[finished]
            c[out], iterations[out], converged[out] = ci[finished], it, True
            idx, gi, wi, wti, ci, loi, hii, last, before = _keep(
                ~finished, idx, gi, wi, wti, ci, loi, hii, last, before
            )
    c[idx] = ci  # rows that ran out of iterations
    return c, iterations, converged


def _balanced(
    g: Tensor, w: Tensor | None, fallback: Tensor, tol: float, max_iter: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Root c of f per row, float64 iterations used, converged flags; fills `fallback`.

    Blocks of rows small enough to stay in cache (module docstring, Speed) get a float32
    start, then one float64 Newton step on every row, kept where its error bound certifies
    it (module docstring, When to stop). Only the rows it does not finish (flat f, a poor
    start) go through `_rtsafe`, all blocks together."""
    n, k = g.shape
    c = torch.empty(n, dtype=g.dtype, device=g.device)  # (N,)
    iterations = torch.zeros(n, dtype=torch.int64, device=g.device)  # (N,)
    converged = torch.zeros(n, dtype=torch.bool, device=g.device)  # (N,)
    near = torch.zeros(n, dtype=torch.bool, device=g.device)  # (N,) start within a unit step
    block = _block_rows(k)
    buf = torch.empty((4, min(block, n), k), dtype=g.dtype, device=g.device)
    buf32 = torch.empty((4, min(block, n), k), dtype=torch.float32, device=g.device)
    for first in range(0, n, block):
        rows = slice(first, first + block)
        gb, wb, lo, hi, fb = _rows(g, w, rows, buf)
        width = hi - lo  # (m,)
        _check_bracket(width)
        if fb is not None:
            fallback[rows] = fb
        w_total = torch.full_like(lo, k) if wb is None else wb @ wb.new_ones(k)  # (m,)
        cb = _float32_start(gb, wb, w_total, lo, hi, buf32)  # (m,)
        narrow = width <= 2 * tol  # (m,) K = 1 and all-equal gaps: the midpoint is the root
        done = narrow
        if max_iter >= 1:
            val, df = _plain_residual(gb, wb, w_total, cb, buf[2:])
            step = -val / df  # (m,)
            size = step.abs()
            flat = df.abs() < FLAT_SLOPE * w_total  # (m,)
            certified = ~flat & (-torch.log1p(-size) - size <= 0.5 * tol)
            cb = torch.where(certified, (cb + step).clamp(lo, hi), cb)
            done = narrow | certified
            iterations[rows] = (~narrow).long()
            # a start more than a unit step away is lost (float32 f' underflows once the gaps
            # are far apart): `_rtsafe` restarts those rows from the weighted median
            near[rows] = ~flat & (size < 1)
        c[rows] = torch.where(narrow, 0.5 * (lo + hi), cb)
        converged[rows] = done
    rest = (~converged).nonzero().squeeze(1)  # (r,)
    if rest.numel() and max_iter >= 2:
        g_rest, w_rest, lo_rest, hi_rest, _ = _rows(g, w, rest)  # (r, K), (r,)
        w_total = torch.full_like(lo_rest, k) if w_rest is None else w_rest @ g.new_ones(k)
        # as the gaps spread the root tends to their weighted median
        start = torch.where(near[rest], c[rest], _weighted_median(g_rest, w_rest))
        c[rest], extra, converged[rest] = _rtsafe(
            g_rest, w_rest, w_total, lo_rest, hi_rest, start, tol, max_iter - 1
        )
        iterations[rest] += extra
    return c, iterations, converged


def _logit_mean_blocks(g: Tensor, w: Tensor | None, fallback: Tensor) -> Tensor:
    """`_logit_mean` a block of rows at a time (module docstring, Speed); fills `fallback`."""
    n, k = g.shape
    free = torch.empty(n, dtype=g.dtype, device=g.device)  # (N,)
    block = _block_rows(k)
    buf = torch.empty((2, min(block, n), k), dtype=g.dtype, device=g.device)
    for first in range(0, n, block):
        rows = slice(first, first + block)
        gb, wb, lo, hi, fb = _rows(g, w, rows, buf)
        _check_bracket(hi - lo)
        if fb is not None:
            fallback[rows] = fb
        free[rows] = _logit_mean(gb, wb)
    return free


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
    absolute on gaps of size ~1e3 is beyond float32 (which only picks the start).
    """
    if criterion not in ("balanced", "logit-mean"):
        raise ValueError(f"unknown criterion {criterion!r}")
    g, w, fallback = _validate(gaps, weights)
    n = g.shape[0]
    if fallback is None:  # filled block by block
        fallback = torch.zeros(n, dtype=torch.bool, device=g.device)
    if criterion == "logit-mean":
        free = _logit_mean_blocks(g, w, fallback)
        iterations = torch.zeros(n, dtype=torch.int64, device=g.device)
        converged = torch.isfinite(free)
    else:
        free, iterations, converged = _balanced(g, w, fallback, tol, max_iter)
    own = gaps[:, 0].to(torch.float64)
    return Decomposition(
        free=free,
        own=own,
        related=own - free,
        iterations=iterations,
        converged=converged,
        uniform_fallback=fallback,
    )
