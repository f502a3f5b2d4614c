"""Embed-head reward model: a small MLP on frozen sentence embeddings of prompt and response.

This only approximates a joint reward model. Prompt and response are embedded
separately, so the head sees their interaction only through the pooled vectors
(concatenation and elementwise product); it cannot attend from response tokens to
prompt tokens. What it buys is cost: each distinct text is embedded once and cached,
so scoring a response under 16 extra prompts costs 16 head evaluations, not 16
transformer passes. Use it for curation at scale; use `JointRewardModel` where accuracy
matters more than throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rmcore.models.encoder import BUNDLED_ID, BUNDLED_MAX_LENGTH, SentenceEncoder, load_encoder
from rmcore.models.head import HeadScorer, SavedHead

BACKEND = "embed-head"


@dataclass
class HeadConfig:
    """Shape of the head and the encoder whose embedding space it was trained in."""

    dim: int = 384
    hidden: int = 256
    dropout: float = 0.1
    encoder_id: str = BUNDLED_ID


class RewardHead(SavedHead):
    """r(x, y) = MLP([e_x, e_y, e_x * e_y]); the product term carries prompt-response match."""

    backend = BACKEND
    config_class = HeadConfig

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.mlp = nn.Sequential(
            nn.Linear(3 * config.dim, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 1),
        )

    def forward(self, e_x: torch.Tensor, e_y: torch.Tensor) -> torch.Tensor:
        """e_x, e_y: (N, D) -> (N,) rewards."""
        features = torch.cat([e_x, e_y, e_x * e_y], dim=-1)  # (N, 3D)
        return self.mlp(features).squeeze(-1)

    def describe_input(self) -> str:
        """How a pair becomes this head's input, for its model card."""
        return (
            f"prompt and response are embedded separately by the frozen encoder"
            f" `{self.config.encoder_id}` (mean-pooled token states, L2-normalised, truncated"
            f" at the encoder's limit: {BUNDLED_MAX_LENGTH} tokens for the bundled MiniLM); the"
            f" reward is MLP([e_x, e_y, e_x * e_y]) on the two {self.config.dim}-d vectors."
        )


class EmbedHeadRewardModel(HeadScorer):
    """RewardScorer: frozen `SentenceEncoder` + trainable `RewardHead` (identity and loading
    in `HeadScorer`; an unsaved head is `"bundled-head:<weights hash>"`)."""

    head_class = RewardHead
    untrained_prefix = "bundled-head"
    default_head_batch = 8192

    @classmethod
    def from_encoder(
        cls,
        encoder: SentenceEncoder | None = None,
        *,
        hidden: int = 256,
        dropout: float = 0.1,
        seed: int = 0,
    ) -> EmbedHeadRewardModel:
        """A freshly initialised (seeded, so reproducible) head on `encoder` (default: bundled)."""
        encoder = encoder or load_encoder()
        config = HeadConfig(
            dim=encoder.dim, hidden=hidden, dropout=dropout, encoder_id=encoder.encoder_id
        )
        with torch.random.fork_rng(devices=[]):  # seed the init without touching global RNG
            torch.manual_seed(seed)
            head = RewardHead(config)
        return cls(encoder, head.eval())

    def score_texts(
        self,
        texts: list[str],
        prompt_idx: torch.Tensor,
        response_idx: torch.Tensor,
        *,
        progress: bool,
    ) -> torch.Tensor:
        """Each distinct text embedded exactly once, then the head over the pairs."""
        emb = self.encoder.encode(
            texts, batch_size=self.encode_batch_size, progress=progress
        )  # (U, D)
        return self.score_embeddings(emb[prompt_idx], emb[response_idx])

    def score_embeddings(self, e_x: torch.Tensor, e_y: torch.Tensor) -> torch.Tensor:
        """(N, D), (N, D) -> (N,) float32 on CPU: the path for cached embeddings."""
        was_training = self.head.training
        self.head.eval()  # dropout off while scoring, even in the middle of training
        device = next(self.head.parameters()).device
        out = []
        with torch.inference_mode():
            for x, y in zip(
                e_x.split(self.head_batch_size), e_y.split(self.head_batch_size), strict=True
            ):
                out.append(self.head(x.to(device, torch.float32), y.to(device, torch.float32)))
                self._head_forward += 1
        self.head.train(was_training)
        return torch.cat(out).float().cpu() if out else torch.empty(0)
