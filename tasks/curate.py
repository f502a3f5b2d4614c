"""Prefect tasks for the curate stage: select by predicate, weigh, augment, materialize."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.curation import apply_rule, rrm_augment
from rmcore.textnorm import pair_ids
from tasks.common import current_flow_run_id, logger
from warehouse import catalog
from warehouse import curation as sql
from warehouse.connection import reader, transaction

SCORE_FREE_RULES = ("uniform",)  # rules that need no scoring run


@dataclass(frozen=True)
class SetDefinition:
    """Everything that decides a curated set's content; its hash is the set's identity."""

    name: str
    dataset: str
    predicate: str = "split = 'train'"
    rule: str = "uniform"
    params: dict = field(default_factory=dict)
    augment: str | None = None  # None or "rrm"
    keep_fraction: float = 0.5
    rrm_filter: bool = (
        False  # keep only augmented pairs the reference model gets wrong or is unsure of
    )
    seed: int = 0
    scoring_run: int | None = (
        None  # default: the newest complete run of the dataset (when the rule needs one)
    )


@task(name="resolve-curation-inputs", cache_policy=NO_CACHE)
def resolve_inputs(warehouse: str | None, definition: SetDefinition) -> tuple[int, int | None, str]:
    """(dataset id, scoring run id, definition hash)."""
    with reader(warehouse) as con:
        dataset_id = catalog.resolve_dataset(con, definition.dataset)
        run = definition.scoring_run
        needs_scores = (
            definition.rule not in SCORE_FREE_RULES
            or definition.rrm_filter
            or "free_gap" in definition.predicate
        )
        if run is None and needs_scores:
            run = sql.latest_complete_run(con, dataset_id)
            if run is None:
                raise LookupError(
                    f"rule {definition.rule!r} needs free gaps: score {definition.dataset!r} first (`rmcurate score`)"
                )
    blob = json.dumps(
        asdict(definition) | {"dataset_id": dataset_id, "scoring_run": run}, sort_keys=True
    )
    return dataset_id, run, hashlib.sha256(blob.encode()).hexdigest()


@task(name="select-and-weigh", cache_policy=NO_CACHE)
def select_and_weigh(
    warehouse: str | None, definition: SetDefinition, dataset_id: int, run: int | None
) -> pl.DataFrame:
    """Candidates by the user's predicate (sandboxed, read-only), weights by the rule."""
    with reader(warehouse, sandboxed=True) as con:
        cands = sql.candidates(
            con, dataset_id=dataset_id, scoring_run_id=run, predicate=definition.predicate
        )
    if cands.height == 0:
        raise ValueError(
            f"the predicate {definition.predicate!r} selects no pairs of {definition.dataset!r}"
        )
    free = cands["free_gap"].fill_null(0.0).to_numpy()
    weights = apply_rule(definition.rule, free, definition.params, seed=definition.seed)
    return cands.with_columns(pl.Series("weight", weights))


def _reference_gap(warehouse: str | None, run: int):
    """gap(prompt, a, b) under the scoring run's model, from cache or a fresh forward."""
    from tasks.score import reference_scorer, score_combos

    scorer, encoder_id = reference_scorer(warehouse, run)

    def gap(prompt_ids: pl.Series, a_ids: pl.Series, b_ids: pl.Series) -> np.ndarray:
        combos = pl.concat(
            [
                pl.DataFrame({"prompt_id": prompt_ids, "response_id": a_ids}),
                pl.DataFrame({"prompt_id": prompt_ids, "response_id": b_ids}),
            ]
        ).unique()
        table = score_combos(warehouse, scorer, encoder_id, combos)
        key = dict(
            zip(
                zip(table["prompt_id"], table["response_id"], strict=True),
                table["score"],
                strict=True,
            )
        )
        return np.array(
            [key[(p, a)] - key[(p, b)] for p, a, b in zip(prompt_ids, a_ids, b_ids, strict=True)]
        )

    return gap


@task(name="rrm-augment", cache_policy=NO_CACHE)
def augment_rrm(
    warehouse: str | None,
    definition: SetDefinition,
    dataset_id: int,
    run: int | None,
    cands: pl.DataFrame,
) -> tuple[pl.DataFrame, dict]:
    """RRM-augmented pairs (METHOD.md baselines) as content-addressed pairs with provenance."""
    ref = _reference_gap(warehouse, run) if definition.rrm_filter else None
    out = rrm_augment(cands.select("pair_id", "prompt_id", "chosen_id", "rejected_id"), seed=definition.seed,
                      keep_fraction=definition.keep_fraction, reference_gap=ref)  # fmt: skip
    aug = out.pairs.with_columns(pl.format('{{"rrm_kind": "{}"}}', "rrm_kind").alias("provenance"))
    aug = aug.with_columns(
        pair_ids(f"rrm@{dataset_id}", aug, extra=("label",)).alias("pair_id")
    ).unique("pair_id", keep="first", maintain_order=True)
    logger().info("RRM augmentation: %s", out.counts)
    return aug, out.counts


@task(name="materialize-set", cache_policy=NO_CACHE)
def materialize(
    warehouse: str | None, definition: SetDefinition, dataset_id: int, run: int | None, digest: str,
    weighted: pl.DataFrame, augmented: pl.DataFrame | None, counts: dict,
) -> dict:  # fmt: skip
    members = weighted.filter(pl.col("weight") > 0).select("pair_id", "weight")
    if augmented is not None:
        members = pl.concat(
            [members, augmented.select("pair_id", pl.lit(1.0).alias("weight"))]
        ).unique("pair_id", keep="first")
    fields = {
        "name": definition.name, "definition_hash": digest, "scoring_run_id": run, "dataset_id": dataset_id,
        "predicate": definition.predicate, "rule": definition.rule, "rule_params": definition.params,
        "augmentation": {"kind": definition.augment, "keep_fraction": definition.keep_fraction, "filter": definition.rrm_filter}
        if definition.augment else None,
        "seed": definition.seed, "n_candidates": weighted.height, "n_members": members.height,
        "n_augmented": 0 if augmented is None else augmented.height, "total_weight": float(members["weight"].sum()),
        "counts": counts, "flow_run_id": current_flow_run_id(),
    }  # fmt: skip
    with transaction(warehouse) as con:
        existing = sql.find_set(con, definition.name, digest)
        return existing or sql.store_set(con, fields, members, augmented)
