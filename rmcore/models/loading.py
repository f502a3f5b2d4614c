"""One entry point from a name on the command line to a `RewardScorer`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rmcore.models.base import RewardScorer
from rmcore.models.embed_head import BACKEND as EMBED_HEAD
from rmcore.models.embed_head import EmbedHeadRewardModel
from rmcore.models.encoder import load_encoder
from rmcore.models.joint import JointRewardModel

UNTRAINED_HEAD = "bundled-head"


def detect_backend(name_or_path: str | Path) -> str:
    """ "embed-head" for our head checkpoints (and the untrained one), else "joint"."""
    if str(name_or_path) == UNTRAINED_HEAD:
        return EMBED_HEAD
    config = Path(name_or_path) / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("rmcurate_backend") == EMBED_HEAD:
        return EMBED_HEAD
    return "joint"


def load_scorer(
    name_or_path: str | Path,
    *,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
) -> RewardScorer:
    """`"bundled-head"` (a seeded random head on the bundled encoder: a smoke-test
    reference), an embed-head folder, or any sequence-classifier folder / hub id."""
    if str(name_or_path) == UNTRAINED_HEAD:
        return EmbedHeadRewardModel.from_encoder(load_encoder(device=device))
    if detect_backend(name_or_path) == EMBED_HEAD:
        return EmbedHeadRewardModel.from_pretrained(name_or_path, device=device)
    return JointRewardModel.load(name_or_path, device=device, trust_remote_code=trust_remote_code)
