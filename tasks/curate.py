"""Prefect tasks for the curate stage: thin wrappers over `rmcore.stages.curate`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.config import SetDefinition
from rmcore.stages import curate as stage
from rmcore.stages.curate import CurationInputs
from tasks.common import current_flow_run_id, logger


@task(name="resolve-curation-inputs", cache_policy=NO_CACHE)
def resolve_curation_inputs(warehouse: str | None, definition: SetDefinition) -> CurationInputs:
    """(dataset id, scoring run id, definition hash)."""
    return stage.resolve_inputs(warehouse, definition)


@task(name="find-curated-set", cache_policy=NO_CACHE)
def find_curated_set(warehouse: str | None, name: str, digest: str) -> dict | None:
    return stage.find_set(warehouse, name, digest)


@task(name="build-curated-set", cache_policy=NO_CACHE)
def build_curated_set(
    warehouse: str | None, definition: SetDefinition, inputs: CurationInputs
) -> dict:
    """Select (sandboxed predicate), weigh, augment and materialize; the set's row."""
    row = stage.build_set(warehouse, definition, inputs, flow_run_id=current_flow_run_id())
    if definition.augment:
        logger().info("RRM augmentation: %s", row["counts"])
    return row
