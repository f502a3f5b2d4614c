"""What decides a curated set's content, in one frozen record: the curate defaults live here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rmcore.identity import digest

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
    seed: int = 0
    scoring_run_id: int | None = None  # default: the newest complete run (when scores are needed)

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be None or 'rrm', got {self.augment!r}")

    @property
    def needs_scores(self) -> bool:
        """Whether the rule, the filter or the predicate reads the scoring run's gaps."""
        return self.rule not in SCORE_FREE_RULES or self.rrm_filter or "free_gap" in self.predicate

    def identity(self, *, dataset_id: int, scoring_run_id: int | None) -> str:
        """The definition hash: this record plus the dataset and scoring run it resolved to."""
        return digest(**asdict(self) | {"dataset_id": dataset_id, "scoring_run_id": scoring_run_id})
