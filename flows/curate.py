"""The curate flow: a SQL predicate over scored pairs + a weighting rule (+ optional RRM
augmentation) -> an immutable, versioned curated set in the warehouse."""

from __future__ import annotations

from prefect import flow

from rmcore.config import SetDefinition
from tasks.common import logger
from tasks.curate import build_curated_set, find_curated_set, resolve_curation_inputs


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"curate-{flow_run.parameters['name']}"


@flow(name="curate", flow_run_name=_run_name, log_prints=True)
def curate_flow(
    name: str,
    dataset: str,
    predicate: str = SetDefinition.predicate,
    rule: str = SetDefinition.rule,
    params: dict | None = None,
    augment: str | None = SetDefinition.augment,
    keep_fraction: float = SetDefinition.keep_fraction,
    rrm_filter: bool = SetDefinition.rrm_filter,
    rrm_cap: float | None = SetDefinition.rrm_cap,
    seed: int = SetDefinition.seed,
    scoring_run_id: int | None = SetDefinition.scoring_run_id,
    warehouse: str | None = None,
) -> dict:
    """The same definition over the same inputs returns the existing set; a changed one
    becomes the next version of `name`. `params=None` means the rule's defaults."""
    definition = SetDefinition(
        name=name,
        dataset=dataset,
        predicate=predicate,
        rule=rule,
        params=params or {},
        augment=augment,
        keep_fraction=keep_fraction,
        rrm_filter=rrm_filter,
        rrm_cap=rrm_cap,
        seed=seed,
        scoring_run_id=scoring_run_id,
    )
    inputs = resolve_curation_inputs(warehouse, definition)
    existing = find_curated_set(warehouse, name, inputs.digest)
    if existing:
        logger().info("curated set %s v%d already holds this definition", name, existing["version"])
        return existing | {"created": False}
    row = build_curated_set(warehouse, definition, inputs)
    print(
        f"curated set {name} v{row['version']}: {row['n_members']} members ({row['n_augmented']} augmented)"
        f" from {row['n_candidates']} candidates, rule {rule}"
    )
    return row | {"created": True}
