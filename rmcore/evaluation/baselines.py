"""Trivial baselines every ablation report shows beside the trained methods.

A curation method is only interesting if it beats what a shortcut gets for free on the same
test pairs: "the longer answer wins", "the shorter answer wins", a reward model that sees
the responses only (r(y), trained on the same training pairs), and dataset-specific rules,
e.g. on AlpacaEval "the reference answer wins" (the response a prompt's pairs share). Each
baseline gives a gap per test pair (chosen minus rejected), scored like any model.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from rmcore.training.loss import soft_bt_nll


def longer_wins(test: pl.DataFrame) -> np.ndarray:
    """+1 when the chosen response is longer (characters), -1 when shorter, 0 when equal."""
    return np.sign(test["chosen_chars"].to_numpy() - test["rejected_chars"].to_numpy()).astype(
        np.float64
    )


def shorter_wins(test: pl.DataFrame) -> np.ndarray:
    return -longer_wins(test)


def shared_response_wins(test: pl.DataFrame) -> np.ndarray | None:
    """The response that more of its prompt's pairs contain wins (AlpacaEval: the reference
    answer, which every generator of a prompt is compared with); None when no response
    appears in two pairs of one prompt (the rule does not exist for this data)."""
    sides = pl.concat(
        [
            test.select("prompt_id", pl.col("chosen_id").alias("response_id")),
            test.select("prompt_id", pl.col("rejected_id").alias("response_id")),
        ]
    )
    counts = sides.group_by("prompt_id", "response_id").len()
    if counts["len"].max() < 2:
        return None

    def count(col: str) -> np.ndarray:
        keyed = test.select("prompt_id", pl.col(col).alias("response_id"))
        joined = keyed.join(
            counts, on=["prompt_id", "response_id"], how="left", maintain_order="left"
        )
        return joined["len"].cast(pl.Int64).to_numpy()  # signed: 1 - 5 must not wrap around

    return np.sign(count("chosen_id") - count("rejected_id")).astype(np.float64)


def fit_response_only(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    label: torch.Tensor,
    *,
    hidden: int = 64,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> torch.nn.Module:
    """A response-only reward r(y): an MLP on the frozen embeddings of the responses, trained
    full-batch with the soft Bradley-Terry loss on the training pairs. chosen, rejected:
    (N, D) embeddings; label (N,) soft labels."""
    gen = torch.Generator().manual_seed(seed)
    dim = chosen.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / np.sqrt(p.shape[-1])))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    x_w, x_l, y = chosen.float(), rejected.float(), label.float()
    for _ in range(steps):
        opt.zero_grad()
        gap = model(x_w).squeeze(-1) - model(x_l).squeeze(-1)
        loss = soft_bt_nll(gap, y).mean()
        loss.backward()
        opt.step()
    return model.eval()


def response_only_gap(
    model: torch.nn.Module, chosen: torch.Tensor, rejected: torch.Tensor
) -> np.ndarray:
    """r(chosen) - r(rejected) under a response-only model, (N,)."""
    with torch.no_grad():
        gap = model(chosen.float()).squeeze(-1) - model(rejected.float()).squeeze(-1)
    return gap.double().numpy()
