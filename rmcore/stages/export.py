"""The export stage: a curated set in TRL's explicit format (prompt, chosen, rejected) plus
`weight` and `label`, for TRL and OpenRLHF users."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rmcore.errors import InvalidArgument
from warehouse import curation as sql
from warehouse.connection import reader

FORMATS = ("parquet", "jsonl", "hf")
COLUMNS = ("prompt", "chosen", "rejected", "weight", "label", "pair_id", "split", "augmentation")


def export_frame(warehouse: str | None, curated_set: str) -> pl.DataFrame:
    """The set's members with their texts, in the exported column order."""
    with reader(warehouse) as con:
        members = sql.members(con, sql.resolve_set(con, curated_set))
    return members.select(COLUMNS)


def export_set(warehouse: str | None, curated_set: str, path: str, fmt: str = "parquet") -> dict:
    """Write the set to `path` as parquet, JSON lines or a `datasets` folder (`hf`)."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"format must be one of {FORMATS}, got {fmt!r}")
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
    return {"rows": frame.height, "path": str(out.resolve()), "format": fmt}
