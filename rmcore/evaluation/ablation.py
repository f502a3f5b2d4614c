"""The defaults of the ablation (matched models per curation method and seed, benchmarked,
reported) and of the iterate loop, read by the flows and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from rmcore.curation.definition import SetDefinition
from rmcore.curation.methods import METHODS
from rmcore.decomposition.scoring import ScoringConfig
from rmcore.ingest.config import IngestConfig
from rmcore.training import ModelSpec, TrainConfig


@dataclass(frozen=True, kw_only=True)
class AblationConfig:
    """Every model of an ablation shares these; only the curation method and seed differ."""

    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = tuple(METHODS)
    prompts_per_pair: int = ScoringConfig.prompts_per_pair
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    backend: str = ModelSpec.backend
    base_model: str = ModelSpec.base_model
    train_predicate: str = SetDefinition.predicate  # user SQL over v_pairs_scored, sandboxed
    test_split: str = "test"
    reports_dir: str = IngestConfig.reports_dir


@dataclass(frozen=True, kw_only=True)
class IterateConfig:
    """METHOD.md's loop: `rounds` of re-score, re-curate by `rule`, retrain."""

    rounds: int = 2
    rule: str = METHODS["prompt-free-priority"]["rule"]
