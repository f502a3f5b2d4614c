"""Prefect tasks for the train stage: load a curated set, fit a reward model, register it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import polars as pl
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.models.base import pick_device
from rmcore.training import (
    EmbedPairs,
    TextPairs,
    TrainConfig,
    save_trained,
    train_embed_head,
    train_joint,
)
from tasks.common import current_flow_run_id, logger
from tasks.score import ensure_embeddings, load_encoder
from warehouse import catalog, models
from warehouse import curation as cur
from warehouse import scoring as sql
from warehouse.connection import reader, transaction
from warehouse.pairs import split_pairs


@task(name="load-training-data", cache_policy=NO_CACHE)
def load_training_data(
    warehouse: str | None,
    *,
    curated_set: str | None,
    dataset: str | None,
    split: str,
    val_split: str | None,
) -> tuple[pl.DataFrame, pl.DataFrame | None, dict]:
    """Training pairs (a curated set's members with weights, or a whole split with weight 1)
    and validation pairs (the dataset's `val_split`)."""
    with reader(warehouse) as con:
        if curated_set:
            set_id = cur.resolve_set(con, curated_set)
            row = cur.set_row(con, set_id)
            train = cur.members(con, set_id)
            dataset_id, rule = (
                row["dataset_id"],
                row["rule"] + ("+rrm" if row["n_augmented"] else ""),
            )
        else:
            if not dataset:
                raise ValueError("give a curated set or a dataset")
            dataset_id, set_id, rule = catalog.resolve_dataset(con, dataset), None, "uniform"
            train = split_pairs(con, dataset_id, split)
        val = split_pairs(con, dataset_id, val_split) if val_split else None
    if train.height == 0:
        raise ValueError("no training pairs selected")
    if val is not None and val.height == 0:
        val = None
    return train, val, {"dataset_id": dataset_id, "curated_set_id": set_id, "rule": rule}


def _tensor(frame: pl.DataFrame, col: str) -> torch.Tensor:
    return torch.from_numpy(frame[col].cast(pl.Float32).to_numpy().copy())


def embed_pairs(warehouse: str | None, encoder, frame: pl.DataFrame) -> EmbedPairs:
    """Cached (or freshly computed and cached) embeddings of a frame's texts."""
    ids = pl.concat([frame["prompt_id"], frame["chosen_id"], frame["rejected_id"]]).unique()
    ensure_embeddings(warehouse, encoder, ids)
    with reader(warehouse) as con:
        index, matrix = sql.embeddings(con, encoder.encoder_id, ids)
    emb = torch.from_numpy(matrix)

    def rows(col: str) -> torch.Tensor:
        return torch.as_tensor(
            frame[col].replace_strict(index, return_dtype=pl.Int64).to_numpy().copy()
        )

    return EmbedPairs(
        emb[rows("prompt_id")],
        emb[rows("chosen_id")],
        emb[rows("rejected_id")],
        _tensor(frame, "label"),
        _tensor(frame, "weight"),
    )


def text_pairs(frame: pl.DataFrame) -> TextPairs:
    return TextPairs(
        frame["prompt"].to_list(),
        frame["chosen"].to_list(),
        frame["rejected"].to_list(),
        _tensor(frame, "label"),
        _tensor(frame, "weight"),
    )


def config_digest(**parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@task(name="find-model", cache_policy=NO_CACHE)
def find_model(warehouse: str | None, name: str) -> dict | None:
    with reader(warehouse) as con:
        return models.find(con, name)


@task(name="fit-reward-model", cache_policy=NO_CACHE)
def fit(
    warehouse: str | None, *, backend: str, base_model: str, train: pl.DataFrame, val: pl.DataFrame | None,
    config: TrainConfig, head_hidden: int = 256,
):  # fmt: skip
    """Train the embed-head (on cached embeddings) or fine-tune a joint HF model."""
    device = str(pick_device(config.device))
    if backend == "embed-head":
        from rmcore.models.embed_head import HeadConfig, RewardHead

        encoder = load_encoder(device) if base_model == "bundled" else _encoder(base_model, device)
        train_emb, val_emb = (
            embed_pairs(warehouse, encoder, train),
            (embed_pairs(warehouse, encoder, val) if val is not None else None),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            head = RewardHead(
                HeadConfig(dim=encoder.dim, hidden=head_hidden, encoder_id=encoder.encoder_id)
            )
        return train_embed_head(head, train_emb, val_emb, config)
    if backend == "joint":
        from rmcore.models.joint import JointRewardModel

        model = JointRewardModel.load(base_model, device=device)
        return train_joint(
            model, text_pairs(train), text_pairs(val) if val is not None else None, config
        )
    raise ValueError(f"backend must be embed-head or joint, got {backend!r}")


def _encoder(name: str, device: str):
    from rmcore.models.encoder import load_encoder as load

    return load(name, device=device)


@task(name="register-model", cache_policy=NO_CACHE)
def register(
    warehouse: str | None,
    *,
    name: str,
    path: Path,
    result,
    backend: str,
    info: dict,
    config: dict,
    digest: str,
) -> dict:
    """Save in Hugging Face format with a model card, and record it in `models`."""
    card = info | {"name": name, "backend": backend, "config_digest": digest}
    save_trained(path, result, card=card)
    revision = hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(path.glob("*.safetensors")))
    ).hexdigest()[:12]
    metrics = result.metrics | {
        "seconds": result.seconds,
        "samples_per_second": result.samples_per_second,
    }
    with transaction(warehouse) as con:
        models.register(
            con, name=name, path=str(path.resolve()), backend=backend, revision=revision, curated_set_id=info["curated_set_id"],
            dataset_id=info["dataset_id"], method=info["rule"], config=config | {"digest": digest}, metrics=metrics,
            flow_run_id=current_flow_run_id(),
        )  # fmt: skip
    logger().info(
        "model %s saved to %s: %s",
        name,
        path,
        {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)},
    )
    return {
        "name": name,
        "path": str(path.resolve()),
        "metrics": metrics,
        "config": config | {"digest": digest},
    }


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)
