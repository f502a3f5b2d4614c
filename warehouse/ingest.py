"""SQL for the ingest stage: dataset versions, content-addressed texts, pairs, quarantine, dq runs.

Batches travel as Arrow tables registered on the connection (no per-row inserts, except in
`store_rows_one_by_one`, the naive baseline the ingest benchmark measures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import frame, insert_row, registered

# What a write transaction raises when a concurrent one in the same process wrote the same
# keys first (two ingests of one source at once), or holds the file open read-only for a
# moment (publishing the snapshot): the caller retries and re-reads instead of failing.
CONFLICTS = (duckdb.ConstraintException, duckdb.TransactionException, duckdb.ConnectionException)


@dataclass(frozen=True)
class DatasetRow:
    dataset_id: int
    name: str
    version: int
    status: str
    n_input: int | None
    n_pairs: int | None
    n_quarantined: int | None
    report_path: str | None = None


def find_version(con: duckdb.DuckDBPyConnection, name: str, content_hash: str) -> DatasetRow | None:
    """The dataset version with this exact content, if it was ingested before."""
    row = con.execute(
        "SELECT d.dataset_id, d.name, d.version, d.status, d.n_input, d.n_pairs, d.n_quarantined,"
        " (SELECT arg_max(report_path, dq_run_id) FROM dq_runs q WHERE q.dataset_id = d.dataset_id)"
        " FROM datasets d WHERE d.name = ? AND d.content_hash = ? ORDER BY d.version DESC LIMIT 1",
        [name, content_hash],
    ).fetchone()
    if row is None:
        return None
    return DatasetRow(**dict(zip((f.name for f in fields(DatasetRow)), row, strict=True)))


def create_version(
    con: duckdb.DuckDBPyConnection,
    *,
    name: str,
    uri: str,
    fmt: str,
    content_hash: str,
    options: dict[str, Any],
    flow_run_id: str | None,
) -> DatasetRow:
    (version,) = con.execute(
        "SELECT coalesce(max(version), 0) + 1 FROM datasets WHERE name = ?", [name]
    ).fetchone()
    values = {
        "name": name,
        "version": version,
        "uri": uri,
        "format": fmt,
        "content_hash": content_hash,
        "status": "ingesting",
        "options": json.dumps(options),
        "flow_run_id": flow_run_id,
    }
    dataset_id = insert_row(con, "datasets", values, returning="dataset_id")
    return DatasetRow(
        dataset_id=dataset_id,
        name=name,
        version=version,
        status="ingesting",
        n_input=None,
        n_pairs=None,
        n_quarantined=None,
    )


def store_batch(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    pairs: pl.DataFrame,
    quarantine: pl.DataFrame,
    flow_run_id: str | None,
) -> None:
    """Texts once each, then pairs and quarantine rows. New texts are found with an anti-join
    rather than INSERT OR IGNORE: the same guarantee (no text stored twice, the primary key
    still enforces it), without a per-row conflict check on the index (about 2x faster for
    new texts, 10x when the texts are already stored)."""
    # Arrow string views: polars hands its strings over without copying them.
    newest = pl.CompatLevel.newest()
    with (
        registered(con, "batch_pairs", pairs.to_arrow(compat_level=newest)),
        registered(con, "batch_quarantine", quarantine.to_arrow(compat_level=newest)),
    ):
        con.execute(
            "INSERT INTO prompts SELECT prompt_id, any_value(prompt), length(any_value(prompt))"
            " FROM batch_pairs ANTI JOIN prompts USING (prompt_id) GROUP BY prompt_id"
        )
        con.execute(
            "INSERT INTO responses SELECT id, any_value(t), length(any_value(t)) FROM ("
            " SELECT chosen_id AS id, chosen AS t FROM batch_pairs"
            " UNION ALL SELECT rejected_id, rejected FROM batch_pairs) b"
            " ANTI JOIN responses r ON r.response_id = b.id GROUP BY id"
        )
        con.execute(
            "INSERT INTO pairs (pair_id, dataset_id, prompt_id, chosen_id, rejected_id, label, split,"
            " source_row, provenance, flow_run_id)"
            " SELECT pair_id, ?, prompt_id, chosen_id, rejected_id, label, split, source_row, provenance, ?"
            " FROM batch_pairs",
            [dataset_id, flow_run_id],
        )
        con.execute(
            "INSERT INTO quarantine (dataset_id, source_row, reason, message, raw, flow_run_id)"
            " SELECT ?, source_row, reason, message, raw, ? FROM batch_quarantine",
            [dataset_id, flow_run_id],
        )


def store_rows_one_by_one(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    prompts: list[tuple[str, str, int]],
    responses: list[tuple[str, str, int]],
    pairs: list[tuple],
) -> int:
    """The naive baseline `benchmarks/ingest.py` measures the batch path against: one prepared
    `INSERT OR IGNORE` run per row (no quarantine, provenance or flow run). `pairs` rows are
    (pair_id, dataset_id, prompt_id, chosen_id, rejected_id, label, split, source_row).
    Returns the number of pairs the dataset holds."""
    con.executemany("INSERT OR IGNORE INTO prompts VALUES (?, ?, ?)", prompts)
    con.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?)", responses)
    con.executemany(
        "INSERT OR IGNORE INTO pairs (pair_id, dataset_id, prompt_id, chosen_id, rejected_id,"
        " label, split, source_row) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        pairs,
    )
    (n,) = con.execute("SELECT count(*) FROM pairs WHERE dataset_id = ?", [dataset_id]).fetchone()
    return n


def finish_version(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    *,
    n_input: int,
    n_rows_stored: int,
    n_pairs: int,
    n_quarantined: int,
) -> None:
    con.execute(
        "UPDATE datasets SET n_input = ?, n_rows_stored = ?, n_pairs = ?, n_quarantined = ?,"
        " status = 'ingested', updated_at = current_timestamp WHERE dataset_id = ?",
        [n_input, n_rows_stored, n_pairs, n_quarantined, dataset_id],
    )


def stored_counts(con: duckdb.DuckDBPyConnection, dataset_id: int) -> tuple[int, int, int]:
    """(distinct source rows with pairs, pairs, quarantined rows) as the warehouse sees them."""
    return con.execute(
        "SELECT (SELECT count(DISTINCT source_row) FROM pairs WHERE dataset_id = $1 AND augmentation IS NULL),"
        " (SELECT count(*) FROM pairs WHERE dataset_id = $1 AND augmentation IS NULL),"
        " (SELECT count(*) FROM quarantine WHERE dataset_id = $1)",
        [dataset_id],
    ).fetchone()


def set_status(con: duckdb.DuckDBPyConnection, dataset_id: int, status: str) -> None:
    con.execute(
        "UPDATE datasets SET status = ?, updated_at = current_timestamp WHERE dataset_id = ?",
        [status, dataset_id],
    )


def batch_frame(con: duckdb.DuckDBPyConnection, dataset_id: int) -> pl.DataFrame:
    """The stored batch with its texts, in the canonical column layout the quality suite checks."""
    return frame(
        con,
        "SELECT p.pair_id, p.prompt_id, p.chosen_id, p.rejected_id, pr.text AS prompt, c.text AS chosen,"
        " r.text AS rejected, p.label, p.split, p.source_row"
        " FROM pairs p JOIN prompts pr USING (prompt_id)"
        " JOIN responses c ON c.response_id = p.chosen_id JOIN responses r ON r.response_id = p.rejected_id"
        " WHERE p.dataset_id = ? AND p.augmentation IS NULL ORDER BY p.source_row",
        [dataset_id],
    )


def record_dq_run(
    con: duckdb.DuckDBPyConnection,
    *,
    dataset_id: int,
    suite: str,
    success: bool,
    n_expectations: int,
    n_evaluated: int,
    n_failed: int,
    failed: list[str],
    statistics: dict[str, Any],
    result: dict[str, Any],
    report_path: str | None,
    flow_run_id: str | None,
) -> int:
    values = {
        "dataset_id": dataset_id,
        "suite": suite,
        "success": success,
        "n_expectations": n_expectations,
        "n_evaluated": n_evaluated,
        "n_failed": n_failed,
        "failed": json.dumps(failed),
        "statistics": json.dumps(statistics, default=str),
        "result": json.dumps(result, default=str),
        "report_path": report_path,
        "flow_run_id": flow_run_id,
    }
    dq_run_id = insert_row(con, "dq_runs", values, returning="dq_run_id")
    set_status(con, dataset_id, "passed_quality" if success else "failed_quality")
    return dq_run_id
