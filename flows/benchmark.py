"""The benchmark flow: held-out accuracy (with bootstrap CIs), log-loss, Brier, calibration,
length-bias probes and prompt-swap contextual accuracy for a list of trained models."""

from __future__ import annotations

import polars as pl
from prefect import flow

from tasks.benchmark import evaluate_model, load_test_pairs, store


@flow(name="benchmark", log_prints=True)
def benchmark_flow(
    name: str,
    models: list[dict],
    dataset: str,
    split: str = "test",
    group_by: list[str] | None = None,
    warehouse: str | None = None,
    device: str | None = None,
) -> dict:
    """`models`: [{"name", "path", "method", "seed"}, ...]. Writes `benchmark_results` rows."""
    group_by = group_by or []
    dataset_id, test = load_test_pairs(warehouse, dataset, split, group_by)
    evaluated = [evaluate_model(warehouse, m, test, group_by, device) for m in models]
    rows, preds = pl.concat([e[0] for e in evaluated]), pl.concat([e[1] for e in evaluated])
    params = {"models": models, "group_by": group_by}
    run_id = store(
        warehouse,
        name=name,
        dataset_id=dataset_id,
        split=split,
        params=params,
        rows=rows,
        preds=preds,
    )
    return {"benchmark_run_id": run_id, "n_rows": rows.height, "n_test": test.height}
