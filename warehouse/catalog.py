"""Read-side SQL for people and the CLI: dataset listings, quarantine, free-form queries."""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.connection import frame

# Example queries the CLI prints in its help and after the demo (SQL lives in warehouse/).
EXAMPLE_QUERY = "SELECT split, count(*) FROM pairs GROUP BY 1"
CURATED_PREVIEW_QUERY = "SELECT * FROM v_curated LIMIT 5"


def datasets(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every dataset version with its counts and latest quality verdict."""
    return frame(
        con,
        "SELECT d.dataset_id AS id, d.name, d.version, d.format, d.n_input, d.n_pairs, d.n_quarantined,"
        " d.status, d.created_at"
        " FROM datasets d ORDER BY d.name, d.version",
    )


# Versioned things users name as `id`, `name` (latest version) or `name@version`.
_VERSIONED = {
    "dataset": ("datasets", "dataset_id", "`rmcurate datasets` lists them"),
    "curated set": ("curated_sets", "curated_set_id", "`rmcurate sets` lists them"),
}


def resolve(con: duckdb.DuckDBPyConnection, kind: str, ref: str | int) -> int:
    """The id of a dataset or curated set from `id`, `name` or `name@version`."""
    table, key, hint = _VERSIONED[kind]  # identifiers from our own table, never user input
    text = str(ref)
    if text.isdigit():
        query, params = f"SELECT {key} FROM {table} WHERE {key} = ?", [int(text)]
    elif "@" in text and text.rsplit("@", 1)[1].isdigit():
        name, version = text.rsplit("@", 1)
        query, params = (
            f"SELECT {key} FROM {table} WHERE name = ? AND version = ?",
            [name, int(version)],
        )
    else:
        query, params = (
            f"SELECT {key} FROM {table} WHERE name = ? ORDER BY version DESC LIMIT 1",
            [text],
        )
    rows = con.execute(query, params).fetchall()
    if not rows:
        raise LookupError(f"no {kind} {ref!r}; {hint}")
    return rows[0][0]


def resolve_dataset(con: duckdb.DuckDBPyConnection, ref: str | int) -> int:
    return resolve(con, "dataset", ref)


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
