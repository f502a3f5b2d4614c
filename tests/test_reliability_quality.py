"""Reliability probes of the data-quality check (issue 12): where GX writes, names of any
length, and a verdict that is always passed, failed or not-checked, with a re-check.

- An ingest writes GX's runtime output (validation results, `uncommitted/`) next to the
  warehouse and its Data Docs under the reports folder; the package's `warehouse/` folder is
  only read (a manifest of names, sizes and mtimes is the same before and after).
- Batch names of any length and alphabet give bounded, distinct run folders.
- A check that cannot run after the batch is committed (the reports path is a regular file,
  so its folder cannot be made: root ignores chmod) marks the dataset not-checked with the
  reason and fails in one line (exit 13) that names `rmcurate recheck`, which then checks it.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from cli.app import app
from rmcore.config import IngestConfig
from rmcore.errors import QualityNotChecked
from rmcore.stages import ingest as stage
from rmcore.textnorm import text_id
from warehouse import catalog, quality
from warehouse.connection import reader

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
GOOD = [
    {"prompt": f"Question {i}?", "chosen": f"Good {i}.", "rejected": f"Bad {i}."} for i in range(6)
]
TIES = [{"prompt": f"p{i}", "chosen": f"a{i}", "rejected": f"b{i}", "label": 0.5} for i in range(6)]


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def store(warehouse: str, source: str, name: str) -> stage.IngestSummary:
    """A batch stored as an ingest stores it, its quality check not run yet."""
    kind, digest = stage.fingerprint(source, None)
    return stage.parse_validate_store(
        warehouse,
        uri=source,
        kind=kind,
        fmt=None,
        name=name,
        digest=digest,
        config=IngestConfig(quality=False),
        flow_run_id=None,
    )


def make_batch(n: int = 6) -> pl.DataFrame:
    """A clean batch in the layout the suite checks, ids derived the way ingest derives them."""
    prompts, chosen, rejected = ([f"{kind} {i}" for i in range(n)] for kind in ("Q", "A", "B"))
    return pl.DataFrame(
        {
            "pair_id": [text_id(f"pair {i}") for i in range(n)],
            "prompt_id": [text_id(t) for t in prompts],
            "chosen_id": [text_id(t) for t in chosen],
            "rejected_id": [text_id(t) for t in rejected],
            "prompt": prompts,
            "chosen": chosen,
            "rejected": rejected,
            "label": [1.0] * n,
            "split": ["train"] * n,
            "source_row": list(range(n)),
        },
        schema=quality.COLUMNS,
    )


def listing(warehouse: str) -> dict[str, dict]:
    with reader(warehouse) as con:
        return {row["name"]: row for row in catalog.datasets(con).iter_rows(named=True)}


def manifest(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under `root`, compiled bytecode left out."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def error_line(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_ingest_writes_gx_output_next_to_the_warehouse_never_in_the_package(
    tmp_path, prefect_server
):
    from flows.ingest import ingest_flow

    package = ROOT / "warehouse"
    before = manifest(package)
    warehouse = tmp_path / "data" / "wh.duckdb"
    result = ingest_flow(
        source=write(tmp_path / "good.jsonl", GOOD),
        warehouse=str(warehouse),
        reports_dir=str(tmp_path / "reports"),
    )

    assert result["status"] == "passed_quality"
    assert manifest(package) == before
    runtime = quality.runtime_dir(warehouse)
    assert runtime == tmp_path / "data" / "gx"
    results = list((runtime / "uncommitted" / "validations").rglob("*.json"))
    assert len(results) == 1 and "good-v1" in results[0].parts
    report = Path(result["report_path"])
    assert report.is_file() and report.is_relative_to(tmp_path / "reports" / "quality")


@pytest.mark.parametrize(
    "names",
    [
        ["x" * 300 + "-v1", "x" * 300 + "-v2"],  # alike until their last character
        ["é" * 200 + "-v1", "名" * 120 + "-v1"],  # 2 and 3 bytes a character
        ["a/b-v1", "a b-v1"],  # the same once made safe
    ],
    ids=["long", "multibyte", "unsafe"],
)
def test_batch_names_of_any_length_get_bounded_distinct_run_folders(tmp_path, names):
    folders = set()
    for name in names:
        out = quality.validate_pairs(
            make_batch(),
            batch_name=name,
            reports_dir=tmp_path / "reports",
            runtime_dir=tmp_path / "gx",
        )
        assert out.success and out.report_path is not None and out.report_path.is_file()
        parts = out.report_path.relative_to(tmp_path / "reports").parts
        assert all(len(p.encode()) <= 64 for p in parts[:3]), parts
        folders.add(parts[1])
    assert len(folders) == len(names)


def test_safe_short_run_names_are_kept():
    assert quality.run_name("toy-v1") == "toy-v1"
    assert quality.run_name("a" * 64) == "a" * 64
    assert len(quality.run_name("a" * 65)) == 64


def test_check_that_cannot_write_its_report_leaves_not_checked_then_recheck(tmp_path):
    warehouse = str(tmp_path / "wh.duckdb")
    summary = store(warehouse, write(tmp_path / "good.jsonl", GOOD), "good")
    blocked = tmp_path / "reports-is-a-file"
    blocked.write_text("not a folder")

    with pytest.raises(QualityNotChecked) as caught:
        stage.check_quality(
            warehouse, summary, reports_dir=str(blocked), max_chars=100, flow_run_id=None
        )
    message = str(caught.value)
    assert caught.value.exit_code == 13 and "\n" not in message
    assert "good v1 is stored" in message and "rmcurate recheck good@1" in message
    assert str(blocked) in message
    row = listing(warehouse)["good"]
    assert (row["status"], row["quality"]) == ("not_checked", "not-checked")
    assert str(blocked) in row["quality_note"]

    checked = stage.recheck(warehouse, "good@1", reports_dir=str(tmp_path / "reports"))
    assert checked.status == "passed_quality" and Path(checked.report_path).is_file()
    row = listing(warehouse)["good"]
    assert (row["status"], row["quality"], row["quality_note"]) == (
        "passed_quality",
        "passed",
        None,
    )
    with duckdb.connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*), bool_and(success) FROM dq_runs").fetchone() == (
            1,
            True,
        )


def test_verdict_is_always_passed_failed_or_not_checked(tmp_path):
    warehouse = str(tmp_path / "wh.duckdb")
    store(warehouse, write(tmp_path / "never.jsonl", GOOD), "never")
    good = store(warehouse, write(tmp_path / "good.jsonl", GOOD[:3]), "good")
    ties = store(warehouse, write(tmp_path / "ties.jsonl", TIES), "ties")
    for summary in (good, ties):
        stage.check_quality(
            warehouse, summary, reports_dir=str(tmp_path / "r"), max_chars=100, flow_run_id=None
        )
    rows = listing(warehouse)
    assert {name: row["quality"] for name, row in rows.items()} == {
        "good": "passed",
        "never": "not-checked",
        "ties": "failed",
    }
    assert rows["never"]["quality_note"] == "never checked: run `rmcurate recheck`"
    assert set(catalog.QUALITY_VERDICTS) >= {row["quality"] for row in rows.values()}


def test_cli_ingest_with_unwritable_reports_is_one_line_then_recheck(tmp_path, prefect_server):
    warehouse = str(tmp_path / "wh.duckdb")
    source = write(tmp_path / "good.jsonl", GOOD)
    blocked = tmp_path / "reports"
    blocked.write_text("a file where the reports folder should be")

    line = error_line(
        runner.invoke(app, ["ingest", source, "-w", warehouse, "--reports", str(blocked)]), 13
    )
    assert "good v1 is stored, but its quality check could not run" in line
    assert "rmcurate recheck good@1" in line
    shown = runner.invoke(app, ["datasets", "-w", warehouse, "-o", "json"])
    [row] = json.loads(shown.stdout)
    assert (row["quality"], row["n_pairs"]) == ("not-checked", len(GOOD))

    blocked.unlink()  # fixed: an ingest of the same content resumes the check
    again = runner.invoke(app, ["ingest", source, "-w", warehouse, "--reports", str(blocked)])
    assert again.exit_code == 0 and "status passed_quality" in again.output, again.output
    done = runner.invoke(app, ["recheck", "good", "-w", warehouse, "--reports", str(blocked)])
    assert done.exit_code == 0, done.output
    assert "good v1 quality passed" in done.output
    [row] = json.loads(runner.invoke(app, ["datasets", "-w", warehouse, "-o", "json"]).stdout)
    assert (row["quality"], row["quality_note"]) == ("passed", None)


def test_cli_recheck_errors_are_one_line(tmp_path):
    warehouse = str(tmp_path / "wh.duckdb")
    missing = tmp_path / "none.duckdb"
    assert "no warehouse" in error_line(runner.invoke(app, ["recheck", "x", "-w", str(missing)]), 7)
    assert not missing.exists()

    ties = store(warehouse, write(tmp_path / "ties.jsonl", TIES), "ties")
    assert "no dataset" in error_line(runner.invoke(app, ["recheck", "nope", "-w", warehouse]), 5)
    reports = str(tmp_path / "r")
    failed = runner.invoke(
        app, ["recheck", f"ties@{ties.version}", "-w", warehouse, "--reports", reports]
    )
    assert "data quality failed for ties v1" in error_line(failed, 8)
    assert listing(warehouse)["ties"]["quality"] == "failed"
