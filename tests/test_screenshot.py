"""The report opens in headless Chromium with its figures loaded (skipped without Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rmcore.evaluation.report import summary_table, write_report

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install chromium)",
)
def test_report_renders_with_all_figures(tmp_path):
    rows = [
        {
            "model": f"{m}-{s}",
            "method": m,
            "seed": s,
            "benchmark": "preference",
            "subset": "all",
            "n": 10,
            "metric": "accuracy",
            "value": v,
            "ci_low": None,
            "ci_high": None,
        }
        for m, vals in {"vanilla": [0.6, 0.62], "prio": [0.7, 0.71]}.items()
        for s, v in enumerate(vals)
    ]
    results = pl.DataFrame(rows)
    preds = pl.DataFrame({"method": ["vanilla", "prio"], "gap": [0.5, 1.0], "label": [1.0, 1.0]})
    scored = pl.DataFrame({"free_gap": [0.1, -0.4, 1.0], "length_diff_chars": [5.0, -3.0, 9.0]})
    html, _ = write_report(
        tmp_path,
        title="t",
        meta={},
        summary=summary_table(results),
        results=results,
        preds=preds,
        scored=scored,
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshot_report.py"), str(html)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "figures loaded: 4/4" in out.stdout
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000
