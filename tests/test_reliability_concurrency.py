"""Readers never block scheduled writes, and writers never break a reader (issue 12).

A scheduled-style ingest (`rmcurate ingest` in its own process, with a short busy timeout,
so waiting on a lock would fail it) runs while a separate process holds a reader open for
the whole ingest: a notebook-style `snapshot_reader()` connection, or `rmcurate sql`
running a slow query. The reader sees the old state or the new one, never a mixture."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from pathlib import Path

import duckdb
import pytest
from processes import (
    RMCURATE,
    child_env,
    no_traceback,
    open_files,
    python,
    rmcurate,
    start,
    wait_for,
)

from rmcore import demo
from warehouse.connection import snapshot_path, transaction

# One observation of the warehouse: (pairs, quarantined rows, dataset versions).
COUNTS = (
    "SELECT (SELECT count(*) FROM pairs), (SELECT count(*) FROM quarantine),"
    " (SELECT count(*) FROM datasets)"
)
BAD_LINES = [b'{"prompt": "trunc', b'{"prompt": "p", "rejected": "r"}']


def counts(wh: Path) -> tuple[int, int, int]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(COUNTS).fetchone()
    finally:
        con.close()


@pytest.fixture
def warehouse(tmp_path: Path, prefect_server) -> tuple[Path, Path]:
    """(warehouse with one dataset: the old state, a new source to ingest with bad rows)."""
    from flows.ingest import ingest_flow

    wh = tmp_path / "data" / "wh.duckdb"
    old = demo.write_demo(tmp_path / "old.jsonl", n_length_biased=60, n_adversarial=10, seed=1)
    ingest_flow(source=str(old), name="old", warehouse=str(wh), quality=False)
    new = demo.write_demo(tmp_path / "new.jsonl", n_length_biased=400, n_adversarial=40, seed=2)
    new.write_bytes(new.read_bytes().rstrip(b"\n") + b"\n" + b"\n".join(BAD_LINES) + b"\n")
    assert snapshot_path(wh).exists()
    return wh, new


def scheduled_ingest(tmp_path: Path, wh: Path, source: Path):
    """The ingest a schedule would start: its own process, waiting at most 3 s for a lock."""
    return rmcurate(
        "ingest",
        str(source),
        "--name",
        "incoming",
        "-w",
        str(wh),
        "--reports",
        str(tmp_path / "reports"),
        cwd=tmp_path,
        env=child_env(RMCURATE_BUSY_TIMEOUT="3"),
    )


READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from warehouse.connection import snapshot_reader

    wh, out, stop, query = sys.argv[1:5]
    seen = []
    with snapshot_reader(wh) as held:  # a notebook's connection, open for the whole ingest
        seen.append(["held", held.execute(query).fetchone()])
        print("ready", flush=True)
        while not Path(stop).exists():
            with snapshot_reader(wh) as con:  # and a notebook that re-runs its cell
                seen.append(["fresh", con.execute(query).fetchone()])
            seen.append(["held", held.execute(query).fetchone()])
            time.sleep(0.02)
    with snapshot_reader(wh) as con:
        seen.append(["final", con.execute(query).fetchone()])
    Path(out).write_text(json.dumps(seen))
""")


def test_ingest_succeeds_while_a_snapshot_reader_is_open_and_it_sees_no_mixture(
    tmp_path, warehouse
):
    wh, source = warehouse
    old = counts(wh)
    out, stop = tmp_path / "seen.json", tmp_path / "stop"
    reader = start(
        [*python(READER), str(wh), str(out), str(stop), COUNTS],
        cwd=tmp_path,
        log=tmp_path / "reader.log",
    )
    try:
        assert wait_for(
            lambda: "ready" in (tmp_path / "reader.log").read_text(), timeout=120, proc=reader
        ), (tmp_path / "reader.log").read_text()
        # The reader holds the snapshot, never the main file, during the whole ingest.
        held = open_files(reader.pid)
        assert str(snapshot_path(wh)) in held and str(wh) not in held
        done = scheduled_ingest(tmp_path, wh, source)
        assert reader.poll() is None, "the reader must stay open for the whole ingest"
    finally:
        stop.touch()
        reader.wait(timeout=60)
    no_traceback(done)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "incoming v1 ingested" in done.stdout and "reconciles" in done.stdout
    new = counts(wh)
    assert new[0] > old[0] and new[1] == old[1] + len(BAD_LINES) and new[2] == old[2] + 1
    seen = [(kind, tuple(c)) for kind, c in json.loads(out.read_text())]
    assert {c for _, c in seen} <= {old, new}, f"a mixed state was observed: {set(seen)}"
    assert {c for kind, c in seen if kind == "held"} == {old}  # a held connection never moves
    assert seen[-1] == ("final", new)  # a new connection after the ingest sees it all
    assert any(kind == "fresh" and c == old for kind, c in seen)


# A query that runs for minutes unless stopped (the test stops it when the ingest is done).
SLOW = "SELECT count(*) FROM range(1000000000) a, range(1000) b WHERE a.range + b.range = -1"


@pytest.mark.slow
def test_ingest_succeeds_while_rmcurate_sql_runs_a_slow_query(tmp_path, warehouse):
    wh, source = warehouse
    old = counts(wh)
    slow = start(
        [RMCURATE, "sql", SLOW, "--timeout", "0", "-w", str(wh)],
        cwd=tmp_path,
        log=tmp_path / "sql.log",
    )
    try:
        assert wait_for(
            lambda: str(snapshot_path(wh)) in open_files(slow.pid), timeout=120, proc=slow
        ), (tmp_path / "sql.log").read_text()
        assert str(wh) not in open_files(slow.pid)
        done = scheduled_ingest(tmp_path, wh, source)
        still_running = slow.poll() is None
    finally:
        os.killpg(slow.pid, signal.SIGKILL)
        slow.wait()
    assert still_running, (tmp_path / "sql.log").read_text()
    no_traceback(done)
    assert done.returncode == 0, done.stdout + done.stderr
    assert counts(wh)[2] == old[2] + 1
    after = rmcurate(
        "sql", COUNTS, "-o", "csv", "-w", str(wh), cwd=tmp_path, env=child_env(), timeout=300
    )
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[-1] == ",".join(map(str, counts(wh)))


def test_a_writer_waits_for_a_main_file_reader_and_names_it(tmp_path):
    """A reader that opened the main file itself (old notebooks: `duckdb.connect(...,
    read_only=True)`) still blocks writers: the bounded wait ends with a message naming it
    as a reader, with its PID, and telling how to avoid it."""
    from rmcore.errors import WarehouseBusy

    wh = tmp_path / "wh.duckdb"
    with transaction(wh) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    holder = start(
        python(
            f"import duckdb, time; c = duckdb.connect({str(wh)!r}, read_only=True);"
            " print('ready', flush=True); time.sleep(60)"
        ),
        cwd=tmp_path,
        log=tmp_path / "holder.log",
    )
    try:
        assert wait_for(lambda: "ready" in (tmp_path / "holder.log").read_text(), timeout=60)
        with pytest.raises(WarehouseBusy) as busy, transaction(wh, timeout_s=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()
    message = str(busy.value)
    assert f"PID {holder.pid} (" in message and "a reader" in message
    assert "snapshot_reader()" in message and "a flow is writing" not in message
    assert "\n" not in message
