"""SQL for the curate stage: candidate selection by a user predicate, immutable versioned sets."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import polars as pl

from warehouse.catalog import resolve
from warehouse.connection import frame, insert_row, registered
from warehouse.predicates import check_predicate, select_where, view_columns

CANDIDATE_COLUMNS = "pair_id, prompt_id, chosen_id, rejected_id, label, split"


def latest_complete_run(con: duckdb.DuckDBPyConnection, dataset_id: int) -> int | None:
    row = con.execute(
        "SELECT scoring_run_id FROM scoring_runs WHERE dataset_id = ? AND status = 'complete' ORDER BY scoring_run_id DESC LIMIT 1",
        [dataset_id],
    ).fetchone()
    return row[0] if row else None


def candidates(
    con: duckdb.DuckDBPyConnection, *, dataset_id: int, scoring_run_id: int | None, predicate: str
) -> pl.DataFrame:
    """Source pairs of one dataset (and scoring run) that the user's SQL predicate keeps, over
    `v_pairs_scored` (or `v_pairs` when no scoring run is used). The scope is a subquery with
    bound parameters and the predicate, checked by `warehouse.predicates`, filters its rows,
    so no predicate can reach pairs outside it. Callers run this on a read-only, sandboxed
    connection so it can neither write nor touch files."""
    if scoring_run_id is None:
        return select_where(
            con,
            view="v_pairs",
            select=f"{CANDIDATE_COLUMNS}, NULL::DOUBLE AS free_gap",
            scope="SELECT * FROM v_pairs WHERE dataset_id = $1 AND augmentation IS NULL",
            params=[dataset_id],
            predicate=predicate,
            order_by="pair_id",
            hints=_unscored_hints(con),
        )
    return select_where(
        con,
        view="v_pairs_scored",
        select=f"{CANDIDATE_COLUMNS}, free_gap",
        scope="SELECT * FROM v_pairs_scored WHERE scoring_run_id = $1 AND dataset_id = $2"
        " AND augmentation IS NULL",
        params=[scoring_run_id, dataset_id],
        predicate=predicate,
        order_by="pair_id",
    )


def _unscored_hints(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {
        c: " (a column of scored pairs: pass a scoring run, e.g. --scoring-run-id)"
        for c in view_columns(con, "v_pairs_scored")
    }


def check_candidate_predicate(
    con: duckdb.DuckDBPyConnection, *, scored: bool, predicate: str
) -> None:
    """The check `candidates` starts with, alone: lets the CLI refuse a bad predicate before
    a flow run starts."""
    if scored:
        check_predicate(con, predicate, "v_pairs_scored")
    else:
        check_predicate(con, predicate, "v_pairs", hints=_unscored_hints(con))


def find_set(con: duckdb.DuckDBPyConnection, name: str, definition_hash: str) -> dict | None:
    rows = frame(
        con,
        "SELECT * FROM curated_sets WHERE name = ? AND definition_hash = ?",
        [name, definition_hash],
    )
    return rows.to_dicts()[0] if rows.height else None


def store_set(
    con: duckdb.DuckDBPyConnection,
    fields: dict[str, Any],
    members: pl.DataFrame,
    augmented: pl.DataFrame | None,
) -> dict:
    """Augmented pairs (content-addressed, INSERT OR IGNORE), the set row, its members."""
    if augmented is not None and augmented.height:
        with registered(con, "new_aug", augmented):
            con.execute(
                "INSERT OR IGNORE INTO pairs (pair_id, dataset_id, prompt_id, chosen_id, rejected_id, label, split,"
                " source_row, provenance, augmentation, source_pair_id, flow_run_id)"
                " SELECT pair_id, ?, prompt_id, chosen_id, rejected_id, label, 'train', NULL, provenance, 'rrm',"
                " source_pair_id, ? FROM new_aug",
                [fields["dataset_id"], fields.get("flow_run_id")],
            )
    (version,) = con.execute(
        "SELECT coalesce(max(version), 0) + 1 FROM curated_sets WHERE name = ?", [fields["name"]]
    ).fetchone()
    values = fields | {"version": version}
    for key in ("rule_params", "augmentation", "counts"):
        values[key] = json.dumps(values.get(key))
    set_id = insert_row(con, "curated_sets", values, returning="curated_set_id")
    with registered(con, "new_members", members.select("pair_id", "weight")):
        con.execute(
            "INSERT INTO curated_members SELECT ?, pair_id, weight FROM new_members", [set_id]
        )
    return find_set(con, fields["name"], fields["definition_hash"])


def resolve_set(con: duckdb.DuckDBPyConnection, ref: str | int) -> int:
    return resolve(con, "curated set", ref)


def set_row(con: duckdb.DuckDBPyConnection, set_id: int) -> dict:
    return frame(con, "SELECT * FROM curated_sets WHERE curated_set_id = ?", [set_id]).to_dicts()[0]


def members(con: duckdb.DuckDBPyConnection, set_id: int) -> pl.DataFrame:
    """Members with their texts, labels and weights, in a stable order."""
    return frame(
        con,
        "SELECT pair_id, prompt_id, chosen_id, rejected_id, prompt, chosen, rejected, label, weight, split, augmentation"
        " FROM v_curated WHERE curated_set_id = ? ORDER BY pair_id",
        [set_id],
    )


def member_refs(con: duckdb.DuckDBPyConnection, set_id: int) -> pl.DataFrame:
    """`members` without the texts (ids, labels, weights), in the same order: all that a
    model trained on cached embeddings needs."""
    return frame(
        con,
        "SELECT pair_id, prompt_id, chosen_id, rejected_id, label, weight, split, augmentation"
        " FROM v_curated WHERE curated_set_id = ? ORDER BY pair_id",
        [set_id],
    )


def list_sets(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return frame(
        con,
        "SELECT cs.curated_set_id AS id, cs.name, cs.version, d.name AS dataset, cs.scoring_run_id AS run, cs.rule,"
        " cs.predicate, cs.n_candidates, cs.n_members, cs.n_augmented, round(cs.total_weight, 2) AS total_weight"
        " FROM curated_sets cs JOIN datasets d USING (dataset_id) ORDER BY cs.name, cs.version",
    )
