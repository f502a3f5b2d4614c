"""Seeded toy preference data reproducing the paper's two toy setups (METHOD.md, last section).

- ``length_biased``: the chosen answer is on the prompt's topic and the rejected one is about
  another topic (the true, prompt-related preference), but in train/validation the chosen is
  also the longer one 90% of the time (a response-only shortcut); the test split reverses it.
- ``adversarial``: the same short and long answer appear under "Answer in one sentence" and
  "Give a detailed, thorough answer" prompts with opposite preferences, so no response-only
  rule can fit both.

Every row carries the injected truth (word lengths, length gap, relevance gap), and
``rmcore.demo.oracle.length_relevance_reward`` is a toy r(x, y) = a * n_words(y) +
b * relevance(x, y) whose prompt-free part is exactly a * length_diff, so scoring code can be
checked against it. The texts come from the text bank (``rmcore.demo.bank``, package data).

Responses are drawn from a small bank of unique texts built once per call, so generating
100k pairs is index arithmetic in numpy plus one gather per column in polars.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

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
from rmcore.demo.oracle import n_words
from rmcore.ingest.batch import SPLITS

SETUPS = ("length_biased", "adversarial")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
MAX_SENTENCES = 8  # response lengths run from 1 to MAX_SENTENCES topical sentences
LONG_MIN_SENTENCES = 4  # the adversarial "detailed" answer has at least this many
VERBOSE_FROM = 4  # responses this long also get a chatty opener and closer
VARIANTS = 24  # distinct responses per (topic, sentence count >= 2)


def generate_demo(
    n_length_biased: int = 3000,
    n_adversarial: int = 600,
    seed: int = 0,
    train_long_rate: float = 0.9,
    test_long_rate: float = 0.1,
) -> pl.DataFrame:
    """Both toy setups in TRL's explicit format plus the injected truth, rows shuffled.

    ``n_adversarial`` counts rows and must be even: each response pair yields two rows.
    ``train_long_rate`` is P(chosen longer) in train/validation, ``test_long_rate`` in test.
    """
    for name, rate in (("train_long_rate", train_long_rate), ("test_long_rate", test_long_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    if n_length_biased < 0 or n_adversarial < 0:
        raise ValueError("row counts must be >= 0")
    if n_adversarial % 2:
        raise ValueError(
            f"n_adversarial counts rows (two per response pair), got odd {n_adversarial}"
        )
    rng = np.random.default_rng(seed)
    bank = _Bank.build(rng)
    rates = {"train": train_long_rate, "validation": train_long_rate, "test": test_long_rate}
    lb = _length_biased(rng, bank, n_length_biased, rates)
    adv = _adversarial(rng, bank, n_adversarial // 2)
    # Rows stay integer codes until this point, so shuffling costs one gather per column.
    order = rng.permutation(n_length_biased + n_adversarial)
    p, c, r, split_codes = (
        np.concatenate([lb[k], adv[k]])[order] for k in ("p", "c", "r", "split")
    )
    prompts, prompt_topic = all_prompts()
    len_c, len_r = bank.words[c], bank.words[r]
    return pl.DataFrame(
        {
            "prompt": prompts.gather(p),
            "chosen": bank.texts.gather(c),
            "rejected": bank.texts.gather(r),
            "label": np.ones(p.size),
            "split": pl.Series(SPLITS, dtype=pl.String).gather(split_codes),
            "setup": pl.Series(SETUPS, dtype=pl.String).gather(
                (p >= lb_prompts().len()).astype(np.int64)
            ),
            "topic": pl.Series([tp.name for tp in TOPICS], dtype=pl.String).gather(prompt_topic[p]),
            "len_chosen": len_c,
            "len_rejected": len_r,
            "length_diff": len_c - len_r,
            # By construction only the chosen fits the prompt's topic and format.
            "relevance_gap": np.ones(p.size),
            "chosen_longer": len_c > len_r,
            "bias_breaking": len_c < len_r,
        }
    )


def write_demo(path: str | Path, **kwargs: object) -> Path:
    """Write `generate_demo(**kwargs)` as JSONL (one pair per line) for the real ingest path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_demo(**kwargs).write_ndjson(path)  # type: ignore[arg-type]
    return path


@cache
def lb_prompts() -> pl.Series:
    """Length-biased prompts, topic-major: equal consecutive blocks, one block per topic."""
    return pl.Series(
        [tpl.format(s=s) for tp in TOPICS for s in tp.subjects for tpl in PROMPT_TEMPLATES],
        dtype=pl.String,
    )


@cache
def adv_questions() -> pl.Series:
    """Adversarial questions before the format prefix, topic-major like `lb_prompts`."""
    return pl.Series(
        [tpl.format(s=s) for tp in TOPICS for s in tp.subjects for tpl in QUESTION_TEMPLATES],
        dtype=pl.String,
    )


@cache
def all_prompts() -> tuple[pl.Series, np.ndarray]:
    """Every demo prompt and its topic index: length-biased ones, then per adversarial
    question its one-sentence and its detailed variant (rows 2q and 2q + 1 after the former).
    """
    lb, questions = lb_prompts(), adv_questions()
    n_topics = len(TOPICS)
    q2 = questions.gather(np.repeat(np.arange(questions.len()), 2))
    prefix = pl.Series(
        np.tile([ONE_SENTENCE_PREFIX, DETAILED_PREFIX], questions.len()), dtype=pl.String
    )
    topic = np.concatenate(
        [
            np.arange(lb.len()) // (lb.len() // n_topics),
            np.arange(2 * questions.len()) // (2 * questions.len() // n_topics),
        ]
    )
    return pl.concat([lb, prefix + q2]), topic


class _Bank:
    """Unique response texts indexed by (topic, sentence count): one gather builds any column."""

    def __init__(self, texts: list[str], offsets: np.ndarray, counts: np.ndarray) -> None:
        self.texts = pl.Series("text", texts, dtype=pl.String)
        self.words = n_words(self.texts)  # (B,)
        self.offsets = offsets  # (T, MAX_SENTENCES): first bank index of (topic, k)
        self.counts = counts  # (T, MAX_SENTENCES): number of variants of (topic, k)

    @classmethod
    def build(cls, rng: np.random.Generator) -> _Bank:
        # The bank has a fixed size (~2.7k texts) whatever the number of pairs: a loop is fine.
        texts: list[str] = []
        n_topics = len(TOPICS)
        offsets = np.zeros((n_topics, MAX_SENTENCES), dtype=np.int64)
        counts = np.zeros((n_topics, MAX_SENTENCES), dtype=np.int64)
        for t, topic in enumerate(TOPICS):
            sentences = topic.sentences
            for k in range(1, MAX_SENTENCES + 1):
                if k == 1:
                    variants = list(sentences)
                else:
                    seen: dict[str, None] = {}
                    for _ in range(VARIANTS * 4):
                        picked = [sentences[i] for i in rng.permutation(len(sentences))[:k]]
                        fillers = rng.integers(0, len(FILLERS), size=k - 1)
                        seen.setdefault(_compose(picked, [FILLERS[f] for f in fillers]))
                        if len(seen) == VARIANTS:
                            break
                    variants = list(seen)
                offsets[t, k - 1] = len(texts)
                counts[t, k - 1] = len(variants)
                texts.extend(variants)
        return cls(texts, offsets, counts)

    def draw(self, rng: np.random.Generator, topic: np.ndarray, k: np.ndarray) -> np.ndarray:
        """A uniformly drawn bank index per row for the given topic and sentence count (1-based)."""
        return self.offsets[topic, k - 1] + rng.integers(0, self.counts[topic, k - 1])


def _compose(sentences: list[str], fillers: list[str]) -> str:
    """Verbose style: a connective before every extra sentence, chatty framing when long."""
    rest = [f"{f} {s[0].lower()}{s[1:]}" for f, s in zip(fillers, sentences[1:], strict=True)]
    body = [sentences[0], *rest]
    if len(sentences) >= VERBOSE_FROM:
        body = [OPENER, *body, CLOSER]
    return " ".join(body)


def _split_sizes(n: int) -> dict[str, int]:
    n_train = int(n * SPLIT_FRACTIONS[0] + 0.5)
    n_val = int(n * SPLIT_FRACTIONS[1] + 0.5)
    return {"train": n_train, "validation": n_val, "test": n - n_train - n_val}


Draw = Callable[[int], tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]


def _draw_distinct(
    draw: Draw, n: int, seen: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Vectorized rounds of ``draw(m) -> (columns, keys, ok)`` until ``n`` rows with new keys.

    Rows are rejected when ``ok`` is False or their key was already drawn (in ``seen`` or
    earlier in the round), so no (prompt, chosen, rejected) triple appears twice.
    """
    parts: list[dict[str, np.ndarray]] = []
    need = n
    for _ in range(100):
        cols, keys, ok = draw(need + need // 8 + 16)  # oversample: some rows get rejected
        first = np.zeros(keys.size, dtype=bool)
        first[np.unique(keys, return_index=True)[1]] = True
        take = np.flatnonzero(ok & first & ~np.isin(keys, seen))[:need]
        seen = np.concatenate([seen, keys[take]])
        parts.append({name: col[take] for name, col in cols.items()})
        need -= take.size
        if need == 0:
            return {name: np.concatenate([p[name] for p in parts]) for name in cols}, seen
    raise RuntimeError(f"could not draw {n} distinct pairs; the text bank is too small")


def _length_biased(
    rng: np.random.Generator, bank: _Bank, n: int, rates: dict[str, float]
) -> dict[str, np.ndarray]:
    """Row codes (prompt index, chosen/rejected bank index, split code) of the length-biased setup."""
    n_topics, n_prompts = len(TOPICS), lb_prompts().len()
    prompt_topic = all_prompts()[1]
    n_bank = bank.texts.len()

    def draw(m: int, rate: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        p = rng.integers(0, n_prompts, size=m)
        t_c = prompt_topic[p]
        t_r = (t_c + rng.integers(1, n_topics, size=m)) % n_topics  # any other topic
        k_a = rng.integers(1, MAX_SENTENCES + 1, size=m)
        k_b = rng.integers(1, MAX_SENTENCES, size=m)
        k_b += k_b >= k_a  # distinct sentence counts
        chosen_longer = rng.random(m) < rate
        k_long, k_short = np.maximum(k_a, k_b), np.minimum(k_a, k_b)
        c = bank.draw(rng, t_c, np.where(chosen_longer, k_long, k_short))
        r = bank.draw(rng, t_r, np.where(chosen_longer, k_short, k_long))
        # Sentence lengths vary, so also enforce the intended order on word counts.
        w_c, w_r = bank.words[c], bank.words[r]
        ok = np.where(chosen_longer, w_c > w_r, w_c < w_r)
        return {"p": p, "c": c, "r": r}, (p * n_bank + c) * n_bank + r, ok

    seen = np.zeros(0, dtype=np.int64)
    parts = []
    for split, size in _split_sizes(n).items():
        cols, seen = _draw_distinct(lambda m, s=split: draw(m, rates[s]), size, seen)
        parts.append({**cols, "split": np.full(size, SPLITS.index(split))})
    return {k: np.concatenate([part[k] for part in parts]) for k in ("p", "c", "r", "split")}


def _adversarial(rng: np.random.Generator, bank: _Bank, n_pairs: int) -> dict[str, np.ndarray]:
    """Row codes of the adversarial setup: two rows (opposite preferences) per response pair."""
    n_questions = adv_questions().len()
    prompt_topic = all_prompts()[1]
    n_lb = lb_prompts().len()
    n_bank = bank.texts.len()

    def draw(m: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        q = rng.integers(0, n_questions, size=m)
        t = prompt_topic[n_lb + 2 * q]
        short = bank.draw(rng, t, np.ones(m, dtype=np.int64))
        long = bank.draw(rng, t, rng.integers(LONG_MIN_SENTENCES, MAX_SENTENCES + 1, size=m))
        keys = (q * n_bank + short) * n_bank + long
        return {"q": q, "s": short, "l": long}, keys, np.ones(m, dtype=bool)

    cols, _ = _draw_distinct(draw, n_pairs, np.zeros(0, dtype=np.int64))
    q, short, long = cols["q"], cols["s"], cols["l"]
    split_codes = np.repeat(np.arange(len(SPLITS)), list(_split_sizes(n_pairs).values()))
    split_codes = split_codes[rng.permutation(n_pairs)]  # one split per response pair
    # (P, 2) -> (2P,): the one-sentence prompt prefers the short answer, the detailed one the long.
    p = n_lb + np.stack([2 * q, 2 * q + 1], axis=1).reshape(-1)
    c = np.stack([short, long], axis=1).reshape(-1)
    r = np.stack([long, short], axis=1).reshape(-1)
    return {"p": p, "c": c, "r": r, "split": np.repeat(split_codes, 2)}
