"""Export a curated set in TRL's explicit format (prompt, chosen, rejected) plus `weight`
and `label`, for TRL and OpenRLHF users."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import flow

from warehouse import curation as sql
from warehouse.connection import reader

FORMATS = ("parquet", "jsonl", "hf")


def export_frame(warehouse: str | None, curated_set: str) -> pl.DataFrame:
    with reader(warehouse) as con:
        members = sql.members(con, sql.resolve_set(con, curated_set))
    return members.select(
        "prompt", "chosen", "rejected", "weight", "label", "pair_id", "split", "augmentation"
    )


@flow(name="export", log_prints=True)
def export_flow(
    curated_set: str, path: str, fmt: str = "parquet", warehouse: str | None = None
) -> dict:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    frame = export_frame(warehouse, curated_set)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.write_parquet(out)
    elif fmt == "jsonl":
        frame.write_ndjson(out)
    else:
        import datasets

        datasets.Dataset.from_polars(frame).save_to_disk(str(out))
    print(f"exported {frame.height} pairs of {curated_set} to {out} ({fmt})")
    return {"rows": frame.height, "path": str(out.resolve()), "format": fmt}
