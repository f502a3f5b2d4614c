"""Prefect task for the ablation's step budget (`rmcore.stages.ablation`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.stages import ablation as stage


@task(name="count-training-candidates", cache_policy=NO_CACHE)
def count_training_candidates(
    warehouse: str | None, *, dataset: str, scoring_run_id: int | None, predicate: str
) -> int:
    """Pairs the train predicate selects (run sandboxed): the matched step budget's base."""
    return stage.count_training_candidates(
        warehouse, dataset=dataset, scoring_run_id=scoring_run_id, predicate=predicate
    )
