"""The ablation's checks and step budget: its names, methods, train predicate and report
folder are checked before anything trains; every model then trains for the same number of
optimizer steps, fixed from the size of the vanilla training set (the pairs the train
predicate selects)."""

from __future__ import annotations

import math

import polars as pl

from rmcore.config import METHODS
from rmcore.errors import InvalidArgument
from rmcore.names import NAME_MAX, check_name
from rmcore.stages.report import report_folder
from warehouse import benchmarks as bsql
from warehouse import catalog
from warehouse import curation as sql
from warehouse.connection import reader
from warehouse.predicates import check_predicate


def reference_names(name: str, folds: int) -> list[str]:
    """The reference model(s) an ablation trains: `name-reference-fF` per cross-fitting fold,
    or one in-sample `name-reference` when folds < 2."""
    return [f"{name}-reference-f{f}" for f in range(folds)] if folds >= 2 else [f"{name}-reference"]


def tuning_name(name: str, method: str, index: int) -> str:
    """The model (and set) of grid point `index` of `method`'s TUNING grid."""
    return f"{name}-{method}-t{index}"


def model_names(
    name: str,
    *,
    methods: list[str],
    seeds: list[int],
    reference: bool,
    folds: int = 1,
    tuning: dict[str, tuple[dict, ...]] | None = None,
) -> list[str]:
    """The models (and curated sets) an ablation `name` makes: its reference model(s) when it
    trains its own, one per tuning grid point, and `name-METHOD-sSEED` per arm."""
    refs = reference_names(name, folds) if reference else []
    grid = [
        tuning_name(name, method, i)
        for method in methods
        for i in range(len((tuning or {}).get(method, ())))
    ]
    return refs + grid + [f"{name}-{method}-s{seed}" for seed in seeds for method in methods]


def tuning_choice(
    warehouse: str | None, benchmark_run_id: int, grid: list[dict]
) -> tuple[dict[str, dict], list[dict]]:
    """Per method, the grid point with the highest group-balanced accuracy on the validation
    benchmark run (ties: the first listed), and every grid row with its score. `grid`:
    [{"model", "method", "params"}]."""
    with reader(warehouse) as con:
        results = bsql.results(con, benchmark_run_id)
    balanced = dict(
        results.filter(
            (pl.col("benchmark") == "preference")
            & (pl.col("subset") == "bias_balanced")
            & (pl.col("metric") == "accuracy")
        )
        .select("model", "value")
        .iter_rows()
    )
    rows = [g | {"validation_balanced_accuracy": balanced.get(g["model"])} for g in grid]
    chosen: dict[str, dict] = {}
    best: dict[str, float] = {}
    for row in rows:
        score = row["validation_balanced_accuracy"]
        score = -math.inf if score is None or math.isnan(score) else score
        if row["method"] not in best or score > best[row["method"]]:
            best[row["method"]], chosen[row["method"]] = score, row["params"]
    return chosen, rows


def check_ablation(
    warehouse: str | None,
    *,
    name: str,
    dataset: str,
    methods: list[str],
    seeds: list[int],
    reference: bool,
    train_predicate: str,
    reports_dir: str,
    folds: int = 1,
    tuning: dict[str, tuple[dict, ...]] | None = None,
    backend: str = "embed-head",
    overwrite: bool = False,
) -> str:
    """Refuse, before any work, a bad report name or one whose derived model names are
    invalid (too long), unknown methods, an online method on the joint backend, a dataset that does not exist, a train predicate
    that is not one boolean expression over `v_pairs_scored`, and a report folder that may
    not be written (`report_folder`). Returns the report folder."""
    check_name(name, "report")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise InvalidArgument(f"unknown methods {unknown}; choose from {list(METHODS)}")
    online = [m for m in methods if METHODS[m].get("online")]
    if online and backend == "joint":
        raise InvalidArgument(
            f"{', '.join(online)} re-weights online, which needs a head backend"
            " (embed-head or late-interaction), not joint"
        )
    names = model_names(
        name, methods=methods, seeds=seeds, reference=reference, folds=folds, tuning=tuning
    )
    for derived in names:
        if len(derived) > NAME_MAX:  # the only way a valid name + "-METHOD-sSEED" can fail
            raise InvalidArgument(
                f"report name {name!r} is too long for the model names it makes ({derived!r}"
                f" has {len(derived)} characters, at most {NAME_MAX}); pick a shorter --name"
            )
        check_name(derived, "model")
    with reader(warehouse, sandboxed=True) as con:
        catalog.resolve_dataset(con, dataset)
        check_predicate(con, train_predicate, "v_pairs_scored")
    folder = report_folder(warehouse, reports_dir=reports_dir, name=name, overwrite=overwrite)
    return str(folder)


def count_training_candidates(
    warehouse: str | None, *, dataset: str, scoring_run_id: int | None, predicate: str
) -> int:
    """How many source pairs of `dataset` the user's SQL `predicate` selects; it is checked
    and applied inside the dataset's scope (`warehouse.predicates`) on a read-only, sandboxed
    connection (as curation does), so it can neither widen the scope, write, nor touch files."""
    with reader(warehouse, sandboxed=True) as con:
        return sql.candidates(
            con,
            dataset_id=catalog.resolve_dataset(con, dataset),
            scoring_run_id=scoring_run_id,
            predicate=predicate,
        ).height
