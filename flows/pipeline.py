"""The whole pipeline and its ablation: reference model -> scores -> curated sets for each
method -> matched reward models over several seeds -> benchmarks -> an audit report.

Matched means: same backbone, same data source, same seeds, same number of optimizer steps
(fixed from the vanilla training-set size), only the curation differs.
"""

from __future__ import annotations

import math

from prefect import flow

from flows.benchmark import benchmark_flow
from flows.curate import curate_flow
from flows.ingest import ingest_flow
from flows.score import score_flow
from flows.train import train_flow
from rmcore.config import METHODS, AblationConfig, IterateConfig
from tasks.ablation import check_ablation, count_training_candidates
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
    scoring_run_id: int,
    epochs: int,
    max_steps: int | None,
    batch_size: int,
    backend: str,
    base_model: str,
    warehouse: str | None,
    device: str | None,
    overwrite: bool = False,
) -> tuple[dict, dict]:
    """(curated set, model trained on it), both named `name`: an ablation arm for one seed,
    or a round of the iterate loop."""
    cset = curate_flow(
        name=name,
        dataset=dataset,
        predicate=predicate,
        rule=rule,
        params=params,
        augment=augment,
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
        overwrite=overwrite,
        warehouse=warehouse,
        device=device,
    )
    return cset, model


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
    group_by: list[str] | None = None,
    method_params: dict[str, dict] | None = None,
    warehouse: str | None = None,
    reports_dir: str = AblationConfig.reports_dir,
    device: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Train and benchmark one model per (method, seed); write `reports/<name>/index.html`.
    `seeds` and `methods` default to `AblationConfig`'s; `method_params` overrides a method's
    rule parameters. `name` follows `rmcore.names` and names the report folder, the benchmark
    run and every model and set (`name-reference`, `name-METHOD-sSEED`); names, methods, the
    train predicate and the report folder are checked before anything trains. An existing
    model or report folder holding other inputs is refused unless `overwrite` (a re-run of
    the same ablation reuses its models and rewrites its report)."""
    seeds = seeds if seeds is not None else list(AblationConfig.seeds)
    methods = methods or list(AblationConfig.methods)
    check_ablation(
        warehouse,
        name=name,
        dataset=dataset,
        methods=methods,
        seeds=seeds,
        reference=reference_model is None,
        train_predicate=train_predicate,
        reports_dir=reports_dir,
        overwrite=overwrite,
    )
    # 1. A vanilla reference model scores every pair (unless the user names a reward model).
    if reference_model is None:
        ref = train_flow(
            name=f"{name}-reference",
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
    scores = score_flow(
        dataset=dataset,
        model=reference_model,
        prompts_per_pair=prompts_per_pair,
        warehouse=warehouse,
        device=device,
    )
    scoring_run_id = scores["scoring_run_id"]
    n_train = count_training_candidates(
        warehouse, dataset=dataset, scoring_run_id=scoring_run_id, predicate=train_predicate
    )
    steps = max(1, math.ceil(epochs * n_train / batch_size))
    # 2. One curated set and one model per (method, seed); the same step budget for all.
    models = []
    for seed in seeds:
        for method in methods:
            spec = METHODS[method] | (
                {"params": method_params[method]}
                if method_params and method in method_params
                else {}
            )
            _, trained = _curate_and_train(
                f"{name}-{method}-s{seed}",
                dataset=dataset,
                predicate=train_predicate,
                rule=spec["rule"],
                params=spec.get("params"),
                augment=spec.get("augment"),
                seed=seed,
                scoring_run_id=scoring_run_id,
                epochs=epochs,
                max_steps=steps,
                batch_size=batch_size,
                backend=backend,
                base_model=base_model,
                warehouse=warehouse,
                device=device,
                overwrite=overwrite,
            )
            models.append(
                {"name": trained["name"], "path": trained["path"], "method": method, "seed": seed}
            )
    # 3. Benchmarks and the report (findings are written from the measured intervals).
    bench = benchmark_flow(
        name=name,
        models=models,
        dataset=dataset,
        split=test_split,
        group_by=group_by or [],
        warehouse=warehouse,
        device=device,
    )
    meta = {
        "dataset": dataset,
        "scoring_run": scoring_run_id,
        "reference_model": reference_model,
        "prompts_per_pair": prompts_per_pair,
        "seeds": seeds,
        "methods": methods,
        "backend": backend,
        "steps_per_model": steps,
        "batch_size": batch_size,
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
        overwrite=overwrite,
    )
    return report | {
        "benchmark_run_id": bench["benchmark_run_id"],
        "scoring_run_id": scoring_run_id,
        "models": models,
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
    group_by: list[str] | None = None,
    warehouse: str | None = None,
    reports_dir: str = AblationConfig.reports_dir,
    overwrite: bool = False,
) -> dict:
    """ingest -> quality -> reference model -> score -> curate -> train -> benchmark -> report.
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
