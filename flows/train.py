"""The train flow: a curated set (or a whole split) -> a reward model saved in Hugging Face
format with a model card, registered in the warehouse."""

from __future__ import annotations

from prefect import flow

from rmcore.config import ModelSpec, OnlineConfig, TrainConfig, default_lr
from tasks.common import logger
from tasks.train import find_model, fit_reward_model, register_model


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"train-{flow_run.parameters['name']}"


@flow(name="train", flow_run_name=_run_name, log_prints=True)
def train_flow(
    name: str,
    curated_set: str | None = ModelSpec.curated_set,
    dataset: str | None = ModelSpec.dataset,
    split: str = ModelSpec.split,
    val_split: str | None = ModelSpec.val_split,
    backend: str = ModelSpec.backend,
    base_model: str = ModelSpec.base_model,
    epochs: int = TrainConfig.epochs,
    lr: float | None = None,
    batch_size: int = TrainConfig.batch_size,
    seed: int = TrainConfig.seed,
    margin: float = TrainConfig.margin,
    center_coef: float = TrainConfig.center_coef,
    max_steps: int | None = TrainConfig.max_steps,
    early_stopping_patience: int | None = TrainConfig.early_stopping_patience,
    lora: bool = TrainConfig.lora,
    online: dict | None = None,
    models_dir: str | None = None,
    overwrite: bool = False,
    warehouse: str | None = None,
    device: str | None = TrainConfig.device,
    progress: bool = TrainConfig.progress,
) -> dict:
    """Train `name` on `curated_set` (its weights apply) or on `dataset`'s `split` (uniform).
    `lr=None` is the backend's default (`rmcore.training.default_lr`). Retraining the same
    name with the same data and options returns the saved model; an existing folder for
    `name` with anything else in it is refused (`OutputExists`) unless `overwrite`. `name`
    follows `rmcore.names` (a single path component; never an id or `name@version`).
    `online` (fields of `OnlineConfig`, `{}` for its defaults) re-weights the pairs during
    training with free gaps from the model being trained; None trains on the set's weights."""
    config = TrainConfig(
        epochs=epochs,
        lr=default_lr(backend) if lr is None else lr,
        batch_size=batch_size,
        seed=seed,
        margin=margin,
        center_coef=center_coef,
        max_steps=max_steps,
        early_stopping_patience=early_stopping_patience,
        lora=lora,
        device=device,
        progress=progress,
    )
    spec = ModelSpec(
        curated_set=curated_set,
        dataset=dataset,
        split=split,
        val_split=val_split,
        backend=backend,
        base_model=base_model,
        online=None if online is None else OnlineConfig(**online),
        config=config,
    )
    existing = find_model(warehouse, name, spec)
    if existing:
        logger().info("model %s is already trained with these inputs: %s", name, existing["path"])
        return existing | {"trained": False}
    fitted = fit_reward_model(warehouse, spec, name, models_dir, overwrite)
    out = register_model(warehouse, spec, fitted)
    print(f"model {name}: {fitted['n_train']} training pairs, metrics {out['metrics']}")
    return out | {"trained": True}
