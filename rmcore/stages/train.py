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

from rmcore.config import ModelSpec, OnlineConfig, ScoringConfig
from rmcore.curation.methods import method_name
from rmcore.decomposition.scoring import embedding_log_weights, embedding_rows, plan_prompts
from rmcore.decomposition.weights import normalize_log_weights, temperature_for_ess
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
    OnlinePrompts,
    RowPairs,
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
    online: bool
    lineage: dict  # for the model card: dataset and set as name@version, scoring run, filter

    @property
    def method(self) -> str:
        return method_name(self.rule, self.augment, self.online)


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
            "online": asdict(spec.online) if spec.online else None,
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
        online=spec.online is not None,
        lineage=lineage | {"validation_split": spec.val_split if val is not None else None},
    )


def _tensor(frame: pl.DataFrame, col: str) -> torch.Tensor:
    return torch.from_numpy(frame[col].cast(pl.Float32).to_numpy().copy())


def text_ids(data: TrainingData) -> pl.Series:
    """Every text the head backends read: the pairs' prompts and responses (the online
    variant's prompt pool is the training pairs' own prompts)."""
    frames = [data.train] + ([data.val] if data.val is not None else [])
    return pl.concat(
        [f[c] for f in frames for c in ("prompt_id", "chosen_id", "rejected_id")]
    ).unique()


def row_pairs(index: dict[str, int], table, frame: pl.DataFrame) -> RowPairs:
    """A frame's pairs as rows of the per-text table (embeddings or token states)."""
    return RowPairs(
        table,
        embedding_rows(index, frame["prompt_id"]),
        embedding_rows(index, frame["chosen_id"]),
        embedding_rows(index, frame["rejected_id"]),
        _tensor(frame, "label"),
        _tensor(frame, "weight"),
    )


def online_prompts(
    config: OnlineConfig,
    frame: pl.DataFrame,
    pool: pl.Series,
    index: dict[str, int],
    unit: torch.Tensor,
) -> OnlinePrompts:
    """The prompts each training pair is re-scored under, sampled as a scoring run samples
    them (`plan_prompts`) from `pool`, with embedding importance weights whose
    temperature puts the mean ESS mid `config.ess_band`; `unit` holds the texts' unit
    embeddings at `index`'s rows."""
    plan = plan_prompts(
        frame.select("prompt_id", "chosen_id", "rejected_id"),
        pool,
        ScoringConfig(prompts_per_pair=config.prompts_per_pair, seed=config.seed),
    )
    n, k = plan.height, config.prompts_per_pair + 1
    valid = torch.from_numpy(plan["prompt_mask"].explode().to_numpy().copy()).view(n, k)
    cos = embedding_log_weights(plan, index, unit, 1.0)  # (N, K)
    temperature = temperature_for_ess(cos, valid, config.ess_band)
    return OnlinePrompts(
        config=config,
        prompt_rows=embedding_rows(index, plan["prompt_ids"].explode()).view(n, k),
        valid=valid,
        importance=normalize_log_weights(cos / temperature, valid, 1.0),
        temperature=temperature,
    )


def online_inputs(
    spec: ModelSpec, data: TrainingData, index: dict[str, int], unit: torch.Tensor | None
) -> OnlinePrompts | None:
    """The online variant's prompts when `spec` asks for it. The pool is the training pairs'
    own prompts, so no validation or test prompt is ever scored against a training pair."""
    if spec.online is None:
        return None
    pool = data.train["prompt_id"].unique()
    return online_prompts(spec.online, data.train, pool, index, unit)


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
    states), either one re-weighted online, or fine-tune a joint HF model."""
    config = spec.config
    device = str(pick_device(config.device))
    if spec.backend == "joint":
        from rmcore.models.joint import JointRewardModel

        model = JointRewardModel.load(spec.base_model, device=device)
        val = text_pairs(data.val) if data.val is not None else None
        return train_joint(model, text_pairs(data.train), val, config)
    encoder = load_encoder(spec.base_model, device)
    ids = text_ids(data)
    if spec.backend == "embed-head":
        from rmcore.models.embed_head import HeadConfig, RewardHead

        ensure_embeddings(warehouse, encoder, ids)
        index, table = cached_embeddings(warehouse, encoder.encoder_id, ids)
        unit = table
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            head = RewardHead(
                HeadConfig(dim=encoder.dim, hidden=spec.head_hidden, encoder_id=encoder.encoder_id)
            )
        train = train_embed_head
    else:
        from rmcore.models.late_interaction import LateInteractionRewardModel, new_head

        scorer = LateInteractionRewardModel(
            encoder, new_head(encoder, seed=config.seed, hidden=spec.head_hidden)
        )
        ensure_token_states(warehouse, scorer, ids)
        index, table = cached_token_states(warehouse, scorer, ids)
        unit = table.mean_pooled() if spec.online else None
        head, train = scorer.head, train_late_interaction
    return train(
        head,
        row_pairs(index, table, data.train),
        row_pairs(index, table, data.val) if data.val is not None else None,
        config,
        online_inputs(spec, data, index, unit),
    )


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
