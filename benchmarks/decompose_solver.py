"""Throughput of the vectorized prompt-free gap solver against per-pair scipy brentq.

    python benchmarks/decompose_solver.py [--n 100000] [--k 17] [--seed 0] [--threads 1 2]
                                          [--baseline-rev b8ca7c6 | --baseline-rev ""]

The baseline is the natural scalar one: one `scipy.optimize.brentq` call per pair on the
balanced residual, itself vectorized over the K prompts with numpy, at the solver's own
tolerance (xtol = 1e-8). A Python call per pair is too slow for all n pairs, so brentq runs
on a random subsample and its time is extrapolated per pair to n (the table says so).
Accuracy is max |c - c_ref| on that subsample, against brentq at xtol 1e-12 (untimed).
Solver times are the best of a few runs, wall clock, at the given torch thread counts.

Before/after: `--baseline-rev` (default: b8ca7c6, the last commit before the blocked solver
of issue 13) loads `rmcore/decomposition/solver.py` as of that git revision (`git show`,
read-only) and times it interleaved with the current one, run for run, so both see the
same load; "" skips it. The load average is printed with every scenario.

Scenarios: realistic gaps (a pair effect plus prompt effects of scale 1-5) with uniform
weights; the same with 1% of rows stretched 200x (gaps hundreds apart: the slow, exact
log-space path); and softmax importance weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.special import expit

from rmcore.decomposition.solver import solve_free_gap

TOL = 1e-8
BASELINE_REV = "b8ca7c6"  # the solver before issue 13's blocks (git revision)
SCENARIOS = ("uniform", "uniform, 1% extreme rows", "softmax weights")


def make_problem(n: int, k: int, seed: int, scenario: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(gaps, weights) (n, k) float64: pair effect N(0, 2^2) + prompt effects of scale U(1, 5)."""
    gen = torch.Generator().manual_seed(seed)
    free = 2.0 * torch.randn(n, 1, generator=gen, dtype=torch.float64)  # (n, 1)
    scale = 1.0 + 4.0 * torch.rand(n, 1, generator=gen, dtype=torch.float64)  # (n, 1)
    gaps = free + scale * torch.randn(n, k, generator=gen, dtype=torch.float64)  # (n, k)
    weights = torch.full_like(gaps, 1.0 / k)  # what the score flow passes for `uniform`
    if scenario == "uniform, 1% extreme rows":
        stretch = torch.rand(n, generator=gen) < 0.01
        gaps[stretch] *= 200.0
    elif scenario == "softmax weights":
        weights = torch.softmax(torch.randn(n, k, generator=gen, dtype=torch.float64), dim=1)
    return gaps, weights


def brentq_root(g: np.ndarray, w: np.ndarray, xtol: float) -> float:
    """The scalar baseline: brentq on sum_k w_k sigmoid(g_k - c) - 1/2 (w sums to 1)."""
    return brentq(lambda c: float(w @ expit(g - c)) - 0.5, g.min(), g.max(), xtol=xtol)


def best_time(repeats: int, fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    """Best wall time of `repeats` runs after one warm-up: the least disturbed by other load."""
    return best_times(repeats, [fn], *args, **kwargs)[0]


def best_times(
    repeats: int, fns: Sequence[Callable[..., object]], *args: object, **kwargs: object
) -> list[float]:
    """Best wall time of each function, the functions run in turn `repeats` times."""
    for fn in fns:
        fn(*args, **kwargs)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn(*args, **kwargs)
            t.append(time.perf_counter() - start)
    return [min(t) for t in times]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def baseline_solver(rev: str) -> Callable[..., object] | None:
    """`solve_free_gap` as of git revision `rev`, or None where git or the revision is absent."""
    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:rmcore/decomposition/solver.py"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType(f"solver_at_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:rmcore/decomposition/solver.py", "exec"), module.__dict__)
    return module.solve_free_gap


def scenario_rows(
    scenario: str,
    n: int,
    k: int,
    seed: int,
    brentq_pairs: int,
    threads: Sequence[int],
    repeats: int,
    baseline: tuple[str, Callable[..., object]] | None = None,
) -> list[dict]:
    """brentq, the balanced solver at each thread count (and the baseline's, interleaved),
    and the logit-mean closed form."""
    gaps, weights = make_problem(n, k, seed, scenario)
    load = load_average()
    sub = np.random.default_rng(seed).choice(n, size=min(brentq_pairs, n), replace=False)
    g_np, w_np = gaps.numpy(), weights.numpy()
    start = time.perf_counter()
    fast = np.array([brentq_root(g_np[i], w_np[i], TOL) for i in sub])
    brentq_s = (time.perf_counter() - start) / len(sub) * n  # extrapolated to n pairs
    ref = np.array([brentq_root(g_np[i], w_np[i], 1e-12) for i in sub])
    # float64 brentq cannot resolve rows whose gaps are hundreds apart: compare on the rest
    moderate = np.ptp(g_np[sub], axis=1) < 60
    base = {"scenario": scenario, "pairs": n, "prompts_per_pair": k}
    rows = [
        base
        | {
            "method": "scipy brentq, per pair",
            "seconds": brentq_s,
            "max_abs_diff": float(np.abs(fast - ref)[moderate].max()),
            "note": f"timed on {len(sub)} pairs, extrapolated to {n}; xtol {TOL:g}; load {load}",
        }
    ]
    for t in threads:
        torch.set_num_threads(t)
        fns = [solve_free_gap] + ([] if baseline is None else [baseline[1]])
        labels = [""] + ([] if baseline is None else [baseline[0]])
        seconds = best_times(repeats, fns, gaps, weights)
        for label, fn, sec in zip(labels, fns, seconds, strict=True):
            d = fn(gaps, weights)
            iters = d.iterations.float()
            note = (
                f"tol {TOL:g}; float64 iterations mean {iters.mean().item():.2f} "
                f"max {int(iters.max().item())}; converged {d.converged.float().mean().item():.4f}"
            )
            if label:
                note += f"; {sec / seconds[0]:.2f}x the time of the current solver"
            rows.append(
                base
                | {
                    "method": f"solve_free_gap balanced{label}, {t} thr",
                    "seconds": sec,
                    "max_abs_diff": float(np.abs(d.free.numpy()[sub] - ref)[moderate].max()),
                    "note": note,
                }
            )
    torch.set_num_threads(threads[0])
    seconds = best_time(repeats, solve_free_gap, gaps, weights, criterion="logit-mean")
    free = solve_free_gap(gaps, weights, criterion="logit-mean").free.numpy()
    p = (w_np * expit(g_np)).sum(1)
    ok = (p > 1e-6) & (p < 1 - 1e-6)  # where the direct numpy formula keeps 1e-10
    direct = np.log(p[ok] / (1 - p[ok]))
    rows.append(
        base
        | {
            "method": f"solve_free_gap logit-mean, {threads[0]} thr",
            "seconds": seconds,
            "max_abs_diff": float(np.abs(free[ok] - direct).max()),
            "note": "closed form, another criterion; diff vs numpy logit(sum w s(g)), 1e-6<p<1-1e-6",
        }
    )
    for r in rows:
        r["evals_per_s"] = n * k / r["seconds"]
        r["speedup_vs_brentq"] = brentq_s / r["seconds"]
    return rows


def solver_benchmark(
    n: int = 100_000,
    k: int = 17,
    seed: int = 0,
    brentq_pairs: int = 1_000,
    threads: Sequence[int] = (1, 2),
    repeats: int = 5,
    scenarios: Sequence[str] = SCENARIOS,
    baseline_rev: str = "",
) -> list[dict]:
    """One row per (scenario, method): seconds for n pairs, pair x prompt evaluations per
    second, speedup over brentq and max disagreement with the reference on the subsample;
    with `baseline_rev`, the solver of that git revision too (skipped where git lacks it)."""
    threads_before = torch.get_num_threads()
    fn = baseline_solver(baseline_rev) if baseline_rev else None
    baseline = None if fn is None else (f" @{baseline_rev} (before)", fn)
    try:
        return [
            r
            for scenario in scenarios
            for r in scenario_rows(scenario, n, k, seed, brentq_pairs, threads, repeats, baseline)
        ]
    finally:
        torch.set_num_threads(threads_before)


def print_table(rows: list[dict]) -> None:
    print(
        f"{'scenario':<26}{'method':<48}{'pairs':>8}{'K':>4}{'seconds':>10}{'evals/s':>10}"
        f"{'x brentq':>10}{'max |diff|':>12}  note"
    )
    for r in rows:
        print(
            f"{r['scenario']:<26}{r['method']:<48}{r['pairs']:>8}{r['prompts_per_pair']:>4}"
            f"{r['seconds']:>10.4f}{r['evals_per_s']:>10.3g}{r['speedup_vs_brentq']:>10.1f}"
            f"{r['max_abs_diff']:>12.2e}  {r['note']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=17)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--brentq-pairs", type=int, default=1_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help='"" to skip the baseline')
    args = parser.parse_args()
    print(f"torch {torch.__version__}, float64, tol {TOL:g}; load average {load_average()}")
    rows = solver_benchmark(
        args.n,
        args.k,
        args.seed,
        args.brentq_pairs,
        args.threads,
        args.repeats,
        baseline_rev=args.baseline_rev,
    )
    print_table(rows)
    print(f"load average at the end {load_average()}")
