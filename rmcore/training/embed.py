"""Train the embedding-head reward model r(x, y) = head(e(x), e(y)) on precomputed embeddings.

The encoder is frozen, so the whole data set is one (U, D) table of the distinct texts'
embeddings on the device plus three row indices per pair; a batch gathers its rows and
chosen/rejected go through the head in one call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rmcore.config import TrainConfig
from rmcore.training.config import RowPairs, TrainResult
from rmcore.training.loop import PairForward, fit_head
from rmcore.training.online import OnlinePrompts


def _pair_forward(head: nn.Module, pairs: RowPairs, device: torch.device) -> PairForward:
    table = pairs.table.to(device, torch.float32)  # (U, D)
    x, w, l = (t.to(device) for t in (pairs.x, pairs.w, pairs.l))  # noqa: E741

    def forward(idx: Tensor) -> tuple[Tensor, Tensor]:
        idx = idx.to(device)
        e_x = table[x[idx]]  # (B, D)
        rewards = head(torch.cat([e_x, e_x]), table[torch.cat([w[idx], l[idx]])])  # (2B,)
        return rewards.chunk(2)

    return forward


def train_embed_head(
    head: nn.Module,
    train: RowPairs,
    val: RowPairs | None,
    config: TrainConfig,
    online: OnlinePrompts | None = None,
) -> TrainResult:
    """Fit ``head`` (a RewardHead: forward(e_x (N, D), e_y (N, D)) -> (N,)) in place on rows
    of an (U, D) embedding table."""
    device = config.resolve_device()
    return fit_head(
        head,
        lambda pairs: _pair_forward(head, pairs, device),
        train,
        val,
        config,
        "embed-head",
        online,
    )
