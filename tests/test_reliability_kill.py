"""SIGKILL in the middle of real work, then a re-run (issue 12): no partial or duplicate rows,
the reconcile holds, and a killed scoring run resumes to the numbers of an uninterrupted one.

Each victim is the installed `rmcurate` in its own process (session), killed with SIGKILL
once it has started writing: the warehouse file changed (ingest), or a shard's marker is
in the run folder (scoring)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from processes import RMCURATE, no_traceback, rmcurate, start, wait_for

from rmcore import demo

BAD_LINES = [b'{"prompt": "trunc', b'{"prompt": "p", "rejected": "r"}', b"[1, 2]"]


def query(wh: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def frame(wh: Path, sql: str, params: list | None = None) -> pl.DataFrame:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return pl.from_arrow(con.sql(sql, params=params).to_arrow_table())
    finally:
        con.close()


def recover(wh: Path) -> None:
    """What the next writer does first: open read-write, replaying a WAL the kill left."""
    duckdb.connect(str(wh)).close()


def kill_when(proc, condition, timeout: float = 600) -> None:
    """SIGKILL `proc`'s session once `condition()` holds; it must still be running then."""
    reached = wait_for(condition, timeout=timeout, every=0.005, proc=proc)
    alive = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reached and alive, "the run ended before the kill point"


def assert_dataset_reconciles(wh: Path, name: str, n_lines: int, n_bad: int) -> None:
    """Exactly one version of `name`; its stored rows plus quarantine are the input rows,
    counted in the warehouse; no pair or quarantine row belongs to no dataset."""
    [(dataset_id, n_input, status)] = query(
        wh, "SELECT dataset_id, n_input, status FROM datasets WHERE name = ?", [name]
    )
    [(n_rows, n_pairs, n_distinct, n_quarantined)] = query(
        wh,
        "SELECT (SELECT count(DISTINCT source_row) FROM pairs WHERE dataset_id = $1"
        "        AND augmentation IS NULL),"
        " (SELECT count(*) FROM pairs WHERE dataset_id = $1),"
        " (SELECT count(DISTINCT pair_id) FROM pairs WHERE dataset_id = $1),"
        " (SELECT count(*) FROM quarantine WHERE dataset_id = $1)",
        [dataset_id],
    )
    assert n_input == n_lines and n_rows + n_quarantined == n_lines
    assert n_pairs == n_distinct and n_quarantined == n_bad
    assert status == "passed_quality"
    assert query(
        wh,
        "SELECT (SELECT count(*) FROM pairs WHERE dataset_id NOT IN (SELECT dataset_id FROM datasets)),"
        " (SELECT count(*) FROM quarantine WHERE dataset_id NOT IN (SELECT dataset_id FROM datasets))",
    ) == [(0, 0)]


@pytest.mark.slow
def test_sigkill_during_ingest_then_rerun_leaves_one_reconciled_version(tmp_path, prefect_server):
    from flows.ingest import ingest_flow

    wh = tmp_path / "data" / "wh.duckdb"
    base = demo.write_demo(tmp_path / "base.jsonl", n_length_biased=30, n_adversarial=0, seed=1)
    ingest_flow(source=str(base), name="base", warehouse=str(wh), quality=False)
    src = demo.write_demo(tmp_path / "big.jsonl", n_length_biased=20_000, n_adversarial=500)
    src.write_bytes(src.read_bytes().rstrip(b"\n") + b"\n" + b"\n".join(BAD_LINES) + b"\n")
    n_lines = len(src.read_bytes().splitlines())
    before = (wh.stat().st_size, wh.stat().st_mtime_ns)
    args = ["ingest", str(src), "--name", "big", "-w", str(wh), "--reports", str(tmp_path / "r")]
    victim = start([RMCURATE, *args], cwd=tmp_path, log=tmp_path / "killed.log")

    def writing() -> bool:
        wal = Path(f"{wh}.wal")
        return wal.exists() or (wh.stat().st_size, wh.stat().st_mtime_ns) != before

    kill_when(victim, writing)
    recover(wh)
    # Right after the kill: the version is there whole, or not at all.
    rows = query(wh, "SELECT n_input FROM datasets WHERE name = 'big'")
    assert rows in ([], [(n_lines,)])
    again = rmcurate(*args, cwd=tmp_path)
    no_traceback(again)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_dataset_reconciles(wh, "big", n_lines, len(BAD_LINES))
    assert query(wh, "SELECT count(*) FROM datasets") == [(2,)]


SCORE = ["-d", "toy", "--model", "bundled-head", "-m", "3", "--seed", "7", "--shard-size", "10"]


@pytest.mark.slow
def test_sigkill_during_scoring_then_rerun_matches_an_uninterrupted_run(tmp_path, prefect_server):
    from flows.ingest import ingest_flow
    from flows.score import score_flow

    wh, ref = tmp_path / "killed" / "wh.duckdb", tmp_path / "reference" / "wh.duckdb"
    src = demo.write_demo(tmp_path / "toy.jsonl", n_length_biased=60, n_adversarial=20, seed=0)
    ingest_flow(source=str(src), name="toy", warehouse=str(wh), quality=False)
    ref.parent.mkdir()
    shutil.copyfile(wh, ref)
    n_pairs = query(wh, "SELECT count(*) FROM pairs")[0][0]
    args = ["score", *SCORE, "--device", "cpu", "-w", str(wh)]
    victim = start([RMCURATE, *args], cwd=tmp_path, log=tmp_path / "killed.log")
    runs = wh.parent / "runs" / "scoring"
    kill_when(victim, lambda: any(runs.glob("*/shard-*.json")))
    recover(wh)
    # Shard results live in the run folder until the one merge transaction: none are stored.
    assert query(wh, "SELECT count(*) FROM pair_scores") == [(0,)]
    again = rmcurate(*args, cwd=tmp_path)
    no_traceback(again)
    assert again.returncode == 0, again.stdout + again.stderr

    score_flow(
        dataset="toy",
        model="bundled-head",
        prompts_per_pair=3,
        seed=7,
        shard_size=10,
        device="cpu",
        warehouse=str(ref),
    )
    order = "SELECT * EXCLUDE (scoring_run_id) FROM pair_scores ORDER BY pair_id"
    got, want = frame(wh, order), frame(ref, order)
    assert got.height == n_pairs and got["pair_id"].n_unique() == n_pairs
    assert got.select("pair_id", "k", "iterations", "converged").equals(
        want.select("pair_id", "k", "iterations", "converged")
    )
    for col in ("own_gap", "free_gap", "related_gap", "ess"):
        np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=0, atol=1e-5)
    assert query(wh, "SELECT count(*), min(status) FROM scoring_runs") == [(1, "complete")]
    for table, key in (
        ("rm_scores", "model_id, revision, prompt_id, response_id"),
        ("embeddings", "encoder_id, text_id"),
    ):
        n, distinct = query(wh, f"SELECT count(*), count(DISTINCT ({key})) FROM {table}")[0]
        assert n == distinct > 0
    assert query(wh, "SELECT count(*) FROM rm_scores") == query(
        ref, "SELECT count(*) FROM rm_scores"
    )
