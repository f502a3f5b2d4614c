"""Ingest throughput: the real flow (quality on and off) next to a naive row-by-row loader.

    python benchmarks/ingest.py [--rows 100000] [--naive-rows 10000] [--profile]

Input: `generate_demo(n_length_biased=rows, n_adversarial=0)` written as JSONL (13 fields
per line; the 8 the format does not use go to `pairs.provenance`).

Paths, each into a fresh warehouse file with the same migrated schema:
- `flow, quality on|off`: `ingest_flow(...)` end to end from the call (fingerprint, parse,
  validate, quarantine, Arrow insert, reconcile, Great Expectations when on, artifact).
  A warm-up flow run starts Prefect's ephemeral test server first, so its one-off start-up
  (12-25 s here) is not counted.
- `naive row-by-row`: the file read line by line; per line `json.loads`, `normalize_text`
  and sha256 of prompt, chosen and rejected, a sha256 pair id; then, in one transaction,
  `executemany("INSERT OR IGNORE ...")` into prompts, responses and pairs (DuckDB runs the
  prepared statement once per row). No validation, quarantine, provenance or quality check,
  so it does less work than the flow. When `--naive-rows` is below `--rows` it runs on the
  first `--naive-rows` lines and its seconds are extrapolated linearly (marked `~`).
- `alpaca_eval_dev folder, quality on`: the 20 real AlpacaEval files of ../shared/data
  through `ingest_folder_flow` (one subflow and one quality run per file), when present.
- `store only, ...`: what the `pairs.pair_id` primary key costs. The batch is parsed and
  checked once, untimed; each variant gets a fresh warehouse already holding another
  version of the same size, then one transaction (open, create the version, store, commit,
  close, publish the snapshot) is timed. `primary key` is the shipped schema; `no key +
  check` recreates `pairs` without its key (`warehouse.ingest.drop_pair_key`, a what-if
  only) and runs the explicit check that would replace it (`clashing_pair_ids`: one
  anti-join against the stored ids and one distinct count) in the same transaction.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rmcurate-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from prefect.testing.utilities import prefect_test_harness

from flows.ingest import ingest_flow, ingest_folder_flow
from rmcore.demo import write_demo
from rmcore.ingest.batch import build_batch
from rmcore.ingest.sources import read_source
from rmcore.textnorm import normalize_text
from warehouse import ingest as sql
from warehouse.connection import transaction

ALPACA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval_dev"
TARGET_PAIRS_S, TARGET_RATIO = 50_000, 20.0


@dataclass
class Row:
    path: str
    rows: int
    seconds: float
    pairs: int
    note: str = ""

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def naive_ingest(path: Path, warehouse: Path, limit: int) -> int:
    """The baseline described in the module docstring; returns the number of pairs stored.
    Its per-row SQL is `warehouse.ingest.store_rows_one_by_one`."""
    prompts, responses, pairs = [], [], []
    with transaction(warehouse) as con:
        dataset_id = sql.create_version(
            con,
            name="naive",
            uri=str(path),
            fmt="explicit",
            content_hash="naive",
            options={},
            flow_run_id=None,
        ).dataset_id
        with path.open(encoding="utf-8") as lines:
            for i, line in enumerate(lines):
                if i == limit:
                    break
                rec = json.loads(line)
                p, c, r = (normalize_text(rec[k]) for k in ("prompt", "chosen", "rejected"))
                pid, cid, rid = _sha(p), _sha(c), _sha(r)
                pair_id = _sha(f"naive\x1f{pid}\x1f{cid}\x1f{rid}")
                prompts.append((pid, p, len(p)))
                responses += [(cid, c, len(c)), (rid, r, len(r))]
                label, split = float(rec.get("label", 1.0)), rec.get("split", "train")
                pairs.append((pair_id, dataset_id, pid, cid, rid, label, split, i))
        return sql.store_rows_one_by_one(con, dataset_id, prompts, responses, pairs)


def store_only(src: Path, work: Path, keyed: bool) -> tuple[int, float]:
    """(pairs stored, seconds of the timed transaction): see `store only` in the docstring."""
    raw = read_source(str(src), "jsonl")
    batches = [build_batch(raw, namespace=f"bench@{v}") for v in ("seed", "timed")]
    wh = work / f"store-{'keyed' if keyed else 'unkeyed'}.duckdb"
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        with transaction(wh) as con:
            if not keyed and i == 0:
                sql.drop_pair_key(con)
            dataset_id = sql.create_version(
                con,
                name="bench",
                uri=str(src),
                fmt=batch.format,
                content_hash=f"v{i}",
                options={},
                flow_run_id=None,
            ).dataset_id
            if not keyed and sql.clashing_pair_ids(con, batch.pairs):
                raise RuntimeError("a pair id of the batch is already stored or repeated")
            sql.store_batch(con, dataset_id, batch.pairs, batch.quarantine, None)
            _, n_pairs, _ = sql.stored_counts(con, dataset_id)
        seconds = time.perf_counter() - start
    return n_pairs, seconds


def _timed(fn: Callable[[], object], profile: bool) -> tuple[object, float]:
    prof = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if prof:
        prof.enable()
    out = fn()
    seconds = time.perf_counter() - start
    if prof:
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
        print(buf.getvalue())
    return out, seconds


def run(rows: int, naive_rows: int, profile: bool) -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="rmcurate-bench-"))
    src = write_demo(work / "demo.jsonl", n_length_biased=rows, n_adversarial=0)
    reports = str(work / "reports")
    results = []
    with prefect_test_harness(server_startup_timeout=180):
        warm = work / "warm.jsonl"
        warm.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
        ingest_flow(source=str(warm), warehouse=str(work / "warm.duckdb"), reports_dir=reports)
        for quality in (True, False):
            wh = work / f"flow-{quality}.duckdb"
            summary, seconds = _timed(
                lambda wh=wh, q=quality: ingest_flow(
                    source=str(src), warehouse=str(wh), reports_dir=reports, quality=q
                ),
                profile,
            )
            label = f"flow, quality {'on' if quality else 'off'}"
            results.append(Row(label, summary["n_input"], seconds, summary["n_pairs"]))
        if ALPACA.is_dir():
            out, seconds = _timed(
                lambda: ingest_folder_flow(
                    folder=str(ALPACA),
                    pattern="*.json.gz",
                    warehouse=str(work / "alpaca.duckdb"),
                    reports_dir=reports,
                ),
                profile,
            )
            results.append(
                Row(
                    path="alpaca_eval_dev folder, quality on",
                    rows=sum(s["n_input"] for s in out),
                    seconds=seconds,
                    pairs=sum(s["n_pairs"] for s in out),
                    note=f"{len(out)} files",
                )
            )
    for keyed in (True, False):
        pairs, seconds = store_only(src, work, keyed)
        label = "primary key" if keyed else "no key + check"
        results.append(Row(f"store only, {label}", rows, seconds, pairs))
    n = min(naive_rows, rows)
    pairs, seconds = _timed(lambda: naive_ingest(src, work / "naive.duckdb", n), profile)
    if n < rows:
        results.append(
            Row(
                path="naive row-by-row",
                rows=rows,
                seconds=seconds * rows / n,
                pairs=pairs * rows // n,
                note=f"~ extrapolated from {n:,} rows ({seconds:.1f} s)",
            )
        )
    else:
        results.append(Row("naive row-by-row", rows, seconds, pairs))
    return results


def table(results: list[Row]) -> str:
    naive = next(r for r in results if r.path == "naive row-by-row")
    head = f"{'path':<38} {'rows':>9} {'seconds':>9} {'rows/s':>9} {'pairs/s':>9} {'vs naive':>9}  note"
    lines = [head, "-" * len(head)]
    for r in results:
        ratio = r.pairs_per_s / naive.pairs_per_s
        lines.append(
            f"{r.path:<38} {r.rows:>9,} {r.seconds:>9.2f} {r.rows / r.seconds:>9,.0f}"
            f" {r.pairs_per_s:>9,.0f} {ratio:>8.1f}x  {r.note}"
        )
    lines.append(f"targets: flow >= {TARGET_PAIRS_S:,} pairs/s and >= {TARGET_RATIO:.0f}x naive")
    # Timings on a shared machine move with its load: print it beside them.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} CPUs")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="cProfile each timed path")
    args = parser.parse_args()
    print(table(run(args.rows, args.naive_rows, args.profile)))


if __name__ == "__main__":
    main()
