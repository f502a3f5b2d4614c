"""Train the late-interaction head r(x, y) = head(states(x), states(y)) on cached token states.

The encoder is frozen, so the data set is one table of per-text token states plus three row
indices per pair; a batch gathers its texts' states padded to the batch's longest text, and
chosen and rejected go through the head in one call.
"""

from __future__ import annotations

from torch import Tensor, cat

from rmcore.config import TrainConfig
from rmcore.models.late_interaction import LateInteractionHead
from rmcore.training.config import RowPairs, TrainResult
from rmcore.training.loop import PairForward, fit_head
from rmcore.training.online import OnlinePrompts


def _pair_forward(head: LateInteractionHead, pairs: RowPairs) -> PairForward:
    def forward(idx: Tensor) -> tuple[Tensor, Tensor]:
        x = pairs.x[idx]
        rewards = head(pairs.table, cat([x, x]), cat([pairs.w[idx], pairs.l[idx]]))  # (2B,)
        return rewards.chunk(2)

    return forward


def train_late_interaction(
    head: LateInteractionHead,
    train: RowPairs,
    val: RowPairs | None,
    config: TrainConfig,
    online: OnlinePrompts | None = None,
) -> TrainResult:
    """Fit ``head`` in place on rows of a table of cached token states."""
    return fit_head(
        head,
        lambda pairs: _pair_forward(head, pairs),
        train,
        val,
        config,
        "late-interaction",
        online,
    )
