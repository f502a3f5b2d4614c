"""The online variant: the model being trained re-estimates the free gaps and re-weights.

Checked against an independent computation (the head called on every (pair, prompt) cell by
hand, then the solver and the priority rule), on its schedule, and end to end through the
train stage on a real warehouse (pool = training prompts only, ESS in its band)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rmcore.config import ModelSpec, OnlineConfig, TrainConfig
from rmcore.curation.rules import prompt_free_priority
from rmcore.decomposition.solver import solve_free_gap
from rmcore.errors import InvalidArgument
from rmcore.models.embed_head import HeadConfig, RewardHead
from rmcore.training import OnlinePrompts, RowPairs, train_embed_head
from rmcore.training.embed import _pair_forward
from rmcore.training.loop import pair_gaps

N, DIM, K = 120, 8, 5


def _pairs(seed: int = 0) -> RowPairs:
    """N pairs over a table of N prompts and 2N responses; the better response is the one
    closer to the prompt, plus a response-only offset (coordinate 0) that sometimes wins."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(3 * N, DIM, generator=g)
    rows = torch.arange(N)
    a, b = N + rows, 2 * N + rows
    score = (table[rows] * table[a]).sum(-1) - (table[rows] * table[b]).sum(-1)
    a_wins = score + 2 * (table[a, 0] - table[b, 0]) > 0
    return RowPairs(
        table,
        rows,
        torch.where(a_wins, a, b),
        torch.where(a_wins, b, a),
        torch.ones(N),
        torch.ones(N),
    )


def _online(config: OnlineConfig, seed: int = 0) -> OnlinePrompts:
    """Own prompt + K - 1 other prompts per pair, the last column padding on every 4th pair."""
    g = torch.Generator().manual_seed(seed)
    others = (torch.arange(N)[:, None] + torch.randint(1, N, (N, K - 1), generator=g)) % N
    rows = torch.cat([torch.arange(N)[:, None], others], dim=1)  # (N, K)
    valid = torch.ones(N, K, dtype=torch.bool)
    valid[::4, -1] = False
    rows[~valid] = torch.arange(N)[:, None].expand(N, K)[~valid]  # padding repeats the own
    importance = torch.rand(N, K, generator=g, dtype=torch.float64) * valid
    importance = importance / importance.sum(dim=1, keepdim=True)
    return OnlinePrompts(config, rows, valid, importance, temperature=0.1)


def _head() -> RewardHead:
    torch.manual_seed(0)
    return RewardHead(HeadConfig(dim=DIM, hidden=16, dropout=0.1))


CFG = TrainConfig(epochs=5, lr=3e-3, batch_size=32, progress=False, device="cpu")


def test_online_weights_equal_the_solver_on_gaps_computed_cell_by_cell() -> None:
    pairs, online = _pairs(), _online(OnlineConfig(params={"c": 0.5, "cap": 5.0}))
    head = train_embed_head(_head(), pairs, None, CFG).model
    cross, cpu = online.expand(pairs), torch.device("cpu")
    weights, stats = online.weights(
        pair_gaps(head, _pair_forward(head, cross, cpu), len(cross), CFG, cpu)
    )
    # independently: every (pair, prompt) cell through the head, then solver and rule
    with torch.no_grad():
        e_x = pairs.table[online.prompt_rows]  # (N, K, D)
        e_w = pairs.table[pairs.w][:, None].expand(-1, K, -1)
        e_l = pairs.table[pairs.l][:, None].expand(-1, K, -1)
        gaps = (
            head(e_x.reshape(-1, DIM), e_w.reshape(-1, DIM))
            - head(e_x.reshape(-1, DIM), e_l.reshape(-1, DIM))
        ).view(N, K)
    gaps = torch.where(online.valid, gaps.double(), torch.zeros(N, K, dtype=torch.float64))
    free = solve_free_gap(gaps, online.importance).free.numpy()
    expected = prompt_free_priority(free, c=0.5, cap=5.0)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert weights.mean().item() == pytest.approx(1.0, abs=1e-5)
    assert stats["online_free_p50"] == pytest.approx(float(np.median(free)), abs=1e-4)
    assert weights.std() > 0.05  # the gaps differ, so the weights do


def test_reweighting_follows_its_schedule_and_changes_the_model() -> None:
    pairs = _pairs()
    plain = train_embed_head(_head(), pairs, None, CFG)
    scheduled = train_embed_head(
        _head(), pairs, None, CFG, _online(OnlineConfig(warmup_epochs=1, every_epochs=2))
    )
    flags = [r.get("reweighted", 0.0) for r in scheduled.history]
    assert flags == [0.0, 1.0, 0.0, 1.0, 0.0]  # before epochs 1 and 3 (0-based)
    assert scheduled.metrics["online_reweights"] == 2.0
    assert all("online_ess_mean" in r for r in scheduled.history if r.get("reweighted"))
    first = scheduled.history[0]  # the warm-up is the plain run's first epoch exactly
    assert first["train_loss"] == plain.history[0]["train_loss"]
    a, b = plain.model.state_dict(), scheduled.model.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_a_warmup_longer_than_training_never_reweights() -> None:
    pairs = _pairs()
    plain = train_embed_head(_head(), pairs, None, CFG).model.state_dict()
    late = train_embed_head(_head(), pairs, None, CFG, _online(OnlineConfig(warmup_epochs=9)))
    assert late.metrics["online_reweights"] == 0.0
    assert all(torch.equal(plain[k], late.model.state_dict()[k]) for k in plain)


def test_online_config_and_the_joint_backend_are_refused_clearly() -> None:
    with pytest.raises(InvalidArgument, match="every_epochs"):
        OnlineConfig(every_epochs=0)
    with pytest.raises(InvalidArgument, match="head backend"):
        ModelSpec(dataset="d", backend="joint", online=OnlineConfig(), config=TrainConfig())
    plain = ModelSpec(dataset="d", config=TrainConfig())
    assert plain.digest() != ModelSpec(dataset="d", online=OnlineConfig(), config=TrainConfig())


def test_train_stage_reweights_online_from_training_prompts_only(ingest_toy) -> None:
    from rmcore.stages.scores import cached_embeddings, load_encoder
    from rmcore.stages.train import (
        fit_reward_model,
        load_training_data,
        online_inputs,
        text_ids,
    )
    from warehouse.connection import reader
    from warehouse.pairs import split_pair_refs

    warehouse = ingest_toy(90, 30)
    online = OnlineConfig(prompts_per_pair=6, params={"c": 1.0, "cap": 10.0})
    spec = ModelSpec(
        dataset="toy",
        online=online,
        config=TrainConfig(epochs=3, batch_size=32, progress=False, device="cpu"),
    )
    fitted = fit_reward_model(warehouse, spec, name="online")
    assert fitted["method"] == "prompt-free-online"
    assert fitted["metrics"]["online_reweights"] == 2.0
    card = json.loads((Path(fitted["path"]) / "rmcurate.json").read_text())
    assert "online" in json.dumps(card)

    data = load_training_data(warehouse, spec, texts=False)
    encoder = load_encoder("bundled", "cpu")
    index, unit = cached_embeddings(warehouse, encoder.encoder_id, text_ids(data))
    prompts = online_inputs(spec, data, index, unit)  # what the stage trains with
    with reader(warehouse) as con:
        train_prompts = set(split_pair_refs(con, data.dataset_id, "train")["prompt_id"])
        held_out = split_pair_refs(con, data.dataset_id, "test")["prompt_id"]
    other = set(held_out) - train_prompts
    assert other  # the toy's test split has prompts of its own to leak
    row_to_id = {row: text_id for text_id, row in index.items()}
    used = {row_to_id[int(r)] for r in prompts.prompt_rows[prompts.valid]}
    assert used <= train_prompts and not used & other
    assert (
        prompts.prompt_rows[:, 0] == torch.tensor([index[p] for p in data.train["prompt_id"]])
    ).all()
    ess = (1 / (prompts.importance**2).sum(dim=1)).mean().item()
    assert 3.0 <= ess <= 8.0


def test_late_interaction_reweights_online_through_the_stage(ingest_toy) -> None:
    """The token-state path: weights from the head over cached states, importance weights from
    the states mean-pooled (no second encoder pass)."""
    from rmcore.stages.train import fit_reward_model

    warehouse = ingest_toy(40, 10)
    spec = ModelSpec(
        dataset="toy",
        backend="late-interaction",
        online=OnlineConfig(prompts_per_pair=4),
        config=TrainConfig(epochs=2, batch_size=32, progress=False, device="cpu"),
    )
    fitted = fit_reward_model(warehouse, spec, name="online-late")
    assert fitted["method"] == "prompt-free-online"
    assert fitted["metrics"]["online_reweights"] == 1.0
    assert 0.0 < fitted["metrics"]["online_weight_max"] <= 10.0
