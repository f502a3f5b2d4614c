"""The ingest flow: source -> validated pairs + quarantine in the warehouse -> data-quality report."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from rmcore.ingest.batch import DEFAULT_MAX_CHARS
from tasks.common import logger
from tasks.ingest import (
    IngestSummary,
    check_quality,
    find_existing,
    fingerprint_source,
    parse_validate_store,
    publish_summary,
)


class QualityFailed(RuntimeError):
    """A batch-level expectation failed: the dataset is marked failed_quality."""


def default_name(uri: str) -> str:
    name = Path(uri.rstrip("/")).name
    for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".parquet", ".csv"):
        name = name.removesuffix(suffix)
    return name or uri


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"ingest-{params.get('name') or default_name(params['source'])}"


@flow(name="ingest", flow_run_name=_run_name, log_prints=True)
def ingest_flow(
    source: str,
    name: str | None = None,
    fmt: str | None = None,
    kind: str | None = None,
    warehouse: str | None = None,
    reports_dir: str = "reports",
    ranked_mode: str = "best-vs-worst",
    default_split: str = "train",
    max_chars: int = DEFAULT_MAX_CHARS,
    hf_split: str | None = None,
    quality: bool = True,
    progress: bool = False,
) -> dict:
    """Ingest one source version. Unchanged content (same hash) is a no-op; changed content
    becomes a new version. Fails if input rows != stored + quarantined, or if a batch-level
    expectation fails (the message names the report)."""
    start = time.perf_counter()
    name = name or default_name(source)
    kind, digest = fingerprint_source(source, kind)
    existing = find_existing(warehouse, name, digest)
    if existing is not None:
        logger().info(
            "%s v%d already holds this content (sha256 %s): not stored again",
            name,
            existing.version,
            digest[:12],
        )
        summary = IngestSummary.from_row(existing)
    else:
        options = {
            "ranked_mode": ranked_mode,
            "default_split": default_split,
            "max_chars": max_chars,
            "hf_split": hf_split,
        }
        summary = parse_validate_store(
            warehouse,
            uri=source,
            kind=kind,
            fmt=fmt,
            name=name,
            digest=digest,
            options=options,
            progress=progress,
        )
    if (
        quality and summary.status == "ingested"
    ):  # new, or stored by a run that died before its quality check
        outcome = check_quality(
            warehouse, summary.dataset_id, f"{name}-v{summary.version}", reports_dir, max_chars
        )
        summary.status = "passed_quality" if outcome.success else "failed_quality"
        summary.report_path = str(outcome.report_path) if outcome.report_path else None
    summary.seconds = time.perf_counter() - start
    publish_summary(summary)
    print(
        f"{name} v{summary.version}: input {summary.n_input} = stored {summary.n_rows_stored} + quarantined "
        f"{summary.n_quarantined} ({'reconciles' if summary.reconciles else 'MISMATCH'}); {summary.n_pairs} pairs; {summary.status}"
    )
    if summary.status == "failed_quality":
        raise QualityFailed(
            f"data quality failed for {name} v{summary.version}; see `rmcurate datasets` and the report: {summary.report_path}"
        )
    return summary.as_dict()


@flow(name="ingest-folder", log_prints=True)
def ingest_folder_flow(
    folder: str,
    pattern: str = "*",
    warehouse: str | None = None,
    reports_dir: str = "reports",
    fmt: str | None = None,
    quality: bool = True,
) -> list[dict]:
    """Ingest every matching file of a watched folder, one dataset per file (named after it).
    Unchanged files are no-ops, so the deployment can re-run it on a schedule."""
    files = sorted(
        p for p in Path(folder).glob(pattern) if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        logger().warning("no files match %s in %s", pattern, folder)
    results, failed = [], []
    for path in files:
        try:
            results.append(
                ingest_flow(
                    source=str(path),
                    warehouse=warehouse,
                    reports_dir=reports_dir,
                    fmt=fmt,
                    quality=quality,
                )
            )
        except QualityFailed as err:  # one bad file must not stop the others
            failed.append(str(err))
    if failed:
        raise QualityFailed("; ".join(failed))
    return results
