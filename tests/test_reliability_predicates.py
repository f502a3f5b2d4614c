"""Reliability probes for user predicates (`rmcurate curate --where`, the ablation's train
predicate): DuckDB's own parser decides what a predicate is, and the dataset / scoring-run scope
is applied outside it, so no text can widen the scope (issue 12, item 2 and the `--where`
probe of item 6).

A tiny real warehouse: two 20-pair datasets (one named after its file), one scored by the
bundled head. The issue's CLI probes run as real `rmcurate` subprocesses against the session's
Prefect server; the other predicate shapes run through `warehouse.curation.candidates` on the
same sandboxed connection the stages use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from rmcore.errors import InvalidArgument, QueryError

RMCURATE = Path(sys.executable).with_name("rmcurate")
N = 20  # pairs per dataset
N_TRAIN = 14  # of them in the train split


def _write(path: Path, tag: str) -> Path:
    rows = [
        {
            "prompt": f"{tag} question {i}",
            "chosen": f"a helpful answer {i} about {tag}",
            "rejected": f"no {i}",
            "split": "train" if i < N_TRAIN else "test",
        }
        for i in range(N)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def wh(tmp_path_factory, prefect_server) -> dict:
    """Datasets `alpha` (scored once) and `beta`, in one real warehouse."""
    from prefect.settings import PREFECT_API_URL

    from flows.ingest import ingest_flow
    from flows.score import score_flow

    root = tmp_path_factory.mktemp("predicates")
    warehouse = str(root / "data" / "wh.duckdb")
    ingest_flow(
        source=str(_write(root / "alpha.jsonl", "alpha")), warehouse=warehouse, quality=False
    )
    ingest_flow(source=str(_write(root / "beta.jsonl", "beta")), warehouse=warehouse, quality=False)
    run = score_flow(
        dataset="alpha", model="bundled-head", prompts_per_pair=2, warehouse=warehouse, device="cpu"
    )
    return {
        "warehouse": warehouse,
        "root": root,
        "run": run["scoring_run_id"],
        "api": PREFECT_API_URL.value(),
    }


def _candidates(wh: dict, predicate: str, *, scored: bool, dataset: str = "alpha"):
    from warehouse import catalog, curation
    from warehouse.connection import reader

    with reader(wh["warehouse"], sandboxed=True) as con:
        return curation.candidates(
            con,
            dataset_id=catalog.resolve_dataset(con, dataset),
            scoring_run_id=wh["run"] if scored else None,
            predicate=predicate,
        )


def _cli(wh: dict, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PREFECT_API_URL": wh["api"]}
    return subprocess.run(
        [str(RMCURATE), *args, "-w", wh["warehouse"]],
        capture_output=True,
        text=True,
        cwd=wh["root"],
        env=env,
        timeout=600,
    )


def _sets(wh: dict) -> int:
    con = duckdb.connect(wh["warehouse"], read_only=True)
    try:
        return con.execute("SELECT count(*) FROM curated_sets").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------- the CLI probes


@pytest.mark.slow  # each run imports torch and talks to Prefect: ~15 s of CPU
@pytest.mark.parametrize(
    ("where", "scored", "code", "needle"),
    [
        ("1=1) OR (1=1", False, 2, "syntax error"),
        ("1=1) OR (1=1", True, 2, "syntax error"),
        ("no_such_column > 1", False, 2, "unknown column 'no_such_column'"),
    ],
    ids=["escape-unscored", "escape-scored", "unknown-column"],
)
def test_cli_where_cannot_leave_its_scope(wh, where, scored, code, needle):
    before = _sets(wh)
    extra = ["--scoring-run-id", str(wh["run"])] if scored else []
    out = _cli(wh, "curate", "probe", "-d", "alpha", "--where", where, *extra)
    assert out.returncode == code, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and needle in lines[-1], out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert _sets(wh) == before  # nothing stored


def test_a_valid_where_stays_in_its_dataset(wh):
    from flows.curate import curate_flow

    row = curate_flow(
        name="alpha-train", dataset="alpha", predicate="split = 'train'", warehouse=wh["warehouse"]
    )
    con = duckdb.connect(wh["warehouse"], read_only=True)
    try:
        rows = con.execute(
            "SELECT DISTINCT d.name, p.split FROM curated_members m JOIN pairs p USING (pair_id)"
            " JOIN datasets d ON d.dataset_id = p.dataset_id WHERE m.curated_set_id = ?",
            [row["curated_set_id"]],
        ).fetchall()
    finally:
        con.close()
    assert rows == [("alpha", "train")] and row["n_members"] == N_TRAIN


# ---------------------------------------------------------------- predicate shapes


@pytest.mark.parametrize("scored", [False, True], ids=["unscored", "scored"])
@pytest.mark.parametrize(
    ("predicate", "needle"),
    [
        ("1=1) OR (1=1", "syntax error"),
        ("TRUE) OR (TRUE", "syntax error"),
        ("split = 'train')--", "syntax error"),
        ("split = 'train' /* open", "unterminated"),
        ("split = 'train'; DROP TABLE pairs", "statement"),
        ("split = 'train'; SELECT 1", "statements"),
        ("split = 'train' UNION SELECT * FROM v_pairs", "set operation"),
        ("split = 'train' ORDER BY 1", "clause after"),
        ("split = 'train' LIMIT 1", "clause after"),
        ("TRUE GROUP BY split", "clause after"),
        ("pair_id IN (SELECT pair_id FROM v_pairs)", "subquery"),
        ("EXISTS (SELECT 1 FROM pairs)", "subquery"),
        ("split = $1", "parameter"),
        ("no_such_column = 1", "unknown column 'no_such_column'"),
        ("v_pairs.split = 'train'", "unknown column 'v_pairs.split'"),
        ("split", "not BOOLEAN"),
        ("length(prompt)", "not BOOLEAN"),
        ("count(*) > 0", "aggregates"),
        ("no_such_function(split)", "no_such_function"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_bad_predicates_are_refused_with_one_line(wh, predicate, needle, scored):
    with pytest.raises(InvalidArgument) as err:
        _candidates(wh, predicate, scored=scored)
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_unknown_column_lists_the_columns_and_hints_at_scores(wh):
    with pytest.raises(InvalidArgument) as err:
        _candidates(wh, "ess >= 1", scored=False)
    assert "scoring run" in str(err.value) and "pair_id, dataset" in str(err.value)
    assert _candidates(wh, "ess >= 1", scored=True).height > 0  # a scored run has it


@pytest.mark.parametrize("scored", [False, True], ids=["unscored", "scored"])
@pytest.mark.parametrize(
    "predicate",
    [
        "TRUE",
        "1=1",
        "dataset = 'beta' OR TRUE",
        "dataset_id <> 0",
        "split = 'train' OR split <> 'x'",
    ],
)
def test_no_predicate_widens_the_scope(wh, predicate, scored):
    """Whatever the text, rows come from one dataset (and one scoring run), each pair once."""
    frame = _candidates(wh, predicate, scored=scored)
    assert frame.height == N and frame["pair_id"].n_unique() == N
    alpha = set(_candidates(wh, "TRUE", scored=False)["pair_id"])
    assert set(frame["pair_id"]) == alpha


def test_valid_predicates_keep_their_meaning(wh):
    assert _candidates(wh, "split = 'train'", scored=False).height == N_TRAIN
    assert _candidates(wh, "SPLIT = 'train' -- a comment", scored=False).height == N_TRAIN
    assert _candidates(wh, "split = 'test' AND chosen_chars > 3", scored=True).height == N - N_TRAIN
    assert _candidates(wh, "split = 'train'", scored=False, dataset="beta").height == N_TRAIN
    scored = _candidates(wh, "free_gap IS NOT NULL AND ess > 0", scored=True)
    assert scored.height == N and scored["free_gap"].null_count() == 0


def test_a_predicate_failing_at_run_time_is_a_query_error(wh):
    with pytest.raises(QueryError) as err:
        _candidates(wh, "CAST(prompt AS INTEGER) > 1", scored=False)
    assert "Conversion Error" in str(err.value)


def test_ablation_budget_counts_inside_the_scope(wh):
    from rmcore.stages.ablation import count_training_candidates

    kwargs = {"dataset": "alpha", "scoring_run_id": wh["run"]}
    count = count_training_candidates(wh["warehouse"], predicate="split = 'train'", **kwargs)
    assert count == N_TRAIN
    assert count_training_candidates(wh["warehouse"], predicate="TRUE", **kwargs) == N
    with pytest.raises(InvalidArgument):
        count_training_candidates(wh["warehouse"], predicate="1=1) OR (1=1", **kwargs)
