"""The semi-synthetic marker experiment on real AlpacaEval text (issue 10, item 6).

A fixed, response-only marker sentence is appended to one response of every record: to the
winner in 90% of the training pairs and to the loser in 90% of the test pairs, so on the
training data "the marked answer wins" is a strong prompt-free shortcut that the test split
reverses. The validation split is balanced (50/50), so parameters chosen there cannot profit
from the shortcut; the bias cells are "marker on the winner" / "marker on the loser".
Reported: Spearman(free gap, marker difference) on the training pairs under the
cross-fitted reference, and for every method the accuracy on the marker-reversed test pairs
and Spearman(test gap, marker difference).

    python benchmarks/marker_experiment.py --seeds 0,1,2 --instructions 240
"""

from __future__ import annotations

import numpy as np
import polars as pl

MARKER = "Thank you for reading this answer."
MARKED_WINNER_SHARE = {"train": 0.9, "validation": 0.5, "test": 0.1}


def add_marker(records: pl.DataFrame, *, seed: int) -> pl.DataFrame:
    """`records` (AlpacaEval fields plus `split`) with MARKER appended to one output per
    record: the winner with probability MARKED_WINNER_SHARE[split], else the loser. The
    winner is output_2 when preference > 1.5 (a tie counts output_1 as the winner, as the
    ingest stores it). `marker_on_winner` records the choice."""
    rng = np.random.default_rng(seed)
    share = records["split"].replace_strict(MARKED_WINNER_SHARE, default=0.5).to_numpy()
    on_winner = rng.random(records.height) < share  # (N,)
    output_2_wins = (records["preference"] > 1.5).to_numpy()
    mark_2 = pl.Series(on_winner == output_2_wins)
    suffix = pl.lit("\n\n" + MARKER)
    return records.with_columns(
        pl.when(mark_2)
        .then(pl.col("output_1"))
        .otherwise(pl.col("output_1") + suffix)
        .alias("output_1"),
        pl.when(mark_2)
        .then(pl.col("output_2") + suffix)
        .otherwise(pl.col("output_2"))
        .alias("output_2"),
        pl.Series("marker_on_winner", on_winner),
    )


def marker_difference(provenance: pl.Series) -> np.ndarray:
    """+1 where the stored chosen (the winner) carries the marker, -1 where the rejected does."""
    on_winner = provenance.str.json_path_match("$.marker_on_winner") == "true"
    return np.where(on_winner.to_numpy(), 1.0, -1.0)


def marker_evidence(result: dict) -> dict:
    """Spearman(free gap, marker difference) on the training pairs under the cross-fitted
    reference, and per method the accuracy on the marker-reversed test pairs (marker on the
    loser) with Spearman(test gap, marker difference) as its reliance on the marker."""
    from scipy import stats

    from warehouse import benchmarks as bsql
    from warehouse.connection import reader

    with reader(result["warehouse"]) as con:
        scored = bsql.scored_train_pairs(con, result["scoring_run_id"])
        preds = bsql.predictions(con, result["benchmark_run_id"])
        test = bsql.prediction_provenance(con, result["benchmark_run_id"])
    train = scored.filter(pl.col("split") == "train")
    rho = stats.spearmanr(train["free_gap"], marker_difference(train["provenance"])).statistic
    test = test.with_columns(pl.Series("marker", marker_difference(test["provenance"])))
    joined = preds.join(test.select("pair_id", "marker"), on="pair_id")
    per_method = (
        joined.group_by("method", "seed")
        .agg(
            ((pl.col("gap") > 0) == (pl.col("label") > 0.5))
            .filter((pl.col("marker") < 0) & (pl.col("label") != 0.5))
            .mean()
            .alias("reversed_accuracy"),
            pl.corr("gap", "marker", method="spearman").alias("spearman_gap_marker"),
        )
        .group_by("method", maintain_order=True)
        .agg(
            pl.col("reversed_accuracy").mean(),
            pl.col("reversed_accuracy").std().alias("reversed_accuracy_sd"),
            pl.col("spearman_gap_marker").mean(),
            pl.len().alias("seeds"),
        )
        .sort("method")
    )
    return {
        "spearman_free_gap_marker_train": float(rho),
        "n_train": train.height,
        "n_reversed_test": int(test.filter(pl.col("marker") < 0).height),
        "per_method": per_method.to_dicts(),
    }


def main() -> None:
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.alpaca_experiment import parser, run_ablation, show, split_records

    args = parser(__doc__).parse_args()
    records = add_marker(split_records(args), seed=args.split_seed)
    cells = ["marker_on_winner=true", "marker_on_winner=false"]
    result, seconds = run_ablation(
        args, records, name="marker", group_by=["marker_on_winner"], bias_cells=cells
    )
    show(result, seconds, args.workdir / "marker_result.json")
    evidence = marker_evidence(result)
    print(json.dumps(evidence, indent=1))
    (args.workdir / "marker_evidence.json").write_text(json.dumps(evidence))


if __name__ == "__main__":
    main()
