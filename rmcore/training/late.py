"""Train the late-interaction head r(x, y) = head(states(x), states(y)) on cached token states.

The encoder is frozen, so the data set is one table of per-text token states plus three row
indices per pair; a batch gathers its texts' states padded to the batch's longest text, and
chosen and rejected go through the head in one call.
"""

from __future__ import annotations

from torch import Tensor, cat

from rmcore.config import TrainConfig
from rmcore.models.late_interaction import LateInteractionHead
from rmcore.training.config import StatePairs, TrainResult
from rmcore.training.loop import PairForward, fit_head


def _pair_forward(head: LateInteractionHead, pairs: StatePairs) -> PairForward:
    def forward(idx: Tensor) -> tuple[Tensor, Tensor]:
        x = pairs.x[idx]
        rewards = head(pairs.states, cat([x, x]), cat([pairs.w[idx], pairs.l[idx]]))  # (2B,)
        return rewards.chunk(2)

    return forward


def train_late_interaction(
    head: LateInteractionHead, train: StatePairs, val: StatePairs | None, config: TrainConfig
) -> TrainResult:
    """Fit ``head`` in place on pairs of cached token states."""
    return fit_head(
        head, lambda pairs: _pair_forward(head, pairs), train, val, config, "late-interaction"
    )
