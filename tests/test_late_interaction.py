"""The late-interaction backend (issue 9): cached token states, scoring, training, save/load.

A tiny random BERT (from a config, with the bundled tokenizer) stands in for MiniLM, so every
test runs real encoder and head forward passes in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rmcore import demo
from rmcore.config import ModelSpec, ScoringConfig, TrainConfig
from rmcore.evaluation.metrics import clustered_bootstrap_ci
from rmcore.models.encoder import load_encoder
from rmcore.models.head import dedupe
from rmcore.models.late_interaction import LateInteractionRewardModel, new_head
from rmcore.models.loading import detect_backend, load_scorer
from rmcore.models.token_states import TokenStateCache
from warehouse.connection import reader

SHAPE = {"width": 16, "heads": 2, "hidden": 16, "max_length": 24}
PROMPTS = ["Answer in one sentence: what is a cat?", "Give a detailed answer: why is the sky blue?"]
RESPONSES = ["A small furry pet.", "Sunlight scatters off air molecules, blue light the most. " * 3]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, save_tiny_bert) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="module")
def model(encoder_dir) -> LateInteractionRewardModel:
    encoder = load_encoder(str(encoder_dir), device="cpu", threads=1)
    return LateInteractionRewardModel(encoder, new_head(encoder, seed=0, **SHAPE))


def all_pairs() -> tuple[list[str], list[str]]:
    """Every prompt with every response: cross-prompt combinations, as the scorer sees them."""
    return [p for p in PROMPTS for _ in RESPONSES], RESPONSES * len(PROMPTS)


def test_cached_states_score_exactly_like_fresh_ones(model, tmp_path) -> None:
    prompts, responses = all_pairs()
    fresh = model.score(prompts, responses)
    texts, inverse = dedupe([*prompts, *responses])
    cache = model.cache(tmp_path)
    ids = [f"t{i}" for i in range(len(texts))]
    for i in range(len(texts)):  # one text per call: other batches, other padding
        cache.add(ids[i : i + 1], model.states(texts[i : i + 1]))
    index, states = cache.load(pl.Series(ids))
    rows = torch.tensor([index[ids[int(i)]] for i in inverse])
    n = len(prompts)
    cached = model.score_states(states, rows[:n], rows[n:])
    assert torch.equal(cached, fresh)
    assert torch.isfinite(fresh).all() and fresh.unique().numel() == n  # prompts matter


def test_mean_pooled_states_are_the_sentence_embeddings_up_to_float16(model) -> None:
    """What `embedding` weights read for this backend: texts within `max_length` tokens give
    the encoder's own embedding up to the cache's float16 rounding; longer ones are truncated."""
    short = [PROMPTS[0], RESPONSES[0], "Why?"]
    pooled = model.states(short).mean_pooled()
    embedded = model.encoder.encode(short)
    assert (pooled - embedded).abs().max() < 2e-3
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(len(short)))
    long = [RESPONSES[1] * 4]  # past max_length (24 tokens): the first 24 tokens' mean
    assert (model.states(long).mean_pooled() - model.encoder.encode(long)).abs().max() > 1e-2


def test_cache_entries_are_invalidated_when_the_encoder_changes(encoder_dir, tmp_path) -> None:
    import shutil

    from transformers import AutoModel

    folder = tmp_path / "encoder"
    shutil.copytree(encoder_dir, folder)
    old = load_encoder(str(folder), device="cpu")
    m_old = LateInteractionRewardModel(old, new_head(old, **SHAPE))
    cache = m_old.cache(tmp_path / "states")
    cache.add(["a", "b"], m_old.states(RESPONSES))
    assert cache.missing(pl.Series(["a", "b"])).len() == 0
    net = AutoModel.from_pretrained(folder)
    with torch.no_grad():
        net.embeddings.word_embeddings.weight.mul_(2.0)
    net.save_pretrained(folder)  # same folder, new weights -> new revision in the encoder id
    new = load_encoder(str(folder), device="cpu")
    assert new.encoder_id != old.encoder_id
    m_new = LateInteractionRewardModel(new, new_head(new, **SHAPE))
    reopened = m_new.cache(tmp_path / "states")
    assert reopened.folder == cache.folder  # one folder per encoder source: disk stays bounded
    assert reopened.missing(pl.Series(["a", "b"])).to_list() == ["a", "b"]
    assert reopened.nbytes() == 0
    # the old encoder's view of the folder is reset in turn: never stale states
    assert (
        TokenStateCache(
            tmp_path / "states", old.encoder_id, max_length=SHAPE["max_length"], dim=old.dim
        )
        .index()
        .height
        == 0
    )


def test_save_load_round_trip_gives_identical_scores(model, tmp_path) -> None:
    from rmcore.training import save_trained

    path = save_trained(tmp_path / "li", model.head, {"curated_set": "toy", "rule": "uniform"})
    assert detect_backend(path) == "late-interaction"
    card = (path / "README.md").read_text()
    assert "## Input format" in card and "max_length" in card and "load_scorer" in card
    loaded = load_scorer(path, device="cpu")
    assert isinstance(loaded, LateInteractionRewardModel)
    assert (
        loaded.revision == model.revision and loaded.encoder.encoder_id == model.encoder.encoder_id
    )
    prompts, responses = all_pairs()
    assert torch.equal(loaded.score(prompts, responses), model.score(prompts, responses))


@pytest.fixture
def toy_warehouse(ingest_toy) -> str:
    """A small demo set ingested by the ingest stage into a real DuckDB file."""
    return ingest_toy(60, 20)


def score_stage(warehouse: str, model_path: str, **config: object) -> dict:
    """The score stage's steps in order (plan, per-text inputs, shards, merge), with uniform
    weights so the per-text counts are the token-state cache's alone (embedding weights, the
    default, would add the embedding cache's)."""
    from rmcore.stages import score

    plan = score.plan_run(
        warehouse,
        dataset="toy",
        config=ScoringConfig(**({"shard_size": 30, "weights": "uniform"} | config)),
        model=model_path,
        device="cpu",
    )
    prepared = score.embed_texts(warehouse, plan)
    stats = [score.score_shard(warehouse, plan, s) for s in range(plan.n_shards)]
    timings = score.merge_shards(warehouse, plan, stats, {})
    return {"prepared": prepared, "timings": timings, "plan": plan}


def test_trained_model_scores_through_shards_and_a_second_run_needs_no_encoder(
    toy_warehouse, encoder_dir
) -> None:
    from rmcore.stages.scores import load_model, token_state_cache
    from rmcore.stages.train import fit_reward_model

    spec = ModelSpec(
        dataset="toy",
        backend="late-interaction",
        base_model=str(encoder_dir),
        head_hidden=16,
        config=TrainConfig(epochs=2, lr=1e-3, batch_size=16, device="cpu"),
    )
    fitted = fit_reward_model(toy_warehouse, spec, name="li")
    assert fitted["metrics"]["train_pairs_per_second"] > 0
    first = score_stage(toy_warehouse, fitted["path"], prompts_per_pair=2)
    # training cached every text of the train and validation splits; scoring adds the test's
    assert (
        0
        < first["prepared"]["embedded"]
        < first["prepared"]["cached"] + first["prepared"]["embedded"]
    )
    scorer = load_model(fitted["path"], "cpu")
    encoder_before = scorer.encoder.n_forward
    second = score_stage(toy_warehouse, fitted["path"], prompts_per_pair=2, criterion="logit-mean")
    assert second["prepared"] == {
        "embedded": 0,
        "cached": first["prepared"]["cached"] + first["prepared"]["embedded"],
        "forward_passes": 0,
    }
    assert second["timings"]["forward_passes"] == 0
    assert second["timings"]["cache_hits"] == second["timings"]["combos"]
    # more prompts per pair: new combinations, head passes only, still no encoder pass
    third = score_stage(toy_warehouse, fitted["path"], prompts_per_pair=4)
    assert third["timings"]["forward_passes"] > 0
    assert scorer.encoder.n_forward == encoder_before
    assert token_state_cache(toy_warehouse, scorer).index().height == third["prepared"]["cached"]
    # M = 0 owes no embedding pass for `embedding` weights: the own prompt's weight is 1
    own_only = score_stage(toy_warehouse, fitted["path"], prompts_per_pair=0, weights="embedding")
    assert own_only["prepared"]["forward_passes"] == 0
    assert own_only["timings"]["cache_hits"] == own_only["timings"]["combos"]
    # `embedding` weights read the mean-pooled token states: no embedding pass, no rows
    weighted = score_stage(toy_warehouse, fitted["path"], prompts_per_pair=3, weights="embedding")
    assert weighted["prepared"]["forward_passes"] == 0
    assert scorer.encoder.n_forward == encoder_before
    with reader(toy_warehouse) as con:
        assert con.execute("SELECT count(*) FROM embeddings").fetchone() == (0,)


def test_heldout_toy_keeps_test_prompts_and_responses_out_of_training() -> None:
    frame = demo.generate_demo(seed=1, setups=demo.HARD_SETUPS, n_heldout=600)
    train = frame.filter(pl.col("split") != "test")
    test = frame.filter(pl.col("split") == "test")
    seen = set(train["prompt"]) | set(train["chosen"]) | set(train["rejected"])
    for column in ("prompt", "chosen", "rejected"):
        assert not set(test[column]) & seen, column
    fmt = frame.filter(pl.col("setup") == "heldout_format")
    # on topic both: the format request decides, and the injected length bias flips in test
    assert (fmt["relevance_gap"] == 0).all()
    detailed = fmt["prompt"].str.starts_with(demo.DETAILED_PREFIX)
    assert (detailed == fmt["chosen_longer"]).all()
    by_split = fmt.group_by("split").agg(pl.col("chosen_longer").mean()).sort("split")
    assert by_split["chosen_longer"].to_list()[0] < 0.3 < 0.7 < by_split["chosen_longer"][1]


def test_clustered_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    assert clustered_bootstrap_ci(np.full(50, 0.25), np.arange(50) % 5) == (0.25, 0.25)
    # values constant within a cluster: resampling clusters sees 10 draws, not 200
    per_cluster = rng.normal(size=10)
    values, clusters = np.repeat(per_cluster, 20), np.repeat(np.arange(10), 20)
    lo, hi = clustered_bootstrap_ci(values, clusters)
    lo_iid, hi_iid = clustered_bootstrap_ci(values, np.arange(200))
    assert lo < values.mean() < hi and hi - lo > 2 * (hi_iid - lo_iid)
