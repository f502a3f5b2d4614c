"""The export stage: a curated set as rows TRL's `RewardTrainer` trains on as they are
(`rmcore.trl_format`: explicit or conversational, with `margin`), plus our `label` and
`weight`, as parquet, JSON lines or a `datasets` DatasetDict with one split per member split."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rmcore.config import ExportConfig
from rmcore.trl_format import ignored_columns_note, trl_rows
from warehouse import curation as sql
from warehouse.connection import reader

SPLIT_ORDER = ("train", "validation", "test")


def export_frame(warehouse: str | None, curated_set: str, config: ExportConfig) -> pl.DataFrame:
    """The set's members in `config.trl_format`, in the exported column order."""
    with reader(warehouse) as con:
        members = sql.members(con, sql.resolve_set(con, curated_set))
    return trl_rows(members, config.trl_format, config.margin_cap)


def save_dataset_dict(rows: pl.DataFrame, out: Path) -> list[str]:
    """`save_to_disk` a DatasetDict keyed by the rows' `split` (train, validation, test first)."""
    import datasets

    present = rows["split"].unique().to_list()
    names = [s for s in SPLIT_ORDER if s in present] + sorted(set(present) - set(SPLIT_ORDER))
    datasets.DatasetDict(
        {name: datasets.Dataset.from_polars(rows.filter(pl.col("split") == name)) for name in names}
    ).save_to_disk(str(out))
    return names


def export_set(
    warehouse: str | None, curated_set: str, path: str, config: ExportConfig | None = None
) -> dict:
    """Write the set to `path`; returns rows, path, formats, splits and what TRL ignores."""
    config = config or ExportConfig()
    rows = export_frame(warehouse, curated_set, config)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    splits = sorted(rows["split"].unique().to_list())
    if config.file_format == "parquet":
        rows.write_parquet(out)
    elif config.file_format == "jsonl":
        rows.write_ndjson(out)
    else:
        splits = save_dataset_dict(rows, out)
    return {
        "rows": rows.height,
        "path": str(out.resolve()),
        "format": config.file_format,
        "trl_format": config.trl_format,
        "splits": splits,
        "note": ignored_columns_note(rows),
    }
