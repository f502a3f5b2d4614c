"""Curation methods by name: the ablation's arms and the name a trained model records.

A method is a weighting rule plus an optional augmentation; `method_name` is the one place
that turns a curated set's (rule, augmentation) into the name stored in `models.method` and
`benchmark_results.method`, so the two always join.
"""

from __future__ import annotations

from rmcore.config import METHODS


def method_name(rule: str, augment: str | None, online: bool = False) -> str:
    """The method a (rule, augmentation, online re-weighting) is: an ablation arm's name
    where one matches, else `rule` or `rule+augment` (and `+online` when re-weighted online)."""
    for name, spec in METHODS.items():
        if (spec["rule"], spec.get("augment"), spec.get("online", False)) == (
            rule,
            augment,
            online,
        ):
            return name
    if online:
        return f"{method_name(rule, augment)}+online"
    return rule if augment is None else f"{rule}+{augment}"
