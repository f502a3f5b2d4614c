"""The curate stage: select source pairs by a SQL predicate (sandboxed), weigh them by a rule,
optionally add RRM pairs, and materialize an immutable, versioned curated set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from rmcore.config import SetDefinition
from rmcore.curation import apply_rule, rrm_augment
from rmcore.curation.rrm import ReferenceGap
from rmcore.errors import InvalidArgument, NotFound
from rmcore.names import check_name
from rmcore.textnorm import pair_ids
from warehouse import catalog
from warehouse import crossfit as xsql
from warehouse import curation as sql
from warehouse.connection import reader, transaction


@dataclass(frozen=True, kw_only=True)
class CurationInputs:
    """What a definition resolved to: the references a curated set is built from."""

    dataset_id: int
    scoring_run_id: int | None
    digest: str  # the definition hash (SetDefinition.identity)


def resolve_inputs(warehouse: str | None, definition: SetDefinition) -> CurationInputs:
    """The dataset id, the scoring run (the newest complete one when the definition needs
    scores and names none) and the definition hash. A bad set name is refused here, first."""
    check_name(definition.name, "curated set")
    with reader(warehouse) as con:
        dataset_id = catalog.resolve_dataset(con, definition.dataset)
        scoring_run_id = definition.scoring_run_id
        if scoring_run_id is None and definition.needs_scores:
            scoring_run_id = sql.latest_complete_run(con, dataset_id)
            if scoring_run_id is None:
                raise NotFound(
                    f"rule {definition.rule!r} needs free gaps: score {definition.dataset!r} first (`rmcurate score`)"
                )
    return CurationInputs(
        dataset_id=dataset_id,
        scoring_run_id=scoring_run_id,
        digest=definition.identity(dataset_id=dataset_id, scoring_run_id=scoring_run_id),
    )


def preflight(warehouse: str | None, definition: SetDefinition) -> None:
    """What the flow would refuse first (the name, the dataset, a missing scoring run, the
    predicate), checked before one starts: a flow run takes 15-20 s to say the same."""
    inputs = resolve_inputs(warehouse, definition)
    with reader(warehouse, sandboxed=True) as con:
        sql.check_candidate_predicate(
            con, scored=inputs.scoring_run_id is not None, predicate=definition.predicate
        )


def find_set(warehouse: str | None, name: str, digest: str) -> dict | None:
    """The version of `name` that already holds this definition, if any."""
    with reader(warehouse) as con:
        return sql.find_set(con, name, digest)


def _candidates(
    warehouse: str | None, *, dataset_id: int, scoring_run_id: int | None, predicate: str
) -> pl.DataFrame:
    """The user's predicate is checked by DuckDB's parser and filters the dataset's (and
    scoring run's) rows from outside (`warehouse.predicates`), on a read-only, sandboxed
    connection (no file access)."""
    with reader(warehouse, sandboxed=True) as con:
        return sql.candidates(
            con, dataset_id=dataset_id, scoring_run_id=scoring_run_id, predicate=predicate
        )


def select_and_weigh(
    warehouse: str | None, definition: SetDefinition, inputs: CurationInputs
) -> pl.DataFrame:
    """Candidates by the user's predicate, with a `weight` column from the rule."""
    cands = _candidates(
        warehouse,
        dataset_id=inputs.dataset_id,
        scoring_run_id=inputs.scoring_run_id,
        predicate=definition.predicate,
    )
    if cands.height == 0:
        raise InvalidArgument(
            f"the predicate {definition.predicate!r} selects no pairs of {definition.dataset!r}"
        )
    free = cands["free_gap"].fill_null(0.0).to_numpy()
    weights = apply_rule(definition.rule, free, definition.params, seed=definition.seed)
    return cands.with_columns(pl.Series("weight", weights))


def reference_gap(warehouse: str | None, scoring_run_id: int) -> ReferenceGap:
    """gap(prompt, a, b) under the scoring run's model, from the score cache or a fresh
    forward. For a cross-fitted run, each row is scored by the model of its prompt's fold
    (the model that never trained on that prompt)."""
    # Imported here: it loads torch, which the CLI's preflight of a set must not wait for.
    from rmcore.stages.scores import load_model, lookup_scores, reference_scorer, score_combos

    with reader(warehouse) as con:
        fold_models = xsql.fold_runs_of(con, scoring_run_id)
    if fold_models.height:
        scorers = [load_model(m, "cpu") for m in fold_models["model_id"].to_list()]
        encoders = [getattr(getattr(m, "encoder", None), "encoder_id", None) for m in scorers]
    else:
        scorer, encoder_id = reference_scorer(warehouse, scoring_run_id)
        scorers, encoders = [scorer], [encoder_id]

    def one_model(scorer, encoder_id, prompt_ids, a_ids, b_ids) -> np.ndarray:
        combos = pl.concat(
            [
                pl.DataFrame({"prompt_id": prompt_ids, "response_id": a_ids}),
                pl.DataFrame({"prompt_id": prompt_ids, "response_id": b_ids}),
            ]
        ).unique()
        table = score_combos(warehouse, scorer, encoder_id, combos)
        return lookup_scores(table, prompt_ids, a_ids) - lookup_scores(table, prompt_ids, b_ids)

    def gap(prompt_ids: pl.Series, a_ids: pl.Series, b_ids: pl.Series) -> np.ndarray:
        if len(scorers) == 1:
            return one_model(scorers[0], encoders[0], prompt_ids, a_ids, b_ids)
        with reader(warehouse) as con:
            fold = xsql.prompt_folds(con, prompt_ids, len(scorers)).to_numpy()
        out = np.zeros(prompt_ids.len())
        for f, (scorer, encoder_id) in enumerate(zip(scorers, encoders, strict=True)):
            rows = np.flatnonzero(fold == f)
            if rows.size:
                out[rows] = one_model(
                    scorer, encoder_id, prompt_ids[rows], a_ids[rows], b_ids[rows]
                )
        return out

    return gap


def augment_rrm(
    warehouse: str | None,
    definition: SetDefinition,
    inputs: CurationInputs,
    candidates: pl.DataFrame,
) -> tuple[pl.DataFrame, dict]:
    """RRM-augmented pairs (METHOD.md baselines) as content-addressed pairs with provenance."""
    ref = reference_gap(warehouse, inputs.scoring_run_id) if definition.rrm_filter else None
    out = rrm_augment(
        candidates.select("pair_id", "prompt_id", "chosen_id", "rejected_id"),
        seed=definition.seed,
        keep_fraction=definition.keep_fraction,
        reference_gap=ref,
        cap=definition.rrm_cap,
    )
    aug = out.pairs.with_columns(pl.format('{{"rrm_kind": "{}"}}', "rrm_kind").alias("provenance"))
    aug = aug.with_columns(
        pair_ids(f"rrm@{inputs.dataset_id}", aug, extra=("label",)).alias("pair_id")
    ).unique("pair_id", keep="first", maintain_order=True)
    return aug, out.counts


def build_set(
    warehouse: str | None,
    definition: SetDefinition,
    inputs: CurationInputs,
    *,
    flow_run_id: str | None,
) -> dict:
    """Select, weigh, augment and store the set; returns its `curated_sets` row (the
    existing one when a concurrent run stored the same definition first)."""
    check_name(definition.name, "curated set")
    weighted = select_and_weigh(warehouse, definition, inputs)
    augmented, counts = (
        augment_rrm(warehouse, definition, inputs, weighted) if definition.augment else (None, {})
    )
    members = weighted.filter(pl.col("weight") > 0).select("pair_id", "weight")
    if augmented is not None:
        members = pl.concat(
            [members, augmented.select("pair_id", pl.lit(1.0).alias("weight"))]
        ).unique("pair_id", keep="first")
    augmentation = (
        {
            "kind": definition.augment,
            "keep_fraction": definition.keep_fraction,
            "filter": definition.rrm_filter,
            "cap": definition.rrm_cap,
        }
        if definition.augment
        else None
    )
    fields = {
        "name": definition.name,
        "definition_hash": inputs.digest,
        "scoring_run_id": inputs.scoring_run_id,
        "dataset_id": inputs.dataset_id,
        "predicate": definition.predicate,
        "rule": definition.rule,
        "rule_params": definition.params,
        "augmentation": augmentation,
        "seed": definition.seed,
        "n_candidates": weighted.height,
        "n_members": members.height,
        "n_augmented": 0 if augmented is None else augmented.height,
        "total_weight": float(members["weight"].sum()),
        "counts": counts,
        "flow_run_id": flow_run_id,
    }
    with transaction(warehouse) as con:
        existing = sql.find_set(con, definition.name, inputs.digest)
        return existing or sql.store_set(con, fields, members, augmented)
