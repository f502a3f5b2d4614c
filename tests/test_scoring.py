"""The scoring engine: recovery of injected biases (pure), and the score flow on real DuckDB
files, real Prefect runs and real MiniLM forward passes (cache, resume, no duplicates)."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest
import torch
from scipy.stats import spearmanr

from rmcore import demo
from rmcore.config import ScoringConfig
from rmcore.decomposition import scoring
from rmcore.textnorm import text_id


def demo_pairs(n_lb: int = 600, n_adv: int = 120, seed: int = 0) -> pl.DataFrame:
    df = demo.generate_demo(n_length_biased=n_lb, n_adversarial=n_adv, seed=seed)
    return df.with_columns(
        pl.col("prompt").map_elements(text_id, return_dtype=pl.Utf8).alias("prompt_id"),
        pl.col("chosen").map_elements(text_id, return_dtype=pl.Utf8).alias("chosen_id"),
        pl.col("rejected").map_elements(text_id, return_dtype=pl.Utf8).alias("rejected_id"),
        pl.int_range(pl.len()).cast(pl.Utf8).alias("pair_id"),
    )


def toy_score_table(pairs: pl.DataFrame, plan: pl.DataFrame, a: float, b: float) -> pl.DataFrame:
    """r(x, y) = a * words(y) + b * relevance(x, y) on every combination the plan needs."""
    text = dict(zip(pairs["prompt_id"], pairs["prompt"], strict=False))
    text |= dict(zip(pairs["chosen_id"], pairs["chosen"], strict=False)) | dict(
        zip(pairs["rejected_id"], pairs["rejected"], strict=False)
    )
    combos = scoring.needed_combos(plan)
    r = demo.length_relevance_reward(
        [text[p] for p in combos["prompt_id"]], [text[y] for y in combos["response_id"]], a=a, b=b
    )
    return combos.with_columns(pl.Series("score", r))


@pytest.mark.parametrize("setup", ["length_biased", "adversarial"])
def test_free_gap_recovers_injected_length_bias(setup):
    pairs = demo_pairs().filter(pl.col("setup") == setup)
    config = ScoringConfig(prompts_per_pair=16, seed=1)
    plan = scoring.plan_prompts(pairs, pairs["prompt_id"], config)
    a, b = 0.05, 1.0
    results = scoring.decompose(plan, toy_score_table(pairs, plan, a, b), config).join(
        pairs, on="pair_id"
    )
    rho = spearmanr(results["free_gap"], results["length_diff"]).statistic
    assert rho > 0.9, rho
    # The related part carries the prompt-dependent preference: about b on the own prompt.
    err = (results["related_gap"] - b * results["relevance_gap"]).abs().mean()
    assert err < 0.25 * b, err
    assert results["converged"].all()


def test_plan_draws_the_sample_of_the_ids_themselves():
    """The plan samples on integer codes (memory at 1M pairs); the codes keep the ids' order,
    so the prompts are those sampled on the id strings, also for own prompts outside the
    pool (validation pairs under a training-split pool) and a pool smaller than M."""
    from rmcore.decomposition.sampling import sample_prompts

    pairs = demo_pairs(200, 40)
    for pool, m in ((pairs["prompt_id"].head(300), 8), (pairs["prompt_id"].head(4), 6)):
        plan = scoring.plan_prompts(pairs, pool, ScoringConfig(prompts_per_pair=m, seed=5))
        direct = sample_prompts(pairs["prompt_id"].to_numpy(), pool.to_numpy(), m, 5)
        assert plan["prompt_ids"].to_list() == direct.ids.tolist()
        assert plan["prompt_mask"].to_list() == direct.mask.tolist()
    assert not plan["prompt_mask"].list.all().all()  # the small pool padded some rows


def test_synthetic_symmetric_prompt_effect_gives_exact_free_gap():
    pairs = demo_pairs(200, 0)
    config = ScoringConfig(prompts_per_pair=8, seed=3)
    plan = scoring.plan_prompts(pairs, pairs["prompt_id"], config)
    # gap(x) = g + h(x) with h symmetric: +d on half the prompts, -d on the other half, 0 on own.
    long = scoring.long_form(plan)
    g = {pid: v for pid, v in zip(pairs["pair_id"], np.linspace(-3, 3, pairs.height), strict=True)}
    row_pair = dict(enumerate(plan["pair_id"]))
    h = np.where(long["k"].to_numpy() == 0, 0.0, np.where(long["k"].to_numpy() % 2 == 1, 2.0, -2.0))
    gap = np.array([g[row_pair[r]] for r in long["row"].to_numpy()]) + h
    # Encode the gap as r(x, chosen) = gap, r(x, rejected) = 0 on a per-(row, k) unique prompt id.
    long = long.with_columns(pl.format("{}-{}", "row", "k").alias("prompt_id"))
    table = pl.concat(
        [
            long.select(
                "prompt_id", pl.col("chosen_id").alias("response_id"), pl.Series("score", gap)
            ),
            long.select(
                "prompt_id", pl.col("rejected_id").alias("response_id"), pl.lit(0.0).alias("score")
            ),
        ]
    )
    k = long["k"].max() + 1
    plan2 = plan.with_columns(
        pl.Series("prompt_ids", long["prompt_id"].to_numpy().reshape(-1, k).tolist())
    )
    results = scoring.decompose(plan2, table, config)
    expected = np.array([g[p] for p in results["pair_id"]])
    np.testing.assert_allclose(results["free_gap"].to_numpy(), expected, atol=1e-6)


def embedding_plan(n: int = 30, n_prompts: int = 8, dim: int = 16):
    """A plan over string ids, an index that lists the ids in a shuffled order, and unit
    embeddings for them."""
    ids = [f"t{i}" for i in range(n_prompts + 2 * n)]
    rng = np.random.default_rng(0)
    pairs = pl.DataFrame(
        {
            "pair_id": [str(i) for i in range(n)],
            "prompt_id": [ids[i] for i in rng.integers(0, n_prompts, n)],
            "chosen_id": ids[n_prompts : n_prompts + n],
            "rejected_id": ids[n_prompts + n :],
        }
    )
    plan = scoring.plan_prompts(
        pairs, pl.Series(ids[:n_prompts]), ScoringConfig(prompts_per_pair=4, seed=2)
    )
    index = {t: i for i, t in enumerate(rng.permutation(ids).tolist())}
    gen = torch.Generator().manual_seed(0)
    matrix = torch.nn.functional.normalize(torch.randn(len(ids), dim, generator=gen), dim=-1)
    return plan, index, matrix


def test_embedding_log_weights_are_mean_cosines_over_temperature():
    plan, index, matrix = embedding_plan()
    got = scoring.embedding_log_weights(plan, index, matrix, temperature=0.2)  # (N, K)
    assert got.shape == (plan.height, 5) and got.dtype == torch.float64
    cos = torch.nn.functional.cosine_similarity
    for row, (prompts, chosen, rejected) in enumerate(
        plan.select("prompt_ids", "chosen_id", "rejected_id").iter_rows()
    ):
        e_x = matrix[[index[p] for p in prompts]]  # (K, D)
        e_w, e_l = matrix[index[chosen]][None], matrix[index[rejected]][None]  # (1, D)
        want = (cos(e_x, e_w) + cos(e_x, e_l)) / 2 / 0.2
        torch.testing.assert_close(got[row], want.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("column", ["prompt_id", "chosen_id", "rejected_id"])
def test_a_missing_embedding_raises_instead_of_reading_row_0(column):
    plan, index, matrix = embedding_plan()
    missing = plan[column][3]
    with pytest.raises(KeyError, match="no cached embedding"):
        scoring.embedding_log_weights(
            plan, {t: r for t, r in index.items() if t != missing}, matrix, temperature=0.1
        )
    with pytest.raises(KeyError, match="no cached embedding"):
        scoring.embedding_rows({"a": 0}, pl.Series(["a", "b"]))
    assert scoring.embedding_rows({"a": 1, "b": 0}, pl.Series(["b", "a", "b"])).tolist() == [
        0,
        1,
        0,
    ]


def test_scoring_config_is_keyword_only_and_named_by_digest():
    from dataclasses import asdict

    from rmcore.identity import digest

    config = ScoringConfig(prompts_per_pair=4, weights="embedding")
    assert config.run_key(dataset_id=1) == digest(**asdict(config), dataset_id=1)
    assert config.run_key(dataset_id=1) != ScoringConfig(prompts_per_pair=5).run_key(dataset_id=1)
    with pytest.raises(TypeError):
        ScoringConfig(4)  # type: ignore[misc]
    with pytest.raises(ValueError, match="prompts_per_pair"):
        ScoringConfig(prompts_per_pair=-1)


# ----------------------------------------------------------------------------- flow tests
@pytest.fixture(scope="module")
def scored_demo(tmp_path_factory, prefect_server):
    """A small demo dataset ingested into a real warehouse."""
    from flows.ingest import ingest_flow

    root = tmp_path_factory.mktemp("scoring")
    src = demo.write_demo(root / "toy.jsonl", n_length_biased=120, n_adversarial=40, seed=0)
    wh = str(root / "wh.duckdb")
    ingest_flow(
        source=str(src), name="toy", warehouse=wh, reports_dir=str(root / "reports"), quality=False
    )
    return wh


def rows(wh: str, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(wh, read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def frame(wh: str, sql: str, params: list | None = None) -> pl.DataFrame:
    con = duckdb.connect(wh, read_only=True)
    try:
        return pl.from_arrow(con.sql(sql, params=params).to_arrow_table())
    finally:
        con.close()


def test_score_flow_with_minilm_then_cached_rerun_does_no_forward_passes(scored_demo):
    from flows.score import score_flow

    first = score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=4,
        shard_size=50,
        warehouse=scored_demo,
    )
    assert first["pairs"] == 160 and not first["skipped"]
    assert first["timings"]["forward_passes"] > 0 and first["timings"]["embedded_texts"] > 0
    again = score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=4,
        shard_size=50,
        warehouse=scored_demo,
    )
    assert again["skipped"]
    # A different run (criterion) over the same data and model needs no model at all.
    second = score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=4,
        shard_size=50,
        criterion="logit-mean",
        warehouse=scored_demo,
    )
    assert not second["skipped"]
    assert second["timings"]["forward_passes"] == 0 and second["timings"]["embedded_texts"] == 0
    assert second["timings"]["cache_hits"] == second["timings"]["combos"]
    assert rows(
        scored_demo,
        "SELECT count(*), count(DISTINCT pair_id) FROM pair_scores WHERE scoring_run_id = 1",
    ) == [(160, 160)]
    n_scores = rows(
        scored_demo, "SELECT count(*), count(DISTINCT (prompt_id, response_id)) FROM rm_scores"
    )[0]
    # No duplicates; shards may share a combination, so their per-shard counts can only be larger.
    assert n_scores[0] == n_scores[1] and 0 < n_scores[0] <= first["timings"]["combos"]


def test_killed_run_resumes_identically(scored_demo, tmp_path):
    from flows.score import score_flow
    from tasks.score import embed_texts, plan_run, score_shard

    config = ScoringConfig(prompts_per_pair=3, seed=7, shard_size=40)
    plan = plan_run.fn(
        scored_demo, dataset="toy", pool=None, model="bundled-head", config=config, device="cpu"
    )
    assert plan.n_shards == 4
    embed_texts.fn(scored_demo, plan)
    for s in range(2):  # the run dies after shard 2: no merge happened
        score_shard.fn(scored_demo, plan, s)
    resumed = score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=3,
        seed=7,
        shard_size=40,
        warehouse=scored_demo,
    )
    assert resumed["timings"]["resumed_shards"] == 2
    got = frame(
        scored_demo,
        "SELECT * EXCLUDE (scoring_run_id) FROM pair_scores WHERE scoring_run_id = ? ORDER BY pair_id",
        [plan.scoring_run_id],
    )
    assert got.height == 160 and got["pair_id"].n_unique() == 160
    # An uninterrupted run of the same parameters in a fresh warehouse gives the same numbers.
    import shutil

    fresh = str(tmp_path / "fresh.duckdb")
    shutil.copy(scored_demo, fresh)
    con = duckdb.connect(fresh)
    con.execute("DELETE FROM pair_scores; DELETE FROM scoring_runs; DELETE FROM rm_scores")
    con.close()
    score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=3,
        seed=7,
        shard_size=40,
        warehouse=fresh,
    )
    want = frame(fresh, "SELECT * EXCLUDE (scoring_run_id) FROM pair_scores ORDER BY pair_id")
    # Same pairs, same integers; floats equal up to float32 round-off of the head, whose
    # batches (and so BLAS kernels) differ between the two runs.
    assert got.select("pair_id", "k", "iterations", "converged").equals(
        want.select("pair_id", "k", "iterations", "converged")
    )
    for col in ("own_gap", "free_gap", "related_gap", "ess"):
        np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=0, atol=1e-5)


def test_joint_backend_with_lm_weights_through_the_flow(
    scored_demo, tmp_path, save_tiny_bert, save_tiny_lm
):
    """A tiny random BERT reward model (joint) with importance weights from a tiny GPT-2 LM."""
    from flows.score import score_flow

    bert = save_tiny_bert(tmp_path / "bert")
    lm = save_tiny_lm(tmp_path / "lm")
    params = {
        "dataset": "toy",
        "model": str(bert),
        "prompts_per_pair": 3,
        "weights": "lm",
        "lm": str(lm),
        "beta": 1.0,
        "shard_size": 80,
        "warehouse": scored_demo,
    }
    out = score_flow(**params)
    assert out["pairs"] == 160 and out["timings"]["forward_passes"] > 0
    assert 1.0 <= out["ess_min"] <= out["ess_mean"] < 4.0  # LM weights are not uniform: ESS < K = 4
    assert rows(
        scored_demo,
        "SELECT backend, weights, lm_id IS NOT NULL FROM scoring_runs WHERE scoring_run_id = ?",
        [out["scoring_run_id"]],
    ) == [("joint", "lm", True)]
    [(n_ll, n_distinct)] = rows(
        scored_demo, "SELECT count(*), count(DISTINCT (prompt_id, response_id)) FROM lm_logliks"
    )
    assert n_ll == n_distinct > 0
    # Same data, same models, other criterion: every score and log-likelihood comes from the caches.
    again = score_flow(**params, criterion="logit-mean")
    assert again["timings"]["forward_passes"] == 0


def test_embedding_weights_concentrate_on_similar_prompts(scored_demo):
    from flows.score import score_flow

    uniform = score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=6,
        seed=11,
        weights="uniform",
        warehouse=scored_demo,
    )
    weighted = score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=6,
        seed=11,
        weights="embedding",
        temperature=0.05,
        warehouse=scored_demo,
    )
    assert uniform["ess_mean"] == pytest.approx(7.0)
    assert weighted["ess_mean"] < 6.0


@pytest.mark.slow
def test_shards_run_on_a_dask_cluster(scored_demo, tmp_path, monkeypatch):
    """The same shard task on a Dask LocalCluster (loopback, 2 worker processes, 1 thread each)."""
    import shutil

    from flows.score import score_flow, with_dask

    monkeypatch.setenv("DASK_TEMPORARY_DIRECTORY", str(tmp_path / "dask"))
    copy = str(tmp_path / "copy.duckdb")
    shutil.copy(scored_demo, copy)
    params = {
        "dataset": "toy",
        "model": "bundled-head",
        "prompts_per_pair": 2,
        "seed": 5,
        "shard_size": 40,
    }
    on_dask = with_dask(n_workers=2, threads_per_worker=1)(
        **params, task_threads=1, warehouse=scored_demo
    )
    on_threads = score_flow(**params, warehouse=copy)
    assert on_dask["pairs"] == on_threads["pairs"] == 160
    assert on_dask["free_gap_mean"] == pytest.approx(on_threads["free_gap_mean"], abs=1e-5)


def test_models_loaded_by_concurrent_shard_threads_are_loaded_once_and_real(tmp_path, save_tiny_lm):
    """Regression: two shard threads loading one LM at once left its parameters on `meta`
    (transformers' loading is not thread-safe); loads are serialized and shared now."""
    from concurrent.futures import ThreadPoolExecutor

    from rmcore.stages import scores

    lm = str(save_tiny_lm(tmp_path / "lm"))
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: scores.load_lm(lm, "cpu"), range(8)))
    assert all(model is loaded[0] for model in loaded)
    assert {p.device.type for p in loaded[0].model.parameters()} == {"cpu"}


def test_shard_score_files_are_stored_once_per_combination(tmp_path):
    """The merge hands the shard files to DuckDB: a combination two shards both scored is
    stored once, an empty shard file is fine, and merging again adds nothing."""
    from warehouse import scoring as sql
    from warehouse.connection import reader, transaction

    schema = {"prompt_id": pl.Utf8, "response_id": pl.Utf8, "score": pl.Float64}
    shards = ([("a", "x", 1.0), ("b", "y", 2.0)], [("a", "x", 1.0), ("c", "z", 3.0)], [])
    paths = []
    for i, rows in enumerate(shards):
        paths.append(str(tmp_path / f"scores-{i}.parquet"))
        pl.DataFrame(rows, schema=schema, orient="row").write_parquet(paths[-1])
    wh = str(tmp_path / "data" / "warehouse.duckdb")
    for _ in range(2):
        with transaction(wh) as con:
            sql.store_value_files(con, "rm_scores", "m", "r1", paths)
            sql.store_value_files(con, "lm_logliks", "lm", "any", [])
    with reader(wh) as con:
        stored = con.execute("SELECT prompt_id, response_id, score FROM rm_scores ORDER BY ALL")
        assert stored.fetchall() == [("a", "x", 1.0), ("b", "y", 2.0), ("c", "z", 3.0)]
        assert con.execute("SELECT count(*) FROM lm_logliks").fetchone() == (0,)
