"""Cross-fitted free gaps (issue 10, item 1): out-of-sample decompositions.

A reference model that scores its own training pairs mostly marks, with a negative free
gap, the pairs it failed to fit. With k folds by prompt, fold f's reference model trains on
the training pairs of the other folds and its scoring run supplies the decomposition of the
pairs of fold f only, so no model ever scores a pair it trained on (nor a pair of a prompt
it trained on). `combine_folds` stores the result as one scoring run that curation reads
like any other, with `scoring_folds` recording which model scored which pair.
"""

from __future__ import annotations

import polars as pl

from rmcore.identity import digest
from warehouse import catalog
from warehouse import crossfit as xsql
from warehouse import scoring as sql
from warehouse.connection import reader, transaction


def fold_training_predicate(train_predicate: str, k: int, fold: int) -> str:
    """The predicate of fold `fold`'s reference model: the training pairs of the other folds."""
    return xsql.training_predicate(train_predicate, k, fold)


CROSS_FIT_MODEL = "cross-fit"  # model_id prefix of a cross-fitted run (no single model)


def combine_folds(
    warehouse: str | None,
    *,
    dataset: str,
    fold_runs: list[int],
    flow_run_id: str | None = None,
) -> int:
    """One complete scoring run of `dataset` whose pair f-fold decompositions come from
    `fold_runs[f]` (the run of the model trained without fold f). Idempotent: the same fold
    runs give the same run. Returns its id."""
    k = len(fold_runs)
    with reader(warehouse) as con:
        dataset_id = catalog.resolve_dataset(con, dataset)
        folds = xsql.pair_folds(con, dataset_id, k)
        runs = [sql.run_fields(con, r) for r in fold_runs]
    first = runs[0]
    shared = ("criterion", "prompts_per_pair", "seed", "weights", "beta", "lm_id", "backend")
    for run in runs[1:]:
        if any(run[c] != first[c] for c in shared) or run["dataset_id"] != dataset_id:
            raise ValueError("fold runs must score the same dataset with the same settings")
    source = pl.DataFrame(
        {
            "fold": list(range(k)),
            "model_id": [r["model_id"] for r in runs],
            "source_scoring_run_id": fold_runs,
        }
    )
    rows = folds.join(source, on="fold").select(
        "pair_id", "fold", "model_id", "source_scoring_run_id"
    )
    run_key = digest(cross_fit=[r["run_key"] for r in runs])
    with transaction(warehouse) as con:
        existing = sql.find_run(con, run_key)
        if existing is not None:
            return existing.scoring_run_id
        run = sql.create_run(
            con,
            run_key=run_key,
            dataset_id=dataset_id,
            pool_dataset_id=first["pool_dataset_id"],
            model_id=f"{CROSS_FIT_MODEL}:{k}",
            revision=run_key[:16],
            **{c: first[c] for c in shared},
            shard_size=first["shard_size"],
            n_pairs=rows.height,
            n_shards=0,
            cross_fit_folds=k,
            temperature=first["temperature"],
            flow_run_id=flow_run_id,
        )
        xsql.store_cross_fit(con, run.scoring_run_id, rows)
        sql.finish_run(
            con, run.scoring_run_id, n_combos=0, n_cache_hits=0, timings={"fold_runs": fold_runs}
        )
    return run.scoring_run_id
