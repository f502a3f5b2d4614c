"""Prefect tasks for the ingest stage: thin wrappers over rmcore.stages.ingest."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from rmcore.config import IngestConfig
from rmcore.stages import ingest as stage
from rmcore.stages.ingest import IngestSummary
from tasks.common import current_flow_run_id, logger, retry_unexpected


@task(name="list-source-files", cache_policy=NO_CACHE)
def source_files(folder: str, pattern: str) -> list[str]:
    """The files of a watched folder to ingest, one dataset each."""
    files = stage.source_files(folder, pattern)
    if not files:
        logger().warning("no files match %s in %s", pattern, folder)
    return files


@task(name="fingerprint-source", cache_policy=NO_CACHE)
def fingerprint_source(
    uri: str, kind: str | None, hf_config: str | None = None, hf_split: str | None = None
) -> tuple[str, str]:
    """(kind, content hash): the identity of a source version."""
    return stage.fingerprint(uri, kind, hf_config, hf_split)


@task(name="find-existing-version", cache_policy=NO_CACHE)
def find_existing(warehouse: str | None, name: str, digest: str) -> IngestSummary | None:
    summary = stage.find_existing(warehouse, name, digest)
    if summary is not None:
        logger().info(
            "%s v%d already holds this content (sha256 %s): not stored again",
            name,
            summary.version,
            digest[:12],
        )
    return summary


@task(
    name="parse-validate-store",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_unexpected,
)
def parse_validate_store(
    warehouse: str | None,
    *,
    uri: str,
    kind: str,
    fmt: str | None,
    name: str,
    digest: str,
    config: IngestConfig,
    progress: bool = False,
) -> IngestSummary:
    summary = stage.parse_validate_store(
        warehouse,
        uri=uri,
        kind=kind,
        fmt=fmt,
        name=name,
        digest=digest,
        config=config,
        flow_run_id=current_flow_run_id(),
        progress=progress,
    )
    logger().info(
        "stored %s pairs, quarantined %s rows: %s",
        f"{summary.n_pairs:,}",
        f"{summary.n_quarantined:,}",
        summary.reasons,
    )
    return summary


@task(name="check-quality", cache_policy=NO_CACHE)
def check_quality(
    warehouse: str | None, summary: IngestSummary, *, reports_dir: str, max_chars: int
) -> IngestSummary:
    """The stored batch through the quality suite; its audit table becomes a markdown artifact
    (a `file://` link would not open from the Prefect UI: browsers block them on http pages)."""
    flow_run_id = current_flow_run_id()
    checked = stage.check_quality(
        warehouse, summary, reports_dir=reports_dir, max_chars=max_chars, flow_run_id=flow_run_id
    )
    name = checked.batch_name
    if checked.report_path and flow_run_id:
        create_markdown_artifact(
            key="dq-" + "".join(c if c.isalnum() else "-" for c in name.lower()),
            markdown=Path(checked.report_path).with_suffix(".md").read_text(),
            description=f"data-quality audit of {name}",
        )
    return checked


@task(name="publish-ingest-summary", cache_policy=NO_CACHE)
def publish_summary(summary: IngestSummary, seconds: float) -> dict:
    """The summary as the flow returns it, logged and (inside a flow run) as an artifact."""
    summary = replace(summary, seconds=seconds)
    logger().info(summary.line())
    if current_flow_run_id():
        create_markdown_artifact(
            key="ingest-summary",
            markdown=summary.markdown(),
            description=f"ingest summary for {summary.name}",
        )
    return summary.as_dict()
