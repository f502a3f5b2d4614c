"""The real AlpacaEval annotations (../shared/data/alpaca_eval_dev) through the folder flow.

Expectations are derived from the raw files with json/gzip and `normalize_text` alone, then
compared with what the warehouse holds, so a wrong label, a swapped pair, a lost row or a
reference answer stored twice shows up as a mismatch.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.ingest import ingest_folder_flow
from rmcore.textnorm import normalize_text

# About 60-70 s of ingest (20 subflow runs, each with a Great Expectations run), so slow.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.usefixtures("prefect_server"),
]


def _records(folder: Path) -> pl.DataFrame:
    """One row per source record: dataset name (file name without .json.gz), row number,
    normalized texts and the preference, as read with the standard library."""
    rows = []
    for path in sorted(folder.glob("*.json.gz")):
        records = json.loads(gzip.decompress(path.read_bytes()))
        name = path.name.removesuffix(".json.gz")
        rows += [
            (
                name,
                i,
                normalize_text(r["instruction"]),
                normalize_text(r["output_1"]),
                normalize_text(r["output_2"]),
                float(r["preference"]),
            )
            for i, r in enumerate(records)
        ]
    return pl.DataFrame(
        rows,
        schema=["name", "source_row", "instruction", "output_1", "output_2", "preference"],
        orient="row",
    )


def _query(path: str, sql: str) -> pl.DataFrame:
    con = duckdb.connect(path, read_only=True)
    try:
        return pl.from_arrow(con.sql(sql).to_arrow_table())
    finally:
        con.close()


@pytest.fixture(scope="module")
def ingested(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("alpaca")
    warehouse = str(tmp / "wh.duckdb")
    start = time.perf_counter()
    summaries = ingest_folder_flow(
        folder=str(shared_data / "alpaca_eval_dev"),
        pattern="*.json.gz",
        warehouse=warehouse,
        reports_dir=str(tmp / "reports"),
        quality=True,
    )
    seconds = time.perf_counter() - start
    records = _records(shared_data / "alpaca_eval_dev")
    print(
        f"\nalpaca_eval_dev: {records.height} records in {seconds:.1f} s "
        f"({records.height / seconds:,.0f} rows/s, quality on)"
    )
    return {"warehouse": warehouse, "summaries": summaries, "records": records}


def test_every_record_is_stored_or_quarantined(ingested: dict) -> None:
    expected = ingested["records"].group_by("name").len("n_records")
    stored = _query(
        ingested["warehouse"],
        "SELECT d.name, d.status, d.format,"
        " (SELECT count(*) FROM pairs p WHERE p.dataset_id = d.dataset_id) AS n_pairs,"
        " (SELECT count(*) FROM quarantine q WHERE q.dataset_id = d.dataset_id) AS n_quarantined"
        " FROM datasets d",
    )
    both = expected.join(stored, on="name", how="full", coalesce=True)
    assert both.height == 20 and both.null_count().sum_horizontal().item() == 0
    assert (both["n_pairs"] + both["n_quarantined"] == both["n_records"]).all()
    assert set(both["format"]) == {"annotated"} and set(both["status"]) == {"passed_quality"}
    assert all(s["reconciles"] for s in ingested["summaries"])


def test_quarantine_holds_exactly_the_unusable_records(ingested: dict) -> None:
    """No duplicates within a file here, so a record is unusable only when a text is empty
    after normalization or the generator's answer equals the reference."""
    texts = ("instruction", "output_1", "output_2")
    expected = (
        ingested["records"]
        .with_columns(
            reason=pl.when(pl.any_horizontal(pl.col(c) == "" for c in texts))
            .then(pl.lit("empty_text"))
            .when(pl.col("output_1") == pl.col("output_2"))
            .then(pl.lit("identical_responses"))
        )
        .filter(pl.col("reason").is_not_null())
        .select("name", "source_row", "reason")
        .sort("name", "source_row")
    )
    stored = _query(
        ingested["warehouse"],
        "SELECT d.name, q.source_row, q.reason FROM quarantine q JOIN datasets d USING (dataset_id)"
        " ORDER BY 1, 2",
    )
    assert expected.height > 0
    assert stored.rows() == expected.rows()


def test_labels_direction_and_ties_match_the_preferences(ingested: dict) -> None:
    pairs = _query(
        ingested["warehouse"],
        "SELECT d.name, p.source_row, pr.text AS prompt, c.text AS chosen, r.text AS rejected,"
        " p.label FROM pairs p JOIN datasets d USING (dataset_id) JOIN prompts pr USING (prompt_id)"
        " JOIN responses c ON c.response_id = p.chosen_id"
        " JOIN responses r ON r.response_id = p.rejected_id",
    )
    joined = pairs.join(ingested["records"], on=["name", "source_row"], how="left")
    assert joined["preference"].null_count() == 0  # every pair points at a real record
    out2_wins = pl.col("preference") > 1.5
    checks = joined.select(
        prompt=pl.col("prompt") == pl.col("instruction"),
        chosen=pl.col("chosen") == pl.when(out2_wins).then("output_2").otherwise("output_1"),
        rejected=pl.col("rejected") == pl.when(out2_wins).then("output_1").otherwise("output_2"),
        label=((pl.col("preference") - 1.5).abs() + 0.5 - pl.col("label")).abs() < 1e-9,
    )
    assert checks.select(pl.all().all()).row(0) == (True, True, True, True)
    ties_in = joined.filter(pl.col("preference") == 1.5).height
    assert ties_in > 0 and pairs.filter(pl.col("label") == 0.5).height == ties_in


def test_reference_answers_are_stored_once(ingested: dict) -> None:
    stored_rows = _query(
        ingested["warehouse"],
        "SELECT d.name, p.source_row FROM pairs p JOIN datasets d USING (dataset_id)",
    )
    kept = ingested["records"].join(stored_rows, on=["name", "source_row"], how="semi")
    references = kept["output_1"].unique()
    responses = _query(ingested["warehouse"], "SELECT text FROM responses")
    # 805 instructions, one reference answer each, repeated in all 20 files.
    assert references.len() == kept["instruction"].n_unique()
    assert responses.filter(pl.col("text").is_in(references.implode())).height == references.len()
    assert responses["text"].n_unique() == responses.height
