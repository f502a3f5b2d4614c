"""Nothing is written outside the data, models and reports folders (issue 12).

A tiny whole pipeline (ingest with its quality check -> reference model -> score -> curate
-> train -> benchmark -> report) runs in its own process in an empty working directory,
with every path at its default, importing the package from a read-only copy (an install
elsewhere, which nobody edits while the test runs). The copy must be exactly as it was (as
root, a read-only chmod cannot stop writes, so the test compares manifests of paths, sizes
and mtimes), and the working directory must hold nothing but data/, models/ and reports/
(Prefect's home is the session's here; by default it is data/prefect)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from processes import child_env, python

from rmcore import demo

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rmcore", "warehouse", "tasks", "flows", "cli")
# Where runtime output may go, relative to the working directory.
ALLOWED = {"data", "models", "reports"}


def manifest(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime ns) of every file and folder under `root`."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in [root, *root.rglob("*")]
    }


def install_copy(target: Path) -> Path:
    """The package folders copied to `target` (no bytecode), made read-only."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for p in [target, *target.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    return target


PIPELINE = textwrap.dedent("""
    import sys
    from pathlib import Path

    import cli, flows, rmcore, tasks, warehouse
    from flows.pipeline import pipeline_flow

    for package in (cli, flows, rmcore, tasks, warehouse):  # the copy, not the checkout
        assert Path(package.__file__).is_relative_to(sys.argv[2]), package.__file__
    out = pipeline_flow(
        source=sys.argv[1], name="toy", seeds=[0], methods=["vanilla"], prompts_per_pair=4,
        epochs=1,
    )
    assert out["ingest"]["reconciles"], out["ingest"]
    print("report:", out["report"])
""")


@pytest.mark.slow
def test_a_whole_pipeline_writes_only_under_data_models_and_reports(tmp_path, prefect_server):
    source = demo.write_demo(tmp_path / "toy.jsonl", n_length_biased=120, n_adversarial=30)
    installed = install_copy(tmp_path / "site")
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = child_env(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(installed))
    env.pop("RMCURATE_WAREHOUSE", None)  # the default: ./data/rmcurate.duckdb
    before = manifest(installed)
    try:
        done = subprocess.run(
            [*python(PIPELINE), str(source), str(installed)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        after = manifest(installed)
    finally:
        for p in [installed, *installed.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(after.keys() - before.keys()) == [], "files appeared in the package"
    assert sorted(before.keys() - after.keys()) == [], "files vanished from the package"
    assert sorted(k for k in before if before[k] != after[k]) == [], "package files changed"
    assert {p.name for p in cwd.iterdir()} <= ALLOWED
    assert (cwd / "data" / "rmcurate.duckdb").exists() and (cwd / "reports").is_dir()
