"""Encoder throughput: the per-text MiniLM pass under each CPU runtime, side by side.

    python benchmarks/encoder.py                        # demo + long (+ AlpacaEval) texts
    python benchmarks/encoder.py --demo 300 --long 60 --alpaca 60 --reps 3 --runtimes all

Every row embeds the same texts through `SentenceEncoder.encode` (same tokenizer, length-
grouped batches of 64, mean pooling, normalisation); only the forward and its thread count
differ. The reference is today's path: torch fp32 with the process's intra-op thread count
fixed (torch's default, one per core). Columns: texts/s (best of `--reps` wall times,
interleaved), speed-up of wall and of process CPU time vs the reference, and the agreement
of the embeddings with the reference (max abs difference, mean and min cosine).

Rows:
- `torch fp32, N threads (ref)`: `EncoderConfig(threads=N)`, the path before issue 13.
- `torch fp32, auto threads`: the default now (`threads=None`: one per idle core).
- `torch fp32, 1 thread`.
- `torch int8 dynamic`: `torch.ao.quantization.quantize_dynamic` on the Linear layers.
- `onnxruntime fp32 / int8`, `openvino fp32`: only when `onnx` + `onnxruntime` / `openvino`
  are importable (they are not project dependencies). The ONNX export is cached under
  `data/encoder_cache/<weights sha256[:12]>/`, never inside a package.

What it showed (2 shared cores, load 7-10; issue 13): threads, not kernels, were the loss.
With the cores busy, 2 torch threads ran 3.2x slower than 1 on demo texts (14 tokens) and
1.3x on 256-token texts, so the default now samples idle cores (2.35x / 1.32x over the
reference, embeddings identical). Against torch at 1 thread, ONNX Runtime fp32 was 1.01x /
0.70x and OpenVINO fp32 0.89x / 1.14x, not worth one or two more dependencies (`onnx` is
needed to export); int8 (torch or ONNX Runtime) was 1.4x / 1.1-1.4x faster but moves the
embeddings far beyond rounding (mean cosine 0.91-0.97 to fp32), so neither is offered.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from rmcore.demo import generate_demo
from rmcore.models.encoder import BUNDLED_SHA256, SentenceEncoder, auto_threads, load_encoder

ALPACA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval_dev"
CACHE = Path("data") / "encoder_cache" / BUNDLED_SHA256[:12]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def text_sets(n_demo: int, n_long: int, n_alpaca: int) -> dict[str, list[str]]:
    """Distinct demo texts, long texts glued from them (~200+ tokens), real AlpacaEval answers."""
    frame = generate_demo()
    demo = list(dict.fromkeys([*frame["prompt"], *frame["chosen"], *frame["rejected"]]))
    rng = np.random.default_rng(0)
    glued = [" ".join(rng.choice(demo, size=12, replace=False)) for _ in range(n_long)]
    sets = {"demo": demo[:n_demo], "long": glued}
    files = sorted(ALPACA.glob("*.json.gz")) if ALPACA.is_dir() else []
    if files and n_alpaca:
        with gzip.open(files[0], "rt", encoding="utf-8") as f:
            records = json.load(f)
        sets["alpaca"] = [r["output_2"] for r in records[:n_alpaca]]
    return {k: v for k, v in sets.items() if v}


class _Hidden(torch.nn.Module):
    """The encoder's forward as (input_ids, attention_mask) -> last hidden state, for export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class _Runtime:
    """Stands in for the AutoModel inside `SentenceEncoder`: any `(ids, mask) -> hidden`."""

    def __init__(self, run: Callable[[np.ndarray, np.ndarray], np.ndarray], config) -> None:
        self.run, self.config = run, config

    def to(self, device: torch.device) -> _Runtime:
        return self

    def eval(self) -> _Runtime:
        return self

    def requires_grad_(self, flag: bool) -> _Runtime:
        return self

    def __call__(self, *, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        hidden = self.run(input_ids.numpy(), attention_mask.to(torch.int64).numpy())
        return SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))


def _like(ref: SentenceEncoder, model, *, threads: int | None, tag: str) -> SentenceEncoder:
    return SentenceEncoder(
        model,
        ref.tokenizer,
        encoder_id=f"{ref.encoder_id}+{tag}",
        max_length=ref.max_length,
        device=ref.device,
        threads=threads,
    )


def onnx_export(ref: SentenceEncoder) -> Path:
    """fp32 ONNX graph of the bundled encoder (legacy exporter; needs the `onnx` package)."""
    path = CACHE / "model.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        ids = torch.randint(1000, 2000, (2, 8))
        axes = {0: "batch", 1: "length"}
        torch.onnx.export(
            _Hidden(ref.model),
            (ids, torch.ones_like(ids)),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["hidden"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes},
            opset_version=17,
            dynamo=False,
        )
    return path


def optional_runtimes(ref: SentenceEncoder, threads: int) -> dict[str, SentenceEncoder]:
    out: dict[str, SentenceEncoder] = {}
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = onnx_export(ref)
        int8 = fp32.with_name("model.int8.onnx")
        if not int8.exists():
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        for tag, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8)):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

            def run(a: np.ndarray, m: np.ndarray, sess=sess) -> np.ndarray:
                return sess.run(None, {"input_ids": a, "attention_mask": m})[0]

            out[f"{tag}, {threads} thr"] = _like(
                ref, _Runtime(run, ref.model.config), threads=1, tag=tag
            )
    except ImportError as e:
        print(f"onnxruntime rows skipped: {e}")
    try:
        import openvino as ov

        ids = torch.randint(1000, 2000, (2, 8))
        graph = ov.convert_model(_Hidden(ref.model), example_input=(ids, torch.ones_like(ids)))
        compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_NUM_THREADS": threads})

        def run_ov(a: np.ndarray, m: np.ndarray) -> np.ndarray:
            return compiled([a, m])[0]

        out[f"openvino fp32, {threads} thr"] = _like(
            ref, _Runtime(run_ov, ref.model.config), threads=1, tag="openvino"
        )
    except ImportError as e:
        print(f"openvino row skipped: {e}")
    return out


def variants(runtimes: str) -> tuple[str, dict[str, SentenceEncoder]]:
    n = torch.get_num_threads()
    ref_name = f"torch fp32, {n} threads (ref)"
    ref = load_encoder(threads=n)
    rows = {
        ref_name: ref,
        "torch fp32, auto threads": _like(ref, ref.model, threads=None, tag="auto"),
        "torch fp32, 1 thread": _like(ref, ref.model, threads=1, tag="1t"),
    }
    if runtimes == "all":
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(ref.model), {torch.nn.Linear}, dtype=torch.qint8
        )
        rows["torch int8 dynamic, auto thr"] = _like(ref, quantized, threads=None, tag="int8")
        rows |= optional_runtimes(ref, auto_threads(n))
    return ref_name, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=int, default=1000, help="distinct demo texts")
    parser.add_argument("--long", type=int, default=200, help="long texts glued from demo ones")
    parser.add_argument("--alpaca", type=int, default=200, help="AlpacaEval answers, if present")
    parser.add_argument("--reps", type=int, default=2, help="best of this many, interleaved")
    parser.add_argument("--runtimes", choices=("torch", "all"), default="all")
    args = parser.parse_args()

    ref_name, rows = variants(args.runtimes)
    sets = text_sets(args.demo, args.long, args.alpaca)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}"
    )
    for set_name, texts in sets.items():
        lengths = rows[ref_name].tokenizer(texts, truncation=True, max_length=256)["input_ids"]
        mean_len = np.mean([len(t) for t in lengths])
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        emb: dict[str, np.ndarray] = {}
        picked: set[int | None] = set()
        load_before = loadavg()
        for _ in range(args.reps):
            for name, enc in rows.items():
                t0, c0 = time.perf_counter(), time.process_time()
                emb[name] = enc.encode(texts).numpy()  # (N, D)
                wall[name] = min(wall.get(name, np.inf), time.perf_counter() - t0)
                cpu[name] = min(cpu.get(name, np.inf), time.process_time() - c0)
                if name == "torch fp32, auto threads":
                    picked.add(enc.last_threads)
        print(
            f"\n{set_name}: {len(texts)} texts, mean {mean_len:.0f} tokens; "
            f"load {load_before} -> {loadavg()}; auto picked threads {sorted(picked)}"
        )
        print(
            f"{'runtime':34s} {'texts/s':>8s} {'x wall':>7s} {'x cpu':>6s} "
            f"{'max|diff|':>9s} {'mean cos':>9s} {'min cos':>9s}"
        )
        ref = emb[ref_name]
        for name in rows:
            cos = (emb[name] * ref).sum(1)  # (N,) both unit rows
            print(
                f"{name:34s} {len(texts) / wall[name]:8.1f} {wall[ref_name] / wall[name]:7.2f} "
                f"{cpu[ref_name] / cpu[name]:6.2f} {np.abs(emb[name] - ref).max():9.1e} "
                f"{cos.mean():9.6f} {cos.min():9.6f}"
            )


if __name__ == "__main__":
    main()
