"""Late-interaction reward model: a small cross-attention head over cached token states.

Between the two other backends: `embed-head` pools each text to one vector before the
head sees it, so it cannot read which part of the prompt matters to which part of the
response; `joint` reads both together but runs a whole transformer per (prompt, response)
combination. Here the frozen bundled encoder runs once per distinct text
(`rmcore.models.token_states` caches its token states), and a trainable head does the
interaction at token level:

    per text (token-wise):  Z = LayerNorm(H W_role)            prompt and response each own W
                            K, V = Z_x W_k, Z_x W_v;  Q = Z_y W_q
    per combination:        A = MultiHeadAttention(Q, K, V)    every response token reads
                                                               every prompt token
                            U = Z_y + A;  u = attention-pool(U) over response tokens
                            r = MLP([u, mean Z_x, mean Z_y, mean Z_x * mean Z_y,
                                     log n_x, log n_y])
The token-wise part is linear in the text's tokens and runs once per distinct text when
scoring; per combination only the attention (Ly x Lx x width) and the pooling remain, so
scoring a response under M + 1 prompts costs M + 1 cheap attentions, not M + 1 encoder
passes. `log n` is the untruncated token count: attention averages, so without it the head
could not see length, which is what format requests ("in one sentence") are about.

Input format: each text as the encoder's tokens (its own [CLS] ... [SEP]), truncated to
`max_length` (default 128) tokens, prompt and response separately, states stored as float16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rmcore.models.base import BatchBudget, map_batches
from rmcore.models.encoder import BUNDLED_ID, SentenceEncoder, load_encoder
from rmcore.models.head import HeadScorer, SavedHead
from rmcore.models.token_states import TokenStateCache, TokenStates, compute_token_states

BACKEND = "late-interaction"
MAX_LENGTH = 128  # tokens kept per text (prompt and response alike)


@dataclass
class LateInteractionConfig:
    """Shape of the head, the token length it reads and the encoder whose states it reads."""

    dim: int = 384  # encoder width
    width: int = 64  # head width
    heads: int = 4
    hidden: int = 256  # of the output MLP
    dropout: float = 0.1
    max_length: int = MAX_LENGTH
    encoder_id: str = BUNDLED_ID


class LateInteractionHead(SavedHead):
    """Cross-attention of response tokens over prompt tokens, then an MLP (module docstring).

    `prompt_tokens` / `response_tokens` are token-wise (any leading shape), so they can run
    on flat per-text states once, or on padded batch states while training; `interact`
    takes padded (B, L, .) features and masks of one batch of combinations.
    """

    backend = BACKEND
    config_class = LateInteractionConfig

    def __init__(self, config: LateInteractionConfig) -> None:
        super().__init__()
        self.config = config
        d, w = config.dim, config.width
        self.prompt_in = nn.Sequential(nn.Linear(d, w), nn.LayerNorm(w))
        self.response_in = nn.Sequential(nn.Linear(d, w), nn.LayerNorm(w))
        self.kv = nn.Linear(w, 2 * w)
        self.q = nn.Linear(w, w)
        self.pool = nn.Linear(w, 1)
        self.mlp = nn.Sequential(
            nn.Linear(4 * w + 2, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 1),
        )

    def describe_input(self) -> str:
        """How a pair becomes this head's input, for its model card."""
        return (
            f"prompt and response are read separately, each as the frozen encoder's"
            f" (`{self.config.encoder_id}`) last-layer token states of its own tokenization"
            f" ([CLS] ... [SEP]), truncated to `max_length` = {self.config.max_length} tokens and"
            f" rounded to float16; the head also reads each text's untruncated token count."
            f" Response tokens attend over prompt tokens; an MLP scores the pooled result."
        )

    def prompt_tokens(self, states: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., 3W): Z, K, V of prompt tokens."""
        z = self.prompt_in(states.float())
        return torch.cat([z, self.kv(z)], dim=-1)

    def response_tokens(self, states: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., 2W): Z, Q of response tokens."""
        z = self.response_in(states.float())
        return torch.cat([z, self.q(z)], dim=-1)

    def interact(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        x_n: torch.Tensor,
        y: torch.Tensor,
        y_mask: torch.Tensor,
        y_n: torch.Tensor,
    ) -> torch.Tensor:
        """x (B, Lx, 3W), y (B, Ly, 2W), masks (B, L), untruncated counts (B,) -> (B,)."""
        w, h = self.config.width, self.config.heads
        z_x, k, v = x.split(w, dim=-1)  # (B, Lx, W) each
        z_y, q = y.split(w, dim=-1)  # (B, Ly, W) each
        b = x.shape[0]

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, L, W) -> (B, H, L, W / H)
            return t.reshape(b, t.shape[1], h, w // h).transpose(1, 2)

        attn = F.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), attn_mask=x_mask[:, None, None, :]
        )  # (B, H, Ly, W / H)
        u = z_y + attn.transpose(1, 2).reshape(b, -1, w)  # (B, Ly, W)
        logits = self.pool(u).squeeze(-1).masked_fill(~y_mask, float("-inf"))  # (B, Ly)
        pooled = (logits.softmax(-1).unsqueeze(-1) * u).sum(1)  # (B, W)
        mean_x = _masked_mean(z_x, x_mask)  # (B, W)
        mean_y = _masked_mean(z_y, y_mask)
        lengths = torch.stack([x_n, y_n], dim=-1).float().log1p()  # (B, 2)
        features = torch.cat([pooled, mean_x, mean_y, mean_x * mean_y, lengths], dim=-1)
        return self.mlp(features).squeeze(-1)

    def forward(
        self,
        states: TokenStates,
        prompt_rows: torch.Tensor,
        response_rows: torch.Tensor,
    ) -> torch.Tensor:
        """Rewards (B,) of combinations (prompt_rows[i], response_rows[i]) of raw `states`
        rows: the training path (token-wise maps on the padded batch, gradients flow)."""
        device = next(self.parameters()).device
        x, x_mask = states.padded(prompt_rows)
        y, y_mask = states.padded(response_rows)
        return self.interact(
            self.prompt_tokens(x.to(device)),
            x_mask.to(device),
            states.n_tokens[prompt_rows].to(device),
            self.response_tokens(y.to(device)),
            y_mask.to(device),
            states.n_tokens[response_rows].to(device),
        )


def _masked_mean(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(t.dtype)  # (B, L, 1)
    return (t * m).sum(1) / m.sum(1).clamp_min(1.0)


def new_head(encoder: SentenceEncoder, *, seed: int = 0, **shape: int) -> LateInteractionHead:
    """A freshly initialised (seeded, without touching the global RNG) head for `encoder`."""
    config = LateInteractionConfig(dim=encoder.dim, encoder_id=encoder.encoder_id, **shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LateInteractionHead(config).eval()


class LateInteractionRewardModel(HeadScorer):
    """RewardScorer: frozen `SentenceEncoder` token states + trainable `LateInteractionHead`
    (identity and loading in `HeadScorer`; an unsaved head is `"late-interaction:<hash>"`).
    `score` computes states fresh; the scoring engine passes cached states to `score_states`.
    """

    head_class = LateInteractionHead
    untrained_prefix = BACKEND
    default_head_batch = 512  # combinations: padded (512, L, 3 x width) features per call

    @property
    def max_length(self) -> int:
        return self.head.config.max_length

    def states(self, texts: Sequence[str]) -> TokenStates:
        """Fresh float16 states of `texts` (what the cache would hold for them)."""
        return compute_token_states(
            self.encoder, texts, max_length=self.max_length, batch_size=self.encode_batch_size
        )

    def cache(self, root: str | Path) -> TokenStateCache:
        """The on-disk state cache of this model's encoder under `root`."""
        return TokenStateCache(
            root, self.encoder.encoder_id, max_length=self.max_length, dim=self.encoder.dim
        )

    def score_texts(
        self,
        texts: list[str],
        prompt_idx: torch.Tensor,
        response_idx: torch.Tensor,
        *,
        progress: bool,
    ) -> torch.Tensor:
        """Each distinct text through the encoder once, then the head over the pairs."""
        return self.score_states(self.states(texts), prompt_idx, response_idx, progress=progress)

    def score_states(
        self,
        states: TokenStates,
        prompt_rows: torch.Tensor,
        response_rows: torch.Tensor,
        *,
        progress: bool = False,
    ) -> torch.Tensor:
        """(N,) float32 rewards on CPU of combinations of `states` rows (cached or fresh).

        The token-wise maps run once per distinct prompt and response; the combinations are
        then batched by length (padded per batch) through the attention and the MLP."""
        if prompt_rows.numel() == 0:
            return torch.empty(0)
        was_training = self.head.training
        self.head.eval()  # dropout off while scoring, even in the middle of training
        device = next(self.head.parameters()).device
        with torch.inference_mode():
            p_uniq, p_inv = torch.unique(prompt_rows, return_inverse=True)
            r_uniq, r_inv = torch.unique(response_rows, return_inverse=True)
            xs = states.subset(p_uniq).map_tokens(lambda t: self.head.prompt_tokens(t.to(device)))
            ys = states.subset(r_uniq).map_tokens(lambda t: self.head.response_tokens(t.to(device)))

            def forward(idx: torch.Tensor) -> torch.Tensor:
                x, x_mask = xs.padded(p_inv[idx])
                y, y_mask = ys.padded(r_inv[idx])
                out = self.head.interact(
                    x,
                    x_mask.to(device),
                    xs.n_tokens[p_inv[idx]].to(device),
                    y,
                    y_mask.to(device),
                    ys.n_tokens[r_inv[idx]].to(device),
                )
                self._head_forward += 1
                return out.float().cpu()

            lengths = xs.lengths[p_inv] * ys.lengths[r_inv]  # attention cost per combination
            budget = BatchBudget(max_batch=self.head_batch_size)
            out = map_batches(lengths, forward, budget=budget, progress=progress, desc="score")
        self.head.train(was_training)
        return out

    @classmethod
    def from_encoder(
        cls, encoder: SentenceEncoder | None = None, *, seed: int = 0
    ) -> LateInteractionRewardModel:
        """A freshly initialised (seeded) head on `encoder` (default: the bundled one)."""
        encoder = encoder or load_encoder()
        return cls(encoder, new_head(encoder, seed=seed))
