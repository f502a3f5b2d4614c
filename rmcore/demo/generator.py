"""Seeded toy preference data: the paper's two toy setups (METHOD.md, last section) and two
harder ones with held-out prompts and responses.

- ``length_biased``: the chosen answer is on the prompt's topic and the rejected one is about
  another topic (the true, prompt-related preference), but in train/validation the chosen is
  also the longer one 90% of the time (a response-only shortcut); the test split reverses it.
- ``adversarial``: the same short and long answer appear under "Answer in one sentence" and
  "Give a detailed, thorough answer" prompts with opposite preferences, so no response-only
  rule can fit both.

- ``heldout_offtopic`` (in ``HARD_SETUPS``): ``length_biased`` with its test split held out
  entirely: test prompts use subjects and test responses use sentences that no training or
  validation row contains (``HELDOUT_SUBJECTS``, ``HELDOUT_SENTENCES`` per topic); responses
  have 1 to ``HARD_MAX_SENTENCES`` sentences.
- ``heldout_format`` (in ``HARD_SETUPS``): both responses answer the prompt's topic (a short
  and a long one, drawn independently per row); the prompt's format request decides
  ("Answer in one sentence" -> the short one wins, "Give a detailed, thorough answer" -> the
  long one). In train/validation the detailed request comes ``train_long_rate`` of the time,
  in test ``test_long_rate``, so "longer wins" is the response-only shortcut that the test
  split reverses; topical relevance cannot decide (``relevance_gap`` is 0). Held out like
  ``heldout_offtopic``.
The default ``setups`` are the first two, drawn exactly as before, so old numbers reproduce.

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
HARD_SETUPS = ("heldout_offtopic", "heldout_format")
ALL_SETUPS = SETUPS + HARD_SETUPS
HELDOUT_SUBJECTS = 1  # per topic, its last subjects appear in test prompts only
HELDOUT_SENTENCES = 4  # per topic, its last sentences appear in test responses only
HARD_MAX_SENTENCES = 4  # responses of the held-out setups: 1 to this many sentences
HARD_LONG_MIN_SENTENCES = 3  # the long answer of heldout_format has at least this many
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
    setups: tuple[str, ...] = SETUPS,
    n_heldout: int = 1800,
) -> pl.DataFrame:
    """The chosen toy setups in TRL's explicit format plus the injected truth, rows shuffled.

    ``n_adversarial`` counts rows and must be even: each response pair yields two rows;
    ``n_heldout`` is the row count of each held-out setup. ``train_long_rate`` is
    P(chosen longer) in train/validation, ``test_long_rate`` in test.
    """
    for name, rate in (("train_long_rate", train_long_rate), ("test_long_rate", test_long_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    if n_length_biased < 0 or n_adversarial < 0 or n_heldout < 0:
        raise ValueError("row counts must be >= 0")
    if n_adversarial % 2:
        raise ValueError(
            f"n_adversarial counts rows (two per response pair), got odd {n_adversarial}"
        )
    unknown = set(setups) - set(ALL_SETUPS)
    if unknown or not setups:
        raise ValueError(f"setups must be among {ALL_SETUPS}, got {setups}")
    rng = np.random.default_rng(seed)
    bank = _Bank.build(rng)
    rates = {"train": train_long_rate, "validation": train_long_rate, "test": test_long_rate}
    parts = []
    if "length_biased" in setups:
        parts.append(_length_biased(rng, bank, n_length_biased, rates))
    if "adversarial" in setups:
        parts.append(_adversarial(rng, bank, n_adversarial // 2))
    if set(HARD_SETUPS) & set(setups):
        bank = _Bank.join(
            bank,
            _Bank.build(rng, slice(None, -HELDOUT_SENTENCES), HARD_MAX_SENTENCES),
            _Bank.build(rng, slice(-HELDOUT_SENTENCES, None), HARD_MAX_SENTENCES),
        )
        if "heldout_offtopic" in setups:
            parts.append(_heldout_offtopic(rng, bank, n_heldout, rates))
        if "heldout_format" in setups:
            parts.append(_heldout_format(rng, bank, n_heldout, rates))
    # Rows stay integer codes until this point, so shuffling costs one gather per column.
    n_rows = sum(part["p"].size for part in parts)
    order = rng.permutation(n_rows)
    p, c, r, split_codes, setup_codes = (
        np.concatenate([part[k] for part in parts])[order]
        for k in ("p", "c", "r", "split", "setup")
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
            "setup": pl.Series(ALL_SETUPS, dtype=pl.String).gather(setup_codes),
            "topic": pl.Series([tp.name for tp in TOPICS], dtype=pl.String).gather(prompt_topic[p]),
            "len_chosen": len_c,
            "len_rejected": len_r,
            "length_diff": len_c - len_r,
            # Only the chosen fits the prompt's topic and format; in heldout_format both
            # answer the topic, so the topical relevance gap is 0 there.
            "relevance_gap": (setup_codes != ALL_SETUPS.index("heldout_format")).astype(float),
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
        self.texts = pl.Series("text", texts, dtype=pl.String)  # empty for a joined part
        self.words = n_words(self.texts)  # (B,)
        self.offsets = offsets  # (T, MAX_SENTENCES): first bank index of (topic, k)
        self.counts = counts  # (T, MAX_SENTENCES): number of variants of (topic, k)

    @classmethod
    def build(
        cls,
        rng: np.random.Generator,
        sentence_part: slice = slice(None),
        max_sentences: int = MAX_SENTENCES,
    ) -> _Bank:
        """Texts of 1 to `max_sentences` of each topic's sentences in `sentence_part`."""
        # The bank has a fixed size (~2.7k texts) whatever the number of pairs: a loop is fine.
        texts: list[str] = []
        n_topics = len(TOPICS)
        offsets = np.zeros((n_topics, MAX_SENTENCES), dtype=np.int64)
        counts = np.zeros((n_topics, MAX_SENTENCES), dtype=np.int64)
        for t, topic in enumerate(TOPICS):
            sentences = topic.sentences[sentence_part]
            for k in range(1, max_sentences + 1):
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

    @classmethod
    def join(cls, first: _Bank, *parts: _Bank) -> _HeldOutBank:
        """One text table over `first` and the held-out setups' train and test banks."""
        texts = [first.texts]
        shifted = []
        for part in parts:
            start = sum(t.len() for t in texts)
            texts.append(part.texts)
            shifted.append(cls([], part.offsets + start, part.counts))
        return _HeldOutBank(pl.concat(texts).to_list(), first, *shifted)

    def draw(self, rng: np.random.Generator, topic: np.ndarray, k: np.ndarray) -> np.ndarray:
        """A uniformly drawn bank index per row for the given topic and sentence count (1-based)."""
        return self.offsets[topic, k - 1] + rng.integers(0, self.counts[topic, k - 1])


class _HeldOutBank(_Bank):
    """All texts in one table, with the draw tables of the held-out setups' two banks:
    `train` (every sentence but the held-out ones) and `test` (only those)."""

    def __init__(self, texts: list[str], first: _Bank, train: _Bank, test: _Bank) -> None:
        super().__init__(texts, first.offsets, first.counts)
        self.side = {"train": train, "validation": train, "test": test}


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


def _offtopic_rows(
    rng: np.random.Generator,
    bank: _Bank,
    side: _Bank,
    p: np.ndarray,
    rate: float,
    max_sentences: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Rows for prompts `p`: the chosen on the prompt's topic, the rejected off it, drawn from
    `side`; the chosen is the longer one with probability `rate` (`_draw_distinct`'s contract)."""
    n_topics, m = len(TOPICS), p.size
    t_c = all_prompts()[1][p]
    t_r = (t_c + rng.integers(1, n_topics, size=m)) % n_topics  # any other topic
    k_a = rng.integers(1, max_sentences + 1, size=m)
    k_b = rng.integers(1, max_sentences, size=m)
    k_b += k_b >= k_a  # distinct sentence counts
    chosen_longer = rng.random(m) < rate
    k_long, k_short = np.maximum(k_a, k_b), np.minimum(k_a, k_b)
    c = side.draw(rng, t_c, np.where(chosen_longer, k_long, k_short))
    r = side.draw(rng, t_r, np.where(chosen_longer, k_short, k_long))
    # Sentence lengths vary, so also enforce the intended order on word counts.
    w_c, w_r = bank.words[c], bank.words[r]
    ok = np.where(chosen_longer, w_c > w_r, w_c < w_r)
    n_bank = bank.texts.len()
    return {"p": p, "c": c, "r": r}, (p * n_bank + c) * n_bank + r, ok


def _length_biased(
    rng: np.random.Generator, bank: _Bank, n: int, rates: dict[str, float]
) -> dict[str, np.ndarray]:
    """Row codes (prompt index, chosen/rejected bank index, split code) of the length-biased setup."""
    n_prompts = lb_prompts().len()

    def draw(m: int, split: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        p = rng.integers(0, n_prompts, size=m)
        return _offtopic_rows(rng, bank, bank, p, rates[split], MAX_SENTENCES)

    return _by_split(draw, n, "length_biased")


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
    setup = np.full(p.size, ALL_SETUPS.index("adversarial"))
    return {"p": p, "c": c, "r": r, "split": np.repeat(split_codes, 2), "setup": setup}


def _heldout_prompts(n_per_subject: int, split: str) -> np.ndarray:
    """Indices (into a topic-major, subject-major block) of the prompts a split may use:
    test only the last HELDOUT_SUBJECTS subjects of each topic, the other splits the rest."""
    n_subjects = len(TOPICS[0].subjects)
    subject = np.arange(len(TOPICS) * n_subjects * n_per_subject) // n_per_subject % n_subjects
    heldout = subject >= n_subjects - HELDOUT_SUBJECTS
    return np.flatnonzero(heldout if split == "test" else ~heldout)


def _heldout_offtopic(
    rng: np.random.Generator, bank: _HeldOutBank, n: int, rates: dict[str, float]
) -> dict[str, np.ndarray]:
    """Row codes of heldout_offtopic: length_biased with held-out test prompts and texts."""

    def draw(m: int, split: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        pool = _heldout_prompts(len(PROMPT_TEMPLATES), split)
        p = pool[rng.integers(0, pool.size, size=m)]
        return _offtopic_rows(rng, bank, bank.side[split], p, rates[split], HARD_MAX_SENTENCES)

    return _by_split(draw, n, "heldout_offtopic")


def _heldout_format(
    rng: np.random.Generator, bank: _HeldOutBank, n: int, rates: dict[str, float]
) -> dict[str, np.ndarray]:
    """Row codes of heldout_format: an on-topic short and long answer, the format request
    decides; P(detailed request) is the split's rate."""
    prompt_topic = all_prompts()[1]
    n_lb = lb_prompts().len()
    n_bank = bank.texts.len()

    def draw(m: int, split: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        pool = _heldout_prompts(len(QUESTION_TEMPLATES), split)
        side = bank.side[split]
        q = pool[rng.integers(0, pool.size, size=m)]
        detailed = rng.random(m) < rates[split]
        p = n_lb + 2 * q + detailed  # rows 2q (one sentence) and 2q + 1 (detailed)
        t = prompt_topic[p]
        short = side.draw(rng, t, np.ones(m, dtype=np.int64))
        k_long = rng.integers(HARD_LONG_MIN_SENTENCES, HARD_MAX_SENTENCES + 1, size=m)
        long = side.draw(rng, t, k_long)
        c, r = np.where(detailed, long, short), np.where(detailed, short, long)
        return {"p": p, "c": c, "r": r}, (p * n_bank + c) * n_bank + r, np.ones(m, dtype=bool)

    return _by_split(draw, n, "heldout_format")


def _by_split(
    draw: Callable[[int, str], tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]],
    n: int,
    setup: str,
) -> dict[str, np.ndarray]:
    """Distinct rows of every split drawn by `draw(m, split)`, with split and setup codes."""
    seen = np.zeros(0, dtype=np.int64)
    parts = []
    for split, size in _split_sizes(n).items():
        cols, seen = _draw_distinct(lambda m, s=split: draw(m, s), size, seen)
        parts.append({**cols, "split": np.full(size, SPLITS.index(split))})
    out = {k: np.concatenate([part[k] for part in parts]) for k in ("p", "c", "r", "split")}
    return out | {"setup": np.full(n, ALL_SETUPS.index(setup))}
