"""Open a report in headless Chromium as a person would, check what it shows, save a screenshot.

    python scripts/screenshot_report.py reports/toy-v1/index.html [--out screenshot.png]
    python scripts/screenshot_report.py reports/quality/toy-v1/<time>.html

Needs Debian's `chromium` package (`.ci/run` installs it; by hand: `apt-get install chromium`).
An ablation report records on load how many of its images decoded (`data-figures-loaded="k/n"`
on <body>): every figure must have loaded. A data-quality audit page declares its counts of
met and failed expectations and its two status colours on <body>: the rendered DOM must hold
one PASS or FAIL cell per expectation, and the screenshot must show each status present in
its own colour (pixel evidence that pass and fail look different).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

# A status colour must cover at least this many pixels (a cell is ~70x30 at 1200 px wide).
_MIN_STATUS_PIXELS = 500


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("headless Chromium not found: apt-get install chromium")


def run(args: list[str]) -> str:
    base = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--virtual-time-budget=8000",
    ]
    return subprocess.run(
        base + args, capture_output=True, text=True, timeout=120, check=True
    ).stdout


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))


def pixels_of(png: Path, color: str) -> int:
    """How many pixels of the screenshot have exactly this colour."""
    from PIL import Image

    with Image.open(png) as image:
        return dict((c, n) for n, c in image.convert("RGB").getcolors(1 << 24)).get(_rgb(color), 0)


def check_figures(dom: str) -> tuple[str, bool]:
    found = re.search(r'data-figures-loaded="(\d+)/(\d+)"', dom)
    loaded, total = int(found[1]), int(found[2])
    return f"figures loaded: {loaded}/{total}", loaded == total and total > 0


def check_statuses(dom: str, png: Path) -> tuple[str, bool]:
    attr = dict(
        re.findall(r'data-(checks-passed|checks-failed|pass-color|fail-color)="([^"]+)"', dom)
    )
    want = {"pass": int(attr["checks-passed"]), "fail": int(attr["checks-failed"])}
    cells = {k: len(re.findall(rf'class="status {k}">{k.upper()}<', dom)) for k in want}
    shown = {k: pixels_of(png, attr[f"{k}-color"]) for k in want}
    ok = cells == want and all((shown[k] >= _MIN_STATUS_PIXELS) == (want[k] > 0) for k in want)
    line = (
        f"status cells: {cells['pass']} pass, {cells['fail']} fail (expected {want['pass']},"
        f" {want['fail']}); status pixels: pass {shown['pass']}, fail {shown['fail']}"
    )
    return line, ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--size", default="1200,2600")
    args = parser.parse_args()
    url = args.report.resolve().as_uri()
    dom = run(["--dump-dom", url])
    out = args.out or args.report.with_name("screenshot.png")
    run([f"--screenshot={out.resolve()}", f"--window-size={args.size}", url])
    if "data-figures-loaded=" in dom:
        line, ok = check_figures(dom)
    elif "data-checks-passed=" in dom:
        line, ok = check_statuses(dom, out)
    else:
        sys.exit("the page is neither an rmcurate ablation report nor a data-quality audit page")
    print(f"{line}; screenshot: {out}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
