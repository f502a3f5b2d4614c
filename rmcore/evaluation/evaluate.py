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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


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
    return [
        {
            "benchmark": "preference",
            "subset": subset,
            "n": int(hard.sum()),
            "metric": "accuracy",
            "value": m["accuracy"],
            "ci_low": lo,
            "ci_high": hi,
        },
        {
            "benchmark": "preference",
            "subset": subset,
            "n": n,
            "metric": "log_loss",
            "value": m["log_loss"],
            "ci_low": None,
            "ci_high": None,
        },
        {
            "benchmark": "preference",
            "subset": subset,
            "n": n,
            "metric": "brier",
            "value": m["brier"],
            "ci_low": None,
            "ci_high": None,
        },
        {
            "benchmark": "preference",
            "subset": subset,
            "n": n,
            "metric": "ece",
            "value": expected_calibration_error(*both_orientations(gap, label)),
            "ci_low": None,
            "ci_high": None,
        },
        {
            "benchmark": "preference",
            "subset": subset,
            "n": n,
            "metric": "n_ties",
            "value": float(m["n_ties"]),
            "ci_low": None,
            "ci_high": None,
        },
    ]


def evaluate_pairs(
    test: pl.DataFrame,
    r_chosen: np.ndarray,
    r_rejected: np.ndarray,
    *,
    group_by: tuple[str, ...] = (),
    seed: int = 0,
) -> pl.DataFrame:
    """Rows for preference metrics on all pairs, the length-bias probes, and per group.

    `test` needs label, chosen_chars, rejected_chars, prompt_id, plus the `group_by` columns."""
    gap = r_chosen - r_rejected
    label = test["label"].to_numpy()
    rows = preference_rows(gap, label, "all", seed)
    # Length-bias probes: the label decides which response is "chosen" (the winner).
    winner_longer = np.where(label >= 0.5, test["chosen_chars"].to_numpy() > test["rejected_chars"].to_numpy(),
                             test["rejected_chars"].to_numpy() > test["chosen_chars"].to_numpy())  # fmt: skip
    equal = test["chosen_chars"].to_numpy() == test["rejected_chars"].to_numpy()
    rows += preference_rows(
        gap[winner_longer & ~equal], label[winner_longer & ~equal], "winner_longer", seed
    )
    rows += preference_rows(
        gap[~winner_longer & ~equal], label[~winner_longer & ~equal], "winner_shorter", seed
    )
    for col in group_by:
        for value in sorted(test[col].drop_nulls().unique().to_list()):
            mask = (test[col] == value).fill_null(False).to_numpy()
            rows += preference_rows(gap[mask], label[mask], f"{col}={value}", seed)
    # Reward against length at a fixed prompt (both responses of each prompt's pairs).
    rewards = np.concatenate([r_chosen, r_rejected])
    lengths = np.concatenate([test["chosen_chars"].to_numpy(), test["rejected_chars"].to_numpy()])
    groups = np.concatenate([test["prompt_id"].to_numpy(), test["prompt_id"].to_numpy()])
    corr = reward_length_correlation(rewards, lengths, groups)
    rows.append({"benchmark": "length_bias", "subset": "all", "n": corr["n_groups"], "metric": "within_prompt_spearman",
                 "value": corr["within_group_spearman"], "ci_low": None, "ci_high": None})  # fmt: skip
    rows.append({"benchmark": "length_bias", "subset": "all", "n": int(rewards.size), "metric": "pooled_spearman",
                 "value": corr["pooled_spearman"], "ci_low": None, "ci_high": None})  # fmt: skip
    return pl.DataFrame(rows, schema=ROW_SCHEMA)


def prompt_swap_rows(r_own: np.ndarray, r_swapped: np.ndarray, seed: int = 0) -> pl.DataFrame:
    """Contextual accuracy: r(x, y written for x) > r(x, y' written for another prompt)."""
    correct = (r_own > r_swapped).astype(float)
    lo, hi = bootstrap_ci(correct, seed=seed) if correct.size else (np.nan, np.nan)
    return pl.DataFrame(
        [{"benchmark": "prompt_swap", "subset": "all", "n": int(correct.size), "metric": "accuracy",
          "value": prompt_swap_accuracy(r_own, r_swapped), "ci_low": lo, "ci_high": hi}],
        schema=ROW_SCHEMA,
    )  # fmt: skip
