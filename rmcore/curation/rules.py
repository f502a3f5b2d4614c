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


def prompt_free_priority(free: np.ndarray, *, tau: float = 1.0, seed: int = 0) -> np.ndarray:
    """a_i = sigmoid(-free_i / tau) rescaled to mean 1, so the loss scale matches `uniform`."""
    _check_positive("tau", tau)
    if free.size == 0:
        return np.zeros(0)
    log_a = -np.logaddexp(0.0, free / tau)  # (N,) log sigmoid(-free / tau); sigmoid underflows
    a = np.exp(log_a - log_a.max())
    return a / a.mean()


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
