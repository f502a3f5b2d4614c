"""Reliability probes of `rmcurate sql` (issue 12): every DuckDB result type in every output
format, the time and memory limits, Ctrl-C, empty and failing queries.

Each probe ends either in its result, printed the same in the table, as CSV and as valid JSON,
or in one line `error: ...` with the exact exit code and no traceback. The CLI runs in-process
(`CliRunner`, the same command and error handling as the console script) except where a real
process is the point: SIGINT, and one crash-prone result as the console script prints it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cli.app import app
from rmcore.config import QueryConfig
from warehouse.connection import transaction

runner = CliRunner()
RMCURATE = str(Path(sys.executable).with_name("rmcurate"))
# Runs for hours unless stopped: 10^16 rows, and a filter no row passes.
CROSS_JOIN = (
    "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range = -1"
)


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("sql") / "wh.duckdb")
    with transaction(path) as con:
        con.execute("INSERT INTO prompts VALUES ('id1', 'hello', 5)")
    return path


def sql(wh: str, query: str, *options: str):
    return runner.invoke(app, ["sql", query, "-w", wh, *options])


def one_error_line(result, code: int) -> str:
    """The failure's single line, after checking the exit code and the absence of a traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# (id, query selecting one column `v`, its text in the table and in CSV, its JSON value)
TYPES = [
    (
        "interval",
        "SELECT INTERVAL 1 DAY + INTERVAL 3 HOUR AS v",
        "1 day 03:00:00",
        "1 day 03:00:00",
    ),
    ("union", "SELECT union_value(a := 7)::UNION(a INT, b VARCHAR) AS v", '{"a":7}', {"a": 7}),
    ("timestamp_infinity", "SELECT 'infinity'::TIMESTAMP AS v", "infinity", "infinity"),
    ("date_minus_infinity", "SELECT '-infinity'::DATE AS v", "-infinity", "-infinity"),
    (
        "timestamp",
        "SELECT TIMESTAMP '2024-01-02 03:04:05' AS v",
        "2024-01-02 03:04:05",
        "2024-01-02 03:04:05",
    ),
    ("time", "SELECT TIME '12:34:56' AS v", "12:34:56", "12:34:56"),
    (
        "decimal",
        "SELECT 12345678901234567890123.45::DECIMAL(38,2) AS v",
        "12345678901234567890123.45",
        "12345678901234567890123.45",
    ),
    (
        "hugeint",
        "SELECT 170141183460469231731687303715884105727::HUGEINT AS v",
        "170141183460469231731687303715884105727",
        "170141183460469231731687303715884105727",
    ),
    (
        "uhugeint",
        "SELECT 340282366920938463463374607431768211455::UHUGEINT AS v",
        "340282366920938463463374607431768211455",
        "340282366920938463463374607431768211455",
    ),
    (
        "bignum",
        "SELECT 123456789012345678901234567890123456789012::BIGNUM AS v",
        "123456789012345678901234567890123456789012",
        "123456789012345678901234567890123456789012",
    ),
    (
        "ubigint",
        "SELECT 18446744073709551615::UBIGINT AS v",
        "18446744073709551615",
        18446744073709551615,
    ),
    (
        "uuid",
        "SELECT '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS v",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    ),
    ("blob", "SELECT '\\xAA\\x00'::BLOB AS v", "\\xAA\\x00", "\\xAA\\x00"),
    ("bit", "SELECT '0101'::BIT AS v", "0101", "0101"),
    ("enum", "SELECT 'b'::ENUM('a', 'b') AS v", "b", "b"),
    ("list", "SELECT [1, 2, NULL] AS v", "[1,2,null]", [1, 2, None]),
    ("list_of_blobs", "SELECT ['\\xAA'::BLOB] AS v", '["\\\\xAA"]', ["\\xAA"]),
    (
        "list_of_infinities",
        "SELECT ['inf'::DOUBLE, 'nan'::DOUBLE] AS v",
        "[Infinity,NaN]",
        ["Infinity", "NaN"],
    ),
    (
        "struct",
        "SELECT {'a': 1, 'b': 'x', 'i': INTERVAL 2 HOUR} AS v",
        '{"a":1,"b":"x","i":"02:00:00"}',
        {"a": 1, "b": "x", "i": "02:00:00"},
    ),
    ("map", "SELECT MAP {'k': 1, 'j': 2} AS v", '{"k":1,"j":2}', {"k": 1, "j": 2}),
    ("array", "SELECT [1, 2, 3]::INTEGER[3] AS v", "[1,2,3]", [1, 2, 3]),
    ("json", """SELECT '{"x": [1]}'::JSON AS v""", '{"x":[1]}', {"x": [1]}),
    ("null", "SELECT NULL AS v", "", None),
    ("typed_null", "SELECT NULL::INTEGER[] AS v", "", None),
    ("nan", "SELECT 'nan'::DOUBLE AS v", "NaN", "NaN"),
    ("minus_infinity", "SELECT '-inf'::DOUBLE AS v", "-inf", "-Infinity"),
    ("markup_text", "SELECT '[/red] [bold]x' AS v", "[/red] [bold]x", "[/red] [bold]x"),
    ("boolean", "SELECT true AS v", "true", True),
]
# The table prints a few plain types its own way.
TABLE_TEXT = {"nan": "nan", "boolean": "True"}


def _squeezed(text: str) -> str:
    """Table text without spaces, box lines and line breaks (a long cell wraps)."""
    return re.sub(r"[\s│┃]", "", text)


@pytest.mark.parametrize("output", ["table", "csv", "json"])
@pytest.mark.parametrize("probe", TYPES, ids=[t[0] for t in TYPES])
def test_every_result_type_prints_in_every_format(wh, probe, output):
    name, query, text, value = probe
    result = sql(wh, query, "-o", output)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    if output == "csv":
        # A one-column row holding NULL is an empty line, which `csv` reads as no field.
        rows = [row or [""] for row in csv.reader(io.StringIO(result.output))]
        assert rows == [["v"], [text]]
    elif output == "json":
        assert json.loads(result.output) == [{"v": value}]
    else:
        shown = TABLE_TEXT.get(name, text)
        assert _squeezed(shown) in _squeezed(result.output) and "1 row(s)" in result.output


def test_many_types_in_one_result_print_as_the_console_script_prints_them(wh, tmp_path):
    """In a real process: CSV of list, BLOB and MAP columns, INTERVAL, UNION, infinity."""
    query = (
        "SELECT [1, 2] AS l, '\\xAA'::BLOB AS b, MAP {'k': 1} AS m, INTERVAL 1 DAY AS i,"
        " union_value(a := 1)::UNION(a INT, b VARCHAR) AS u, 'infinity'::TIMESTAMP AS t"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    for output in ("csv", "json"):
        done = subprocess.run(
            [RMCURATE, "sql", query, "-w", wh, "-o", output],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        if output == "csv":
            assert list(csv.reader(io.StringIO(done.stdout))) == [
                ["l", "b", "m", "i", "u", "t"],
                ["[1,2]", "\\xAA", '{"k":1}', "1 day", '{"a":1}', "infinity"],
            ]
        else:
            assert json.loads(done.stdout) == [
                {
                    "l": [1, 2],
                    "b": "\\xAA",
                    "m": {"k": 1},
                    "i": "1 day",
                    "u": {"a": 1},
                    "t": "infinity",
                }
            ]


def test_duplicate_and_empty_results(wh):
    dup = sql(wh, "SELECT 1 AS a, 2 AS a", "-o", "csv")
    assert dup.exit_code == 0 and dup.output.splitlines() == ["a,a_1", "1,2"]
    empty = sql(wh, "SELECT 1 AS v WHERE false", "-o", "json")
    assert empty.exit_code == 0 and json.loads(empty.output) == []
    table = sql(wh, "DESCRIBE prompts")
    assert table.exit_code == 0 and "prompt_id" in table.output


def test_rows_past_max_rows_are_cut_with_a_note(wh):
    cut = sql(wh, "SELECT range AS v FROM range(10)", "-o", "csv", "--max-rows", "3")
    assert cut.exit_code == 0
    assert cut.stdout.splitlines() == ["v", "0", "1", "2"]
    assert cut.stderr.strip() == "showing the first 3 rows; --max-rows N shows more (0: all)"
    whole = sql(wh, "SELECT range AS v FROM range(10)", "-o", "csv", "--max-rows", "0")
    assert whole.output.splitlines()[1:] == [str(i) for i in range(10)]


@pytest.mark.parametrize("query", ["", "   ", ";", " ; ;\n", "/* only a comment */"])
def test_empty_query_is_an_invalid_argument(wh, query):
    assert "empty query" in one_error_line(sql(wh, query), 2)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT nope FROM prompts", 'Referenced column "nope" not found'),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT 1/0::INTEGER + 'x'", "Conversion Error"),
        ("INSERT INTO prompts VALUES ('id2', 'x', 1)", "read-only"),
        ("SET memory_limit = '100GB'", "locked"),
    ],
    ids=["unknown_column", "syntax", "unknown_table", "conversion", "write", "raise_memory_limit"],
)
def test_failing_query_is_one_query_error_line(wh, query, expected):
    line = one_error_line(sql(wh, query), 9)
    assert expected.lower() in line.lower()
    assert "LINE 1" not in line  # DuckDB's echo of the query and its caret are left out


def test_reader_runs_under_the_memory_limit(wh):
    result = sql(wh, "SELECT current_setting('memory_limit') AS v", "-o", "csv")
    assert result.exit_code == 0
    with duckdb.connect(config={"memory_limit": QueryConfig.memory_limit}) as con:
        (configured,) = con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert result.output.splitlines() == ["v", configured]
    default = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert configured != default


def test_query_past_the_memory_limit_is_one_line(wh, monkeypatch):
    monkeypatch.setattr(QueryConfig, "memory_limit", "50MB")  # read when the reader opens
    line = one_error_line(sql(wh, "SELECT list(range) AS v FROM range(50000000)"), 9)
    assert "Out of Memory" in line and "memory limit" in line


def test_query_past_its_timeout_is_stopped(wh):
    started = time.monotonic()
    line = one_error_line(sql(wh, CROSS_JOIN, "--timeout", "1"), 10)
    elapsed = time.monotonic() - started
    assert "time limit of 1 s" in line and "--timeout" in line
    assert elapsed < 15, f"{elapsed:.1f} s"  # about 1.1 s on an idle machine
    after = sql(wh, "SELECT count(*) AS n FROM prompts", "-o", "csv")
    assert after.output.splitlines() == ["n", "1"]


def test_default_timeout_comes_from_the_config():
    from typer.main import get_command

    params = {p.name: p for p in get_command(app).commands["sql"].params}
    assert params["timeout"].default == QueryConfig.timeout_s == 60
    assert params["max_rows"].default == QueryConfig.max_rows


def _holds_the_warehouse(pid: int) -> bool:
    """Whether the process has a DuckDB file open: it is about to run the query."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        return any(".duckdb" in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds)
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_ctrl_c_stops_a_long_query_cleanly(wh, tmp_path):
    proc = subprocess.Popen(
        [RMCURATE, "sql", CROSS_JOIN, "-w", wh, "--timeout", "0"],
        cwd=tmp_path,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _holds_the_warehouse(proc.pid) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(1.0)  # the cross join is running
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert out == "" and err.strip() == "error: query interrupted (Ctrl-C); nothing was changed"
    assert stopped_in < 10, f"{stopped_in:.1f} s"  # about 1 s on an idle machine
