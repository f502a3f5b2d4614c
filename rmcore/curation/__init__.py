"""Curation: weighting rules over prompt-free gaps (`rules`), RRM augmentation (`rrm`), the
set definition that holds the curate defaults (`definition`) and the methods by name (`methods`)."""

from rmcore.config import BASELINE, METHODS, SetDefinition
from rmcore.curation.methods import method_name
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
    "BASELINE",
    "METHODS",
    "WEIGHTING_RULES",
    "RRMResult",
    "SetDefinition",
    "apply_rule",
    "method_name",
    "priority_sampling",
    "prompt_free_filter",
    "prompt_free_priority",
    "rrm_augment",
    "uniform",
]
