"""SQL for the benchmark stage: runs, tidy result rows, and the frames reports are drawn from."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import frame, insert_row, registered


def create_run(
    con: duckdb.DuckDBPyConnection,
    *,
    name: str,
    dataset_id: int,
    split: str,
    params: dict[str, Any],
    flow_run_id: str | None,
) -> int:
    values = {
        "name": name,
        "dataset_id": dataset_id,
        "split": split,
        "params": json.dumps(params, default=str),
        "flow_run_id": flow_run_id,
    }
    return insert_row(con, "benchmark_runs", values, returning="benchmark_run_id")


def store_results(
    con: duckdb.DuckDBPyConnection, run_id: int, rows: pl.DataFrame, preds: pl.DataFrame
) -> None:
    with registered(con, "new_results", rows), registered(con, "new_preds", preds):
        con.execute(
            "INSERT INTO benchmark_results SELECT ?, model, method, seed, benchmark, subset, n, metric, value, ci_low, ci_high FROM new_results",
            [run_id],
        )
        con.execute(
            "INSERT INTO benchmark_predictions SELECT ?, model, method, seed, pair_id, gap, label FROM new_preds",
            [run_id],
        )


def predictions(con: duckdb.DuckDBPyConnection, run_id: int) -> pl.DataFrame:
    return frame(con, "SELECT * FROM benchmark_predictions WHERE benchmark_run_id = ?", [run_id])


def set_report(con: duckdb.DuckDBPyConnection, run_id: int, path: str) -> None:
    con.execute(
        "UPDATE benchmark_runs SET report_path = ? WHERE benchmark_run_id = ?", [path, run_id]
    )


def results(con: duckdb.DuckDBPyConnection, run_id: int) -> pl.DataFrame:
    return frame(
        con,
        "SELECT * FROM benchmark_results WHERE benchmark_run_id = ? ORDER BY model, benchmark, subset, metric",
        [run_id],
    )


def scored_train_pairs(con: duckdb.DuckDBPyConnection, scoring_run_id: int) -> pl.DataFrame:
    """Free gaps with the injected truth (when the provenance carries it) for report figures."""
    return frame(
        con,
        "SELECT pair_id, split, label, free_gap, related_gap, own_gap, ess, chosen_chars - rejected_chars AS length_diff_chars,"
        " provenance FROM v_pairs_scored WHERE scoring_run_id = ? ORDER BY pair_id",
        [scoring_run_id],
    )


def run_row(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, Any]:
    """A benchmark run's name, dataset, split and params (decoded); an unknown id raises."""
    rows = frame(
        con,
        "SELECT benchmark_run_id, name, dataset_id, split, params FROM benchmark_runs WHERE benchmark_run_id = ?",
        [run_id],
    )
    if rows.height == 0:
        raise LookupError(f"no benchmark run {run_id}")
    row = rows.row(0, named=True)
    return row | {"params": json.loads(row["params"]) if row["params"] else {}}


EVIDENCE_ROWS = (
    "(model LIKE 'baseline:%' OR benchmark LIKE 'paired:%' OR subset = 'response_only_wrong')"
)


def replace_evidence(con: duckdb.DuckDBPyConnection, run_id: int, rows: pl.DataFrame) -> None:
    """The run's baseline, response-only-wrong and paired rows, replaced by `rows`."""
    con.execute(
        f"DELETE FROM benchmark_results WHERE benchmark_run_id = ? AND {EVIDENCE_ROWS}", [run_id]
    )
    with registered(con, "new_evidence", rows):
        con.execute(
            "INSERT INTO benchmark_results SELECT ?, model, method, seed, benchmark, subset, n,"
            " metric, value, ci_low, ci_high FROM new_evidence",
            [run_id],
        )


def prediction_provenance(con: duckdb.DuckDBPyConnection, run_id: int) -> pl.DataFrame:
    """(pair_id, provenance) of every pair the run predicted (e.g. an injected marker)."""
    return frame(
        con,
        "SELECT pair_id, provenance FROM v_pairs WHERE pair_id IN"
        " (SELECT pair_id FROM benchmark_predictions WHERE benchmark_run_id = ?)",
        [run_id],
    )
