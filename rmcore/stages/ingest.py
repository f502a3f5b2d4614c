"""The ingest stage: one source version in, validated pairs and quarantine rows in the
warehouse, then the data-quality check on what was stored.

Every count a summary reports is counted in the warehouse, so `IngestSummary.reconciles`
(`input rows == source rows with stored pairs + quarantined rows`) checks what is stored,
also for a version found already ingested.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rmcore.config import IngestConfig
from rmcore.ingest.batch import build_batch
from rmcore.ingest.mapping import remap
from rmcore.ingest.sources import content_hash, detect_kind, read_source
from rmcore.names import check_name
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


def fingerprint(
    uri: str, kind: str | None, hf_config: str | None = None, hf_split: str | None = None
) -> tuple[str, str]:
    """(kind, content hash): the identity of a source version (of the chosen parts of a
    Hugging Face dataset)."""
    kind = kind or detect_kind(uri)
    return kind, content_hash(uri, kind, hf_config, hf_split)


def find_existing(warehouse: str | None, name: str, digest: str) -> IngestSummary | None:
    """The summary of the version of `name` that already holds this content, if any, with
    its rows counted in the warehouse (not derived from the recorded input count). A bad
    dataset name (`rmcore.names`) is refused here, before the warehouse is opened."""
    check_name(name, "dataset")
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
    check_name(name, "dataset")
    raw = read_source(
        uri,
        kind,
        split=config.hf_split,
        hf_config=config.hf_config,
        max_line_bytes=config.max_line_bytes,
        max_depth=config.max_depth,
    )
    log.info("read %s rows from %s (%s)", f"{len(raw):,}", uri, kind)
    raw = remap(raw, config.column_map)
    batch = build_batch(
        raw,
        fmt=fmt,
        namespace=f"{name}@{digest}",
        ranked_mode=config.ranked_mode,
        score_field=config.score_field,
        preference=config.preference,
        default_split=config.default_split,
        max_chars=config.max_chars,
        progress=progress,
    )
    if batch.n_input != len(raw):
        log.info(
            "grouped %s source rows into %s input rows (one per compared set of responses)",
            f"{len(raw):,}",
            f"{batch.n_input:,}",
        )
    # A concurrent ingest of the same content may commit first: then this one resolves to that
    # version (re-checked inside the write transaction, and after a write-write conflict in
    # the same process, where DuckDB does not serialize the two transactions for us).
    stored = None
    for attempt in range(_CONFLICT_RETRIES):
        try:
            with transaction(warehouse) as con:
                written = None
                if sql.find_version(con, name, digest) is None:
                    written = _store(con, raw, batch, name, uri, digest, config, flow_run_id)
            if written is not None:  # only once the commit succeeded
                stored = written
                break
            existing = find_existing(warehouse, name, digest)
            if existing is not None:
                log.info("%s v%d was stored by a concurrent ingest", name, existing.version)
                return existing
        except sql.CONFLICTS:
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    if stored is None:
        raise RuntimeError(f"{name}: no version stored after {_CONFLICT_RETRIES} attempts")
    row, n_rows, n_pairs, n_quarantined = stored
    return IngestSummary(
        dataset_id=row.dataset_id,
        name=name,
        version=row.version,
        status="ingested",
        skipped=False,
        n_input=batch.n_input,
        n_pairs=n_pairs,
        n_rows_stored=n_rows,
        n_quarantined=n_quarantined,
        reasons=batch.reason_counts(),
    )


_CONFLICT_RETRIES = 5


def _store(
    con, raw, batch, name, uri, digest, config, flow_run_id
) -> tuple[sql.DatasetRow, int, int, int]:
    """Create the version and write the batch on `con` (inside its transaction); returns the
    row and (stored rows, pairs, quarantined rows) as the warehouse counts them."""
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
    if n_rows + n_quarantined != batch.n_input:
        raise RuntimeError(
            f"reconcile failed for {name}: {batch.n_input} input rows != {n_rows} stored"
            f" + {n_quarantined} quarantined; nothing was written"
        )
    sql.finish_version(
        con,
        row.dataset_id,
        n_input=batch.n_input,
        n_rows_stored=n_rows,
        n_pairs=n_pairs,
        n_quarantined=n_quarantined,
    )
    return row, n_rows, n_pairs, n_quarantined


def check_quality(
    warehouse: str | None,
    summary: IngestSummary,
    *,
    reports_dir: str,
    max_chars: int,
    flow_run_id: str | None,
) -> IngestSummary:
    """Great Expectations over the stored batch; the outcome goes to `dq_runs`, the verdict
    and the report path into the returned summary. GX runs next to the warehouse
    (`warehouse.quality.runtime_dir`), never in the package.

    A check that cannot run (an unwritable reports folder, ...) marks the dataset
    `not_checked` with the reason and raises `QualityNotChecked`, which names the re-check;
    an unexpected error is recorded the same way, then raised as it is."""
    from rmcore.errors import QualityNotChecked, RmcurateError
    from warehouse import catalog, quality  # GX is slow to import: only when needed
    from warehouse.connection import warehouse_path

    try:
        with transaction(warehouse) as con:
            frame = sql.batch_frame(con, summary.dataset_id)
        outcome = quality.validate_pairs(
            frame,
            batch_name=summary.batch_name,
            reports_dir=Path(reports_dir),
            runtime_dir=quality.runtime_dir(warehouse_path(warehouse)),
            max_chars=max_chars,
        )
    except RmcurateError:  # the warehouse itself (busy, missing): nothing can be recorded
        raise
    except Exception as err:
        reason = _not_checked_reason(err)
        with transaction(warehouse) as con:
            catalog.mark_not_checked(con, summary.dataset_id, reason)
        if isinstance(err, quality.CHECK_ERRORS):
            raise QualityNotChecked(
                f"{summary.name} v{summary.version} is stored, but its quality check could not"
                f" run: {reason}; fix that, then run `rmcurate recheck"
                f" {summary.name}@{summary.version}`"
            ) from err
        raise
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
        catalog.clear_quality_note(con, summary.dataset_id)
    status = "passed_quality" if outcome.success else "failed_quality"
    return replace(summary, status=status, report_path=report)


def _not_checked_reason(err: Exception) -> str:
    """Why a quality check could not run, on one line."""
    if isinstance(err, (FileExistsError, NotADirectoryError)) and err.filename:
        return f"cannot create the folder {err.filename}: a file is in the way"
    if isinstance(err, OSError) and err.filename:
        return f"cannot write {err.filename}: {err.strerror or err}"
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def recheck(
    warehouse: str | None,
    dataset: str,
    *,
    reports_dir: str = IngestConfig.reports_dir,
    flow_run_id: str | None = None,
) -> IngestSummary:
    """Run the quality suite again on a stored dataset version (`id`, `name` or
    `name@version`), with the `max_chars` it was ingested under; the verdict is recorded as
    an ingest records it. For a dataset left `not_checked`, or checked by an older suite."""
    from rmcore.errors import WarehouseMissing
    from warehouse import catalog
    from warehouse.connection import warehouse_path

    if not warehouse_path(warehouse).exists():
        raise WarehouseMissing(
            f"no warehouse at {warehouse_path(warehouse)}; run `rmcurate ingest` first"
        )
    with transaction(warehouse) as con:
        target = catalog.check_target(con, catalog.resolve_dataset(con, dataset))
        n_rows, n_pairs, n_quarantined = sql.stored_counts(con, target.dataset_id)
    summary = IngestSummary(
        dataset_id=target.dataset_id,
        name=target.name,
        version=target.version,
        status=target.status,
        skipped=True,
        n_input=target.n_input,
        n_pairs=n_pairs,
        n_rows_stored=n_rows,
        n_quarantined=n_quarantined,
    )
    return check_quality(
        warehouse,
        summary,
        reports_dir=reports_dir,
        max_chars=target.max_chars or IngestConfig.max_chars,
        flow_run_id=flow_run_id,
    )
