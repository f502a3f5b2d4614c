"""The report stage: an ablation's audit report (HTML page, markdown summary, figures) drawn
from its benchmark run and its scoring run, with findings written from the measured intervals.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from rmcore.config import BASELINE
from rmcore.errors import OutputExists
from rmcore.evaluation.report import display_summary, findings, summary_table, write_report
from rmcore.names import check_name, inside
from warehouse import benchmarks as sql
from warehouse import catalog
from warehouse.connection import reader, transaction

log = logging.getLogger("rmcurate")


def with_length_difference(scored: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """(scored, the column of chosen-minus-rejected length the figures plot). Characters by
    default; where the provenance carries a `length_diff` (the toy data's injected length
    difference, in words) that is used instead, as `length_diff_words`."""
    injected = pl.col("provenance").str.json_path_match("$.length_diff")
    if scored.height and scored.select(injected.is_not_null().any()).item():
        return scored.with_columns(injected.cast(pl.Float64).alias("length_diff_words")), (
            "length_diff_words"
        )
    return scored, "length_diff_chars"


def report_folder(
    warehouse: str | None, *, reports_dir: str, name: str, overwrite: bool = False
) -> Path:
    """`reports_dir/name`, resolved, for the ablation `name` (a valid name, `rmcore.names`):
    a new or empty folder, the folder of an earlier report of the same ablation in this
    warehouse (a re-run rewrites it), or with `overwrite` any folder; anything else there
    (another ablation's report, the data-quality site's folders, a user's folder) is an
    `OutputExists`."""
    check_name(name, "report")
    folder = inside(Path(reports_dir), name, "report")
    if folder.exists() and not folder.is_dir():
        raise OutputExists(f"{folder} exists and is not a folder; remove it or pick another --name")
    if overwrite or not folder.exists() or not any(folder.iterdir()):
        return folder
    with reader(warehouse) as con:
        owner = catalog.report_owner(con, str(folder / "index.html"))
    if owner != name:
        raise OutputExists(
            f"report folder {folder} already exists and is not an earlier report of ablation"
            f" {name!r}; pass --overwrite to write over it, or pick another --name"
        )
    return folder


def write_ablation_report(
    warehouse: str | None,
    *,
    benchmark_run_id: int,
    scoring_run_id: int,
    name: str,
    reports_dir: str,
    meta: dict,
    methods: list[str],
    baseline: str = BASELINE,
    overwrite: bool = False,
    flow_run_id: str | None,
) -> dict:
    """Write `reports_dir/name`/index.html and summary.md (the folder checked by
    `report_folder`) and record the page on the benchmark run.

    Returns {"report", "summary_md" (paths), "summary" (the displayed table as dicts),
    "findings"}; `meta` (plus the flow run) is shown as the report's run table."""
    folder = report_folder(warehouse, reports_dir=reports_dir, name=name, overwrite=overwrite)
    with reader(warehouse) as con:
        results = sql.results(con, benchmark_run_id)
        preds = sql.predictions(con, benchmark_run_id)
        scored = sql.scored_train_pairs(con, scoring_run_id)
    scored, length_col = with_length_difference(scored)
    summary = summary_table(results)
    lines = findings(summary, methods, baseline)
    html_path, md_path = write_report(
        folder,
        title=f"rmcurate ablation: {name}",
        meta=meta | {"flow_run": flow_run_id},
        summary=summary,
        results=results,
        preds=preds,
        scored=scored,
        length_col=length_col,
        findings=lines,
    )
    report = str(html_path.resolve())
    with transaction(warehouse) as con:
        sql.set_report(con, benchmark_run_id, report)
    log.info("ablation report %s", report)
    return {
        "report": report,
        "summary_md": str(md_path.resolve()),
        "summary": display_summary(summary).to_dicts(),
        "findings": lines,
    }
