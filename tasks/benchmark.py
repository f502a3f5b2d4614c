"""Prefect tasks for the benchmark stage (`rmcore.stages.benchmark`): create a benchmark run,
then evaluate each trained model on its held-out pairs and store the rows under the run."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.stages import benchmark as stage
from tasks.common import current_flow_run_id


@task(name="create-benchmark-run", cache_policy=NO_CACHE)
def create_run(
    warehouse: str | None,
    *,
    name: str,
    dataset: str,
    split: str,
    models: list[dict],
    group_by: list[str],
    bias_cells: list[str],
) -> dict:
    """{"benchmark_run_id", "dataset_id", "n_test"} of a new run over `dataset`'s `split`."""
    return stage.create_run(
        warehouse,
        name=name,
        dataset=dataset,
        split=split,
        models=models,
        group_by=group_by,
        bias_cells=bias_cells,
        flow_run_id=current_flow_run_id(),
    )


@task(name="evaluate-model", cache_policy=NO_CACHE)
def evaluate_model(
    warehouse: str | None, benchmark_run_id: int, model: dict, device: str | None = None
) -> dict:
    """Every metric for one model, stored under the run: {"model", "n_rows", "n_predictions"}."""
    return stage.evaluate_model(warehouse, benchmark_run_id, model, device)
