"""The toy oracle reward of the demo: r(x, y) = a * n_words(y) + b * relevance(x, y).

Its prompt-free part is exactly a * length_diff, so scoring code can be checked against
the truth injected into every demo row. Relevance reads the text bank's topic keywords
and the format prefixes of the adversarial prompts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import numpy as np
import polars as pl

from rmcore.demo.bank import DETAILED_PREFIX, ONE_SENTENCE_PREFIX, TOPICS

Texts = Sequence[str] | pl.Series


def _series(texts: Texts) -> pl.Series:
    return texts if isinstance(texts, pl.Series) else pl.Series(list(texts), dtype=pl.String)


def n_words(texts: Texts) -> np.ndarray:
    """Whitespace-separated word counts, (N,) int64."""
    return _series(texts).str.count_matches(r"\S+").cast(pl.Int64).to_numpy()


def n_sentences(texts: Texts) -> np.ndarray:
    """Sentence counts (terminal punctuation followed by a space or the end), (N,) int64."""
    return _series(texts).str.count_matches(r"[.!?](?:\s|$)").cast(pl.Int64).to_numpy()


@cache
def _topic_patterns() -> tuple[str, ...]:
    return tuple(r"(?i)\b(?:" + "|".join(map(re.escape, tp.keywords)) + r")\b" for tp in TOPICS)


def infer_topic(texts: Texts) -> np.ndarray:
    """Index into TOPICS of the topic with most keyword hits, -1 when none; (N,) int64."""
    s = _series(texts)
    hits = np.stack(
        [s.str.count_matches(pat).to_numpy() for pat in _topic_patterns()], axis=1
    )  # (N, T)
    return np.where(hits.max(axis=1) > 0, hits.argmax(axis=1), -1)


def relevance(prompts: Texts, responses: Texts) -> np.ndarray:
    """1.0 when the response is on the prompt's topic and obeys its requested format, else 0.0.

    Format: a "one sentence" prompt needs exactly one sentence, a "detailed" prompt at least two;
    other prompts ask nothing about length.
    """
    p, y = _series(prompts), _series(responses)
    t_p, t_y = infer_topic(p), infer_topic(y)
    k = n_sentences(y)
    one = p.str.starts_with(ONE_SENTENCE_PREFIX).to_numpy()
    detailed = p.str.starts_with(DETAILED_PREFIX).to_numpy()
    format_ok = np.where(one, k == 1, np.where(detailed, k >= 2, True))
    return ((t_p >= 0) & (t_p == t_y) & format_ok).astype(np.float64)


def length_relevance_reward(
    prompts: Texts, responses: Texts, a: float = 0.02, b: float = 1.0
) -> np.ndarray:
    """Toy r(x, y) = a * n_words(y) + b * relevance(x, y), (N,) float64.

    Its prompt-free part r2(y) = a * n_words(y), so for a demo pair free = a * length_diff and,
    under the pair's own prompt, related = b * relevance_gap.
    """
    return a * n_words(responses) + b * relevance(prompts, responses)
