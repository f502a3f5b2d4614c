"""The benchmark stage: trained models evaluated on a dataset's held-out pairs.

A benchmark run is created first (`create_run`); each model is then evaluated by reference
(`evaluate_model`: the run id names the dataset, split and provenance groups) and its metric
rows and per-pair predictions are stored under the run, so nothing but ids and counts passes
between the steps.
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

from rmcore.decomposition.scoring import embedding_rows
from rmcore.errors import InvalidArgument
from rmcore.evaluation.evaluate import LENGTH_CELLS, evaluate_pairs, prompt_swap_rows
from rmcore.evaluation.metrics import make_prompt_swap_pairs, same_topic_donors
from rmcore.stages.scores import (
    BUNDLED_ENCODER,
    cached_embeddings,
    ensure_embeddings,
    load_encoder,
    load_model,
    lookup_scores,
    score_combos,
)
from warehouse import benchmarks as sql
from warehouse import catalog
from warehouse.connection import reader, transaction
from warehouse.pairs import split_pair_refs, split_pairs

log = logging.getLogger("rmcurate")


def load_test_pairs(
    warehouse: str | None, dataset_id: int, split: str, group_by: list[str]
) -> pl.DataFrame:
    """The split's pairs, with each `group_by` provenance field as a column; an empty split
    raises."""
    with reader(warehouse) as con:
        test = split_pairs(con, dataset_id, split)
    if test.height == 0:
        raise InvalidArgument(f"dataset {dataset_id} has no {split!r} pairs to benchmark on")
    extra = [pl.col("provenance").str.json_path_match(f"$.{g}").alias(g) for g in group_by]
    return test.with_columns(extra) if extra else test


def create_run(
    warehouse: str | None,
    *,
    name: str,
    dataset: str,
    split: str,
    models: list[dict],
    group_by: list[str],
    bias_cells: list[str],
    flow_run_id: str | None,
) -> dict:
    """A new benchmark run over `dataset`'s `split` (which must hold pairs):
    {"benchmark_run_id", "dataset_id", "n_test"}."""
    with reader(warehouse) as con:
        dataset_id = catalog.resolve_dataset(con, dataset)
        n_test = split_pair_refs(con, dataset_id, split).height
    if n_test == 0:
        raise InvalidArgument(f"{dataset!r} has no {split!r} pairs to benchmark on")
    with transaction(warehouse) as con:
        run_id = sql.create_run(
            con,
            name=name,
            dataset_id=dataset_id,
            split=split,
            params={"models": models, "group_by": group_by, "bias_cells": bias_cells},
            flow_run_id=flow_run_id,
        )
    return {"benchmark_run_id": run_id, "dataset_id": dataset_id, "n_test": n_test}


def prompt_embeddings(warehouse: str | None, test: pl.DataFrame) -> np.ndarray:
    """(N, D) bundled-encoder embeddings of each test pair's prompt (cached), for same-topic
    donors whatever the model's backend."""
    encoder = load_encoder(BUNDLED_ENCODER, "cpu")
    ensure_embeddings(warehouse, encoder, test["prompt_id"].unique())
    index, matrix = cached_embeddings(warehouse, encoder.encoder_id, test["prompt_id"])
    return matrix[embedding_rows(index, test["prompt_id"])].numpy()


def score_model(
    warehouse: str | None,
    model: dict,
    test: pl.DataFrame,
    group_by: list[str],
    device: str,
    bias_cells: tuple[str, ...] = LENGTH_CELLS,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metric rows, per-pair predictions) of one model on `test`, tagged with the model's
    name, method and seed; scores go through the (prompt, response) cache."""
    seed = model.get("seed") or 0
    scorer = load_model(model["path"], device)
    encoder_id = getattr(getattr(scorer, "encoder", None), "encoder_id", None)
    prompts, chosen = test["prompt_id"].to_numpy(), test["chosen_id"].to_numpy()
    rejected = test["rejected_id"].to_numpy()
    donors = {  # prompt swap: random donors, and same-topic donors (the nearest prompt)
        "all": make_prompt_swap_pairs(prompts, chosen, seed=seed),
        "same_topic": same_topic_donors(prompts, chosen, prompt_embeddings(warehouse, test), seed),
    }
    swaps = {
        k: pl.DataFrame({"prompt_id": prompts[item], "response_id": chosen[donor]})
        for k, (item, donor) in donors.items()
    }
    combos = pl.concat(
        [
            test.select("prompt_id", pl.col("chosen_id").alias("response_id")),
            test.select("prompt_id", pl.col("rejected_id").alias("response_id")),
            *swaps.values(),
        ]
    ).unique()
    table = score_combos(warehouse, scorer, encoder_id, combos)
    r_c, r_r = lookup_scores(table, prompts, chosen), lookup_scores(table, prompts, rejected)
    swap_rows = [
        prompt_swap_rows(
            lookup_scores(table, prompts[item], chosen[item]),
            lookup_scores(table, swaps[k]["prompt_id"], swaps[k]["response_id"]),
            subset=k,
        )
        for k, (item, _) in donors.items()
    ]
    rows = pl.concat(
        [
            evaluate_pairs(
                test, r_c, r_r, group_by=tuple(group_by), bias_cells=bias_cells, seed=seed
            ),
            *swap_rows,
        ]
    )
    tag = [
        pl.lit(model["name"]).alias("model"),
        pl.lit(model.get("method")).alias("method"),
        pl.lit(model.get("seed"), dtype=pl.Int32).alias("seed"),
    ]
    preds = test.select("pair_id", "label").with_columns(pl.Series("gap", r_c - r_r), *tag)
    return rows.with_columns(tag), preds


def evaluate_model(
    warehouse: str | None, benchmark_run_id: int, model: dict, device: str | None = None
) -> dict:
    """Every metric for one model (`{"name", "path", "method", "seed"}`) on the run's test
    pairs, stored under the run: {"model", "n_rows", "n_predictions"}."""
    with reader(warehouse) as con:
        run = sql.run_row(con, benchmark_run_id)
    group_by = list(run["params"].get("group_by") or [])
    test = load_test_pairs(warehouse, run["dataset_id"], run["split"], group_by)
    cells = tuple(run["params"].get("bias_cells") or LENGTH_CELLS)
    rows, preds = score_model(warehouse, model, test, group_by, device or "cpu", cells)
    with transaction(warehouse) as con:
        sql.store_results(con, benchmark_run_id, rows, preds)
    log.info(
        "benchmark run %d: %s evaluated on %d pairs", benchmark_run_id, model["name"], test.height
    )
    return {"model": model["name"], "n_rows": rows.height, "n_predictions": preds.height}
