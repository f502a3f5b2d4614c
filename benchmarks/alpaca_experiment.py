"""The real-data experiment: does prompt-free prioritization generalize on AlpacaEval annotations?

Protocol (../shared/data/README.md): split by generator AND by instruction, so every test pair
is a new prompt-response combination: train = train generators x train instructions,
validation = train generators x validation instructions, test = held-out generators x held-out
instructions; pairs that mix the two sides are left out (counted). Labels are the judge's
probabilities (soft; ties are 0.5). The ablation harness (issue 10) then runs as the flow
does by default: cross-fitted free gaps (5 folds by prompt), embedding importance weights
with the temperature set for a mean ESS of 3-8, the prompt pool = training prompts, the
priority and filter parameters chosen on the validation split by group-balanced accuracy,
RRM with its uncertainty filter and cap under both budgets, trivial baselines, and paired
differences against vanilla (test prompts resampled, seed spread added).

    python benchmarks/alpaca_experiment.py                      # 5 seeds, all instructions
    python benchmarks/alpaca_experiment.py --seeds 0,1,2 --instructions 240  # reduced
    python benchmarks/alpaca_experiment.py --methods vanilla,prompt-free-priority,prompt-free-online

`--instructions N` keeps a seeded random subset of N instructions (all generators) before
the split: the reduced configuration for a loaded machine. Prints the summary grid, the
paired differences and the findings, and writes them as JSON next to the warehouse.
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


def load_records(folder: Path) -> pl.DataFrame:
    rows = []
    for path in sorted(folder.glob("*.json.gz")):
        rows += json.loads(gzip.decompress(path.read_bytes()))
    return pl.DataFrame(rows, infer_schema_length=None).drop("raw_completion", strict=False)


def keep_instructions(records: pl.DataFrame, n: int | None, seed: int) -> pl.DataFrame:
    """A seeded random subset of `n` instructions with every generator's answer to them."""
    if n is None:
        return records
    instructions = sorted(records["instruction"].unique().to_list())
    rng = np.random.default_rng(seed)
    keep = [instructions[i] for i in rng.choice(len(instructions), size=n, replace=False)]
    return records.filter(pl.col("instruction").is_in(keep))


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


def parser(doc: str) -> argparse.ArgumentParser:
    """The options both real-data experiments share."""
    from rmcore.config import AblationConfig

    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "alpaca_eval_dev")
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "alpaca")
    p.add_argument("--seeds", default="0,1,2,3,4")  # >= 5 seeds in benchmarks (issue 10)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--test-generators", type=int, default=5)
    p.add_argument("--instructions", type=int, default=None)
    p.add_argument("--folds", type=int, default=AblationConfig.cross_fit_folds)
    p.add_argument("--prompts-per-pair", type=int, default=AblationConfig.prompts_per_pair)
    p.add_argument("--epochs", type=int, default=AblationConfig.epochs)
    # e.g. add prompt-free-online, the opt-in online variant
    p.add_argument("--methods", default=",".join(AblationConfig.methods))
    return p


def split_records(args: argparse.Namespace) -> pl.DataFrame:
    if not args.data.is_dir():
        sys.exit(f"no data at {args.data}")
    records = keep_instructions(load_records(args.data), args.instructions, args.split_seed)
    records = assign_splits(
        records,
        test_generators=args.test_generators,
        test_frac=0.2,
        val_frac=0.1,
        seed=args.split_seed,
    )
    print("records per split (null = mixes held-out and training sides, left out):")
    print(records.group_by("split").len().sort("split"))
    return records.filter(pl.col("split").is_not_null())


def run_ablation(
    args: argparse.Namespace,
    records: pl.DataFrame,
    *,
    name: str,
    group_by: list[str],
    bias_cells: list[str] | None = None,
) -> tuple[dict, float]:
    """Ingest `records` as dataset `name` and run the ablation flow on it: (result, seconds)."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    warehouse = str(args.workdir / "alpaca.duckdb")
    env.configure(warehouse)
    from flows.ingest import ingest_flow
    from flows.pipeline import ablation_flow

    source = args.workdir / f"{name}_split.jsonl"
    records.write_ndjson(source)
    start = time.perf_counter()
    ingest = ingest_flow(
        source=str(source),
        name=name,
        warehouse=warehouse,
        reports_dir=str(args.workdir / "reports"),
    )
    result = ablation_flow(
        dataset=f"{name}@{ingest['version']}",
        name=name,
        seeds=[int(s) for s in args.seeds.split(",")],
        methods=args.methods.split(","),
        prompts_per_pair=args.prompts_per_pair,
        epochs=args.epochs,
        cross_fit_folds=args.folds,
        group_by=group_by,
        bias_cells=bias_cells,
        warehouse=warehouse,
        reports_dir=str(args.workdir / "reports"),
        overwrite=True,
    )
    return result | {"warehouse": warehouse}, time.perf_counter() - start


def show(result: dict, seconds: float, out: Path) -> None:
    """Print the grid, the paired differences and the findings; save them as JSON."""
    with pl.Config(tbl_rows=100, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=250):
        print(pl.DataFrame(result["summary"]))
        print(pl.DataFrame(result["paired"]))
        print(pl.DataFrame(result["facts"]))
        print(pl.DataFrame(result["tuning"]))
    for line in result["findings"]:
        print("-", line)
    keep = ("summary", "paired", "facts", "tuning", "findings", "chosen", "models", "report")
    out.write_text(json.dumps({k: result[k] for k in keep} | {"seconds": seconds}, default=str))
    print(f"\nreport: {result['report']}\ntotal wall time: {seconds:.0f} s")


def main() -> None:
    args = parser(__doc__).parse_args()
    records = split_records(args)
    result, seconds = run_ablation(args, records, name="alpaca", group_by=["dataset"])
    show(result, seconds, args.workdir / "alpaca_result.json")


if __name__ == "__main__":
    main()
