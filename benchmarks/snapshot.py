"""The cost of publishing the warehouse's read-only snapshot (warehouse/connection.py).

    python benchmarks/snapshot.py [--rows 100000] [--warehouse data/rmcurate.duckdb]

For a warehouse of `--rows` demo pairs ingested through the ingest stage (no Prefect), and
for a copy of `--warehouse` when given (e.g. the demo's): the file size, the seconds of
one publish (copy + fsync + rename, under a read-only connection), and the seconds of a
one-row write transaction with and without publishing (median of 5; the throttle is off
so every write publishes, which is the worst case).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rmcore.config import IngestConfig
from rmcore.demo import write_demo
from rmcore.stages import ingest
from warehouse import connection


def build(work: Path, rows: int) -> Path:
    src = write_demo(work / "demo.jsonl", n_length_biased=rows, n_adversarial=0)
    wh = work / "wh.duckdb"
    kind, digest = ingest.fingerprint(str(src), None)
    ingest.parse_validate_store(
        str(wh),
        uri=str(src),
        kind=kind,
        fmt=None,
        name="bench",
        digest=digest,
        config=IngestConfig(),
        flow_run_id=None,
    )
    return wh


def one_write(wh: Path, i: int, publish: bool) -> float:
    original = connection.publish_snapshot
    if not publish:
        connection.publish_snapshot = lambda *a, **k: False  # type: ignore[assignment]
    start = time.perf_counter()
    try:
        with connection.transaction(wh) as con:
            connection.insert_row(
                con, "prompts", {"prompt_id": f"bench-{publish}-{i}", "text": "x", "n_chars": 1}
            )
    finally:
        connection.publish_snapshot = original
    return time.perf_counter() - start


def measure(label: str, wh: Path) -> None:
    connection.SNAPSHOT_MAX_SHARE = float("inf")  # no throttle: every write publishes
    connection.snapshot_path(wh).unlink(missing_ok=True)
    start = time.perf_counter()
    connection.publish_snapshot(wh)
    publish = time.perf_counter() - start
    with_pub = statistics.median(one_write(wh, i, True) for i in range(5))
    without = statistics.median(one_write(wh, i, False) for i in range(5))
    size = os.path.getsize(wh) / 2**20
    print(
        f"| {label} | {size:,.0f} MiB | {publish:.2f} s | {without:.3f} s | {with_pub:.3f} s |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--warehouse", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rmcurate-snapshot-"))
    print("| warehouse | size | one publish | write txn | write txn + publish |")
    print("|---|---|---|---|---|")
    if args.warehouse:
        copy = work / "given.duckdb"
        shutil.copyfile(args.warehouse, copy)
        measure(args.warehouse, copy)
    measure(f"{args.rows:,} ingested demo pairs", build(work, args.rows))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
