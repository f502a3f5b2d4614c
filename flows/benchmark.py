"""The benchmark flow: held-out accuracy (with bootstrap CIs), log-loss, Brier, calibration,
length-bias probes and prompt-swap contextual accuracy for a list of trained models."""

from __future__ import annotations

from prefect import flow

from rmcore.config import AblationConfig
from tasks.benchmark import create_run, evaluate_model


@flow(name="benchmark", log_prints=True)
def benchmark_flow(
    name: str,
    models: list[dict],
    dataset: str,
    split: str = AblationConfig.test_split,
    group_by: list[str] | None = None,
    bias_cells: list[str] | None = None,
    warehouse: str | None = None,
    device: str | None = None,
) -> dict:
    """`models`: [{"name", "path", "method", "seed"}, ...]. Writes `benchmark_results` rows;
    `bias_cells` (default winner longer / shorter) are the subsets the group-balanced
    accuracy averages."""
    group_by = group_by or []
    run = create_run(
        warehouse,
        name=name,
        dataset=dataset,
        split=split,
        models=models,
        group_by=group_by,
        bias_cells=list(bias_cells or AblationConfig.bias_cells),
    )
    evaluated = [evaluate_model(warehouse, run["benchmark_run_id"], m, device) for m in models]
    return {
        "benchmark_run_id": run["benchmark_run_id"],
        "n_rows": sum(e["n_rows"] for e in evaluated),
        "n_test": run["n_test"],
    }
