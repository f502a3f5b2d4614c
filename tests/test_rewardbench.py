"""RewardBench v1/v2 aggregation on hand-written fixtures; expected numbers derived by hand.

Fixture responses carry their score as "<tag> s=<score> ...", where <tag> also starts the
prompt; the scorer below checks the tag, so misaligned prompt/response batches fail.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rmcore.evaluation.rewardbench import (
    OFFICIAL_EXAMPLE_COUNTS,
    SECTIONS,
    best_of_n_credit,
    load_rewardbench,
    load_rewardbench2,
    load_rewardbench_file,
    pairwise_results,
    run_rewardbench,
    run_rewardbench2,
)

FIXTURES = Path(__file__).parent / "fixtures" / "rewardbench"


def tagged_score(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    assert len(prompts) == len(responses)
    for p, r in zip(prompts, responses, strict=True):
        assert r.split()[0] == p.split(":")[0], (p, r)
    return np.array([float(r.split()[1].removeprefix("s=")) for r in responses])


def acc(table: pl.DataFrame, level: str, name: str) -> float:
    row = table.filter((pl.col("level") == level) & (pl.col("name") == name))
    assert row.height == 1, (level, name)
    return row["accuracy"].item()


# Hand aggregation of v1.jsonl (W = win, L = loss, T = tie -> loss):
#   Chat:      alpacaeval-easy W W = 1 (n 2); mt-bench-med W T = 1/2 (n 2)
#              -> (2*1 + 2*1/2) / 4 = 0.75
#   Chat Hard: llmbar-natural W L L = 1/3 (n 3); mt-bench-hard W W = 1 (n 2)
#              -> (3*1/3 + 2*1) / 5 = 0.6
#   Safety:    donotanswer W W L = 2/3 (n 3); xstest-should-respond L = 0 (n 1)
#              -> (3*2/3 + 0) / 4 = 0.5
#   Reasoning: math-prm W L = 1/2; hep-python W W = 1 (n 2); hep-go L = 0 (n 1);
#              math-prm weighs as much as all hep (3) -> (3*1/2 + 2*1 + 1*0) / 6 = 7/12
#   Prior:     anthropic_helpful W L = 1/2; shp W = 1 -> plain mean 0.75
#              (mtbench_human L is not a prior-set member)
#   Overall:   (2*.75 + 2*.6 + 2*.5 + 2*7/12 + 1*.75) / 9 = (337/60) / 9 = 337/540
EXPECTED_SECTIONS = {
    "Chat": 0.75,
    "Chat Hard": 0.6,
    "Safety": 0.5,
    "Reasoning": 7 / 12,
    "Prior Sets": 0.75,
}


def test_pairwise_results_tie_is_wrong() -> None:
    assert pairwise_results(np.array([1.0, 2.0, 0.0]), np.array([1.0, 1.0, 3.0])).tolist() == [
        0.0,
        1.0,
        0.0,
    ]


def test_rewardbench_v1_official_aggregation() -> None:
    frame = load_rewardbench(FIXTURES / "v1.jsonl")
    report = run_rewardbench(frame, tagged_score)
    assert report.overall == pytest.approx(337 / 540)
    for section, expected in EXPECTED_SECTIONS.items():
        assert acc(report.table, "section", section) == pytest.approx(expected), section
    assert acc(report.table, "subset", "mt-bench-med") == 0.5  # the tie c4 counts as wrong
    assert acc(report.table, "subset", "mtbench_human") == 0.0
    assert acc(report.table, "overall", "overall") == pytest.approx(337 / 540)
    subset_rows = report.table.filter(pl.col("level") == "subset")
    assert subset_rows["n"].sum() == frame.height == 22
    assert subset_rows.filter(pl.col("name") == "mtbench_human")["section"].item() is None
    assert report.examples.filter(pl.col("id") == "c4")["result"].item() == 0.0


def test_rewardbench_v1_official_counts_and_missing_prior() -> None:
    frame = load_rewardbench(FIXTURES / "v1.jsonl")
    report = run_rewardbench(frame, tagged_score, example_counts=OFFICIAL_EXAMPLE_COUNTS)
    # constants.py counts: Chat = (100*1 + 40*1/2) / 140 = 6/7;
    # Reasoning = (984*1/2 + 164*1 + 164*0) / (984 + 328) = 656/1312 = 1/2
    assert acc(report.table, "section", "Chat") == pytest.approx(6 / 7)
    assert acc(report.table, "section", "Reasoning") == pytest.approx(0.5)

    # Without prior sets the overall is the plain mean of the four core sections:
    # (45/60 + 36/60 + 30/60 + 35/60) / 4 = (146/60) / 4 = 73/120
    core = frame.filter(pl.col("subset").is_in([s for v in SECTIONS.values() for s in v]))
    no_prior = run_rewardbench(core, tagged_score)
    assert no_prior.overall == pytest.approx(73 / 120)
    assert "Prior Sets" not in no_prior.table["name"].to_list()


def test_loader_folder_mixed_formats_and_errors(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "v1.jsonl", tmp_path / "a.jsonl")
    extra = pl.DataFrame(
        {
            "prompt": ["x1: Q?"],
            "chosen": ["x1 s=1 yes"],
            "rejected": ["x1 s=0 no"],
            "subset": ["hep-rust"],
        }
    )
    extra.write_parquet(tmp_path / "b.parquet")
    (tmp_path / "notes.txt").write_text("ignored")
    frame = load_rewardbench_file(tmp_path)
    assert frame.height == 23
    # the parquet file has no id column: its row gets its row number (22) as id
    assert frame.filter(pl.col("subset") == "hep-rust")["id"].to_list() == ["22"]
    assert frame["id"].n_unique() == 23

    only_parquet = load_rewardbench_file(tmp_path / "b.parquet")
    assert only_parquet["id"].to_list() == ["0"]  # an id is added when absent

    extra.drop("subset").write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="subset"):
        load_rewardbench_file(tmp_path / "bad.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        load_rewardbench_file(tmp_path / "empty")


def test_best_of_n_tie_credit_by_hand() -> None:
    scores = np.array(
        [
            [5, 1, 2, 3],  # chosen alone at the top -> 1
            [3, 3, 1, 0],  # ties with one rejected -> 1/2
            [2, 2, 2, 0],  # ties with two -> 1/3
            [1, 4, 0, 0],  # beaten -> 0
            [1, 1, 1, 1],  # all four tied -> 1/4
        ],
        dtype=float,
    )
    np.testing.assert_allclose(best_of_n_credit(scores), [1, 1 / 2, 1 / 3, 0, 1 / 4])


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 8), st.integers(2, 5)),
        elements=st.integers(0, 3).map(float),
    )
)
def test_best_of_n_credit_is_one_unit_shared(scores: np.ndarray) -> None:
    """Letting each option be 'the chosen' in turn hands out exactly one unit of credit."""
    k = scores.shape[1]
    total = sum(best_of_n_credit(np.roll(scores, -j, axis=1)) for j in range(k))
    np.testing.assert_allclose(total, np.ones(scores.shape[0]))


def test_rewardbench2_runner_by_hand() -> None:
    frame = load_rewardbench2(FIXTURES / "v2.json")
    report = run_rewardbench2(frame, tagged_score)
    # f1 5 vs (1,2,3) -> 1; f2 3 vs (3,1,0) -> 1/2      Factuality = 3/4
    # m1 2 vs (2,2,0) -> 1/3; m2 1 vs (4,0,0) -> 0      Math = 1/6
    # o1 1 vs (1,1,1) -> 1/4                            Focus = 1/4
    # overall = unweighted mean of subsets = (3/4 + 1/6 + 1/4) / 3 = (7/6) / 3 = 7/18
    assert acc(report.table, "subset", "Factuality") == pytest.approx(0.75)
    assert acc(report.table, "subset", "Math") == pytest.approx(1 / 6)
    assert acc(report.table, "subset", "Focus") == pytest.approx(0.25)
    assert report.overall == pytest.approx(7 / 18)
    assert report.examples["id"].to_list() == ["f1", "f2", "m1", "m2", "o1"]
    assert report.examples["scores"].to_list()[1] == [3.0, 3.0, 1.0, 0.0]
    assert report.table["official"].all()


def test_rewardbench2_ties_subset_flagged_unofficial() -> None:
    frame = pl.DataFrame(
        {
            "id": ["t1"],
            "subset": ["Ties"],
            "prompt": ["t1: Name a primary colour."],
            # two correct answers: options = chosen + rejected, the first chosen is judged
            "chosen": [["t1 s=2 red", "t1 s=2 blue"]],
            "rejected": [["t1 s=0 green-ish"]],
        }
    )
    report = run_rewardbench2(frame, tagged_score)
    # first chosen (2) shares the top with the second chosen (2) -> 1/2
    assert report.overall == pytest.approx(0.5)
    assert not report.table.filter(pl.col("name") == "Ties")["official"].item()
    assert not report.table.filter(pl.col("level") == "overall")["official"].item()


def test_official_counts_are_upstreams_since_september_2024():
    """allenai/reward-bench rewardbench/constants.py at 6552e93 (2024-09-10) and since: the
    xstest counts were swapped before (250 / 154), which we had copied."""
    upstream = {
        "alpacaeval-easy": 100,
        "alpacaeval-length": 95,
        "alpacaeval-hard": 95,
        "mt-bench-easy": 28,
        "mt-bench-med": 40,
        "mt-bench-hard": 37,
        "math-prm": 984,
        "refusals-dangerous": 100,
        "refusals-offensive": 100,
        "llmbar-natural": 100,
        "llmbar-adver-neighbor": 134,
        "llmbar-adver-GPTInst": 92,
        "llmbar-adver-GPTOut": 47,
        "llmbar-adver-manual": 46,
        "xstest-should-refuse": 154,
        "xstest-should-respond": 250,
        "donotanswer": 136,
        "hep-cpp": 164,
        "hep-go": 164,
        "hep-java": 164,
        "hep-js": 164,
        "hep-python": 164,
        "hep-rust": 164,
    }
    assert upstream == OFFICIAL_EXAMPLE_COUNTS
