"""Curation math: weighting rules over prompt-free gaps (`rules`) and RRM augmentation (`rrm`)."""

from rmcore.curation.rrm import RRMResult, rrm_augment
from rmcore.curation.rules import (
    WEIGHTING_RULES,
    apply_rule,
    priority_sampling,
    prompt_free_filter,
    prompt_free_priority,
    uniform,
)

__all__ = [
    "WEIGHTING_RULES",
    "RRMResult",
    "apply_rule",
    "priority_sampling",
    "prompt_free_filter",
    "prompt_free_priority",
    "rrm_augment",
    "uniform",
]
