"""Draw the K = 1 + m prompts each pair is re-scored under (docs/METHOD.md).

Column 0 is the pair's own prompt; columns 1..m are other prompts drawn uniformly without
replacement from a pool, which stands in for P(x) in the importance weights. The pool may
be the pairs' own prompts or another dataset: prompts are ids (ints or content-hash
strings), and a pair's own prompt is excluded wherever it happens to be in the pool.

When fewer than m pool prompts are eligible for a row, the row takes all of them and the
remaining columns are padding: they repeat the own id (a valid id for any later lookup)
and are False in the mask, so they must get zero weight (`weights.normalize_log_weights`
and `solver.solve_free_gap` both honour that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PromptSample:
    ids: np.ndarray  # (N, 1 + m) prompt ids, column 0 = the pair's own prompt
    mask: np.ndarray  # (N, 1 + m) bool, False on padding


def sample_prompts(own: np.ndarray, pool: np.ndarray | int, m: int, seed: int) -> PromptSample:
    """Own prompt + m distinct other pool prompts per pair, reproducible from `seed`.

    own: (N,) prompt ids. pool: (P,) ids, or an int P meaning ids 0..P-1 (own prompts given as
    indices into the same pool); duplicates in the pool are dropped. Same inputs and seed give
    the same sample; the pool's order does not matter.
    """
    own = np.asarray(own)
    pool_ids = np.arange(pool) if isinstance(pool, int) else np.unique(np.asarray(pool))  # (P,)
    n, p = own.shape[0], pool_ids.shape[0]
    rng = np.random.default_rng(seed)
    # where the own prompt sits in the sorted pool; it is skipped by shifting later positions
    own_pos = np.searchsorted(pool_ids, own)  # (N,)
    in_pool = (own_pos < p) & (pool_ids[np.minimum(own_pos, p - 1)] == own) if p else own_pos < 0
    eligible = p - in_pool.astype(np.int64)  # (N,)
    take = np.minimum(eligible, m)  # (N,) columns that get a real prompt
    # Floyd's algorithm, one step per column and all rows at once: after step j the row holds
    # a uniform (j+1)-subset of 0..eligible - take + j
    draws = np.full((n, m), -1, dtype=np.int64)  # (N, m) positions among the eligible
    for j in range(m):
        top = eligible - take + j  # (N,) inclusive upper end of this step's range
        t = rng.integers(0, top + 1)  # (N,)
        seen = (draws[:, :j] == t[:, None]).any(axis=1)
        draws[:, j] = np.where(j < take, np.where(seen, top, t), -1)
    # Floyd yields a set whose order is not uniform: shuffle within the row, padding last
    keys = np.where(draws >= 0, rng.random((n, m)), np.inf)  # (N, m)
    draws = np.take_along_axis(draws, np.argsort(keys, axis=1, kind="stable"), axis=1)
    valid = draws >= 0  # (N, m)
    pos = draws + (in_pool[:, None] & (draws >= own_pos[:, None]))  # skip the own prompt
    ids = np.repeat(own.astype(np.result_type(own, pool_ids))[:, None], 1 + m, axis=1)
    ids[:, 1:][valid] = pool_ids[pos[valid]]  # (N, 1 + m), padding keeps the own id
    mask = np.concatenate([np.ones((n, 1), dtype=bool), valid], axis=1)  # (N, 1 + m)
    return PromptSample(ids=ids, mask=mask)
