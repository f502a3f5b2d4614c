"""Reward-model backends.

- `base`: the `RewardScorer` protocol and what every backend shares (device, batching, ids);
- `embed_head`: `EmbedHeadRewardModel`, an MLP on cached sentence embeddings (cheap);
- `joint`: `JointRewardModel`, any sequence classifier reading prompt and response together.

Only `base` is re-exported here: `rmcore.encoder` imports `base`, and `embed_head`
imports `rmcore.encoder`, so importing `embed_head` from this file would be circular.
"""

from rmcore.models.base import RewardScorer, pick_device

__all__ = ["RewardScorer", "pick_device"]
