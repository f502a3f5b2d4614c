"""Per-token log-likelihood of a response given a prompt under a causal LM.

The importance weights of METHOD.md need l(y | x): how likely the policy (stood in for
by this LM) was to write response y for prompt x, normalized per token so that
weights across prompts are not one-hot on the own prompt.

    l(y | x) = mean over response tokens t of log p(y_t | x, y_<t)

Rendering is `rmcore.models.render`, the one the reward models read: with a chat
template, user=prompt and assistant=response; the prompt part is the template's
generation prompt, so the response tokens include the template's end-of-turn tokens
(the probability of stopping there is part of pi(y | x)). Without a template the text
is `prompt + "\\n" + response` and only the response's own tokens count. A token
belongs to the response when it starts at or after the first response character
(offset mapping), which survives BPE merges at the boundary. Over-long inputs are cut
from the left, keeping the response; the first kept token has no context and is never
scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForCausalLM,
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
from rmcore.models.render import render_texts, response_starts, tokenize_texts


class CausalLMScorer:
    """Batched, length-grouped response log-likelihoods under one causal LM."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model_id: str,
        revision: str,
        device: torch.device,
        max_length: int | None = None,
        max_tokens_per_batch: int = 4096,  # logits are (tokens, vocab) floats: keep it modest
    ) -> None:
        ensure_pad_token(model, tokenizer)
        tokenizer.truncation_side = "left"
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.max_length = max_length or usable_max_length(model, tokenizer)
        self.max_tokens_per_batch = max_tokens_per_batch
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
    ) -> CausalLMScorer:
        """Local folder or hub id; dtype None keeps float32 weights (bf16 autocast on CUDA)."""
        model, tokenizer, model_id, rev = load_pretrained(
            AutoModelForCausalLM,
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
        )

    def response_loglik(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        batch_size: int = 16,
        progress: bool = False,
    ) -> torch.Tensor:
        """(N,) float32 on CPU: mean log p(response token | everything before it)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return torch.empty(0)
        texts = render_texts(self.tokenizer, prompts, responses)
        resp_start = torch.as_tensor(response_starts(self.tokenizer, prompts, texts))  # (N,)
        enc = tokenize_texts(
            self.tokenizer,
            texts,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_length=True,
        )
        lengths = torch.as_tensor(enc["length"])  # (N,)
        pad_id = self.tokenizer.pad_token_id

        def forward(idx: torch.Tensor) -> torch.Tensor:
            rows = idx.tolist()
            input_ids = pad_right([enc["input_ids"][i] for i in rows], pad_id)  # (B, L)
            mask = length_mask(lengths[idx], input_ids.shape[1])  # (B, L)
            token_start = pad_right(
                [torch.as_tensor(enc["offset_mapping"][i]).view(-1, 2)[:, 0] for i in rows], -1
            )  # (B, L) first character of each token
            scored = (token_start >= resp_start[idx, None]) & mask  # (B, L)
            scored[:, 0] = False  # nothing predicts the first token
            n_scored = scored.sum(1)  # (B,)
            if (n_scored == 0).any():
                raise ValueError(f"rows {idx[n_scored == 0].tolist()} have no response tokens")
            with torch.inference_mode(), autocast(self.device):
                logits = self.model(
                    input_ids=input_ids.to(self.device), attention_mask=mask.long().to(self.device)
                ).logits  # (B, L, V)
                logp = -F.cross_entropy(
                    logits[:, :-1].float().transpose(1, 2),  # (B, V, L-1)
                    input_ids[:, 1:].to(self.device),  # (B, L-1) next tokens
                    reduction="none",
                )  # (B, L-1)
            self.n_forward += 1
            target_scored = scored[:, 1:].to(self.device)  # (B, L-1)
            return ((logp * target_scored).sum(1) / n_scored.to(self.device)).cpu()

        budget = BatchBudget(max_batch=batch_size, max_tokens=self.max_tokens_per_batch)
        return map_batches(lengths, forward, budget=budget, progress=progress, desc="loglik")
