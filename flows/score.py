"""The score flow: every pair of a dataset scored under its own and M sampled prompts, its
reward gap split into a prompt-free and a prompt-related part (METHOD.md), stored in DuckDB.

Shards run as Prefect tasks on the flow's task runner: threads by default, a Dask cluster
with `task_runner="dask"` (prefect-dask), or GPU work-pool deployments (README recipe).
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from tqdm.auto import tqdm

from rmcore.scoring import ScoringConfig
from tasks.common import logger
from tasks.score import embed_texts, merge_shards, plan_run, score_shard, summarize_run


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
    m: int = 16,
    weights: str = "uniform",
    criterion: str = "balanced",
    seed: int = 0,
    beta: float = 1.0,
    temperature: float = 0.1,
    lm: str | None = None,
    pool: str | None = None,
    shard_size: int = 2048,
    warehouse: str | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict:
    """Score `dataset` (id, name or name@version) with `model` (a trained folder, a hub id,
    or `bundled-head`; default: the newest model trained on the dataset). Re-running with
    the same parameters resumes: finished shards are skipped and nothing is duplicated."""
    config = ScoringConfig(
        m=m,
        seed=seed,
        criterion=criterion,
        weights=weights,
        beta=beta,
        temperature=temperature,
        lm=lm,
        shard_size=shard_size,
    )
    plan = plan_run(
        warehouse, dataset=dataset, pool=pool, model=model, config=config, device=device
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
            "embed_forward": emb["forward"],
        }
    start = time.perf_counter()
    futures = [score_shard.submit(warehouse, plan, s) for s in range(plan.n_shards)]
    stats = [
        f.result()
        for f in tqdm(
            as_completed(futures),
            total=len(futures),
            desc="scoring shards",
            unit="shard",
            disable=not progress,
        )
    ]
    timings["score_seconds"] = time.perf_counter() - start
    merge_shards(warehouse, plan, stats, timings)
    return summarize_run(warehouse, plan) | {"skipped": False}
