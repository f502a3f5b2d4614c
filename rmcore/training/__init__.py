"""Weighted soft-label Bradley-Terry training for rmcurate's three reward models.

    config = TrainConfig(epochs=3, lr=2e-5, batch_size=16)
    result = train_joint(model, train_pairs, val_pairs, config)   # or train_embed_head / train_late_interaction
    save_trained("runs/rm-1", result, card={"curated_set": "...", "rule": "..."})

The loss is METHOD.md's prioritized BT loss sum_i a_i CE_i / sum_i a_i (see ``bt_loss``).
This package is the one entry point (``from rmcore.training import ...``); its modules hold one
idea each: loss, config (options and their defaults, ``default_lr`` per backend), spec (what
decides a trained model), loop, the online re-weighting, the three trainers and saving.
"""

from rmcore.config import BACKENDS, BUNDLED_BASE, LEARNING_RATES, ModelSpec, TrainConfig, default_lr
from rmcore.training.config import RowPairs, TextPairs, TrainResult
from rmcore.training.embed import train_embed_head
from rmcore.training.joint import train_joint
from rmcore.training.late import train_late_interaction
from rmcore.training.loss import bt_loss, pair_accuracy, soft_bt_nll
from rmcore.training.online import OnlinePrompts
from rmcore.training.save import save_trained

__all__ = [
    "BACKENDS",
    "BUNDLED_BASE",
    "LEARNING_RATES",
    "ModelSpec",
    "OnlinePrompts",
    "RowPairs",
    "TextPairs",
    "TrainConfig",
    "TrainResult",
    "bt_loss",
    "default_lr",
    "pair_accuracy",
    "save_trained",
    "soft_bt_nll",
    "train_embed_head",
    "train_joint",
    "train_late_interaction",
]
