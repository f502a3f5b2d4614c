"""Evidence a user can trust (issue 10): out-of-sample free gaps, the training-only prompt
pool, RRM as published, scale-aware weights, paired intervals that cover, and verdicts that
never say "better" on an interval that includes 0."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rmcore.config import METHODS, ScoringConfig, SetDefinition
from rmcore.curation import rrm_augment
from rmcore.curation.rules import prompt_free_priority
from rmcore.decomposition.weights import (
    effective_sample_size,
    normalize_log_weights,
    temperature_for_ess,
)
from rmcore.evaluation.paired import paired_difference, subset_mean, verdict
from rmcore.evaluation.report import findings
from rmcore.stages.crossfit import combine_folds, fold_training_predicate
from rmcore.stages.curate import build_set, resolve_inputs
from warehouse import scoring as ssql
from warehouse.connection import reader, transaction


@pytest.fixture
def toy_warehouse(ingest_toy) -> str:
    """A real warehouse holding a small toy dataset `toy` (train, validation and test)."""
    return ingest_toy(160, 40)


def _fake_run(wh: str, fold: int, pair_ids: pl.Series) -> int:
    """A complete scoring run of every pair by 'model-fF' (numbers are irrelevant here)."""
    with transaction(wh) as con:
        run = ssql.create_run(
            con,
            run_key=f"fold-{fold}",
            dataset_id=1,
            pool_dataset_id=1,
            model_id=f"model-f{fold}",
            revision="r",
            backend="embed-head",
            criterion="balanced",
            prompts_per_pair=0,
            seed=0,
            weights="embedding",
            shard_size=1,
        )
        n = pair_ids.len()
        ssql.store_pair_scores(
            con,
            run.scoring_run_id,
            pl.DataFrame(
                {
                    "pair_id": pair_ids,
                    "own_gap": np.full(n, float(fold)),
                    "free_gap": np.full(n, float(fold)),
                    "related_gap": np.zeros(n),
                    "ess": np.ones(n),
                    "k": np.ones(n, dtype=np.int32),
                    "iterations": np.zeros(n, dtype=np.int32),
                    "converged": np.ones(n, dtype=bool),
                }
            ),
        )
        ssql.finish_run(con, run.scoring_run_id, n_combos=0, n_cache_hits=0, timings={})
    return run.scoring_run_id


def test_cross_fitting_never_scores_a_pair_its_model_trained_on(toy_warehouse: str) -> None:
    wh, k = toy_warehouse, 3
    with reader(wh) as con:
        all_pairs = con.sql("SELECT pair_id FROM pairs ORDER BY 1").pl()["pair_id"]
    trained_on = {}
    for fold in range(k):  # the training set each fold's reference model gets
        definition = SetDefinition(
            name=f"ref-f{fold}",
            dataset="toy",
            predicate=fold_training_predicate("split = 'train'", k, fold),
        )
        row = build_set(wh, definition, resolve_inputs(wh, definition), flow_run_id=None)
        with reader(wh) as con:
            trained_on[f"model-f{fold}"] = set(
                con.sql(
                    f"SELECT pair_id FROM curated_members WHERE curated_set_id = {row['curated_set_id']}"
                ).pl()["pair_id"]
            )
    run_id = combine_folds(
        wh, dataset="toy", fold_runs=[_fake_run(wh, f, all_pairs) for f in range(k)]
    )
    with reader(wh) as con:
        scored = con.sql(
            f"SELECT f.pair_id, f.model_id, f.fold, s.free_gap FROM scoring_folds f JOIN pair_scores s"
            f" ON s.scoring_run_id = f.scoring_run_id AND s.pair_id = f.pair_id"
            f" WHERE f.scoring_run_id = {run_id}"
        ).pl()
    assert sorted(scored["pair_id"]) == sorted(all_pairs)  # every pair, exactly once
    for pair, model in zip(scored["pair_id"], scored["model_id"], strict=True):
        assert pair not in trained_on[model]
    assert (scored["free_gap"] == scored["fold"].cast(pl.Float64)).all()  # from its fold's run
    train = set().union(*trained_on.values())
    with reader(wh) as con:
        n_train = con.execute("SELECT count(*) FROM pairs WHERE split = 'train'").fetchone()[0]
    assert len(train) == n_train  # and together the folds still train on every training pair
    assert combine_folds(wh, dataset="toy", fold_runs=[run_id - k + f for f in range(k)]) == run_id


def test_the_prompt_pool_holds_only_training_prompts(toy_warehouse: str) -> None:
    from rmcore.stages.score import plan_run

    plan = plan_run(
        toy_warehouse,
        dataset="toy",
        model="bundled-head",
        config=ScoringConfig(prompts_per_pair=8, weights="uniform"),
    )
    inputs = pl.concat([pl.read_parquet(plan.files.input(s)) for s in range(plan.n_shards)])
    sampled = inputs.select(pl.col("prompt_ids").list.slice(1)).explode("prompt_ids")
    with reader(toy_warehouse) as con:
        train_prompts = set(
            con.sql("SELECT prompt_id FROM pairs WHERE split = 'train'").pl()["prompt_id"]
        )
        other = set(con.sql("SELECT prompt_id FROM pairs WHERE split <> 'train'").pl()["prompt_id"])
    drawn = set(sampled["prompt_ids"].drop_nulls())
    assert drawn and drawn <= train_prompts and not (drawn & (other - train_prompts))
    assert set(inputs["split"]) == {"train", "validation", "test"}  # every pair is still scored


def test_the_ablation_rrm_set_is_filtered_and_capped() -> None:
    assert METHODS["rrm"]["rrm_filter"] and METHODS["rrm-epochs"]["rrm_filter"]
    assert SetDefinition(name="s", dataset="d").rrm_cap == 1.0
    n = 30
    pairs = pl.DataFrame(
        {
            "pair_id": [f"p{i}" for i in range(n)],
            "prompt_id": [f"x{i % 10}" for i in range(n)],
            "chosen_id": [f"c{i}" for i in range(n)],
            "rejected_id": [f"r{i}" for i in range(n)],
        }
    )
    calls = []

    def unsure(prompt_ids, a_ids, b_ids) -> np.ndarray:
        calls.append(prompt_ids.len())
        return np.zeros(prompt_ids.len())  # sigmoid 0.5: unsure on hard labels, right on ties

    out = rrm_augment(pairs, seed=0, keep_fraction=1.0, reference_gap=unsure, cap=1.0)
    assert calls and out.n_filtered == 8 * n  # the filter ran: only the 8 hard pairs survive
    assert out.n_kept == n and out.pairs.height == n  # capped at the number of originals
    assert set(out.pairs["rrm_kind"]) == {"non_contextual"}


frees = st.lists(st.floats(-50, 50), min_size=2, max_size=40).map(np.array)


@settings(max_examples=60, deadline=None)
@given(free=frees, tau=st.floats(0.1, 10), scale=st.floats(0.01, 100))
@example(free=np.array([0.0, 0.0, 1.0]), tau=1.0, scale=0.5)  # MAD 0: was a fixed floor of 1
def test_priority_weights_are_invariant_to_scaling_gaps_and_tau_together(
    free: np.ndarray, tau: float, scale: float
) -> None:
    np.testing.assert_allclose(
        prompt_free_priority(free * scale, tau=tau * scale),
        prompt_free_priority(free, tau=tau),
        rtol=1e-6,
        atol=1e-9,
    )
    # the default tau = c * MAD(free) scales with the gaps by itself
    np.testing.assert_allclose(
        prompt_free_priority(free * scale), prompt_free_priority(free), rtol=1e-6, atol=1e-9
    )


@settings(max_examples=60, deadline=None)
@given(free=frees, cap=st.floats(1.0, 20.0), rank=st.booleans())
def test_priority_weights_keep_mean_one_and_respect_the_cap(
    free: np.ndarray, cap: float, rank: bool
) -> None:
    w = prompt_free_priority(free, cap=cap, rank=rank)
    assert w.mean() == pytest.approx(1.0)
    assert w.max() <= cap * (1 + 1e-9)
    order = np.argsort(free, kind="stable")
    assert (np.diff(w[order]) <= 1e-9).all()  # never more weight for a larger free gap


def test_temperature_lands_the_mean_ess_in_the_band() -> None:
    gen = torch.Generator().manual_seed(0)
    cos = torch.rand(500, 17, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.ones(500, 17, dtype=torch.bool)
    t = temperature_for_ess(cos, mask, (3.0, 8.0))
    ess = effective_sample_size(normalize_log_weights(cos / t, mask, 1.0)).mean().item()
    assert 3.0 <= ess <= 8.0 and ess == pytest.approx(5.5, abs=0.05)


def _experiment(rng: np.random.Generator, delta: float, seeds: int) -> tuple[np.ndarray, ...]:
    """Per-pair correctness of two methods on a fresh test set of clustered prompts, each
    method trained with `seeds` fresh seeds (a global seed effect plus pair noise)."""
    g, per = 60, 5
    clusters = np.repeat(np.arange(g), per)
    logit = 0.8 + rng.normal(0, 1.0, g)[clusters] + rng.normal(0, 0.5, g * per)  # (N,)

    def correct(shift: float) -> np.ndarray:
        seed_effect = rng.normal(0, 0.15, (seeds, 1))
        p = 1 / (1 + np.exp(-(logit + shift + seed_effect)))
        return (rng.random(p.shape) < p).astype(float)

    return correct(delta), correct(0.0), clusters


def _true_difference(delta: float) -> float:
    rng = np.random.default_rng(123)
    a, b, _ = _experiment(rng, delta, 4000)  # many seeds: the population difference
    big = [_experiment(rng, delta, 200) for _ in range(100)]
    return float(np.mean([x.mean() - y.mean() for x, y, _ in big] + [a.mean() - b.mean()]))


def test_paired_interval_covers_a_known_difference_about_95_percent() -> None:
    delta = 0.3
    truth = _true_difference(delta)
    rng = np.random.default_rng(0)
    hits = []
    for i in range(200):
        a, b, clusters = _experiment(rng, delta, seeds=3)
        mask = np.ones(a.shape[1], dtype=bool)
        d = paired_difference(a, b, subset_mean(mask), clusters, n_boot=300, seed=i)
        hits.append(d.ci_low <= truth <= d.ci_high)
    coverage = float(np.mean(hits))
    assert 0.90 <= coverage <= 0.99, coverage


@given(
    lo=st.floats(-1, 0),
    hi=st.floats(0, 1),
    higher=st.sampled_from([True, False, None]),
)
def test_an_interval_that_includes_zero_is_never_a_verdict(lo, hi, higher) -> None:
    assert verdict(lo, hi, higher) == "no clear difference"
    paired = pl.DataFrame(
        {
            "metric": ["held-out accuracy"],
            "method": ["prio"],
            "difference": [(lo + hi) / 2],
            "ci_low": [lo],
            "ci_high": [hi],
            "verdict": [verdict(lo, hi, higher)],
        }
    )
    text = " ".join(findings(paired))
    assert "better" not in text and "worse" not in text and "no clear difference" in text


def test_verdicts_follow_the_direction_of_the_metric() -> None:
    assert verdict(0.01, 0.05, True) == "better" and verdict(0.01, 0.05, False) == "worse"
    assert verdict(-0.05, -0.01, True) == "worse" and verdict(-0.05, -0.01, None) == "lower"
    assert verdict(float("nan"), 0.1, True) == "no clear difference"


def test_same_topic_donors_come_from_the_nearest_other_prompt() -> None:
    from rmcore.evaluation.metrics import same_topic_donors

    # prompts a, b about one topic, c about another; two items per prompt
    e = {"a": [1.0, 0.0], "b": [0.9, 0.436], "c": [0.0, 1.0]}
    prompts = np.array(["a", "a", "b", "b", "c", "c"])
    responses = np.array(["ra1", "ra2", "rb1", "rb2", "rc1", "rc2"])
    emb = np.array([e[p] for p in prompts])
    item, donor = same_topic_donors(prompts, responses, emb, seed=0)
    nearest = {"a": "b", "b": "a", "c": "b"}
    assert item.tolist() == list(range(6))
    assert [prompts[d] for d in donor] == [nearest[prompts[i]] for i in item]


def test_shared_response_rule_says_who_wins_each_way() -> None:
    from rmcore.evaluation.baselines import longer_wins, shared_response_wins

    # prompt p: the reference "ref" against three answers; "a" beats it once
    test = pl.DataFrame(
        {
            "prompt_id": ["p", "p", "p"],
            "chosen_id": ["ref", "ref", "a"],
            "rejected_id": ["b", "c", "ref"],
            "chosen_chars": [10, 5, 3],
            "rejected_chars": [4, 5, 9],
        }
    )
    assert shared_response_wins(test).tolist() == [1.0, 1.0, -1.0]  # a count difference < 0
    assert longer_wins(test).tolist() == [1.0, 0.0, -1.0]
    assert shared_response_wins(test.with_columns(pl.Series("prompt_id", ["p", "q", "r"]))) is None
