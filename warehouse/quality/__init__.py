"""Data-quality gate for ingested preference pairs, with Great Expectations Core 1.x.

Each ingested batch is validated against the suite `rmcurate_pairs` before the
dataset is marked good; the caller stores the returned `DQOutcome` in `dq_runs`.

One module per job:
- `suite`: the expectation suite, the contract a stored batch must meet;
- `context`: the committed config in `warehouse/gx/` (suite, datasource, checkpoint), copied
  into a runtime context next to the warehouse (`runtime_dir`), opened once per process;
- `docs`: Data Docs pointed at the caller's reports folder, with the template-cache fix;
- `audit`: the report a person reads, one self-contained page per validation (GX's Data Docs
  need CDNs for their styles and scripts, so offline they show no status), and its index;
- `validate`: `validate_pairs`, one batch in, one `DQOutcome` out (its `report_path` is the
  audit page).

Design choices (facts observed with GX 1.24):
- Batches are validated as pandas DataFrames: GX's SQL datasource over DuckDB
  silently reports success=False for every expectation.
- Only standard expectations are used. A custom expectation whose module is not
  imported before the suite loads is silently skipped, so `validate_pairs` also
  checks that every expectation of the suite was evaluated.
- The package's `warehouse/gx/` holds only commit-worthy config: the suite, the pandas
  datasource, the validation definition and the checkpoint; validating only reads it
  (`sync_context()` is its one writer). GX runs in a copy next to the warehouse
  (`<warehouse dir>/gx/`, its validation results in `uncommitted/` there), and Data Docs
  go to the caller's `reports_dir` through a site configured in memory per call, never
  saved to `great_expectations.yml`. Run names (folders) are bounded: see `run_name`.
- `max_chars` is a suite parameter (`$PARAMETER`), so changing it per call leaves
  the stored suite untouched.
- GX takes seconds to import and to open a context: callers import this package
  only where they validate (rmcore/stages/ingest.py does so inside the quality check),
  and the opened context is cached per context folder.
- GX renders each Data Docs page with a fresh jinja environment, recompiling its ~50
  templates every validation (0.3-0.6 s); the site's views share one in-process
  bytecode cache instead (`docs.CachedPageView`, `docs.CachedIndexPageView`).
"""

from __future__ import annotations

import os

# GX 1.24 ships no analytics client; the switch is kept off should a release add one back.
# Set here, before any module of this package imports great_expectations.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from warehouse.quality.context import CONTEXT_DIR, runtime_dir, sync_context
from warehouse.quality.suite import (
    COLUMNS,
    ID_COLUMNS,
    IS_PROMPT,
    MIN_NON_TIE_FRACTION,
    STARTS_WITH_PROMPT,
    SUITE_NAME,
    TEXT_COLUMNS,
    TIE,
    pairs_expectations,
)
from warehouse.quality.validate import (
    CHECK_ERRORS,
    DQOutcome,
    SuiteNotFullyEvaluated,
    run_name,
    validate_pairs,
)

__all__ = [
    "CHECK_ERRORS",
    "COLUMNS",
    "CONTEXT_DIR",
    "ID_COLUMNS",
    "IS_PROMPT",
    "MIN_NON_TIE_FRACTION",
    "STARTS_WITH_PROMPT",
    "SUITE_NAME",
    "TEXT_COLUMNS",
    "TIE",
    "DQOutcome",
    "SuiteNotFullyEvaluated",
    "pairs_expectations",
    "run_name",
    "runtime_dir",
    "sync_context",
    "validate_pairs",
]
