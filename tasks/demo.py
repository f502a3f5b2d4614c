"""Prefect task for the demo: the paper's toy data written as a JSONL source."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from rmcore.demo import write_demo


@task(name="generate-demo-data", cache_policy=NO_CACHE)
def generate_demo_data(path: str, seed: int) -> str:
    """Length-biased and adversarial-prompt pairs (METHOD.md) at `path`; returns the path."""
    return str(write_demo(Path(path), seed=seed))
