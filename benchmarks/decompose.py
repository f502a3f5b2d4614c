"""The decomposition stage in one table: solver, cross-prompt scoring cost, joint-model batching.

    python benchmarks/decompose.py [--device cpu|cuda] [--quick] [--model-size tiny|0.5b]

Sections (one row each, side by side):
- solver: `decompose_solver.solver_benchmark` (vectorized solver vs per-pair brentq).
- scoring: the real score flow (`bundled-head` = frozen MiniLM + head) on the toy demo data,
  M = 0 against M = 16 sampled prompts, each in a fresh warehouse (no cache helps either),
  after a warm-up flow on a third warehouse that starts Prefect and loads the models.
- joint: a randomly initialised small BERT sequence classifier on the real length
  distribution of ../shared/data/alpaca_eval_dev (skipped when absent): length-grouped
  batching (default) against padding every batch to the longest input, same token budget.
- roofline (with --model-size): a random Qwen2 classifier (~0.5B in bf16 on CUDA; `tiny`
  builds on CPU) scoring the same pairs, against the tokens/s of its forward pass on one
  full batch without padding.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rmcurate-bench-prefect-"))

import numpy as np
import torch
from decompose_solver import SCENARIOS, solver_benchmark
from train import QWEN2_SIZES

from cli import env

env.configure()  # before any Prefect import: analytics off, start-up timeout, quiet logs

ROOT = Path(__file__).resolve().parents[1]
ALPACA = ROOT.parent / "shared" / "data" / "alpaca_eval_dev"
# The random Qwen2 classifiers are `train.build_model`'s (`0.5b` = Qwen2-0.5B's architecture,
# ~494M parameters), shared with benchmarks/train.py and scripts/gpu_check.py.


def row(section: str, case: str, seconds: float, rate: str, ratio: str, detail: str) -> dict:
    return {
        "section": section,
        "case": case,
        "seconds": seconds,
        "rate": rate,
        "ratio": ratio,
        "detail": detail,
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


# -----------------------------------------------------------------------------
# a. solver


def solver_section(quick: bool) -> list[dict]:
    n, pairs = (20_000, 300) if quick else (100_000, 1_000)
    out = []
    for r in solver_benchmark(n=n, brentq_pairs=pairs, threads=(1,), scenarios=SCENARIOS):
        ratio = "" if r["method"].startswith("scipy") else f"{r['speedup_vs_brentq']:.0f}x brentq"
        out.append(
            row(
                "solver",
                f"{r['scenario']}: {r['method']}",
                r["seconds"],
                f"{r['pairs'] / r['seconds']:.3g} pairs/s",
                ratio,
                f"N={r['pairs']} K={r['prompts_per_pair']}; max|diff| {r['max_abs_diff']:.1e}; {r['note']}",
            )
        )
    return out


# -----------------------------------------------------------------------------
# b. scoring flow: M = 16 against M = 0


def _demo_warehouse(root: Path, n_length_biased: int, n_adversarial: int) -> str:
    from flows.ingest import ingest_flow
    from rmcore.demo import write_demo

    root.mkdir(parents=True)
    src = write_demo(
        root / "toy.jsonl", n_length_biased=n_length_biased, n_adversarial=n_adversarial, seed=0
    )
    wh = str(root / "wh.duckdb")
    ingest_flow(
        source=str(src), name="toy", warehouse=wh, reports_dir=str(root / "reports"), quality=False
    )
    return wh


def scoring_section(device: str, quick: bool, tmp: Path) -> list[dict]:
    from flows.score import score_flow

    n_lb, n_adv = (600, 120) if quick else (3000, 600)
    warm = _demo_warehouse(tmp / "warmup", 40, 8)
    score_flow(
        dataset="toy", model="bundled-head", prompts_per_pair=2, warehouse=warm, device=device
    )
    results = {}
    for m in (0, 16):
        wh = _demo_warehouse(tmp / f"m{m}", n_lb, n_adv)
        seconds, summary = timed(
            lambda wh=wh, m=m: score_flow(
                dataset="toy", model="bundled-head", prompts_per_pair=m, warehouse=wh, device=device
            ),
            torch.device(device),
        )
        results[m] = (seconds, summary)
    base = results[0][0]
    out = []
    for m, (seconds, summary) in results.items():
        t = summary["timings"]
        out.append(
            row(
                "scoring",
                f"score flow, bundled-head, M={m}",
                seconds,
                f"{summary['pairs'] / seconds:.3g} pairs/s",
                f"{seconds / base:.2f}x M=0" if m else "",
                f"{summary['pairs']} demo pairs; embed {t.get('embed_seconds', 0):.1f}s "
                f"({t.get('embedded_texts', 0)} texts), score {t['score_seconds']:.2f}s, "
                f"{t['forward_passes']} forward passes, {t['combos']} (prompt, response) combos",
            )
        )
    return out


# -----------------------------------------------------------------------------
# c. joint backend: length-grouped batches against padding to the longest


def alpaca_pairs(n: int, seed: int) -> tuple[list[str], list[str]] | None:
    """n (instruction, output) pairs drawn from every model's file, or None without the data."""
    files = sorted(ALPACA.glob("*.json.gz")) if ALPACA.is_dir() else []
    if not files:
        return None
    prompts, responses = [], []
    for f in files:
        for rec in json.loads(gzip.decompress(f.read_bytes())):
            for key in ("output_1", "output_2"):
                if rec.get(key):
                    prompts.append(rec["instruction"])
                    responses.append(rec[key])
    pick = np.random.default_rng(seed).choice(
        len(prompts), size=min(n, len(prompts)), replace=False
    )
    return [prompts[i] for i in pick], [responses[i] for i in pick]


def build_classifier(folder: Path, arch: str, size: str = "tiny", seed: int = 0) -> int:
    """A random-init classifier and its tokenizer saved to `folder` (BERT: the bundled MiniLM
    tokenizer; Qwen2: `train.build_model`'s); returns its parameter count."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    from rmcore.models.encoder import bundled_model_dir

    if arch == "qwen2":
        from train import build_model

        return build_model(folder, "qwen2", size, seed)
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=512,
        num_labels=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def joint_section(device: str, quick: bool, tmp: Path) -> list[dict]:
    from rmcore.models.joint import JointRewardModel

    data = alpaca_pairs(128 if quick else 512, seed=0)
    if data is None:
        return [row("joint", f"skipped: no {ALPACA}", 0.0, "", "", "")]
    prompts, responses = data
    folder = tmp / "bert"
    params = build_classifier(folder, "bert")
    model = JointRewardModel.load(folder, max_length=512, device=device)
    real_tokens = int(sum(model.encode(prompts, responses)["length"]))
    dev = torch.device(device)
    model.score(prompts[:8], responses[:8])  # warm-up: allocator, kernels
    grouped_s, grouped = timed(lambda: model.score(prompts, responses), dev)
    padded_s, padded = timed(lambda: model.score(prompts, responses, pad_longest=True), dev)
    diff = float((grouped - padded).abs().max())
    n = len(prompts)
    common = (
        f"BERT {params / 1e6:.1f}M params, max_length 512, {real_tokens} real tokens, "
        f"budget {model.budget.max_tokens} tokens x {model.budget.max_batch} rows"
    )
    return [
        row(
            "joint",
            "score, length-grouped batches",
            grouped_s,
            f"{n / grouped_s:.3g} pairs/s, {real_tokens / grouped_s:.3g} tok/s",
            "",
            f"{n} alpaca_eval pairs; {common}",
        ),
        row(
            "joint",
            "score, pad every batch to longest",
            padded_s,
            f"{n / padded_s:.3g} pairs/s, {real_tokens / padded_s:.3g} tok/s",
            f"{padded_s / grouped_s:.2f}x grouped",
            f"max|diff| vs grouped {diff:.1e}",
        ),
    ]


# -----------------------------------------------------------------------------
# d. roofline: score throughput against one full unpadded forward pass


def roofline_section(device: str, size: str, quick: bool, tmp: Path) -> list[dict]:
    from rmcore.models.joint import JointRewardModel

    data = alpaca_pairs(32 if quick or size == "tiny" else 512, seed=1)
    if data is None:
        return [row("roofline", f"skipped: no {ALPACA}", 0.0, "", "", "")]
    prompts, responses = data
    dev = torch.device(device)
    folder = tmp / f"qwen-{size}"
    params = build_classifier(folder, "qwen2", size)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32  # bf16 is slow on CPU
    model = JointRewardModel.load(folder, max_length=2048, device=device, dtype=dtype)
    real_tokens = int(sum(model.encode(prompts, responses)["length"]))
    model.score(prompts[:4], responses[:4])  # warm-up
    score_s, _ = timed(lambda: model.score(prompts, responses), dev)
    # the roofline: one batch as large as the budget allows, every position a real token
    seq = 512
    rows_ = max(1, min(model.budget.max_batch, model.budget.max_tokens // seq))
    ids = torch.randint(1000, model.tokenizer.vocab_size, (rows_, seq), device=dev)
    mask = torch.ones_like(ids)

    def forward() -> object:
        with torch.inference_mode():
            return model.model(input_ids=ids, attention_mask=mask).logits

    forward()
    full_s, _ = timed(forward, dev)
    peak = rows_ * seq / full_s
    n = len(prompts)
    return [
        row(
            "roofline",
            f"score, Qwen2 {size} ({params / 1e6:.0f}M, {dtype})",
            score_s,
            f"{n / score_s:.3g} pairs/s, {real_tokens / score_s:.3g} tok/s",
            f"{real_tokens / score_s / peak:.2f} of peak",
            f"{n} pairs, {real_tokens} real tokens",
        ),
        row(
            "roofline",
            f"one full batch {rows_}x{seq}, no padding",
            full_s,
            f"{peak:.3g} tok/s",
            "",
            "forward only: the throughput ceiling for this batch budget",
        ),
    ]


# -----------------------------------------------------------------------------


def print_table(rows: list[dict]) -> None:
    width = max(len(r["case"]) for r in rows)
    print(f"{'section':<9} {'case':<{width}} {'seconds':>9}  {'rate':<32} {'ratio':<18} detail")
    for r in rows:
        print(
            f"{r['section']:<9} {r['case']:<{width}} {r['seconds']:>9.3f}  {r['rate']:<32} "
            f"{r['ratio']:<18} {r['detail']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a fast run")
    parser.add_argument(
        "--model-size",
        choices=sorted(QWEN2_SIZES),
        default=None,
        help="also run the Qwen2 roofline section at this size",
    )
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"{'quick' if args.quick else 'full'} run"
    )
    rows = solver_section(args.quick)
    with tempfile.TemporaryDirectory(prefix="rmcurate-bench-") as d:
        tmp = Path(d)
        with prefect_test_harness(server_startup_timeout=180):
            rows += scoring_section(args.device, args.quick, tmp)
        rows += joint_section(args.device, args.quick, tmp)
        if args.model_size:
            rows += roofline_section(args.device, args.model_size, args.quick, tmp)
    print_table(rows)


if __name__ == "__main__":
    main()
