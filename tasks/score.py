"""Prefect tasks for the score stage: thin wrappers over `rmcore.stages.score`.

Tasks pass a `RunPlan` (a small JSON-friendly reference to the run) and stats dicts, never
frames. The shard task holds a slot of the Prefect concurrency limit `gpu` around the
model calls only (the stage function takes it as `model_slot`), so reading inputs, solving
and writing files do not keep a GPU slot busy.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.config import ScoringConfig
from rmcore.stages import score as stage
from rmcore.stages.score import RunPlan
from tasks.common import current_flow_run_id, logger, retry_unexpected


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
    return stage.plan_run(
        warehouse,
        dataset=dataset,
        pool=pool,
        model=model,
        config=config,
        device=device,
        task_threads=task_threads,
        flow_run_id=current_flow_run_id(),
    )


@task(name="embed-texts", cache_policy=NO_CACHE)
def embed_texts(warehouse: str | None, plan: RunPlan, progress: bool = False) -> dict:
    """Every distinct text of the run (pairs' prompts, sampled prompts, responses), embedded once."""
    return stage.embed_texts(warehouse, plan, progress=progress)


@task(name="choose-temperature", cache_policy=NO_CACHE)
def choose_temperature(warehouse: str | None, plan: RunPlan) -> float:
    """The embedding weights' temperature (configured, or chosen for the ESS band)."""
    return stage.choose_temperature(warehouse, plan)


def _gpu_slot(device: str) -> AbstractContextManager:
    """Tasks that use the GPU take a slot of the Prefect concurrency limit named `gpu`."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency("gpu", occupy=1, strict=False)


@task(
    name="score-shard",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_unexpected,
    tags=["rmcurate-score"],
)
def score_shard(warehouse: str | None, plan: RunPlan, shard: int) -> dict:
    """Score one shard of pairs under their K prompts and solve for the free gaps."""
    return stage.score_shard(warehouse, plan, shard, model_slot=lambda: _gpu_slot(plan.device))


@task(name="read-shard-markers", cache_policy=NO_CACHE)
def finished_shards(plan: RunPlan) -> dict[int, dict]:
    """shard -> stats of every finished shard (for shards that ran elsewhere)."""
    return stage.finished_shards(plan)


@task(name="merge-shards", cache_policy=NO_CACHE)
def merge_shards(
    warehouse: str | None, plan: RunPlan, shard_stats: list[dict], extra_timings: dict
) -> dict:
    """Load every shard's files into DuckDB in one transaction (the only writer)."""
    timings = stage.merge_shards(warehouse, plan, shard_stats, extra_timings)
    logger().info(
        "scoring run %d: %d pairs, %d combos (%d cached), %d forward passes",
        plan.scoring_run_id,
        plan.n_pairs,
        timings["combos"],
        timings["cache_hits"],
        timings["forward_passes"],
    )
    return timings


@task(name="summarize-scoring-run", cache_policy=NO_CACHE)
def summarize_run(warehouse: str | None, plan: RunPlan) -> dict:
    """Headline numbers, id and timings of a finished scoring run."""
    return stage.summarize_run(warehouse, plan)
