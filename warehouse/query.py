"""A user's read-only query (`rmcurate sql`): a time limit, a clean Ctrl-C, and a result that
every output format can show.

What the query may touch is the connection's business (`reader(sandboxed=True)`: read-only,
no file or network access, a memory limit, configuration locked). This module bounds the
time and makes the result printable:

- The statement runs in a worker thread while the calling thread waits on an event in short
  steps. At the time limit, or on Ctrl-C (a `KeyboardInterrupt` in the waiting thread), it
  calls `con.interrupt()` and waits for the worker to stop. Python runs its SIGINT handler
  only in the main thread and only between bytecodes: a main thread blocked inside DuckDB
  (or in one long wait, when the signal lands on a DuckDB thread) would see Ctrl-C only
  after the query ended.
- The result's column types are read from the bound relation; a projection over the same
  relation (`#n` positional references, so duplicate names are no problem) converts what
  polars, CSV or JSON cannot carry faithfully: nested types (LIST, ARRAY, STRUCT, MAP, UNION)
  and JSON become JSON text (`to_json`), and every other type beyond booleans, integers up to
  64 bits, FLOAT, DOUBLE and VARCHAR becomes DuckDB's own text (DECIMAL, HUGEINT, UUID, BLOB,
  INTERVAL, dates and timestamps with their infinities, TIME, BIT, ENUM, ...). Polars panics
  on some of these (an infinite timestamp in CSV) and cannot import others (INTERVAL, UNION).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import duckdb
import polars as pl

from rmcore.errors import Interrupted, InvalidArgument, QueryError, QueryTimeout

T = TypeVar("T")

# Types polars, CSV and JSON carry as they are (DuckDB type ids).
_PLAIN = frozenset(
    {
        "boolean",
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "float",
        "double",
        "varchar",
        "null",
    }
)
# Types shown as JSON text (and embedded as JSON in `-o json`).
_NESTED = frozenset({"list", "array", "struct", "map", "union"})
# How long a stopped query may take to unwind before we give up waiting for it.
_STOP_GRACE_S = 10.0
_POLL_S = 0.05


@dataclass(frozen=True)
class QueryResult:
    """A user's query result with printable columns only; `json_columns` hold JSON text."""

    frame: pl.DataFrame
    json_columns: frozenset[str]
    truncated: bool  # more rows than `max_rows` were there: `frame` holds the first ones


def one_line(err: BaseException) -> str:
    """DuckDB's message on one line: its text and hints, without the echoed query and caret."""
    kept = []
    for line in str(err).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept) or type(err).__name__


def run_query(
    con: duckdb.DuckDBPyConnection, query: str, *, timeout_s: float, max_rows: int
) -> QueryResult:
    """Run `query` on `con` (opened read-only and sandboxed by the caller), stopping it after
    `timeout_s` seconds (`QueryTimeout`) or on Ctrl-C (`Interrupted`); 0 turns a limit off.
    A failing statement raises `QueryError` with DuckDB's message on one line."""
    if not query.strip().strip(";").strip():
        raise InvalidArgument('empty query; give one read-only statement, e.g. "SELECT 1"')
    try:
        return _interruptible(con, lambda: _fetch(con, query, max_rows), timeout_s)
    except (QueryTimeout, Interrupted):
        raise
    except duckdb.OutOfMemoryException as err:
        raise QueryError(
            f"{one_line(err)} (the query needs more than the reader's memory limit; narrow it)"
        ) from err
    except duckdb.Error as err:
        raise QueryError(one_line(err)) from err


def _fetch(con: duckdb.DuckDBPyConnection, query: str, max_rows: int) -> QueryResult:
    rel = con.sql(query)
    if rel is None:  # DuckDB parsed no statement: only comments
        raise InvalidArgument('empty query (only comments); give a statement, e.g. "SELECT 1"')
    names = _unique(rel.columns)
    converted = names != list(rel.columns)
    exprs: list[str] = []
    json_columns: set[str] = set()
    for i, (name, dtype) in enumerate(zip(names, rel.types, strict=True), start=1):
        if dtype.id in _NESTED or str(dtype) == "JSON":
            expr = f"to_json(#{i})::VARCHAR"
            json_columns.add(name)
        elif dtype.id in _PLAIN:
            expr = f"#{i}"
        else:
            expr = f"CAST(#{i} AS VARCHAR)"
        converted |= expr != f"#{i}"
        exprs.append(f"{expr} AS {_quoted(name)}")
    # A result of plain columns with unique names goes as it is: the projection costs a copy.
    shown = rel.project(", ".join(exprs)) if converted else rel
    if max_rows:
        shown = shown.limit(max_rows + 1)
    frame = pl.from_arrow(shown.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    truncated = bool(max_rows) and frame.height > max_rows
    return QueryResult(
        frame.head(max_rows) if truncated else frame, frozenset(json_columns), truncated
    )


def _unique(names: list[str]) -> list[str]:
    """Column names made unique the way DuckDB does it (`a`, `a_1`, ...): polars needs that."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], T], timeout_s: float) -> T:
    """`work()` in a worker thread; interrupt `con` at the time limit or on Ctrl-C."""
    outcome: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # handed to the waiting thread, raised there
            outcome["error"] = err
        finally:
            done.set()

    threading.Thread(target=target, name="rmcurate-query", daemon=True).start()
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else math.inf
    stopped_by = None
    try:
        # Short waits: SIGINT may be delivered to one of DuckDB's threads, and Python runs its
        # handler (raising KeyboardInterrupt here) only once this thread is back in Python.
        while not done.wait(_POLL_S):
            if time.monotonic() >= deadline:
                stopped_by = "timeout"
                break
    except KeyboardInterrupt:
        stopped_by = "ctrl-c"
    if stopped_by is not None:
        _stop(con, done)
        if stopped_by == "ctrl-c":
            raise Interrupted("query interrupted (Ctrl-C); nothing was changed")
        if "value" not in outcome:
            raise QueryTimeout(
                f"query stopped after its time limit of {timeout_s:g} s; narrow it, or allow"
                " more time with --timeout SECONDS (0: no limit)"
            )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _stop(con: duckdb.DuckDBPyConnection, done: threading.Event) -> None:
    """Interrupt until the worker has unwound (an interrupt may land between two statements
    of the work); a second Ctrl-C while stopping is absorbed, not a traceback."""
    waited = 0.0
    while not done.is_set() and waited < _STOP_GRACE_S:
        try:
            con.interrupt()
            done.wait(0.1)
        except KeyboardInterrupt:
            pass
        waited += 0.1
