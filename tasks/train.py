"""Prefect tasks for the train stage: thin wrappers over `rmcore.stages.train`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.config import ModelSpec
from rmcore.stages import train as stage
from tasks.common import current_flow_run_id, logger


@task(name="find-model", cache_policy=NO_CACHE)
def find_model(warehouse: str | None, name: str, spec: ModelSpec) -> dict | None:
    """The saved model `name` when it was trained with this spec, else None."""
    return stage.find_trained(warehouse, name, spec)


@task(name="fit-reward-model", cache_policy=NO_CACHE)
def fit_reward_model(
    warehouse: str | None,
    spec: ModelSpec,
    name: str,
    models_dir: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Load the data by reference, train, save with a model card: path, revision, metrics."""
    fitted = stage.fit_reward_model(
        warehouse, spec, name=name, models_dir=models_dir, overwrite=overwrite
    )
    logger().info(
        "model %s saved to %s: %s",
        name,
        fitted["path"],
        {k: round(v, 4) for k, v in fitted["metrics"].items() if isinstance(v, float)},
    )
    return fitted


@task(name="register-model", cache_policy=NO_CACHE)
def register_model(warehouse: str | None, spec: ModelSpec, fitted: dict) -> dict:
    """Record the saved model in `models`."""
    return stage.register_model(warehouse, spec, fitted, flow_run_id=current_flow_run_id())
