"""Data-quality gate for ingested preference pairs, with Great Expectations Core 1.x.

Each ingested batch is validated against the suite `rmcurate_pairs` before the
dataset is marked good; the caller stores the returned `DQOutcome` in `dq_runs`.

Design choices (facts observed with GX 1.24):
- Batches are validated as pandas DataFrames: GX's SQL datasource over DuckDB
  silently reports success=False for every expectation.
- Only standard expectations are used. A custom expectation whose module is not
  imported before the suite loads is silently skipped, so `validate_pairs` also
  checks that every expectation of the suite was evaluated.
- The file context (`warehouse/gx/`) holds only commit-worthy config: the suite, the
  pandas datasource, the validation definition and the checkpoint. Validation results
  go to its `uncommitted/` folder (git-ignored by GX's own `.gitignore`), and Data
  Docs go to the caller's `reports_dir` through a site configured in memory per
  call, never saved to `great_expectations.yml`.
- `max_chars` is a suite parameter (`$PARAMETER`), so changing it per call leaves
  the stored suite untouched.
- GX takes seconds to import and to open a context: callers import this module
  only where they validate (tasks/ingest.py does so inside the task), and the opened
  context is cached per context folder.
- GX renders each Data Docs page with a fresh jinja environment, recompiling its ~50
  templates every validation (0.3-0.6 s); the site's views share one in-process
  bytecode cache instead (`CachedPageView`, `CachedIndexPageView`).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import jinja2
import polars as pl

# GX 1.24 ships no analytics client; the switch is kept off should a release add one back.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from great_expectations.render.view import (  # after the switch above
    DefaultJinjaIndexPageView,
    DefaultJinjaPageView,
)

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )
    from great_expectations.expectations import Expectation
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

SUITE_NAME = "rmcurate_pairs"
CONTEXT_DIR = Path(__file__).resolve().parent / "gx"
SITE_NAME = "rmcurate_reports"
_DATASOURCE, _ASSET, _BATCH_DEF = "rmcurate_pandas", "pairs_batch", "whole_batch"
_VALIDATION_DEF, _CHECKPOINT = "rmcurate_pairs_batch", "rmcurate_pairs_checkpoint"

COLUMNS: dict[str, type[pl.DataType]] = {
    "pair_id": pl.Utf8,
    "prompt_id": pl.Utf8,
    "chosen_id": pl.Utf8,
    "rejected_id": pl.Utf8,
    "prompt": pl.Utf8,
    "chosen": pl.Utf8,
    "rejected": pl.Utf8,
    "label": pl.Float64,
    "split": pl.Utf8,
    "source_row": pl.Int64,
}
ID_COLUMNS = ("pair_id", "prompt_id", "chosen_id", "rejected_id")
TEXT_COLUMNS = ("prompt", "chosen", "rejected")
SPLITS = ("train", "validation", "test")
SHA256_HEX = r"^[0-9a-f]{64}$"
TIE = 0.5
# A batch where fewer than 1% of pairs prefer one side carries almost no signal.
MIN_NON_TIE_FRACTION = 0.01
_SAME_IDS = "(chosen_id == rejected_id) | (chosen_id.isna() & rejected_id.isna())"
# Long texts in unexpected-value samples would bloat `dq_runs.result`.
_MAX_RESULT_STR = 200
_INDEX_LIMIT = 500


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
    report_path: Path | None
    failed: list[str]


class SuiteNotFullyEvaluated(RuntimeError):
    """GX skipped expectations of the suite, so `success` would be a lie."""


def pairs_expectations() -> list[Expectation]:
    """The suite's expectations; `max_chars` stays a parameter bound at run time."""
    import great_expectations.expectations as gxe

    max_chars = {"$PARAMETER": "max_chars"}
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectTableColumnsToMatchSet(column_set=list(COLUMNS), exact_match=True),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in COLUMNS),
        *(gxe.ExpectColumnValuesToMatchRegex(column=c, regex=SHA256_HEX) for c in ID_COLUMNS),
        *(
            gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1, max_value=max_chars)
            for c in TEXT_COLUMNS
        ),
        gxe.ExpectColumnValuesToBeUnique(column="pair_id"),
        # chosen_id != rejected_id on every row: a pair must compare two different texts.
        # GX checks this row by row in Python (5-8 s per 100k rows); the row condition hands
        # it only the rows that can fail (equal, or both null), found by a vectorized query,
        # so the outcome is the same on every batch.
        gxe.ExpectSelectColumnValuesToBeUniqueWithinRecord(
            column_list=["chosen_id", "rejected_id"],
            ignore_row_if="never",
            row_condition=_SAME_IDS,
            condition_parser="pandas",
        ),
        gxe.ExpectColumnValuesToBeBetween(column="label", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToNotBeInSet(
            column="label", value_set=[TIE], mostly=MIN_NON_TIE_FRACTION
        ),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        # Not unique: one source row may yield several pairs (multi-completion formats).
        gxe.ExpectColumnValuesToBeBetween(column="source_row", min_value=0),
    ]


class _TemplateBytecode(jinja2.BytecodeCache):
    """Compiled Data Docs templates for the life of the process (jinja checks each
    template's source checksum before reusing its code)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = _TemplateBytecode()


class CachedPageView(DefaultJinjaPageView):
    """GX's page view, compiling its templates once per process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _BYTECODE


class CachedIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view, compiling its templates once per process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _BYTECODE


def _view(class_name: str) -> dict[str, str]:
    return {"module_name": __name__, "class_name": class_name}


class _Gate:
    """An opened GX context and its checkpoint, reused across calls in one process."""

    def __init__(self, context_dir: Path) -> None:
        import great_expectations as gx

        self.context: AbstractDataContext = gx.get_context(
            mode="file", context_root_dir=str(context_dir)
        )
        self.checkpoint: Checkpoint = self._ensure_config()
        # Count what is stored, not what GX loaded: it drops unimportable expectations silently.
        store = self.context.expectations_store
        stored = store.get(store.get_key(name=SUITE_NAME, id=None))
        self.n_expectations = len(stored["expectations"])
        self._reports_dir: Path | None = None

    def _ensure_config(self) -> Checkpoint:
        """Create or update the persisted config, writing only what differs (idempotent)."""
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.exceptions import DataContextError

        ctx = self.context
        bars = ctx.config.to_json_dict().get("progress_bars")
        if (ctx.config.analytics_enabled, ctx.variables.data_docs_sites, bars) != (
            False,
            {},
            {"globally": False, "metric_calculations": False},
        ):
            ctx.config.analytics_enabled = False
            # Sites are configured per call (`_point_docs_at`); none is committed.
            ctx.variables.data_docs_sites = {}
            # Metric progress bars would flood Prefect's logs with tqdm lines.
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            ctx.variables.save()

        wanted = gx.ExpectationSuite(name=SUITE_NAME, expectations=pairs_expectations())
        try:
            suite = ctx.suites.get(SUITE_NAME)
        except DataContextError:
            suite = ctx.suites.add(wanted)
        if _configs(suite.expectations) != _configs(wanted.expectations):
            suite = ctx.suites.add_or_update(wanted)

        source = ctx.data_sources.all().get(_DATASOURCE) or ctx.data_sources.add_pandas(
            name=_DATASOURCE
        )
        asset = next((a for a in source.assets if a.name == _ASSET), None)
        asset = asset or source.add_dataframe_asset(name=_ASSET)
        batch_def = next((b for b in asset.batch_definitions if b.name == _BATCH_DEF), None)
        batch_def = batch_def or asset.add_batch_definition_whole_dataframe(_BATCH_DEF)

        try:
            validation = ctx.validation_definitions.get(_VALIDATION_DEF)
        except DataContextError:
            validation = ctx.validation_definitions.add(
                gx.ValidationDefinition(name=_VALIDATION_DEF, data=batch_def, suite=suite)
            )
        wanted_checkpoint = gx.Checkpoint(
            name=_CHECKPOINT,
            validation_definitions=[validation],
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE_NAME])],
            # Few, short samples of bad values: enough to debug, small enough for `dq_runs`.
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
        try:
            checkpoint = ctx.checkpoints.get(_CHECKPOINT)
        except DataContextError:
            return ctx.checkpoints.add(wanted_checkpoint)
        same = (checkpoint.actions, checkpoint.result_format) == (
            wanted_checkpoint.actions,
            wanted_checkpoint.result_format,
        )
        return checkpoint if same else ctx.checkpoints.add_or_update(wanted_checkpoint)

    def _point_docs_at(self, reports_dir: Path) -> None:
        """Point the Data Docs site at this call's folder, in memory only (never saved)."""
        if reports_dir == self._reports_dir:
            return
        self.context.variables.data_docs_sites = {
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(reports_dir),
                },
                # The index reads every listed result: bound the cost as history grows.
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": _INDEX_LIMIT,
                    "view": _view("CachedIndexPageView"),
                },
                "site_section_builders": {
                    section: {"view": _view("CachedPageView")}
                    for section in ("expectations", "validations", "profiling")
                },
            }
        }
        self._reports_dir = reports_dir

    def _report_path(self, result_id: ValidationResultIdentifier) -> Path | None:
        """The validation's own page; the site index if GX cannot locate it."""
        urls = self.context.get_docs_sites_urls(
            resource_identifier=result_id, site_names=[SITE_NAME]
        )
        url = next((u["site_url"] for u in urls if u["site_url"]), None)
        if url is not None:
            return Path(url2pathname(urlparse(url).path))
        index = self._reports_dir / "index.html" if self._reports_dir else None
        return index if index and index.is_file() else None

    def validate(
        self, df: pl.DataFrame, batch_name: str, reports_dir: Path, max_chars: int
    ) -> DQOutcome:
        from great_expectations.core.run_identifier import RunIdentifier

        self._point_docs_at(reports_dir)
        checkpoint_result = self.checkpoint.run(
            batch_parameters={"dataframe": df.to_pandas()},
            expectation_parameters={"max_chars": max_chars},
            run_id=RunIdentifier(run_name=_run_name(batch_name)),
        )
        ((result_id, result),) = checkpoint_result.run_results.items()
        return _outcome(result, self.n_expectations, self._report_path(result_id))


def _run_name(batch_name: str) -> str:
    """GX stores results under the run name as a folder: no slashes, nothing odd in a URL."""
    return re.sub(r"[^\w.=-]+", "_", batch_name)


def _configs(expectations: list[Expectation]) -> list[dict[str, Any]]:
    """Expectation configs without their ids: GX's `==` counts the id, so a fresh one never matches."""
    return [
        {k: v for k, v in e.configuration.to_json_dict().items() if k != "id"} for e in expectations
    ]


_GATES: dict[Path, _Gate] = {}
# Prefect's default task runner uses threads; a gate's docs site is per-call state.
_LOCK = threading.RLock()


def _gate(context_dir: Path) -> _Gate:
    key = context_dir.resolve()
    with _LOCK:
        if key not in _GATES:
            _GATES[key] = _Gate(key)
        return _GATES[key]


def _expectation_name(config: ExpectationConfiguration) -> str:
    """`expect_x[column]`: readable, and stable enough to match on in tests and SQL."""
    kwargs = config.kwargs
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    return f"{config.type}[{target}]" if target else config.type


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
    result: ExpectationSuiteValidationResult, n_expectations: int, report: Path | None
) -> DQOutcome:
    stats = dict(result.statistics)
    failed = [_expectation_name(r.expectation_config) for r in result.results if not r.success]
    return DQOutcome(
        suite=result.suite_name,
        success=bool(result.success),
        n_expectations=n_expectations,
        n_evaluated=int(stats["evaluated_expectations"]),
        n_failed=int(stats["unsuccessful_expectations"]),
        statistics=stats,
        result_json=_truncate(result.to_json_dict()),
        report_path=report,
        failed=failed,
    )


def validate_pairs(
    df: pl.DataFrame,
    *,
    batch_name: str,
    reports_dir: Path,
    max_chars: int = 100_000,
    context_dir: Path | None = None,
) -> DQOutcome:
    """Validate one ingested batch and render its Data Docs page under `reports_dir`.

    Raises `SuiteNotFullyEvaluated` when GX evaluated fewer expectations than the
    suite holds, since a silently skipped check must not read as a pass.
    """
    context_dir = context_dir or CONTEXT_DIR
    reports_dir = Path(reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        outcome = _gate(context_dir).validate(df, batch_name, reports_dir, max_chars)
    if outcome.n_evaluated != outcome.n_expectations:
        raise SuiteNotFullyEvaluated(
            f"suite {SUITE_NAME!r} has {outcome.n_expectations} expectations but GX evaluated "
            f"{outcome.n_evaluated}: a custom expectation was not imported, or the suite "
            f"in {context_dir} could not be brought up to date"
        )
    return outcome


def sync_context(context_dir: Path | None = None) -> Path:
    """Create or update the GX config (suite, datasource, checkpoint) without validating.

    Run it after editing `pairs_expectations`, then commit `warehouse/gx/`.
    """
    context_dir = context_dir or CONTEXT_DIR
    _gate(context_dir)
    return context_dir
