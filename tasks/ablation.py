"""Prefect tasks for the ablation's up-front checks and step budget (`rmcore.stages.ablation`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.stages import ablation as stage
from rmcore.stages import crossfit
from rmcore.stages.ablation import reference_names, tuning_name
from rmcore.stages.crossfit import fold_training_predicate

__all__ = ["fold_training_predicate", "reference_names", "tuning_name"]  # names flows use
from tasks.common import current_flow_run_id


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
    folds: int = 1,
    tuning: dict | None = None,
    backend: str = "embed-head",
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
        folds=folds,
        tuning=tuning,
        backend=backend,
        overwrite=overwrite,
    )


@task(name="choose-tuned-params", cache_policy=NO_CACHE)
def tuning_choice(
    warehouse: str | None, benchmark_run_id: int, grid: list[dict]
) -> tuple[dict[str, dict], list[dict]]:
    """Per method, the grid point with the best group-balanced validation accuracy."""
    return stage.tuning_choice(warehouse, benchmark_run_id, grid)


@task(name="combine-cross-fit-folds", cache_policy=NO_CACHE)
def combine_folds(warehouse: str | None, *, dataset: str, fold_runs: list[int]) -> int:
    """One scoring run whose pairs of fold f come from the model trained without fold f."""
    return crossfit.combine_folds(
        warehouse, dataset=dataset, fold_runs=fold_runs, flow_run_id=current_flow_run_id()
    )
