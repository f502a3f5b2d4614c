"""Training options, the two pair containers and the result record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

LEARNING_RATES: dict[str, float] = {"embed-head": 1e-3, "joint": 2e-5}  # backend -> default lr
BACKENDS = tuple(LEARNING_RATES)


def default_lr(backend: str) -> float:
    """The learning rate a backend trains with unless told otherwise: a small head on frozen
    embeddings takes 1e-3, fine-tuning a whole transformer 2e-5."""
    if backend not in LEARNING_RATES:
        raise ValueError(f"backend must be embed-head or joint, got {backend!r}")
    return LEARNING_RATES[backend]


@dataclass(kw_only=True)
class TrainConfig:
    """Options shared by both trainers, and the single source of the train defaults; ``lr``
    defaults to the embedding head's (``default_lr(backend)`` gives each backend's).

    ``max_steps`` (optimizer steps), when set, overrides ``epochs`` as in transformers' Trainer.
    ``bf16=None`` means on for CUDA only (CPU bf16 matmuls are slow on most hosts).
    ``early_stopping_patience`` counts epochs without a better validation loss; the best
    weights are restored at the end. ``max_length`` (joint model only) lowers the model's own
    truncation length, for training and for later scoring alike; None keeps it.
    ``device=None``: the joint model's device, else CUDA when present.
    """

    epochs: int = 10
    lr: float = LEARNING_RATES["embed-head"]
    batch_size: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scheduler: Literal["linear", "cosine"] = "linear"
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    margin: float = 0.0
    center_coef: float = 0.0
    seed: int = 0
    max_steps: int | None = None
    early_stopping_patience: int | None = None
    bf16: bool | None = None
    gradient_checkpointing: bool = False
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    max_length: int | None = None
    eval_batch_size: int | None = None
    device: str | None = None
    progress: bool = False  # tqdm bars; the CLI turns them on

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.grad_accum_steps < 1 or self.epochs < 1:
            raise ValueError("batch_size, grad_accum_steps and epochs must be >= 1")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    def resolve_device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def use_bf16(self, device: torch.device) -> bool:
        return device.type == "cuda" if self.bf16 is None else self.bf16


def _check_labels_weights(label: Tensor, weight: Tensor, n: int) -> None:
    """Fail at construction, not three epochs in: shapes, p in [0, 1], a >= 0."""
    if label.shape != (n,) or weight.shape != (n,):
        raise ValueError(f"label and weight must have shape ({n},)")
    if ((label < 0) | (label > 1)).any():
        raise ValueError("label must lie in [0, 1]")
    if (weight < 0).any() or not torch.isfinite(weight).all():
        raise ValueError("weight must be finite and >= 0")


@dataclass
class EmbedPairs:
    """Precomputed embeddings of prompt, chosen and rejected response: (N, D) each."""

    e_x: Tensor
    e_w: Tensor
    e_l: Tensor
    label: Tensor  # (N,) P(chosen preferred)
    weight: Tensor  # (N,) priority a_i

    def __post_init__(self) -> None:
        n = self.e_x.shape[0]
        if self.e_w.shape != self.e_x.shape or self.e_l.shape != self.e_x.shape:
            raise ValueError("e_x, e_w and e_l must have the same shape (N, D)")
        _check_labels_weights(self.label, self.weight, n)

    def __len__(self) -> int:
        return self.e_x.shape[0]


@dataclass
class TextPairs:
    """Raw text pairs for the joint model; encoded by the model's own ``encode``."""

    prompts: Sequence[str]
    chosen: Sequence[str]
    rejected: Sequence[str]
    label: Tensor  # (N,) P(chosen preferred)
    weight: Tensor  # (N,) priority a_i

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if len(self.chosen) != n or len(self.rejected) != n:
            raise ValueError("prompts, chosen and rejected must have the same length")
        _check_labels_weights(self.label, self.weight, n)

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class TrainResult:
    """What a training run hands back; ``history`` holds one dict per epoch."""

    model: Any  # the trained RewardHead or JointRewardModel (same object that was passed in)
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the whole call, encoding and validation included
    samples_per_second: float = 0.0  # training pairs per second of optimizer-loop time
