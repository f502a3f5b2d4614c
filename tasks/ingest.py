"""Prefect tasks for the ingest stage: thin wrappers over rmcore.ingest and warehouse.ingest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from rmcore.ingest.batch import build_batch
from rmcore.ingest.sources import content_hash, detect_kind, read_source
from tasks.common import current_flow_run_id, logger
from warehouse import ingest as sql
from warehouse.connection import transaction


@dataclass
class IngestSummary:
    """What the ingest flow returns and prints: small, JSON-friendly."""

    dataset_id: int
    name: str
    version: int
    status: str
    skipped: bool
    n_input: int
    n_pairs: int
    n_rows_stored: int
    n_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    report_path: str | None = None
    seconds: float = 0.0

    @property
    def reconciles(self) -> bool:
        return self.n_input == self.n_rows_stored + self.n_quarantined

    @classmethod
    def from_row(cls, row: sql.DatasetRow) -> IngestSummary:
        n_input, n_quarantined = row.n_input or 0, row.n_quarantined or 0
        return cls(row.dataset_id, row.name, row.version, row.status, True, n_input, row.n_pairs or 0,
                   n_input - n_quarantined, n_quarantined, report_path=row.report_path)  # fmt: skip

    def as_dict(self) -> dict:
        return asdict(self) | {"reconciles": self.reconciles}


@task(name="fingerprint-source", cache_policy=NO_CACHE)
def fingerprint_source(uri: str, kind: str | None) -> tuple[str, str]:
    """(kind, content hash): the identity of a source version."""
    kind = kind or detect_kind(uri)
    return kind, content_hash(uri, kind)


@task(name="find-existing-version", cache_policy=NO_CACHE)
def find_existing(warehouse: str | None, name: str, digest: str) -> sql.DatasetRow | None:
    with transaction(warehouse) as con:
        return sql.find_version(con, name, digest)


@task(name="parse-validate-store", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def parse_validate_store(
    warehouse: str | None,
    *,
    uri: str,
    kind: str,
    fmt: str | None,
    name: str,
    digest: str,
    options: dict,
    progress: bool = False,
) -> IngestSummary:
    """Read, canonicalize and validate in memory, then write the whole batch in one short
    transaction: a crash leaves no half-ingested version behind."""
    raw = read_source(uri, kind, split=options.get("hf_split"))
    log = logger()
    log.info("read %s rows from %s (%s)", f"{len(raw):,}", uri, kind)
    flow_run_id = current_flow_run_id()
    batch = build_batch(
        raw,
        fmt=fmt,
        namespace=f"{name}@{digest}",
        ranked_mode=options.get("ranked_mode", "best-vs-worst"),
        default_split=options.get("default_split", "train"),
        max_chars=options.get("max_chars", 100_000),
        progress=progress,
    )
    with transaction(warehouse) as con:
        row = sql.create_version(
            con,
            name=name,
            uri=uri,
            fmt=batch.format,
            content_hash=digest,
            options=options,
            flow_run_id=flow_run_id,
        )
        sql.store_batch(con, row.dataset_id, batch.pairs, batch.quarantine, flow_run_id)
        n_rows, n_pairs, n_quarantined = sql.stored_counts(con, row.dataset_id)
        if n_rows + n_quarantined != len(raw):
            raise RuntimeError(
                f"reconcile failed for {name}: {len(raw)} input rows != {n_rows} stored + {n_quarantined} quarantined; nothing was written"
            )
        sql.finish_version(
            con,
            row.dataset_id,
            n_input=len(raw),
            n_rows_stored=n_rows,
            n_pairs=n_pairs,
            n_quarantined=n_quarantined,
        )
    log.info(
        "stored %s pairs, quarantined %s rows: %s",
        f"{n_pairs:,}",
        f"{n_quarantined:,}",
        batch.reason_counts(),
    )
    return IngestSummary(
        row.dataset_id,
        name,
        row.version,
        "ingested",
        False,
        len(raw),
        n_pairs,
        n_rows,
        n_quarantined,
        batch.reason_counts(),
    )


@task(name="check-quality", cache_policy=NO_CACHE)
def check_quality(
    warehouse: str | None, dataset_id: int, batch_name: str, reports_dir: str, max_chars: int
):
    """Great Expectations over the stored batch; the outcome goes to dq_runs and an artifact."""
    from warehouse.quality import validate_pairs  # GX is slow to import: only when needed

    with transaction(warehouse) as con:
        frame = sql.batch_frame(con, dataset_id)
    outcome = validate_pairs(
        frame, batch_name=batch_name, reports_dir=Path(reports_dir), max_chars=max_chars
    )
    report = str(outcome.report_path) if outcome.report_path else None
    with transaction(warehouse) as con:
        sql.record_dq_run(
            con,
            dataset_id=dataset_id,
            suite=outcome.suite,
            success=outcome.success,
            n_expectations=outcome.n_expectations,
            n_evaluated=outcome.n_evaluated,
            n_failed=outcome.n_failed,
            failed=outcome.failed,
            statistics=outcome.statistics,
            result=outcome.result_json,
            report_path=report,
            flow_run_id=current_flow_run_id(),
        )
    key = "dq-" + "".join(c if c.isalnum() else "-" for c in batch_name.lower())
    if report and current_flow_run_id():
        create_link_artifact(key=key, link=Path(report).resolve().as_uri(), link_text=f"Data Docs: {batch_name}",
                             description=f"Great Expectations report for {batch_name}")  # fmt: skip
    return outcome


@task(name="publish-ingest-summary", cache_policy=NO_CACHE)
def publish_summary(summary: IngestSummary) -> None:
    if not current_flow_run_id():
        return
    reasons = "\n".join(f"| {k} | {v} |" for k, v in summary.reasons.items()) or "| (none) | 0 |"
    create_markdown_artifact(
        key="ingest-summary",
        markdown=(
            f"# Ingest {summary.name} v{summary.version}\n\n"
            f"input rows **{summary.n_input}** = stored rows **{summary.n_rows_stored}** + quarantined **{summary.n_quarantined}**"
            f" ({'reconciles' if summary.reconciles else 'DOES NOT RECONCILE'}); pairs stored: {summary.n_pairs}; "
            f"status: {summary.status}\n\n| reason | rows |\n|---|---|\n{reasons}\n"
        ),
        description=f"ingest summary for {summary.name}",
    )
