"""Train the embedding-head reward model r(x, y) = head(e(x), e(y)) on precomputed embeddings.

The encoder is frozen, so the whole data set is a few (N, D) tensors that live on the device;
a batch is an index into them and chosen/rejected go through the head in one call.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from rmcore.config import TrainConfig
from rmcore.training.config import EmbedPairs, TrainResult
from rmcore.training.loop import PairForward, evaluate, fit, seeded


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
    start = time.perf_counter()
    device = config.resolve_device()
    head.to(device)
    validate = None
    if val is not None:
        val_forward = _pair_forward(head, val, device)

        def validate() -> dict[str, float]:
            return evaluate(head, val_forward, val.label, val.weight, config, device)

    with seeded(config.seed, device):
        outcome = fit(
            head,
            _pair_forward(head, train, device),
            train.label,
            train.weight,
            config,
            device,
            validate=validate,
            desc="embed-head",
        )
    head.eval()
    return TrainResult(
        model=head,
        config=config,
        history=outcome.history,
        metrics=outcome.metrics,
        seconds=time.perf_counter() - start,
        samples_per_second=outcome.metrics["train_pairs_per_second"],
    )
