"""Prefect tasks for the score stage: plan, embed, score shards, merge.

Shards are the unit of work, retry and resume: each writes its results as Parquet files
under the run folder and a JSON marker last; a shard whose marker exists is never
recomputed. Only the merge task writes to DuckDB, in one transaction.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.decomposition import scoring
from rmcore.decomposition.scoring import ScoringConfig
from rmcore.models.base import RewardScorer, pick_device
from rmcore.models.embed_head import EmbedHeadRewardModel
from tasks.common import current_flow_run_id, logger
from warehouse import catalog, models
from warehouse import scoring as sql
from warehouse.connection import reader, transaction, warehouse_path

BUNDLED_ENCODER = "bundled"


@dataclass
class RunPlan:
    """What every shard task needs to know; small and JSON-friendly."""

    scoring_run_id: int
    run_key: str
    run_dir: str
    n_shards: int
    n_pairs: int
    dataset_id: int
    model: str
    model_id: str
    revision: str
    backend: str
    encoder_id: str | None  # embeddings needed (embed-head backend or embedding weights)
    config: dict
    device: str
    complete: bool
    task_threads: int | None = None


@functools.lru_cache(maxsize=4)
def load_model(model: str, device: str) -> RewardScorer:
    """One load per process (shard tasks share it; Dask workers each keep their own)."""
    from rmcore.models.loading import load_scorer

    return load_scorer(model, device=device)


@functools.lru_cache(maxsize=2)
def load_encoder(device: str):
    from rmcore.models.encoder import load_encoder as load

    return load(BUNDLED_ENCODER, device=device)


@functools.lru_cache(maxsize=2)
def load_lm(lm: str, device: str):
    from rmcore.models.lm_loglik import CausalLMScorer

    return CausalLMScorer.load(lm, device=device)


def encoder_of(scorer: RewardScorer, device: str):
    """The encoder whose cached embeddings a run uses: the embed-head model's own, else
    the bundled one (for `embedding` importance weights)."""
    return scorer.encoder if isinstance(scorer, EmbedHeadRewardModel) else load_encoder(device)


def _shard_path(run_dir: str, shard: int, suffix: str) -> Path:
    return Path(run_dir) / f"shard-{shard:05d}.{suffix}"


def shard_marker(run_dir: str, shard: int) -> Path:
    """Written last by a shard: its presence means the shard is done."""
    return _shard_path(run_dir, shard, "json")


@task(name="plan-scoring-run", cache_policy=NO_CACHE)
def plan_run(
    warehouse: str | None,
    *,
    dataset: str,
    pool: str | None,
    model: str | None,
    config: ScoringConfig,
    device: str | None,
    task_threads: int | None = None,
) -> RunPlan:
    """Resolve the data and model, sample the prompts, write shard inputs (once)."""
    dev = str(pick_device(device))
    with reader(warehouse) as con:
        dataset_id = catalog.resolve_dataset(con, dataset)
        pool_id = catalog.resolve_dataset(con, pool) if pool else dataset_id
        model = model or models.latest_model(con, dataset_id)
        if model is None:
            raise LookupError(
                f"no reward model trained on {dataset!r} yet: train one (`rmcurate train`) or pass --model PATH"
            )
        pairs = sql.dataset_pairs(con, dataset_id)
        pool_ids = sql.dataset_prompt_ids(con, pool_id)
    scorer = load_model(model, dev)
    needs_emb = scorer.backend == "embed-head" or config.weights == "embedding"
    encoder_id = encoder_of(scorer, dev).encoder_id if needs_emb else None
    run_key = config.run_key(
        dataset_id=dataset_id, pool_id=pool_id, model_id=scorer.model_id, revision=scorer.revision
    )
    run_dir = warehouse_path(warehouse).parent / "runs" / "scoring" / run_key[:16]
    with transaction(warehouse) as con:
        run = sql.find_run(con, run_key)
        if run is None:
            run = sql.create_run(
                con, run_key=run_key, dataset_id=dataset_id, pool_dataset_id=pool_id, model_id=scorer.model_id,
                revision=scorer.revision, backend=scorer.backend, criterion=config.criterion, m=config.m,
                seed=config.seed, weights=config.weights, beta=config.beta if config.weights == "lm" else None,
                lm_id=config.lm, shard_size=config.shard_size, n_pairs=pairs.height,
                n_shards=-(-pairs.height // config.shard_size), run_dir=str(run_dir), flow_run_id=current_flow_run_id(),
            )  # fmt: skip
    n_shards = -(-pairs.height // config.shard_size)
    if run.status != "complete":
        run_dir.mkdir(parents=True, exist_ok=True)
        missing = [
            s for s in range(n_shards) if not _shard_path(str(run_dir), s, "input.parquet").exists()
        ]
        if missing:  # sampling is seeded, so a resumed plan writes exactly the same inputs
            planned = scoring.plan_prompts(pairs, pool_ids, config)
            for s in missing:
                chunk = planned.slice(s * config.shard_size, config.shard_size)
                tmp = _shard_path(str(run_dir), s, "input.parquet.tmp")
                chunk.write_parquet(tmp)
                tmp.rename(_shard_path(str(run_dir), s, "input.parquet"))
    return RunPlan(
        run.scoring_run_id, run_key, str(run_dir), n_shards, pairs.height, dataset_id, model, scorer.model_id,
        scorer.revision, scorer.backend, encoder_id, asdict(config), dev, run.status == "complete",
        task_threads,
    )  # fmt: skip


def ensure_embeddings(
    warehouse: str | None, encoder, ids: pl.Series, *, chunk: int = 2048, progress: bool = False
) -> dict:
    """Embed every text among `ids` that the cache lacks, once; short write transactions per
    chunk so readers are never locked out for long."""
    from tqdm.auto import tqdm

    with reader(warehouse) as con:
        missing = sql.missing_embeddings(con, encoder.encoder_id, ids)
        texts = (
            sql.texts(con, missing)
            if missing.len()
            else pl.DataFrame(
                {"text_id": [], "text": []}, schema={"text_id": pl.Utf8, "text": pl.Utf8}
            )
        )
    before = encoder.n_forward
    bar = tqdm(
        total=texts.height,
        desc="embedding texts",
        unit="text",
        disable=not progress or texts.height == 0,
    )
    for start in range(0, texts.height, chunk):
        part = texts.slice(start, chunk)
        matrix = encoder.encode(part["text"].to_list()).numpy()
        with transaction(warehouse) as con:
            sql.store_embeddings(con, encoder.encoder_id, part["text_id"].to_list(), matrix)
        bar.update(part.height)
    bar.close()
    return {
        "embedded": texts.height,
        "cached": ids.n_unique() - texts.height,
        "forward": encoder.n_forward - before,
    }


@task(name="embed-texts", cache_policy=NO_CACHE)
def embed_texts(warehouse: str | None, plan: RunPlan, progress: bool = False) -> dict:
    """Every distinct text of the run (pairs' prompts, sampled prompts, responses), embedded once."""
    inputs = pl.concat(
        [
            pl.read_parquet(_shard_path(plan.run_dir, s, "input.parquet"))
            for s in range(plan.n_shards)
        ]
    )
    ids = pl.concat(
        [inputs["prompt_ids"].explode(), inputs["chosen_id"], inputs["rejected_id"]]
    ).unique()
    return ensure_embeddings(
        warehouse,
        encoder_of(load_model(plan.model, plan.device), plan.device),
        ids,
        progress=progress,
    )


def _gpu_slot(device: str):
    """Tasks that use the GPU take a slot of the Prefect concurrency limit named `gpu`."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency("gpu", occupy=1, strict=False)


def _score_missing(
    scorer: RewardScorer, encoder_id: str | None, todo: pl.DataFrame, warehouse: str | None
) -> pl.DataFrame:
    """Model scores for (prompt_id, response_id) rows missing from the cache."""
    if todo.height == 0:
        return todo.with_columns(pl.lit(None, dtype=pl.Float64).alias("score"))
    if isinstance(scorer, EmbedHeadRewardModel):
        ids = pl.concat([todo["prompt_id"], todo["response_id"]])
        with reader(warehouse) as con:
            index, matrix = sql.embeddings(con, encoder_id, ids)
        emb = torch.from_numpy(matrix)
        rows = lambda col: torch.tensor([index[t] for t in todo[col].to_list()], dtype=torch.long)  # noqa: E731
        scores = scorer.score_embeddings(emb[rows("prompt_id")], emb[rows("response_id")])
    else:
        with reader(warehouse) as con:
            text = dict(
                sql.texts(con, pl.concat([todo["prompt_id"], todo["response_id"]])).iter_rows()
            )
        scores = scorer.score(
            [text[t] for t in todo["prompt_id"].to_list()],
            [text[t] for t in todo["response_id"].to_list()],
        )
    return todo.with_columns(pl.Series("score", scores.double().numpy()))


def _lm_missing(plan: RunPlan, todo: pl.DataFrame, warehouse: str | None) -> pl.DataFrame:
    if todo.height == 0:
        return todo.with_columns(pl.lit(None, dtype=pl.Float64).alias("loglik"))
    lm = load_lm(plan.config["lm"], plan.device)
    with reader(warehouse) as con:
        text = dict(sql.texts(con, pl.concat([todo["prompt_id"], todo["response_id"]])).iter_rows())
    ll = lm.response_loglik(
        [text[t] for t in todo["prompt_id"].to_list()],
        [text[t] for t in todo["response_id"].to_list()],
    )
    return todo.with_columns(pl.Series("loglik", ll.double().numpy()))


@task(
    name="score-shard",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    tags=["rmcurate-score"],
)
def score_shard(warehouse: str | None, plan: RunPlan, shard: int) -> dict:
    """Score one shard of pairs under their K prompts and solve for the free gaps."""
    marker = shard_marker(plan.run_dir, shard)
    if marker.exists():
        return json.loads(marker.read_text()) | {"resumed": True}
    if plan.task_threads:  # e.g. 1 per Dask worker process, so workers don't oversubscribe cores
        torch.set_num_threads(plan.task_threads)
    start = time.perf_counter()
    config = ScoringConfig(**plan.config)
    inputs = pl.read_parquet(_shard_path(plan.run_dir, shard, "input.parquet"))
    combos = scoring.needed_combos(inputs)
    with reader(warehouse) as con:
        cached = sql.cached_values(con, "rm_scores", plan.model_id, plan.revision, combos)
        cached_ll = (
            sql.cached_values(con, "lm_logliks", config.lm, "any", combos)
            if config.weights == "lm"
            else None
        )
    todo = combos.join(cached, on=["prompt_id", "response_id"], how="anti")
    scorer = load_model(plan.model, plan.device)
    before = scorer.n_forward
    with _gpu_slot(plan.device):
        fresh = _score_missing(scorer, plan.encoder_id, todo, warehouse)
        fresh_ll = None
        if cached_ll is not None:
            fresh_ll = _lm_missing(
                plan, combos.join(cached_ll, on=["prompt_id", "response_id"], how="anti"), warehouse
            )
    scores = pl.concat([cached, fresh.select(cached.columns)])
    log_w = None
    if config.weights == "lm":
        log_w = scoring.lm_log_weights(
            inputs, pl.concat([cached_ll, fresh_ll.select(cached_ll.columns)])
        )
    elif config.weights == "embedding":
        ids = pl.concat(
            [inputs["prompt_ids"].explode(), inputs["chosen_id"], inputs["rejected_id"]]
        )
        with reader(warehouse) as con:
            index, matrix = sql.embeddings(con, plan.encoder_id, ids)
        log_w = scoring.embedding_log_weights(
            inputs, index, torch.from_numpy(matrix), config.temperature
        )
    results = scoring.decompose(inputs, scores, config, log_w)

    results.write_parquet(_shard_path(plan.run_dir, shard, "results.parquet"))
    fresh.write_parquet(_shard_path(plan.run_dir, shard, "scores.parquet"))
    if fresh_ll is not None:
        fresh_ll.write_parquet(_shard_path(plan.run_dir, shard, "lm.parquet"))
    stats = {"shard": shard, "pairs": inputs.height, "combos": combos.height, "cache_hits": cached.height,
             "forward": scorer.n_forward - before, "seconds": time.perf_counter() - start}  # fmt: skip
    tmp = marker.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(stats))
    tmp.rename(marker)  # the marker is written last: its presence means the shard is done
    return stats


@task(name="merge-shards", cache_policy=NO_CACHE)
def merge_shards(
    warehouse: str | None, plan: RunPlan, shard_stats: list[dict], extra_timings: dict
) -> dict:
    """Load every shard's files into DuckDB in one transaction (the only writer)."""

    def paths(suffix: str) -> list[Path]:
        return [
            p for s in range(plan.n_shards) if (p := _shard_path(plan.run_dir, s, suffix)).exists()
        ]

    results = pl.concat([pl.read_parquet(p) for p in paths("results.parquet")])
    scores = pl.concat([pl.read_parquet(p) for p in paths("scores.parquet")])
    lm = [pl.read_parquet(p) for p in paths("lm.parquet")]
    if results.height != plan.n_pairs:
        raise RuntimeError(
            f"shards hold {results.height} results for {plan.n_pairs} pairs; rerun to resume"
        )
    timings = extra_timings | {
        "shard_seconds": sum(s["seconds"] for s in shard_stats if not s.get("resumed")),
        "forward_passes": sum(s["forward"] for s in shard_stats if not s.get("resumed"))
        + extra_timings.get("embed_forward", 0),
        "resumed_shards": sum(1 for s in shard_stats if s.get("resumed")),
    }
    n_combos = sum(s["combos"] for s in shard_stats)
    n_hits = sum(s["cache_hits"] for s in shard_stats)
    timings |= {"combos": n_combos, "cache_hits": n_hits}
    with transaction(warehouse) as con:
        if scores.height:
            sql.store_values(con, "rm_scores", plan.model_id, plan.revision, scores)
        if lm:
            sql.store_values(con, "lm_logliks", plan.config["lm"], "any", pl.concat(lm))
        sql.store_pair_scores(con, plan.scoring_run_id, results)
        sql.finish_run(
            con, plan.scoring_run_id, n_combos=n_combos, n_cache_hits=n_hits, timings=timings
        )
    logger().info("scoring run %d: %d pairs, %d combos (%d cached), %d forward passes", plan.scoring_run_id,
                  results.height, n_combos, n_hits, timings["forward_passes"])  # fmt: skip
    return timings


@task(name="summarize-scoring-run", cache_policy=NO_CACHE)
def summarize_run(warehouse: str | None, plan: RunPlan) -> dict:
    with reader(warehouse) as con:
        results = sql.run_results(con, plan.scoring_run_id)
        (timings,) = con.execute(
            "SELECT timings FROM scoring_runs WHERE scoring_run_id = ?", [plan.scoring_run_id]
        ).fetchone()
    summary = scoring.summarize(results.drop("label"), results.select("pair_id", "label"))
    return summary | {"scoring_run_id": plan.scoring_run_id, "timings": json.loads(timings or "{}")}


def reference_scorer(
    warehouse: str | None, scoring_run_id: int, device: str | None = None
) -> tuple[RewardScorer, str | None]:
    """The model a scoring run used, reloaded (for filters that need fresh combinations)."""
    with reader(warehouse) as con:
        model_id, revision = con.execute(
            "SELECT model_id, revision FROM scoring_runs WHERE scoring_run_id = ?", [scoring_run_id]
        ).fetchone()
    model = "bundled-head" if model_id.startswith("bundled-head:") else model_id
    scorer = load_model(model, str(pick_device(device)))
    if scorer.revision != revision:
        logger().warning(
            "model %s changed since scoring run %d (revision %s, now %s)",
            model_id,
            scoring_run_id,
            revision,
            scorer.revision,
        )
    return scorer, (scorer.encoder.encoder_id if isinstance(scorer, EmbedHeadRewardModel) else None)


def score_combos(
    warehouse: str | None, scorer: RewardScorer, encoder_id: str | None, combos: pl.DataFrame
) -> pl.DataFrame:
    """(prompt_id, response_id, score) for every combination: cached ones from rm_scores,
    the rest computed now and added to the cache."""
    with reader(warehouse) as con:
        cached = sql.cached_values(con, "rm_scores", scorer.model_id, scorer.revision, combos)
    todo = combos.join(cached, on=["prompt_id", "response_id"], how="anti")
    if todo.height and isinstance(scorer, EmbedHeadRewardModel):
        ensure_embeddings(
            warehouse, scorer.encoder, pl.concat([todo["prompt_id"], todo["response_id"]]).unique()
        )
    fresh = _score_missing(scorer, encoder_id, todo, warehouse)
    if fresh.height:
        with transaction(warehouse) as con:
            sql.store_values(con, "rm_scores", scorer.model_id, scorer.revision, fresh)
    return pl.concat([cached, fresh.select(cached.columns)])
