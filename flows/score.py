"""The score flow: every pair of a dataset scored under its own and M sampled prompts, its
reward gap split into a prompt-free and a prompt-related part (METHOD.md), stored in DuckDB.

Shards run as Prefect tasks on the flow's task runner: threads by default, a Dask cluster
with `task_runner="dask"` (prefect-dask), or GPU work-pool deployments (README recipe).
"""

from __future__ import annotations

import time
from dataclasses import asdict

from prefect import flow
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from rmcore.config import ScoringConfig
from rmcore.progress import Progress
from tasks.common import logger
from tasks.score import (
    RunPlan,
    choose_temperature,
    embed_texts,
    finished_shards,
    merge_shards,
    plan_run,
    score_shard,
    summarize_run,
)


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"score-{flow_run.parameters['dataset']}"


@flow(
    name="score",
    flow_run_name=_run_name,
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=2),
)
def score_flow(
    dataset: str,
    model: str | None = None,
    prompts_per_pair: int = ScoringConfig.prompts_per_pair,
    weights: str = ScoringConfig.weights,
    criterion: str = ScoringConfig.criterion,
    seed: int = ScoringConfig.seed,
    beta: float = ScoringConfig.beta,
    temperature: float | None = ScoringConfig.temperature,
    lm: str | None = ScoringConfig.lm,
    pool: str | None = None,
    shard_size: int = ScoringConfig.shard_size,
    warehouse: str | None = None,
    device: str | None = None,
    progress: bool = False,
    shard_deployment: str | None = None,
    task_threads: int | None = None,
) -> dict:
    """Score `dataset` (id, name or name@version) with `model` (a trained folder, a hub id,
    or `bundled-head`; default: the newest model trained on the dataset). Re-running with
    the same parameters resumes: finished shards are skipped and nothing is duplicated.

    Shards run on this flow's task runner (threads; `with_dask` for a Dask cluster), or, with
    `shard_deployment="score-shard/<name>"`, as runs of that deployment on its work pool (e.g.
    GPU workers that see the same filesystem); the merge always happens here."""
    config = ScoringConfig(
        prompts_per_pair=prompts_per_pair,
        seed=seed,
        criterion=criterion,
        weights=weights,
        beta=beta,
        temperature=temperature,
        lm=lm,
        shard_size=shard_size,
    )
    plan = plan_run(
        warehouse,
        dataset=dataset,
        pool=pool,
        model=model,
        config=config,
        device=device,
        task_threads=task_threads,
    )
    if plan.complete:
        logger().info("scoring run %d is already complete: nothing to do", plan.scoring_run_id)
        return summarize_run(warehouse, plan) | {"skipped": True}
    timings: dict = {}
    if plan.encoder_id:
        start = time.perf_counter()
        emb = embed_texts(warehouse, plan, progress=progress)
        timings |= {
            "embed_seconds": time.perf_counter() - start,
            "embedded_texts": emb["embedded"],
            "embed_forward_passes": emb["forward_passes"],
        }
    if config.embedding_weights:
        plan.config["temperature"] = choose_temperature(warehouse, plan)
    start = time.perf_counter()
    if shard_deployment:
        stats = _shards_as_deployment_runs(shard_deployment, warehouse, plan)
    else:
        futures = [score_shard.submit(warehouse, plan, s) for s in range(plan.n_shards)]
        stats = []
        with Progress(len(futures), desc="scoring shards", unit="shards", enabled=progress) as bar:
            for future in as_completed(futures):
                stats.append(future.result())
                bar.update()
    timings["score_seconds"] = time.perf_counter() - start
    merge_shards(warehouse, plan, stats, timings)
    return summarize_run(warehouse, plan) | {"skipped": False}


def _shards_as_deployment_runs(deployment: str, warehouse: str | None, plan: RunPlan) -> list[dict]:
    """Submit every unfinished shard as a run of `deployment`, wait for all, read the markers."""
    import asyncio

    from prefect.deployments import run_deployment

    done = finished_shards(plan)

    async def submit_all() -> None:
        runs = [
            run_deployment(
                deployment,
                parameters={"warehouse": warehouse, "plan": asdict(plan), "shard": s},
                timeout=None,
            )
            for s in range(plan.n_shards)
            if s not in done
        ]
        finished = await asyncio.gather(*runs)
        failed = [r.name for r in finished if not r.state.is_completed()]
        if failed:
            raise RuntimeError(f"shard runs failed: {failed}; rerun to resume the rest")

    asyncio.run(submit_all())
    stats = finished_shards(plan)
    return [stats[s] for s in range(plan.n_shards)]


@flow(name="score-shard", log_prints=True)
def score_shard_flow(warehouse: str | None, plan: dict, shard: int) -> dict:
    """One shard as its own flow run: the unit a GPU work pool's workers pick up."""
    return score_shard(warehouse, RunPlan(**plan), shard)


def with_dask(n_workers: int = 2, threads_per_worker: int = 1, address: str | None = None):
    """`score_flow` on a Dask cluster (prefect-dask): an existing scheduler `address`, or a
    LocalCluster on loopback. Scripts that start a LocalCluster need an
    `if __name__ == "__main__":` guard (workers are spawned processes)."""
    from prefect_dask import DaskTaskRunner

    if address:
        runner = DaskTaskRunner(address=address)
    else:
        runner = DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": n_workers,
                "threads_per_worker": threads_per_worker,
                "processes": True,
                "host": "127.0.0.1",
                "dashboard_address": None,
            },
        )
    return score_flow.with_options(task_runner=runner)
