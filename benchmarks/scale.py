"""Scale: generated pairs through ingest, scoring, curation and one training epoch, per size.

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--prompts-per-pair 16]
                               [--out scale.md] [--workdir DIR] [--last-stage score]

Per size, a fresh warehouse and the real flows in order:
- `generate`: `rmcore.demo.write_demo` (the demo's 5:1 mix of length-biased and adversarial
  rows) as JSONL. Texts come from the demo's bank, so distinct prompts and responses are
  bounded (printed below the table): the per-text embedding cache sees realistic reuse.
- `ingest`: `ingest_flow` (quality suite on);
- `score`: `score_flow` with the default embed-head backend and the `bundled-head` model at
  M = `--prompts-per-pair` on CPU;
- `curate`: `curate_flow` with rule `prompt-free-priority` over the train split;
- `train`: `train_flow` on that curated set, `epochs=1`.
The `score excl. embed` row is the score stage less its `embed_seconds` (embedding every
distinct text once, a cost that follows the bank's size rather than the number of pairs).

Each stage runs in its own child process (this script with `--stage`), so its peak RSS is
its own (`os.wait4`'s rusage of that child). `wall s` is the stage's own call, timed inside
the child: interpreter and import start-up are left out, and so is Prefect's server, which
this process starts once (a test server, unless `PREFECT_API_URL` names one already) and every
child talks to through `PREFECT_API_URL`.
`warehouse MiB` is the DuckDB file (plus its WAL) after the stage, `dir MiB` everything the
stage left under the size's folder except the JSONL source (scoring shards, models, reports,
the reader snapshot). The growth exponent is log(t2 / t1) / log(n2 / n1) against the
previous size (1.0 = linear); the target is <= 1.1, and peak RSS < 8 GiB at 1M pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("generate", "ingest", "score", "curate", "train")
SCORE_REST = "score excl. embed"  # a derived row: the score stage minus its embedding pass
DATASET = "scale"
SET_NAME = "scale-priority"
RULE = "prompt-free-priority"
ADVERSARIAL_SHARE = 1 / 6  # the demo's mix: 600 adversarial rows per 3000 length-biased
TARGET_EXPONENT, TARGET_RSS_GIB = 1.1, 8.0
MIB = 1 << 20


def _environment() -> None:
    """What the CLI sets (cli.env), a private Prefect home, and offline Hugging Face."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rmcurate-scale-prefect-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from cli import env

    env.configure()


# ------------------------------------------------------------------ child: one stage


def _paths(workdir: Path) -> dict[str, Path]:
    return {
        "source": workdir / "pairs.jsonl",
        "warehouse": workdir / "wh.duckdb",
        "reports": workdir / "reports",
    }


def _generate(n: int, paths: dict[str, Path], m: int) -> dict:
    from rmcore.demo import generate_demo

    n_adv = 2 * round(n * ADVERSARIAL_SHARE / 2)
    frame = generate_demo(n_length_biased=n - n_adv, n_adversarial=n_adv, seed=0)
    frame.write_ndjson(paths["source"])
    return {
        "pairs": frame.height,
        "distinct_prompts": frame["prompt"].n_unique(),
        "distinct_responses": frame["chosen"].append(frame["rejected"]).n_unique(),
    }


def _ingest(n: int, paths: dict[str, Path], m: int) -> dict:
    from flows.ingest import ingest_flow

    out = ingest_flow(
        source=str(paths["source"]),
        name=DATASET,
        warehouse=str(paths["warehouse"]),
        reports_dir=str(paths["reports"]),
    )
    return {k: out[k] for k in ("status", "n_pairs", "n_quarantined")}


def _score(n: int, paths: dict[str, Path], m: int) -> dict:
    from flows.score import score_flow

    out = score_flow(
        dataset=DATASET, model="bundled-head", prompts_per_pair=m, warehouse=str(paths["warehouse"])
    )
    timings = out["timings"]
    keys = ("embedded_texts", "embed_seconds", "combos", "cache_hits", "score_seconds")
    return {"pairs": out["pairs"]} | {k: _rounded(timings[k]) for k in keys if k in timings}


def _curate(n: int, paths: dict[str, Path], m: int) -> dict:
    from flows.curate import curate_flow

    out = curate_flow(name=SET_NAME, dataset=DATASET, rule=RULE, warehouse=str(paths["warehouse"]))
    return {k: out[k] for k in ("version", "n_members", "n_candidates") if k in out}


def _train(n: int, paths: dict[str, Path], m: int) -> dict:
    from flows.train import train_flow

    out = train_flow(
        name="scale-model", curated_set=SET_NAME, epochs=1, warehouse=str(paths["warehouse"])
    )
    metrics = out["metrics"]
    return {"trained": out["trained"], "fit_seconds": _rounded(metrics["seconds"])}


def _rounded(value: object) -> object:
    return round(value, 1) if isinstance(value, float) else value


RUNNERS = {
    "generate": _generate,
    "ingest": _ingest,
    "score": _score,
    "curate": _curate,
    "train": _train,
}


def run_stage(stage: str, n: int, workdir: Path, m: int, result_file: Path) -> None:
    """The child's body: one stage, timed from the call, its summary written as JSON."""
    start = time.perf_counter()
    summary = RUNNERS[stage](n, _paths(workdir), m)
    seconds = time.perf_counter() - start
    result_file.write_text(json.dumps({"seconds": seconds, "summary": summary}, default=str))


# ------------------------------------------------------------------ parent: the table


@dataclass
class Measure:
    stage: str
    n: int
    seconds: float
    peak_rss_mib: float
    warehouse_mib: float
    dir_mib: float
    summary: dict = field(default_factory=dict)
    exponent: float | None = None


def _size_mib(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / MIB


def _measure(stage: str, n: int, workdir: Path, m: int, env: dict[str, str]) -> Measure:
    """Run one stage in a child process; fail loudly with its output when it fails."""
    result_file = workdir / f".{stage}.json"
    cmd = [sys.executable, __file__, "--stage", stage, "--sizes", str(n)]
    cmd += ["--prompts-per-pair", str(m), "--workdir", str(workdir), "--result", str(result_file)]
    log = workdir / f".{stage}.log"
    with log.open("wb") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"stage {stage} at n={n} exited {child.returncode}:\n{tail}")
    got = json.loads(result_file.read_text())
    paths = _paths(workdir)
    wh = paths["warehouse"]
    left = [p for p in workdir.rglob("*") if p != paths["source"] and not p.name.startswith(".")]
    return Measure(
        stage=stage,
        n=n,
        seconds=got["seconds"],
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        warehouse_mib=_size_mib([wh, wh.with_name(wh.name + ".wal")]),
        dir_mib=_size_mib(left),
        summary=got["summary"],
    )


def run(sizes: list[int], m: int, root: Path, last_stage: str = STAGES[-1]) -> list[Measure]:
    """Every stage at every size, each size in a fresh folder, against one Prefect server:
    the one `PREFECT_API_URL` names (a test's), else a test server started here."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    results: list[Measure] = []
    server = (
        contextlib.nullcontext()
        if os.environ.get("PREFECT_API_URL")
        else prefect_test_harness(server_startup_timeout=180)
    )
    with server:
        env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()}
        for n in sizes:
            workdir = root / f"n{n}"
            workdir.mkdir(parents=True, exist_ok=False)
            for stage in STAGES[: STAGES.index(last_stage) + 1]:
                got = _measure(stage, n, workdir, m, env)
                print(
                    f"  n={n:>9,} {stage:<8} {got.seconds:9.1f} s  {got.peak_rss_mib:8.0f} MiB"
                    f"  load {_load()}  {got.summary}",
                    flush=True,
                )
                results.append(got)
                if "embed_seconds" in got.summary:
                    results.append(_without_embedding(got))
            (workdir / _paths(workdir)["source"].name).unlink()  # the 1M JSONL is large
    _exponents(results)
    return results


def _without_embedding(score: Measure) -> Measure:
    """The score stage less its embedding pass, whose cost follows the distinct texts (bounded
    by the bank), not the pairs: the part that has to grow linearly."""
    return replace(
        score,
        stage=SCORE_REST,
        seconds=score.seconds - score.summary["embed_seconds"],
        summary={"what": "plan, shards, merge"},
    )


def _exponents(results: list[Measure]) -> None:
    """log(t2 / t1) / log(n2 / n1) of each stage against the same stage at the previous size."""
    previous: dict[str, Measure] = {}
    for r in results:
        before = previous.get(r.stage)
        if before is not None and before.n != r.n and before.seconds > 0 and r.seconds > 0:
            r.exponent = math.log(r.seconds / before.seconds) / math.log(r.n / before.n)
        previous[r.stage] = r


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(results: list[Measure], m: int) -> str:
    lines = [
        f"| pairs | stage | wall s | pairs/s | growth exp. | peak RSS MiB | warehouse MiB"
        f" | dir MiB | result (M = {m}) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        exp = "" if r.exponent is None else f"{r.exponent:.2f}"
        summary = ", ".join(f"{k}={v}" for k, v in r.summary.items())
        lines.append(
            f"| {r.n:,} | {r.stage} | {r.seconds:.1f} | {r.n / r.seconds:,.0f} | {exp}"
            f" | {r.peak_rss_mib:,.0f} | {r.warehouse_mib:,.1f} | {r.dir_mib:,.1f} | {summary} |"
        )
    return "\n".join(lines)


def verdict(results: list[Measure]) -> list[str]:
    """The targets, checked on what was measured: exponent per stage, peak RSS at the top size."""
    notes = []
    top = max(r.n for r in results)
    for r in results:
        if r.exponent is not None and r.exponent > TARGET_EXPONENT:
            notes.append(f"not linear: {r.stage} exponent {r.exponent:.2f} up to n={r.n:,}")
        if r.n == top and r.peak_rss_mib > TARGET_RSS_GIB * 1024:
            notes.append(f"over {TARGET_RSS_GIB:.0f} GiB: {r.stage} peak RSS at n={r.n:,}")
    return notes or [f"every exponent <= {TARGET_EXPONENT}, every peak RSS < {TARGET_RSS_GIB} GiB"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--prompts-per-pair", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument(
        "--last-stage", choices=STAGES, default=STAGES[-1], help="stop after this stage"
    )
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    _environment()
    if args.stage:
        run_stage(args.stage, sizes[0], args.workdir, args.prompts_per_pair, args.result)
        return
    root = args.workdir or Path(tempfile.mkdtemp(prefix="rmcurate-scale-"))
    print(f"workdir {root}, load average {_load()} (1, 5, 15 min), {os.cpu_count()} CPUs")
    start = time.perf_counter()
    results = run(sorted(sizes), args.prompts_per_pair, root, args.last_stage)
    gen = {r.n: r.summary for r in results if r.stage == "generate"}
    text = "\n".join(
        [
            table(results, args.prompts_per_pair),
            "",
            *(
                f"- n={n:,}: {g['distinct_prompts']:,} distinct prompts,"
                f" {g['distinct_responses']:,} distinct responses"
                for n, g in gen.items()
            ),
            *(f"- {note}" for note in verdict(results)),
            f"- total {time.perf_counter() - start:.0f} s; load average at the end {_load()}",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
