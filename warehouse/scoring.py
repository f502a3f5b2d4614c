"""SQL for the score stage: caches (embeddings, rm_scores, lm_logliks), runs, pair results.

Look-ups take a batch of keys as a registered Arrow table and join against it; writes
insert from Arrow with INSERT OR IGNORE, so re-running never duplicates a cache row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from warehouse.connection import frame, insert_row, registered


@dataclass(frozen=True)
class RunRow:
    scoring_run_id: int
    run_key: str
    status: str
    run_dir: str | None


def dataset_pairs(con: duckdb.DuckDBPyConnection, dataset_id: int) -> pl.DataFrame:
    """Source pairs of a dataset in a stable order (the order fixes shard membership)."""
    return frame(
        con,
        "SELECT pair_id, prompt_id, chosen_id, rejected_id, label, split FROM pairs"
        " WHERE dataset_id = ? AND augmentation IS NULL ORDER BY pair_id",
        [dataset_id],
    )


def dataset_prompt_ids(con: duckdb.DuckDBPyConnection, dataset_id: int, split: str) -> pl.Series:
    """The prompt pool: distinct prompts of the dataset's `split` (the training split, so no
    validation or test prompt ever enters a training pair's decomposition)."""
    return frame(
        con,
        "SELECT DISTINCT prompt_id FROM pairs WHERE dataset_id = ? AND split = ?"
        " AND augmentation IS NULL ORDER BY 1",
        [dataset_id, split],
    )["prompt_id"]


def set_temperature(
    con: duckdb.DuckDBPyConnection, scoring_run_id: int, temperature: float
) -> None:
    con.execute(
        "UPDATE scoring_runs SET temperature = ? WHERE scoring_run_id = ?",
        [temperature, scoring_run_id],
    )


def _with_keys(
    con: duckdb.DuckDBPyConnection, name: str, keys: pl.DataFrame, query: str, params: list
) -> pl.DataFrame:
    with registered(con, name, keys):
        return frame(con, query, params)


def texts(con: duckdb.DuckDBPyConnection, ids: pl.Series) -> pl.DataFrame:
    """(text_id, text) for prompt or response ids."""
    keys = pl.DataFrame({"text_id": ids.unique()})
    return _with_keys(
        con,
        "wanted_texts",
        keys,
        "SELECT k.text_id, coalesce(p.text, r.text) AS text FROM wanted_texts k"
        " LEFT JOIN prompts p ON p.prompt_id = k.text_id LEFT JOIN responses r ON r.response_id = k.text_id",
        [],
    )


def missing_embeddings(
    con: duckdb.DuckDBPyConnection, encoder_id: str, ids: pl.Series
) -> pl.Series:
    keys = pl.DataFrame({"text_id": ids.unique()})
    return _with_keys(
        con,
        "wanted_emb",
        keys,
        "SELECT k.text_id FROM wanted_emb k ANTI JOIN (SELECT text_id FROM embeddings WHERE encoder_id = ?) e USING (text_id) ORDER BY 1",
        [encoder_id],
    )["text_id"]


def embeddings(
    con: duckdb.DuckDBPyConnection, encoder_id: str, ids: pl.Series
) -> tuple[dict[str, int], np.ndarray]:
    """Cached embeddings for `ids`: (id -> row, (U, D) float32 matrix)."""
    keys = pl.DataFrame({"text_id": ids.unique()})
    con.complete()
    with registered(con, "wanted_emb", keys):
        table = con.sql(
            "SELECT e.text_id, e.embedding FROM embeddings e JOIN wanted_emb k USING (text_id) WHERE e.encoder_id = ?",
            params=[encoder_id],
        ).to_arrow_table()
    found = table.column("text_id").to_pylist()
    emb = table.column("embedding").combine_chunks()
    dim = len(emb[0]) if len(emb) else 0
    matrix = (
        emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(found), dim)
    )
    return {t: i for i, t in enumerate(found)}, matrix


def store_embeddings(
    con: duckdb.DuckDBPyConnection, encoder_id: str, ids: list[str], matrix: np.ndarray
) -> None:
    values = pa.FixedSizeListArray.from_arrays(
        pa.array(matrix.astype(np.float32).ravel()), matrix.shape[1]
    )
    batch = pa.table({"text_id": ids, "embedding": values.cast(pa.list_(pa.float32()))})
    with registered(con, "new_emb", batch):
        con.execute(
            "INSERT OR IGNORE INTO embeddings SELECT ?, text_id, embedding FROM new_emb",
            [encoder_id],
        )


def cached_values(
    con: duckdb.DuckDBPyConnection, table: str, model_id: str, revision: str, combos: pl.DataFrame
) -> pl.DataFrame:
    """Rows of rm_scores (score) or lm_logliks (loglik) for the wanted (prompt_id, response_id)."""
    query = {
        "rm_scores": "SELECT c.prompt_id, c.response_id, s.score FROM rm_scores s JOIN wanted_combos c"
        " USING (prompt_id, response_id) WHERE s.model_id = ? AND s.revision = ?",
        "lm_logliks": "SELECT c.prompt_id, c.response_id, s.loglik FROM lm_logliks s JOIN wanted_combos c"
        " USING (prompt_id, response_id) WHERE s.lm_id = ? AND s.revision = ?",
    }[table]
    return _with_keys(
        con, "wanted_combos", combos.select("prompt_id", "response_id"), query, [model_id, revision]
    )


_VALUE_COLUMN = {"rm_scores": "score", "lm_logliks": "loglik"}


def _store_query(table: str, source: str) -> str:
    """INSERT OR IGNORE of (prompt_id, response_id, value) rows of `source` into `table`, one
    row per key (shards of one run may each have scored the same combination)."""
    value = _VALUE_COLUMN[table]
    return (
        f"INSERT OR IGNORE INTO {table} SELECT ?, ?, prompt_id, response_id, any_value({value})"
        f" FROM {source} GROUP BY ALL"
    )


def store_values(
    con: duckdb.DuckDBPyConnection, table: str, model_id: str, revision: str, rows: pl.DataFrame
) -> None:
    with registered(con, "new_values", rows):
        con.execute(_store_query(table, "new_values"), [model_id, revision])


def store_value_files(
    con: duckdb.DuckDBPyConnection, table: str, model_id: str, revision: str, paths: list[str]
) -> None:
    """`store_values` of the rows of Parquet files, read and deduplicated by DuckDB itself:
    concatenated in Python, a 1M-pair run's shard files (33.5M rows, 2.8M distinct) held
    gigabytes (docs/RESULTS.md section 9)."""
    if paths:
        con.execute(_store_query(table, "read_parquet(?)"), [model_id, revision, paths])


def find_run(con: duckdb.DuckDBPyConnection, run_key: str) -> RunRow | None:
    row = con.execute(
        "SELECT scoring_run_id, run_key, status, run_dir FROM scoring_runs WHERE run_key = ?",
        [run_key],
    ).fetchone()
    return RunRow(*row) if row else None


def create_run(con: duckdb.DuckDBPyConnection, **fields: Any) -> RunRow:
    """A new `running` scoring run with the given columns."""
    scoring_run_id = insert_row(
        con, "scoring_runs", fields | {"status": "running"}, returning="scoring_run_id"
    )
    return RunRow(
        scoring_run_id=scoring_run_id,
        run_key=fields["run_key"],
        status="running",
        run_dir=fields.get("run_dir"),
    )


def store_pair_scores(
    con: duckdb.DuckDBPyConnection, scoring_run_id: int, results: pl.DataFrame
) -> None:
    with registered(con, "new_pair_scores", results):
        con.execute(
            "INSERT OR IGNORE INTO pair_scores SELECT ?, pair_id, own_gap, free_gap, related_gap, ess, k, iterations, converged"
            " FROM new_pair_scores",
            [scoring_run_id],
        )


def finish_run(
    con: duckdb.DuckDBPyConnection,
    scoring_run_id: int,
    *,
    n_combos: int,
    n_cache_hits: int,
    timings: dict,
) -> None:
    con.execute(
        "UPDATE scoring_runs SET status = 'complete', n_combos = ?, n_cache_hits = ?, timings = ?, finished_at = current_timestamp"
        " WHERE scoring_run_id = ?",
        [n_combos, n_cache_hits, json.dumps(timings), scoring_run_id],
    )


def run_results(con: duckdb.DuckDBPyConnection, scoring_run_id: int) -> pl.DataFrame:
    return frame(
        con,
        "SELECT s.*, p.label FROM pair_scores s JOIN pairs p USING (pair_id) WHERE s.scoring_run_id = ? ORDER BY pair_id",
        [scoring_run_id],
    )


def run_model(con: duckdb.DuckDBPyConnection, scoring_run_id: int) -> tuple[str, str]:
    """(model_id, revision) that a scoring run used."""
    return con.execute(
        "SELECT model_id, revision FROM scoring_runs WHERE scoring_run_id = ?", [scoring_run_id]
    ).fetchone()


def run_timings(con: duckdb.DuckDBPyConnection, scoring_run_id: int) -> dict:
    """The timings a finished scoring run recorded (empty while it runs)."""
    (timings,) = con.execute(
        "SELECT timings FROM scoring_runs WHERE scoring_run_id = ?", [scoring_run_id]
    ).fetchone()
    return json.loads(timings or "{}")


def run_fields(con: duckdb.DuckDBPyConnection, scoring_run_id: int) -> dict[str, Any]:
    """Every column of one scoring run; an unknown id raises."""
    rows = frame(con, "SELECT * FROM scoring_runs WHERE scoring_run_id = ?", [scoring_run_id])
    if rows.height == 0:
        raise LookupError(f"no scoring run {scoring_run_id}")
    return rows.row(0, named=True)
