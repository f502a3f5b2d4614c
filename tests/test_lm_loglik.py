"""Response log-likelihoods agree with the causal LM's own masked loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from rmcore.models.lm_loglik import CausalLMScorer

PROMPTS = ["What is the capital of France?", "Write a haiku.", "hi", "the fox " * 12]
RESPONSES = ["Paris.", "Leaves fall slowly,\nthe fox sleeps.", "hello there friend", "jumps"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory, save_tiny_lm) -> Path:
    return save_tiny_lm(tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory, save_tiny_lm) -> Path:
    return save_tiny_lm(tmp_path_factory.mktemp("chat"), CHAT_TEMPLATE)


def masked_loss(
    folder: Path, prefix: str, full: str, *, keep_last: int | None = None, special: bool = True
) -> float:
    """Mean NLL of the tokens after `prefix`, computed by the model itself from labels."""
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    prefix_ids = tok(prefix, add_special_tokens=special)["input_ids"]
    ids = tok(full, add_special_tokens=special)["input_ids"]
    assert ids[: len(prefix_ids)] == prefix_ids  # the prefix tokenizes the same inside `full`
    labels = [-100] * len(prefix_ids) + ids[len(prefix_ids) :]
    if keep_last is not None:
        ids, labels = ids[-keep_last:], labels[-keep_last:]
    with torch.no_grad():
        return model(torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()


def test_loglik_equals_negative_masked_loss_plain(plain_folder):
    scorer = CausalLMScorer.load(plain_folder, device="cpu")
    loglik = scorer.response_loglik(PROMPTS, RESPONSES, batch_size=3)
    assert loglik.shape == (len(PROMPTS),) and loglik.dtype == torch.float32
    assert scorer.n_forward == 2
    expected = torch.tensor(
        [
            -masked_loss(plain_folder, f"{p}\n", f"{p}\n{r}")
            for p, r in zip(PROMPTS, RESPONSES, strict=True)
        ]
    )
    torch.testing.assert_close(loglik, expected, atol=1e-5, rtol=0)


def test_loglik_equals_negative_masked_loss_chat(chat_folder):
    scorer = CausalLMScorer.load(chat_folder, device="cpu")
    loglik = scorer.response_loglik(PROMPTS, RESPONSES)
    expected = []
    for p, r in zip(PROMPTS, RESPONSES, strict=True):
        prefix = f"<|user|>{p}<|endoftext|><|assistant|>"
        full = f"{prefix}{r}<|endoftext|>"
        expected.append(-masked_loss(chat_folder, prefix, full, special=False))
    torch.testing.assert_close(loglik, torch.tensor(expected), atol=1e-5, rtol=0)


def test_batching_and_order_do_not_change_results(plain_folder):
    scorer = CausalLMScorer.load(plain_folder, device="cpu")
    batched = scorer.response_loglik(PROMPTS, RESPONSES, batch_size=8)
    single = scorer.response_loglik(PROMPTS, RESPONSES, batch_size=1)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    perm = [2, 0, 3, 1]
    shuffled = scorer.response_loglik([PROMPTS[i] for i in perm], [RESPONSES[i] for i in perm])
    torch.testing.assert_close(shuffled, batched[perm], atol=1e-5, rtol=0)
    assert (batched < 0).all()


def test_truncation_keeps_response_end(plain_folder):
    scorer = CausalLMScorer.load(plain_folder, device="cpu", max_length=10)
    prompt, response = "the lazy dog " * 10, "paris is the capital"
    got = scorer.response_loglik([prompt], [response])
    expected = -masked_loss(plain_folder, f"{prompt}\n", f"{prompt}\n{response}", keep_last=10)
    assert abs(got.item() - expected) < 1e-5


def test_empty_inputs_and_errors(plain_folder):
    scorer = CausalLMScorer.load(plain_folder, device="cpu")
    assert scorer.response_loglik([], []).shape == (0,)
    with pytest.raises(ValueError, match="no response tokens"):
        scorer.response_loglik(["a prompt"], [""])
    with pytest.raises(ValueError, match="responses"):
        scorer.response_loglik(["a"], ["b", "c"])
