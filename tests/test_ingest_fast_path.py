"""The ingest fast path (column-wise read, id-based duplicate check, Arrow insert, polars
re-read for the quality suite): every input row reconciles, no pair id is ever stored twice,
and a re-ingest stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.ingest import ingest_flow
from rmcore.config import IngestConfig
from rmcore.ingest.batch import build_batch
from rmcore.ingest.sources import read_source
from rmcore.stages import ingest as stage
from warehouse import ingest as sql
from warehouse.connection import transaction

CONFIG = IngestConfig(quality=False)

# Explicit-format rows: duplicates after normalization, a bad row before a good duplicate.
ROWS = [
    {"prompt": "p1", "chosen": "a", "rejected": "b"},  # 0 stored
    {"prompt": "p1 ", "chosen": "a\r\n", "rejected": "b"},  # 1 duplicate of 0 once normalized
    {"prompt": "p2", "chosen": "same", "rejected": "same"},  # 2 identical_responses
    {"prompt": "p3", "chosen": "a", "rejected": "b", "label": 2},  # 3 invalid_label
    {"prompt": "p3", "chosen": "a", "rejected": "b"},  # 4 stored: the bad row 3 does not count
    {"prompt": "p3", "chosen": "a", "rejected": "b", "split": "dev"},  # 5 duplicate of 4
    {"prompt": "p4", "chosen": "b", "rejected": "a"},  # 6 stored: swapped texts, another pair
]
EXPECTED_QUARANTINE = [
    (1, "duplicate_pair"),
    (2, "identical_responses"),
    (3, "invalid_label"),
    (5, "duplicate_pair"),
]

# Ranked rows: several pairs per row; a row with one repeated pair is quarantined whole.
RANKED = [
    {"prompt": "z", "completions": [{"text": t, "score": s} for t, s in (("x", 1), ("y", 2))]},
    {"prompt": "z", "completions": [{"text": t, "score": s} for t, s in (("w", 0), ("y", 2))]},
    {
        "prompt": "z",
        "completions": [{"text": t, "score": s} for t, s in (("x", 1), ("y", 2), ("v", 3))],
    },
]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def violates_key(err: BaseException) -> bool:
    """A primary-key violation, raised as itself: not hidden behind the TransactionException
    that unregistering the batch view from the aborted transaction raised (fixed bug: the
    retry loop took a duplicate key for a conflict and retried it)."""
    return isinstance(err, duckdb.ConstraintException) and "primary key" in str(err).lower()


def stored(warehouse: str) -> dict:
    con = duckdb.connect(warehouse, read_only=True)
    try:
        return {
            "pairs": con.execute("SELECT count(*), count(DISTINCT pair_id) FROM pairs").fetchall(),
            "versions": con.execute("SELECT count(*) FROM datasets").fetchall(),
            "quarantine": con.execute(
                "SELECT source_row, reason FROM quarantine ORDER BY source_row"
            ).fetchall(),
        }
    finally:
        con.close()


def ingest(warehouse: str, path: Path, name: str = "fast") -> stage.IngestSummary:
    kind, digest = stage.fingerprint(str(path), None)
    return stage.find_existing(warehouse, name, digest) or stage.parse_validate_store(
        warehouse,
        uri=str(path),
        kind=kind,
        fmt=None,
        name=name,
        digest=digest,
        config=CONFIG,
        flow_run_id=None,
    )


def test_columnar_batch_reconciles_and_keeps_the_first_good_duplicate(tmp_path):
    raw = read_source(str(write(tmp_path / "d.jsonl", ROWS)))
    assert raw.table is not None  # the column-wise path, not the record reader
    batch = build_batch(raw, namespace="fast@1")
    assert batch.reconciles and batch.n_input == len(ROWS)
    assert batch.pairs["source_row"].to_list() == [0, 4, 6]
    assert batch.pairs["pair_id"].is_unique().all()
    got = list(
        zip(*batch.quarantine.select("source_row", "reason").to_dict().values(), strict=True)
    )
    assert got == EXPECTED_QUARANTINE
    # The record reader (no column-wise read) makes the same batch.
    slow = build_batch(read_source(str(tmp_path / "d.jsonl"), columnar=False), namespace="fast@1")
    assert slow.pairs.equals(batch.pairs) and slow.quarantine.equals(batch.quarantine)


@pytest.mark.parametrize("mode", ["best-vs-worst", "all-pairs"])
def test_ranked_row_with_a_repeated_pair_is_quarantined_whole(tmp_path, mode):
    batch = build_batch(
        read_source(str(write(tmp_path / "r.jsonl", RANKED))), namespace="r@1", ranked_mode=mode
    )
    assert batch.reconciles and batch.pairs["pair_id"].is_unique().all()
    # all-pairs: row 2 repeats row 0's (y, x); best-vs-worst: row 2 is (v, x), new.
    rows = {"best-vs-worst": [0, 1, 2], "all-pairs": [0, 1]}[mode]
    assert batch.pairs["source_row"].unique().sort().to_list() == rows
    expected = [] if mode == "best-vs-worst" else ["duplicate_pair"]
    assert batch.quarantine["reason"].to_list() == expected


def test_bracket_bound_is_per_line_not_per_file(tmp_path):
    """Lines that may nest deeper than pyarrow survives go to the record reader; many
    brackets spread over lines do not."""
    spread = [
        {"prompt": "p", "chosen": "a", "rejected": f"b{i}", "m": [[1]] * 300} for i in range(4)
    ]
    assert read_source(str(write(tmp_path / "spread.jsonl", spread))).table is not None
    deep = [*spread, {"prompt": "p", "chosen": "a", "rejected": "c", "m": [[1]] * 1200}]
    assert read_source(str(write(tmp_path / "deep.jsonl", deep))).table is None


def test_stored_batch_reconciles_and_reingest_is_a_noop(tmp_path, warehouse_file):
    path = write(tmp_path / "d.jsonl", ROWS)
    first = ingest(warehouse_file, path)
    assert first.reconciles and not first.skipped
    assert (first.n_rows_stored, first.n_pairs, first.n_quarantined) == (3, 3, 4)
    before = stored(warehouse_file)
    assert before["pairs"] == [(3, 3)] and before["quarantine"] == EXPECTED_QUARANTINE
    again = ingest(warehouse_file, path)
    assert again.skipped and again.dataset_id == first.dataset_id and again.reconciles
    assert stored(warehouse_file) == before


def test_a_stored_pair_id_can_never_be_stored_again(tmp_path, warehouse_file):
    """Even when the version check is bypassed: the transaction fails and writes nothing."""
    path = write(tmp_path / "d.jsonl", ROWS)
    first = ingest(warehouse_file, path)
    before = stored(warehouse_file)
    batch = build_batch(
        read_source(str(path)), namespace=f"fast@{stage.fingerprint(str(path), None)[1]}"
    )
    with pytest.raises(sql.CONFLICTS) as err, transaction(warehouse_file) as con:
        row = sql.create_version(
            con,
            name="fast",
            uri=str(path),
            fmt=batch.format,
            content_hash="forged",
            options={},
            flow_run_id=None,
        )
        sql.store_batch(con, row.dataset_id, batch.pairs, batch.quarantine, None)
    assert violates_key(err.value)
    assert stored(warehouse_file) == before
    assert first.n_pairs == batch.pairs.height


def test_a_batch_repeating_a_pair_id_is_refused_whole(tmp_path, warehouse_file):
    batch = build_batch(read_source(str(write(tmp_path / "d.jsonl", ROWS))), namespace="x")
    twice = pl.concat([batch.pairs, batch.pairs.head(1)])
    with pytest.raises(sql.CONFLICTS) as err, transaction(warehouse_file) as con:
        row = sql.create_version(
            con, name="x", uri="u", fmt="explicit", content_hash="h", options={}, flow_run_id=None
        )
        sql.store_batch(con, row.dataset_id, twice, batch.quarantine, None)
    assert violates_key(err.value)
    assert stored(warehouse_file)["pairs"] == [(0, 0)] and stored(warehouse_file)["versions"] == [
        (0,)
    ]


def test_quality_frame_is_every_stored_row_with_its_texts(tmp_path, warehouse_file):
    summary = ingest(warehouse_file, write(tmp_path / "d.jsonl", ROWS))
    with transaction(warehouse_file) as con:
        got = sql.batch_frame(con, summary.dataset_id)
        want = pl.from_arrow(
            con.sql(
                "SELECT p.pair_id, p.prompt_id, p.chosen_id, p.rejected_id, pr.text AS prompt,"
                " c.text AS chosen, r.text AS rejected, p.label, p.split, p.source_row"
                " FROM pairs p JOIN prompts pr USING (prompt_id)"
                " JOIN responses c ON c.response_id = p.chosen_id"
                " JOIN responses r ON r.response_id = p.rejected_id"
                " WHERE p.dataset_id = ? ORDER BY p.source_row",
                params=[summary.dataset_id],
            ).to_arrow_table()
        )
        assert got.equals(want) and got.height == summary.n_pairs
        # A stored pair whose text went missing still reaches the suite, with a null text.
        con.execute("DELETE FROM prompts WHERE text = 'p4'")
        broken = sql.batch_frame(con, summary.dataset_id)
    assert broken.height == summary.n_pairs
    assert broken.filter(pl.col("source_row") == 6)["prompt"].to_list() == [None]


@pytest.mark.usefixtures("prefect_server")
def test_flow_with_quality_reconciles_and_reingests_as_a_noop(tmp_path, warehouse_file):
    src = write(tmp_path / "d.jsonl", ROWS)
    reports = str(tmp_path / "reports")
    first = ingest_flow(source=str(src), warehouse=warehouse_file, reports_dir=reports)
    assert first["reconciles"] and first["status"] == "passed_quality" and first["n_pairs"] == 3
    before = stored(warehouse_file)
    again = ingest_flow(source=str(src), warehouse=warehouse_file, reports_dir=reports)
    assert again["skipped"] and again["dataset_id"] == first["dataset_id"]
    assert stored(warehouse_file) == before
