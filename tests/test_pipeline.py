"""The pipeline end to end on tiny toy data: ingest -> reference -> score -> curate -> train ->
benchmark -> report, through real Prefect flows and a real warehouse."""

from __future__ import annotations

import duckdb
import pytest

from rmcore import demo


@pytest.mark.slow
def test_pipeline_writes_results_and_a_report(tmp_path, prefect_server):
    from flows.pipeline import pipeline_flow

    src = demo.write_demo(tmp_path / "toy.jsonl", n_length_biased=300, n_adversarial=60, seed=2)
    n_lines = len(src.read_bytes().splitlines())  # the input rows, counted from the file
    wh = str(tmp_path / "wh.duckdb")
    out = pipeline_flow(
        source=str(src),
        name="toy",
        seeds=[0],
        methods=["vanilla", "prompt-free-priority", "prompt-free-online"],
        prompts_per_pair=4,
        epochs=2,
        cross_fit_folds=2,
        group_by=["setup"],
        warehouse=wh,
        reports_dir=str(tmp_path / "reports"),
    )
    assert out["ingest"]["reconciles"] and out["ingest"]["n_input"] == n_lines
    assert {m["method"] for m in out["models"]} == {
        "vanilla",
        "prompt-free-priority",
        "prompt-free-online",
    }
    page = (tmp_path / "reports" / "toy-v1" / "index.html").read_text()
    assert "prompt-free-priority vs vanilla" in page and "free_vs_length.png" in page
    assert "baseline:response-only" in page and "Paired differences vs vanilla" in page
    assert "better" not in " ".join(
        line for line in out["findings"] if "no clear difference" in line
    )
    assert "online re-weighting (schedule)" in page
    # chosen on validation
    assert {t["method"] for t in out["tuning"]} == {"prompt-free-priority", "prompt-free-online"}
    con = duckdb.connect(wh, read_only=True)
    try:
        n_models, n_subsets = con.execute(
            "SELECT count(DISTINCT model), count(DISTINCT subset) FROM benchmark_results"
            " WHERE benchmark_run_id = ? AND model NOT LIKE 'baseline:%' AND benchmark NOT LIKE 'paired:%'",
            [out["benchmark_run_id"]],
        ).fetchone()
        [(report,)] = con.execute(
            "SELECT report_path FROM benchmark_runs WHERE benchmark_run_id = ?",
            [out["benchmark_run_id"]],
        ).fetchall()
        scored_by_own_training = con.execute(  # cross-fitting: by pair ids, end to end
            "SELECT count(*) FROM scoring_folds f JOIN models m ON m.path = f.model_id"
            " JOIN curated_members c ON c.curated_set_id = m.curated_set_id AND c.pair_id = f.pair_id"
            " WHERE f.scoring_run_id = ?",
            [out["scoring_run_id"]],
        ).fetchone()[0]
        online = con.execute(
            "SELECT method, metrics->>'online_reweights' FROM models WHERE name = 'toy-v1-prompt-free-online-s0'"
        ).fetchall()
        # Reconcile against what the warehouse holds, not against the summary's own counts.
        n_rows_stored, n_quarantined = con.execute(
            "SELECT (SELECT count(DISTINCT source_row) FROM pairs"
            "        WHERE dataset_id = $1 AND augmentation IS NULL),"
            " (SELECT count(*) FROM quarantine WHERE dataset_id = $1)",
            [out["ingest"]["dataset_id"]],
        ).fetchone()
    finally:
        con.close()
    assert n_rows_stored + n_quarantined == n_lines
    assert (n_rows_stored, n_quarantined) == (
        out["ingest"]["n_rows_stored"],
        out["ingest"]["n_quarantined"],
    )
    assert online == [("prompt-free-online", "1.0")]  # warm-up epoch, then one re-weighting
    assert n_models == 3 and n_subsets >= 5  # all, winner shorter/longer, setup=..., prompt swap
    assert report.endswith("index.html")
    assert scored_by_own_training == 0
