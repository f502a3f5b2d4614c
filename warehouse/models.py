"""SQL for the model registry (`models`): what was trained on what, where it lives, how it did."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import frame, insert_row


def find(con: duckdb.DuckDBPyConnection, name: str) -> dict | None:
    rows = frame(
        con, "SELECT name, path, backend, config, metrics FROM models WHERE name = ?", [name]
    ).to_dicts()
    if not rows:
        return None
    return rows[0] | {
        "config": json.loads(rows[0]["config"] or "{}"),
        "metrics": json.loads(rows[0]["metrics"] or "{}"),
    }


def register(con: duckdb.DuckDBPyConnection, **fields: Any) -> None:
    """Insert or replace the model called `name`."""
    fields = fields | {
        "config": json.dumps(fields.get("config"), default=str),
        "metrics": json.dumps(fields.get("metrics"), default=str),
    }
    con.execute("DELETE FROM models WHERE name = ?", [fields["name"]])
    insert_row(con, "models", fields)


def listing(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return frame(
        con,
        "SELECT m.name, m.backend, m.method, cs.name AS curated_set, cs.version AS set_version, d.name AS dataset,"
        " round(json_extract(m.metrics, '$.val_accuracy')::DOUBLE, 4) AS val_accuracy, m.path"
        " FROM models m LEFT JOIN curated_sets cs USING (curated_set_id) LEFT JOIN datasets d ON d.dataset_id = m.dataset_id"
        " ORDER BY m.created_at",
    )


def latest_model(con: duckdb.DuckDBPyConnection, dataset_id: int) -> str | None:
    """The newest reward model trained on this dataset, the default scorer for it."""
    row = con.execute(
        "SELECT path FROM models WHERE dataset_id = ? ORDER BY created_at DESC LIMIT 1",
        [dataset_id],
    ).fetchone()
    return row[0] if row else None
