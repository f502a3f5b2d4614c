"""Evaluation metrics for reward models: pairwise accuracy, calibration, uncertainty, probes.

Every function takes plain arrays (numpy, torch or anything `np.asarray` accepts) and is
vectorized over pairs, so a benchmark over 100k pairs costs a few array ops.

Conventions
- `gap` (N,) is r(x, y_chosen) - r(x, y_rejected); sigmoid(gap) is the model's P(chosen wins).
- `label` (N,) is the soft preference P(chosen wins) in [0, 1]. label > 0.5 is a hard
  "chosen wins", label < 0.5 a hard "rejected wins", label == 0.5 a tie.
- Accuracy counts a gap of exactly 0 on a hard label as wrong: a model that cannot
  separate two answers has not ranked them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from scipy import special, stats

__all__ = [
    "CalibrationCurve",
    "bootstrap_ci",
    "calibration_curve",
    "clustered_bootstrap_ci",
    "expected_calibration_error",
    "length_bias_subsets",
    "make_prompt_swap_pairs",
    "mean_ci_over_seeds",
    "pairwise_correct",
    "preference_metrics",
    "prompt_swap_accuracy",
    "reward_length_correlation",
    "same_topic_donors",
]


def _as_array(x: ArrayLike | Any, dtype: type = np.float64) -> np.ndarray:
    """Accept torch tensors (incl. on GPU / with grad) as well as numpy and lists."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def pairwise_correct(gap: ArrayLike, label: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair correctness on hard labels, and the mask of which pairs have a hard label.

    Returns (correct (N,) bool, hard (N,) bool); `correct` is False on ties (label == 0.5).
    """
    g, y = _as_array(gap), _as_array(label)
    hard = y != 0.5
    correct = np.where(y > 0.5, g > 0, g < 0) & hard
    return correct, hard


def preference_metrics(gap: ArrayLike, label: ArrayLike) -> dict[str, float | int]:
    """Accuracy on hard labels plus log-loss and Brier score of sigmoid(gap) on all soft labels.

    Returns keys: accuracy (nan if no hard label), n, n_hard, n_ties, log_loss, brier.
    """
    g, y = _as_array(gap), _as_array(label)
    correct, hard = pairwise_correct(g, y)
    n_hard = int(hard.sum())
    # log sigmoid(g) = -softplus(-g), log(1 - sigmoid(g)) = -softplus(g): stable for |g| >> 1.
    nll = y * np.logaddexp(0.0, -g) + (1.0 - y) * np.logaddexp(0.0, g)  # (N,)
    prob = special.expit(g)  # (N,)
    return {
        "accuracy": float(correct[hard].mean()) if n_hard else float("nan"),
        "n": int(g.size),
        "n_hard": n_hard,
        "n_ties": int(g.size - n_hard),
        "log_loss": float(nll.mean()) if g.size else float("nan"),
        "brier": float(((prob - y) ** 2).mean()) if g.size else float("nan"),
    }


def _mean_last_axis(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


def bootstrap_ci(
    data: ArrayLike | tuple[ArrayLike, ...],
    statistic: Callable[..., ArrayLike] = _mean_last_axis,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of `statistic` over examples.

    `data` is one per-example array (N,) or a tuple of aligned per-example arrays
    (e.g. (gap, label)); the same resampled rows are used for every array. `statistic`
    must be vectorized over resamples: it receives arrays of shape (n_boot, N) and
    returns (n_boot,), e.g. `lambda g, y: ((g > 0) == (y > 0.5)).mean(-1)`.
    """
    arrays = tuple(_as_array(a) for a in (data if isinstance(data, tuple) else (data,)))
    n = arrays[0].shape[0]
    if n == 0 or any(a.shape[0] != n for a in arrays):
        raise ValueError("bootstrap_ci needs non-empty per-example arrays of equal length")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # (B, N)
    boot = np.asarray(statistic(*(a[idx] for a in arrays)), dtype=np.float64)  # (B,)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def clustered_bootstrap_ci(
    values: ArrayLike,
    clusters: ArrayLike,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-example `values`, resampling whole
    clusters (e.g. prompts): examples that share a prompt are not independent, and resampling
    them one by one would make the interval too narrow. Paired comparisons pass the
    per-example difference of two models."""
    v = _as_array(values)
    _, cluster = np.unique(np.asarray(clusters), return_inverse=True)
    if v.size == 0 or cluster.shape != v.shape:
        raise ValueError("clustered_bootstrap_ci needs non-empty arrays of equal length")
    n_clusters = int(cluster.max()) + 1
    sums = np.bincount(cluster, weights=v, minlength=n_clusters)  # (C,)
    counts = np.bincount(cluster, minlength=n_clusters).astype(np.float64)  # (C,)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot)
    means = (draws @ sums) / (draws @ counts)  # (n_boot,)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def mean_ci_over_seeds(
    values: ArrayLike,
    alpha: float = 0.05,
    method: str = "t",
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and (1 - alpha) interval of a metric across training seeds: (mean, lo, hi).

    Default is the Student t interval: with the usual 3-10 seeds a percentile bootstrap
    of the mean is too narrow (it cannot see beyond the observed spread). `method="bootstrap"`
    is offered for many seeds. Fewer than two seeds give (mean, nan, nan).
    """
    v = _as_array(values).ravel()  # (S,)
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    if method == "t":
        half = stats.t.ppf(1 - alpha / 2, df=v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
        return mean, mean - float(half), mean + float(half)
    if method == "bootstrap":
        lo, hi = bootstrap_ci(v, n_boot=n_boot, alpha=alpha, seed=seed)
        return mean, lo, hi
    raise ValueError(f"unknown method {method!r}; use 't' or 'bootstrap'")


class CalibrationCurve(NamedTuple):
    """Reliability-diagram data; empty bins have count 0 and nan means."""

    centers: np.ndarray  # (B,)
    mean_predicted: np.ndarray  # (B,)
    mean_observed: np.ndarray  # (B,)
    counts: np.ndarray  # (B,) int


def calibration_curve(prob: ArrayLike, label: ArrayLike, n_bins: int = 10) -> CalibrationCurve:
    """Equal-width bins of predicted P(chosen wins) on [0, 1] against the mean soft label.

    Bins are [k/B, (k+1)/B) with the last bin closed, so prob == 1 lands in bin B-1.
    """
    p, y = _as_array(prob), _as_array(label)
    bins = np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)  # (N,)
    counts = np.bincount(bins, minlength=n_bins)  # (B,)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p, mean_y = sum_p / counts, sum_y / counts
    centers = (np.arange(n_bins) + 0.5) / n_bins
    return CalibrationCurve(centers, mean_p, mean_y, counts)


def expected_calibration_error(prob: ArrayLike, label: ArrayLike, n_bins: int = 10) -> float:
    """ECE of predicted P(chosen wins) (pass sigmoid(gap)) against soft labels.

    sum over bins of (bin size / N) * |mean predicted - mean label|, equal-width bins.
    """
    curve = calibration_curve(prob, label, n_bins)
    n = curve.counts.sum()
    if n == 0:
        return float("nan")
    filled = curve.counts > 0
    gaps = np.abs(curve.mean_predicted[filled] - curve.mean_observed[filled])
    return float((curve.counts[filled] / n * gaps).sum())


def prompt_swap_accuracy(r_own: ArrayLike, r_swapped: ArrayLike) -> float:
    """Share of items where r(x, y) > r(x, y'), y written for x and y' for another prompt.

    A prompt-blind reward model sits near 0.5 here; ties count as failures.
    """
    own, swapped = _as_array(r_own), _as_array(r_swapped)
    return float((own > swapped).mean()) if own.size else float("nan")


def make_prompt_swap_pairs(
    prompt_ids: ArrayLike,
    response_ids: ArrayLike,
    seed: int = 0,
    max_rounds: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """For every item i pick a donor j whose prompt differs (and whose response differs).

    Returns (item (N,), donor (N,)) int arrays: score r(x_item, y_item) against
    r(x_item, y_donor). Donors are uniform over the items of other prompts: items are
    sorted by prompt, and a draw u in [0, N - n_g) skips item i's own prompt block.
    Rows whose donor shares the response text (the same answer reused across prompts)
    are redrawn, all at once, until none is left.
    """
    p = np.asarray(prompt_ids)
    r = np.asarray(response_ids)
    n = p.shape[0]
    order = np.argsort(p, kind="stable")  # sorted position -> item
    _, group, sizes = np.unique(p, return_inverse=True, return_counts=True)
    if sizes.size < 2:
        raise ValueError("prompt swap needs items from at least two distinct prompts")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # block start per prompt (G,)
    start_i, size_i = starts[group], sizes[group]  # (N,)
    rng = np.random.default_rng(seed)

    def draw(rows: np.ndarray) -> np.ndarray:
        u = rng.integers(0, n - size_i[rows])  # (R,) position among other prompts' items
        return order[np.where(u < start_i[rows], u, u + size_i[rows])]

    item = np.arange(n)
    donor = draw(item)
    for _ in range(max_rounds):
        clash = np.flatnonzero(r[donor] == r)
        if clash.size == 0:
            return item, donor
        donor[clash] = draw(clash)
    raise ValueError("could not find donors with a different response; responses too shared")


def same_topic_donors(
    prompt_ids: ArrayLike, response_ids: ArrayLike, prompt_emb: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """For every item i a donor j whose prompt is the nearest other prompt by embedding
    (cosine; `prompt_emb` (N, D) unit rows, one per item) and whose response differs: a
    harder prompt swap than a random donor, since an answer on the same topic can look
    relevant to a prompt-blind model. Among the nearest prompt's items one is drawn (seeded).
    Returns (item (M,), donor (M,)); items with no such donor are left out."""
    p, r = np.asarray(prompt_ids), np.asarray(response_ids)
    uniq, first, group = np.unique(p, return_index=True, return_inverse=True)
    if uniq.size < 2:
        raise ValueError("prompt swap needs items from at least two distinct prompts")
    e = prompt_emb[first]  # (G, D) one row per prompt
    sim = e @ e.T  # (G, G)
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)  # (G,)
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(group))])  # (G + 1,)
    rng = np.random.default_rng(seed)
    target = nearest[group]  # (N,) the donor prompt of each item
    size = starts[target + 1] - starts[target]
    donor = order[starts[target] + rng.integers(0, size)]  # (N,)
    item = np.arange(p.size)
    keep = r[donor] != r
    return item[keep], donor[keep]


def length_bias_subsets(
    label: ArrayLike, len_chosen: ArrayLike, len_rejected: ArrayLike
) -> dict[str, np.ndarray]:
    """Masks (N,) bool of the pairs whose winner (by label) is the longer / the shorter response.

    A length-biased model is accurate when the winner is longer and poor when it is shorter.
    The label decides the winner: the chosen response when label >= 0.5 (a tie counts the
    chosen as the winner, so ties stay in a subset and are counted there as `n_ties`), the
    rejected one otherwise. Pairs of equal length are in neither subset.
    """
    y = _as_array(label)
    lc, lr = _as_array(len_chosen), _as_array(len_rejected)
    winner_longer = np.where(y >= 0.5, lc > lr, lr > lc)  # (N,)
    unequal = lc != lr
    return {"winner_longer": winner_longer & unequal, "winner_shorter": ~winner_longer & unequal}


def reward_length_correlation(
    rewards: ArrayLike,
    lengths: ArrayLike,
    group_ids: ArrayLike,
    min_group_size: int = 3,
) -> dict[str, float | int]:
    """Spearman correlation of reward with length, within prompts and pooled.

    Within-group: one Spearman per prompt with >= `min_group_size` responses, averaged;
    groups where it is undefined (constant rewards or lengths) are left out and counted.
    The within-prompt number isolates length preference from prompt difficulty, which
    the pooled number confounds.
    """
    frame = pl.DataFrame(
        {"r": _as_array(rewards), "l": _as_array(lengths), "g": np.asarray(group_ids)}
    )
    per_group = (
        frame.group_by("g")
        .agg(pl.len().alias("n"), pl.corr("r", "l", method="spearman").alias("rho"))
        .filter(pl.col("n") >= min_group_size)
    )
    rho = per_group["rho"].to_numpy().astype(np.float64)  # (G,)
    defined = np.isfinite(rho)
    pooled = (
        float(stats.spearmanr(frame["r"], frame["l"]).statistic)
        if frame.height >= 2
        else float("nan")
    )
    return {
        "within_group_spearman": float(rho[defined].mean()) if defined.any() else float("nan"),
        "n_groups": int(defined.sum()),
        "n_groups_undefined": int((~defined).sum()),
        "pooled_spearman": pooled,
    }
