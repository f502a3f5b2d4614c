"""The whole pipeline and its ablation: reference model -> scores -> curated sets for each
method -> matched reward models over several seeds -> benchmarks -> an audit report.

Matched means: same backbone, same data source, same seeds, same number of optimizer steps
(fixed from the vanilla training-set size), only the curation differs.
"""

from __future__ import annotations

import functools
import math

from prefect import flow

from flows.benchmark import benchmark_flow
from flows.curate import curate_flow
from flows.ingest import ingest_flow
from flows.score import score_flow
from flows.train import train_flow
from rmcore.config import METHODS, TUNING, AblationConfig, IterateConfig, OnlineConfig
from tasks.ablation import (
    check_ablation,
    combine_folds,
    count_training_candidates,
    fold_training_predicate,
    reference_names,
    tuning_choice,
    tuning_name,
)
from tasks.report import write_ablation_report


def _curate_and_train(
    name: str,
    *,
    dataset: str,
    predicate: str,
    rule: str,
    params: dict | None,
    augment: str | None,
    seed: int,
    scoring_run_id: int | None,
    epochs: int,
    max_steps: int | None,
    batch_size: int,
    backend: str,
    base_model: str,
    warehouse: str | None,
    device: str | None,
    rrm_filter: bool = False,
    online: dict | None = None,
    overwrite: bool = False,
) -> tuple[dict, dict]:
    """(curated set, model trained on it), both named `name`: an ablation arm for one seed,
    a reference model of one cross-fitting fold, or a round of the iterate loop; `online` as
    in `train_flow`."""
    cset = curate_flow(
        name=name,
        dataset=dataset,
        predicate=predicate,
        rule=rule,
        params=params,
        augment=augment,
        rrm_filter=rrm_filter,
        seed=seed,
        scoring_run_id=scoring_run_id,
        warehouse=warehouse,
    )
    model = train_flow(
        name=name,
        curated_set=f"{cset['name']}@{cset['version']}",
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        seed=seed,
        backend=backend,
        base_model=base_model,
        online=online,
        overwrite=overwrite,
        warehouse=warehouse,
        device=device,
    )
    return cset, model


def _arm(
    name: str, method: str, params: dict | None, seed: int, steps: int, common: dict
) -> tuple[dict, dict]:
    """One (method, seed) arm: its set and its model. The step budget is `steps` (vanilla's),
    or, for a method with budget "epochs", as many passes over its own set as vanilla makes
    over the original pairs (the set is built first to know its size). An online method's
    parameters are its re-weighting rule's; its set is the rule's (uniform) own."""
    spec = METHODS[method]
    params = spec.get("params") if params is None else params
    args = common | {
        "rule": spec["rule"],
        "params": None if spec.get("online") else params,
        "augment": spec.get("augment"),
        "rrm_filter": spec.get("rrm_filter", False),
        "online": {"params": params} if spec.get("online") else None,
        "seed": seed,
    }
    if spec.get("budget") == "epochs":
        cset = curate_flow(
            name=name,
            dataset=args["dataset"],
            predicate=args["predicate"],
            rule=args["rule"],
            params=args["params"],
            augment=args["augment"],
            rrm_filter=args["rrm_filter"],
            seed=seed,
            scoring_run_id=args["scoring_run_id"],
            warehouse=args["warehouse"],
        )
        steps = max(1, math.ceil(args["epochs"] * cset["n_members"] / args["batch_size"]))
    return _curate_and_train(name, max_steps=steps, **args)


def _cross_fit_scores(name: str, *, folds: int, prompts_per_pair: int, common: dict) -> int:
    """Free gaps out of sample: fold f's reference model trains on the training pairs of the
    other folds (folds by prompt), its scoring run supplies fold f's pairs; returns the id of
    the combined run (`rmcore.stages.crossfit`)."""
    fold_runs = []
    for fold, ref_name in enumerate(reference_names(name, folds)):
        _, ref = _curate_and_train(
            ref_name,
            **common
            | {
                "predicate": fold_training_predicate(common["predicate"], folds, fold),
                "rule": "uniform",
                "params": None,
                "augment": None,
                "seed": 0,
                "scoring_run_id": None,
                "max_steps": None,
            },
        )
        scores = score_flow(
            dataset=common["dataset"],
            model=ref["path"],
            prompts_per_pair=prompts_per_pair,
            warehouse=common["warehouse"],
            device=common["device"],
        )
        fold_runs.append(scores["scoring_run_id"])
    return combine_folds(common["warehouse"], dataset=common["dataset"], fold_runs=fold_runs)


@flow(name="ablation", log_prints=True)
def ablation_flow(
    dataset: str,
    name: str = "ablation",
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    reference_model: str | None = None,
    prompts_per_pair: int = AblationConfig.prompts_per_pair,
    epochs: int = AblationConfig.epochs,
    batch_size: int = AblationConfig.batch_size,
    backend: str = AblationConfig.backend,
    base_model: str = AblationConfig.base_model,
    train_predicate: str = AblationConfig.train_predicate,
    test_split: str = AblationConfig.test_split,
    validation_split: str = AblationConfig.validation_split,
    cross_fit_folds: int = AblationConfig.cross_fit_folds,
    tune: bool = AblationConfig.tune,
    group_by: list[str] | None = None,
    bias_cells: list[str] | None = None,
    method_params: dict[str, dict] | None = None,
    warehouse: str | None = None,
    reports_dir: str = AblationConfig.reports_dir,
    device: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Train and benchmark one model per (method, seed); write `reports/<name>/index.html`.

    Free gaps come from `cross_fit_folds` reference models, each scoring only the pairs of
    the fold it never trained on (`reference_model`, when given, scores every pair; folds < 2
    trains one in-sample reference). With `tune`, each method's TUNING grid is trained at
    seed 0 and compared on `validation_split` by group-balanced accuracy over `bias_cells`
    (never on test); `method_params` fixes a method's parameters instead. `seeds` and
    `methods` default to `AblationConfig`'s. `name` follows `rmcore.names` and names the
    report folder, the benchmark run and every model and set; names, methods, the train
    predicate and the report folder are checked before anything trains. An existing model
    or report folder holding other inputs is refused unless `overwrite` (a re-run of the
    same ablation reuses its models and rewrites its report)."""
    seeds = seeds if seeds is not None else list(AblationConfig.seeds)
    methods = methods or list(AblationConfig.methods)
    bias_cells = list(bias_cells or AblationConfig.bias_cells)
    folds = cross_fit_folds if reference_model is None else 1
    grids = {
        m: TUNING[m] for m in methods if tune and m in TUNING and m not in (method_params or {})
    }
    check_ablation(
        warehouse,
        name=name,
        dataset=dataset,
        methods=methods,
        seeds=seeds,
        reference=reference_model is None,
        train_predicate=train_predicate,
        reports_dir=reports_dir,
        folds=folds,
        tuning=grids,
        backend=backend,
        overwrite=overwrite,
    )
    common = {
        "dataset": dataset,
        "predicate": train_predicate,
        "epochs": epochs,
        "batch_size": batch_size,
        "backend": backend,
        "base_model": base_model,
        "warehouse": warehouse,
        "device": device,
        "overwrite": overwrite,
    }
    # 1. Free gaps: cross-fitted reference models (or the user's model) score every pair.
    if folds >= 2:
        scoring_run_id = _cross_fit_scores(
            name, folds=folds, prompts_per_pair=prompts_per_pair, common=common
        )
    else:
        if reference_model is None:  # one reference that scores its own training pairs
            ref = train_flow(
                name=reference_names(name, 1)[0],
                dataset=dataset,
                split="train",
                epochs=epochs,
                batch_size=batch_size,
                seed=0,
                backend=backend,
                base_model=base_model,
                overwrite=overwrite,
                warehouse=warehouse,
                device=device,
            )
            reference_model = ref["path"]
        scoring_run_id = score_flow(
            dataset=dataset,
            model=reference_model,
            prompts_per_pair=prompts_per_pair,
            warehouse=warehouse,
            device=device,
        )["scoring_run_id"]
    common["scoring_run_id"] = scoring_run_id
    n_train = count_training_candidates(
        warehouse, dataset=dataset, scoring_run_id=scoring_run_id, predicate=train_predicate
    )
    steps = max(1, math.ceil(epochs * n_train / batch_size))
    benchmark = functools.partial(  # the validation and the test benchmark share these
        benchmark_flow,
        dataset=dataset,
        group_by=group_by or [],
        bias_cells=bias_cells,
        warehouse=warehouse,
        device=device,
    )
    # 2. Parameters chosen on the validation split, one seed per grid point.
    chosen, grid_rows = dict(method_params or {}), []
    if grids:
        grid = []
        for method, points in grids.items():
            for i, params in enumerate(points):
                _, trained = _arm(tuning_name(name, method, i), method, params, 0, steps, common)
                grid.append(
                    {
                        "model": trained["name"],
                        "path": trained["path"],
                        "method": method,
                        "seed": 0,
                        "params": params,
                    }
                )
        tuning_bench = benchmark(
            name=f"{name}-tuning",
            models=[
                {"name": g["model"]} | {k: g[k] for k in ("path", "method", "seed")} for g in grid
            ],
            split=validation_split,
        )
        best, grid_rows = tuning_choice(
            warehouse,
            tuning_bench["benchmark_run_id"],
            [{k: g[k] for k in ("model", "method", "params")} for g in grid],
        )
        chosen = best | chosen
    # 3. One curated set and one model per (method, seed); the same step budget for all.
    models = []
    for seed in seeds:
        for method in methods:
            cset, trained = _arm(
                f"{name}-{method}-s{seed}", method, chosen.get(method), seed, steps, common
            )
            models.append(
                {
                    "name": trained["name"],
                    "path": trained["path"],
                    "method": method,
                    "seed": seed,
                    "n_members": cset["n_members"],
                    "n_augmented": cset["n_augmented"],
                    "steps": trained["metrics"].get("step"),
                }
            )
    # 4. Benchmarks and the report (findings are written from paired intervals).
    bench = benchmark(
        name=name,
        models=[{k: m[k] for k in ("name", "path", "method", "seed")} for m in models],
        split=test_split,
    )
    meta = {
        "dataset": dataset,
        "scoring_run": scoring_run_id,
        "free gaps": (
            f"cross-fitted, {folds} folds by prompt"
            if folds >= 2
            else f"one model: {reference_model}"
        ),
        "prompts_per_pair": prompts_per_pair,
        "seeds": seeds,
        "methods": methods,
        "backend": backend,
        "steps_per_model (matched)": steps,
        "batch_size": batch_size,
        "chosen parameters (validation, balanced accuracy)": chosen,
        **(
            {"online re-weighting (schedule)": OnlineConfig().describe()}
            if any(METHODS[m].get("online") for m in methods)
            else {}
        ),
        "test_split": test_split,
        "benchmark_run": bench["benchmark_run_id"],
    }
    report = write_ablation_report(
        warehouse,
        benchmark_run_id=bench["benchmark_run_id"],
        scoring_run_id=scoring_run_id,
        name=name,
        reports_dir=reports_dir,
        meta=meta,
        methods=methods,
        tuning=grid_rows,
        budgets=models,
        overwrite=overwrite,
    )
    return report | {
        "benchmark_run_id": bench["benchmark_run_id"],
        "scoring_run_id": scoring_run_id,
        "models": models,
        "chosen": chosen,
        "tuning": grid_rows,
    }


@flow(name="pipeline", log_prints=True)
def pipeline_flow(
    source: str,
    name: str | None = None,
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    reference_model: str | None = None,
    prompts_per_pair: int = AblationConfig.prompts_per_pair,
    epochs: int = AblationConfig.epochs,
    cross_fit_folds: int = AblationConfig.cross_fit_folds,
    tune: bool = AblationConfig.tune,
    group_by: list[str] | None = None,
    warehouse: str | None = None,
    reports_dir: str = AblationConfig.reports_dir,
    overwrite: bool = False,
) -> dict:
    """ingest -> quality -> reference models -> score -> curate -> train -> benchmark -> report.
    The ablation is named `NAME-vVERSION` after the ingested dataset; `overwrite` as in
    `ablation_flow`."""
    ingest = ingest_flow(source=source, name=name, warehouse=warehouse, reports_dir=reports_dir)
    result = ablation_flow(
        dataset=f"{ingest['name']}@{ingest['version']}",
        name=f"{ingest['name']}-v{ingest['version']}",
        seeds=seeds,
        methods=methods,
        reference_model=reference_model,
        prompts_per_pair=prompts_per_pair,
        epochs=epochs,
        cross_fit_folds=cross_fit_folds,
        tune=tune,
        group_by=group_by,
        warehouse=warehouse,
        reports_dir=reports_dir,
        overwrite=overwrite,
    )
    return {"ingest": ingest} | result


@flow(name="iterate", log_prints=True)
def iterate_flow(
    dataset: str,
    name: str = "iter",
    rounds: int = IterateConfig.rounds,
    rule: str = IterateConfig.rule,
    params: dict | None = None,
    prompts_per_pair: int = AblationConfig.prompts_per_pair,
    epochs: int = AblationConfig.epochs,
    seed: int = 0,
    predicate: str = AblationConfig.train_predicate,
    backend: str = AblationConfig.backend,
    base_model: str = AblationConfig.base_model,
    warehouse: str | None = None,
    overwrite: bool = False,
) -> list[dict]:
    """METHOD.md's loop: train, re-score the data with the new model, re-curate, train again.

    Round 0 trains on the uniform set; round r scores with model r-1 and curates by `rule`.
    The models and sets are `name-rR` (`name` follows `rmcore.names`); `overwrite` as in
    `ablation_flow`."""
    history = []
    model = train_flow(
        name=f"{name}-r0",
        dataset=dataset,
        split="train",
        epochs=epochs,
        seed=seed,
        backend=backend,
        base_model=base_model,
        overwrite=overwrite,
        warehouse=warehouse,
    )
    history.append(
        {"round": 0, "model": model["path"], "val_accuracy": model["metrics"].get("val_accuracy")}
    )
    for r in range(1, rounds + 1):
        scores = score_flow(
            dataset=dataset,
            model=model["path"],
            prompts_per_pair=prompts_per_pair,
            seed=seed,
            warehouse=warehouse,
        )
        cset, model = _curate_and_train(
            f"{name}-r{r}",
            dataset=dataset,
            predicate=predicate,
            rule=rule,
            params=params,
            augment=None,
            seed=seed,
            scoring_run_id=scores["scoring_run_id"],
            epochs=epochs,
            max_steps=None,
            batch_size=AblationConfig.batch_size,
            backend=backend,
            base_model=base_model,
            warehouse=warehouse,
            device=None,
            overwrite=overwrite,
        )
        history.append(
            {
                "round": r,
                "model": model["path"],
                "scoring_run_id": scores["scoring_run_id"],
                "curated_set": cset["curated_set_id"],
                "free_agrees_with_label": scores["free_agrees_with_label"],
                "val_accuracy": model["metrics"].get("val_accuracy"),
            }
        )
        print(f"round {r}: {history[-1]}")
    return history
