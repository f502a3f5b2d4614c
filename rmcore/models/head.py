"""What the two reward heads on a frozen encoder share: saving, loading and identity.

`embed-head` and `late-interaction` both train a small head on a frozen encoder's per-text
outputs. A checkpoint is the head alone: `model.safetensors` (no pickle) and `config.json`
(the head's config dataclass plus `rmcurate_backend`, which names the encoder by id); the
scorer around it reloads that encoder and checks it is the one the head was trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Self

import polars as pl
import torch
from safetensors.torch import load_file, save, save_file
from torch import nn

from rmcore.models.base import short_hash
from rmcore.models.encoder import SentenceEncoder, encoder_from_id

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def dedupe(texts: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """Distinct texts (first-seen order) and the (N,) index of each input among them."""
    s = pl.Series("t", list(texts), dtype=pl.String)
    uniq = s.unique(maintain_order=True)
    inverse = pl.DataFrame({"t": s}).join(
        uniq.to_frame().with_row_index("i"), on="t", how="left", maintain_order="left"
    )["i"]
    return uniq.to_list(), torch.from_numpy(inverse.to_numpy().astype("int64"))


class SavedHead(nn.Module):
    """A head with a dataclass `config` (with `dim` and `encoder_id`), saved as safetensors."""

    backend: ClassVar[str]
    config_class: ClassVar[type]
    config: Any

    def _cpu_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}

    def weights_sha256(self) -> str:
        """Content hash of the weights, independent of device and training mode."""
        return hashlib.sha256(save(self._cpu_state())).hexdigest()

    def save_pretrained(self, path: str | Path) -> None:
        """safetensors weights + config.json naming the backend and the encoder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self._cpu_state(), path / WEIGHTS)
        config = {**asdict(self.config), "rmcurate_backend": self.backend}
        (path / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Self:
        """Load a head saved by `save_pretrained`, in eval mode."""
        path = Path(path)
        config = json.loads((path / CONFIG).read_text())
        if config.pop("rmcurate_backend", None) != cls.backend:
            raise ValueError(f"{path} is not a {cls.backend} checkpoint")
        head = cls(cls.config_class(**config))
        head.load_state_dict(load_file(path / WEIGHTS))
        return head.eval()


class HeadScorer:
    """The RewardScorer side of a `SavedHead`: the frozen encoder, identity and counters.

    `model_id` is the checkpoint folder, or `"<untrained_prefix>:<weights hash>"` for a head
    that was never saved; `revision` is a short hash of the current head weights, read on
    every access, so a retrained head never reuses stale cached scores. `n_forward` counts
    encoder batches plus head batches.
    """

    head_class: ClassVar[type[SavedHead]]
    untrained_prefix: ClassVar[str]
    default_head_batch: ClassVar[int]  # rows per head call when scoring

    def __init__(
        self,
        encoder: SentenceEncoder,
        head: SavedHead,
        *,
        model_id: str | None = None,
        head_batch_size: int | None = None,
        encode_batch_size: int = 64,
    ) -> None:
        if head.config.encoder_id != encoder.encoder_id or head.config.dim != encoder.dim:
            raise ValueError(
                f"head was trained on {head.config.encoder_id} (dim {head.config.dim}), "
                f"not {encoder.encoder_id} (dim {encoder.dim})"
            )
        self.encoder = encoder
        self.head = head.to(encoder.device)
        self.model_id = model_id or f"{self.untrained_prefix}:{self.revision}"
        self.head_batch_size = head_batch_size or self.default_head_batch
        self.encode_batch_size = encode_batch_size
        self._head_forward = 0

    @property
    def backend(self) -> str:
        return self.head_class.backend

    @property
    def revision(self) -> str:
        return short_hash(self.head.weights_sha256())

    @property
    def n_forward(self) -> int:
        return self.encoder.n_forward + self._head_forward

    def save_pretrained(self, path: str | Path) -> None:
        self.head.save_pretrained(path)

    def describe_input(self) -> str:
        return self.head.describe_input()

    def score(
        self, prompts: Sequence[str], responses: Sequence[str], *, progress: bool = False
    ) -> torch.Tensor:
        """(N,) rewards; the distinct texts of the call are found once (`score_texts`)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        n = len(prompts)
        if n == 0:
            return torch.empty(0)
        texts, inverse = dedupe([*prompts, *responses])  # inverse: (2N,)
        return self.score_texts(texts, inverse[:n], inverse[n:], progress=progress)

    def score_texts(
        self,
        texts: list[str],
        prompt_idx: torch.Tensor,
        response_idx: torch.Tensor,
        *,
        progress: bool,
    ) -> torch.Tensor:
        """(N,) rewards of pairs given as indices into distinct `texts`."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        encoder: SentenceEncoder | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> Self:
        """Load a saved head; its encoder is reloaded from the stored `encoder_id` unless given."""
        head = cls.head_class.from_pretrained(path)
        encoder = encoder or encoder_from_id(head.config.encoder_id, device=device)
        return cls(encoder, head, model_id=str(Path(path).resolve()))
