"""The train stage: a curated set (or a whole split) -> a reward model saved in Hugging Face
format with a model card, registered in `models`.

Data is loaded by reference inside the stage: the embedding head and the late-interaction
head need only ids, labels and weights (their inputs are cached embeddings or token states),
the joint model the texts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import torch

from rmcore.config import ModelSpec
from rmcore.curation.methods import method_name
from rmcore.decomposition.scoring import embedding_rows
from rmcore.errors import InvalidArgument, OutputExists
from rmcore.models.base import pick_device
from rmcore.names import check_name, inside, publish
from rmcore.stages.scores import (
    cached_embeddings,
    cached_token_states,
    ensure_embeddings,
    ensure_token_states,
    load_encoder,
)
from rmcore.training import (
    EmbedPairs,
    StatePairs,
    TextPairs,
    TrainResult,
    save_trained,
    train_embed_head,
    train_joint,
    train_late_interaction,
)
from warehouse import catalog, models
from warehouse import curation as cur
from warehouse.connection import reader, transaction, warehouse_path
from warehouse.pairs import split_pair_refs, split_pairs


@dataclass(frozen=True, kw_only=True)
class TrainingData:
    """Training pairs (with weights) and validation pairs, plus where they came from."""

    train: pl.DataFrame
    val: pl.DataFrame | None
    dataset_id: int
    curated_set_id: int | None
    rule: str
    augment: str | None
    lineage: dict  # for the model card: dataset and set as name@version, scoring run, filter

    @property
    def method(self) -> str:
        return method_name(self.rule, self.augment)


def find_trained(warehouse: str | None, name: str, spec: ModelSpec) -> dict | None:
    """The registered model `name` when it was trained with this spec and is still on disk
    (a bad name is refused here, before anything else runs)."""
    check_name(name, "model")
    with reader(warehouse) as con:
        existing = models.find(con, name)
    if (
        existing
        and existing["config"].get("digest") == spec.digest()
        and Path(existing["path"]).exists()
    ):
        return existing
    return None


def load_training_data(warehouse: str | None, spec: ModelSpec, *, texts: bool) -> TrainingData:
    """A curated set's members with their weights, or a whole split with weight 1, and the
    dataset's `val_split`; with the texts only when `texts`."""
    members = cur.members if texts else cur.member_refs
    pairs = split_pairs if texts else split_pair_refs
    with reader(warehouse) as con:
        if spec.curated_set:
            set_id = cur.resolve_set(con, spec.curated_set)
            row = cur.set_row(con, set_id)
            train = members(con, set_id)
            augmentation = json.loads(row["augmentation"] or "null")
            dataset_id, rule = row["dataset_id"], row["rule"]
            augment = augmentation["kind"] if augmentation else None
        else:
            dataset_id = catalog.resolve_dataset(con, spec.dataset)
            set_id, rule, augment = None, "uniform", None
            train = pairs(con, dataset_id, spec.split)
        val = pairs(con, dataset_id, spec.val_split) if spec.val_split else None
        lineage = {
            "dataset": catalog.label(con, "dataset", dataset_id),
            "curated_set": catalog.label(con, "curated set", set_id) if set_id else None,
            "split": None if set_id else spec.split,
            "predicate": row["predicate"] if set_id else None,
            "scoring_run_id": row["scoring_run_id"] if set_id else None,
            "rule": rule,
        }
    if train.height == 0:
        source = (
            f"curated set {spec.curated_set!r}" if spec.curated_set else f"split {spec.split!r}"
        )
        raise InvalidArgument(f"no training pairs selected: the {source} is empty")
    if val is not None and val.height == 0:
        val = None
    return TrainingData(
        train=train,
        val=val,
        dataset_id=dataset_id,
        curated_set_id=set_id,
        rule=rule,
        augment=augment,
        lineage=lineage | {"validation_split": spec.val_split if val is not None else None},
    )


def _tensor(frame: pl.DataFrame, col: str) -> torch.Tensor:
    return torch.from_numpy(frame[col].cast(pl.Float32).to_numpy().copy())


def embed_pairs(warehouse: str | None, encoder, frame: pl.DataFrame) -> EmbedPairs:
    """Cached (or freshly computed and cached) embeddings of a frame's prompts and responses."""
    ids = pl.concat([frame["prompt_id"], frame["chosen_id"], frame["rejected_id"]]).unique()
    ensure_embeddings(warehouse, encoder, ids)
    index, emb = cached_embeddings(warehouse, encoder.encoder_id, ids)
    return EmbedPairs(
        emb[embedding_rows(index, frame["prompt_id"])],
        emb[embedding_rows(index, frame["chosen_id"])],
        emb[embedding_rows(index, frame["rejected_id"])],
        _tensor(frame, "label"),
        _tensor(frame, "weight"),
    )


def state_pairs(warehouse: str | None, scorer, frame: pl.DataFrame) -> StatePairs:
    """Cached (or freshly computed and cached) token states of a frame's texts, as rows."""
    ids = pl.concat([frame["prompt_id"], frame["chosen_id"], frame["rejected_id"]]).unique()
    ensure_token_states(warehouse, scorer, ids)
    index, states = cached_token_states(warehouse, scorer, ids)
    return StatePairs(
        states,
        embedding_rows(index, frame["prompt_id"]),
        embedding_rows(index, frame["chosen_id"]),
        embedding_rows(index, frame["rejected_id"]),
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


def fit(warehouse: str | None, spec: ModelSpec, data: TrainingData) -> TrainResult:
    """Train the embed-head (on cached embeddings), the late-interaction head (on cached token
    states) or fine-tune a joint HF model."""
    config = spec.config
    device = str(pick_device(config.device))
    if spec.backend == "embed-head":
        from rmcore.models.embed_head import HeadConfig, RewardHead

        encoder = load_encoder(spec.base_model, device)
        train = embed_pairs(warehouse, encoder, data.train)
        val = embed_pairs(warehouse, encoder, data.val) if data.val is not None else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            head = RewardHead(
                HeadConfig(dim=encoder.dim, hidden=spec.head_hidden, encoder_id=encoder.encoder_id)
            )
        return train_embed_head(head, train, val, config)
    if spec.backend == "late-interaction":
        from rmcore.models.late_interaction import LateInteractionRewardModel, new_head

        encoder = load_encoder(spec.base_model, device)
        scorer = LateInteractionRewardModel(
            encoder, new_head(encoder, seed=config.seed, hidden=spec.head_hidden)
        )
        train = state_pairs(warehouse, scorer, data.train)
        val = state_pairs(warehouse, scorer, data.val) if data.val is not None else None
        return train_late_interaction(scorer.head, train, val, config)
    from rmcore.models.joint import JointRewardModel

    model = JointRewardModel.load(spec.base_model, device=device)
    val = text_pairs(data.val) if data.val is not None else None
    return train_joint(model, text_pairs(data.train), val, config)


def model_path(warehouse: str | None, name: str, models_dir: str | None) -> Path:
    """Where model `name` is saved: `models_dir/name`, by default next to the warehouse under
    `models/`; `name` must be a valid name (`rmcore.names`) and the folder, resolved, must be a
    direct child of the resolved root."""
    check_name(name, "model")
    root = Path(models_dir) if models_dir else warehouse_path(warehouse).parent / "models"
    return inside(root, name, "model")


def check_output(
    warehouse: str | None, name: str, models_dir: str | None, *, overwrite: bool = False
) -> Path:
    """The model folder, after refusing one that already holds anything (another model, or a
    folder that is not ours) unless `overwrite`; a file there is always refused."""
    path = model_path(warehouse, name, models_dir)
    if path.exists() and not path.is_dir():
        raise OutputExists(f"{path} exists and is not a folder; remove it or pick another name")
    if not overwrite and path.is_dir() and any(path.iterdir()):
        raise OutputExists(
            f"model folder {path} already exists (trained with other inputs, or not a model);"
            " pass --overwrite to replace it, or pick another name"
        )
    return path


def fit_reward_model(
    warehouse: str | None,
    spec: ModelSpec,
    *,
    name: str,
    models_dir: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Load the data, train, save in Hugging Face format with a model card; returns the
    path, the weights' revision, the metrics and the data's lineage (no model object). The
    output folder is checked before training (`check_output`) and published atomically."""
    path = check_output(warehouse, name, models_dir, overwrite=overwrite)
    data = load_training_data(warehouse, spec, texts=spec.backend == "joint")
    result = fit(warehouse, spec, data)
    lineage = {
        "dataset_id": data.dataset_id,
        "curated_set_id": data.curated_set_id,
        "method": data.method,
    }
    card = lineage | {
        "rule": data.rule,
        "base_model": spec.base_model,
        "n_train": data.train.height,
        "name": name,
        "backend": spec.backend,
        "config_digest": spec.digest(),
        "training_data": data.lineage,
    }
    publish(path, lambda tmp: save_trained(tmp, result, card=card), replace=overwrite, kind="model")
    revision = hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(path.glob("*.safetensors")))
    ).hexdigest()[:12]
    metrics = result.metrics | {
        "seconds": result.seconds,
        "samples_per_second": result.samples_per_second,
    }
    return lineage | {
        "name": name,
        "path": str(path),
        "revision": revision,
        "metrics": metrics,
        "n_train": data.train.height,
    }


def register_model(
    warehouse: str | None, spec: ModelSpec, fitted: dict, *, flow_run_id: str | None
) -> dict:
    """Record a fitted model in `models` (replacing an older model of the same name)."""
    config = asdict(spec.config) | {"digest": spec.digest()}
    with transaction(warehouse) as con:
        models.register(
            con,
            name=fitted["name"],
            path=fitted["path"],
            backend=spec.backend,
            revision=fitted["revision"],
            curated_set_id=fitted["curated_set_id"],
            dataset_id=fitted["dataset_id"],
            method=fitted["method"],
            config=config,
            metrics=fitted["metrics"],
            flow_run_id=flow_run_id,
        )
    return {
        "name": fitted["name"],
        "path": fitted["path"],
        "metrics": fitted["metrics"],
        "config": config,
    }
