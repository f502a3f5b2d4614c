"""The ingest stage: one source version in, validated pairs and quarantine rows in the
warehouse, then the data-quality check on what was stored.

Every count a summary reports is counted in the warehouse, so `IngestSummary.reconciles`
(`input rows == source rows with stored pairs + quarantined rows`) checks what is stored,
also for a version found already ingested.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rmcore.config import IngestConfig
from rmcore.ingest.batch import build_batch
from rmcore.ingest.sources import content_hash, detect_kind, read_source
from warehouse import ingest as sql
from warehouse.connection import transaction

log = logging.getLogger("rmcurate")


@dataclass(kw_only=True)
class IngestSummary:
    """What the ingest flow returns and prints: small, JSON-friendly."""

    dataset_id: int
    name: str
    version: int
    status: str
    skipped: bool
    n_input: int
    n_pairs: int
    n_rows_stored: int  # distinct source rows with stored pairs, counted in the warehouse
    n_quarantined: int  # quarantine rows, counted in the warehouse
    reasons: dict[str, int] = field(default_factory=dict)
    report_path: str | None = None
    seconds: float = 0.0

    @property
    def reconciles(self) -> bool:
        return self.n_input == self.n_rows_stored + self.n_quarantined

    @property
    def batch_name(self) -> str:
        """The name of this version's data-quality run and report."""
        return f"{self.name}-v{self.version}"

    def as_dict(self) -> dict:
        return asdict(self) | {"reconciles": self.reconciles}

    def line(self) -> str:
        """One line for the log: the reconcile and the verdict."""
        verdict = "reconciles" if self.reconciles else "MISMATCH"
        return (
            f"{self.name} v{self.version}: input {self.n_input} = stored {self.n_rows_stored}"
            f" + quarantined {self.n_quarantined} ({verdict}); {self.n_pairs} pairs; {self.status}"
        )

    def markdown(self) -> str:
        """The ingest-summary artifact: the reconcile and the quarantine reasons."""
        reasons = "\n".join(f"| {k} | {v} |" for k, v in self.reasons.items()) or "| (none) | 0 |"
        verdict = "reconciles" if self.reconciles else "DOES NOT RECONCILE"
        return (
            f"# Ingest {self.name} v{self.version}\n\n"
            f"input rows **{self.n_input}** = stored rows **{self.n_rows_stored}**"
            f" + quarantined **{self.n_quarantined}** ({verdict}); pairs stored: {self.n_pairs}; "
            f"status: {self.status}\n\n| reason | rows |\n|---|---|\n{reasons}\n"
        )


def source_files(folder: str, pattern: str) -> list[str]:
    """The files of a watched folder matching `pattern`, hidden ones left out, in name order."""
    return [
        str(p)
        for p in sorted(Path(folder).glob(pattern))
        if p.is_file() and not p.name.startswith(".")
    ]


def fingerprint(uri: str, kind: str | None) -> tuple[str, str]:
    """(kind, content hash): the identity of a source version."""
    kind = kind or detect_kind(uri)
    return kind, content_hash(uri, kind)


def find_existing(warehouse: str | None, name: str, digest: str) -> IngestSummary | None:
    """The summary of the version of `name` that already holds this content, if any, with
    its rows counted in the warehouse (not derived from the recorded input count)."""
    with transaction(warehouse) as con:
        row = sql.find_version(con, name, digest)
        if row is None:
            return None
        n_rows, n_pairs, n_quarantined = sql.stored_counts(con, row.dataset_id)
    return IngestSummary(
        dataset_id=row.dataset_id,
        name=row.name,
        version=row.version,
        status=row.status,
        skipped=True,
        n_input=row.n_input or 0,
        n_pairs=n_pairs,
        n_rows_stored=n_rows,
        n_quarantined=n_quarantined,
        report_path=row.report_path,
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
    flow_run_id: str | None,
    progress: bool = False,
) -> IngestSummary:
    """Read, canonicalize and validate in memory, then write the whole batch in one short
    transaction: a crash leaves no half-ingested version behind. Raises (and writes nothing)
    when the warehouse's counts do not reconcile with the input rows."""
    raw = read_source(uri, kind, split=config.hf_split)
    log.info("read %s rows from %s (%s)", f"{len(raw):,}", uri, kind)
    batch = build_batch(
        raw,
        fmt=fmt,
        namespace=f"{name}@{digest}",
        ranked_mode=config.ranked_mode,
        default_split=config.default_split,
        max_chars=config.max_chars,
        progress=progress,
    )
    with transaction(warehouse) as con:
        row = sql.create_version(
            con,
            name=name,
            uri=uri,
            fmt=batch.format,
            content_hash=digest,
            options=config.options(),
            flow_run_id=flow_run_id,
        )
        sql.store_batch(con, row.dataset_id, batch.pairs, batch.quarantine, flow_run_id)
        n_rows, n_pairs, n_quarantined = sql.stored_counts(con, row.dataset_id)
        if n_rows + n_quarantined != len(raw):
            raise RuntimeError(
                f"reconcile failed for {name}: {len(raw)} input rows != {n_rows} stored"
                f" + {n_quarantined} quarantined; nothing was written"
            )
        sql.finish_version(
            con,
            row.dataset_id,
            n_input=len(raw),
            n_rows_stored=n_rows,
            n_pairs=n_pairs,
            n_quarantined=n_quarantined,
        )
    return IngestSummary(
        dataset_id=row.dataset_id,
        name=name,
        version=row.version,
        status="ingested",
        skipped=False,
        n_input=len(raw),
        n_pairs=n_pairs,
        n_rows_stored=n_rows,
        n_quarantined=n_quarantined,
        reasons=batch.reason_counts(),
    )


def check_quality(
    warehouse: str | None,
    summary: IngestSummary,
    *,
    reports_dir: str,
    max_chars: int,
    flow_run_id: str | None,
) -> IngestSummary:
    """Great Expectations over the stored batch; the outcome goes to `dq_runs`, the verdict
    and the report path into the returned summary."""
    from warehouse.quality import validate_pairs  # GX is slow to import: only when needed

    with transaction(warehouse) as con:
        frame = sql.batch_frame(con, summary.dataset_id)
    outcome = validate_pairs(
        frame, batch_name=summary.batch_name, reports_dir=Path(reports_dir), max_chars=max_chars
    )
    report = str(outcome.report_path) if outcome.report_path else None
    with transaction(warehouse) as con:
        sql.record_dq_run(
            con,
            dataset_id=summary.dataset_id,
            suite=outcome.suite,
            success=outcome.success,
            n_expectations=outcome.n_expectations,
            n_evaluated=outcome.n_evaluated,
            n_failed=outcome.n_failed,
            failed=outcome.failed,
            statistics=outcome.statistics,
            result=outcome.result_json,
            report_path=report,
            flow_run_id=flow_run_id,
        )
    status = "passed_quality" if outcome.success else "failed_quality"
    return replace(summary, status=status, report_path=report)
