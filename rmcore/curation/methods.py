"""Curation methods by name: the ablation's arms and the name a trained model records.

A method is a weighting rule plus an optional augmentation; `method_name` is the one place
that turns a curated set's (rule, augmentation) into the name stored in `models.method` and
`benchmark_results.method`, so the two always join.
"""

from __future__ import annotations

from rmcore.config import METHODS


def method_name(rule: str, augment: str | None) -> str:
    """The method a (rule, augmentation) is: an ablation arm's name where one matches,
    else `rule` or `rule+augment`."""
    for name, spec in METHODS.items():
        if spec["rule"] == rule and spec.get("augment") == augment:
            return name
    return rule if augment is None else f"{rule}+{augment}"
