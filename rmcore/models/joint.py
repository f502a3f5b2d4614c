"""Joint reward model: any `AutoModelForSequenceClassification` with one output.

A (prompt, response) pair becomes tokens through `rmcore.models.render` (chat template,
text pair, or `prompt + "\\n" + response`); `encode` is shared with the trainer, so
training and scoring see identical inputs, and the LM weights read the same text.

Truncation to `max_length` keeps the *end*: causal classifiers read the reward at the
last token, so losing the tail would lose the reward position, and the response is
what is being judged. Chat/plain inputs are cut from the left (the start of the
prompt goes first); text pairs are cut "longest first" from the left, so a short
response is kept whole and only the prompt's beginning is dropped.

Inputs are right-padded per batch (position ids equal the unpadded ones, and
causal classifiers find the last non-pad token), so batched scores equal one-at-a-time
scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    BatchEncoding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from rmcore.models.base import (
    BatchBudget,
    autocast,
    ensure_pad_token,
    length_mask,
    load_pretrained,
    map_batches,
    pad_right,
    pick_device,
    usable_max_length,
)
from rmcore.models.render import RENDERINGS, encode_pairs, input_format, plain_call


class JointRewardModel:
    """RewardScorer around a sequence classifier (num_labels = 1) reading prompt and response together."""

    backend = "joint"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model_id: str,
        revision: str,
        device: torch.device,
        max_length: int | None = None,
        max_tokens_per_batch: int = 16384,
        max_batch_size: int = 64,
    ) -> None:
        if model.config.num_labels != 1:
            raise ValueError(f"a reward model needs num_labels=1, got {model.config.num_labels}")
        ensure_pad_token(model, tokenizer)
        tokenizer.truncation_side = "left"  # keep the response end (module docstring)
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.max_length = max_length or usable_max_length(model, tokenizer)
        self.budget = BatchBudget(max_batch=max_batch_size, max_tokens=max_tokens_per_batch)
        self.input_format = input_format(tokenizer)
        self.n_forward = 0

    @classmethod
    def load(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        trust_remote_code: bool = False,
        use_safetensors: bool = True,
        revision: str | None = None,
        max_length: int | None = None,
        max_tokens_per_batch: int = 16384,
    ) -> JointRewardModel:
        """Local folder or hub id. dtype None keeps float32 weights (bf16 autocast on CUDA);
        pass torch.bfloat16 to halve memory for large models."""
        model, tokenizer, model_id, rev = load_pretrained(
            AutoModelForSequenceClassification,
            name_or_path,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=use_safetensors,
            revision=revision,
        )
        return cls(
            model,
            tokenizer,
            model_id=model_id,
            revision=rev,
            device=pick_device(device),
            max_length=max_length,
            max_tokens_per_batch=max_tokens_per_batch,
        )

    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> BatchEncoding:
        """Unpadded token ids (+ token_type_ids for pair models) and a `length` per row."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:  # tokenizers reject an empty batch
            return BatchEncoding({"input_ids": [], "length": []})
        return encode_pairs(self.tokenizer, prompts, responses, max_length=self.max_length)

    def collate(
        self, encoded: BatchEncoding, idx: torch.Tensor, *, pad_to: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Model inputs for rows `idx` (B,) of `encode`'s output, right-padded, on the model's device."""
        rows = idx.tolist()
        lengths = torch.as_tensor(encoded["length"])[idx]  # (B,)
        input_ids = pad_right(
            [encoded["input_ids"][i] for i in rows], self.tokenizer.pad_token_id, pad_to
        )  # (B, L)
        batch = {
            "input_ids": input_ids,
            "attention_mask": length_mask(lengths, input_ids.shape[1]).long(),
        }
        if "token_type_ids" in encoded:
            batch["token_type_ids"] = pad_right(
                [encoded["token_type_ids"][i] for i in rows], 0, pad_to
            )
        return {k: v.to(self.device) for k, v in batch.items()}

    def score(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        progress: bool = False,
        pad_longest: bool = False,
    ) -> torch.Tensor:
        """(N,) float32 rewards on CPU.

        Rows are batched by length under a token budget (halved on CUDA OOM).
        `pad_longest=True` is the naive baseline for benchmarks: input order, every
        batch padded to the longest input, under the same token budget.
        """
        encoded = self.encode(prompts, responses)
        lengths = torch.as_tensor(encoded["length"])  # (N,)
        if lengths.numel() == 0:
            return torch.empty(0)
        pad_to = int(lengths.max()) if pad_longest else None

        def forward(idx: torch.Tensor) -> torch.Tensor:
            batch = self.collate(encoded, idx, pad_to=pad_to)
            with torch.inference_mode(), autocast(self.device):
                logits = self.model(**batch).logits  # (B, 1)
            self.n_forward += 1
            return logits.float().squeeze(-1).cpu()

        return map_batches(
            lengths,
            forward,
            budget=self.budget,
            grouped=not pad_longest,
            progress=progress,
            desc="score",
        )

    def describe_input(self) -> str:
        """How a pair becomes this model's input, for its model card."""
        return (
            f"{RENDERINGS[self.input_format]}; at most {self.max_length} tokens, cut from the"
            " left (text pairs: longest first), so the response's end is kept. The reward is"
            " the classifier's single logit."
        )

    def plain_call(self) -> str:
        """Python tokenizing one pair as `encode` does, for the model card's plain-transformers
        recipe."""
        return plain_call(self.input_format, self.max_length)

    def save_pretrained(self, path: str | Path) -> None:
        """safetensors weights, config (with the pad token we set) and tokenizer."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
