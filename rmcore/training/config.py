"""The pair containers of the three trainers and the result record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rmcore.config import TrainConfig


def _check_labels_weights(label: Tensor, weight: Tensor, n: int) -> None:
    """Fail at construction, not three epochs in: shapes, p in [0, 1], a >= 0."""
    if label.shape != (n,) or weight.shape != (n,):
        raise ValueError(f"label and weight must have shape ({n},)")
    if ((label < 0) | (label > 1)).any():
        raise ValueError("label must lie in [0, 1]")
    if (weight < 0).any() or not torch.isfinite(weight).all():
        raise ValueError("weight must be finite and >= 0")


@dataclass
class RowPairs:
    """Rows of prompt, chosen and rejected response (N,) each into one per-text table: the
    head backends' input. The table is an (U, D) embedding matrix (embed-head) or the
    `rmcore.models.token_states.TokenStates` of the texts (late-interaction); rows, not
    copies, so re-scoring a pair under another prompt is just another prompt row."""

    table: Any
    x: Tensor
    w: Tensor
    l: Tensor  # noqa: E741 (the METHOD.md name of the rejected response)
    label: Tensor  # (N,) P(chosen preferred)
    weight: Tensor  # (N,) priority a_i

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.x.shape != (n,) or self.w.shape != (n,) or self.l.shape != (n,):
            raise ValueError("x, w and l must be row vectors of the same shape (N,)")
        _check_labels_weights(self.label, self.weight, n)

    def __len__(self) -> int:
        return self.x.shape[0]


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
