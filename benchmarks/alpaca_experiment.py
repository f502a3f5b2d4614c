"""The real-data experiment: does prompt-free prioritization generalize on AlpacaEval annotations?

Protocol (../shared/data/README.md): split by generator AND by instruction, so every test pair
is a new prompt-response combination: train = train generators x train instructions,
validation = train generators x validation instructions, test = held-out generators x held-out
instructions; pairs that mix the two sides are left out (counted). Labels are the judge's
probabilities (soft; ties are 0.5). The four methods (vanilla, RRM, prompt-free priority,
prompt-free filter) train the embed-head backend over several seeds with matched step budgets;
the split is fixed before anything is trained and nothing is tuned on the test split.

    python benchmarks/alpaca_experiment.py --seeds 0,1,2

prints the summary table, the findings, and the evidence behind them (free-gap distribution,
ESS, how the free gap relates to the length difference the judge is known to favour).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from cli import env  # noqa: E402

env.configure()  # local Prefect home, analytics off, generous server start-up timeout


def load_records(folder: Path) -> pl.DataFrame:
    rows = []
    for path in sorted(folder.glob("*.json.gz")):
        rows += json.loads(gzip.decompress(path.read_bytes()))
    return pl.DataFrame(rows, infer_schema_length=None)


def assign_splits(
    records: pl.DataFrame, *, test_generators: int, test_frac: float, val_frac: float, seed: int
) -> pl.DataFrame:
    """Held-out generators and held-out instructions, drawn once from the seed."""
    rng = np.random.default_rng(seed)
    generators = sorted(records["generator_2"].unique().to_list())
    held_gen = set(rng.choice(generators, size=test_generators, replace=False).tolist())
    instructions = sorted(records["instruction"].unique().to_list())
    order = rng.permutation(len(instructions))
    n_test, n_val = (
        round(test_frac * len(instructions)),
        round(val_frac * len(instructions)),
    )
    test_ins = {instructions[i] for i in order[:n_test]}
    val_ins = {instructions[i] for i in order[n_test : n_test + n_val]}
    gen_test = pl.col("generator_2").is_in(list(held_gen))
    ins_test, ins_val = (
        pl.col("instruction").is_in(list(test_ins)),
        pl.col("instruction").is_in(list(val_ins)),
    )
    split = (
        pl.when(gen_test & ins_test)
        .then(pl.lit("test"))
        .when(~gen_test & ins_val)
        .then(pl.lit("validation"))
        .when(~gen_test & ~ins_test & ~ins_val)
        .then(pl.lit("train"))
        .otherwise(pl.lit(None))
    )
    return records.with_columns(split.alias("split"))


def main() -> None:
    from rmcore.config import AblationConfig

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "alpaca_eval_dev"
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "alpaca")
    parser.add_argument("--seeds", default=",".join(map(str, AblationConfig.seeds)))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--test-generators", type=int, default=5)
    parser.add_argument(
        "--prompts-per-pair", "--prompts", type=int, default=AblationConfig.prompts_per_pair
    )
    parser.add_argument("--epochs", type=int, default=AblationConfig.epochs)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no data at {args.data}")

    from flows.ingest import ingest_flow
    from flows.pipeline import ablation_flow
    from warehouse import benchmarks as bsql
    from warehouse.connection import reader

    args.workdir.mkdir(parents=True, exist_ok=True)
    records = assign_splits(
        load_records(args.data),
        test_generators=args.test_generators,
        test_frac=0.2,
        val_frac=0.1,
        seed=args.split_seed,
    )
    counts = records.group_by("split").len().sort("split")
    print("records per split (null = mixes held-out and training sides, left out):")
    print(counts)
    source = args.workdir / "alpaca_split.jsonl"
    records.filter(pl.col("split").is_not_null()).write_ndjson(source)
    warehouse = str(args.workdir / "alpaca.duckdb")
    start = time.perf_counter()
    ingest = ingest_flow(
        source=str(source),
        name="alpaca",
        warehouse=warehouse,
        reports_dir=str(args.workdir / "reports"),
    )
    result = ablation_flow(
        dataset=f"alpaca@{ingest['version']}",
        name="alpaca",
        seeds=[int(s) for s in args.seeds.split(",")],
        prompts_per_pair=args.prompts_per_pair,
        epochs=args.epochs,
        group_by=["dataset"],
        warehouse=warehouse,
        reports_dir=str(args.workdir / "reports"),
    )
    seconds = time.perf_counter() - start
    with pl.Config(tbl_rows=100, tbl_cols=12, fmt_str_lengths=40, tbl_width_chars=160):
        print(pl.DataFrame(result["summary"]))
    for line in result["findings"]:
        print("-", line)
    # The evidence: what the free gaps look like on this data.
    with reader(warehouse) as con:
        scored = bsql.scored_train_pairs(con, result["scoring_run_id"])
    train = scored.filter(pl.col("split") == "train")
    hard = train.filter(pl.col("label") != 0.5)
    print("\nfree gaps of the training pairs under the vanilla reference model:")
    print(
        train.select(
            pl.col("free_gap").quantile(0.05).alias("p05"),
            pl.col("free_gap").median().alias("median"),
            pl.col("free_gap").quantile(0.95).alias("p95"),
            pl.col("related_gap").abs().median().alias("median |related|"),
            pl.col("ess").mean().alias("mean ESS"),
            pl.corr("free_gap", "length_diff_chars", method="spearman").alias(
                "spearman(free, len diff)"
            ),
            pl.corr("related_gap", "length_diff_chars", method="spearman").alias(
                "spearman(related, len diff)"
            ),
        )
    )
    agree = ((hard["free_gap"] > 0) == (hard["label"] > 0.5)).mean()
    longer = ((hard["length_diff_chars"] > 0) == (hard["label"] > 0.5)).mean()
    print(
        f"share of hard-label training pairs whose free gap alone agrees with the label: {agree:.3f}"
    )
    print(f"share of hard-label training pairs whose winner is the longer response: {longer:.3f}")
    print(f"\nreport: {result['report']}\ntotal wall time: {seconds:.0f} s")


if __name__ == "__main__":
    main()
