"""The optimizer loop shared by every trainer.

A trainer only supplies a *pair forward*: pair indices (B,) -> rewards of chosen and rejected
(B,), (B,). Everything else (shuffling, gradient accumulation with exact weight normalization,
AdamW, warmup then decay, bf16 autocast, validation, early stopping, progress) lives here once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rmcore.config import TrainConfig
from rmcore.progress import Progress
from rmcore.training.config import TrainResult
from rmcore.training.loss import bt_loss, pair_accuracy
from rmcore.training.online import OnlinePrompts

PairForward = Callable[[Tensor], tuple[Tensor, Tensor]]  # idx (B,) -> r_w (B,), r_l (B,)


@dataclass
class FitOutcome:
    history: list[dict[str, float]]
    metrics: dict[str, float]
    loop_seconds: float
    pairs_seen: int


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed every RNG a run touches (init of new layers, dropout, shuffling), then restore the
    caller's RNG state so training does not perturb the surrounding program."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(seed)
        yield


def make_optimizer(
    module: nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and norm scales (1-d tensors), as in TRL/HF.

    The fused kernel (CPU and CUDA) updates each tensor in one pass; the default foreach path
    allocates parameter-sized temporaries, which cost ~10% of peak memory on a small model.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, fused=device.type in ("cpu", "cuda"))


def warmup_decay(total_steps: int, config: TrainConfig) -> Callable[[int], float]:
    """LR multiplier: linear warmup over warmup_ratio of the steps, then linear or cosine to 0."""
    warmup = math.ceil(total_steps * config.warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if config.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return factor


def _autocast(device: torch.device, config: TrainConfig) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.use_bf16(device))


@dataclass(frozen=True)
class Reweigh:
    """Training weights re-estimated during training (the online variant): before every
    epoch that `due(epoch)` accepts, `weights()` returns new (N,) weights and the numbers
    to record about them; the step normalization follows the new weights' mean."""

    due: Callable[[int], bool]
    weights: Callable[[], tuple[Tensor, dict[str, float]]]


@torch.no_grad()
def pair_gaps(
    module: nn.Module, forward: PairForward, n: int, config: TrainConfig, device: torch.device
) -> Tensor:
    """r_w - r_l of pairs 0..n-1 in eval mode (dropout off), float32 (N,); the module's mode
    is restored, so this can run in the middle of training."""
    was_training = module.training
    module.eval()
    chunk = config.eval_batch_size or 2 * config.batch_size
    gaps = [torch.zeros(0, device=device)]
    with _autocast(device, config):
        for idx in torch.arange(n).split(chunk):
            r_w, r_l = forward(idx)
            gaps.append((r_w - r_l).float())
    module.train(was_training)
    return torch.cat(gaps)


def evaluate(
    module: nn.Module,
    forward: PairForward,
    label: Tensor,
    weight: Tensor,
    config: TrainConfig,
    device: torch.device,
) -> dict[str, float]:
    """Weighted BT loss (the training objective, without centering) and hard-label accuracy."""
    gap = pair_gaps(module, forward, len(label), config, device)  # (N,)
    label, weight = label.to(gap.device), weight.to(gap.device)
    correct, counted = pair_accuracy(gap, label)
    return {
        "loss": bt_loss(gap, label, weight, margin=config.margin).item(),
        "accuracy": (correct / counted.clamp_min(1)).item(),
    }


def _state_on_cpu(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def fit(
    module: nn.Module,
    forward: PairForward,
    label: Tensor,
    weight: Tensor,
    config: TrainConfig,
    device: torch.device,
    *,
    validate: Callable[[], dict[str, float]] | None = None,
    reweigh: Reweigh | None = None,
    desc: str = "train",
) -> FitOutcome:
    """Run the optimizer loop over N training pairs; ``label``/``weight`` are (N,) on any device
    (``reweigh`` replaces ``weight`` on its schedule)."""
    if config.early_stopping_patience is not None and validate is None:
        raise ValueError("early stopping needs a validation set")
    n = len(label)
    if n == 0:
        raise ValueError("no training pairs")
    label, weight = label.to(device, torch.float32), weight.to(device, torch.float32)
    per_step = config.batch_size * config.grad_accum_steps
    steps_per_epoch = math.ceil(n / per_step)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)

    optimizer = make_optimizer(module, config, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_decay(total_steps, config))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    shuffle = torch.Generator().manual_seed(config.seed)
    # METHOD.md's loss divides by the weights' sum over the whole set: a step of B pairs is
    # normalized by B * mean(a), not by its own sum, so a step of low-priority pairs moves the
    # model less instead of being scaled back up to a full-weight step.
    mean_weight = weight.mean()

    history: list[dict[str, float]] = []
    best_loss, best_state, bad_epochs = math.inf, None, 0
    step, pairs_seen, loop_seconds = 0, 0, 0.0
    bar = Progress(total_steps, desc=desc, unit="steps", enabled=config.progress)
    module.train()
    for epoch in range(epochs):
        reweighted: dict[str, float] = {}
        if reweigh is not None and reweigh.due(epoch):
            new_weight, stats = reweigh.weights()
            weight = new_weight.to(device, torch.float32)
            mean_weight = weight.mean()
            reweighted = {"reweighted": 1.0} | stats
        t0 = time.perf_counter()
        # Running sums stay on the device; one sync per log line, not per step.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        counted = torch.zeros((), device=device, dtype=torch.long)
        epoch_steps = 0
        for step_idx in torch.randperm(n, generator=shuffle).split(per_step):
            if step >= total_steps:
                break
            w_step = mean_weight * len(step_idx)
            for idx in step_idx.split(config.batch_size):
                with _autocast(device, config):
                    r_w, r_l = forward(idx)  # (B,), (B,)
                r_w, r_l = r_w.float(), r_l.float()
                gap = r_w - r_l
                dev_idx = idx.to(device)
                loss = bt_loss(
                    gap,
                    label[dev_idx],
                    weight[dev_idx],
                    margin=config.margin,
                    rewards=torch.cat([r_w, r_l]),
                    center_coef=config.center_coef,
                    weight_total=w_step,
                    count_total=2 * len(step_idx),
                )
                loss.backward()
                loss_sum += loss.detach()
                c, k = pair_accuracy(gap.detach(), label[dev_idx])
                correct += c
                counted += k
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_steps += 1
            pairs_seen += len(step_idx)
            if config.progress and step % 10 == 0:  # one device sync per 10 steps
                bar.update(
                    loss=f"{(loss_sum / epoch_steps).item():.4f}",
                    acc=f"{(correct / counted.clamp_min(1)).item():.3f}",
                )
            else:
                bar.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        loop_seconds += time.perf_counter() - t0
        record = {
            "epoch": step / steps_per_epoch,  # fractional: 5 of 31 steps is 0.16, not 1
            "step": float(step),
            "steps_per_epoch": float(steps_per_epoch),
            "lr": schedule.get_last_lr()[0],
            "train_loss": (loss_sum / max(1, epoch_steps)).item(),
            "train_accuracy": (correct / counted.clamp_min(1)).item(),
        } | reweighted
        if validate is not None:
            record |= {f"val_{k}": v for k, v in validate().items()}
            if record["val_loss"] < best_loss:
                best_loss, bad_epochs = record["val_loss"], 0
                if config.early_stopping_patience is not None:
                    best_state = _state_on_cpu(module)
            else:
                bad_epochs += 1
        history.append(record)
        bar.update(0, **{k: f"{v:.4f}" for k, v in record.items() if "loss" in k or "acc" in k})
        if (
            config.early_stopping_patience is not None
            and bad_epochs >= config.early_stopping_patience
        ):
            break
    bar.close()
    metrics = dict(history[-1])
    if best_state is not None:
        module.load_state_dict(best_state)
        metrics = dict(min(history, key=lambda r: r["val_loss"]))
    metrics["train_pairs_per_second"] = pairs_seen / max(loop_seconds, 1e-9)
    return FitOutcome(history, metrics, loop_seconds, pairs_seen)


def fit_head(
    head: nn.Module,
    make_forward: Callable[[Any], PairForward],
    train: Any,
    val: Any | None,
    config: TrainConfig,
    desc: str,
    online: OnlinePrompts | None = None,
) -> TrainResult:
    """Fit a head on a frozen encoder's cached per-text inputs, in place. ``train``/``val``
    are `RowPairs`; ``make_forward(pairs)`` is the pair forward over them (the one part in
    which the embed-head and late-interaction differ). With ``online``, the head re-weights
    the training pairs on its schedule (`rmcore.training.online`)."""
    start = time.perf_counter()
    device = config.resolve_device()
    head.to(device)
    validate = None
    if val is not None:
        val_forward = make_forward(val)

        def validate() -> dict[str, float]:
            return evaluate(head, val_forward, val.label, val.weight, config, device)

    reweigh = None
    if online is not None:
        cross = online.expand(train)
        cross_forward = make_forward(cross)
        reweigh = Reweigh(
            due=online.config.due,
            weights=lambda: online.weights(
                pair_gaps(head, cross_forward, len(cross), config, device)
            ),
        )

    with seeded(config.seed, device):
        outcome = fit(
            head,
            make_forward(train),
            train.label,
            train.weight,
            config,
            device,
            validate=validate,
            reweigh=reweigh,
            desc=desc,
        )
    head.eval()
    if online is not None:
        outcome.metrics["online_reweights"] = float(
            sum(r.get("reweighted", 0.0) for r in outcome.history)
        )
    return TrainResult(
        model=head,
        config=config,
        history=outcome.history,
        metrics=outcome.metrics,
        seconds=time.perf_counter() - start,
        samples_per_second=outcome.metrics["train_pairs_per_second"],
    )
