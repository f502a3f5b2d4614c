"""The evidence stage: trivial baselines and paired differences against vanilla for one
benchmark run, stored as `benchmark_results` rows beside the models' own rows.

Baselines (`rmcore.evaluation.baselines`) are scored on the run's test pairs: longer wins,
shorter wins, a response-only model r(y) trained on the same training pairs, and the
shared-response (reference answer) rule where the data has one. Primary metrics the
shortcut cannot win are group-balanced accuracy over the bias cells and accuracy on the
test pairs the response-only model gets wrong. Every method is compared with the baseline
method by a paired interval (`rmcore.evaluation.paired`): rows with benchmark
`paired:<benchmark>`, value = method - baseline.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from rmcore.config import BASELINE
from rmcore.evaluation import baselines
from rmcore.evaluation.evaluate import ROW_SCHEMA, evaluate_pairs
from rmcore.evaluation.metrics import length_bias_subsets, pairwise_correct
from rmcore.evaluation.paired import (
    cell_balanced_mean,
    ece_statistic,
    paired_difference,
    subset_mean,
)
from rmcore.stages import scores
from rmcore.stages.benchmark import load_test_pairs
from warehouse import benchmarks as sql
from warehouse.connection import reader, transaction
from warehouse.pairs import split_pair_refs

RESPONSE_ONLY = "baseline:response-only"


def cell_masks(test: pl.DataFrame, cells: list[str]) -> dict[str, np.ndarray]:
    """(N,) masks of the bias cells: `winner_longer` / `winner_shorter`, or `FIELD=VALUE`
    for a provenance field the benchmark run groups by."""
    length = length_bias_subsets(test["label"], test["chosen_chars"], test["rejected_chars"])
    out = {}
    for cell in cells:
        if cell in length:
            out[cell] = length[cell]
        else:
            col, _, value = cell.partition("=")
            out[cell] = (test[col] == value).fill_null(False).to_numpy()
    return out


def _embeddings(warehouse: str | None, ids: pl.Series) -> tuple[dict[str, int], torch.Tensor]:
    encoder = scores.load_encoder(scores.BUNDLED_ENCODER, "cpu")
    scores.ensure_embeddings(warehouse, encoder, ids)
    return scores.cached_embeddings(warehouse, encoder.encoder_id, ids)


def response_only_gaps(
    warehouse: str | None, dataset_id: int, train_split: str, test: pl.DataFrame
) -> np.ndarray:
    """Test gaps of a response-only model trained on the dataset's training pairs (bundled
    encoder embeddings, cached)."""
    with reader(warehouse) as con:
        train = split_pair_refs(con, dataset_id, train_split)
    ids = pl.concat(
        [train["chosen_id"], train["rejected_id"], test["chosen_id"], test["rejected_id"]]
    )
    index, emb = _embeddings(warehouse, ids.unique())

    def rows(col: pl.Series) -> torch.Tensor:
        return emb[scores.embedding_rows(index, col)]

    model = baselines.fit_response_only(
        rows(train["chosen_id"]),
        rows(train["rejected_id"]),
        torch.from_numpy(train["label"].to_numpy().astype(np.float32)),
    )
    return baselines.response_only_gap(model, rows(test["chosen_id"]), rows(test["rejected_id"]))


def baseline_gaps(
    warehouse: str | None, dataset_id: int, train_split: str, test: pl.DataFrame
) -> dict[str, np.ndarray]:
    """Every trivial baseline's test gaps, by name."""
    out = {
        "baseline:longer-wins": baselines.longer_wins(test),
        "baseline:shorter-wins": baselines.shorter_wins(test),
        RESPONSE_ONLY: response_only_gaps(warehouse, dataset_id, train_split, test),
    }
    shared = baselines.shared_response_wins(test)
    if shared is not None:
        out["baseline:shared-response-wins"] = shared
    return out


def _matrix(preds: pl.DataFrame, method: str, pair_ids: pl.Series) -> np.ndarray:
    """(S, N) gaps of a method's seeds, in the order of `pair_ids`."""
    sel = preds.filter(pl.col("method") == method)
    wide = sel.pivot(on="seed", index="pair_id", values="gap")
    aligned = pl.DataFrame({"pair_id": pair_ids}).join(wide, on="pair_id", how="left")
    return aligned.drop("pair_id").to_numpy().T.astype(np.float64)


def paired_rows(
    test: pl.DataFrame,
    preds: pl.DataFrame,
    cells: dict[str, np.ndarray],
    wrong_for_response_only: np.ndarray,
    baseline: str = BASELINE,
    seed: int = 0,
) -> pl.DataFrame:
    """`paired:<benchmark>` rows: every method minus `baseline`, with paired intervals."""
    label = test["label"].to_numpy()
    hard = label != 0.5
    specs = {
        ("preference", "all", "accuracy"): ("correct", subset_mean(hard)),
        ("preference", "bias_balanced", "accuracy"): (
            "correct",
            cell_balanced_mean([m & hard for m in cells.values()]),
        ),
        ("preference", "response_only_wrong", "accuracy"): (
            "correct",
            subset_mean(hard & wrong_for_response_only),
        ),
        **{
            ("preference", cell, "accuracy"): ("correct", subset_mean(mask & hard))
            for cell, mask in cells.items()
        },
        ("preference", "all", "log_loss"): ("nll", subset_mean(np.ones_like(hard))),
        ("preference", "all", "brier"): ("brier", subset_mean(np.ones_like(hard))),
        ("preference", "all", "ece"): ("prob", ece_statistic(label)),
    }
    pair_ids, clusters = test["pair_id"], test["prompt_id"].to_numpy()

    def values(gap: np.ndarray) -> dict[str, np.ndarray]:
        prob = 0.5 * (1.0 + np.tanh(0.5 * gap))
        nll = label * np.logaddexp(0.0, -gap) + (1.0 - label) * np.logaddexp(0.0, gap)
        correct = np.stack([pairwise_correct(g, label)[0] for g in gap]).astype(np.float64)
        return {"correct": correct, "nll": nll, "brier": (prob - label) ** 2, "prob": prob}

    base = values(_matrix(preds, baseline, pair_ids))
    rows = []
    for method in preds["method"].unique(maintain_order=True).to_list():
        if method == baseline:
            continue
        mine = values(_matrix(preds, method, pair_ids))
        for (benchmark, subset, metric), (kind, stat) in specs.items():
            d = paired_difference(mine[kind], base[kind], stat, clusters, seed=seed)
            rows.append(
                {
                    "model": method,
                    "method": method,
                    "seed": None,
                    "benchmark": f"paired:{benchmark}",
                    "subset": subset,
                    "n": int(test.height),
                    "metric": metric,
                    "value": d.difference,
                    "ci_low": d.ci_low,
                    "ci_high": d.ci_high,
                }
            )
    return pl.DataFrame(rows, schema=_STORED_SCHEMA)


_STORED_SCHEMA = {"model": pl.Utf8, "method": pl.Utf8, "seed": pl.Int32} | ROW_SCHEMA


def add_evidence(
    warehouse: str | None,
    benchmark_run_id: int,
    *,
    train_split: str = "train",
    baseline: str = BASELINE,
) -> dict:
    """Store the baselines' rows and the paired differences of a benchmark run (once: a
    re-run replaces them). Returns counts."""
    with reader(warehouse) as con:
        run = sql.run_row(con, benchmark_run_id)
        preds = sql.predictions(con, benchmark_run_id)
    group_by = list(run["params"].get("group_by") or [])
    cells = list(run["params"].get("bias_cells") or [])
    test = load_test_pairs(warehouse, run["dataset_id"], run["split"], group_by)
    masks = cell_masks(test, cells)
    gaps = baseline_gaps(warehouse, run["dataset_id"], train_split, test)
    label = test["label"].to_numpy()
    ro_wrong = ~pairwise_correct(gaps[RESPONSE_ONLY], label)[0]  # (N,)
    zeros = np.zeros(test.height)
    frames = []
    for name, gap in gaps.items():
        rows = evaluate_pairs(test, gap, zeros, group_by=tuple(group_by), bias_cells=tuple(cells))
        frames.append(
            rows.filter(pl.col("metric") == "accuracy")
            .with_columns(
                pl.lit(name).alias("model"),
                pl.lit(name).alias("method"),
                pl.lit(None, dtype=pl.Int32).alias("seed"),
            )
            .select(list(_STORED_SCHEMA))
        )
    tagged = pl.concat(
        [
            preds,
            *[
                test.select("pair_id", "label").with_columns(
                    pl.Series("gap", gap),
                    pl.lit(name).alias("model"),
                    pl.lit(name).alias("method"),
                    pl.lit(None, dtype=pl.Int32).alias("seed"),
                )
                for name, gap in gaps.items()
            ],
        ],
        how="diagonal_relaxed",
    )
    ro_rows = _response_only_wrong_rows(test, tagged, ro_wrong)
    paired = paired_rows(test, preds, masks, ro_wrong, baseline)
    stored = pl.concat([*frames, ro_rows, paired])
    with transaction(warehouse) as con:
        sql.replace_evidence(con, benchmark_run_id, stored)
    return {"rows": stored.height, "baselines": list(gaps)}


def _response_only_wrong_rows(
    test: pl.DataFrame, preds: pl.DataFrame, ro_wrong: np.ndarray
) -> pl.DataFrame:
    """Each trained model's accuracy on the pairs the response-only model gets wrong."""
    label = test["label"].to_numpy()
    mask = ro_wrong & (label != 0.5)
    rows = []
    groups = preds.group_by(["model", "method", "seed"], maintain_order=True)
    for (model, method, seed), sel in groups:
        gap = pl.DataFrame({"pair_id": test["pair_id"]}).join(sel, on="pair_id", how="left")["gap"]
        correct = pairwise_correct(gap.to_numpy(), label)[0]
        rows.append(
            {
                "model": model,
                "method": method,
                "seed": seed,
                "benchmark": "preference",
                "subset": "response_only_wrong",
                "n": int(mask.sum()),
                "metric": "accuracy",
                "value": float(correct[mask].mean()) if mask.any() else float("nan"),
                "ci_low": None,
                "ci_high": None,
            }
        )
    return pl.DataFrame(rows, schema=_STORED_SCHEMA)
