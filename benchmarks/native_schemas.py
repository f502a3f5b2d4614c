"""Native-schema adapters: rows per second, column-wise read vs record-by-record read.

    python benchmarks/native_schemas.py [--rows 20000]

For each schema, `--rows` synthetic rows in its native shape (unique texts, so nothing is a
duplicate) are written as JSONL; `read_source` + `build_batch` are timed (best of 2) once
with the column-wise read (typed columns, the adapter's polars expressions over the whole
batch) and once with `columnar=False` (every row parsed by the record reader and type-checked
value by value before the same expressions run). No warehouse, no quality check.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rmcore.ingest.batch import build_batch
from rmcore.ingest.sources import read_source


def _pku(i: int) -> dict:
    return {
        "prompt": f"question {i}",
        "response_0": f"answer a {i}",
        "response_1": f"answer b {i}",
        "response_0_source": "Alpaca-7B",
        "response_1_source": "Alpaca2-7B",
        "better_response_id": i % 2,
        "safer_response_id": (i // 2) % 2,
    }


def _arena(i: int) -> dict:
    conv = lambda r: [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": r}]  # noqa: E731
    return {
        "question_id": str(i),
        "model_a": "m1",
        "model_b": "m2",
        "winner": ("model_a", "model_b", "tie", "tie (bothbad)")[i % 4],
        "conversation_a": conv(f"a {i}"),
        "conversation_b": conv(f"b {i}"),
        "turn": 1,
    }


def _nectar(i: int) -> dict:
    answers = [{"answer": f"answer {k} to {i}", "model": f"m{k}", "rank": k + 1} for k in range(7)]
    return {"prompt": f"\n\nHuman: question {i}\n\nAssistant:", "answers": answers, "turns": 1}


def _oasst(i: int) -> list[dict]:  # one prompt and three ranked replies: 4 rows
    base = {"message_tree_id": f"t{i}", "model_name": None, "lang": "en"}
    root = {
        **base,
        "message_id": f"p{i}",
        "parent_id": None,
        "role": "prompter",
        "text": f"question {i}",
        "rank": None,
    }
    replies = [
        {
            **base,
            "message_id": f"r{i}.{k}",
            "parent_id": f"p{i}",
            "role": "assistant",
            "text": f"reply {k} to {i}",
            "rank": k,
        }
        for k in range(3)
    ]
    return [root, *replies]


SCHEMAS = {"pku-saferlhf": _pku, "arena": _arena, "nectar": _nectar, "oasst": _oasst}


def _best(path: Path, columnar: bool) -> tuple[float, int]:
    times, pairs = [], 0
    for _ in range(2):
        start = time.perf_counter()
        batch = build_batch(read_source(str(path), columnar=columnar))
        times.append(time.perf_counter() - start)
        assert batch.reconciles
        pairs = batch.pairs.height
    return min(times), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    print("| schema | source rows | pairs | column-wise s | rows/s | record-by-record s | rows/s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in SCHEMAS.items():
            rows = []
            for i in range(args.rows):
                made = make(i)
                rows.extend(made if isinstance(made, list) else [made])
            path = Path(tmp) / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            fast, pairs = _best(path, True)
            slow, _ = _best(path, False)
            n = len(rows)
            print(
                f"| {name} | {n:,} | {pairs:,} | {fast:.2f} | {n / fast:,.0f} | {slow:.2f}"
                f" | {n / slow:,.0f} |"
            )


if __name__ == "__main__":
    main()
