"""The RRM baseline (METHOD.md, "Baselines"; Liu et al. 2024): responses borrowed from other
prompts must lose to the prompt's own responses and tie with each other, which penalizes any
reward that ignores the prompt.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl

OWN = 2  # responses of pair i: chosen_i, rejected_i
BORROWED = 4  # chosen_j, rejected_j, chosen_k, rejected_k
NEUTRAL = tuple(combinations(range(BORROWED), 2))  # the C(4, 2) = 6 borrowed-vs-borrowed pairs
PER_PAIR = OWN * BORROWED + len(NEUTRAL)  # 8 non-contextual + 6 neutral = 14

ReferenceGap = Callable[[pl.Series, pl.Series, pl.Series], np.ndarray]


@dataclass(frozen=True)
class RRMResult:
    """Augmented pairs plus the counters a stage stores for its audit trail."""

    pairs: pl.DataFrame
    n_generated: int  # 14 per source pair
    n_subsampled: int  # after keeping `keep_fraction` of each pair's 14
    n_identical: int  # dropped after subsampling: both sides are the same response
    n_filtered: int  # after the reference-model uncertainty filter
    n_kept: int  # after the cap on augmented pairs (at most cap x source pairs)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "generated": self.n_generated,
            "subsampled": self.n_subsampled,
            "dropped_identical": self.n_identical,
            "after_filter": self.n_filtered,
            "kept": self.n_kept,
        }


def rrm_augment(
    pairs: pl.DataFrame,
    *,
    seed: int,
    keep_fraction: float = 0.5,
    reference_gap: ReferenceGap | None = None,
    uncertainty_threshold: float = 0.2,
    cap: float | None = 1.0,
) -> RRMResult:
    """RRM pairs under each source prompt x_i, from responses of two pairs j != k of other prompts.

    ``pairs`` needs ``pair_id``, ``prompt_id``, ``chosen_id``, ``rejected_id``. Per source pair:
    8 non-contextual pairs (each own response beats each borrowed one, label 1.0) and 6 neutral
    pairs (borrowed vs borrowed, label 0.5); round(14 * keep_fraction) of them are kept (at least
    one). With ``reference_gap(prompt_ids, chosen_ids, rejected_ids) -> r(x, a) - r(x, b)``
    only the pairs the reference model gets wrong or is unsure of survive:
    |sigmoid(gap) - label| >= uncertainty_threshold. Of the survivors at most
    floor(cap * N) are kept (a seeded uniform draw): RRM adds at most as many pairs as it
    started from by default, so the originals stay at least half of the set.
    """
    needed = ["pair_id", "prompt_id", "chosen_id", "rejected_id"]
    missing = sorted(set(needed) - set(pairs.columns))
    if missing:
        raise ValueError(f"pairs lacks column(s) {missing}")
    with_nulls = [c for c in needed if pairs[c].null_count()]
    if with_nulls:
        raise ValueError(f"pairs has nulls in {with_nulls}")
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if cap is not None and not cap >= 0.0:
        raise ValueError(f"cap must be >= 0 or None, got {cap}")
    if not 0.0 <= uncertainty_threshold <= 1.0:
        raise ValueError(f"uncertainty_threshold must be in [0, 1], got {uncertainty_threshold}")
    rng = np.random.default_rng(seed)
    n = pairs.height
    i = np.arange(n)
    j, k = _draw_donors(pairs["prompt_id"], rng)  # (N,) each, from other prompts

    # Response slots: 0..N-1 the chosen, N..2N-1 the rejected of each pair.
    responses = pl.concat([pairs["chosen_id"], pairs["rejected_id"]])
    own = np.stack([i, n + i], axis=1)  # (N, 2)
    borrowed = np.stack([j, n + j, k, n + k], axis=1)  # (N, 4)
    a_slot = np.concatenate(
        [np.repeat(own, BORROWED, axis=1), borrowed[:, [p for p, _ in NEUTRAL]]], axis=1
    )  # (N, 14)
    b_slot = np.concatenate(
        [np.tile(borrowed, (1, OWN)), borrowed[:, [q for _, q in NEUTRAL]]], axis=1
    )  # (N, 14)
    is_neutral = np.arange(PER_PAIR) >= OWN * BORROWED  # (14,)

    # Stratified subsample: the same number of kept rows for every source pair.
    n_keep = max(1, math.floor(PER_PAIR * keep_fraction + 0.5))
    cols = np.argsort(rng.random((n, PER_PAIR)), axis=1)[:, :n_keep]  # (N, n_keep)
    rows = np.repeat(i, n_keep)  # (N * n_keep,) source pair of each kept row
    cols = cols.reshape(-1)
    out = pl.DataFrame(
        {
            "prompt_id": pairs["prompt_id"].gather(rows),
            "chosen_id": responses.gather(a_slot[rows, cols]),
            "rejected_id": responses.gather(b_slot[rows, cols]),
            "label": np.where(is_neutral[cols], 0.5, 1.0),
            "source_pair_id": pairs["pair_id"].gather(rows),
            "rrm_kind": np.where(is_neutral[cols], "neutral", "non_contextual"),
        }
    )
    n_subsampled = out.height
    # Content-addressed ids can coincide across prompts; a response against itself teaches nothing.
    out = out.filter(pl.col("chosen_id") != pl.col("rejected_id"))
    n_identical = n_subsampled - out.height
    if reference_gap is not None and out.height:
        gap = np.asarray(
            reference_gap(out["prompt_id"], out["chosen_id"], out["rejected_id"]), dtype=np.float64
        )
        if gap.shape != (out.height,) or not np.isfinite(gap).all():
            raise ValueError(
                f"reference_gap must return {out.height} finite gaps, got shape {gap.shape}"
            )
        prob = 0.5 * (1.0 + np.tanh(0.5 * gap))  # sigmoid(gap) without overflow
        unsure = np.abs(prob - out["label"].to_numpy()) >= uncertainty_threshold
        out = out.filter(pl.Series(unsure))
    n_filtered = out.height
    if cap is not None and out.height > math.floor(cap * n):
        keep = np.sort(rng.choice(out.height, size=math.floor(cap * n), replace=False))
        out = out[keep]
    return RRMResult(out, PER_PAIR * n, n_subsampled, n_identical, n_filtered, out.height)


def _draw_donors(prompt_ids: pl.Series, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For every pair i, two distinct pairs j, k drawn uniformly among pairs of other prompts.

    Exact and vectorized: sorted by prompt, pair i's prompt group occupies one contiguous
    block [start, start + g), so the m-th pair outside it sits at m if m < start else m + g.
    """
    n = prompt_ids.len()
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    group = prompt_ids.rank("dense").cast(pl.Int64).to_numpy() - 1  # (N,)
    sizes = np.bincount(group)  # (G,)
    if n - sizes.max() < 2:
        raise ValueError("RRM needs, for every pair, at least two pairs with a different prompt")
    order = np.argsort(group, kind="stable")  # sorted position -> row
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])[group]  # (N,)
    g = sizes[group]  # (N,)
    m_j = rng.integers(0, n - g)  # (N,) rank among the N - g outside pairs
    m_k = rng.integers(0, n - g - 1)
    m_k += m_k >= m_j  # skip j's rank: k != j
    return order[m_j + g * (m_j >= start)], order[m_k + g * (m_k >= start)]
