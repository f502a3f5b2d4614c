"""Held-out evaluation rows and the audit report, on hand-made inputs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rmcore.evaluation.evaluate import both_orientations, evaluate_pairs, prompt_swap_rows
from rmcore.evaluation.report import (
    display_summary,
    findings,
    grid,
    paired_grid,
    paired_summary,
    summary_table,
    write_report,
)
from rmcore.evaluation.specs import HEADLINE

SHORTER = ("preference", "winner_shorter", "accuracy")


def tiny_test() -> pl.DataFrame:
    # Four pairs: the winner is longer in pairs 0 and 1, shorter in 2 and 3; pair 3 is a tie.
    return pl.DataFrame(
        {
            "pair_id": ["a", "b", "c", "d"],
            "prompt_id": ["p", "p", "q", "q"],
            "label": [1.0, 1.0, 1.0, 0.5],
            "chosen_chars": [50, 40, 10, 10],
            "rejected_chars": [10, 20, 30, 20],
            "setup": ["x", "x", "y", "y"],
        }
    )


def value(rows: pl.DataFrame, subset: str, metric: str, benchmark: str = "preference") -> float:
    return rows.filter(
        (pl.col("subset") == subset)
        & (pl.col("metric") == metric)
        & (pl.col("benchmark") == benchmark)
    )["value"][0]


def test_evaluate_pairs_by_hand():
    test = tiny_test()
    r_c = np.array([2.0, 0.0, -1.0, 0.3])
    r_r = np.array([1.0, 1.0, 0.0, 0.0])
    rows = evaluate_pairs(test, r_c, r_r, group_by=("setup",))
    # gaps: +1 (right), -1 (wrong), -1 (wrong), tie excluded -> 1/3
    assert value(rows, "all", "accuracy") == pytest.approx(1 / 3)
    assert value(rows, "all", "n_ties") == 1
    assert value(rows, "winner_longer", "accuracy") == pytest.approx(0.5)  # pairs a, b
    assert value(rows, "winner_shorter", "accuracy") == pytest.approx(0.0)  # pair c (d is a tie)
    assert value(rows, "winner_shorter", "n_ties") == 1  # the tie's chosen counts as its winner
    assert value(rows, "setup=x", "accuracy") == pytest.approx(0.5)
    # Brier by hand over all four pairs: (s(g) - label)^2.
    s = 1 / (1 + np.exp(-np.array([1.0, -1.0, -1.0, 0.3])))
    assert value(rows, "all", "brier") == pytest.approx(
        np.mean((s - np.array([1, 1, 1, 0.5])) ** 2)
    )


def test_prompt_swap_rows_count_ties_as_failures():
    rows = prompt_swap_rows(np.array([1.0, 0.0, 2.0, 1.0]), np.array([0.0, 0.0, 3.0, 0.5]))
    assert rows["value"][0] == pytest.approx(0.5)


def test_both_orientations_make_all_ones_labels_calibratable():
    p, y = both_orientations(np.array([0.0, 2.0]), np.array([1.0, 1.0]))
    assert y.tolist() == [1.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(p[:2] + p[2:], 1.0)


def results_frame(
    values: dict[str, list[float]], key: tuple[str, str, str] = SHORTER
) -> pl.DataFrame:
    benchmark, subset, metric = key
    rows = [
        {
            "model": f"{method}-{seed}",
            "method": method,
            "seed": seed,
            "benchmark": benchmark,
            "subset": subset,
            "n": 100,
            "metric": metric,
            "value": v,
            "ci_low": None,
            "ci_high": None,
        }
        for method, vals in values.items()
        for seed, v in enumerate(vals)
    ]
    return pl.DataFrame(rows)


def paired_frame(diffs: dict[str, tuple[float, float, float]], key=SHORTER) -> pl.DataFrame:
    """`paired:*` result rows: method -> (difference, ci_low, ci_high)."""
    return pl.DataFrame(
        [
            {
                "model": m,
                "method": m,
                "seed": None,
                "benchmark": f"paired:{key[0]}",
                "subset": key[1],
                "metric": key[2],
                "n": 10,
                "value": d,
                "ci_low": lo,
                "ci_high": hi,
            }
            for m, (d, lo, hi) in diffs.items()
        ]
    )


def test_findings_say_what_the_paired_intervals_say():
    paired = paired_summary(
        paired_frame(
            {"prio": (0.2, 0.1, 0.3), "filter": (-0.2, -0.3, -0.1), "rrm": (0.05, -0.01, 0.1)}
        )
    )
    assert paired["verdict"].to_list() == ["better", "worse", "no clear difference"]
    lines = findings(paired)
    assert lines[0].startswith("prio vs vanilla on bias-breaking") and "(better)" in lines[0]
    assert "(worse)" in lines[1]
    assert lines[2].startswith("rrm vs vanilla: no clear difference")
    # lower is better for log-loss and ECE: a clearly lower value is "better"
    loss = paired_summary(paired_frame({"prio": (-0.1, -0.2, -0.05)}, ("preference", "all", "ece")))
    assert loss["verdict"].to_list() == ["better"] and loss["metric"].to_list() == ["ECE"]
    cells = paired_grid(paired)
    assert cells.columns == ["metric", "prio", "filter", "rrm"]
    assert cells["prio"][0] == "+0.200 [+0.100, +0.300] better"


def test_write_report_has_tables_and_figures(tmp_path):
    results = results_frame({"vanilla": [0.6, 0.62], "prio": [0.8, 0.79]})
    preds = pl.DataFrame(
        {
            "method": ["vanilla"] * 3 + ["prio"] * 3,
            "gap": [1.0, -1.0, 0.5] * 2,
            "label": [1.0, 1.0, 0.5] * 2,
        }
    )
    scored = pl.DataFrame({"free_gap": [0.1, -0.5, 2.0], "length_diff_chars": [10.0, -20.0, 40.0]})
    summary = summary_table(results)
    html, md = write_report(
        tmp_path,
        title="t",
        meta={"seeds": [0, 1]},
        summary=summary,
        results=results,
        preds=preds,
        scored=scored,
        findings=findings(paired_summary(paired_frame({"prio": (0.2, 0.1, 0.3)}))),
        paired=paired_summary(paired_frame({"prio": (0.2, 0.1, 0.3)})),
    )
    page = html.read_text()
    figures = ("accuracy.png", "calibration.png", "paired.png", "free_gap_hist.png")
    for fig in (*figures, "free_vs_length.png"):
        assert (tmp_path / fig).stat().st_size > 1000 and fig in page
    assert "data-figures-loaded" in page and "prio vs vanilla" in md.read_text()


def test_summary_is_keyed_and_displayed_by_title():
    summary = summary_table(results_frame({"vanilla": [0.6, 0.62], "prio": [0.8, 0.79]}))
    assert summary.select("benchmark", "subset", "metric").unique().rows() == [SHORTER]
    shown = display_summary(summary)
    assert shown.columns == ["metric", "method", "seeds", "mean", "ci_low", "ci_high"]
    assert shown["metric"].unique().to_list() == ["bias-breaking: winner is shorter"]
    assert [s.title for s in HEADLINE][:3] == [
        "held-out accuracy",
        "group-balanced accuracy (bias cells)",
        "accuracy where r(y) is wrong",
    ]
    table = grid(summary, ["vanilla", "prio"])
    assert table.columns == ["metric", "vanilla", "prio"]
    assert table["prio"][0].startswith("0.795 [")
