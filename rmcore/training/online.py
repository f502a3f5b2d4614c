"""The online variant of prioritized training: the model being trained estimates the free gaps.

Cross-fitting needs k reference models before the real one trains. The online variant
needs none: after a warm-up of uniform weights, the model in training re-scores every
training pair under its own prompt and K - 1 sampled training prompts, the same solver as a
scoring run turns those gaps into free gaps, and `prompt_free_priority` turns them into the
weights of the next epochs. The price is that the scoring model has trained on the pairs it
scores (less so the earlier it scores them), which is what cross-fitting avoids.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from rmcore.config import OnlineConfig
from rmcore.curation.rules import prompt_free_priority
from rmcore.decomposition.solver import solve_free_gap
from rmcore.decomposition.weights import effective_sample_size
from rmcore.training.config import RowPairs


@dataclass(frozen=True)
class OnlinePrompts:
    """What each training pair is re-scored under: K prompts as rows of the training table
    (column 0 the pair's own; padding repeats it and is masked out), their self-normalized
    importance weights (0 on padding), and the schedule and rule parameters."""

    config: OnlineConfig
    prompt_rows: Tensor  # (N, K) int64 rows of the pairs' table
    valid: Tensor  # (N, K) bool
    importance: Tensor  # (N, K) float64, each row sums to 1 over its valid prompts
    temperature: float  # of the embedding weights, chosen for `config.ess_band`

    def expand(self, pairs: RowPairs) -> RowPairs:
        """Pair i under prompt k as pair i * K + k (the table is shared, only rows repeat)."""
        n, k = self.prompt_rows.shape
        if len(pairs) != n:
            raise ValueError(f"{len(pairs)} pairs but prompts for {n}")
        ones = torch.ones(n * k)
        return replace(
            pairs,
            x=self.prompt_rows.reshape(-1),
            w=pairs.w.repeat_interleave(k),
            l=pairs.l.repeat_interleave(k),
            label=ones,
            weight=ones,
        )

    def weights(self, flat_gaps: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Expanded pairs' gaps (N * K,) -> priority weights (N,) and what to record."""
        n, k = self.prompt_rows.shape
        gaps = flat_gaps.detach().to("cpu", torch.float64).view(n, k)
        gaps = torch.where(self.valid, gaps, torch.zeros_like(gaps))
        free = solve_free_gap(gaps, self.importance).free.numpy()  # (N,)
        a = prompt_free_priority(free, **self.config.params)
        return torch.from_numpy(a).float(), {
            "online_free_p50": float(np.median(free)),
            "online_free_negative": float((free < 0).mean()),
            "online_weight_max": float(a.max()),
            "online_ess_mean": float(effective_sample_size(self.importance).mean()),
            "online_temperature": self.temperature,
        }
