"""Prefect tasks for the benchmark stage: evaluate trained models on held-out pairs."""

from __future__ import annotations

import numpy as np
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.evaluation.evaluate import evaluate_pairs, prompt_swap_rows
from rmcore.evaluation.metrics import make_prompt_swap_pairs
from tasks.common import current_flow_run_id
from tasks.score import load_model, score_combos
from warehouse import benchmarks as sql
from warehouse import catalog
from warehouse.connection import reader, transaction
from warehouse.pairs import split_pairs


@task(name="load-test-pairs", cache_policy=NO_CACHE)
def load_test_pairs(
    warehouse: str | None, dataset: str, split: str, group_by: list[str]
) -> tuple[int, pl.DataFrame]:
    with reader(warehouse) as con:
        dataset_id = catalog.resolve_dataset(con, dataset)
        test = split_pairs(con, dataset_id, split)
    if test.height == 0:
        raise ValueError(f"{dataset!r} has no {split!r} pairs to benchmark on")
    extra = [pl.col("provenance").str.json_path_match(f"$.{g}").alias(g) for g in group_by]
    return dataset_id, test.with_columns(extra) if extra else test


@task(name="evaluate-model", cache_policy=NO_CACHE)
def evaluate_model(
    warehouse: str | None,
    model: dict,
    test: pl.DataFrame,
    group_by: list[str],
    device: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every metric for one model; scores go through the (prompt, response) cache."""
    scorer = load_model(model["path"], device or "cpu")
    encoder_id = getattr(getattr(scorer, "encoder", None), "encoder_id", None)
    item, donor = make_prompt_swap_pairs(
        test["prompt_id"].to_numpy(), test["chosen_id"].to_numpy(), seed=model.get("seed") or 0
    )
    swap = pl.DataFrame(
        {
            "prompt_id": test["prompt_id"].to_numpy()[item],
            "response_id": test["chosen_id"].to_numpy()[donor],
        }
    )
    combos = pl.concat(
        [
            test.select("prompt_id", pl.col("chosen_id").alias("response_id")),
            test.select("prompt_id", pl.col("rejected_id").alias("response_id")),
            swap,
        ]
    ).unique()
    table = score_combos(warehouse, scorer, encoder_id, combos)

    def lookup(prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
        keys = pl.DataFrame({"prompt_id": prompts, "response_id": responses})
        return keys.join(table, on=["prompt_id", "response_id"], how="left", maintain_order="left")[
            "score"
        ].to_numpy()

    p = test["prompt_id"].to_numpy()
    r_c, r_r = lookup(p, test["chosen_id"].to_numpy()), lookup(p, test["rejected_id"].to_numpy())
    rows = evaluate_pairs(test, r_c, r_r, group_by=tuple(group_by), seed=model.get("seed") or 0)
    own = lookup(p[item], test["chosen_id"].to_numpy()[item])
    rows = pl.concat(
        [
            rows,
            prompt_swap_rows(
                own, lookup(swap["prompt_id"].to_numpy(), swap["response_id"].to_numpy())
            ),
        ]
    )
    tag = [
        pl.lit(model["name"]).alias("model"),
        pl.lit(model.get("method")).alias("method"),
        pl.lit(model.get("seed"), dtype=pl.Int32).alias("seed"),
    ]
    preds = test.select("pair_id", "label").with_columns(pl.Series("gap", r_c - r_r), *tag)
    return rows.with_columns(tag), preds


@task(name="store-benchmark-results", cache_policy=NO_CACHE)
def store(
    warehouse: str | None,
    *,
    name: str,
    dataset_id: int,
    split: str,
    params: dict,
    rows: pl.DataFrame,
    preds: pl.DataFrame,
) -> int:
    with transaction(warehouse) as con:
        run_id = sql.create_run(
            con,
            name=name,
            dataset_id=dataset_id,
            split=split,
            params=params,
            flow_run_id=current_flow_run_id(),
        )
        sql.store_results(con, run_id, rows, preds)
    return run_id
