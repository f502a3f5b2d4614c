"""The weighted soft-label Bradley-Terry loss (METHOD.md, "Prioritized reward learning").

Conventions
- ``gap = r(x, y_w) - r(x, y_l)``: reward of the response stored as *chosen* minus the *rejected* one.
- ``label`` p is the probability that the chosen response is preferred: 1 for a hard preference,
  0.5 for a tie (a prior swap of chosen/rejected is the same as p -> 1 - p).
- ``margin`` m is subtracted from the gap before the sigmoid (TRL / Llama-2 convention): with p = 1
  the model must beat the rejected response by at least m before the loss flattens out. With
  p = 0.5 the optimum moves to gap = m, so keep m = 0 for ties.
- ``weight`` a_i >= 0 is the curation priority; the loss is a weighted *mean*, so only relative
  weights matter and a zero weight removes a pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_bt_nll(gap: Tensor, label: Tensor, margin: Tensor | float = 0.0) -> Tensor:
    """Per-pair cross-entropy -[p log s + (1-p) log(1-s)], s = sigmoid(gap - m), via logsigmoid.

    log(1 - sigmoid(z)) = logsigmoid(-z) keeps both terms finite for large |z|.
    """
    z = gap - margin  # (N,)
    return -(label * F.logsigmoid(z) + (1.0 - label) * F.logsigmoid(-z))  # (N,)


def bt_loss(
    gap: Tensor,
    label: Tensor,
    weight: Tensor,
    *,
    margin: Tensor | float = 0.0,
    rewards: Tensor | None = None,
    center_coef: float = 0.0,
    weight_total: Tensor | float | None = None,
    count_total: int | None = None,
) -> Tensor:
    """sum_i a_i CE_i / sum_i a_i  +  center_coef * mean(rewards**2).

    gap, label, weight: (N,); rewards: (2N,) chosen and rejected rewards concatenated.
    ``weight_total`` / ``count_total`` default to this batch's sum of weights / number of
    rewards. Gradient accumulation passes the totals of the whole optimizer step instead, so that
    the micro-batch losses add up exactly to the loss of the full batch.
    """
    nll = soft_bt_nll(gap, label, margin)  # (N,)
    total = weight.sum() if weight_total is None else torch.as_tensor(weight_total)
    # An all-zero-weight batch contributes nothing instead of 0/0.
    loss = (weight * nll).sum() / total.to(nll).clamp_min(torch.finfo(nll.dtype).tiny)
    if center_coef and rewards is not None:
        count = rewards.numel() if count_total is None else count_total
        loss = loss + center_coef * rewards.pow(2).sum() / count
    return loss


def pair_accuracy(gap: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """(number correct, number counted) on hard labels; ties (p = 0.5) are left out."""
    decided = label != 0.5  # (N,)
    correct = ((gap > 0) == (label > 0.5)) & decided  # (N,)
    return correct.sum(), decided.sum()
