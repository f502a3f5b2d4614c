"""`validate_pairs`: one stored batch in, one `DQOutcome` (shaped like a `dq_runs` row) out."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from rmcore.config import IngestConfig
from warehouse.quality.audit import checks, write_audit
from warehouse.quality.context import CONTEXT_DIR, LOCK, Gate, gate
from warehouse.quality.docs import data_docs_page
from warehouse.quality.suite import SUITE_NAME, with_derived

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

# Long texts in unexpected-value samples would bloat `dq_runs.result`.
_MAX_RESULT_STR = 200
# GX makes the run name a folder in its results store and in Data Docs: keep it far below
# the 255-byte limit of a file name, whatever the dataset's name.
_MAX_RUN_NAME = 64
_HASH_CHARS = 12


@dataclass
class DQOutcome:
    """One validation of one batch, shaped like a `dq_runs` row."""

    suite: str
    success: bool
    n_expectations: int
    n_evaluated: int
    n_failed: int
    statistics: dict[str, Any]
    result_json: dict[str, Any]
    report_path: Path  # the audit page (`audit.write_audit`)
    failed: list[str]


class SuiteNotFullyEvaluated(RuntimeError):
    """GX skipped expectations of the suite, so `success` would be a lie."""


def _check_errors() -> tuple[type[Exception], ...]:
    from great_expectations.exceptions import GreatExpectationsError

    return (OSError, SuiteNotFullyEvaluated, GreatExpectationsError)


# Errors that mean a check could not run (a folder it cannot write, a suite GX cannot load),
# as opposed to a bug: the caller records the batch as not checked and says how to re-check.
CHECK_ERRORS = _check_errors()


def run_name(batch_name: str) -> str:
    """GX stores results under the run name as a folder: ASCII letters, digits and `_.=-`
    only, at most 64 characters. A name that had to be changed or shortened ends in a hash
    of the original, so two batch names never share a folder."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", batch_name)
    if safe == batch_name and len(safe) <= _MAX_RUN_NAME:
        return safe
    tag = hashlib.sha256(batch_name.encode()).hexdigest()[:_HASH_CHARS]
    return f"{safe[: _MAX_RUN_NAME - _HASH_CHARS - 1]}-{tag}"


def _truncate(obj: Any) -> Any:
    """Shorten long strings (sampled texts) anywhere in a JSON-like structure."""
    if isinstance(obj, str):
        return obj if len(obj) <= _MAX_RESULT_STR else obj[:_MAX_RESULT_STR] + "…"
    if isinstance(obj, dict):
        return {k: _truncate(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_truncate(v) for v in obj]
    return obj


def _outcome(
    result: ExpectationSuiteValidationResult,
    *,
    n_expectations: int,
    batch_name: str,
    reports_dir: Path,
    data_docs: Path | None,
) -> DQOutcome:
    stats = dict(result.statistics)
    result_json = _truncate(result.to_json_dict())
    report = write_audit(
        result_json,
        batch_name=batch_name,
        run_name=run_name(batch_name),
        reports_dir=reports_dir,
        data_docs_page=data_docs,
    )
    return DQOutcome(
        suite=result.suite_name,
        success=bool(result.success),
        n_expectations=n_expectations,
        n_evaluated=int(stats["evaluated_expectations"]),
        n_failed=int(stats["unsuccessful_expectations"]),
        statistics=stats,
        result_json=result_json,
        report_path=report,
        failed=[c.expectation for c in checks(result_json) if not c.success],
    )


def _run(
    opened: Gate, df: pl.DataFrame, batch_name: str, reports_dir: Path, max_chars: int
) -> DQOutcome:
    from great_expectations.core.run_identifier import RunIdentifier

    opened.point_docs_at(reports_dir)
    checkpoint_result = opened.checkpoint.run(
        batch_parameters={"dataframe": with_derived(df).to_pandas()},
        expectation_parameters={"max_chars": max_chars},
        run_id=RunIdentifier(run_name=run_name(batch_name)),
    )
    ((result_id, result),) = checkpoint_result.run_results.items()
    return _outcome(
        result,
        n_expectations=opened.n_expectations,
        batch_name=batch_name,
        reports_dir=reports_dir,
        data_docs=data_docs_page(opened.context, result_id, opened.reports_dir),
    )


def validate_pairs(
    df: pl.DataFrame,
    *,
    batch_name: str,
    reports_dir: Path,
    runtime_dir: Path,
    max_chars: int = IngestConfig.max_chars,
    context_dir: Path | None = None,
) -> DQOutcome:
    """Validate one ingested batch; write its audit page (`audit`, the report) and its Data
    Docs page under `reports_dir`.

    The suite comes from the committed config in `context_dir` (default: the package's
    `warehouse/gx/`, only read); GX runs in `runtime_dir` (see `context.runtime_dir`) and
    keeps its validation results there. Raises `SuiteNotFullyEvaluated` when GX evaluated
    fewer expectations than the suite holds, since a silently skipped check must not read
    as a pass.
    """
    context_dir = context_dir or CONTEXT_DIR
    reports_dir = Path(reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    with LOCK:
        opened = gate(context_dir, Path(runtime_dir))
        outcome = _run(opened, df, batch_name, reports_dir, max_chars)
    if outcome.n_evaluated != outcome.n_expectations:
        raise SuiteNotFullyEvaluated(
            f"suite {SUITE_NAME!r} has {outcome.n_expectations} expectations but GX evaluated "
            f"{outcome.n_evaluated}: a custom expectation was not imported, or the suite "
            f"in {context_dir} could not be brought up to date"
        )
    return outcome
