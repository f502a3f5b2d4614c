"""Fine-tune the joint reward model r(x, y) = f([x; y]) (a transformers sequence classifier).

Texts are encoded once, up front, with the model's own ``encode`` so that training sees exactly
the tokens that scoring will see. The token ids are kept flat (no padding stored); a batch is
gathered with one vectorized index and padded to its own longest row (dynamic padding), chosen
and rejected rows stacked into a single forward pass.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rmcore.config import TrainConfig
from rmcore.models.base import short_hash
from rmcore.models.joint import JointRewardModel
from rmcore.training.config import TextPairs, TrainResult
from rmcore.training.loop import PairForward, evaluate, fit, seeded


@dataclass
class TokenTable:
    """Variable-length rows of token fields stored back to back: (T,) per field."""

    fields: dict[str, Tensor]  # name -> (T,) int64: input_ids and, for pair models, token_type_ids
    offsets: Tensor  # (R,) start of each row in the flat tensors
    lengths: Tensor  # (R,)
    pad_id: int

    @classmethod
    def from_encoded(cls, encoded: Mapping[str, Any], pad_id: int) -> TokenTable:
        """From ``encode``'s unpadded output (a BatchEncoding of id lists); runs once per run."""
        rows = {k: encoded[k] for k in ("input_ids", "token_type_ids") if k in encoded}
        lengths = torch.tensor([len(r) for r in rows["input_ids"]], dtype=torch.long)  # (R,)
        fields = {
            k: torch.tensor(list(itertools.chain.from_iterable(v)), dtype=torch.long)
            for k, v in rows.items()
        }
        return cls(fields, torch.cumsum(lengths, 0) - lengths, lengths, pad_id)

    def batch(self, rows: Tensor) -> dict[str, Tensor]:
        """Rows (B,) -> padded fields (B, L) plus attention_mask, L = longest row in the batch."""
        lengths = self.lengths[rows]  # (B,)
        pos = torch.arange(int(lengths.max()))  # (L,)
        mask = pos[None, :] < lengths[:, None]  # (B, L)
        flat_idx = (self.offsets[rows][:, None] + pos[None, :]).masked_fill(~mask, 0)  # (B, L)
        out = {
            k: torch.where(mask, v[flat_idx], self.pad_id if k == "input_ids" else 0)
            for k, v in self.fields.items()
        }
        out["attention_mask"] = mask.long()
        return out

    @classmethod
    def concat(cls, tables: Sequence[TokenTable]) -> TokenTable:
        lengths = torch.cat([t.lengths for t in tables])  # (R,)
        fields = {k: torch.cat([t.fields[k] for t in tables]) for k in tables[0].fields}
        return cls(fields, torch.cumsum(lengths, 0) - lengths, lengths, tables[0].pad_id)


def encode_pairs(model: JointRewardModel, pairs: TextPairs, chunk: int = 512) -> TokenTable:
    """One table of 2N rows, chosen responses first, then rejected ones, in scoring's encoding.

    Encoded ``chunk`` rows at a time: the tokenizer returns Python lists (~36 bytes per token
    and field), which for a large set would dwarf the flat int64 tensors kept afterwards.
    """
    prompts = list(pairs.prompts) * 2  # (2N,)
    responses = [*pairs.chosen, *pairs.rejected]  # (2N,)
    pad_id = model.tokenizer.pad_token_id
    return TokenTable.concat(
        [
            TokenTable.from_encoded(
                model.encode(prompts[i : i + chunk], responses[i : i + chunk]), pad_id
            )
            for i in range(0, len(prompts), chunk)
        ]
    )


def _limit_length(model: JointRewardModel, max_length: int | None) -> None:
    """Train at ``max_length`` and make scoring cut at the same length, in memory and after a
    save/reload (the scorer reads tokenizer.model_max_length)."""
    if max_length is not None and max_length < model.max_length:
        model.max_length = max_length
        model.tokenizer.model_max_length = max_length


def weights_digest(net: nn.Module) -> str:
    """Short sha256 of the weights: the scorer caches by revision, so new weights need a new one."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return short_hash(h.hexdigest())


def _pair_forward(net: nn.Module, table: TokenTable, device: torch.device) -> PairForward:
    n = len(table.lengths) // 2

    def forward(idx: Tensor) -> tuple[Tensor, Tensor]:
        batch = table.batch(torch.cat([idx, idx + n]))  # (2B, L) each
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        rewards = net(**batch, use_cache=False).logits.squeeze(-1)  # (2B,)
        return rewards.chunk(2)

    return forward


def _set_checkpointing(net: nn.Module, *, on: bool) -> None:
    """Non-reentrant checkpointing (works with frozen LoRA bases without input grads);
    transformers 5 renamed gradient_* to activation_checkpointing_*."""
    if hasattr(net, "activation_checkpointing_enable"):
        if on:
            net.activation_checkpointing_enable({"use_reentrant": False})
        else:
            net.activation_checkpointing_disable()
    elif on:
        net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        net.gradient_checkpointing_disable()


def _wrap_lora(net: nn.Module, config: TrainConfig) -> nn.Module:
    """LoRA adapters on peft's default attention projections; SEQ_CLS also trains the score head."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
    )
    return get_peft_model(net, lora)


def train_joint(
    model: JointRewardModel, train: TextPairs, val: TextPairs | None, config: TrainConfig
) -> TrainResult:
    """Fine-tune ``model.model`` in place and return the same JointRewardModel, ready to score.

    With LoRA the adapters are merged back at the end, so the model is a plain transformers
    model either way. ``model.revision`` is replaced by a hash of the new weights so that
    cached scores of the old weights are never reused.
    """
    start = time.perf_counter()
    device = torch.device(config.device) if config.device else model.device
    _limit_length(model, config.max_length)
    train_table = encode_pairs(model, train)
    val_table = encode_pairs(model, val) if val is not None else None
    with seeded(config.seed, device):
        net = model.model.to(device)
        if config.gradient_checkpointing:
            _set_checkpointing(net, on=True)
        if config.lora:
            net = _wrap_lora(net, config)
        validate = None
        if val is not None and val_table is not None:
            val_forward = _pair_forward(net, val_table, device)

            def validate() -> dict[str, float]:
                return evaluate(net, val_forward, val.label, val.weight, config, device)

        outcome = fit(
            net,
            _pair_forward(net, train_table, device),
            train.label,
            train.weight,
            config,
            device,
            validate=validate,
            desc="joint",
        )
    if config.lora:
        net = net.merge_and_unload()
    if config.gradient_checkpointing:
        _set_checkpointing(net, on=False)
    model.model, model.device = net.eval(), device
    model.revision = weights_digest(net)
    return TrainResult(
        model=model,
        config=config,
        history=outcome.history,
        metrics=outcome.metrics,
        seconds=time.perf_counter() - start,
        samples_per_second=outcome.metrics["train_pairs_per_second"],
    )
