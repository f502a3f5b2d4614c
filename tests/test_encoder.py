"""The encoder's CPU thread policy (issue 13): faster, same embeddings, same `encoder_id`."""

from __future__ import annotations

import os

import pytest
import torch

from rmcore.config import EncoderConfig
from rmcore.models import encoder as enc_mod
from rmcore.models.encoder import (
    BUNDLED_ID,
    THREADS_ATOL,
    SentenceEncoder,
    auto_threads,
    load_encoder,
    torch_threads,
)

# Empty-ish, one character, unicode (CJK, RTL, emoji, combining marks), and rows longer than
# the 256-token limit (truncated), mixed with ordinary ones so batches have ragged lengths.
TEXTS = [
    "",
    " ",
    "a",
    "\n\t",
    "Hello, world.",
    "日本語のテキストです。",
    "مرحبا بالعالم",
    "emoji 🤖🚀✨ and e\u0301 (combining)",
    "Write a haiku about the sea. " * 80,
    " ".join(f"token{i}" for i in range(400)),
    *[f"Question {i}: how many {'very ' * (i % 7)}small steps make a walk?" for i in range(10)],
]
BATCH = 8  # several batches, so the auto policy samples idle cores


@pytest.fixture(scope="module")
def reference() -> SentenceEncoder:
    """Today's path: torch's own thread count, pinned."""
    return load_encoder(device="cpu", threads=torch.get_num_threads())


def _with_threads(ref: SentenceEncoder, threads: int | None) -> SentenceEncoder:
    return SentenceEncoder(
        ref.model,
        ref.tokenizer,
        encoder_id=ref.encoder_id,
        max_length=ref.max_length,
        device=ref.device,
        threads=threads,
    )


@pytest.fixture(scope="module")
def ref_emb(reference: SentenceEncoder) -> torch.Tensor:
    return reference.encode(TEXTS, batch_size=BATCH)  # (N, D)


@pytest.mark.parametrize("threads", [None, 1])
def test_thread_policy_matches_reference(
    reference: SentenceEncoder, ref_emb: torch.Tensor, threads: int | None
) -> None:
    fast = _with_threads(reference, threads)
    emb = fast.encode(TEXTS, batch_size=BATCH)
    assert emb.shape == ref_emb.shape == (len(TEXTS), reference.dim)
    assert (emb - ref_emb).abs().max().item() <= THREADS_ATOL
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)
    assert fast.last_threads is not None and fast.last_threads >= 1
    if threads is not None:
        assert fast.last_threads == threads


def test_order_preserved_under_bucketing(reference: SentenceEncoder, ref_emb: torch.Tensor):
    """Length-grouped batches come back in input order: a permuted input gives permuted rows,
    and each row equals the text embedded on its own (no padding at all)."""
    fast = _with_threads(reference, None)
    perm = torch.randperm(len(TEXTS), generator=torch.Generator().manual_seed(0))
    emb = fast.encode([TEXTS[i] for i in perm.tolist()], batch_size=BATCH)
    assert (emb - ref_emb[perm]).abs().max().item() <= THREADS_ATOL
    for i in (0, 8, len(TEXTS) - 1):
        alone = fast.encode([TEXTS[i]])
        assert (alone[0] - ref_emb[i]).abs().max().item() <= 1e-5


def test_encoder_id_ignores_threads_and_settings_restored(reference: SentenceEncoder) -> None:
    before = torch.get_num_threads()
    one = _with_threads(reference, 1)
    one.encode(TEXTS[:12], batch_size=4)
    assert torch.get_num_threads() == before  # process setting restored after the call
    assert reference.encoder_id == one.encoder_id == BUNDLED_ID
    assert load_encoder(device="cpu", threads=1).encoder_id == BUNDLED_ID


def test_small_calls_do_not_sample(reference: SentenceEncoder, monkeypatch) -> None:
    """A call within one batch keeps the process setting and pays no sampling delay."""
    monkeypatch.setattr(enc_mod, "idle_cores", lambda: pytest.fail("sampled a one-batch call"))
    fast = _with_threads(reference, None)
    fast.encode(TEXTS[:3], batch_size=BATCH)
    assert fast.last_threads == torch.get_num_threads()


def test_auto_threads_bounds(monkeypatch) -> None:
    monkeypatch.setattr(enc_mod, "idle_cores", lambda: 0.0)  # every core busy
    assert auto_threads(4) == 1
    monkeypatch.setattr(enc_mod, "idle_cores", lambda: 7.6)
    assert auto_threads(4) == 4
    monkeypatch.setattr(enc_mod, "idle_cores", lambda: 1.6)
    assert auto_threads(4) == 2
    monkeypatch.setattr(enc_mod, "idle_cores", lambda: None)  # no /proc/stat: torch's default
    assert auto_threads(3) == 3


def test_idle_cores(monkeypatch) -> None:
    idle = enc_mod.idle_cores(0.05)
    if idle is not None:  # Linux: a share of the cores
        assert 0.0 <= idle <= (os.cpu_count() or 1) + 1e-9
    monkeypatch.setattr(enc_mod, "_cpu_ticks", lambda: None)
    assert enc_mod.idle_cores(0.0) is None


def test_torch_threads_restores_on_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_config_validates_threads() -> None:
    assert EncoderConfig().threads is None
    assert EncoderConfig(threads=2).threads == 2
    with pytest.raises(ValueError):
        EncoderConfig(threads=0)
