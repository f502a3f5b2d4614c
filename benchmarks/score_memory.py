"""Peak memory of the score stage's two whole-run steps at 1M pairs, new path against old.

    python benchmarks/score_memory.py [--pairs 1000000] [--prompts-per-pair 16]

The scale benchmark (docs/RESULTS.md section 9) found the score stage at 8.5 GiB for 1M
pairs, from two steps that hold the whole run in Python:
- `plan`: sampling the K prompts of every pair (`rmcore.decomposition.scoring.plan_prompts`).
  Baseline: the previous code, per-row Python lists of id strings (`ids.tolist()`).
- `merge`: loading every shard's fresh scores into `rm_scores` (`merge_shards`). Baseline: the
  previous code, every shard file concatenated in polars and inserted from Arrow
  (`warehouse.scoring.store_values`); now DuckDB reads the files (`store_value_files`).
Pairs are drawn from a bank of 1,120 prompts and 2,520 responses (the demo bank's sizes, as in
`benchmarks/scale.py`); the shard files are those a real plan gives (`needed_combos` of each
2,048-pair shard, a score fixed per combination). Each measurement runs in its own child process, whose peak
RSS (`ru_maxrss`) is printed; both paths must give the same result (checked here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BANK = (1120, 2520)  # distinct prompts, responses


def bank_ids(n: int, salt: str) -> pl.Series:
    return pl.Series([hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)])


def pairs_frame(n: int) -> pl.DataFrame:
    prompts, responses = bank_ids(BANK[0], "p"), bank_ids(BANK[1], "r")
    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "pair_id": pl.int_range(n, eager=True).cast(pl.Utf8),
            "prompt_id": prompts.gather(rng.integers(0, BANK[0], n)),
            "chosen_id": responses.gather(rng.integers(0, BANK[1], n)),
            "rejected_id": responses.gather(rng.integers(0, BANK[1], n)),
        }
    )


def old_plan(pairs: pl.DataFrame, pool_ids: pl.Series, m: int, seed: int) -> pl.DataFrame:
    """plan_prompts before this change (the baseline)."""
    from rmcore.decomposition.sampling import sample_prompts

    pool = pool_ids.unique().sort()
    sample = sample_prompts(pairs["prompt_id"].to_numpy(), pool.to_numpy(), m, seed)
    return pairs.with_columns(
        pl.Series("prompt_ids", sample.ids.tolist(), dtype=pl.List(pl.Utf8)),
        pl.Series("prompt_mask", sample.mask.tolist(), dtype=pl.List(pl.Boolean)),
    )


def child(step: str, path: str, args: argparse.Namespace) -> dict:
    """One measurement: the step's own seconds and a digest of its result."""
    from rmcore.config import ScoringConfig
    from rmcore.decomposition import scoring
    from warehouse import scoring as sql
    from warehouse.connection import reader, transaction

    m = args.prompts_per_pair
    if step.startswith("plan"):
        pairs = pairs_frame(args.pairs)
        pool = pairs["prompt_id"]
        start = time.perf_counter()
        if step == "plan-old":
            out = old_plan(pairs, pool, m, 0)
        else:
            out = scoring.plan_prompts(pairs, pool, ScoringConfig(prompts_per_pair=m, seed=0))
        seconds = time.perf_counter() - start
        digest = int(out["prompt_ids"].explode().hash().sum())
    else:
        paths = sorted(str(p) for p in Path(path).glob("scores-*.parquet"))
        wh = str(Path(path) / f"{step}.duckdb")
        start = time.perf_counter()
        with transaction(wh) as con:
            if step == "merge-old":
                fresh = pl.concat([pl.read_parquet(p) for p in paths])
                sql.store_values(con, "rm_scores", "m", "r", fresh)
            else:
                sql.store_value_files(con, "rm_scores", "m", "r", paths)
        seconds = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the check
        wanted = pl.concat(
            [pl.read_parquet(p, columns=["prompt_id", "response_id"]) for p in paths]
        )
        with reader(wh) as con:
            stored = sql.cached_values(con, "rm_scores", "m", "r", wanted.unique())
        digest = (stored.height, stored["score"].sum())
        return {"step": step, "seconds": seconds, "peak_rss_mib": rss, "digest": str(digest)}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step": step, "seconds": seconds, "peak_rss_mib": rss, "digest": str(digest)}


def write_shards(folder: Path, args: argparse.Namespace) -> dict:
    """The fresh-score files a run over `args.pairs` pairs writes, one per 2,048-pair shard."""
    from rmcore.config import ScoringConfig
    from rmcore.decomposition import scoring

    config = ScoringConfig(prompts_per_pair=args.prompts_per_pair, seed=0)
    pairs = pairs_frame(args.pairs)
    plan = scoring.plan_prompts(pairs, pairs["prompt_id"], config)
    rows = 0
    for s, start in enumerate(range(0, plan.height, config.shard_size)):
        combos = scoring.needed_combos(plan.slice(start, config.shard_size))
        rows += combos.height
        # a score fixed per combination (as a model's is), whichever shard scored it
        score = (pl.struct("prompt_id", "response_id").hash() % 1_000_003).cast(pl.Float64)
        combos.with_columns(score.alias("score")).write_parquet(folder / f"scores-{s:05d}.parquet")
    return {"shards": s + 1, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--prompts-per-pair", type=int, default=16)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args)))
        return
    with tempfile.TemporaryDirectory(prefix="rmcurate-score-memory-") as tmp:
        shards = write_shards(Path(tmp), args)
        print(
            f"{args.pairs:,} pairs, M = {args.prompts_per_pair}: {shards['shards']} shard files,"
            f" {shards['rows']:,} fresh-score rows"
        )
        results = {}
        for step in ("plan-old", "plan-new", "merge-old", "merge-new"):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                step,
                "--folder",
                tmp,
                "--pairs",
                str(args.pairs),
                "--prompts-per-pair",
                str(args.prompts_per_pair),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[step] = json.loads(out.strip().splitlines()[-1])
    print("| step | path | seconds | peak RSS MiB | result |")
    print("|---|---|---:|---:|---|")
    for step, r in results.items():
        name, path = step.split("-")
        print(
            f"| {name} | {path} | {r['seconds']:.2f} | {r['peak_rss_mib']:,.0f} | {r['digest']} |"
        )
    for name in ("plan", "merge"):
        old, new = results[f"{name}-old"], results[f"{name}-new"]
        same = "same result" if old["digest"] == new["digest"] else "RESULTS DIFFER"
        print(
            f"{name}: {old['peak_rss_mib'] / new['peak_rss_mib']:.1f}x less memory,"
            f" {old['seconds'] / new['seconds']:.1f}x time ratio (old / new), {same}"
        )


if __name__ == "__main__":
    main()
