"""The main job on embedded defaults: generate the toy data, ingest it, check its quality."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.ingest import ingest_flow
from rmcore.demo import write_demo


@task(name="generate-demo-data", cache_policy=NO_CACHE)
def generate_demo_data(path: str, seed: int) -> str:
    return str(write_demo(Path(path), seed=seed))


@flow(name="demo", log_prints=True)
def demo_flow(workdir: str = ".", seed: int = 0, warehouse: str | None = None) -> dict:
    root = Path(workdir)
    warehouse = warehouse or str(root / "data" / "rmcurate.duckdb")
    source = generate_demo_data(str(root / "data" / "demo" / f"toy_seed{seed}.jsonl"), seed)
    ingest = ingest_flow(
        source=source, name="toy", warehouse=warehouse, reports_dir=str(root / "reports")
    )
    return {"ingest": ingest, "warehouse": warehouse}
