"""The GX file context in `warehouse/gx/`, kept in sync with the suite and opened once per process.

The context holds only commit-worthy config: the suite, the pandas datasource, the
validation definition and the checkpoint. Syncing writes only what differs, so validating
never rewrites committed files unless `pairs_expectations` changed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.quality.docs import SITE_NAME, site_config
from warehouse.quality.suite import SUITE_NAME, pairs_expectations

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations import Expectation

CONTEXT_DIR = Path(__file__).resolve().parents[1] / "gx"
_DATASOURCE, _ASSET, _BATCH_DEF = "rmcurate_pandas", "pairs_batch", "whole_batch"
_VALIDATION_DEF, _CHECKPOINT = "rmcurate_pairs_batch", "rmcurate_pairs_checkpoint"


class Gate:
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
        self.reports_dir: Path | None = None

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
            # Sites are configured per call (`point_docs_at`); none is committed.
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

        # A pandas datasource, not GX's SQL datasource over DuckDB: that one silently reports
        # success=False for every expectation (GX 1.24), so batches go in as DataFrames.
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

    def point_docs_at(self, reports_dir: Path) -> None:
        """Point the Data Docs site at this call's folder, in memory only (never saved)."""
        if reports_dir == self.reports_dir:
            return
        self.context.variables.data_docs_sites = {SITE_NAME: site_config(reports_dir)}
        self.reports_dir = reports_dir


def _configs(expectations: list[Expectation]) -> list[dict[str, Any]]:
    """Expectation configs without their ids: GX's `==` counts the id, so a fresh one never matches."""
    return [
        {k: v for k, v in e.configuration.to_json_dict().items() if k != "id"} for e in expectations
    ]


_GATES: dict[Path, Gate] = {}
# Prefect's default task runner uses threads; a gate's docs site is per-call state.
LOCK = threading.RLock()


def gate(context_dir: Path) -> Gate:
    """The process's opened context for `context_dir` (opened and synced on first use)."""
    key = context_dir.resolve()
    with LOCK:
        if key not in _GATES:
            _GATES[key] = Gate(key)
        return _GATES[key]


def sync_context(context_dir: Path | None = None) -> Path:
    """Create or update the GX config (suite, datasource, checkpoint) without validating.

    Run it after editing `pairs_expectations`, then commit `warehouse/gx/`.
    """
    context_dir = context_dir or CONTEXT_DIR
    gate(context_dir)
    return context_dir
