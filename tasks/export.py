"""Prefect task for the export stage: a thin wrapper over `rmcore.stages.export`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.config import ExportConfig
from rmcore.stages import export as stage


@task(name="export-curated-set", cache_policy=NO_CACHE)
def export_curated_set(
    warehouse: str | None, curated_set: str, path: str, config: ExportConfig
) -> dict:
    """Write the set's members to `path`: rows, resolved path, formats, splits, TRL note."""
    return stage.export_set(warehouse, curated_set, path, config)
