"""The report stage: an ablation's audit report (HTML page, markdown summary, figures) drawn
from its benchmark run and its scoring run, with findings written from the measured intervals.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from rmcore.config import BASELINE
from rmcore.errors import OutputExists
from rmcore.evaluation.report import findings, grid, paired_summary, summary_table, write_report
from rmcore.names import check_name, inside
from rmcore.stages.evidence import add_evidence
from warehouse import benchmarks as sql
from warehouse import catalog
from warehouse import scoring as ssql
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


def scoring_facts(warehouse: str | None, scoring_run_id: int, scored: pl.DataFrame) -> pl.DataFrame:
    """How the free gaps were made and what they look like: folds, weights, temperature,
    ESS (mean and range), free-gap quantiles and their agreement with the label."""
    with reader(warehouse) as con:
        run = ssql.run_fields(con, scoring_run_id)
    train = scored.filter(pl.col("split") == "train")
    hard = train.filter(pl.col("label") != 0.5)
    facts = {
        "free gaps from": (
            f"cross-fitted, {run['cross_fit_folds']} folds by prompt (each fold scored by the"
            " model that never trained on it)"
            if run.get("cross_fit_folds")
            else f"one model: {run['model_id']}"
        ),
        "importance weights": run["weights"],
        "temperature (embedding weights)": run.get("temperature"),
        "prompts per pair (M)": run["prompts_per_pair"],
        "mean ESS (train pairs)": train["ess"].mean(),
        "ESS 5% / 95%": f"{train['ess'].quantile(0.05):.2f} / {train['ess'].quantile(0.95):.2f}",
        "free gap 5% / 50% / 95%": (
            f"{train['free_gap'].quantile(0.05):.2f} / {train['free_gap'].median():.2f} /"
            f" {train['free_gap'].quantile(0.95):.2f}"
        ),
        "share of train pairs with free gap < 0": (train["free_gap"] < 0).mean(),
        "free gap agrees with the label (hard train pairs)": (
            ((hard["free_gap"] > 0) == (hard["label"] > 0.5)).mean() if hard.height else None
        ),
    }
    return pl.DataFrame({"fact": list(facts), "value": [str(v) for v in facts.values()]})


def write_ablation_report(
    warehouse: str | None,
    *,
    benchmark_run_id: int,
    scoring_run_id: int,
    name: str,
    reports_dir: str,
    meta: dict,
    methods: list[str],
    tuning: list[dict] | None = None,
    budgets: list[dict] | None = None,
    baseline: str = BASELINE,
    overwrite: bool = False,
    flow_run_id: str | None,
) -> dict:
    """Write `reports_dir/name`/index.html and summary.md (the folder checked by
    `report_folder`) and record the page on the benchmark run. The trivial baselines and
    paired differences (`rmcore.stages.evidence`) are stored under the run first.

    Returns {"report", "summary_md" (paths), "summary" (the metric x method grid as dicts),
    "paired" (the paired differences as dicts), "findings"}; `meta` (plus the flow run) is
    shown as the report's run table, `tuning` (grid points with their validation scores)
    and `budgets` (per model: set size, augmented pairs, optimizer steps) as tables."""
    folder = report_folder(warehouse, reports_dir=reports_dir, name=name, overwrite=overwrite)
    add_evidence(warehouse, benchmark_run_id, baseline=baseline)
    with reader(warehouse) as con:
        results = sql.results(con, benchmark_run_id)
        preds = sql.predictions(con, benchmark_run_id)
        scored = sql.scored_train_pairs(con, scoring_run_id)
    scored, length_col = with_length_difference(scored)
    summary = summary_table(results)
    paired = paired_summary(results)
    lines = findings(paired, baseline)
    shown_baselines = sorted(m for m in summary["method"].unique() if m.startswith("baseline:"))
    tables = {"How the free gaps were made": scoring_facts(warehouse, scoring_run_id, scored)}
    if tuning:
        tables["Parameter choice (validation split, group-balanced accuracy; never test)"] = (
            pl.DataFrame(
                [
                    {
                        "method": t["method"],
                        "params": str(t["params"]),
                        "model": t["model"],
                        "validation balanced accuracy": t["validation_balanced_accuracy"],
                    }
                    for t in tuning
                ]
            )
        )
    if budgets:
        tables["Budgets (pairs in the set, of them augmented, optimizer steps)"] = pl.DataFrame(
            [
                {
                    "model": b["name"],
                    "method": b["method"],
                    "set pairs": b.get("n_members"),
                    "augmented": b.get("n_augmented"),
                    "steps": b.get("steps"),
                }
                for b in budgets
            ]
        )
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
        paired=paired,
        columns=[*shown_baselines, *methods],
        tables=tables,
    )
    report = str(html_path.resolve())
    with transaction(warehouse) as con:
        sql.set_report(con, benchmark_run_id, report)
    log.info("ablation report %s", report)
    return {
        "report": report,
        "summary_md": str(md_path.resolve()),
        "summary": grid(summary, [*shown_baselines, *methods]).to_dicts(),
        "paired": paired.to_dicts(),
        "findings": lines,
        "facts": tables["How the free gaps were made"].to_dicts(),
    }
