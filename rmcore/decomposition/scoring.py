"""Cross-prompt scoring: from pairs and sampled prompts to prompt-free gaps.

For every pair i the engine needs r(x_k, y_w) and r(x_k, y_l) for its own prompt and M
sampled ones (K = 1 + M). Those are looked up in a (prompt_id, response_id) -> score
table, so each distinct combination is scored once, ever, per model revision. This module
is pure: the caller (the score flow) supplies cached scores and stores new ones.

Shapes: N pairs, K prompts per pair (column 0 = own prompt), padded with a mask when the
pool is smaller than M.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from rmcore.config import ScoringConfig
from rmcore.decomposition import weights
from rmcore.decomposition.sampling import sample_prompts
from rmcore.decomposition.solver import solve_free_gap


def plan_prompts(pairs: pl.DataFrame, pool_ids: pl.Series, config: ScoringConfig) -> pl.DataFrame:
    """`pairs` plus `prompt_ids` (list of K ids, own first) and `prompt_mask` (list of K bools).

    Sampling is seeded and depends only on the pool and the pairs' order, so a resumed run
    draws exactly the same prompts. It runs on integer codes of the sorted ids (the codes keep
    the ids' order, so the sample is the one the ids themselves would give) and the lists are
    built by reshaping flat columns: at 1M pairs x 17 prompts, per-row Python lists of strings
    cost gigabytes (docs/RESULTS.md section 9)."""
    pool = pool_ids.unique().sort()
    universe = pl.concat([pool, pairs["prompt_id"]]).unique().sort()
    sample = sample_prompts(
        universe.search_sorted(pairs["prompt_id"]).to_numpy(),
        universe.search_sorted(pool).to_numpy(),
        config.prompts_per_pair,
        config.seed,
    )
    shape = sample.ids.shape
    ids = universe.gather(sample.ids.ravel()).reshape(shape).cast(pl.List(pl.Utf8))
    mask = pl.Series(sample.mask.ravel()).reshape(shape).cast(pl.List(pl.Boolean))
    return pairs.with_columns(ids.alias("prompt_ids"), mask.alias("prompt_mask"))


def long_form(plan: pl.DataFrame) -> pl.DataFrame:
    """One row per (pair, k): row, k, prompt_id, valid, chosen_id, rejected_id."""
    return (
        plan.with_row_index("row")
        .select(
            "row",
            "chosen_id",
            "rejected_id",
            "prompt_ids",
            "prompt_mask",
            pl.int_ranges(0, pl.col("prompt_ids").list.len()).alias("k"),
        )
        .explode("prompt_ids", "prompt_mask", "k")
        .rename({"prompt_ids": "prompt_id", "prompt_mask": "valid"})
    )


def needed_combos(plan: pl.DataFrame) -> pl.DataFrame:
    """Distinct (prompt_id, response_id) the plan needs scored."""
    lf = long_form(plan).filter("valid")
    return pl.concat(
        [
            lf.select("prompt_id", pl.col("chosen_id").alias("response_id")),
            lf.select("prompt_id", pl.col("rejected_id").alias("response_id")),
        ]
    ).unique()


def gather(
    plan: pl.DataFrame, table: pl.DataFrame, value: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, K) tensors of table[value] at (prompt_k, chosen) and (prompt_k, rejected), and the
    (N, K) validity mask. Raises if a needed combination is missing from `table`."""
    lf = long_form(plan)
    n, k = plan.height, int(lf["k"].max()) + 1 if lf.height else 1
    keyed = table.select("prompt_id", "response_id", pl.col(value).cast(pl.Float64))
    joined = lf.join(
        keyed.rename({"response_id": "chosen_id", value: "v_w"}),
        on=["prompt_id", "chosen_id"],
        how="left",
    ).join(
        keyed.rename({"response_id": "rejected_id", value: "v_l"}),
        on=["prompt_id", "rejected_id"],
        how="left",
    )
    missing = joined.filter(
        pl.col("valid") & (pl.col("v_w").is_null() | pl.col("v_l").is_null())
    ).height
    if missing:
        raise KeyError(
            f"{missing} (pair, prompt) cells have no {value}; the score table is incomplete"
        )
    joined = joined.sort("row", "k")

    def dense(col: str) -> torch.Tensor:
        flat = torch.full((n * k,), float("nan"), dtype=torch.float64)
        idx = torch.from_numpy(
            joined["row"].to_numpy().astype(np.int64) * k + joined["k"].to_numpy()
        )
        flat[idx] = torch.from_numpy(
            joined[col].fill_null(float("nan")).to_numpy().astype(np.float64)
        )
        return flat.view(n, k)

    valid = torch.zeros(n * k, dtype=torch.bool)
    valid[
        torch.from_numpy(joined["row"].to_numpy().astype(np.int64) * k + joined["k"].to_numpy())
    ] = torch.from_numpy(joined["valid"].to_numpy().copy())
    return dense("v_w"), dense("v_l"), valid.view(n, k)


def decompose(
    plan: pl.DataFrame,
    scores: pl.DataFrame,
    config: ScoringConfig,
    log_weights: torch.Tensor | None = None,
) -> pl.DataFrame:
    """Per-pair decomposition from a score table covering `needed_combos(plan)`.

    `log_weights` (N, K): unnormalized log importance weights (lm or embedding methods);
    None means uniform over the valid prompts."""
    r_w, r_l, valid = gather(plan, scores, "score")
    gaps = torch.where(valid, r_w - r_l, torch.zeros_like(r_w))  # (N, K)
    beta = config.beta if config.weights == "lm" else 1.0
    logw = torch.zeros_like(gaps) if log_weights is None else log_weights.to(torch.float64)
    w = weights.normalize_log_weights(
        torch.where(valid, logw, torch.zeros_like(logw)),
        valid,
        beta if log_weights is not None else 0.0,
    )
    result = solve_free_gap(gaps, w, criterion=config.criterion)
    return pl.DataFrame(
        {
            "pair_id": plan["pair_id"],
            "own_gap": result.own.numpy(),
            "free_gap": result.free.numpy(),
            "related_gap": result.related.numpy(),
            "ess": weights.effective_sample_size(w).numpy(),
            "k": valid.sum(dim=1).numpy().astype(np.int32),
            "iterations": result.iterations.numpy().astype(np.int32),
            "converged": result.converged.numpy(),
        }
    )


def embedding_rows(index: dict[str, int], ids: pl.Series) -> torch.Tensor:
    """Rows of an embedding matrix for text ids (`index` maps id -> row); a missing id raises
    (never row 0). The one text-id -> embedding-row lookup (`rmcore.stages.scores` uses it)."""
    missing = ids.filter(~ids.is_in(list(index))).unique()
    if missing.len():
        raise KeyError(f"{missing.len()} texts have no cached embedding, e.g. {missing[0]}")
    return torch.as_tensor(ids.replace_strict(index, return_dtype=pl.Int64).to_numpy().copy())


def lm_log_weights(plan: pl.DataFrame, logliks: pl.DataFrame) -> torch.Tensor:
    """(N, K) l(y_w | x_k) + l(y_l | x_k) from a per-token log-likelihood table (0 on padding)."""
    l_w, l_l, valid = gather(plan, logliks, "loglik")
    return torch.where(valid, weights.lm_log_weights(l_w, l_l), torch.zeros_like(l_w))


def embedding_log_weights(
    plan: pl.DataFrame, index: dict[str, int], matrix: torch.Tensor, temperature: float
) -> torch.Tensor:
    """(N, K) `weights.embedding_log_weights` of every pair's K prompts. `index` maps text ids
    to rows of `matrix` (unit embeddings); a text without an embedding raises."""
    lf = long_form(plan).sort("row", "k")
    n, k = plan.height, int(lf["k"].max()) + 1
    return weights.embedding_log_weights(
        matrix,
        matrix[embedding_rows(index, plan["chosen_id"])],
        matrix[embedding_rows(index, plan["rejected_id"])],
        temperature,
        prompt_idx=embedding_rows(index, lf["prompt_id"]).view(n, k),
    )


def summarize(results: pl.DataFrame, labels: pl.DataFrame) -> dict[str, float]:
    """Headline numbers for the CLI: free-gap quantiles, label agreement, ESS."""
    df = results.join(labels.select("pair_id", "label"), on="pair_id")
    hard = df.filter(pl.col("label") != 0.5)
    agree = (
        ((hard["free_gap"] > 0) == (hard["label"] > 0.5)).mean() if hard.height else float("nan")
    )
    q = df["free_gap"].quantile
    return {
        "pairs": df.height,
        "free_gap_p05": q(0.05),
        "free_gap_p50": q(0.5),
        "free_gap_p95": q(0.95),
        "free_gap_mean": df["free_gap"].mean(),
        "free_agrees_with_label": agree,
        "own_agrees_with_label": ((hard["own_gap"] > 0) == (hard["label"] > 0.5)).mean()
        if hard.height
        else float("nan"),
        "ess_mean": df["ess"].mean(),
        "ess_min": df["ess"].min(),
        "converged_share": df["converged"].mean(),
    }
