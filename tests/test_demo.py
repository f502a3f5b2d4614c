"""The toy data generator: exact design properties, and a toy reward whose decomposition is known."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.special import expit

from rmcore import demo
from rmcore.demo import bank
from rmcore.ingest.batch import SPLITS

COLUMNS = {
    "prompt": pl.String,
    "chosen": pl.String,
    "rejected": pl.String,
    "label": pl.Float64,
    "split": pl.String,
    "setup": pl.String,
    "topic": pl.String,
    "len_chosen": pl.Int64,
    "len_rejected": pl.Int64,
    "length_diff": pl.Int64,
    "relevance_gap": pl.Float64,
    "chosen_longer": pl.Boolean,
    "bias_breaking": pl.Boolean,
}
TOPIC_NAMES = [tp.name for tp in demo.TOPICS]


@pytest.fixture(scope="module")
def df() -> pl.DataFrame:
    return demo.generate_demo(seed=7)


def _topics_hit(text: str) -> set[str]:
    """Independent of `infer_topic`: plain Python word matching."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return {tp.name for tp in demo.TOPICS if words & set(tp.keywords)}


def test_schema_and_injected_truth_are_consistent(df: pl.DataFrame) -> None:
    assert dict(df.schema) == COLUMNS
    assert df.height == 3000 + 600
    assert (df["label"] == 1.0).all() and (df["relevance_gap"] == 1.0).all()
    sample = df.sample(300, seed=0)
    assert sample["len_chosen"].to_list() == [len(s.split()) for s in sample["chosen"]]
    assert sample["len_rejected"].to_list() == [len(s.split()) for s in sample["rejected"]]
    assert (df["length_diff"] == df["len_chosen"] - df["len_rejected"]).all()
    assert (df["chosen_longer"] == (df["length_diff"] > 0)).all()
    assert (df["bias_breaking"] == (df["length_diff"] < 0)).all()
    assert (df["length_diff"] != 0).all()  # every pair has a definite length shortcut


def test_reproducible_from_seed() -> None:
    a = demo.generate_demo(n_length_biased=500, n_adversarial=100, seed=3)
    b = demo.generate_demo(n_length_biased=500, n_adversarial=100, seed=3)
    c = demo.generate_demo(n_length_biased=500, n_adversarial=100, seed=4)
    assert a.equals(b)
    assert not a.equals(c)


def test_split_sizes(df: pl.DataFrame) -> None:
    counts = {
        (r["setup"], r["split"]): r["len"]
        for r in df.group_by("setup", "split").len().iter_rows(named=True)
    }
    # 70/15/15 of 3000 length-biased rows, and of 300 adversarial response pairs (two rows each).
    assert counts[("length_biased", "train")] == 2100
    assert counts[("length_biased", "validation")] == 450
    assert counts[("length_biased", "test")] == 450
    assert counts[("adversarial", "train")] == 2 * 210
    assert counts[("adversarial", "validation")] == 2 * 45
    assert counts[("adversarial", "test")] == 2 * 45


def test_length_shortcut_holds_in_training_and_breaks_in_test(df: pl.DataFrame) -> None:
    lb = df.filter(pl.col("setup") == "length_biased")
    for split, rate in (("train", 0.9), ("validation", 0.9), ("test", 0.1)):
        part = lb.filter(pl.col("split") == split)
        tol = 4 * math.sqrt(rate * (1 - rate) / part.height)  # 4 binomial standard errors
        assert abs(part["chosen_longer"].mean() - rate) < tol, split
        assert (part["bias_breaking"] == ~part["chosen_longer"]).all()
    custom = demo.generate_demo(n_length_biased=2000, n_adversarial=0, train_long_rate=0.6, seed=1)
    train = custom.filter(pl.col("split") == "train")
    assert abs(train["chosen_longer"].mean() - 0.6) < 4 * math.sqrt(0.24 / train.height)


def test_length_biased_preference_is_decided_by_topic(df: pl.DataFrame) -> None:
    lb = df.filter(pl.col("setup") == "length_biased")
    assert (demo.infer_topic(lb["prompt"]) == demo.infer_topic(lb["chosen"])).all()
    assert (demo.infer_topic(lb["prompt"]) != demo.infer_topic(lb["rejected"])).all()
    assert (np.array(TOPIC_NAMES)[demo.infer_topic(df["prompt"])] == df["topic"].to_numpy()).all()
    assert lb["prompt"].n_unique() >= 300
    # Responses run from one sentence to long, padded answers.
    k = demo.n_sentences(pl.concat([lb["chosen"], lb["rejected"]]))
    assert k.min() == 1 and k.max() >= demo.MAX_SENTENCES
    long = lb.filter(pl.col("len_chosen") > 100)["chosen"]
    assert long.len() > 0
    assert long.str.contains("|".join(map(re.escape, demo.FILLERS))).all()


def test_text_bank_keywords_identify_exactly_one_topic() -> None:
    assert 12 <= len(demo.TOPICS) <= 16
    for tp in demo.TOPICS:
        assert len(set(tp.sentences)) >= 10
        for text in (*tp.sentences, *tp.subjects):
            assert _topics_hit(text) == {tp.name}, text
    neutral = (
        *demo.FILLERS,
        demo.OPENER,
        demo.CLOSER,
        *demo.PROMPT_TEMPLATES,
        *demo.QUESTION_TEMPLATES,
    )
    for text in (*neutral, demo.ONE_SENTENCE_PREFIX, demo.DETAILED_PREFIX):
        assert _topics_hit(text) == set(), text


def test_adversarial_pairs_appear_with_both_preferences(df: pl.DataFrame) -> None:
    adv = df.filter(pl.col("setup") == "adversarial").with_columns(
        first=pl.min_horizontal("chosen", "rejected"),
        second=pl.max_horizontal("chosen", "rejected"),
        question=pl.col("prompt").str.replace(r"^[^:]*: ", ""),
        one=pl.col("prompt").str.starts_with(demo.ONE_SENTENCE_PREFIX),
    )
    assert adv.height == 600
    groups = adv.group_by("first", "second", "question").agg(
        pl.len(),
        pl.col("one").sum().alias("n_one"),
        pl.col("split").n_unique().alias("n_splits"),
        pl.col("length_diff").sum().alias("diff_sum"),
    )
    assert groups.height == 300
    assert (groups["len"] == 2).all() and (groups["n_one"] == 1).all()
    assert (groups["n_splits"] == 1).all()  # both prompts of a response pair share a split
    assert (groups["diff_sum"] == 0).all()  # the same two responses, swapped
    # One-sentence prompts prefer the one-sentence answer; detailed prompts the long one.
    one = adv.filter(pl.col("one"))
    assert (demo.n_sentences(one["chosen"]) == 1).all()
    assert (one["length_diff"] < 0).all()
    detailed = adv.filter(~pl.col("one"))
    assert detailed["prompt"].str.starts_with(demo.DETAILED_PREFIX).all()
    assert (detailed["length_diff"] > 0).all()
    assert (demo.infer_topic(adv["chosen"]) == demo.infer_topic(adv["rejected"])).all()


def test_no_duplicate_triples_at_scale() -> None:
    big = demo.generate_demo(n_length_biased=30_000, n_adversarial=4000, seed=5)
    assert not big.select("prompt", "chosen", "rejected").is_duplicated().any()


@settings(max_examples=15, deadline=None)
@given(
    n_lb=st.integers(0, 400),
    n_adv_pairs=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_counts_and_uniqueness_hold_for_any_size(n_lb: int, n_adv_pairs: int, seed: int) -> None:
    out = demo.generate_demo(n_length_biased=n_lb, n_adversarial=2 * n_adv_pairs, seed=seed)
    assert (out["setup"] == "length_biased").sum() == n_lb
    assert (out["setup"] == "adversarial").sum() == 2 * n_adv_pairs
    assert not out.select("prompt", "chosen", "rejected").is_duplicated().any()
    assert set(out["split"].unique()) <= set(demo.SPLITS)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="odd"):
        demo.generate_demo(n_adversarial=3)
    with pytest.raises(ValueError, match="train_long_rate"):
        demo.generate_demo(train_long_rate=1.5)


def test_default_demo_content_is_pinned() -> None:
    """The default demo (what `rmcurate demo` ingests) row for row; a changed text bank,
    draw order or split rule changes this digest."""
    rows = (
        demo.generate_demo()
        .select(
            "prompt", "chosen", "rejected", "split", "setup", "topic", "len_chosen", "len_rejected"
        )
        .rows()
    )
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    assert digest == "611866e842b17fdbeeccee1d09dcb819823390c16ddcb7d44b31bc01a0ca6179"


def test_text_bank_is_package_data() -> None:
    raw = bank.load_bank()
    assert set(raw) == {
        "prompt_templates",
        "question_templates",
        "one_sentence_prefix",
        "detailed_prefix",
        "fillers",
        "opener",
        "closer",
        "topics",
    }
    assert bank.files("rmcore.demo").joinpath(bank.BANK_FILE).is_file()
    assert [tp.name for tp in demo.TOPICS] == [t["name"] for t in raw["topics"]]
    assert all(isinstance(tp.keywords, tuple) and tp.keywords for tp in demo.TOPICS)
    assert demo.SPLITS is SPLITS  # one definition, in ingest


def test_write_demo_roundtrips_jsonl(tmp_path) -> None:
    path = demo.write_demo(
        tmp_path / "sub" / "demo.jsonl", n_length_biased=50, n_adversarial=10, seed=2
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 60
    first = json.loads(lines[0])
    assert set(first) == set(COLUMNS)
    assert pl.read_ndjson(path).equals(
        demo.generate_demo(n_length_biased=50, n_adversarial=10, seed=2)
    )


def test_reward_gap_under_own_prompt_is_length_plus_relevance(df: pl.DataFrame) -> None:
    a, b = 0.03, 2.0
    gap = demo.length_relevance_reward(
        df["prompt"], df["chosen"], a=a, b=b
    ) - demo.length_relevance_reward(df["prompt"], df["rejected"], a=a, b=b)
    expected = a * df["length_diff"].to_numpy() + b * df["relevance_gap"].to_numpy()
    np.testing.assert_allclose(gap, expected, atol=1e-9)


def test_reward_related_part_vanishes_under_an_off_topic_prompt(df: pl.DataFrame) -> None:
    lb = df.filter(pl.col("setup") == "length_biased").head(200)
    t_c, t_r = demo.infer_topic(lb["chosen"]), demo.infer_topic(lb["rejected"])
    third = next(iter(set(range(len(TOPIC_NAMES))) - {0, 1, 2}))
    # A prompt about a topic that is neither the chosen's nor the rejected's.
    off = np.where((t_c != 0) & (t_r != 0), 0, np.where((t_c != 1) & (t_r != 1), 1, third))
    per_topic = demo.lb_prompts().len() // len(TOPIC_NAMES)
    prompts = demo.lb_prompts().gather(off * per_topic)
    a = 0.02
    gap = demo.length_relevance_reward(prompts, lb["chosen"], a=a) - demo.length_relevance_reward(
        prompts, lb["rejected"], a=a
    )
    np.testing.assert_allclose(gap, a * lb["length_diff"].to_numpy(), atol=1e-9)


@pytest.mark.parametrize("setup", ["length_biased", "adversarial"])
def test_balanced_prompt_free_gap_of_toy_reward_is_the_length_term(
    df: pl.DataFrame, setup: str
) -> None:
    """METHOD.md's criterion, solved by brentq over a topic-balanced prompt pool, returns a * length_diff."""
    prompts, _ = demo.all_prompts()
    n_lb = demo.lb_prompts().len()
    pool = prompts[:n_lb] if setup == "length_biased" else prompts[n_lb:]
    rows = df.filter(pl.col("setup") == setup).head(25)
    k = pool.len()
    x = pl.concat([pool] * rows.height)  # (N * K,)
    a, b = 0.02, 1.0
    gaps = (
        demo.length_relevance_reward(
            x, rows["chosen"].gather(np.repeat(np.arange(rows.height), k)), a=a, b=b
        )
        - demo.length_relevance_reward(
            x, rows["rejected"].gather(np.repeat(np.arange(rows.height), k)), a=a, b=b
        )
    ).reshape(rows.height, k)  # (N, K)
    for g, length_diff in zip(gaps, rows["length_diff"], strict=True):
        assert g.max() > g.min()  # the prompt-related part really varies with the prompt
        c = brentq(lambda c, g=g: expit(g - c).mean() - 0.5, g.min(), g.max(), xtol=1e-12)
        assert c == pytest.approx(a * length_diff, abs=1e-8)
