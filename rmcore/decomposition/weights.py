"""Importance weights w_k ~ P(x_k | y_w, y_l) for the solver (docs/METHOD.md, "Importance weights").

Prompts are drawn uniformly from the pool, so by Bayes

    w_k  proportional to  exp(beta * log_score_k)

where log_score_k is either the policy stand-in's per-token log-likelihood of both responses
under prompt x_k (`lm_log_weights`) or the cheap proxy of prompt-response embedding
similarity (`embedding_log_weights`). beta = 0 gives uniform weights, the setting without a
policy model. Only the model-free math lives here; the scores come from `rmcore.models`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def normalize_log_weights(logw: Tensor, mask: Tensor, beta: float) -> Tensor:
    """Self-normalized weights softmax(beta * logw) over the valid prompts of each row.

    logw, mask: (N, K); invalid prompts (padding) get exactly 0. beta = 0 is uniform over the
    valid prompts whatever logw holds (even -inf). A row with no valid prompt is all zeros,
    which `solve_free_gap` flags as a uniform fallback.
    """
    if logw.shape != mask.shape:
        raise ValueError(f"logw {tuple(logw.shape)} and mask {tuple(mask.shape)} differ")
    if beta < 0:
        raise ValueError("beta must be >= 0")
    if torch.isnan(logw[mask]).any() or (logw[mask] == torch.inf).any():
        raise ValueError("logw must be finite or -inf on valid prompts")
    logits = torch.zeros_like(logw) if beta == 0 else beta * logw  # (N, K)
    logits = torch.where(mask, logits, torch.full_like(logits, -torch.inf))
    # rows with nothing valid (or every valid logit -inf) would be 0/0: softmax gives NaN
    return torch.softmax(logits, dim=1).nan_to_num(nan=0.0)  # (N, K)


def lm_log_weights(loglik_w: Tensor, loglik_l: Tensor) -> Tensor:
    """log pi(y_w | x_k) + log pi(y_l | x_k), both already per-token normalized: (N, K).

    Per-token, because raw sequence log-likelihoods differ by hundreds of nats between
    prompts and make the weights one-hot on the own prompt.
    """
    if loglik_w.shape != loglik_l.shape:
        raise ValueError(f"shapes differ: {tuple(loglik_w.shape)} vs {tuple(loglik_l.shape)}")
    return loglik_w + loglik_l


def embedding_log_weights(
    prompt_emb: Tensor,
    resp_w_emb: Tensor,
    resp_l_emb: Tensor,
    temperature: float,
    prompt_idx: Tensor | None = None,
) -> Tensor:
    """Mean cosine similarity of prompt x_k with y_w and with y_l, over temperature: (N, K)
    float64.

    Embeddings are unit vectors (the encoder L2-normalizes, the cache stores them so), so a
    cosine is a dot product. The mean (not the sum) keeps the scale in [-1, 1] / temperature,
    so a temperature means the same with one or two responses. prompt_emb is (N, K, D), or a
    (P, D) table read through prompt_idx (N, K) so a pool shared by many pairs is stored once.
    resp_w_emb, resp_l_emb: (N, D).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    prompts = prompt_emb if prompt_idx is None else prompt_emb[prompt_idx]  # (N, K, D)
    e_w, e_l = resp_w_emb[:, None, :], resp_l_emb[:, None, :]  # (N, 1, D)
    cos = 0.5 * ((prompts * e_w).sum(-1) + (prompts * e_l).sum(-1))  # (N, K)
    return cos.to(torch.float64) / temperature


def effective_sample_size(w: Tensor) -> Tensor:
    """(sum w)^2 / sum w^2 per row, (N, K) -> (N,): 1 for one-hot, K for uniform, 0 if all zero."""
    top = w.amax(dim=1, keepdim=True)  # (N, 1) ESS is scale-free; this keeps w^2 in range
    v = torch.where(top > 0, w / top, torch.zeros_like(w))  # (N, K)
    total, square = v.sum(dim=1), (v * v).sum(dim=1)  # (N,)
    return torch.where(square > 0, total**2 / square, torch.zeros_like(total))


def temperature_for_ess(
    cos: Tensor, mask: Tensor, band: tuple[float, float], *, iterations: int = 60
) -> float:
    """The temperature T of w ~ exp(cos / T) whose mean ESS over the rows is the middle of
    `band` (bisection on log T: ESS grows with T, from 1 towards the number of valid
    prompts). cos, mask: (N, K). When even uniform weights stay below the band (few prompts
    per pair), the largest temperature searched is returned, i.e. nearly uniform weights."""
    target = 0.5 * (band[0] + band[1])
    lo, hi = math.log(1e-4), math.log(1e3)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        w = normalize_log_weights(cos / math.exp(mid), mask, 1.0)
        if effective_sample_size(w).mean().item() < target:
            lo = mid
        else:
            hi = mid
    return math.exp(hi)
