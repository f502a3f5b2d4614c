"""Every default of rmcurate, in one light module: the config dataclasses of each stage.

The flows and the CLI read their defaults from these records, and the stages take them as
arguments, so a default is written once. This module imports no heavy library (no torch,
transformers, polars or duckdb), so the CLI can show its help and check its arguments fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rmcore.errors import InvalidArgument
from rmcore.identity import digest

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """How a source becomes a stored, checked batch.

    `ranked_mode`, `score_field`, `preference`, `default_split`, `max_chars`, the parsing
    limits (`max_line_bytes`, `max_depth`), `hf_split`, `hf_config` and `column_map` shape the
    batch and are stored with the dataset version (`datasets.options`); `reports_dir` and
    `quality` only steer the data-quality check after it."""

    ranked_mode: str = "best-vs-worst"  # ranked lists: best-vs-worst or all-pairs
    # the score that orders a scored list (ranked: a completion field, default the first of
    # rating, fine-grained_score, overall_score, score they carry; helpsteer2: an attribute,
    # default helpfulness)
    score_field: str | None = None
    preference: str = "better"  # PKU-SafeRLHF: better (helpfulness) or safer (harmlessness)
    default_split: str = "train"  # the split of rows that carry none
    max_chars: int = 100_000  # texts longer than this are quarantined
    max_line_bytes: int = 1 << 25  # JSON lines over 32 MiB are quarantined unparsed
    max_depth: int = 64  # records nesting objects/arrays deeper are quarantined (at most 1000)
    # the splits of a Hugging Face dataset to read (comma-separated; default: all of them)
    hf_split: str | None = None
    hf_config: str | None = None  # the config (subset) of a hub dataset
    column_map: dict[str, str] | None = None  # --map: {canonical key: source column}
    reports_dir: str = "reports"  # where Data Docs pages go
    quality: bool = True  # run the Great Expectations suite on the stored batch

    def options(self) -> dict[str, Any]:
        """What `datasets.options` records about how the batch was built."""
        return {
            "ranked_mode": self.ranked_mode,
            "score_field": self.score_field,
            "preference": self.preference,
            "default_split": self.default_split,
            "max_chars": self.max_chars,
            "max_line_bytes": self.max_line_bytes,
            "max_depth": self.max_depth,
            "hf_split": self.hf_split,
            "hf_config": self.hf_config,
            "column_map": self.column_map,
        }


CRITERIA = ("balanced", "logit-mean")


WEIGHT_METHODS = ("uniform", "lm", "embedding")


@dataclass(frozen=True, kw_only=True)
class ScoringConfig:
    """Everything that changes a scoring run's numbers (and so its identity); the single
    source of the score stage's defaults (the flow and the CLI read theirs from here)."""

    prompts_per_pair: int = 16  # M: prompts sampled per pair besides its own (K = M + 1)
    seed: int = 0
    criterion: str = "balanced"
    weights: str = "embedding"  # without a policy LM, the embedding-similarity proxy
    beta: float = 1.0  # temperature of `lm` weights: w ~ exp(beta * (l_w + l_l))
    # of `embedding` weights, w ~ exp(cos / temperature); None: chosen per run so that the
    # mean effective sample size lands mid `ess_band`
    temperature: float | None = None
    ess_band: tuple[float, float] = (3.0, 8.0)
    lm: str | None = None  # causal LM for `lm` weights
    pool_split: str = "train"  # prompts are drawn from this split only (never test prompts)
    shard_size: int = 2048

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise InvalidArgument(f"criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.weights not in WEIGHT_METHODS:
            raise InvalidArgument(f"weights must be one of {WEIGHT_METHODS}, got {self.weights!r}")
        if self.weights == "lm" and not self.lm:
            raise InvalidArgument("weights='lm' needs a causal LM (--lm PATH or hub id)")
        lo, hi = self.ess_band
        if not 1.0 <= lo <= hi:
            raise InvalidArgument(
                f"ess_band must be (low, high) with 1 <= low <= high, got {self.ess_band}"
            )
        if self.temperature is not None and not self.temperature > 0:
            raise InvalidArgument(f"temperature must be > 0 or None, got {self.temperature}")
        if self.prompts_per_pair < 0 or self.shard_size < 1:
            raise InvalidArgument("prompts_per_pair must be >= 0 and shard_size >= 1")

    @property
    def embedding_weights(self) -> bool:
        """Whether the run reads sentence embeddings for its weights: with M = 0 the own
        prompt's weight is 1 whatever the method, so no embedding pass is owed for it."""
        return self.weights == "embedding" and self.prompts_per_pair > 0

    def run_key(self, **identity: object) -> str:
        """The scoring run's identity: `digest` of the config plus the data and model identity."""
        return digest(**asdict(self), **identity)


METHODS: dict[str, dict] = {
    "vanilla": {"rule": "uniform"},
    "rrm": {"rule": "uniform", "augment": "rrm", "rrm_filter": True},
    "prompt-free-priority": {"rule": "prompt-free-priority", "params": {"c": 1.0, "cap": 10.0}},
    "prompt-free-filter": {"rule": "prompt-free-filter", "params": {"q": 0.5}},
    # RRM again, trained for as many passes over its (larger) set as vanilla makes over the
    # original pairs, instead of vanilla's number of optimizer steps
    "rrm-epochs": {"rule": "uniform", "augment": "rrm", "rrm_filter": True, "budget": "epochs"},
    # METHOD.md's priority, with the free gaps re-estimated by the model being trained (no
    # reference model): uniform weights for the warm-up, then re-weighted on a schedule
    "prompt-free-online": {"rule": "uniform", "online": True, "params": {"c": 1.0, "cap": 10.0}},
}


# What an ablation trains unless told otherwise: the online variant is opt-in (`--methods`).
DEFAULT_METHODS = tuple(m for m in METHODS if not METHODS[m].get("online"))


# The parameter grid the ablation searches per method (one seed each), on the validation
# split by group-balanced accuracy; the methods' `params` above are used where no grid is.
TUNING: dict[str, tuple[dict, ...]] = {
    "prompt-free-priority": (
        {"c": 0.5, "cap": 10.0},
        {"c": 1.0, "cap": 10.0},
        {"c": 2.0, "cap": 10.0},
        {"rank": True, "cap": 10.0},
    ),
    "prompt-free-filter": ({"q": 0.25}, {"q": 0.5}, {"q": 0.75}),
    "prompt-free-online": (
        {"c": 0.5, "cap": 10.0},
        {"c": 1.0, "cap": 10.0},
        {"c": 2.0, "cap": 10.0},
    ),
}


BASELINE = "vanilla"


AUGMENTATIONS = (None, "rrm")


SCORE_FREE_RULES = ("uniform",)  # rules that need no scoring run


@dataclass(frozen=True, kw_only=True)
class SetDefinition:
    """A curated set's definition; `identity` of it and its resolved inputs is the set's hash,
    so the same definition over the same inputs is the same set and a changed one a new version."""

    name: str
    dataset: str
    predicate: str = "split = 'train'"  # user SQL over v_pairs_scored, run sandboxed
    rule: str = "uniform"  # a key of rmcore.curation.WEIGHTING_RULES
    params: dict = field(default_factory=dict)
    augment: str | None = None  # None or "rrm"
    keep_fraction: float = 0.5
    rrm_filter: bool = (
        False  # keep only augmented pairs the reference model gets wrong or is unsure of
    )
    rrm_cap: float | None = 1.0  # at most this many augmented pairs per source pair (None: all)
    seed: int = 0
    scoring_run_id: int | None = None  # default: the newest complete run (when scores are needed)

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise InvalidArgument(f"augment must be None or 'rrm', got {self.augment!r}")

    @property
    def needs_scores(self) -> bool:
        """Whether the rule, the filter or the predicate reads the scoring run's gaps."""
        return self.rule not in SCORE_FREE_RULES or self.rrm_filter or "free_gap" in self.predicate

    def identity(self, *, dataset_id: int, scoring_run_id: int | None) -> str:
        """The definition hash: this record plus the dataset and scoring run it resolved to."""
        return digest(**asdict(self) | {"dataset_id": dataset_id, "scoring_run_id": scoring_run_id})


# backend -> default lr
LEARNING_RATES: dict[str, float] = {"embed-head": 1e-3, "late-interaction": 1e-3, "joint": 2e-5}


BACKENDS = tuple(LEARNING_RATES)


def default_lr(backend: str) -> float:
    """The learning rate a backend trains with unless told otherwise: a small head on a
    frozen encoder takes 1e-3, fine-tuning a whole transformer 2e-5."""
    if backend not in LEARNING_RATES:
        raise InvalidArgument(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return LEARNING_RATES[backend]


@dataclass(kw_only=True)
class TrainConfig:
    """Options shared by both trainers, and the single source of the train defaults; ``lr``
    defaults to the embedding head's (``default_lr(backend)`` gives each backend's).

    ``max_steps`` (optimizer steps), when set, overrides ``epochs`` as in transformers' Trainer.
    ``bf16=None`` means on for CUDA only (CPU bf16 matmuls are slow on most hosts).
    ``early_stopping_patience`` counts epochs without a better validation loss; the best
    weights are restored at the end. ``max_length`` (joint model only) lowers the model's own
    truncation length, for training and for later scoring alike; None keeps it.
    ``device=None``: the joint model's device, else CUDA when present.
    """

    epochs: int = 10
    lr: float = LEARNING_RATES["embed-head"]
    batch_size: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scheduler: Literal["linear", "cosine"] = "linear"
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    margin: float = 0.0
    center_coef: float = 0.0
    seed: int = 0
    max_steps: int | None = None
    early_stopping_patience: int | None = None
    bf16: bool | None = None
    gradient_checkpointing: bool = False
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    max_length: int | None = None
    eval_batch_size: int | None = None
    device: str | None = None
    progress: bool = False  # tqdm bars; the CLI turns them on

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.grad_accum_steps < 1 or self.epochs < 1:
            raise InvalidArgument("batch_size, grad_accum_steps and epochs must be >= 1")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise InvalidArgument(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    def resolve_device(self) -> torch.device:
        import torch  # here, not at module level: this module stays light for the CLI

        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def use_bf16(self, device: torch.device) -> bool:
        return device.type == "cuda" if self.bf16 is None else self.bf16


@dataclass(frozen=True, kw_only=True)
class OnlineConfig:
    """The online variant of prioritized training: the model being trained re-scores its
    training pairs under `prompts_per_pair` sampled training prompts, the free gaps are solved
    as in a scoring run (embedding importance weights, temperature set for `ess_band`), and
    the weights become `prompt_free_priority(free, **params)`: first after `warmup_epochs`
    epochs of uniform weights, then every `every_epochs` epochs. Unlike cross-fitting, the
    scoring model has trained on the pairs it scores (the warm-up keeps it from having fit
    them yet)."""

    warmup_epochs: int = 1
    every_epochs: int = 1
    prompts_per_pair: int = ScoringConfig.prompts_per_pair
    seed: int = ScoringConfig.seed
    ess_band: tuple[float, float] = ScoringConfig.ess_band
    params: dict = field(default_factory=lambda: dict(METHODS["prompt-free-online"]["params"]))

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0 or self.every_epochs < 1 or self.prompts_per_pair < 1:
            raise InvalidArgument(
                "online re-weighting needs warmup_epochs >= 0, every_epochs >= 1 and"
                " prompts_per_pair >= 1"
            )

    def describe(self) -> str:
        """The schedule in words, for reports."""
        return (
            f"uniform weights for {self.warmup_epochs} epoch(s), then re-scored by the model in"
            f" training under its own and {self.prompts_per_pair} sampled training prompts and"
            f" re-weighted every {self.every_epochs} epoch(s); embedding importance weights,"
            f" mean ESS aimed mid {self.ess_band[0]:g}-{self.ess_band[1]:g}"
        )

    def due(self, epoch: int) -> bool:
        """Whether the weights are re-estimated before epoch `epoch` (0-based)."""
        return epoch >= self.warmup_epochs and (epoch - self.warmup_epochs) % self.every_epochs == 0


BUNDLED_BASE = "bundled"  # the bundled MiniLM encoder (embed-head, late-interaction)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Train on `curated_set` (its weights apply) or on `dataset`'s `split` (weight 1);
    validate on the dataset's `val_split` (None: no validation)."""

    curated_set: str | None = None  # name, name@version or id
    dataset: str | None = None
    split: str = "train"
    val_split: str | None = "validation"
    backend: str = "embed-head"  # one of BACKENDS
    base_model: str = BUNDLED_BASE
    head_hidden: int = 256  # embed-head and late-interaction: width of the output MLP
    online: OnlineConfig | None = None  # re-weight during training (head backends only)
    config: TrainConfig

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidArgument(
                f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if not self.curated_set and not self.dataset:
            raise InvalidArgument("give a curated set or a dataset")
        if self.online is not None and self.backend == "joint":
            raise InvalidArgument(
                "online re-weighting needs a head backend (embed-head or late-interaction):"
                " the joint model would re-score every pair under every prompt each time"
            )

    def digest(self) -> str:
        """Everything that decides the weights, progress bars aside."""
        return digest(
            curated_set=self.curated_set,
            dataset=self.dataset,
            split=self.split,
            val_split=self.val_split,
            backend=self.backend,
            base_model=self.base_model,
            head_hidden=self.head_hidden,
            config=asdict(self.config) | {"progress": None},
            # only when on, so the digests of models trained before the option stay valid
            **({"online": asdict(self.online)} if self.online else {}),
        )


@dataclass(frozen=True, kw_only=True)
class AblationConfig:
    """Every model of an ablation shares these; only the curation method and seed differ."""

    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = DEFAULT_METHODS
    prompts_per_pair: int = ScoringConfig.prompts_per_pair
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    backend: str = ModelSpec.backend
    base_model: str = ModelSpec.base_model
    train_predicate: str = SetDefinition.predicate  # user SQL over v_pairs_scored, sandboxed
    test_split: str = "test"
    validation_split: str = "validation"  # where the TUNING grid is compared (never test)
    cross_fit_folds: int = 5  # k reference models, each scoring only the fold it never saw
    tune: bool = True  # search TUNING on the validation split; False: the METHODS params
    bias_cells: tuple[str, ...] = ("winner_longer", "winner_shorter")  # of balanced accuracy
    reports_dir: str = IngestConfig.reports_dir


@dataclass(frozen=True, kw_only=True)
class IterateConfig:
    """METHOD.md's loop: `rounds` of re-score, re-curate by `rule`, retrain."""

    rounds: int = 2
    rule: str = METHODS["prompt-free-priority"]["rule"]


@dataclass(frozen=True, kw_only=True)
class QueryConfig:
    """Limits of a user's read-only query (`rmcurate sql`); 0 turns a limit off."""

    timeout_s: float = 60.0  # interrupted after this long (`--timeout`)
    memory_limit: str = "2GB"  # DuckDB's `memory_limit` on the sandboxed reader
    max_rows: int = 100_000  # rows shown; more are cut with a note (`--max-rows`)


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """How the frozen sentence encoder runs on CPU; nothing here changes its outputs beyond
    float rounding (<= 1e-6, see `rmcore.models.encoder`), so none of it is part of an id."""

    # intra-op threads of a CPU encode: None = one per idle core (at least 1), sampled when a
    # multi-batch encode starts, because barrier-synchronised threads on busy cores stall.
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")


EXPORT_FILE_FORMATS = ("parquet", "jsonl", "hf")
TRL_FORMATS = ("explicit", "conversational")


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """How a curated set is written for TRL's `RewardTrainer` (`rmcore.trl_format`)."""

    file_format: str = "parquet"  # parquet, jsonl, or hf (a `datasets` DatasetDict folder)
    trl_format: str = "explicit"  # explicit (text) or conversational (message lists)
    # Largest `margin` (logit of the label, the gap our soft-label loss aims for); a hard
    # label's logit is infinite. 3 is Llama 2's largest margin ("significantly better").
    margin_cap: float = 3.0

    def __post_init__(self) -> None:
        if self.file_format not in EXPORT_FILE_FORMATS:
            raise InvalidArgument(
                f"format must be one of {EXPORT_FILE_FORMATS}, got {self.file_format!r}"
            )
        if self.trl_format not in TRL_FORMATS:
            raise InvalidArgument(
                f"TRL format must be one of {TRL_FORMATS}, got {self.trl_format!r}"
            )
        if not self.margin_cap >= 0:  # NaN fails too
            raise InvalidArgument(f"margin cap must be >= 0, got {self.margin_cap}")
