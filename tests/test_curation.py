"""Weighting rules and the RRM augmentation, on hand-made inputs and as properties."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rmcore.curation import (
    WEIGHTING_RULES,
    apply_rule,
    priority_sampling,
    prompt_free_filter,
    prompt_free_priority,
    rrm_augment,
)

frees = arrays(np.float64, st.integers(1, 60), elements=st.floats(-30, 30))


# ----------------------------------------------------------------------------- weighting rules


def test_registry_names() -> None:
    assert set(WEIGHTING_RULES) == {
        "uniform",
        "prompt-free-priority",
        "prompt-free-filter",
        "priority-sampling",
    }
    np.testing.assert_array_equal(
        apply_rule("uniform", np.array([3.0, -1.0, 0.0]), {}, seed=0), [1, 1, 1]
    )


def test_priority_by_hand() -> None:
    free = np.array([-2.0, 0.0, 1.0, 3.0])
    raw = np.array([1 / (1 + math.exp(f / 2.0)) for f in free])  # sigmoid(-free / tau), tau = 2
    expected = raw / raw.mean()
    np.testing.assert_allclose(
        apply_rule("prompt-free-priority", free, {"tau": 2.0}, seed=0), expected
    )


@settings(max_examples=60, deadline=None)
@given(free=frees, tau=st.floats(0.5, 10))
@example(free=np.array([0.0, 0.5] + [4.0] * 35), tau=1.0)  # both small gaps at the 10x cap
def test_priority_has_mean_one_and_decreases_with_free(free: np.ndarray, tau: float) -> None:
    w = prompt_free_priority(free, tau=tau)
    assert np.isfinite(w).all() and (w > 0).all()
    assert w.mean() == pytest.approx(1.0)
    order = np.argsort(free, kind="stable")
    f, ws = free[order], w[order]
    assert (np.diff(ws) <= 0).all()  # non-increasing; ties where free ties or sigmoid saturates
    # strictly decreasing where the gaps differ, before the cap ties the largest weights
    uncapped = prompt_free_priority(free, tau=tau, cap=None)[order]
    z = f / tau
    distinguishable = (np.diff(f) > 1e-6) & (np.abs(z[:-1]) < 10) & (np.abs(z[1:]) < 10)
    assert (np.diff(uncapped)[distinguishable] < 0).all()


def test_priority_is_stable_for_extreme_gaps() -> None:
    w = prompt_free_priority(np.array([1e6, 1e6 + 1.0, -1e6]))
    assert np.isfinite(w).all() and w.mean() == pytest.approx(1.0)
    assert w[2] == pytest.approx(3.0)  # the only pair not explained by the response alone
    w = prompt_free_priority(np.array([2000.0, 2001.0]))  # sigmoid underflows to 0 in float64
    assert np.isfinite(w).all() and w[0] > w[1]


def test_filter_by_hand_with_tie_at_threshold() -> None:
    free = np.array([5.0, -1.0, 3.0, 0.0, 2.0, 2.0, 7.0, -4.0])
    # q = 0.5 keeps 4: -4, -1, 0 and the first of the two 2.0 ties (position 4).
    np.testing.assert_array_equal(prompt_free_filter(free, q=0.5), [0, 1, 0, 1, 1, 0, 0, 1])


@settings(max_examples=60, deadline=None)
@given(free=frees, q=st.floats(0.01, 1.0))
def test_filter_keeps_exact_fraction_of_smallest(free: np.ndarray, q: float) -> None:
    w = apply_rule("prompt-free-filter", free, {"q": q}, seed=0)
    assert set(np.unique(w)) <= {0.0, 1.0}
    assert w.sum() == max(1, math.floor(q * free.size + 0.5))
    if (w == 0).any():
        assert free[w == 1].max() <= free[w == 0].min()


def test_sampling_is_reproducible_and_seeded() -> None:
    free = np.linspace(-2, 2, 50)
    a = priority_sampling(free, seed=11)
    assert a.sum() == 50 and (a == np.round(a)).all() and (a >= 0).all()
    np.testing.assert_array_equal(a, apply_rule("priority-sampling", free, {}, seed=11))
    assert not np.array_equal(a, priority_sampling(free, seed=12))
    assert priority_sampling(free, size=7, seed=0).sum() == 7


def test_sampling_is_proportional_to_exp_minus_free() -> None:
    free = np.array([0.0, math.log(2), math.log(4)])  # exp(-free) = 1, 1/2, 1/4
    p = np.array([4, 2, 1]) / 7
    size = 200_000
    counts = priority_sampling(free, tau=1.0, size=size, seed=0)
    tol = 4 * np.sqrt(p * (1 - p) / size)
    np.testing.assert_array_less(np.abs(counts / size - p), tol)
    # tau rescales: tau = 0.5 squares the ratios -> 16 : 4 : 1.
    counts = priority_sampling(free, tau=0.5, size=size, seed=1)
    p = np.array([16, 4, 1]) / 21
    np.testing.assert_array_less(np.abs(counts / size - p), 4 * np.sqrt(p * (1 - p) / size))


@pytest.mark.parametrize(
    ("name", "params", "free", "match"),
    [
        ("softmax", {}, [0.0], "unknown weighting rule 'softmax'; choose one of"),
        (
            "prompt-free-priority",
            {"temperature": 1.0},
            [0.0],
            r"unknown parameter\(s\) \['temperature'\]",
        ),
        ("uniform", {"tau": 1.0}, [0.0], "accepts"),
        ("prompt-free-priority", {"tau": 0.0}, [0.0], "tau must be a positive finite number"),
        ("prompt-free-priority", {"tau": float("nan")}, [0.0], "tau must be"),
        ("priority-sampling", {"tau": -1}, [0.0], "tau must be"),
        ("prompt-free-filter", {"q": 0.0}, [0.0], r"q must be a fraction in \(0, 1\]"),
        ("prompt-free-filter", {"q": 1.5}, [0.0], "q must be"),
        ("prompt-free-filter", {"q": "half"}, [0.0], "q must be"),
        ("priority-sampling", {"size": -3}, [0.0], "size must be a non-negative integer"),
        ("priority-sampling", {"size": 2.5}, [0.0], "size must be"),
        ("priority-sampling", {"size": 3}, [], "zero pairs"),
        ("uniform", {}, [[0.0, 1.0]], "1-D"),
        ("uniform", {}, [0.0, float("nan")], "non-finite"),
    ],
)
def test_invalid_params_give_clear_errors(name: str, params: dict, free: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        apply_rule(name, np.array(free, dtype=np.float64), params, seed=0)


@pytest.mark.parametrize("name", sorted(WEIGHTING_RULES))
def test_every_rule_handles_no_pairs(name: str) -> None:
    assert apply_rule(name, np.zeros(0), {}, seed=0).shape == (0,)


# ----------------------------------------------------------------------------- RRM augmentation


def _pairs(prompt_sizes: list[int]) -> pl.DataFrame:
    """Pairs with unique response ids; prompt p owns prompt_sizes[p] consecutive pairs."""
    prompt = np.repeat(np.arange(len(prompt_sizes)), prompt_sizes)
    n = prompt.size
    return pl.DataFrame(
        {
            "pair_id": np.arange(n) + 100,
            "prompt_id": [f"x{p}" for p in prompt],
            "chosen_id": [f"c{i}" for i in range(n)],
            "rejected_id": [f"r{i}" for i in range(n)],
        }
    )


def _owner(pairs: pl.DataFrame) -> dict[str, tuple[int, str]]:
    """response id -> (pair_id, prompt_id)."""
    out = {}
    for row in pairs.iter_rows(named=True):
        out[row["chosen_id"]] = out[row["rejected_id"]] = (row["pair_id"], row["prompt_id"])
    return out


def _check_structure(pairs: pl.DataFrame, aug: pl.DataFrame) -> None:
    owner = _owner(pairs)
    prompt_of_pair = dict(zip(pairs["pair_id"], pairs["prompt_id"], strict=True))
    for row in aug.iter_rows(named=True):
        src, x = row["source_pair_id"], row["prompt_id"]
        assert x == prompt_of_pair[src]  # always scored under the source prompt x_i
        a_pair, a_prompt = owner[row["chosen_id"]]
        b_pair, b_prompt = owner[row["rejected_id"]]
        assert b_pair != src and b_prompt != x  # the loser is always borrowed, from another prompt
        if row["rrm_kind"] == "non_contextual":
            assert row["label"] == 1.0 and a_pair == src
        else:
            assert row["rrm_kind"] == "neutral" and row["label"] == 0.5
            assert a_pair != src and a_prompt != x


def test_rrm_full_augmentation_by_hand() -> None:
    pairs = _pairs([4] * 10)
    res = rrm_augment(pairs, seed=0, keep_fraction=1.0, cap=None)
    aug = res.pairs
    assert aug.columns == [
        "prompt_id",
        "chosen_id",
        "rejected_id",
        "label",
        "source_pair_id",
        "rrm_kind",
    ]
    assert res.counts == {
        "generated": 560,
        "subsampled": 560,
        "dropped_identical": 0,
        "after_filter": 560,
        "kept": 560,
    }
    assert aug.height == 14 * 40
    per_pair = aug.group_by("source_pair_id").agg(
        (pl.col("rrm_kind") == "non_contextual").sum().alias("nc"),
        (pl.col("rrm_kind") == "neutral").sum().alias("ne"),
    )
    assert (per_pair["nc"] == 8).all() and (per_pair["ne"] == 6).all()
    _check_structure(pairs, aug)
    owner = _owner(pairs)
    for (src,), group in aug.group_by("source_pair_id"):
        own = {f"c{src - 100}", f"r{src - 100}"}
        nc = group.filter(pl.col("rrm_kind") == "non_contextual")
        borrowed = set(nc["rejected_id"])
        # Two donor pairs j != k, both of their responses borrowed.
        assert len(borrowed) == 4 and len({owner[b][0] for b in borrowed}) == 2
        assert set(zip(nc["chosen_id"], nc["rejected_id"], strict=True)) == {
            (a, b) for a in own for b in borrowed
        }
        ne = group.filter(pl.col("rrm_kind") == "neutral")
        assert {frozenset(p) for p in zip(ne["chosen_id"], ne["rejected_id"], strict=True)} == {
            frozenset((a, b)) for a in borrowed for b in borrowed if a < b
        }


def test_rrm_half_keeps_seven_per_pair_and_is_reproducible() -> None:
    pairs = _pairs([3, 5, 1, 2, 4, 1, 1, 3])
    res = rrm_augment(pairs, seed=3, cap=None)
    assert res.n_generated == 14 * 20 and res.n_subsampled == 7 * 20 and res.n_kept == 140
    assert (res.pairs.group_by("source_pair_id").len()["len"] == 7).all()
    _check_structure(pairs, res.pairs)
    assert res.pairs.equals(rrm_augment(pairs, seed=3, cap=None).pairs)
    assert not res.pairs.equals(rrm_augment(pairs, seed=4, cap=None).pairs)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=3, max_size=12), seed=st.integers(0, 10_000))
def test_rrm_borrows_only_from_other_prompts(sizes: list[int], seed: int) -> None:
    n = sum(sizes)
    if n - max(sizes) < 2:
        with pytest.raises(ValueError, match="at least two pairs with a different prompt"):
            rrm_augment(_pairs(sizes, cap=None), seed=seed)
        return
    pairs = _pairs(sizes)
    res = rrm_augment(pairs, seed=seed, keep_fraction=1.0, cap=None)
    assert res.n_kept == 14 * n
    _check_structure(pairs, res.pairs)


def test_rrm_reference_filter_keeps_wrong_or_unsure() -> None:
    pairs = _pairs([2] * 6)
    seen = {}

    def unsure(prompt_ids: pl.Series, a_ids: pl.Series, b_ids: pl.Series) -> np.ndarray:
        seen["n"] = prompt_ids.len()
        return np.zeros(prompt_ids.len())  # sigmoid = 0.5: right on neutral, unsure on the rest

    res = rrm_augment(pairs, seed=0, keep_fraction=1.0, reference_gap=unsure, cap=None)
    assert seen["n"] == 14 * 12
    assert set(res.pairs["rrm_kind"]) == {"non_contextual"} and res.n_kept == 8 * 12

    def confident(prompt_ids: pl.Series, a_ids: pl.Series, b_ids: pl.Series) -> np.ndarray:
        return np.full(prompt_ids.len(), 10.0)  # sure the first wins: right on non-contextual

    res = rrm_augment(pairs, seed=0, keep_fraction=1.0, reference_gap=confident, cap=None)
    assert set(res.pairs["rrm_kind"]) == {"neutral"} and res.n_kept == 6 * 12
    res = rrm_augment(
        pairs, seed=0, keep_fraction=1.0, reference_gap=confident, uncertainty_threshold=0.6
    )
    assert res.n_kept == 0

    def knows_prompts(prompt_ids: pl.Series, a_ids: pl.Series, b_ids: pl.Series) -> np.ndarray:
        # A model that prefers on-prompt responses: +5 when a belongs to the prompt, else 0.
        owner = _owner(pairs)
        return np.array(
            [5.0 if owner[a][1] == x else 0.0 for x, a in zip(prompt_ids, a_ids, strict=True)]
        )

    res = rrm_augment(pairs, seed=0, keep_fraction=1.0, reference_gap=knows_prompts, cap=None)
    assert res.n_kept == 0  # right on every pair: sigmoid(5) = 0.993 vs 1, sigmoid(0) = 0.5 vs 0.5


def test_rrm_drops_self_comparisons() -> None:
    pairs = _pairs([1] * 8).with_columns(rejected_id=pl.lit("same"))
    res = rrm_augment(pairs, seed=0, keep_fraction=1.0, cap=None)
    # Per pair: own rejected vs r_j and vs r_k, and the neutral r_j vs r_k, are all "same" vs "same".
    assert res.n_identical == 3 * 8
    assert res.n_kept == 11 * 8
    assert (res.pairs["chosen_id"] != res.pairs["rejected_id"]).all()


def test_rrm_invalid_inputs() -> None:
    pairs = _pairs([2, 2])
    with pytest.raises(ValueError, match="keep_fraction"):
        rrm_augment(pairs, seed=0, keep_fraction=0.0)
    with pytest.raises(ValueError, match="uncertainty_threshold"):
        rrm_augment(pairs, seed=0, uncertainty_threshold=1.5)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['pair_id'\]"):
        rrm_augment(pairs.drop("pair_id"), seed=0)
    with pytest.raises(ValueError, match="at least two pairs"):
        rrm_augment(_pairs([5, 1]), seed=0)
    with pytest.raises(ValueError, match="finite gaps"):
        rrm_augment(pairs, seed=0, reference_gap=lambda x, a, b: np.zeros(3))


# ----------------------------------------------------------------------------- set definitions


def test_set_definition_is_keyword_only_and_checks_the_augmentation() -> None:
    from rmcore.config import SetDefinition

    with pytest.raises(TypeError):
        SetDefinition("s", "toy")  # type: ignore[misc]
    with pytest.raises(ValueError, match="augment"):
        SetDefinition(name="s", dataset="toy", augment="mixup")
    plain = SetDefinition(name="s", dataset="toy")
    assert not plain.needs_scores
    assert SetDefinition(name="s", dataset="toy", rule="prompt-free-filter").needs_scores
    assert SetDefinition(name="s", dataset="toy", rrm_filter=True).needs_scores
    assert SetDefinition(name="s", dataset="toy", predicate="free_gap < 0").needs_scores


def test_set_identity_covers_the_definition_and_its_inputs() -> None:
    from rmcore.config import SetDefinition

    base = SetDefinition(name="s", dataset="toy", rule="prompt-free-priority", params={"tau": 1.0})
    digest = base.identity(dataset_id=1, scoring_run_id=2)
    assert len(digest) == 64
    assert digest == SetDefinition(
        name="s", dataset="toy", rule="prompt-free-priority", params={"tau": 1.0}
    ).identity(dataset_id=1, scoring_run_id=2)
    assert digest != base.identity(dataset_id=1, scoring_run_id=3)
    assert digest != base.identity(dataset_id=2, scoring_run_id=2)
    other = SetDefinition(name="s", dataset="toy", rule="prompt-free-priority", params={"tau": 2.0})
    assert digest != other.identity(dataset_id=1, scoring_run_id=2)


def test_method_names_join_models_and_benchmarks() -> None:
    from rmcore.config import METHODS
    from rmcore.curation import method_name

    for name, spec in METHODS.items():
        # rrm-epochs trains on the same set as rrm (only its step budget differs), so a
        # model records the set's method, rrm; the ablation labels its benchmark rows
        expected = "rrm" if spec.get("budget") == "epochs" else name
        assert method_name(spec["rule"], spec.get("augment"), spec.get("online", False)) == expected
    assert method_name("uniform", None) == "vanilla"
    assert method_name("uniform", None, online=True) == "prompt-free-online"
    assert method_name("uniform", "rrm", online=True) == "rrm+online"
    assert method_name("uniform", "rrm") == "rrm"
    assert method_name("priority-sampling", None) == "priority-sampling"
    assert method_name("prompt-free-filter", "rrm") == "prompt-free-filter+rrm"
