"""What decides a trained model's content: its data (by reference), backend, base model and
training options. `ModelSpec.digest()` is its identity: retraining a name with the same spec
returns the saved model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rmcore.identity import digest
from rmcore.training.config import BACKENDS, TrainConfig

BUNDLED_BASE = "bundled"  # the bundled MiniLM encoder (embed-head backend)


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
    head_hidden: int = 256  # embed-head only
    config: TrainConfig

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be embed-head or joint, got {self.backend!r}")
        if not self.curated_set and not self.dataset:
            raise ValueError("give a curated set or a dataset")

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
        )
