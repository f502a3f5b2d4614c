"""Read-side SQL for people and the CLI: dataset listings, quarantine, free-form queries."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from rmcore.config import QueryConfig
from rmcore.errors import NotFound
from warehouse import query as query_module
from warehouse.connection import frame
from warehouse.query import QueryResult

# Example queries the CLI prints in its help and after the demo (SQL lives in warehouse/).
EXAMPLE_QUERY = "SELECT split, count(*) FROM pairs GROUP BY 1"
CURATED_PREVIEW_QUERY = "SELECT * FROM v_curated LIMIT 5"


# A dataset's quality verdict is one of three, whatever its lifecycle `status` (migration 006).
QUALITY_VERDICTS = ("passed", "failed", "not-checked")
_QUALITY = (
    "CASE d.status WHEN 'passed_quality' THEN 'passed' WHEN 'failed_quality' THEN 'failed'"
    " ELSE 'not-checked' END"
)
_QUALITY_NOTE = (
    "coalesce(d.quality_note, CASE WHEN d.status NOT IN ('passed_quality', 'failed_quality')"
    " THEN 'never checked: run `rmcurate recheck`' END)"
)


def datasets(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every dataset version with its counts and quality verdict (passed, failed or
    not-checked, with the reason when not checked)."""
    return frame(
        con,
        "SELECT d.dataset_id AS id, d.name, d.version, d.format, d.n_input, d.n_pairs, d.n_quarantined,"
        f" d.status, {_QUALITY} AS quality, {_QUALITY_NOTE} AS quality_note, d.created_at"
        " FROM datasets d ORDER BY d.name, d.version",
    )


# Versioned things users name as `id`, `name` (latest version) or `name@version`.
_VERSIONED = {
    "dataset": ("datasets", "dataset_id", "`rmcurate datasets` lists them"),
    "curated set": ("curated_sets", "curated_set_id", "`rmcurate sets` lists them"),
}


def resolve(con: duckdb.DuckDBPyConnection, kind: str, ref: str | int) -> int:
    """The id of a dataset or curated set from `id`, `name` or `name@version` (names never
    look like ids or `name@version`: `rmcore.names`); `NotFound` when there is none."""
    table, key, hint = _VERSIONED[kind]  # identifiers from our own table, never user input
    text = str(ref).strip()
    if text.isdigit():
        query, params = f"SELECT {key} FROM {table} WHERE {key} = ?", [int(text)]
        what = f"{kind} with id {text}"
    elif "@" in text and text.rsplit("@", 1)[1].isdigit():
        name, version = text.rsplit("@", 1)
        query, params = (
            f"SELECT {key} FROM {table} WHERE name = ? AND version = ?",
            [name, int(version)],
        )
        what = f"{kind} {name!r} version {version}"
    else:
        query, params = (
            f"SELECT {key} FROM {table} WHERE name = ? ORDER BY version DESC LIMIT 1",
            [text],
        )
        what = f"{kind} {text!r}"
    rows = con.execute(query, params).fetchall()
    if not rows:
        raise NotFound(f"no {what}; {hint} (refer to one as id, name or name@version)")
    return rows[0][0]


def resolve_dataset(con: duckdb.DuckDBPyConnection, ref: str | int) -> int:
    return resolve(con, "dataset", ref)


def label(con: duckdb.DuckDBPyConnection, kind: str, ref_id: int) -> str:
    """`name@version (id N)` of a dataset or curated set id, to say which one a reference
    picked."""
    table, key, _ = _VERSIONED[kind]  # identifiers from our own table
    row = con.execute(f"SELECT name, version FROM {table} WHERE {key} = ?", [ref_id]).fetchone()
    if row is None:
        raise NotFound(f"no {kind} with id {ref_id}; {_VERSIONED[kind][2]}")
    return f"{row[0]}@{row[1]} (id {ref_id})"


def report_owner(con: duckdb.DuckDBPyConnection, report_path: str) -> str | None:
    """The name of the newest benchmark run whose report is `report_path`, if any: a report
    folder an ablation of that name wrote (and may rewrite)."""
    row = con.execute(
        "SELECT name FROM benchmark_runs WHERE report_path = ? ORDER BY benchmark_run_id DESC LIMIT 1",
        [report_path],
    ).fetchone()
    return row[0] if row else None


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


def run_query(
    con: duckdb.DuckDBPyConnection,
    query: str,
    *,
    timeout_s: float = QueryConfig.timeout_s,
    max_rows: int = QueryConfig.max_rows,
) -> QueryResult:
    """A user's query, on a connection the caller opened read-only and sandboxed: stopped at
    `timeout_s` or on Ctrl-C, every column printable (`warehouse.query`)."""
    return query_module.run_query(con, query, timeout_s=timeout_s, max_rows=max_rows)


@dataclass(frozen=True)
class CheckTarget:
    """What a quality re-check needs to know about a stored dataset version."""

    dataset_id: int
    name: str
    version: int
    status: str
    n_input: int
    max_chars: int | None  # as recorded at ingest (`datasets.options`)


def check_target(con: duckdb.DuckDBPyConnection, dataset_id: int) -> CheckTarget:
    row = con.execute(
        "SELECT dataset_id, name, version, status, coalesce(n_input, 0),"
        " TRY_CAST(json_extract(options, '$.max_chars') AS BIGINT)"
        " FROM datasets WHERE dataset_id = ?",
        [dataset_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no dataset with id {dataset_id}; `rmcurate datasets` lists them")
    return CheckTarget(*row)


def quality_status(con: duckdb.DuckDBPyConnection, dataset_id: int) -> tuple[str, str | None]:
    """(passed | failed | not-checked, the reason when not checked)."""
    return con.execute(
        f"SELECT {_QUALITY}, {_QUALITY_NOTE} FROM datasets d WHERE d.dataset_id = ?", [dataset_id]
    ).fetchone()


def mark_not_checked(con: duckdb.DuckDBPyConnection, dataset_id: int, reason: str) -> None:
    """The batch is stored but its quality check could not run: say so, with the reason."""
    con.execute(
        "UPDATE datasets SET status = 'not_checked', quality_note = ?,"
        " updated_at = current_timestamp WHERE dataset_id = ?",
        [reason, dataset_id],
    )


def clear_quality_note(con: duckdb.DuckDBPyConnection, dataset_id: int) -> None:
    """A check ran (its verdict went to `dq_runs` and `status`): no reason to show any more."""
    con.execute(
        "UPDATE datasets SET quality_note = NULL WHERE dataset_id = ? AND quality_note IS NOT NULL",
        [dataset_id],
    )
