"""Weighting rules: per-pair training weights from prompt-free gaps.

METHOD.md, "Prioritized reward learning": pairs whose label the prompt-free reward already
explains (large positive free_i) teach little that generalizes, so every rule maps free (N,)
to weights (N,) that favour small or negative free_i; weight 0 excludes a pair.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np

from rmcore.errors import InvalidArgument

WeightingRule = Callable[..., np.ndarray]


# ----------------------------------------------------------------------------- weighting rules


def uniform(free: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Vanilla Bradley-Terry: every pair counts once."""
    return np.ones(free.shape[0])


def prompt_free_priority(
    free: np.ndarray,
    *,
    tau: float | None = None,
    c: float = 1.0,
    cap: float | None = 10.0,
    rank: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """a_i = sigmoid(-free_i / tau) rescaled to mean 1, so the loss scale matches `uniform`.

    Scale-aware by default: tau = c * MAD(free) (the median absolute deviation), so the
    weights do not change when every free gap is rescaled, e.g. by a reference model trained
    longer; a fixed `tau` overrides that. `rank=True` uses the free gaps' ranks instead of
    their values (a_i falls linearly from the smallest to the largest free gap). `cap` bounds
    the largest weight at `cap` times the mean, so a handful of pairs with very negative free
    gaps (often pairs the reference model failed to fit) cannot take most of the loss."""
    if free.size == 0:
        return np.zeros(0)
    if rank:
        order = np.argsort(np.argsort(free, kind="stable"), kind="stable")  # (N,) 0 = smallest
        a = 1.0 - (order + 0.5) / free.size
    else:
        tau = free_gap_scale(free, c) if tau is None else tau
        _check_positive("tau", tau)
        log_a = -np.logaddexp(0.0, free / tau)  # (N,) log sigmoid(-free / tau); no underflow
        a = np.exp(log_a - log_a.max())
    return cap_weights(a / a.mean(), cap)


def free_gap_scale(free: np.ndarray, c: float = 1.0) -> float:
    """c * MAD(free): the spread tau is measured in. When more than half the gaps are equal the
    MAD is 0, and the mean absolute deviation from the median stands in (it scales with the gaps
    too, so the weights stay invariant to scaling them); all-equal gaps get c (every tau gives
    them the same weight)."""
    _check_positive("c", c)
    deviation = np.abs(free - np.median(free))
    spread = float(np.median(deviation)) or float(deviation.mean())
    return c * (spread if spread > 0 else 1.0)


def cap_weights(a: np.ndarray, cap: float | None) -> np.ndarray:
    """Weights a (mean 1) rescaled to min(s * a, cap) with s chosen so the mean stays 1: the
    largest weights are clipped at `cap` times the mean and the mass they lose is spread
    over the others in proportion (exact, by trying every number j of clipped weights)."""
    if cap is None:
        return a
    if not (_is_number(cap) and cap >= 1.0):
        raise InvalidArgument(f"cap must be a number >= 1 (a multiple of the mean), got {cap!r}")
    if a.size == 0 or a.max() <= cap:
        return a
    n = a.size
    desc = np.sort(a)[::-1]  # (N,)
    rest = np.cumsum(desc[::-1])[::-1]  # (N,) sum of desc[j:], the weights left unclipped
    j = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (n - j * cap) / rest  # (N,) s when the j largest are clipped
    fits = (scale * desc <= cap * (1 + 1e-12)) & (scale > 0)
    if not fits.any():  # cap == 1: every weight equal
        return np.ones(n)
    s = scale[np.argmax(fits)]
    return np.minimum(s * a, cap)


def prompt_free_filter(free: np.ndarray, *, q: float = 0.5, seed: int = 0) -> np.ndarray:
    """Keep the round(q * N) pairs with the smallest free gaps (at least one when N > 0).

    A stable sort breaks ties at the threshold by position, so the result is deterministic.
    """
    if not (_is_number(q) and 0.0 < q <= 1.0):
        raise InvalidArgument(f"q must be a fraction in (0, 1], got {q!r}")
    n = free.shape[0]
    n_keep = min(n, max(1, math.floor(q * n + 0.5)))
    weights = np.zeros(n)
    weights[np.argsort(free, kind="stable")[:n_keep]] = 1.0
    return weights


def priority_sampling(
    free: np.ndarray, *, tau: float = 1.0, size: int | None = None, seed: int = 0
) -> np.ndarray:
    """Multiplicities of ``size`` (default N) draws with replacement, P(i) ~ exp(-free_i / tau)."""
    _check_positive("tau", tau)
    n = free.shape[0]
    size = n if size is None else size
    if not (isinstance(size, int | np.integer) and not isinstance(size, bool) and size >= 0):
        raise InvalidArgument(f"size must be a non-negative integer, got {size!r}")
    if n == 0:
        if size:
            raise InvalidArgument("priority-sampling cannot draw from zero pairs")
        return np.zeros(0)
    logits = -free / tau  # (N,)
    p = np.exp(logits - logits.max())  # shifted: stable for large |free| / tau
    draws = np.random.default_rng(seed).choice(n, size=size, replace=True, p=p / p.sum())
    return np.bincount(draws, minlength=n).astype(np.float64)


WEIGHTING_RULES: dict[str, WeightingRule] = {
    "uniform": uniform,
    "prompt-free-priority": prompt_free_priority,
    "prompt-free-filter": prompt_free_filter,
    "priority-sampling": priority_sampling,
}


def apply_rule(
    name: str, free: np.ndarray, params: dict | None = None, seed: int = 0
) -> np.ndarray:
    """Weights (N,) from a named rule, with errors that name the bad input and the options."""
    if name not in WEIGHTING_RULES:
        raise InvalidArgument(
            f"unknown weighting rule {name!r}; choose one of {sorted(WEIGHTING_RULES)}"
        )
    rule = WEIGHTING_RULES[name]
    params = dict(params or {})
    allowed = sorted(set(inspect.signature(rule).parameters) - {"free", "seed"})
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidArgument(
            f"rule {name!r} got unknown parameter(s) {unknown}; it accepts {allowed}"
        )
    free = np.asarray(free, dtype=np.float64)
    if free.ndim != 1:
        raise ValueError(f"free must be 1-D (one gap per pair), got shape {free.shape}")
    if not np.isfinite(free).all():
        raise ValueError(
            f"free has {int((~np.isfinite(free)).sum())} non-finite value(s); score every pair first"
        )
    return rule(free, **params, seed=seed)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_positive(name: str, value: float) -> None:
    if not (_is_number(value) and 0 < value < math.inf):
        raise InvalidArgument(f"{name} must be a positive finite number, got {value!r}")
