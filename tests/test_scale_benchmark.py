"""The scale benchmark (benchmarks/scale.py): its growth exponent, and a tiny run of the script
end to end (every stage in its own child process, against the session's Prefect server)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from processes import child_env

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


def _module():
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_growth_exponent_is_one_for_linear_and_two_for_quadratic() -> None:
    scale = _module()
    runs = [
        scale.Measure(stage=stage, n=n, seconds=seconds, peak_rss_mib=1, warehouse_mib=1, dir_mib=1)
        for n in (10, 100)
        for stage, seconds in (("linear", n * 0.5), ("quadratic", n * n * 0.01))
    ]
    scale._exponents(runs)
    assert [r.exponent for r in runs[:2]] == [None, None]
    assert runs[2].exponent == pytest.approx(1.0)
    assert runs[3].exponent == pytest.approx(2.0)
    assert scale.verdict(runs) == ["not linear: quadratic exponent 2.00 up to n=100"]


@pytest.mark.slow
@pytest.mark.bench  # 10 child processes, each importing torch: minutes; `make test-bench`
def test_tiny_run_prints_every_stage_at_every_size(prefect_server, tmp_path: Path) -> None:
    out = tmp_path / "scale.md"
    work = str(tmp_path / "work")
    argv = [sys.executable, str(SCRIPT), "--sizes", "200,400", "--prompts-per-pair", "2"]
    done = subprocess.run(
        [*argv, "--workdir", work, "--out", str(out)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| 2", "| 4"))]
    stages = [(row.split("|")[1].strip(), row.split("|")[2].strip()) for row in rows]
    assert stages == [
        (n, s)
        for n in ("200", "400")
        for s in ("generate", "ingest", "score", "score excl. embed", "curate", "train")
    ]
    assert "n_pairs=400, n_quarantined=0" in out.read_text()
    assert "distinct prompts" in done.stdout
