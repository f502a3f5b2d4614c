"""Read-side SQL for people and the CLI: dataset listings, quarantine, free-form queries."""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.connection import frame


def datasets(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every dataset version with its counts and latest quality verdict."""
    return frame(
        con,
        "SELECT d.dataset_id AS id, d.name, d.version, d.format, d.n_input, d.n_pairs, d.n_quarantined,"
        " d.status, d.created_at"
        " FROM datasets d ORDER BY d.name, d.version",
    )


def resolve_dataset(con: duckdb.DuckDBPyConnection, ref: str | int) -> int:
    """A dataset id from `id`, `name` (latest version) or `name@version`."""
    text = str(ref)
    if text.isdigit():
        row = con.execute(
            "SELECT dataset_id FROM datasets WHERE dataset_id = ?", [int(text)]
        ).fetchone()
    elif "@" in text:
        name, version = text.rsplit("@", 1)
        row = con.execute(
            "SELECT dataset_id FROM datasets WHERE name = ? AND version = ?", [name, int(version)]
        ).fetchone()
    else:
        row = con.execute(
            "SELECT dataset_id FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", [text]
        ).fetchone()
    if row is None:
        raise LookupError(f"no dataset {ref!r}; `rmcurate datasets` lists them")
    return row[0]


def quarantine(
    con: duckdb.DuckDBPyConnection, dataset_id: int | None, reason: str | None, limit: int
) -> pl.DataFrame:
    return frame(
        con,
        "SELECT d.name, d.version, q.source_row, q.reason, q.message, left(q.raw, 120) AS raw"
        " FROM quarantine q JOIN datasets d USING (dataset_id)"
        " WHERE ($1 IS NULL OR q.dataset_id = $1) AND ($2 IS NULL OR q.reason = $2)"
        " ORDER BY d.name, d.version, q.source_row LIMIT $3",
        [dataset_id, reason, limit],
    )


def quarantine_counts(con: duckdb.DuckDBPyConnection, dataset_id: int | None) -> pl.DataFrame:
    return frame(
        con,
        "SELECT d.name, d.version, q.reason, count(*) AS n FROM quarantine q JOIN datasets d USING (dataset_id)"
        " WHERE ($1 IS NULL OR q.dataset_id = $1) GROUP BY ALL ORDER BY ALL",
        [dataset_id],
    )


def run_query(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    """A user's query, on a connection the caller opened read-only and sandboxed."""
    return frame(con, query)
