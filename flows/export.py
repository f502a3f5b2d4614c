"""Export a curated set for TRL's `RewardTrainer` (explicit or conversational format, with
`margin`) plus our `label` and `weight` (`rmcore.trl_format`)."""

from __future__ import annotations

from prefect import flow

from rmcore.config import ExportConfig
from tasks.export import export_curated_set

DEFAULT = ExportConfig()


@flow(name="export", log_prints=True)
def export_flow(
    curated_set: str,
    path: str,
    fmt: str = DEFAULT.file_format,
    trl_format: str = DEFAULT.trl_format,
    margin_cap: float = DEFAULT.margin_cap,
    warehouse: str | None = None,
) -> dict:
    """`fmt`: parquet, jsonl or hf (a DatasetDict folder); `trl_format`: explicit or
    conversational."""
    config = ExportConfig(file_format=fmt, trl_format=trl_format, margin_cap=margin_cap)
    out = export_curated_set(warehouse, curated_set, path, config)
    print(f"exported {out['rows']} pairs of {curated_set} to {path} ({fmt}, {trl_format})")
    print(out["note"])
    return out
