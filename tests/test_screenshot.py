"""Reports open in headless Chromium as a person sees them: the ablation report with its
figures loaded, a data-quality audit page with its PASS and FAIL cells in their colours
(skipped without Chromium, which `.ci/run` installs)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rmcore.evaluation.report import summary_table, write_report

ROOT = Path(__file__).resolve().parents[1]


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (.ci/run installs it; apt-get install chromium)",
)


def screenshot(page: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "screenshot_report.py"),
            str(page),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


@needs_chromium
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
    out = screenshot(html, tmp_path / "screenshot.png")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "figures loaded: 4/4" in out.stdout
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000


@needs_chromium
def test_audit_page_shows_pass_and_fail_in_their_colours(tmp_path):
    from test_quality import make_batch, set_row  # pytest puts tests/ on sys.path

    from warehouse.quality import validate_pairs

    bad = set_row(make_batch(), 2, label=1.5)
    report = validate_pairs(
        bad, batch_name="shot", reports_dir=tmp_path / "reports", runtime_dir=tmp_path / "gx"
    ).report_path
    out = screenshot(report, tmp_path / "audit.png")
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"status cells: (\d+) pass, 1 fail .* pass (\d+), fail (\d+)", out.stdout)
    assert found and int(found[1]) > 0 and int(found[2]) > 0 and int(found[3]) > 0, out.stdout

    # The same page without its styles (as GX's pages are offline, their CSS on a CDN):
    # the cells are there, but pass and fail no longer look different, and the check fails.
    unstyled = tmp_path / "unstyled.html"
    unstyled.write_text(re.sub(r"<style>.*?</style>", "", report.read_text(), flags=re.S))
    out = screenshot(unstyled, tmp_path / "unstyled.png")
    assert out.returncode == 1 and "pass 0, fail 0" in out.stdout, out.stdout + out.stderr
