"""Prefect tasks for the ablation's up-front checks and step budget (`rmcore.stages.ablation`)."""

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


@task(name="check-ablation", cache_policy=NO_CACHE)
def check_ablation(
    warehouse: str | None,
    *,
    name: str,
    dataset: str,
    methods: list[str],
    seeds: list[int],
    reference: bool,
    train_predicate: str,
    reports_dir: str,
    overwrite: bool = False,
) -> str:
    """Names, methods, dataset, train predicate and report folder, before any training."""
    return stage.check_ablation(
        warehouse,
        name=name,
        dataset=dataset,
        methods=methods,
        seeds=seeds,
        reference=reference,
        train_predicate=train_predicate,
        reports_dir=reports_dir,
        overwrite=overwrite,
    )
