"""Opening the DuckDB warehouse: default path, migrations on connect, bounded waits on the lock,
and the read-only snapshot that people and notebooks read.

DuckDB lets no other process open the file while a writer holds it, and no writer open it
while any reader holds it (`IO Error: Could not set lock on file`). Flows therefore hold the
main file only for short transactions (`with transaction() as con: ...`) and wait a bounded
time for the lock. Readers outside the flows (`rmcurate sql`, the listings, notebooks) use
`snapshot_reader()` instead: it opens `<stem>.snapshot.duckdb`, a copy of the committed file
that every writer block publishes atomically when it changed something, so an open reader
never holds the main file's lock and sees one committed state, old or new, never a mixture.
docs/ARCHITECTURE.md ("Readers and writers") has the trade-off and its measured cost.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from rmcore.config import QueryConfig
from rmcore.errors import WarehouseBusy, WarehouseMissing

DEFAULT_PATH = Path("data") / "rmcurate.duckdb"
ENV_VAR = "RMCURATE_WAREHOUSE"
DEFAULT_BUSY_TIMEOUT_S = 30.0


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


# DuckDB names the holder: `Conflicting lock is held in /usr/bin/python3 (PID 1234)`.
_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")


def _command_of(pid: int) -> str | None:
    """The command line of a process, shortened, where /proc shows it."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= 100 else text[:97] + "..."


def lock_holder(err: duckdb.Error, read_only: bool) -> str:
    """Who holds the lock, from DuckDB's message: `PID 1234 (command), a reader|a writer`.
    A read-only open conflicts only with a writer; to a read-write open DuckDB adds that
    read-only access would work when the holder only reads."""
    text = str(err)
    found = _HOLDER.search(text)
    who = "another process"
    if found:
        pid = int(found["pid"])
        who = f"PID {pid} ({_command_of(pid) or found['exe']})"
    if read_only or (found and "read-only mode" not in text):
        return f"{who}, a writer"
    if "read-only mode" in text:
        return f"{who}, a reader"
    return who


def _busy(path: Path, read_only: bool, err: duckdb.Error, timeout_s: float) -> WarehouseBusy:
    holder = lock_holder(err, read_only)
    advice = (
        "close that connection (notebooks: warehouse.connection.snapshot_reader() never locks it)"
        if holder.endswith("a reader")
        else "try again when it finishes"
    )
    return WarehouseBusy(
        f"warehouse busy: {path} is locked by {holder}; gave up after {timeout_s:.0f} s; {advice}"
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
                raise _busy(path, read_only, err, timeout_s) from err
            if not warned and on_wait is not None:
                on_wait(
                    f"warehouse {path} is locked by {lock_holder(err, read_only)};"
                    f" waiting up to {timeout_s:.0f} s ..."
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
    """A short-lived read-write connection with the schema migrated; closed on exit, then
    the snapshot is published when the block changed the file (`publish_snapshot`)."""
    p = warehouse_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    con = _open(p, False, {}, timeout_s, on_wait)
    try:
        apply_migrations(con)
        yield con
    finally:
        con.close()
    with contextlib.suppress(OSError, duckdb.Error):  # the block is committed whatever happens
        publish_snapshot(p, throttle=True)


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


def _missing(p: Path) -> WarehouseMissing:
    return WarehouseMissing(f"no warehouse at {p}; run `rmcurate ingest` or `rmcurate demo` first")


def _reader_config(sandboxed: bool) -> dict[str, object]:
    """`sandboxed` disables every file and network access, so a user's query can neither
    write nor read files."""
    if not sandboxed:
        return {}
    return {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "memory_limit": QueryConfig.memory_limit,  # set before the lock: users cannot raise it
        "lock_configuration": True,
    }


@contextlib.contextmanager
def reader(
    path: str | os.PathLike[str] | None = None,
    *,
    sandboxed: bool = False,
    timeout_s: float | None = None,
    on_wait=None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the main file, for the short reads inside flows (it holds
    the lock while open: people and notebooks use `snapshot_reader()`)."""
    p = warehouse_path(path)
    if not p.exists():
        raise _missing(p)
    con = _open(p, True, _reader_config(sandboxed), timeout_s, on_wait)
    try:
        yield con
    finally:
        con.close()


# ---------------------------------------------------------------- the published snapshot

SNAPSHOT_SUFFIX = ".snapshot.duckdb"
# Writers publish at most this share of their time: after a copy of c seconds, the next
# publish of the same file in this process waits c / share (the skipped state is published
# by the next writer, at exit of this process, or by the next reader that finds it stale).
SNAPSHOT_MAX_SHARE = 0.1
_published: dict[Path, tuple[float, float]] = {}  # file -> (monotonic end, copy seconds)
_pending: set[Path] = set()
_publishing = threading.Lock()  # one publish at a time in this process


def snapshot_path(path: str | os.PathLike[str] | None = None) -> Path:
    """`data/rmcurate.duckdb` -> `data/rmcurate.snapshot.duckdb`."""
    p = warehouse_path(path)
    return p.with_name(p.stem + SNAPSHOT_SUFFIX)


def snapshot_is_current(path: str | os.PathLike[str] | None = None) -> bool:
    """The snapshot carries the main file's size and mtime; a write changes the main's."""
    p = warehouse_path(path)
    try:
        main, snap = p.stat(), snapshot_path(p).stat()
    except FileNotFoundError:
        return False
    return (main.st_size, main.st_mtime_ns) == (snap.st_size, snap.st_mtime_ns)


def _recover_wal(p: Path) -> bool:
    """A WAL left by a killed writer holds committed rows the main file lacks: replay it
    (what any writer's open does) so the file alone is complete. False when it cannot be."""
    wal = Path(f"{p}.wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return True
    try:
        duckdb.connect(str(p)).close()
    except duckdb.Error:
        return False
    return not wal.exists() or wal.stat().st_size == 0


def _remove_orphans(snap: Path) -> None:
    """Temporary copies left by a process killed while publishing (`<snapshot>.<pid>.<thread>.tmp`)."""
    for tmp in snap.parent.glob(f"{snap.name}.*.tmp"):
        try:
            os.kill(int(tmp.name.split(".")[-3]), 0)
        except (ValueError, IndexError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:  # alive, someone else's
            pass


def publish_snapshot(path: str | os.PathLike[str] | None = None, *, throttle: bool = False) -> bool:
    """Copy the committed warehouse to its snapshot: to a temporary file, fsync, then
    `os.replace`, so a reader opens the old snapshot or the new one, never a partial copy.
    The copy is taken under a read-only connection, so no writer changes the file meanwhile.
    Does nothing (False) when the snapshot is current, when a writer holds the file (it
    publishes when done), or when the folder is not writable (readers then use the main
    file). `throttle` (writers) bounds the cost: see SNAPSHOT_MAX_SHARE."""
    with _publishing:
        return _publish(warehouse_path(path), throttle)


def _publish(p: Path, throttle: bool) -> bool:
    key = p.resolve()
    if not p.exists() or snapshot_is_current(p):
        _pending.discard(key)
        return False
    if throttle and key in _published:
        end, cost = _published[key]
        if time.monotonic() - end < cost / SNAPSHOT_MAX_SHARE:
            _pending.add(key)
            return False
    if not _recover_wal(p):
        return False
    try:
        con = duckdb.connect(str(p), read_only=True)
    except duckdb.Error:  # locked by a writer, or open in this process with another config
        return False
    start = time.monotonic()
    snap = snapshot_path(p)
    tmp = snap.with_name(f"{snap.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        _remove_orphans(snap)
        stat = p.stat()
        shutil.copyfile(p, tmp)
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, snap)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    finally:
        con.close()
    _published[key] = (time.monotonic(), time.monotonic() - start)
    _pending.discard(key)
    return True


@atexit.register
def _publish_pending() -> None:
    """States a throttled writer skipped are published when the process ends."""
    for key in list(_pending):
        with contextlib.suppress(Exception):
            publish_snapshot(key)


@contextlib.contextmanager
def snapshot_reader(
    path: str | os.PathLike[str] | None = None,
    *,
    sandboxed: bool = False,
    timeout_s: float | None = None,
    on_wait=None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the warehouse's snapshot, for people, notebooks and the
    CLI's read commands: it never holds the main file's lock, so scheduled writes go on
    while it is open, and it sees the last committed state published. To see newer ones,
    close it and open another (DuckDB shares one instance among a process's open
    connections to a path, so a new one opened while an old one is open sees the old
    state). A stale snapshot is refreshed first when no writer holds the file; with no
    snapshot at all (none publishable yet) it falls back to the main file, read-only.

        from warehouse.connection import snapshot_reader
        with snapshot_reader("data/rmcurate.duckdb") as con:
            con.sql("SELECT count(*) FROM pairs").show()
    """
    p = warehouse_path(path)
    if not p.exists():
        raise _missing(p)
    if not snapshot_is_current(p):
        publish_snapshot(p)
    snap = snapshot_path(p)
    target = snap if snap.exists() else p
    con = _open(target, True, _reader_config(sandboxed), timeout_s, on_wait)
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
    through Arrow), unregistered even when the block raises. When the block's error aborted
    the transaction, DuckDB refuses the unregister too; the block's error is what propagates
    (it used to be hidden behind a TransactionException, so a duplicate key read as a
    conflict worth retrying)."""
    con.register(name, data.to_arrow() if isinstance(data, pl.DataFrame) else data)
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)
        raise
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
