"""The model-scoring service every stage shares: one load per model per process, the
per-text caches (embeddings, token states), and cached (prompt, response) scores.

Scores live in `rm_scores` keyed by (model, revision, prompt, response), so each
combination is scored once, ever; embeddings live in `embeddings` keyed by (encoder, text);
token states (late-interaction) in memory-mapped files per encoder under the data folder,
`<warehouse folder>/token_states/` (`rmcore.models.token_states`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import numpy as np
import polars as pl
import torch

from rmcore.decomposition.scoring import embedding_rows
from rmcore.models.base import RewardScorer, pick_device
from rmcore.models.embed_head import EmbedHeadRewardModel
from rmcore.models.late_interaction import LateInteractionRewardModel
from rmcore.models.loading import UNTRAINED_HEAD, load_scorer
from rmcore.models.token_states import TokenStateCache, TokenStates
from rmcore.progress import Progress
from warehouse import scoring as sql
from warehouse.connection import reader, transaction, warehouse_path

BUNDLED_ENCODER = "bundled"
TOKEN_STATES_DIR = "token_states"  # next to the warehouse file
log = logging.getLogger("rmcurate")
_LOADING = threading.RLock()


def loaded_once(maxsize: int) -> Callable:
    """`lru_cache` with its misses serialized: shard tasks run in threads, and two of them
    loading one model at once raced inside transformers (its meta-device initialisation is
    process-wide) and left parameters on `meta`."""

    def wrap(load: Callable) -> Callable:
        cached = functools.lru_cache(maxsize=maxsize)(load)

        @functools.wraps(load)
        def once(*args: str):
            with _LOADING:
                return cached(*args)

        return once

    return wrap


@loaded_once(maxsize=4)
def load_model(model: str, device: str) -> RewardScorer:
    """One load per process (shard tasks share it; Dask workers each keep their own)."""
    return load_scorer(model, device=device)


@loaded_once(maxsize=2)
def load_encoder(name: str, device: str):
    from rmcore.models.encoder import load_encoder as load

    return load(name, device=device)


@loaded_once(maxsize=2)
def load_lm(lm: str, device: str):
    from rmcore.models.lm_loglik import CausalLMScorer

    return CausalLMScorer.load(lm, device=device)


def encoder_of(scorer: RewardScorer, device: str):
    """The encoder whose cached embeddings a run uses: a head model's own, else the bundled
    one (for `embedding` importance weights)."""
    if isinstance(scorer, EmbedHeadRewardModel | LateInteractionRewardModel):
        return scorer.encoder
    return load_encoder(BUNDLED_ENCODER, device)


def _fill_cache(
    warehouse: str | None,
    missing: pl.Series,
    encoder,
    store: Callable[[pl.DataFrame], None],
    *,
    chunk: int,
    progress: bool,
    desc: str,
) -> dict:
    """Run `store` over the texts of the `missing` ids, `chunk` at a time:
    {embedded, forward_passes}."""
    with reader(warehouse) as con:
        texts = sql.texts(con, missing)
    before = encoder.n_forward
    with Progress(texts.height, desc=desc, unit="texts", enabled=progress) as bar:
        for start in range(0, texts.height, chunk):
            part = texts.slice(start, chunk)
            store(part)
            bar.update(part.height)
    return {"embedded": texts.height, "forward_passes": encoder.n_forward - before}


def ensure_embeddings(
    warehouse: str | None, encoder, ids: pl.Series, *, chunk: int = 2048, progress: bool = False
) -> dict:
    """Embed every text among `ids` that the cache lacks, once; short write transactions per
    chunk so readers are never locked out for long: {embedded, cached, forward_passes}."""
    with reader(warehouse) as con:
        missing = sql.missing_embeddings(con, encoder.encoder_id, ids)

    def store(part: pl.DataFrame) -> None:
        matrix = encoder.encode(part["text"].to_list()).numpy()
        with transaction(warehouse) as con:
            sql.store_embeddings(con, encoder.encoder_id, part["text_id"].to_list(), matrix)

    stats = _fill_cache(
        warehouse, missing, encoder, store, chunk=chunk, progress=progress, desc="embedding texts"
    )
    return stats | {"cached": ids.n_unique() - stats["embedded"]}


def token_state_cache(warehouse: str | None, scorer: LateInteractionRewardModel) -> TokenStateCache:
    """The token-state cache of the scorer's encoder, in the warehouse's data folder."""
    return scorer.cache(warehouse_path(warehouse).parent / TOKEN_STATES_DIR)


def ensure_token_states(
    warehouse: str | None,
    scorer: LateInteractionRewardModel,
    ids: pl.Series,
    *,
    chunk: int = 512,
    progress: bool = False,
) -> dict:
    """Token states of every text among `ids` that the cache lacks, computed once and
    appended per chunk: {embedded, cached, forward_passes}."""
    cache = token_state_cache(warehouse, scorer)

    def store(part: pl.DataFrame) -> None:
        cache.add(part["text_id"].to_list(), scorer.states(part["text"].to_list()))

    stats = _fill_cache(
        warehouse,
        cache.missing(ids),
        scorer.encoder,
        store,
        chunk=chunk,
        progress=progress,
        desc="token states",
    )
    return stats | {"cached": ids.n_unique() - stats["embedded"]}


def cached_token_states(
    warehouse: str | None, scorer: LateInteractionRewardModel, ids: pl.Series
) -> tuple[dict[str, int], TokenStates]:
    """(text id -> row, states) of cached token states for `ids`."""
    return token_state_cache(warehouse, scorer).load(ids)


def cached_embeddings(
    warehouse: str | None, encoder_id: str, ids: pl.Series
) -> tuple[dict[str, int], torch.Tensor]:
    """(text id -> row, matrix) of cached embeddings for `ids`."""
    with reader(warehouse) as con:
        index, matrix = sql.embeddings(con, encoder_id, ids)
    return index, torch.from_numpy(matrix)


def weight_embeddings(
    warehouse: str | None, scorer: RewardScorer, encoder_id: str, ids: pl.Series
) -> tuple[dict[str, int], torch.Tensor]:
    """(text id -> row, matrix) of the embeddings `embedding` weights read: a late-interaction
    model's cached token states mean-pooled (so one encoder pass per text serves the head and
    the weights), every other model's embedding cache."""
    if isinstance(scorer, LateInteractionRewardModel):
        index, states = cached_token_states(warehouse, scorer, ids)
        return index, states.mean_pooled()
    return cached_embeddings(warehouse, encoder_id, ids)


def texts_of(warehouse: str | None, ids: pl.Series) -> dict[str, str]:
    with reader(warehouse) as con:
        return dict(sql.texts(con, ids).iter_rows())


def score_missing(
    scorer: RewardScorer, encoder_id: str | None, todo: pl.DataFrame, warehouse: str | None
) -> pl.DataFrame:
    """Model scores for (prompt_id, response_id) rows missing from the cache."""
    if todo.height == 0:
        return todo.with_columns(pl.lit(None, dtype=pl.Float64).alias("score"))
    if isinstance(scorer, EmbedHeadRewardModel):
        index, emb = cached_embeddings(
            warehouse, encoder_id, pl.concat([todo["prompt_id"], todo["response_id"]])
        )
        scores = scorer.score_embeddings(
            emb[embedding_rows(index, todo["prompt_id"])],
            emb[embedding_rows(index, todo["response_id"])],
        )
    elif isinstance(scorer, LateInteractionRewardModel):
        index, states = cached_token_states(
            warehouse, scorer, pl.concat([todo["prompt_id"], todo["response_id"]])
        )
        scores = scorer.score_states(
            states,
            embedding_rows(index, todo["prompt_id"]),
            embedding_rows(index, todo["response_id"]),
        )
    else:
        text = texts_of(warehouse, pl.concat([todo["prompt_id"], todo["response_id"]]))
        scores = scorer.score(
            [text[t] for t in todo["prompt_id"].to_list()],
            [text[t] for t in todo["response_id"].to_list()],
        )
    return todo.with_columns(pl.Series("score", scores.double().numpy()))


def score_combos(
    warehouse: str | None, scorer: RewardScorer, encoder_id: str | None, combos: pl.DataFrame
) -> pl.DataFrame:
    """(prompt_id, response_id, score) for every combination: cached ones from rm_scores,
    the rest computed now and added to the cache."""
    with reader(warehouse) as con:
        cached = sql.cached_values(con, "rm_scores", scorer.model_id, scorer.revision, combos)
    todo = combos.join(cached, on=["prompt_id", "response_id"], how="anti")
    if todo.height:
        ensure_inputs(warehouse, scorer, pl.concat([todo["prompt_id"], todo["response_id"]]))
    fresh = score_missing(scorer, encoder_id, todo, warehouse)
    if fresh.height:
        with transaction(warehouse) as con:
            sql.store_values(con, "rm_scores", scorer.model_id, scorer.revision, fresh)
    return pl.concat([cached, fresh.select(cached.columns)])


def ensure_inputs(
    warehouse: str | None,
    scorer: RewardScorer,
    ids: pl.Series,
    *,
    embeddings: bool = False,
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Cache what the scorer reads per text (embeddings for embed-head, token states for
    late-interaction), plus what `embedding` weights read when `embeddings` (the embedding
    cache, except for late-interaction: `weight_embeddings`):
    {embedded, cached, forward_passes} summed over both caches."""
    ids = ids.unique()
    parts = []
    if isinstance(scorer, LateInteractionRewardModel):
        parts.append(ensure_token_states(warehouse, scorer, ids, progress=progress))
    elif embeddings or isinstance(scorer, EmbedHeadRewardModel):
        parts.append(
            ensure_embeddings(warehouse, encoder_of(scorer, device), ids, progress=progress)
        )
    keys = ("embedded", "cached", "forward_passes")
    return {k: sum(p[k] for p in parts) for k in keys}


def lookup_scores(table: pl.DataFrame, prompt_ids, response_ids) -> np.ndarray:
    """table["score"] at each (prompt, response), in order; a missing combination raises."""
    keys = pl.DataFrame({"prompt_id": prompt_ids, "response_id": response_ids})
    out = keys.join(table, on=["prompt_id", "response_id"], how="left", maintain_order="left")
    if out["score"].null_count():
        raise KeyError(f"{out['score'].null_count()} (prompt, response) scores are missing")
    return out["score"].to_numpy()


def reference_scorer(
    warehouse: str | None, scoring_run_id: int, device: str | None = None
) -> tuple[RewardScorer, str | None]:
    """The model a scoring run used, reloaded (for filters that need fresh combinations)."""
    with reader(warehouse) as con:
        model_id, revision = sql.run_model(con, scoring_run_id)
    model = UNTRAINED_HEAD if model_id.startswith(f"{UNTRAINED_HEAD}:") else model_id
    scorer = load_model(model, str(pick_device(device)))
    if scorer.revision != revision:
        log.warning(
            "model %s changed since scoring run %d (revision %s, now %s)",
            model_id,
            scoring_run_id,
            revision,
            scorer.revision,
        )
    return scorer, (scorer.encoder.encoder_id if isinstance(scorer, EmbedHeadRewardModel) else None)
