"""The train flow: a curated set (or a whole split) -> a reward model saved in Hugging Face
format with a model card, registered in the warehouse."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from rmcore.training import TrainConfig
from tasks.common import logger
from tasks.train import config_dict, config_digest, find_model, fit, load_training_data, register


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"train-{flow_run.parameters['name']}"


@flow(name="train", flow_run_name=_run_name, log_prints=True)
def train_flow(
    name: str,
    curated_set: str | None = None,
    dataset: str | None = None,
    split: str = "train",
    val_split: str | None = "validation",
    backend: str = "embed-head",
    base_model: str = "bundled",
    epochs: int = 10,
    lr: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
    margin: float = 0.0,
    center_coef: float = 0.0,
    max_steps: int | None = None,
    early_stopping_patience: int | None = None,
    lora: bool = False,
    models_dir: str | None = None,
    warehouse: str | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict:
    """Train `name` on `curated_set` (its weights apply) or on `dataset`'s `split` (uniform).
    Retraining the same name with the same data and options returns the saved model."""
    lr = lr if lr is not None else (1e-3 if backend == "embed-head" else 2e-5)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, margin=margin, center_coef=center_coef,
                         max_steps=max_steps, early_stopping_patience=early_stopping_patience, lora=lora, device=device,
                         progress=progress)  # fmt: skip
    digest = config_digest(curated_set=curated_set, dataset=dataset, split=split, val_split=val_split, backend=backend,
                           base_model=base_model, config=config_dict(config) | {"progress": None})  # fmt: skip
    existing = find_model(warehouse, name)
    if existing and existing["config"].get("digest") == digest and Path(existing["path"]).exists():
        logger().info("model %s is already trained with these inputs: %s", name, existing["path"])
        return existing | {"trained": False}
    train, val, info = load_training_data(
        warehouse, curated_set=curated_set, dataset=dataset, split=split, val_split=val_split
    )
    result = fit(
        warehouse, backend=backend, base_model=base_model, train=train, val=val, config=config
    )
    from warehouse.connection import warehouse_path

    root = Path(models_dir) if models_dir else warehouse_path(warehouse).parent / "models"
    out = register(warehouse, name=name, path=root / name, result=result, backend=backend,
                   info=info | {"base_model": base_model, "n_train": train.height}, config=config_dict(config), digest=digest)  # fmt: skip
    print(f"model {name}: {train.height} training pairs, metrics {out['metrics']}")
    return out | {"trained": True}
