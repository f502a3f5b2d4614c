"""Prefect task for the report stage (`rmcore.stages.report`): the ablation's audit report,
published as a markdown artifact of the flow run (its summary, and the page's path to copy:
a `file://` link would not open from the Prefect UI, browsers block them on http pages)."""

from __future__ import annotations

import re
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from rmcore.stages import report as stage
from tasks.common import current_flow_run_id


@task(name="write-ablation-report", cache_policy=NO_CACHE)
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
    overwrite: bool = False,
) -> dict:
    """`reports_dir`/`name`/index.html and summary.md: {"report", "summary_md", "summary",
    "findings"}."""
    flow_run_id = current_flow_run_id()
    out = stage.write_ablation_report(
        warehouse,
        benchmark_run_id=benchmark_run_id,
        scoring_run_id=scoring_run_id,
        name=name,
        reports_dir=reports_dir,
        meta=meta,
        methods=methods,
        tuning=tuning,
        budgets=budgets,
        overwrite=overwrite,
        flow_run_id=flow_run_id,
    )
    if flow_run_id:
        key = re.sub(r"[^a-z0-9-]+", "-", name.lower())  # Prefect keys: a-z, 0-9 and '-'
        create_markdown_artifact(
            key=f"summary-{key}"[:60],
            markdown=f"Report (open in a browser on this machine): `{out['report']}`\n\n"
            + Path(out["summary_md"]).read_text(),
            description=f"ablation summary {name}",
        )
    return out
