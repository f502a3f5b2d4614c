"""Seeded toy preference data with injected truth.

- `generator`: the toy setups (`generate_demo`, `write_demo`): the paper's two (`SETUPS`) and
  two with held-out test prompts and responses (`HARD_SETUPS`);
- `oracle`: the toy reward r(x, y) = a * n_words(y) + b * relevance(x, y) and its parts;
- `bank`: the text bank (prompt templates, fillers, topics), package data in `textbank.json`.
"""

from rmcore.demo.bank import (
    CLOSER,
    DETAILED_PREFIX,
    FILLERS,
    ONE_SENTENCE_PREFIX,
    OPENER,
    PROMPT_TEMPLATES,
    QUESTION_TEMPLATES,
    TOPICS,
)
from rmcore.demo.generator import (
    HARD_SETUPS,
    MAX_SENTENCES,
    SETUPS,
    all_prompts,
    generate_demo,
    lb_prompts,
    write_demo,
)
from rmcore.demo.oracle import (
    infer_topic,
    length_relevance_reward,
    n_sentences,
    n_words,
    relevance,
)
from rmcore.ingest.batch import SPLITS

__all__ = [
    "CLOSER",
    "DETAILED_PREFIX",
    "FILLERS",
    "HARD_SETUPS",
    "MAX_SENTENCES",
    "ONE_SENTENCE_PREFIX",
    "OPENER",
    "PROMPT_TEMPLATES",
    "QUESTION_TEMPLATES",
    "SETUPS",
    "SPLITS",
    "TOPICS",
    "all_prompts",
    "generate_demo",
    "infer_topic",
    "lb_prompts",
    "length_relevance_reward",
    "n_sentences",
    "n_words",
    "relevance",
    "write_demo",
]
