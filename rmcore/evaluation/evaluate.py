"""Held-out evaluation of one reward model: every benchmark metric as tidy rows.

Inputs are scores the caller computed (cache-aware) for the test pairs, so this module
stays pure. Subsets: all pairs, pairs whose chosen is the shorter / longer response (the
length-bias probe), and any categorical provenance field the caller names (e.g. the toy
data's `setup`). Ties (label 0.5) are excluded from accuracy and reported as `n_ties`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rmcore.evaluation.metrics import (
    bootstrap_ci,
    expected_calibration_error,
    length_bias_subsets,
    pairwise_correct,
    preference_metrics,
    prompt_swap_accuracy,
    reward_length_correlation,
)

ROW_SCHEMA = {
    "benchmark": pl.Utf8,
    "subset": pl.Utf8,
    "n": pl.Int64,
    "metric": pl.Utf8,
    "value": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}


LENGTH_CELLS = ("winner_longer", "winner_shorter")  # the default bias cells


def balanced_row(rows: list[dict], cells: tuple[str, ...]) -> dict:
    """("preference", "bias_balanced", "accuracy"): the mean of the cells' accuracies (nan
    when a cell is empty: the balance cannot be measured)."""
    acc = {
        r["subset"]: r["value"]
        for r in rows
        if r["benchmark"] == "preference" and r["metric"] == "accuracy"
    }
    values = [acc.get(c, float("nan")) for c in cells]
    n = sum(int(r["n"]) for r in rows if r["metric"] == "accuracy" and r["subset"] in cells)
    return _row("preference", "bias_balanced", n, "accuracy", float(np.mean(values)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _row(
    benchmark: str,
    subset: str,
    n: int,
    metric: str,
    value: float,
    ci_low: float | None = None,
    ci_high: float | None = None,
) -> dict:
    """One tidy result row, keyed by (benchmark, subset, metric)."""
    return {
        "benchmark": benchmark,
        "subset": subset,
        "n": n,
        "metric": metric,
        "value": value,
        "ci_low": ci_low,
        "ci_high": ci_high,
    }


def both_orientations(gap: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(first wins), soft label) for each pair as given and swapped. Which response is
    listed first is arbitrary; with both orders, data whose labels are all 1 (the winner
    always listed first) still gives a meaningful reliability curve and ECE."""
    p = _sigmoid(gap)
    return np.concatenate([p, 1.0 - p]), np.concatenate([label, 1.0 - label])


def preference_rows(gap: np.ndarray, label: np.ndarray, subset: str, seed: int = 0) -> list[dict]:
    """accuracy (with a bootstrap CI), log-loss, Brier, ECE and tie count for one subset."""
    if gap.size == 0:
        return []
    m = preference_metrics(gap, label)
    correct, hard = pairwise_correct(gap, label)
    lo, hi = (
        bootstrap_ci(correct[hard].astype(float), seed=seed) if hard.any() else (np.nan, np.nan)
    )
    n = int(gap.size)
    ece = expected_calibration_error(*both_orientations(gap, label))
    return [
        _row("preference", subset, int(hard.sum()), "accuracy", m["accuracy"], lo, hi),
        _row("preference", subset, n, "log_loss", m["log_loss"]),
        _row("preference", subset, n, "brier", m["brier"]),
        _row("preference", subset, n, "ece", ece),
        _row("preference", subset, n, "n_ties", float(m["n_ties"])),
    ]


def evaluate_pairs(
    test: pl.DataFrame,
    r_chosen: np.ndarray,
    r_rejected: np.ndarray,
    *,
    group_by: tuple[str, ...] = (),
    bias_cells: tuple[str, ...] = LENGTH_CELLS,
    seed: int = 0,
) -> pl.DataFrame:
    """Rows for preference metrics on all pairs, the length-bias probes, and per group, plus
    the group-balanced accuracy: the mean accuracy over the `bias_cells` subsets (e.g.
    winner longer / winner shorter), a metric the shortcut cannot win by being the majority.

    `test` needs label, chosen_chars, rejected_chars, prompt_id, plus the `group_by` columns."""
    gap = r_chosen - r_rejected
    label = test["label"].to_numpy()
    rows = preference_rows(gap, label, "all", seed)
    # Length-bias probes: the label decides which response is "chosen" (the winner).
    probes = length_bias_subsets(label, test["chosen_chars"], test["rejected_chars"])
    for subset, mask in probes.items():
        rows += preference_rows(gap[mask], label[mask], subset, seed)
    for col in group_by:
        for value in sorted(test[col].drop_nulls().unique().to_list()):
            mask = (test[col] == value).fill_null(False).to_numpy()
            rows += preference_rows(gap[mask], label[mask], f"{col}={value}", seed)
    rows.append(balanced_row(rows, bias_cells))
    # Reward against length at a fixed prompt (both responses of each prompt's pairs).
    rewards = np.concatenate([r_chosen, r_rejected])
    lengths = np.concatenate([test["chosen_chars"].to_numpy(), test["rejected_chars"].to_numpy()])
    groups = np.concatenate([test["prompt_id"].to_numpy(), test["prompt_id"].to_numpy()])
    corr = reward_length_correlation(rewards, lengths, groups)
    rows.append(
        _row(
            "length_bias",
            "all",
            corr["n_groups"],
            "within_prompt_spearman",
            corr["within_group_spearman"],
        )
    )
    rows.append(
        _row("length_bias", "all", int(rewards.size), "pooled_spearman", corr["pooled_spearman"])
    )
    return pl.DataFrame(rows, schema=ROW_SCHEMA)


def prompt_swap_rows(
    r_own: np.ndarray, r_swapped: np.ndarray, seed: int = 0, subset: str = "all"
) -> pl.DataFrame:
    """Contextual accuracy: r(x, y written for x) > r(x, y' written for another prompt);
    `subset` "all" for random donors, "same_topic" for nearest-prompt donors."""
    correct = (r_own > r_swapped).astype(float)
    lo, hi = bootstrap_ci(correct, seed=seed) if correct.size else (np.nan, np.nan)
    value = prompt_swap_accuracy(r_own, r_swapped)
    return pl.DataFrame(
        [_row("prompt_swap", subset, int(correct.size), "accuracy", value, lo, hi)],
        schema=ROW_SCHEMA,
    )
