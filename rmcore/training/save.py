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


BUNDLED_UPSTREAM = "sentence-transformers/all-MiniLM-L6-v2"  # what `bundled` repackages
LOAD_SCORER = """```python
from rmcore.models.loading import load_scorer

scorer = load_scorer("{path}")  # safetensors only, no remote code
rewards = scorer.score(["What is 2+2?"], ["4"])  # one reward per (prompt, response)
```"""
LOAD_PLAIN = """Plain transformers, one pair rendered as under "Input format" (the same reward):

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained("{path}").eval()
tokenizer = AutoTokenizer.from_pretrained("{path}")
prompt, response = "What is 2+2?", "4"
{call}
with torch.no_grad():
    reward = model(**inputs).logits[0, 0].item()
```"""
HEAD_FILES = (
    "This folder is **not** a transformers model: `model.safetensors` holds only the head on"
    " a frozen encoder and `config.json` names that encoder by id, whose weights are not in"
    " the folder; plain `AutoModel.from_pretrained` cannot load it. rmcurate reloads the"
    " encoder from that id."
)


def _base_model(meta: dict[str, Any]) -> str | None:
    """The hub id the model was built on (the bundled encoder's upstream), None for a folder."""
    base = meta["card"].get("base_model")
    if base in (None, "bundled"):
        return BUNDLED_UPSTREAM if meta["kind"] == "embed-head" else base
    return None if Path(base).exists() else base


def front_matter(meta: dict[str, Any]) -> str:
    """The card's YAML metadata (Hugging Face model card fields, then rmcurate's lineage)."""
    import yaml

    card, joint = meta["card"], meta["kind"] == "joint"
    fields: dict[str, Any] = {"library_name": "transformers" if joint else "rmcurate"}
    if joint:
        fields["pipeline_tag"] = "text-classification"
    if base := _base_model(meta):
        fields["base_model"] = base
    fields["tags"] = ["reward-model", "bradley-terry", "rmcurate", meta["kind"]]
    if card.get("method"):
        fields["tags"].append(card["method"])
    lineage = {"kind": meta["kind"], **card.get("training_data", {})}
    fields["rmcurate"] = lineage | {k: card[k] for k in ("base_model", "method") if k in card}
    return "---\n" + yaml.safe_dump(fields, sort_keys=False, allow_unicode=True) + "---"


def training_lines(meta: dict[str, Any]) -> list[str]:
    """Steps and (fractional) epochs actually run, from the last history record."""
    last = (meta.get("history") or [{}])[-1]
    if "step" not in last:
        return []
    steps, per_epoch = int(last["step"]), int(last.get("steps_per_epoch", 0))
    line = f"- optimizer steps: {steps}"
    if per_epoch:
        line += f" ({per_epoch} per epoch, so {last['epoch']:.3g} epochs)"
    lines = [line, f"- training pairs: {meta['card'].get('n_train', 'unspecified')}"]
    config = meta.get("train_config", {})
    if config.get("max_steps"):
        lines.append(f"- max_steps {config['max_steps']} overrides epochs {config['epochs']}")
    return lines


def render_card(meta: dict[str, Any]) -> str:
    """Markdown model card from the metadata record (so card and json never disagree)."""
    card = meta["card"]
    data = card.get("training_data", {})
    title = card.get("name", f"rmcurate {meta['kind']} reward model")
    path = f"path/to/{card.get('name', 'model')}"  # saved under a temporary name first
    parts = [
        front_matter(meta),
        f"# {title}",
        f"Reward model ({meta['kind']}) trained by rmcurate on {meta['created_at']}.",
        "## Training data",
        "\n".join(f"- {k.replace('_', ' ')}: `{v}`" for k, v in data.items() if v is not None)
        or "- unspecified",
    ]
    if lines := training_lines(meta):
        parts += ["## Training", "\n".join(lines)]
    if meta.get("input_format"):
        parts += ["## Input format", meta["input_format"]]
    load = [LOAD_SCORER.format(path=path)]
    if meta.get("plain_call"):
        load.append(LOAD_PLAIN.format(path=path, call=meta["plain_call"]))
    else:
        load.append(HEAD_FILES)
    parts += ["## How to load", *load]
    hyper = {**meta.get("train_config", {}), **card.get("hyperparameters", {})}
    if hyper:
        parts += ["## Hyperparameters", _table(hyper)]
    metrics = {**meta.get("metrics", {}), **card.get("metrics", {})}
    if metrics:
        parts += ["## Metrics (last epoch, or the best one with early stopping)", _table(metrics)]
    known = {"name", "training_data", "hyperparameters", "metrics", "n_train"}
    rest = {k: v for k, v in card.items() if k not in known}
    if rest:
        parts += ["## Details", "```json", json.dumps(rest, indent=2, default=str), "```"]
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
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "card": card,
        "input_format": model.describe_input(),
        "plain_call": model.plain_call() if hasattr(model, "plain_call") else None,
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
