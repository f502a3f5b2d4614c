"""Open a report in headless Chromium as a person would, check its figures loaded, save a screenshot.

    python scripts/screenshot_report.py reports/toy-v1/index.html [--out reports/toy-v1/screenshot.png]

Needs Debian's `chromium` package (`apt-get install chromium`). The report page records on
load how many of its images decoded (`data-figures-loaded="k/n"` on <body>); this script reads
that from the rendered DOM and fails unless every figure loaded.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path


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
    found = re.search(r'data-figures-loaded="(\d+)/(\d+)"', dom)
    if not found:
        sys.exit("the page did not report its figures (is this an rmcurate report?)")
    loaded, total = int(found[1]), int(found[2])
    out = args.out or args.report.with_name("screenshot.png")
    run([f"--screenshot={out.resolve()}", f"--window-size={args.size}", url])
    print(f"figures loaded: {loaded}/{total}; screenshot: {out}")
    if loaded != total or total == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
