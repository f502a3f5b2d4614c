"""SQL for cross-fitting (issue 10): folds by prompt, and cross-fitted scoring runs.

A pair's fold is a function of its prompt id (a sha256 hex digest): the first 8 hex digits
as an integer, modulo k. The one expression (`FOLD_SQL`) both selects a fold model's
training pairs (a predicate over `v_pairs`) and assigns folds when a run is combined, so
the two cannot disagree.
"""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.connection import frame, registered

FOLD_SQL = "(CAST(('0x' || left(prompt_id, 8)) AS UBIGINT) % {k})"


def fold_expression(k: int) -> str:
    """The fold (0..k-1) of a row with a `prompt_id` column, as SQL."""
    if not (isinstance(k, int) and k >= 2):
        raise ValueError(f"cross-fitting needs k >= 2 folds, got {k!r}")
    return FOLD_SQL.format(k=k)


def training_predicate(train_predicate: str, k: int, fold: int) -> str:
    """The pairs fold `fold`'s reference model trains on: the training pairs of every other fold."""
    return f"({train_predicate}) AND {fold_expression(k)} <> {int(fold)}"


def pair_folds(con: duckdb.DuckDBPyConnection, dataset_id: int, k: int) -> pl.DataFrame:
    """(pair_id, prompt_id, split, fold) of every source pair of the dataset."""
    return frame(
        con,
        f"SELECT pair_id, prompt_id, split, {fold_expression(k)}::INTEGER AS fold FROM pairs"
        " WHERE dataset_id = ? AND augmentation IS NULL ORDER BY pair_id",
        [dataset_id],
    )


def prompt_folds(con: duckdb.DuckDBPyConnection, prompt_ids: pl.Series, k: int) -> pl.Series:
    """The fold of each prompt id, in order."""
    keys = pl.DataFrame({"prompt_id": prompt_ids}).with_row_index("row")
    with registered(con, "fold_prompts", keys):
        out = frame(
            con,
            f"SELECT row, {fold_expression(k)}::INTEGER AS fold FROM fold_prompts ORDER BY row",
            [],
        )
    return out["fold"]


def fold_runs_of(con: duckdb.DuckDBPyConnection, scoring_run_id: int) -> pl.DataFrame:
    """(fold, model_id, source_scoring_run_id) of a cross-fitted run; empty for a one-model run."""
    return frame(
        con,
        "SELECT DISTINCT fold, model_id, source_scoring_run_id FROM scoring_folds"
        " WHERE scoring_run_id = ? ORDER BY fold",
        [scoring_run_id],
    )


def store_cross_fit(
    con: duckdb.DuckDBPyConnection, scoring_run_id: int, folds: pl.DataFrame
) -> None:
    """Copy every pair's decomposition from its fold's run into the cross-fitted run and
    record (pair, fold, model, source run). `folds`: pair_id, fold, model_id,
    source_scoring_run_id."""
    with registered(con, "new_folds", folds):
        con.execute(
            "INSERT INTO scoring_folds SELECT ?, pair_id, fold, model_id, source_scoring_run_id"
            " FROM new_folds",
            [scoring_run_id],
        )
        con.execute(
            "INSERT INTO pair_scores SELECT ?, s.pair_id, s.own_gap, s.free_gap, s.related_gap,"
            " s.ess, s.k, s.iterations, s.converged FROM new_folds f JOIN pair_scores s"
            " ON s.scoring_run_id = f.source_scoring_run_id AND s.pair_id = f.pair_id",
            [scoring_run_id],
        )
