"""Metrics on hand-made inputs; every expected value is derived by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rmcore.evaluation.metrics import (
    bootstrap_ci,
    calibration_curve,
    expected_calibration_error,
    length_bias_subsets,
    make_prompt_swap_pairs,
    mean_ci_over_seeds,
    preference_metrics,
    prompt_swap_accuracy,
    reward_length_correlation,
)

LN3 = math.log(3.0)  # sigmoid(ln 3) = 3 / (3 + 1) = 0.75, sigmoid(-ln 3) = 0.25

finite = st.floats(-30, 30, allow_nan=False)


def test_preference_metrics_by_hand() -> None:
    gap = [LN3, -LN3, 0.0, LN3, 0.0]
    label = [1.0, 1.0, 1.0, 0.5, 0.5]
    m = preference_metrics(gap, label)
    # hard labels: pairs 0, 1, 2. pair 0: gap > 0, right; pair 1: gap < 0 with chosen
    # winning, wrong; pair 2: gap == 0 counts as wrong -> 1 / 3. Ties: pairs 3, 4.
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert (m["n"], m["n_hard"], m["n_ties"]) == (5, 3, 2)
    # p = sigmoid(gap) = [.75, .25, .5, .75, .5]
    # log-loss terms -[y ln p + (1-y) ln(1-p)]:
    #   -ln .75, -ln .25, -ln .5, -(.5 ln .75 + .5 ln .25), -ln .5
    expected_ll = (
        -math.log(0.75)
        - math.log(0.25)
        - math.log(0.5)
        - 0.5 * (math.log(0.75) + math.log(0.25))
        - math.log(0.5)
    ) / 5
    assert m["log_loss"] == pytest.approx(expected_ll)
    # Brier: (.75-1)^2 + (.25-1)^2 + (.5-1)^2 + (.75-.5)^2 + 0 = .0625+.5625+.25+.0625 = .9375
    assert m["brier"] == pytest.approx(0.9375 / 5)


def test_preference_metrics_rejected_wins_and_torch_input() -> None:
    # label 0 means the rejected answer won: a negative gap is right, a positive one wrong.
    m = preference_metrics(torch.tensor([-2.0, 1.0]), torch.tensor([0.0, 0.0]))
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["n_ties"] == 0


def test_preference_metrics_all_ties_and_extreme_gaps() -> None:
    assert math.isnan(preference_metrics([1.0], [0.5])["accuracy"])
    # |gap| = 1000: ln sigmoid(1000) ~ 0 and ln sigmoid(-1000) ~ -1000; no overflow to inf.
    m = preference_metrics([1000.0, -1000.0], [1.0, 1.0])
    assert m["log_loss"] == pytest.approx((0.0 + 1000.0) / 2)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 30), elements=finite),
    st.data(),
)
def test_preference_metrics_swap_symmetry(gap: np.ndarray, data: st.DataObject) -> None:
    """Swapping chosen and rejected (gap -> -gap, label -> 1 - label) changes nothing."""
    label = data.draw(
        hnp.arrays(np.float64, gap.shape, elements=st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0]))
    )
    a, b = preference_metrics(gap, label), preference_metrics(-gap, 1 - label)
    for key in ("n_hard", "n_ties"):
        assert a[key] == b[key]
    for key in ("accuracy", "log_loss", "brier"):
        assert a[key] == pytest.approx(b[key], nan_ok=True)
    # the naive formula agrees where it keeps precision (|gap| <= 10: 1 - p >= 4.5e-5)
    g = np.clip(gap, -10, 10)
    p = 1 / (1 + np.exp(-g))
    naive = -(label * np.log(p) + (1 - label) * np.log1p(-p)).mean()
    assert preference_metrics(g, label)["log_loss"] == pytest.approx(naive, rel=1e-9)


def test_bootstrap_ci_two_point_distribution() -> None:
    # Resampled mean of [0, 1] with n = 2 takes 0, .5, 1 with prob .25, .5, .25.
    # The 30% and 70% quantiles both fall inside the .5 atom (cdf .25 -> .75).
    lo, hi = bootstrap_ci(np.array([0.0, 1.0]), n_boot=4000, alpha=0.6, seed=1)
    assert (lo, hi) == (0.5, 0.5)
    # 2.5% / 97.5% quantiles sit on the outer atoms 0 and 1.
    assert bootstrap_ci(np.array([0.0, 1.0]), n_boot=4000, seed=1) == (0.0, 1.0)


def test_bootstrap_ci_normal_approximation_and_pairs() -> None:
    x = np.tile([0.0, 1.0], 200)  # N = 400, mean .5
    lo, hi = bootstrap_ci(x, n_boot=2000, seed=0)
    # normal approx: .5 +/- 1.96 * sqrt(.25 / 400) = .5 +/- .049
    assert 0.44 < lo < 0.47 and 0.53 < hi < 0.56
    assert bootstrap_ci(x, n_boot=2000, seed=0) == (lo, hi)  # seeded

    # aligned arrays: the same rows are drawn for gap and label, so an all-correct set
    # stays all-correct in every resample.
    gap, label = np.array([1.0, -2.0, 3.0]), np.array([1.0, 0.0, 1.0])

    def acc(g: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ((g > 0) == (y > 0.5)).mean(axis=-1)

    assert bootstrap_ci((gap, label), acc, n_boot=200) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci((gap, label[:2]), acc)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=finite))
def test_bootstrap_ci_bounds_the_sample_range(x: np.ndarray) -> None:
    lo, hi = bootstrap_ci(x, n_boot=200)
    assert x.min() - 1e-9 <= lo <= hi <= x.max() + 1e-9


def test_mean_ci_over_seeds() -> None:
    # [1, 2, 3]: mean 2, sample sd 1, t(0.975, df=2) = 4.3027 (t table),
    # half width = 4.3027 / sqrt(3) = 2.4842.
    mean, lo, hi = mean_ci_over_seeds([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert lo == pytest.approx(2 - 2.4842, abs=1e-3) and hi == pytest.approx(2 + 2.4842, abs=1e-3)
    m1, lo1, hi1 = mean_ci_over_seeds([0.7])
    assert m1 == 0.7 and math.isnan(lo1) and math.isnan(hi1)
    _, blo, bhi = mean_ci_over_seeds([1.0, 2.0, 3.0], method="bootstrap")
    assert 1.0 <= blo <= 2.0 <= bhi <= 3.0
    with pytest.raises(ValueError):
        mean_ci_over_seeds([1.0, 2.0], method="nope")


def test_calibration_by_hand() -> None:
    prob = [0.05, 0.15, 0.12, 0.95, 1.0]
    label = [0.0, 1.0, 0.0, 1.0, 1.0]
    # bins of width .1: .05 -> 0; .15, .12 -> 1; .95 -> 9; 1.0 -> 9 (last bin closed)
    curve = calibration_curve(prob, label, n_bins=10)
    assert curve.counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    np.testing.assert_allclose(curve.centers, np.arange(10) / 10 + 0.05)
    assert curve.mean_predicted[1] == pytest.approx(0.135)  # (.15 + .12) / 2
    assert curve.mean_observed[1] == pytest.approx(0.5)
    assert np.isnan(curve.mean_predicted[5]) and np.isnan(curve.mean_observed[5])
    # ECE = (1 * |.05 - 0| + 2 * |.135 - .5| + 2 * |.975 - 1|) / 5 = (.05 + .73 + .05) / 5
    assert expected_calibration_error(prob, label) == pytest.approx(0.166)


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(0, 1)),
    st.data(),
)
def test_ece_range_and_perfect_calibration(prob: np.ndarray, data: st.DataObject) -> None:
    label = data.draw(hnp.arrays(np.float64, prob.shape, elements=st.floats(0, 1)))
    assert 0.0 <= expected_calibration_error(prob, label) <= 1.0
    # predicting the soft label itself is perfectly calibrated in every bin
    assert expected_calibration_error(prob, prob) == pytest.approx(0.0, abs=1e-12)


def test_prompt_swap_accuracy() -> None:
    # 3 > 1 yes; 1 > 1 no (tie); 2 > 3 no; 5 > 4 yes -> 2 / 4
    assert prompt_swap_accuracy([3.0, 1.0, 2.0, 5.0], [1.0, 1.0, 3.0, 4.0]) == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=40), st.integers(0, 10_000))
def test_prompt_swap_donor_has_other_prompt(prompts: list[int], seed: int) -> None:
    p = np.array(prompts)
    if np.unique(p).size < 2:
        with pytest.raises(ValueError):
            make_prompt_swap_pairs(p, np.arange(p.size), seed)
        return
    item, donor = make_prompt_swap_pairs(p, np.arange(p.size), seed)
    assert item.tolist() == list(range(p.size))
    assert (p[donor] != p[item]).all()
    again = make_prompt_swap_pairs(p, np.arange(p.size), seed)[1]
    assert (again == donor).all()


def test_prompt_swap_donors_are_uniform() -> None:
    # prompts A, B, B, C: item 0 may borrow from items 1, 2, 3 (1/3 each);
    # item 1 from items 0 and 3 (1/2 each).
    prompts = np.array(["A", "B", "B", "C"])
    donors = np.stack([make_prompt_swap_pairs(prompts, np.arange(4), s)[1] for s in range(3000)])
    freq0 = np.bincount(donors[:, 0], minlength=4) / 3000
    freq1 = np.bincount(donors[:, 1], minlength=4) / 3000
    np.testing.assert_allclose(freq0, [0, 1 / 3, 1 / 3, 1 / 3], atol=0.04)
    np.testing.assert_allclose(freq1, [0.5, 0, 0, 0.5], atol=0.04)


def test_prompt_swap_avoids_shared_responses() -> None:
    # item 0 and 1 share response "r": each must borrow item 2's "s"; item 2 any of 0, 1.
    for seed in range(20):
        _, donor = make_prompt_swap_pairs([0, 1, 2], ["r", "r", "s"], seed)
        assert donor[0] == 2 and donor[1] == 2 and donor[2] in (0, 1)
    with pytest.raises(ValueError):
        make_prompt_swap_pairs([0, 1], ["r", "r"], 0)


def test_length_bias_subsets_by_hand() -> None:
    gap = np.array([1.0, 1.0, -1.0, -1.0, 2.0, 0.3])
    label = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.5])
    len_c = [10, 5, 5, 10, 7, 3]
    len_r = [5, 10, 10, 5, 7, 9]
    # 0: winner chosen (10 vs 5) longer, gap > 0 right
    # 1: winner chosen (5 vs 10) shorter, right
    # 2: winner chosen (5 vs 10) shorter, gap < 0 wrong
    # 3: label 0 -> winner is rejected (5 vs 10) shorter, gap < 0 right
    # 4: equal lengths, in neither subset
    # 5: tie label: the chosen (3 vs 9) counts as the winner -> shorter, counted as a tie
    masks = length_bias_subsets(label, len_c, len_r)
    assert list(masks) == ["winner_longer", "winner_shorter"]
    assert masks["winner_longer"].tolist() == [True, False, False, False, False, False]
    assert masks["winner_shorter"].tolist() == [False, True, True, True, False, True]
    shorter = preference_metrics(gap[masks["winner_shorter"]], label[masks["winner_shorter"]])
    assert shorter["accuracy"] == pytest.approx(2 / 3) and shorter["n_hard"] == 3
    assert shorter["n_ties"] == 1
    longer = preference_metrics(gap[masks["winner_longer"]], label[masks["winner_longer"]])
    assert longer["accuracy"] == 1.0 and longer["n_hard"] == 1
    assert not (masks["winner_longer"] | masks["winner_shorter"])[4]


def test_length_bias_subsets_tie_counts_chosen_as_winner() -> None:
    # label 0.5: the chosen is the winner (label >= 0.5), so a longer chosen is "winner longer".
    masks = length_bias_subsets([0.5, 0.5, 0.4], [10, 2, 10], [2, 10, 2])
    assert masks["winner_longer"].tolist() == [True, False, False]
    assert masks["winner_shorter"].tolist() == [False, True, True]


def test_reward_length_correlation_by_hand() -> None:
    rewards = [1, 2, 3, 3, 2, 1, 0, 5, 5, 1, 1, 1]
    lengths = [10, 20, 30, 1, 2, 3, 4, 1, 2, 1, 2, 3]
    groups = ["a"] * 3 + ["b"] * 4 + ["c"] * 2 + ["d"] * 3
    m = reward_length_correlation(rewards, lengths, groups)
    # a: perfectly increasing +1; b: perfectly decreasing -1; c: 2 responses, skipped;
    # d: constant rewards, undefined -> left out. Mean of (+1, -1) = 0.
    assert m["within_group_spearman"] == pytest.approx(0.0)
    assert m["n_groups"] == 2 and m["n_groups_undefined"] == 1

    # one group, no ties: ranks r = [1,2,3,4], l = [1,3,2,4]; d = [0,-1,1,0], sum d^2 = 2;
    # rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8, both within the group and pooled.
    one = reward_length_correlation([1, 2, 3, 4], [1, 3, 2, 4], ["g"] * 4)
    assert one["within_group_spearman"] == pytest.approx(0.8)
    assert one["pooled_spearman"] == pytest.approx(0.8)


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float64, 12, elements=st.floats(-5, 5), unique=True),
    hnp.arrays(np.int64, 12, elements=st.integers(1, 100_000), unique=True),
)
def test_reward_length_correlation_rank_invariance(r: np.ndarray, lengths: np.ndarray) -> None:
    """Spearman sees only ranks: a monotone transform of lengths changes nothing.

    (Squaring positive ints is exact in float64, so it cannot create rank ties.)
    """
    groups = np.repeat([0, 1, 2], 4)
    a = reward_length_correlation(r, lengths, groups)
    b = reward_length_correlation(r, lengths.astype(np.float64) ** 2, groups)
    assert a["within_group_spearman"] == pytest.approx(b["within_group_spearman"])
    assert a["pooled_spearman"] == pytest.approx(b["pooled_spearman"])
    assert -1.0 <= a["within_group_spearman"] <= 1.0
