"""Prompt sampling for re-scoring and the importance-weight math."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rmcore.decomposition.sampling import sample_prompts
from rmcore.decomposition.weights import (
    effective_sample_size,
    embedding_log_weights,
    lm_log_weights,
    normalize_log_weights,
)

# -----------------------------------------------------------------------------
# sampling


def check_sample(own: np.ndarray, pool: np.ndarray, m: int, seed: int) -> None:
    """Every invariant of a sample, written from the definitions rather than the code."""
    s = sample_prompts(own, pool, m, seed)
    assert s.ids.shape == s.mask.shape == (own.shape[0], 1 + m)
    assert (s.ids[:, 0] == own).all() and s.mask[:, 0].all()
    pool_set = set(pool.tolist())
    for row_ids, row_mask, own_id in zip(s.ids, s.mask, own, strict=True):
        drawn = row_ids[1:][row_mask[1:]].tolist()
        assert own_id not in drawn  # never the own prompt
        assert len(set(drawn)) == len(drawn)  # no duplicates
        assert set(drawn) <= pool_set
        eligible = len(pool_set - {own_id})
        assert len(drawn) == min(m, eligible)  # all eligible ones when the pool is small
        assert not row_mask[1 + len(drawn) :].any()  # padding comes last
        assert (row_ids[1:][~row_mask[1:]] == own_id).all()  # and repeats the own id


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    pool_size=st.integers(0, 25),
    m=st.integers(0, 20),
    seed=st.integers(0, 2**32 - 1),
    own_in_pool=st.booleans(),
)
def test_sample_invariants(n: int, pool_size: int, m: int, seed: int, own_in_pool: bool):
    rng = np.random.default_rng(seed)
    pool = rng.choice(1000, size=pool_size, replace=False)
    if own_in_pool and pool_size:
        own = rng.choice(pool, size=n)
    else:
        own = rng.integers(1000, 2000, size=n)  # another dataset's prompts
    check_sample(own, pool, m, seed)


def test_index_pool_and_string_ids():
    own = np.array([0, 3, 3, 9])
    s = sample_prompts(own, 10, 4, seed=1)
    check_sample(own, np.arange(10), 4, 1)
    assert np.array_equal(s.ids, sample_prompts(own, np.arange(10), 4, seed=1).ids)
    ids = np.array([f"{i:064x}" for i in range(6)])  # content-hash-like ids
    check_sample(ids[[0, 5]], ids[1:], 3, seed=2)


def test_sampling_is_reproducible_and_seed_dependent():
    own = np.arange(500) % 200
    a, b = sample_prompts(own, 200, 16, seed=3), sample_prompts(own, 200, 16, seed=3)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.mask, b.mask)
    # the pool's order and duplicates do not matter
    shuffled = np.random.default_rng(0).permutation(np.r_[np.arange(200), np.arange(50)])
    assert np.array_equal(a.ids, sample_prompts(own, shuffled, 16, seed=3).ids)
    assert not np.array_equal(a.ids, sample_prompts(own, 200, 16, seed=4).ids)


def test_sampling_is_uniform():
    """Each eligible prompt lands in a row equally often, and in each column equally often."""
    n, p, m = 20_000, 10, 3
    s = sample_prompts(np.zeros(n, dtype=np.int64), p, m, seed=5)
    counts = np.bincount(s.ids[:, 1:].ravel(), minlength=p)
    expected = n * m / (p - 1)  # prompt 0 is everyone's own
    assert counts[0] == 0
    # 5 standard deviations of a binomial(n, m / (p - 1)) count
    sd = math.sqrt(n * (m / (p - 1)) * (1 - m / (p - 1)))
    assert np.abs(counts[1:] - expected).max() < 5 * sd
    first = np.bincount(s.ids[:, 1], minlength=p)[1:]  # Floyd's order is shuffled away
    sd1 = math.sqrt(n / (p - 1) * (1 - 1 / (p - 1)))
    assert np.abs(first - n / (p - 1)).max() < 5 * sd1


def test_sampling_scales_to_100k_pairs():
    own = np.random.default_rng(0).integers(0, 100_000, 100_000)
    s = sample_prompts(own, 100_000, 16, seed=0)
    assert s.mask.all()
    assert (s.ids[:, 1:] != s.ids[:, :1]).all()
    srt = np.sort(s.ids[:, 1:], axis=1)
    assert (srt[:, 1:] != srt[:, :-1]).all()


# -----------------------------------------------------------------------------
# weights

log_weight_rows = st.lists(
    st.floats(-50, 50, allow_nan=False) | st.just(-math.inf), min_size=1, max_size=8
)


@settings(max_examples=100, deadline=None)
@given(logw=log_weight_rows, beta=st.floats(0, 5), data=st.data())
def test_normalize_log_weights(logw: list[float], beta: float, data: st.DataObject):
    k = len(logw)
    mask = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    lw, mk = torch.tensor([logw], dtype=torch.float64), torch.tensor([mask])
    w = normalize_log_weights(lw, mk, beta)[0]
    assert (w >= 0).all() and (w[~mk[0]] == 0).all()
    finite_valid = mk[0] & (torch.isfinite(lw[0]) | (beta == 0))
    if finite_valid.any():
        assert abs(w.sum().item() - 1) < 1e-12
        # against the textbook formula over the valid prompts
        vals = np.array(logw)[finite_valid.numpy()]
        ref = np.exp(beta * (vals - vals.max())) if beta else np.ones_like(vals)
        np.testing.assert_allclose(w[finite_valid].numpy(), ref / ref.sum(), rtol=1e-9)
        # invariant to a per-row shift of the log weights
        w2 = normalize_log_weights(lw + 7.5, mk, beta)[0]
        np.testing.assert_allclose(w2.numpy(), w.numpy(), rtol=1e-9, atol=1e-15)
    else:
        assert (w == 0).all()


def test_beta_zero_is_uniform_over_valid_prompts():
    logw = torch.tensor([[-3.0, 100.0, -math.inf, 2.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [False, False, False, False]])
    w = normalize_log_weights(logw, mask, beta=0.0)
    assert torch.equal(w[0], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))
    assert (w[1] == 0).all()
    with pytest.raises(ValueError, match="beta"):
        normalize_log_weights(logw, mask, beta=-1.0)
    with pytest.raises(ValueError, match="finite"):
        normalize_log_weights(torch.tensor([[math.nan]]), torch.tensor([[True]]), 1.0)


def test_large_beta_concentrates_on_the_best_prompt():
    logw = torch.tensor([[-1.0, -0.5, -2.0]], dtype=torch.float64)
    w = normalize_log_weights(logw, torch.ones_like(logw, dtype=torch.bool), beta=200.0)
    assert w[0, 1] == 1.0
    assert math.isclose(w[0, 0].item(), math.exp(-100), rel_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_subnormal=False), min_size=1, max_size=12))
def test_effective_sample_size_bounds(values: list[float]):
    w = torch.tensor([values], dtype=torch.float64)
    ess = effective_sample_size(w)[0].item()
    positive = sum(v > 0 for v in values)
    if positive == 0:
        assert ess == 0
    else:
        assert 1 - 1e-12 <= ess <= positive * (1 + 1e-12)  # Cauchy-Schwarz
        # scale invariant
        assert abs(effective_sample_size(w * 3.0)[0].item() - ess) <= 1e-9 * ess


def test_effective_sample_size_extremes():
    w = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    assert effective_sample_size(w).tolist() == [4.0, 1.0, 2.0]


def test_lm_log_weights_adds_the_two_responses():
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    assert torch.equal(lm_log_weights(a, b), a + b)
    with pytest.raises(ValueError):
        lm_log_weights(a, b[:, :4])


def test_embedding_log_weights():
    """Unit embeddings in (the encoder normalizes): the mean cosine over temperature."""
    unit = torch.nn.functional.normalize
    gen = torch.Generator().manual_seed(0)
    table = unit(torch.randn(20, 8, generator=gen, dtype=torch.float64), dim=-1)  # (P, D)
    idx = torch.randint(0, 20, (4, 5), generator=gen)  # (N, K)
    rw, rl = (
        unit(torch.randn(4, 8, generator=gen, dtype=torch.float64), dim=-1),
        unit(torch.randn(4, 8, dtype=torch.float64), dim=-1),
    )
    dense = embedding_log_weights(table[idx], rw, rl, temperature=0.1)
    assert dense.shape == (4, 5) and dense.dtype == torch.float64
    assert torch.equal(embedding_log_weights(table, rw, rl, 0.1, prompt_idx=idx), dense)
    cos = torch.nn.functional.cosine_similarity
    ref = (cos(table[idx], rw[:, None], dim=-1) + cos(table[idx], rl[:, None], dim=-1)) / 2 / 0.1
    assert torch.allclose(dense, ref)
    # a prompt pointing exactly along both responses scores 1 / temperature
    same = embedding_log_weights(rw[:, None], rw, rw, temperature=0.5)
    assert torch.allclose(same, torch.full((4, 1), 2.0, dtype=torch.float64))
    # float32 embeddings (the cache's dtype) give float64 log weights
    lw32 = embedding_log_weights(table[idx].float(), rw.float(), rl.float(), temperature=0.1)
    assert lw32.dtype == torch.float64 and torch.allclose(lw32, ref, atol=1e-5)
    with pytest.raises(ValueError):
        embedding_log_weights(table[idx], rw, rl, temperature=0.0)
