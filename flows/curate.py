"""The curate flow: a SQL predicate over scored pairs + a weighting rule (+ optional RRM
augmentation) -> an immutable, versioned curated set in the warehouse."""

from __future__ import annotations

from prefect import flow

from tasks.common import logger
from tasks.curate import SetDefinition, augment_rrm, materialize, resolve_inputs, select_and_weigh
from warehouse import curation as sql
from warehouse.connection import reader


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"curate-{flow_run.parameters['name']}"


@flow(name="curate", flow_run_name=_run_name, log_prints=True)
def curate_flow(
    name: str,
    dataset: str,
    predicate: str = "split = 'train'",
    rule: str = "uniform",
    params: dict | None = None,
    augment: str | None = None,
    keep_fraction: float = 0.5,
    rrm_filter: bool = False,
    seed: int = 0,
    scoring_run: int | None = None,
    warehouse: str | None = None,
) -> dict:
    """The same definition over the same inputs returns the existing set; a changed one
    becomes the next version of `name`."""
    if augment not in (None, "rrm"):
        raise ValueError(f"augment must be None or 'rrm', got {augment!r}")
    definition = SetDefinition(
        name,
        dataset,
        predicate,
        rule,
        params or {},
        augment,
        keep_fraction,
        rrm_filter,
        seed,
        scoring_run,
    )
    dataset_id, run, digest = resolve_inputs(warehouse, definition)
    with reader(warehouse) as con:
        existing = sql.find_set(con, name, digest)
    if existing:
        logger().info("curated set %s v%d already holds this definition", name, existing["version"])
        return existing | {"created": False}
    weighted = select_and_weigh(warehouse, definition, dataset_id, run)
    augmented, counts = (
        augment_rrm(warehouse, definition, dataset_id, run, weighted) if augment else (None, {})
    )
    row = materialize(warehouse, definition, dataset_id, run, digest, weighted, augmented, counts)
    print(f"curated set {name} v{row['version']}: {row['n_members']} members ({row['n_augmented']} augmented) "
          f"from {row['n_candidates']} candidates, rule {rule}")  # fmt: skip
    return row | {"created": True}
