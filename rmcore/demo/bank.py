"""The demo's text bank, read from the package data file `textbank.json`.

Prompt templates (`{s}` is a topic's subject), the format prefixes of the adversarial
prompts, the connectives and framing of verbose answers, and the topics: the keywords that
identify a topic, its prompt subjects and its on-topic sentences. The texts are data, so
they are edited in the JSON file; this module only gives them names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files

BANK_FILE = "textbank.json"


@dataclass(frozen=True)
class Topic:
    """One topic: the keywords that identify it, prompt subjects, and on-topic sentences."""

    name: str
    keywords: tuple[str, ...]
    subjects: tuple[str, ...]
    sentences: tuple[str, ...]


def load_bank() -> dict:
    """The raw JSON of the text bank shipped inside `rmcore.demo`."""
    return json.loads(files("rmcore.demo").joinpath(BANK_FILE).read_text(encoding="utf-8"))


_BANK = load_bank()

PROMPT_TEMPLATES: tuple[str, ...] = tuple(_BANK["prompt_templates"])
QUESTION_TEMPLATES: tuple[str, ...] = tuple(_BANK["question_templates"])
ONE_SENTENCE_PREFIX: str = _BANK["one_sentence_prefix"]
DETAILED_PREFIX: str = _BANK["detailed_prefix"]
FILLERS: tuple[str, ...] = tuple(_BANK["fillers"])
OPENER: str = _BANK["opener"]
CLOSER: str = _BANK["closer"]
TOPICS: tuple[Topic, ...] = tuple(
    Topic(
        name=t["name"],
        keywords=tuple(t["keywords"]),
        subjects=tuple(t["subjects"]),
        sentences=tuple(t["sentences"]),
    )
    for t in _BANK["topics"]
)
