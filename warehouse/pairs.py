"""SQL over the `pairs` table and its view `v_pairs`: the source pairs of a dataset split."""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.connection import frame


def split_pairs(con: duckdb.DuckDBPyConnection, dataset_id: int, split: str) -> pl.DataFrame:
    """Source pairs of one split with texts, lengths and provenance (validation data for
    training, held-out data for benchmarks)."""
    return frame(
        con,
        "SELECT pair_id, prompt_id, chosen_id, rejected_id, prompt, chosen, rejected, label, 1.0 AS weight, split,"
        " chosen_chars, rejected_chars, augmentation, provenance FROM v_pairs WHERE dataset_id = ? AND split = ? AND augmentation IS NULL ORDER BY pair_id",
        [dataset_id, split],
    )


def split_pair_refs(con: duckdb.DuckDBPyConnection, dataset_id: int, split: str) -> pl.DataFrame:
    """`split_pairs` without texts, lengths and provenance (ids, labels, weight 1), in the
    same order: validation data for a model trained on cached embeddings."""
    return frame(
        con,
        "SELECT pair_id, prompt_id, chosen_id, rejected_id, label, 1.0 AS weight, split, augmentation"
        " FROM v_pairs WHERE dataset_id = ? AND split = ? AND augmentation IS NULL ORDER BY pair_id",
        [dataset_id, split],
    )
