"""Train the embedding-head reward model r(x, y) = head(e(x), e(y)) on precomputed embeddings.

The encoder is frozen, so the whole data set is a few (N, D) tensors that live on the device;
a batch is an index into them and chosen/rejected go through the head in one call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rmcore.config import TrainConfig
from rmcore.training.config import EmbedPairs, TrainResult
from rmcore.training.loop import PairForward, fit_head


def _pair_forward(head: nn.Module, pairs: EmbedPairs, device: torch.device) -> PairForward:
    e_x, e_w, e_l = (t.to(device, torch.float32) for t in (pairs.e_x, pairs.e_w, pairs.e_l))

    def forward(idx: Tensor) -> tuple[Tensor, Tensor]:
        idx = idx.to(device)
        x = e_x[idx]  # (B, D)
        rewards = head(torch.cat([x, x]), torch.cat([e_w[idx], e_l[idx]]))  # (2B,)
        return rewards.chunk(2)

    return forward


def train_embed_head(
    head: nn.Module, train: EmbedPairs, val: EmbedPairs | None, config: TrainConfig
) -> TrainResult:
    """Fit ``head`` (a RewardHead: forward(e_x (N, D), e_y (N, D)) -> (N,)) in place."""
    device = config.resolve_device()
    return fit_head(
        head, lambda pairs: _pair_forward(head, pairs, device), train, val, config, "embed-head"
    )
