"""How TRL reads our exports, on real data: AlpacaEval annotations (../shared/data).

Ingests `--files` generators' annotation files, curates them uniformly, exports the set in
both TRL formats and every file format (timed), and counts with the bundled MiniLM tokenizer
how often TRL's `prompt + chosen` runs the prompt's last word into the answer's first (the
tokens of the joined text are not the prompt's tokens followed by the answer's): for the
stored texts joined as before this change, and for the explicit export. It also shows the
margins the soft labels become.

    python benchmarks/export_trl.py --files 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from cli import env  # noqa: E402

env.configure()  # local Prefect home, analytics off, generous server start-up timeout


def run_together(tokenizer, prompts: list[str], answers: list[str]) -> int:
    """Pairs whose joined text does not tokenize as the prompt's tokens, then the answer's."""
    joined = tokenizer([p + a for p, a in zip(prompts, answers, strict=True)])["input_ids"]
    alone = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    tail = tokenizer(answers, add_special_tokens=False)["input_ids"]
    return sum(j[1:-1] != p + a for j, p, a in zip(joined, alone, tail, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2, help="generator files to ingest")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from flows.curate import curate_flow
    from flows.export import export_flow
    from flows.ingest import ingest_flow
    from rmcore.models.encoder import bundled_model_dir

    source = ROOT.parent / "shared" / "data" / "alpaca_eval_dev"
    if not source.is_dir():
        sys.exit(f"shared data not found at {source}")
    with tempfile.TemporaryDirectory() as tmp:
        wh = str(Path(tmp) / "wh.duckdb")
        records = [
            r
            for path in sorted(source.glob("*.json.gz"))[: args.files]
            for r in json.loads(gzip.decompress(path.read_bytes()))
        ]
        src = Path(tmp) / "alpaca.jsonl"
        src.write_text("\n".join(json.dumps(r) for r in records))
        ingest_flow(source=str(src), name="alpaca", warehouse=wh, quality=False)
        curate_flow(name="all", dataset="alpaca", warehouse=wh)
        rows = []
        for trl_format in ("explicit", "conversational"):
            for fmt in ("parquet", "jsonl", "hf"):
                out = Path(tmp) / f"{trl_format}.{fmt}"
                start = time.perf_counter()
                done = export_flow(
                    curated_set="all", path=str(out), fmt=fmt, trl_format=trl_format, warehouse=wh
                )
                rows.append((trl_format, fmt, done["rows"], time.perf_counter() - start))
        print(pl.DataFrame(rows, schema=["trl format", "file", "pairs", "seconds"], orient="row"))
        print(done["note"])
        frame = pl.read_parquet(Path(tmp) / "explicit.parquet")
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    stored = frame["prompt"].str.strip_suffix("\n").to_list()
    for answers in ("chosen", "rejected"):
        texts = frame[answers].to_list()
        before = run_together(tokenizer, stored, texts)
        after = run_together(tokenizer, frame["prompt"].to_list(), texts)
        print(
            f"{answers}: prompt runs into the answer in {before} of {frame.height} pairs joined "
            f"as stored ({before / frame.height:.1%}), {after} in the explicit export"
        )
    print(
        frame.group_by(
            pl.when(pl.col("label") == 0.5)
            .then(pl.lit("tie"))
            .when(pl.col("label") == 1.0)
            .then(pl.lit("hard"))
            .otherwise(pl.lit("soft"))
            .alias("label kind")
        )
        .agg(
            pairs=pl.len(),
            margin_min=pl.col("margin").min(),
            margin_median=pl.col("margin").median(),
            margin_max=pl.col("margin").max(),
        )
        .sort("label kind")
    )


if __name__ == "__main__":
    main()
