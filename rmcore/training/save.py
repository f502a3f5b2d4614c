"""Write a trained reward model with a human-readable card and machine-readable metadata.

Layout of ``path``:
- joint model: ``JointRewardModel.save_pretrained`` (transformers safetensors + tokenizer), so
  plain ``AutoModelForSequenceClassification.from_pretrained(path)`` loads it;
- embedding head / late-interaction head: their ``save_pretrained`` (safetensors + config.json);
- all: ``README.md`` (model card) and ``rmcurate.json`` (kind, card, config, metrics, history).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rmcore.training.config import TrainResult

METADATA_FILE = "rmcurate.json"
CARD_FILE = "README.md"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _table(rows: dict[str, Any]) -> str:
    lines = ["| key | value |", "|---|---|"]
    lines += [f"| {k} | {f'{v:.4g}' if isinstance(v, float) else v} |" for k, v in rows.items()]
    return "\n".join(lines)


def render_card(meta: dict[str, Any]) -> str:
    """Markdown model card from the metadata record (so card and json never disagree)."""
    card = meta["card"]
    title = card.get("name", f"rmcurate {meta['kind']} reward model")
    parts = [
        f"# {title}",
        f"Reward model ({meta['kind']}) trained by rmcurate on {meta['created_at']}.",
        f"- curated set: `{card.get('curated_set', 'unspecified')}`",
        f"- curation rule: `{card.get('rule', 'unspecified')}`",
    ]
    hyper = {**meta.get("train_config", {}), **card.get("hyperparameters", {})}
    if hyper:
        parts += ["## Hyperparameters", _table(hyper)]
    metrics = {**meta.get("metrics", {}), **card.get("metrics", {})}
    if metrics:
        parts += ["## Metrics", _table(metrics)]
    known = {"name", "curated_set", "rule", "hyperparameters", "metrics"}
    rest = {k: v for k, v in card.items() if k not in known}
    if rest:
        parts += ["## Details", "```json", json.dumps(rest, indent=2, default=str), "```"]
    if meta.get("usage"):
        parts += ["## Input format and loading", meta["usage"].strip()]
    parts += [
        "## Limitations",
        "Scores are only comparable within one model. Curation priorities come from a "
        "prompt-free reward estimate (arXiv 2504.06020), which is an approximation.",
    ]
    return "\n\n".join(parts) + "\n"


def save_trained(path: str | Path, trained: TrainResult | Any, card: dict[str, Any]) -> Path:
    """Save a TrainResult (or a bare model) to ``path`` with README.md and rmcurate.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = trained.model if isinstance(trained, TrainResult) else trained
    # JointRewardModel writes safetensors + tokenizer, the heads safetensors + config.json.
    model.save_pretrained(path)
    meta: dict[str, Any] = {
        "format_version": 1,
        "kind": model.backend,
        "usage": model.usage,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "card": card,
        "versions": {p: _version(p) for p in ("rmcurate", "torch", "transformers", "peft")},
    }
    if isinstance(trained, TrainResult):
        meta |= {
            "train_config": asdict(trained.config),
            "metrics": trained.metrics,
            "history": trained.history,
            "seconds": trained.seconds,
        }
    (path / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
    (path / CARD_FILE).write_text(render_card(meta))
    return path
