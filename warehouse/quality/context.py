"""The GX context: committed config in `warehouse/gx/`, run in a runtime copy next to the warehouse.

The package's `warehouse/gx/` holds only commit-worthy config (the suite, the pandas
datasource, the validation definition and the checkpoint) and is only read while
validating: an installed package may sit in a read-only folder, and is shared by every
warehouse on the machine. Each validation runs in a runtime context folder
(`runtime_dir(warehouse)`, `<warehouse dir>/gx/`): the committed config is copied there
(only files that differ, each replaced atomically), and GX's own runtime output (its
`uncommitted/` folder with the validation results) stays there. `sync_context()` is the one
writer of the committed config: run it after editing `pairs_expectations`.
"""

from __future__ import annotations

import os
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
RUNTIME_FOLDER = "gx"  # next to the warehouse file
# GX's runtime output in a context folder; never part of the committed config.
_RUNTIME_ONLY = "uncommitted"
_DATASOURCE, _ASSET, _BATCH_DEF = "rmcurate_pandas", "pairs_batch", "whole_batch"
_VALIDATION_DEF, _CHECKPOINT = "rmcurate_pairs_batch", "rmcurate_pairs_checkpoint"


def runtime_dir(warehouse_file: Path) -> Path:
    """Where validations against `warehouse_file` run and keep their results: `<its folder>/gx/`."""
    return Path(warehouse_file).resolve().parent / RUNTIME_FOLDER


def _config_files(context_dir: Path) -> dict[Path, Path]:
    """The committed config of a context folder: every file outside `uncommitted/`."""
    files = {}
    for path in context_dir.rglob("*"):
        rel = path.relative_to(context_dir)
        if path.is_file() and rel.parts[0] != _RUNTIME_ONLY:
            files[rel] = path
    return files


def materialize(config_dir: Path, runtime: Path) -> None:
    """Copy the committed config into `runtime`, replacing only what differs (atomically, so
    two processes opening the same runtime folder never see a half-written file)."""
    for rel, source in _config_files(config_dir).items():
        target = runtime / rel
        data = source.read_bytes()
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        scratch.write_bytes(data)
        os.replace(scratch, target)


class Gate:
    """An opened GX context and its checkpoint, reused across calls in one process."""

    def __init__(self, context_dir: Path, runtime: Path | None = None) -> None:
        """Open the committed config of `context_dir` in `runtime` (default: in place, which
        only `sync_context` does)."""
        import great_expectations as gx

        root = runtime or context_dir
        if root != context_dir:
            materialize(context_dir, root)
        self.context: AbstractDataContext = gx.get_context(mode="file", context_root_dir=str(root))
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


_GATES: dict[tuple[Path, Path], Gate] = {}
# Prefect's default task runner uses threads; a gate's docs site is per-call state.
LOCK = threading.RLock()


def gate(context_dir: Path, runtime: Path | None = None) -> Gate:
    """The process's opened context for `context_dir`'s config run in `runtime` (opened and
    synced on first use)."""
    key = (context_dir.resolve(), (runtime or context_dir).resolve())
    with LOCK:
        if key not in _GATES:
            _GATES[key] = Gate(*key)
        return _GATES[key]


def sync_context(context_dir: Path | None = None) -> Path:
    """Create or update the committed GX config (suite, datasource, checkpoint) in place,
    without validating: the one writer of `warehouse/gx/`.

    Run it after editing `pairs_expectations`, then commit `warehouse/gx/`.
    """
    context_dir = context_dir or CONTEXT_DIR
    gate(context_dir)
    return context_dir
