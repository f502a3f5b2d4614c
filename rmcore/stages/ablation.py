"""The ablation's checks and step budget: its names, methods, train predicate and report
folder are checked before anything trains; every model then trains for the same number of
optimizer steps, fixed from the size of the vanilla training set (the pairs the train
predicate selects)."""

from __future__ import annotations

from rmcore.config import METHODS
from rmcore.errors import InvalidArgument
from rmcore.names import NAME_MAX, check_name
from rmcore.stages.report import report_folder
from warehouse import catalog
from warehouse import curation as sql
from warehouse.connection import reader
from warehouse.predicates import check_predicate


def model_names(name: str, *, methods: list[str], seeds: list[int], reference: bool) -> list[str]:
    """The models (and curated sets) an ablation `name` makes: `name-reference` when it
    trains its own reference model, and `name-METHOD-sSEED` per arm."""
    arms = [f"{name}-{method}-s{seed}" for seed in seeds for method in methods]
    return ([f"{name}-reference"] if reference else []) + arms


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
    overwrite: bool = False,
) -> str:
    """Refuse, before any work, a bad report name or one whose derived model names are
    invalid (too long), unknown methods, a dataset that does not exist, a train predicate
    that is not one boolean expression over `v_pairs_scored`, and a report folder that may
    not be written (`report_folder`). Returns the report folder."""
    check_name(name, "report")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise InvalidArgument(f"unknown methods {unknown}; choose from {list(METHODS)}")
    for derived in model_names(name, methods=methods, seeds=seeds, reference=reference):
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
