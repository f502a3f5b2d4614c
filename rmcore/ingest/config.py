"""The ingest defaults, in one place: the flow, the CLI and the batch builder read them here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """How a source becomes a stored, checked batch.

    `ranked_mode`, `default_split`, `max_chars` and `hf_split` shape the batch and are stored
    with the dataset version (`datasets.options`); `reports_dir` and `quality` only steer the
    data-quality check after it."""

    ranked_mode: str = "best-vs-worst"  # ranked lists: best-vs-worst or all-pairs
    default_split: str = "train"  # the split of rows that carry none
    max_chars: int = 100_000  # texts longer than this are quarantined
    hf_split: str | None = None  # the split of a Hugging Face dataset to read
    reports_dir: str = "reports"  # where Data Docs pages go
    quality: bool = True  # run the Great Expectations suite on the stored batch

    def options(self) -> dict[str, Any]:
        """What `datasets.options` records about how the batch was built."""
        return {
            "ranked_mode": self.ranked_mode,
            "default_split": self.default_split,
            "max_chars": self.max_chars,
            "hf_split": self.hf_split,
        }
