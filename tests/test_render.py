"""CLI tables at 80 columns: cells wrap only at spaces, paths and names are never broken (a
broken path cannot be copied), and a table that cannot fit that way is printed pivoted."""

from __future__ import annotations

import io

import polars as pl
import pytest
from rich.console import Console

from cli import render

LONG_PATH = "/home/someone/projects/rm/reports/quality/ultrafeedback-binarized-v3/20261202T033828.733219Z.html"
METHODS = ["vanilla", "rrm", "prompt-free-priority", "prompt-free-filter"]


@pytest.fixture
def printed(monkeypatch) -> io.StringIO:
    """What `render.show` prints on an 80-column terminal."""
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=80, soft_wrap=True))
    return out


def test_narrow_table_stays_a_table_within_80_columns(printed):
    render.show(pl.DataFrame({"method": METHODS, "accuracy": [0.61, 0.64, 0.7, 0.69]}), title="t")
    lines = printed.getvalue().splitlines()
    assert lines[1].startswith("┏") and max(map(len, lines)) <= 80
    assert all(any(m in line for line in lines) for m in METHODS)


def test_table_with_a_long_path_is_pivoted_and_the_path_kept_whole(printed):
    frame = pl.DataFrame({"name": ["toy"], "rows": [12], "report_path": [LONG_PATH]})
    render.show(frame, title="datasets")
    lines = printed.getvalue().splitlines()
    assert f"  report_path  {LONG_PATH}" in lines
    assert not any(line.startswith("┏") for line in lines)
    assert [line for line in lines if len(line) > 80] == [f"  report_path  {LONG_PATH}"]


def test_wide_metric_by_method_grid_never_breaks_a_method_name(printed):
    metrics = [f"metric_{i}" for i in range(4)]
    grid = pl.DataFrame(
        {"metric": metrics} | {m: ["0.612 [0.581, 0.643]"] * len(metrics) for m in METHODS}
    )
    render.show(grid, title="results")
    text = printed.getvalue()
    assert all(m in text for m in METHODS)  # whole, in a header or a pivoted line
    assert max(map(len, text.splitlines())) <= 80
