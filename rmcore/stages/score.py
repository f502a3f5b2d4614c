"""The score stage: every pair of a dataset scored under its own and M sampled prompts, its
reward gap split into a prompt-free and a prompt-related part (docs/METHOD.md).

A run is planned once (`plan_run`), its texts embedded once (`embed_texts`), then scored
shard by shard (`score_shard`) and merged into DuckDB (`merge_shards`). Shards are the unit
of work, retry and resume: each writes its results as Parquet files under the run folder
(`ShardFiles`) and a JSON marker last; a shard whose marker exists is never recomputed.
Only the merge writes to DuckDB, in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import torch

from rmcore.config import ScoringConfig
from rmcore.decomposition import scoring, weights
from rmcore.errors import InvalidArgument, NotFound
from rmcore.models.base import pick_device
from rmcore.stages import scores
from warehouse import catalog, models
from warehouse import scoring as sql
from warehouse.connection import reader, transaction, warehouse_path


@dataclass(kw_only=True)
class RunPlan:
    """What every shard needs to know about its scoring run; small and JSON-friendly (a
    deployment run receives it as `asdict(plan)`)."""

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
    encoder_id: str | None  # per-text inputs needed (head backends or embedding weights)
    config: dict  # asdict(ScoringConfig)
    device: str
    complete: bool
    task_threads: int | None = None

    @property
    def scoring_config(self) -> ScoringConfig:
        return ScoringConfig(**self.config)

    @property
    def files(self) -> ShardFiles:
        return ShardFiles(self.run_dir)


class ShardFiles:
    """The files of a scoring run's shards under its run folder, each written atomically
    (a temporary name, then a rename). The marker is written last: it means "done"."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def _path(self, shard: int, suffix: str) -> Path:
        return self.run_dir / f"shard-{shard:05d}.{suffix}"

    def input(self, shard: int) -> Path:
        """The shard's pairs with their sampled prompts (written by the plan)."""
        return self._path(shard, "input.parquet")

    def results(self, shard: int) -> Path:
        """Per-pair decomposition."""
        return self._path(shard, "results.parquet")

    def scores(self, shard: int) -> Path:
        """Reward scores the shard computed (not those it found in the cache)."""
        return self._path(shard, "scores.parquet")

    def lm(self, shard: int) -> Path:
        """LM log-likelihoods the shard computed (`lm` weights only)."""
        return self._path(shard, "lm.parquet")

    def marker(self, shard: int) -> Path:
        """The shard's stats as JSON, written last: its presence means the shard is done."""
        return self._path(shard, "json")

    @staticmethod
    def write_atomic(path: Path, data: pl.DataFrame | dict) -> None:
        """A frame as Parquet or a dict as JSON, under a temporary name renamed into place,
        so a killed process never leaves a half-written file under the real name."""
        tmp = path.with_name(path.name + ".tmp")
        if isinstance(data, pl.DataFrame):
            data.write_parquet(tmp)
        else:
            tmp.write_text(json.dumps(data))
        tmp.rename(path)

    def existing(self, n_shards: int, path: Callable[[int], Path]) -> list[Path]:
        """`path(shard)` of every shard that has that file."""
        return [p for s in range(n_shards) if (p := path(s)).exists()]


def plan_run(
    warehouse: str | None,
    *,
    dataset: str,
    config: ScoringConfig,
    model: str | None = None,
    pool: str | None = None,
    device: str | None = None,
    task_threads: int | None = None,
    flow_run_id: str | None = None,
) -> RunPlan:
    """Resolve the data and model (default: the newest trained on `dataset`; prompts sampled
    from `pool`, default the dataset itself), find or create the scoring run, sample the
    prompts and write the shard inputs (once: sampling is seeded, so a resumed plan writes
    the same)."""
    dev = str(pick_device(device))
    with reader(warehouse) as con:
        dataset_id = catalog.resolve_dataset(con, dataset)
        pool_id = catalog.resolve_dataset(con, pool) if pool else dataset_id
        model = model or models.latest_model(con, dataset_id)
        if model is None:
            raise NotFound(
                f"no reward model trained on {dataset!r} yet: train one (`rmcurate train`) or pass --model PATH"
            )
        pairs = sql.dataset_pairs(con, dataset_id)
        pool_ids = sql.dataset_prompt_ids(con, pool_id, config.pool_split)
    if pool_ids.len() == 0 and config.prompts_per_pair > 0:
        raise InvalidArgument(
            f"the prompt pool ({pool or dataset!r}, split {config.pool_split!r}) holds no prompts"
        )
    scorer = scores.load_model(model, dev)
    needs_emb = scorer.backend in ("embed-head", "late-interaction") or config.embedding_weights
    encoder_id = scores.encoder_of(scorer, dev).encoder_id if needs_emb else None
    run_key = config.run_key(
        dataset_id=dataset_id, pool_id=pool_id, model_id=scorer.model_id, revision=scorer.revision
    )
    run_dir = warehouse_path(warehouse).parent / "runs" / "scoring" / run_key[:16]
    n_shards = -(-pairs.height // config.shard_size)
    with transaction(warehouse) as con:
        run = sql.find_run(con, run_key)
        if run is None:
            run = sql.create_run(
                con,
                run_key=run_key,
                dataset_id=dataset_id,
                pool_dataset_id=pool_id,
                model_id=scorer.model_id,
                revision=scorer.revision,
                backend=scorer.backend,
                criterion=config.criterion,
                prompts_per_pair=config.prompts_per_pair,
                seed=config.seed,
                weights=config.weights,
                beta=config.beta if config.weights == "lm" else None,
                temperature=config.temperature if config.weights == "embedding" else None,
                lm_id=config.lm,
                shard_size=config.shard_size,
                n_pairs=pairs.height,
                n_shards=n_shards,
                run_dir=str(run_dir),
                flow_run_id=flow_run_id,
            )
    files = ShardFiles(run_dir)
    if run.status != "complete":
        run_dir.mkdir(parents=True, exist_ok=True)
        missing = [s for s in range(n_shards) if not files.input(s).exists()]
        if missing:
            planned = scoring.plan_prompts(pairs, pool_ids, config)
            for s in missing:
                files.write_atomic(
                    files.input(s), planned.slice(s * config.shard_size, config.shard_size)
                )
    return RunPlan(
        scoring_run_id=run.scoring_run_id,
        run_key=run_key,
        run_dir=str(run_dir),
        n_shards=n_shards,
        n_pairs=pairs.height,
        dataset_id=dataset_id,
        model=model,
        model_id=scorer.model_id,
        revision=scorer.revision,
        backend=scorer.backend,
        encoder_id=encoder_id,
        config=asdict(config),
        device=dev,
        complete=run.status == "complete",
        task_threads=task_threads,
    )


def _text_ids(inputs: pl.DataFrame) -> pl.Series:
    """Every text id the inputs name: own and sampled prompts, chosen and rejected responses."""
    return pl.concat([inputs["prompt_ids"].explode(), inputs["chosen_id"], inputs["rejected_id"]])


def embed_texts(warehouse: str | None, plan: RunPlan, *, progress: bool = False) -> dict:
    """Every distinct text of the run through the encoder once, into the per-text cache the
    run reads (embeddings, token states, or both): {embedded, cached, forward_passes}."""
    files = plan.files
    inputs = pl.concat([pl.read_parquet(files.input(s)) for s in range(plan.n_shards)])
    return scores.ensure_inputs(
        warehouse,
        scores.load_model(plan.model, plan.device),
        _text_ids(inputs),
        embeddings=plan.scoring_config.embedding_weights,
        device=plan.device,
        progress=progress,
    )


def choose_temperature(warehouse: str | None, plan: RunPlan, *, sample: int = 4096) -> float:
    """The embedding weights' temperature of the run: the configured one, or the one whose
    mean ESS lands mid `ess_band` on (at most `sample`, seeded) pairs of the run; recorded
    on the scoring run and returned for `plan.config`."""
    config = plan.scoring_config
    if config.temperature is not None:
        return config.temperature
    with reader(warehouse) as con:
        chosen = sql.run_fields(con, plan.scoring_run_id)["temperature"]
    if chosen is not None:  # chosen once per run; every shard and a resumed run reuse it
        return chosen
    files = plan.files
    inputs = pl.concat([pl.read_parquet(files.input(s)) for s in range(plan.n_shards)])
    if inputs.height > sample:
        inputs = inputs.sample(sample, seed=config.seed)
    scorer = scores.load_model(plan.model, plan.device)
    index, matrix = scores.weight_embeddings(warehouse, scorer, plan.encoder_id, _text_ids(inputs))
    cos = scoring.embedding_log_weights(inputs, index, matrix, 1.0)
    mask = torch.tensor(inputs["prompt_mask"].to_list(), dtype=torch.bool)
    temperature = weights.temperature_for_ess(cos, mask, config.ess_band)
    with transaction(warehouse) as con:
        sql.set_temperature(con, plan.scoring_run_id, temperature)
    return temperature


def _lm_missing(plan: RunPlan, todo: pl.DataFrame, warehouse: str | None) -> pl.DataFrame:
    """Per-token LM log-likelihoods for (prompt_id, response_id) rows missing from the cache."""
    if todo.height == 0:
        return todo.with_columns(pl.lit(None, dtype=pl.Float64).alias("loglik"))
    lm = scores.load_lm(plan.config["lm"], plan.device)
    text = scores.texts_of(warehouse, pl.concat([todo["prompt_id"], todo["response_id"]]))
    ll = lm.response_loglik(
        [text[t] for t in todo["prompt_id"].to_list()],
        [text[t] for t in todo["response_id"].to_list()],
    )
    return todo.with_columns(pl.Series("loglik", ll.double().numpy()))


def score_shard(
    warehouse: str | None,
    plan: RunPlan,
    shard: int,
    *,
    model_slot: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> dict:
    """Score one shard of pairs under their K prompts and solve for the free gaps; returns
    its stats (also its marker). `model_slot()` is held around the model calls (the Prefect
    task passes its `gpu` concurrency slot). A finished shard returns its marker's stats
    with `resumed: True`."""
    files = plan.files
    marker = files.marker(shard)
    if marker.exists():
        return json.loads(marker.read_text()) | {"resumed": True}
    if plan.task_threads:  # e.g. 1 per Dask worker process, so workers don't oversubscribe cores
        torch.set_num_threads(plan.task_threads)
    start = time.perf_counter()
    config = plan.scoring_config
    inputs = pl.read_parquet(files.input(shard))
    combos = scoring.needed_combos(inputs)
    with reader(warehouse) as con:
        cached = sql.cached_values(con, "rm_scores", plan.model_id, plan.revision, combos)
        cached_ll = (
            sql.cached_values(con, "lm_logliks", config.lm, "any", combos)
            if config.weights == "lm"
            else None
        )
    todo = combos.join(cached, on=["prompt_id", "response_id"], how="anti")
    scorer = scores.load_model(plan.model, plan.device)
    before = scorer.n_forward
    with model_slot():
        fresh = scores.score_missing(scorer, plan.encoder_id, todo, warehouse)
        fresh_ll = None
        if cached_ll is not None:
            todo_ll = combos.join(cached_ll, on=["prompt_id", "response_id"], how="anti")
            fresh_ll = _lm_missing(plan, todo_ll, warehouse)
    table = pl.concat([cached, fresh.select(cached.columns)])
    log_w = None
    if config.weights == "lm":
        logliks = pl.concat([cached_ll, fresh_ll.select(cached_ll.columns)])
        log_w = scoring.lm_log_weights(inputs, logliks)
    elif config.embedding_weights:
        index, matrix = scores.weight_embeddings(
            warehouse, scorer, plan.encoder_id, _text_ids(inputs)
        )
        temperature = choose_temperature(warehouse, plan)
        log_w = scoring.embedding_log_weights(inputs, index, matrix, temperature)
    results = scoring.decompose(inputs, table, config, log_w)

    files.write_atomic(files.results(shard), results)
    files.write_atomic(files.scores(shard), fresh)
    if fresh_ll is not None:
        files.write_atomic(files.lm(shard), fresh_ll)
    stats = {
        "shard": shard,
        "pairs": inputs.height,
        "combos": combos.height,
        "cache_hits": cached.height,
        "forward_passes": scorer.n_forward - before,
        "seconds": time.perf_counter() - start,
    }
    files.write_atomic(marker, stats)  # last: its presence means the shard is done
    return stats


def finished_shards(plan: RunPlan) -> dict[int, dict]:
    """shard -> stats of every shard whose marker exists (shards that ran elsewhere, e.g. as
    deployment runs, report through their markers)."""
    files = plan.files
    return {
        s: json.loads(files.marker(s).read_text())
        for s in range(plan.n_shards)
        if files.marker(s).exists()
    }


def merge_shards(
    warehouse: str | None, plan: RunPlan, shard_stats: list[dict], extra_timings: dict
) -> dict:
    """Load every shard's files into DuckDB in one transaction (the only writer) and mark
    the run complete; returns its timings. `extra_timings` (the flow's embed and score
    times, `embed_forward_passes`) are stored with them."""
    files = plan.files
    results = pl.concat([pl.read_parquet(p) for p in files.existing(plan.n_shards, files.results)])
    fresh = [str(p) for p in files.existing(plan.n_shards, files.scores)]
    lm = [str(p) for p in files.existing(plan.n_shards, files.lm)]
    if results.height != plan.n_pairs:
        raise RuntimeError(
            f"shards hold {results.height} results for {plan.n_pairs} pairs; rerun to resume"
        )
    ran = [s for s in shard_stats if not s.get("resumed")]
    n_combos = sum(s["combos"] for s in shard_stats)
    n_hits = sum(s["cache_hits"] for s in shard_stats)
    timings = extra_timings | {
        "shard_seconds": sum(s["seconds"] for s in ran),
        "forward_passes": sum(s["forward_passes"] for s in ran)
        + extra_timings.get("embed_forward_passes", 0),
        "resumed_shards": len(shard_stats) - len(ran),
        "combos": n_combos,
        "cache_hits": n_hits,
    }
    with transaction(warehouse) as con:
        sql.store_value_files(con, "rm_scores", plan.model_id, plan.revision, fresh)
        sql.store_value_files(con, "lm_logliks", plan.config["lm"], "any", lm)
        sql.store_pair_scores(con, plan.scoring_run_id, results)
        sql.finish_run(
            con, plan.scoring_run_id, n_combos=n_combos, n_cache_hits=n_hits, timings=timings
        )
    return timings


def summarize_run(warehouse: str | None, plan: RunPlan) -> dict:
    """Headline numbers of a finished run (`scoring.summarize`), its id and its timings."""
    with reader(warehouse) as con:
        results = sql.run_results(con, plan.scoring_run_id)
        timings = sql.run_timings(con, plan.scoring_run_id)
    summary = scoring.summarize(results.drop("label"), results.select("pair_id", "label"))
    return summary | {"scoring_run_id": plan.scoring_run_id, "timings": timings}
