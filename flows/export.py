"""Export a curated set in TRL's explicit format (prompt, chosen, rejected) plus `weight`
and `label`, for TRL and OpenRLHF users."""

from __future__ import annotations

from prefect import flow

from tasks.export import export_curated_set


@flow(name="export", log_prints=True)
def export_flow(
    curated_set: str, path: str, fmt: str = "parquet", warehouse: str | None = None
) -> dict:
    """`fmt`: parquet, jsonl or hf (a `datasets` folder)."""
    out = export_curated_set(warehouse, curated_set, path, fmt)
    print(f"exported {out['rows']} pairs of {curated_set} to {path} ({fmt})")
    return out
