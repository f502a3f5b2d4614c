"""The `rmcurate` CLI's read side: read-only SQL, sandboxing, bounded waits on a busy warehouse."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from cli.app import app
from warehouse.connection import transaction

runner = CliRunner()


@pytest.fixture
def populated(warehouse_file: str) -> str:
    with transaction(warehouse_file) as con:
        con.execute("INSERT INTO prompts VALUES ('id1', 'hello', 5)")
    return warehouse_file


def test_sql_answers_read_queries(populated):
    result = runner.invoke(app, ["sql", "SELECT text FROM prompts", "-w", populated, "-o", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["text", "hello"]


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO prompts VALUES ('id2', 'x', 1)",
        "DROP TABLE prompts",
        "CREATE TABLE evil AS SELECT 1",
        "COPY prompts TO '/tmp/rmcurate-leak.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "ATTACH '/tmp/other.duckdb' AS other",
        "SET enable_external_access = true",
    ],
)
def test_sql_refuses_writes_and_file_access(populated, query):
    result = runner.invoke(app, ["sql", query, "-w", populated])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    check = runner.invoke(
        app, ["sql", "SELECT count(*) AS n FROM prompts", "-w", populated, "-o", "csv"]
    )
    assert check.output.splitlines()[-1] == "1"


def test_sql_on_missing_warehouse_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["sql", "SELECT 1", "-w", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "no warehouse" in result.output


def test_sql_waits_then_reports_busy(populated, monkeypatch):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({populated!r})
            print("locked", flush=True)
            time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("RMCURATE_BUSY_TIMEOUT", "1.5")
        result = runner.invoke(app, ["sql", "SELECT 1", "-w", populated])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2
    assert "waiting up to" in result.output and "warehouse busy" in result.output
    assert "Traceback" not in result.output
