"""The ingest flow on real DuckDB files and real Prefect flow runs."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from flows.ingest import QualityFailed, ingest_flow

pytestmark = pytest.mark.usefixtures("prefect_server")


def counts(path: str, sql: str, params=()) -> list[tuple]:
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_flow_reconciles_and_quarantines_with_reasons(
    tmp_path, warehouse_file, bad_file, bad_lines
):
    path, n_good = bad_file
    summary = ingest_flow(
        source=str(path), warehouse=warehouse_file, reports_dir=str(tmp_path / "reports")
    )
    assert summary["reconciles"] and summary["n_input"] == n_good + len(bad_lines)
    assert summary["status"] == "passed_quality"
    [(n_pairs,)] = counts(warehouse_file, "SELECT count(*) FROM pairs")
    stored = counts(warehouse_file, "SELECT source_row, reason FROM quarantine ORDER BY source_row")
    assert n_pairs == n_good
    assert stored == [(n_good + i, reason) for i, (_, reason) in enumerate(bad_lines)]
    [(flow_run_id, status, n_in, n_q)] = counts(
        warehouse_file, "SELECT flow_run_id, status, n_input, n_quarantined FROM datasets"
    )
    assert flow_run_id and status == "passed_quality" and n_in == n_pairs + n_q
    assert counts(warehouse_file, "SELECT count(DISTINCT flow_run_id) FROM pairs") == [(1,)]


def test_reingest_is_noop_and_changed_source_is_new_version(tmp_path, warehouse_file, write_jsonl):
    rows = [{"prompt": f"p{i}", "chosen": "shared answer", "rejected": f"r{i}"} for i in range(20)]
    src = write_jsonl(tmp_path / "d.jsonl", rows)
    first = ingest_flow(source=str(src), warehouse=warehouse_file, reports_dir=str(tmp_path / "r"))
    again = ingest_flow(source=str(src), warehouse=warehouse_file, reports_dir=str(tmp_path / "r"))
    assert not first["skipped"] and again["skipped"] and again["version"] == 1
    assert counts(warehouse_file, "SELECT count(*) FROM pairs") == [(20,)]
    assert counts(warehouse_file, "SELECT count(*) FROM responses") == [
        (21,)
    ]  # the shared answer is stored once
    write_jsonl(src, [*rows, {"prompt": "new", "chosen": "x", "rejected": "y"}])
    changed = ingest_flow(
        source=str(src), warehouse=warehouse_file, reports_dir=str(tmp_path / "r")
    )
    assert changed["version"] == 2 and not changed["skipped"]
    assert counts(warehouse_file, "SELECT version, n_pairs FROM datasets ORDER BY version") == [
        (1, 20),
        (2, 21),
    ]


def test_failing_expectation_marks_dataset_and_writes_report(tmp_path, warehouse_file, write_jsonl):
    # Valid rows, but every label is a tie: the batch carries no preference signal.
    rows = [
        {"prompt": f"p{i}", "chosen": f"a{i}", "rejected": f"b{i}", "label": 0.5} for i in range(30)
    ]
    src = write_jsonl(tmp_path / "ties.jsonl", rows)
    with pytest.raises(QualityFailed, match="report"):
        ingest_flow(
            source=str(src), warehouse=warehouse_file, reports_dir=str(tmp_path / "reports")
        )
    [(success, report, n_failed)] = counts(
        warehouse_file, "SELECT success, report_path, n_failed FROM dq_runs"
    )
    assert success is False and n_failed >= 1
    assert counts(warehouse_file, "SELECT status FROM datasets") == [("failed_quality",)]
    html = Path(report).read_text()
    assert "label" in html


def test_hf_disk_source_through_flow(tmp_path, warehouse_file):
    import datasets

    ds = datasets.Dataset.from_list(
        [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(10)]
    )
    ds.save_to_disk(str(tmp_path / "hfset"))
    summary = ingest_flow(
        source=str(tmp_path / "hfset"), warehouse=warehouse_file, reports_dir=str(tmp_path / "r")
    )
    assert summary["n_pairs"] == 10 and summary["name"] == "hfset"
    assert (
        json.loads(counts(warehouse_file, "SELECT options FROM datasets")[0][0])["ranked_mode"]
        == "best-vs-worst"
    )


def test_reingest_reconciles_against_the_stored_rows(tmp_path, warehouse_file, bad_file):
    """A version found already ingested reports the rows the warehouse holds: a lost
    quarantine row shows as a mismatch instead of being derived away."""
    path, _ = bad_file
    reports = str(tmp_path / "reports")
    first = ingest_flow(source=str(path), warehouse=warehouse_file, reports_dir=reports)
    again = ingest_flow(source=str(path), warehouse=warehouse_file, reports_dir=reports)
    assert again["skipped"] and again["reconciles"]
    keys = ("n_input", "n_pairs", "n_rows_stored", "n_quarantined")
    assert [again[k] for k in keys] == [first[k] for k in keys]
    con = duckdb.connect(warehouse_file)
    try:
        con.execute(
            "DELETE FROM quarantine WHERE source_row = (SELECT max(source_row) FROM quarantine)"
        )
    finally:
        con.close()
    tampered = ingest_flow(source=str(path), warehouse=warehouse_file, reports_dir=reports)
    assert tampered["skipped"] and not tampered["reconciles"]
    assert tampered["n_quarantined"] == first["n_quarantined"] - 1
