"""The ablation's step budget: every model trains for the same number of optimizer steps,
fixed from the size of the vanilla training set (the pairs the train predicate selects)."""

from __future__ import annotations

from warehouse import catalog
from warehouse import curation as sql
from warehouse.connection import reader


def count_training_candidates(
    warehouse: str | None, *, dataset: str, scoring_run_id: int | None, predicate: str
) -> int:
    """How many source pairs of `dataset` the user's SQL `predicate` selects; it runs on a
    read-only, sandboxed connection (as curation does), so it can neither write nor touch files."""
    with reader(warehouse, sandboxed=True) as con:
        return sql.candidates(
            con,
            dataset_id=catalog.resolve_dataset(con, dataset),
            scoring_run_id=scoring_run_id,
            predicate=predicate,
        ).height
