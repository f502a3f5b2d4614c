"""Paired differences against the baseline method, with intervals that see both sources of
noise: which test prompts were drawn, and which training seeds.

Every metric here is a weighted mean of per-pair values over a subset of test pairs (the
accuracy of a bias cell, log-loss...), or a function of such means (the group-balanced
accuracy is the mean of the cells' accuracies; ECE is built from binned weighted sums). A
method's value is the mean over its seeds; its difference from the baseline is D.

The interval: D +- t * sqrt(v_test + v_seed), where v_test is the variance of D over a
bootstrap that resamples test prompts (clusters: all pairs of a prompt together, the same
draw for both methods, so the comparison stays paired) with the seeds fixed, and v_seed is
s_a^2 / S_a + s_b^2 / S_b from the spread of each method's per-seed values, with
Welch-Satterthwaite degrees of freedom (v_test counting as known). With 3-5 seeds a
bootstrap over seeds alone cannot see past the observed spread; the t quantile does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

# statistic(weights (B, N), values (S, N)) -> (B, S): the metric of each seed under each
# bootstrap weighting of the test pairs (weights of ones = the observed test set)
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairedDifference:
    """D = method - baseline with its (1 - alpha) interval."""

    difference: float
    ci_low: float
    ci_high: float
    method_value: float
    baseline_value: float

    def verdict(self, higher_is_better: bool | None) -> str:
        """ "better" / "worse" only when the interval excludes 0; else "no clear difference"."""
        return verdict(self.ci_low, self.ci_high, higher_is_better)


def verdict(ci_low: float, ci_high: float, higher_is_better: bool | None) -> str:
    """The one wording of a paired comparison: a direction only when the interval excludes 0
    (and is defined); "higher"/"lower" for a metric without a better direction."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)) or ci_low <= 0.0 <= ci_high:
        return "no clear difference"
    up = ci_low > 0.0
    if higher_is_better is None:
        return "higher" if up else "lower"
    return "better" if up == higher_is_better else "worse"


def subset_mean(mask: np.ndarray) -> Statistic:
    """The weighted mean of the per-pair values over `mask` (N,) bool."""
    m = mask.astype(np.float64)

    def stat(w: np.ndarray, v: np.ndarray) -> np.ndarray:
        wm = w * m  # (B, N)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (wm @ v.T) / wm.sum(axis=1, keepdims=True)  # (B, S)

    return stat


def cell_balanced_mean(masks: list[np.ndarray]) -> Statistic:
    """The mean over cells of each cell's weighted mean (group-balanced accuracy)."""
    parts = [subset_mean(m) for m in masks]
    return lambda w, v: np.mean([p(w, v) for p in parts], axis=0)


def cluster_weights(clusters: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(B, N) pair weights: how often each pair's cluster was drawn in each bootstrap test set
    (G clusters drawn with replacement out of G)."""
    _, group = np.unique(clusters, return_inverse=True)
    g = int(group.max()) + 1 if group.size else 0
    counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot)  # (B, G)
    return counts[:, group].astype(np.float64)  # (B, N)


def paired_difference(
    method: np.ndarray,
    baseline: np.ndarray,
    statistic: Statistic,
    clusters: np.ndarray,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedDifference:
    """D and its interval for per-pair values `method` (S_a, N) and `baseline` (S_b, N) on
    the same N test pairs (clusters (N,): the prompt of each pair)."""
    rng = np.random.default_rng(seed)
    ones = np.ones((1, method.shape[1]))
    per_seed_a, per_seed_b = statistic(ones, method)[0], statistic(ones, baseline)[0]  # (S,)
    value_a, value_b = float(np.nanmean(per_seed_a)), float(np.nanmean(per_seed_b))
    diff = value_a - value_b
    if not np.isfinite(diff):
        return PairedDifference(diff, np.nan, np.nan, value_a, value_b)
    w = cluster_weights(clusters, n_boot, rng)
    boot = np.nanmean(statistic(w, method), axis=1) - np.nanmean(statistic(w, baseline), axis=1)
    v_test = float(np.nanvar(boot, ddof=1))
    seed_parts = [
        np.var(s, ddof=1) / s.size if s.size > 1 else 0.0 for s in (per_seed_a, per_seed_b)
    ]
    v_seed = float(sum(seed_parts))
    total = v_test + v_seed
    if total == 0.0:
        return PairedDifference(diff, diff, diff, value_a, value_b)
    dof_terms = [
        p**2 / (s.size - 1)
        for p, s in zip(seed_parts, (per_seed_a, per_seed_b), strict=True)
        if s.size > 1
    ]
    dof = total**2 / sum(dof_terms) if sum(dof_terms) > 0 else np.inf
    half = float(stats.t.ppf(1 - alpha / 2, df=dof)) * np.sqrt(total)
    return PairedDifference(diff, diff - half, diff + half, value_a, value_b)


def ece_statistic(label: np.ndarray, n_bins: int = 10) -> Statistic:
    """ECE with each pair in both orders (as the benchmark reports it), over weighted pairs:
    the values are sigmoid(gap) (S, N) per seed, `label` (N,) the soft labels; a pair's
    weight applies to both of its orders."""
    y2 = np.concatenate([label, 1.0 - label])  # (2N,)

    def stat(w: np.ndarray, prob: np.ndarray) -> np.ndarray:
        w2 = np.concatenate([w, w], axis=1)  # (B, 2N)
        p2 = np.concatenate([prob, 1.0 - prob], axis=1)  # (S, 2N)
        bins = np.clip(np.floor(p2 * n_bins).astype(np.int64), 0, n_bins - 1)  # (S, 2N)
        out = np.empty((w.shape[0], prob.shape[0]))
        for s in range(prob.shape[0]):  # seeds: a handful
            onehot = np.eye(n_bins)[bins[s]]  # (2N, bins)
            gap = w2 @ (onehot * (p2[s] - y2)[:, None])  # (B, bins): sum of (p - y) per bin
            out[:, s] = np.abs(gap).sum(axis=1) / w2.sum(axis=1)
        return out

    return stat
