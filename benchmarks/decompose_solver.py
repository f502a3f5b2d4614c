"""Throughput of the vectorized prompt-free gap solver against per-pair scipy brentq.

    python benchmarks/decompose_solver.py [--n 100000] [--k 17] [--seed 0]

brentq runs on a random subsample of pairs (a Python call per pair is too slow for all of
them) and its time is extrapolated per pair to n; the table says so. Disagreement is the
max |c - c_brentq| over that subsample.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.special import expit

from rmcore.solver import solve_free_gap


def make_problem(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaps = pair effect + prompt effect; weights = softmax of random log-likelihood scores."""
    gen = torch.Generator().manual_seed(seed)
    free = 2.0 * torch.randn(n, 1, generator=gen, dtype=torch.float64)  # (n, 1)
    gaps = free + torch.randn(n, k, generator=gen, dtype=torch.float64)  # (n, k)
    weights = torch.softmax(torch.randn(n, k, generator=gen, dtype=torch.float64), dim=1)
    return gaps, weights


def brentq_root(g: np.ndarray, w: np.ndarray) -> float:
    """The scalar reference: one brentq call on sum_k w_k sigmoid(g_k - c) - 1/2."""
    return brentq(lambda c: float(w @ expit(g - c)) - 0.5, g.min(), g.max(), xtol=1e-12)


def solver_benchmark(
    n: int = 100_000, k: int = 17, seed: int = 0, brentq_pairs: int = 2_000
) -> list[dict]:
    """One row per method: seconds for n pairs, pair x prompt evaluations per second, speedup
    over brentq and max disagreement with the scalar reference."""
    gaps, weights = make_problem(n, k, seed)
    sub = np.random.default_rng(seed).choice(n, size=min(brentq_pairs, n), replace=False)
    g_np, w_np = gaps.numpy(), weights.numpy()

    start = time.perf_counter()
    refs = np.array([brentq_root(g_np[i], w_np[i]) for i in sub])
    brentq_s = (time.perf_counter() - start) / len(sub) * n  # extrapolated to n pairs

    start = time.perf_counter()
    balanced = solve_free_gap(gaps, weights, criterion="balanced")
    balanced_s = time.perf_counter() - start

    start = time.perf_counter()
    logit_mean = solve_free_gap(gaps, weights, criterion="logit-mean")
    logit_mean_s = time.perf_counter() - start
    p = (w_np * expit(g_np)).sum(1)
    logit_ref = np.log(p / (1 - p))  # direct float64 formula, fine for moderate gaps

    def row(method: str, seconds: float, diff: float, note: str) -> dict:
        return {
            "method": method,
            "pairs": n,
            "prompts_per_pair": k,
            "seconds": seconds,
            "evals_per_s": n * k / seconds,
            "speedup_vs_brentq": brentq_s / seconds,
            "max_abs_diff": diff,
            "note": note,
        }

    iters = balanced.iterations.float()
    return [
        row(
            "scipy brentq, per pair",
            brentq_s,
            0.0,
            f"timed on {len(sub)} pairs, extrapolated to {n}; xtol 1e-12",
        ),
        row(
            "solve_free_gap balanced",
            balanced_s,
            float(np.abs(balanced.free.numpy()[sub] - refs).max()),
            f"vs brentq on the {len(sub)} pairs; tol 1e-8; iterations mean "
            f"{iters.mean().item():.2f} max {int(iters.max().item())}; "
            f"converged {balanced.converged.float().mean().item():.4f}",
        ),
        row(
            "solve_free_gap logit-mean",
            logit_mean_s,
            float(np.abs(logit_mean.free.numpy() - logit_ref).max()),
            "closed form; diff vs a direct numpy logit(sum w sigmoid(g)) on all pairs",
        ),
    ]


def print_table(rows: list[dict]) -> None:
    print(
        f"{'method':<27}{'pairs':>8}{'K':>4}{'seconds':>10}{'evals/s':>12}"
        f"{'x brentq':>10}{'max |diff|':>12}  note"
    )
    for r in rows:
        print(
            f"{r['method']:<27}{r['pairs']:>8}{r['prompts_per_pair']:>4}{r['seconds']:>10.3f}"
            f"{r['evals_per_s']:>12.3g}{r['speedup_vs_brentq']:>10.1f}{r['max_abs_diff']:>12.2e}"
            f"  {r['note']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=17)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")
    print_table(solver_benchmark(args.n, args.k, args.seed))
