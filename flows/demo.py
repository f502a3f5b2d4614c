"""The main job on embedded defaults: generate the paper's toy data and run the whole
pipeline on it with the bundled model."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.pipeline import pipeline_flow
from tasks.demo import generate_demo_data


@flow(name="demo", log_prints=True)
def demo_flow(
    workdir: str = ".", seed: int = 0, seeds: list[int] | None = None, warehouse: str | None = None
) -> dict:
    """Toy data (length-biased and adversarial-prompt pairs, METHOD.md) -> the pipeline."""
    root = Path(workdir)
    warehouse = warehouse or str(root / "data" / "rmcurate.duckdb")
    source = generate_demo_data(str(root / "data" / "demo" / f"toy_seed{seed}.jsonl"), seed)
    result = pipeline_flow(
        source=source,
        name="toy",
        seeds=seeds,
        warehouse=warehouse,
        reports_dir=str(root / "reports"),
        group_by=["setup"],
    )
    return result | {"warehouse": warehouse}
