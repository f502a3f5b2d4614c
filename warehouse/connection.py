"""Opening the DuckDB warehouse: default path, migrations on connect, bounded waits on the lock.

DuckDB lets no other process open the file, even read-only, while a writer holds it
(`IO Error: Could not set lock on file`). Writers therefore hold the connection only
for short transactions (`with writer() as con: ...`), and everyone else waits a
bounded time for the lock instead of failing on the first try.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

DEFAULT_PATH = Path("data") / "rmcurate.duckdb"
ENV_VAR = "RMCURATE_WAREHOUSE"
DEFAULT_BUSY_TIMEOUT_S = 30.0


class WarehouseBusy(RuntimeError):
    """Another process holds the write lock for longer than we were willing to wait."""


class WarehouseMissing(FileNotFoundError):
    """A read-only connection was asked for a warehouse file that does not exist."""


def warehouse_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path > $RMCURATE_WAREHOUSE > ./data/rmcurate.duckdb."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def _is_lock_error(err: duckdb.Error) -> bool:
    return "lock" in str(err).lower()


def busy_timeout(timeout_s: float | None = None) -> float:
    """Explicit value > $RMCURATE_BUSY_TIMEOUT > 30 s."""
    return (
        timeout_s
        if timeout_s is not None
        else float(os.environ.get("RMCURATE_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT_S))
    )


def _open(
    path: Path, read_only: bool, config: dict[str, object], timeout_s: float | None, on_wait
) -> duckdb.DuckDBPyConnection:
    timeout_s = busy_timeout(timeout_s)
    deadline = time.monotonic() + timeout_s
    delay, warned = 0.05, False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as err:
            if not _is_lock_error(err):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(
                    f"warehouse busy: {path} is locked by another process (a flow is writing); "
                    f"gave up after {timeout_s:.0f} s. Try again when it finishes."
                ) from err
            if not warned and on_wait is not None:
                on_wait(
                    f"warehouse {path} is locked by a writer; waiting up to {timeout_s:.0f} s ..."
                )
                warned = True
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in warehouse/migrations, in order."""
    found = []
    for entry in resources.files("warehouse.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text()))
    return sorted(found)


def apply_migrations(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations not yet recorded in `schema_version`; returns the versions applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    done = {v for (v,) in con.execute("SELECT version FROM schema_version").fetchall()}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


@contextlib.contextmanager
def writer(
    path: str | os.PathLike[str] | None = None, *, timeout_s: float | None = None, on_wait=None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection with the schema migrated; closed on exit."""
    p = warehouse_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    con = _open(p, False, {}, timeout_s, on_wait)
    try:
        apply_migrations(con)
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def transaction(
    path: str | os.PathLike[str] | None = None, **kwargs
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`writer()` inside one transaction: all or nothing."""
    with writer(path, **kwargs) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


@contextlib.contextmanager
def reader(
    path: str | os.PathLike[str] | None = None,
    *,
    sandboxed: bool = False,
    timeout_s: float | None = None,
    on_wait=None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; `sandboxed` also disables every file and network access,
    so a user query can neither write nor read files."""
    p = warehouse_path(path)
    if not p.exists():
        raise WarehouseMissing(
            f"no warehouse at {p}; run `rmcurate ingest` or `rmcurate demo` first"
        )
    config: dict[str, object] = {}
    if sandboxed:
        config = {
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "lock_configuration": True,
        }
    con = _open(p, True, config, timeout_s, on_wait)
    try:
        yield con
    finally:
        con.close()


def frame(
    con: duckdb.DuckDBPyConnection, query: str, params: list | dict | None = None
) -> pl.DataFrame:
    """A query's rows as a polars frame, through Arrow (no row-by-row copy). A result left
    half-read by an earlier `execute(...).fetchone()` would block `sql()`: finish it first."""
    con.complete()
    return pl.from_arrow(con.sql(query, params=params).to_arrow_table())  # type: ignore[return-value]


@contextlib.contextmanager
def registered(
    con: duckdb.DuckDBPyConnection, name: str, data: pl.DataFrame | pa.Table
) -> Iterator[None]:
    """`data` visible to SQL as the view `name` for the duration of the block (zero copy
    through Arrow), unregistered even when the block raises."""
    con.register(name, data.to_arrow() if isinstance(data, pl.DataFrame) else data)
    try:
        yield
    finally:
        con.unregister(name)


def insert_row(
    con: duckdb.DuckDBPyConnection, table: str, fields: dict[str, Any], returning: str | None = None
) -> Any:
    """INSERT one row of named values (parameters bound; `table` and the column names come
    from our code, never from users); returns the `returning` column when asked."""
    cols = ", ".join(fields)
    marks = ", ".join("?" for _ in fields)
    query = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
    if returning:
        return con.execute(f"{query} RETURNING {returning}", list(fields.values())).fetchone()[0]
    con.execute(query, list(fields.values()))
    return None
