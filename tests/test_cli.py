"""The `rmcurate` CLI's read side: read-only SQL, sandboxing, reads from the published snapshot,
bounded waits on a busy warehouse, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from rmcore.errors import (
    FormatError,
    NotFound,
    QueryError,
    SourceError,
    WarehouseBusy,
    WarehouseMissing,
)
from warehouse.connection import snapshot_path, transaction

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
    assert result.exit_code == QueryError.exit_code, result.output
    assert result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    check = runner.invoke(
        app, ["sql", "SELECT count(*) AS n FROM prompts", "-w", populated, "-o", "csv"]
    )
    assert check.output.splitlines()[-1] == "1"


def test_sql_on_missing_warehouse_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["sql", "SELECT 1", "-w", str(tmp_path / "none.duckdb")])
    assert result.exit_code == WarehouseMissing.exit_code
    assert result.output.startswith("error: no warehouse") and len(result.output.splitlines()) == 1
    debug = runner.invoke(app, ["--debug", "sql", "SELECT 1", "-w", str(tmp_path / "none.duckdb")])
    assert debug.exit_code == WarehouseMissing.exit_code
    assert "Traceback" in debug.output and debug.output.splitlines()[-1].startswith("error: ")


def _hold_writer(path: str) -> subprocess.Popen:
    """Another process holding a read-write connection (a flow in the middle of a write),
    until the test kills it: a fixed hold (it was 30 s) ran out before a CLI start-up under
    load reached its write, and the "busy" ingest then succeeded."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({path!r})
            print("locked", flush=True)
            time.sleep(3600)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_sql_reads_the_snapshot_while_a_writer_holds_the_file(populated, monkeypatch):
    assert snapshot_path(populated).exists()  # published by the fixture's transaction
    holder = _hold_writer(populated)
    try:
        monkeypatch.setenv("RMCURATE_BUSY_TIMEOUT", "1.5")
        result = runner.invoke(
            app, ["sql", "SELECT text FROM prompts", "-w", populated, "-o", "csv"]
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["text", "hello"]


def test_sql_waits_then_names_the_writer_holding_the_lock(populated, monkeypatch):
    snapshot_path(populated).unlink()  # no snapshot yet: the reader needs the main file
    holder = _hold_writer(populated)
    try:
        monkeypatch.setenv("RMCURATE_BUSY_TIMEOUT", "1.5")
        result = runner.invoke(app, ["sql", "SELECT 1", "-w", populated])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == WarehouseBusy.exit_code, result.output
    line = result.output.splitlines()[-1]
    assert line.startswith("error: warehouse busy") and f"PID {holder.pid} " in line
    assert "a writer" in line and "Traceback" not in result.output


# ------------------------------------------------------------------ one-line errors


def one_error_line(output: str) -> str:
    """The output is exactly one line, `error: ...`, with no traceback."""
    assert "Traceback" not in output, output
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.mark.parametrize(
    "args", [["datasets"], ["quarantine"], ["sql", "SELECT 1"], ["sets"], ["models"]], ids=str
)
def test_read_commands_on_a_missing_warehouse_say_so_in_one_line(tmp_path, args):
    result = runner.invoke(app, [*args, "-w", str(tmp_path / "none.duckdb")])
    assert result.exit_code == WarehouseMissing.exit_code
    assert "no warehouse at" in one_error_line(result.output)


def test_quarantine_of_an_unknown_dataset_is_one_line(populated):
    result = runner.invoke(app, ["quarantine", "--dataset", "nope", "-w", populated])
    assert result.exit_code == NotFound.exit_code
    assert "no dataset 'nope'" in one_error_line(result.output)


def test_a_bug_keeps_its_traceback(populated, monkeypatch):
    """Only expected errors are shortened: anything else is a bug and shows where it is."""
    from warehouse import catalog

    monkeypatch.setattr(catalog, "datasets", lambda con: 1 / 0)
    result = runner.invoke(app, ["datasets", "-w", populated])
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)


def test_ctrl_c_is_one_line_and_exit_130(populated, monkeypatch):
    from warehouse import catalog

    def interrupted(con):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog, "datasets", interrupted)
    result = runner.invoke(app, ["datasets", "-w", populated])
    assert result.exit_code == 130 and one_error_line(result.output) == "error: interrupted"


@pytest.fixture
def cli_env(prefect_server):
    from processes import child_env

    return child_env()


def test_a_scheduled_ingest_on_a_busy_warehouse_is_one_line_without_prefect_tracebacks(
    populated, tmp_path, cli_env
):
    from processes import no_traceback, rmcurate

    src = tmp_path / "ok.jsonl"
    src.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    holder = _hold_writer(populated)
    try:
        done = rmcurate(
            "ingest",
            str(src),
            "-w",
            populated,
            cwd=tmp_path,
            env=cli_env | {"RMCURATE_BUSY_TIMEOUT": "1"},
        )
    finally:
        holder.kill()
        holder.wait()
    no_traceback(done)
    assert done.returncode == WarehouseBusy.exit_code
    line = one_error_line(done.stderr)
    assert f"PID {holder.pid} " in line and "a writer" in line


FLOW_FAILURES = [
    (["score", "-d", "nope"], NotFound),
    (["curate", "s", "-d", "nope"], NotFound),
    (["train", "m", "-d", "nope"], NotFound),
    (["export", "nope", "out.parquet"], NotFound),
    (["ablation", "-d", "nope"], NotFound),
    (["iterate", "-d", "nope"], NotFound),
    (["ingest", "missing.jsonl"], SourceError),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, error", FLOW_FAILURES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_flow_commands_fail_in_one_line_with_their_exit_code(
    populated, tmp_path, cli_env, args, error
):
    from processes import no_traceback, rmcurate

    done = rmcurate(*args, "-w", populated, cwd=tmp_path, env=cli_env)
    no_traceback(done)  # neither ours nor in Prefect's logs
    assert done.returncode == error.exit_code, done.stderr
    one_error_line(done.stderr)


@pytest.mark.slow
def test_flow_commands_on_a_missing_warehouse_and_debug(tmp_path, cli_env):
    from processes import rmcurate

    missing = str(tmp_path / "none.duckdb")
    done = rmcurate("score", "-d", "toy", "-w", missing, cwd=tmp_path, env=cli_env)
    assert done.returncode == WarehouseMissing.exit_code and "Traceback" not in done.stderr
    one_error_line(done.stderr)
    assert not Path(missing).exists()
    debug = rmcurate("--debug", "score", "-d", "toy", "-w", missing, cwd=tmp_path, env=cli_env)
    assert debug.returncode == WarehouseMissing.exit_code and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("error: no warehouse")
    # Found before the engine starts, so no flow ran at all.
    assert "Finished in state" not in debug.stderr and not Path(missing).exists()
    # An expected error from inside a flow run: --debug keeps Prefect's own error logs too.
    keys = tmp_path / "keys.jsonl"
    keys.write_text('{"foo": 1}\n')
    inside = rmcurate("--debug", "ingest", str(keys), "-w", missing, cwd=tmp_path, env=cli_env)
    assert inside.returncode == FormatError.exit_code, inside.stderr
    assert "Traceback" in inside.stderr and "Finished in state Failed" in inside.stderr


def test_prefect_run_logs_of_expected_errors_are_dropped_and_others_kept(prefect_server):
    """Through real Prefect runs: the filter the CLI installs drops Prefect's records of an
    expected error (with and without a traceback) and keeps every record of a bug."""
    import logging

    from prefect import flow, task

    from cli import env

    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    def run(exc: Exception) -> list[str]:
        @task(name="failing-task")
        def failing() -> None:
            raise exc

        @flow(name="failing-flow")
        def failing_flow() -> None:
            failing()

        kept.clear()
        with pytest.raises(type(exc)):
            failing_flow()
        return [r.getMessage() for r in kept if r.levelno >= logging.ERROR]

    handler = Keep()
    loggers = [logging.getLogger(name) for name in env.PREFECT_RUN_LOGGERS]
    for log in loggers:
        log.addHandler(handler)
    try:
        env.quiet_expected_errors(False)
        assert len(run(NotFound("no dataset 'x'"))) >= 3  # task failed, its state, the flow's
        env.quiet_expected_errors()
        assert run(NotFound("no dataset 'x'")) == []
        bug = run(KeyError("a bug"))
        assert len(bug) >= 3 and all("KeyError" in m for m in bug)
    finally:
        for log in loggers:
            log.removeHandler(handler)


def test_tasks_do_not_retry_expected_errors(prefect_server):
    from prefect import flow, task

    from tasks.common import retry_unexpected

    calls: list[str] = []
    errors = {"expected": NotFound("no dataset 'x'"), "bug": RuntimeError("a bug")}

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unexpected)
    def flaky(kind: str) -> None:
        calls.append(kind)
        raise errors[kind]

    @flow
    def run(kind: str) -> None:
        flaky(kind)

    for kind, exc in errors.items():
        with pytest.raises(type(exc)):
            run(kind)
    assert calls == ["expected"] + ["bug"] * 3


@pytest.mark.slow
def test_first_ingest_into_a_new_folder_starts_local_prefect(tmp_path):
    """Regression: Prefect makes its home without parents, so with the home next to a warehouse
    whose folder did not exist yet the local server had no database and the ingest failed after
    two minutes with a traceback (`make run` on a fresh clone did the same)."""
    from processes import rmcurate

    src = tmp_path / "ok.jsonl"
    src.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RMCURATE_"))}
    done = rmcurate("ingest", str(src), "-w", "new/sub/w.duckdb", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Prefect home" not in done.stderr
    assert (tmp_path / "new/sub/prefect").is_dir() and (tmp_path / "new/sub/w.duckdb").is_file()


@pytest.mark.parametrize(
    ("argv", "env_warehouse", "expected"),
    [
        (["datasets"], None, "data/prefect"),
        (["datasets", "-w", "w1/a.duckdb"], None, "w1/prefect"),
        (["sql", "SELECT 1", "--warehouse=w2/b.duckdb"], None, "w2/prefect"),
        (["datasets"], "w3/c.duckdb", "w3/prefect"),
        (["demo", "--workdir", "wd"], None, "wd/data/prefect"),
        (["demo", "--workdir=wd", "-w", "w4/d.duckdb"], None, "w4/prefect"),
    ],
)
def test_prefect_home_sits_next_to_the_warehouse(tmp_path, argv, env_warehouse, expected):
    """One Prefect home per project, wherever the command starts (issue 11): set from the
    command line before Prefect is imported, unless the user set PREFECT_HOME."""
    code = (
        "import os, sys; sys.argv = ['rmcurate', *sys.argv[1:]]; import cli.app;"
        " print(os.environ['PREFECT_HOME'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "RMCURATE_WAREHOUSE")}
    if env_warehouse:
        env["RMCURATE_WAREHOUSE"] = env_warehouse
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == (tmp_path / expected).resolve()
    kept = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=tmp_path,
        env=env | {"PREFECT_HOME": str(tmp_path / "mine")},
        capture_output=True,
        text=True,
    )
    assert kept.stdout.strip() == str(tmp_path / "mine")
