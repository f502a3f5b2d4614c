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
from rmcore.models.late_interaction import BACKEND as LATE_INTERACTION
from rmcore.models.late_interaction import LateInteractionRewardModel

UNTRAINED_HEAD = "bundled-head"
HEAD_BACKENDS = {EMBED_HEAD: EmbedHeadRewardModel, LATE_INTERACTION: LateInteractionRewardModel}


def detect_backend(name_or_path: str | Path) -> str:
    """ "embed-head" or "late-interaction" for our head checkpoints (and "embed-head" for the
    untrained one), else "joint"."""
    if str(name_or_path) == UNTRAINED_HEAD:
        return EMBED_HEAD
    config = Path(name_or_path) / "config.json"
    if config.is_file():
        backend = json.loads(config.read_text()).get("rmcurate_backend")
        if backend in HEAD_BACKENDS:
            return backend
    return "joint"


def load_scorer(
    name_or_path: str | Path,
    *,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
) -> RewardScorer:
    """`"bundled-head"` (a seeded random head on the bundled encoder: a smoke-test
    reference), a head folder (embed-head or late-interaction), or any sequence-classifier
    folder / hub id."""
    if str(name_or_path) == UNTRAINED_HEAD:
        return EmbedHeadRewardModel.from_encoder(load_encoder(device=device))
    backend = detect_backend(name_or_path)
    if backend in HEAD_BACKENDS:
        return HEAD_BACKENDS[backend].from_pretrained(name_or_path, device=device)
    return JointRewardModel.load(name_or_path, device=device, trust_remote_code=trust_remote_code)
