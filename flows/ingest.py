"""The ingest flow: source -> validated pairs + quarantine in the warehouse -> data-quality report."""

from __future__ import annotations

import time

from prefect import flow

from rmcore.config import IngestConfig
from rmcore.errors import FormatError, QualityFailed, RmcurateError, SourceError
from rmcore.names import default_dataset_name
from tasks.ingest import (
    check_quality,
    find_existing,
    fingerprint_source,
    parse_validate_store,
    publish_summary,
    source_files,
)


def default_name(uri: str) -> str:
    """The file name without its data suffixes, made a valid name (`rmcore.names`)."""
    return default_dataset_name(uri)


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
    reports_dir: str = IngestConfig.reports_dir,
    ranked_mode: str = IngestConfig.ranked_mode,
    score_field: str | None = IngestConfig.score_field,
    preference: str = IngestConfig.preference,
    default_split: str = IngestConfig.default_split,
    max_chars: int = IngestConfig.max_chars,
    max_line_bytes: int = IngestConfig.max_line_bytes,
    max_depth: int = IngestConfig.max_depth,
    hf_split: str | None = IngestConfig.hf_split,
    hf_config: str | None = IngestConfig.hf_config,
    column_map: dict[str, str] | None = IngestConfig.column_map,
    quality: bool = IngestConfig.quality,
    progress: bool = False,
) -> dict:
    """Ingest one source version. Unchanged content (same hash) is a no-op; changed content
    becomes a new version. Fails if input rows != stored + quarantined, or if a batch-level
    expectation fails (the message names the report)."""
    start = time.perf_counter()
    name = name or default_name(source)
    kind, digest = fingerprint_source(source, kind, hf_config, hf_split)
    summary = find_existing(warehouse, name, digest)
    if summary is None:
        config = IngestConfig(
            ranked_mode=ranked_mode,
            score_field=score_field,
            preference=preference,
            default_split=default_split,
            max_chars=max_chars,
            max_line_bytes=max_line_bytes,
            max_depth=max_depth,
            hf_split=hf_split,
            hf_config=hf_config,
            column_map=column_map,
            reports_dir=reports_dir,
            quality=quality,
        )
        summary = parse_validate_store(
            warehouse,
            uri=source,
            kind=kind,
            fmt=fmt,
            name=name,
            digest=digest,
            config=config,
            progress=progress,
        )
    # New, stored by a run that died before its quality check, or whose check could not run.
    if quality and summary.status in ("ingested", "not_checked"):
        summary = check_quality(warehouse, summary, reports_dir=reports_dir, max_chars=max_chars)
    result = publish_summary(summary, seconds=time.perf_counter() - start)
    if result["status"] == "failed_quality":
        raise QualityFailed(
            f"data quality failed for {name} v{result['version']}; see `rmcurate datasets`"
            f" and the report: {result['report_path']}"
        )
    return result


@flow(name="ingest-folder", log_prints=True)
def ingest_folder_flow(
    folder: str,
    pattern: str = "*",
    warehouse: str | None = None,
    reports_dir: str = IngestConfig.reports_dir,
    fmt: str | None = None,
    quality: bool = IngestConfig.quality,
) -> list[dict]:
    """Ingest every matching file of a watched folder, one dataset per file (named after it).
    Unchanged files are no-ops, so the deployment can re-run it on a schedule."""
    results: list[dict] = []
    failed: list[RmcurateError] = []
    for path in source_files(folder, pattern):
        try:
            results.append(
                ingest_flow(
                    source=path,
                    warehouse=warehouse,
                    reports_dir=reports_dir,
                    fmt=fmt,
                    quality=quality,
                )
            )
        except (QualityFailed, SourceError, FormatError) as err:
            failed.append(err)  # one bad file must not stop the others
    if failed:  # the first failure's type (and exit code), every file's message
        raise type(failed[0])("; ".join(map(str, failed)))
    return results
