"""The whole pipeline and its ablation: reference model -> scores -> curated sets for each
method -> matched reward models over several seeds -> benchmarks -> an audit report.

Matched means: same backbone, same data source, same seeds, same number of optimizer steps
(fixed from the vanilla training-set size), only the curation differs.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from flows.benchmark import benchmark_flow
from flows.curate import curate_flow
from flows.ingest import ingest_flow
from flows.score import score_flow
from flows.train import train_flow
from rmcore.evaluation.report import compare, summary_table, write_report
from tasks.common import current_flow_run_id
from warehouse import benchmarks as bsql
from warehouse import catalog
from warehouse import curation as csql
from warehouse.connection import reader, transaction

METHODS: dict[str, dict] = {
    "vanilla": {"rule": "uniform"},
    "rrm": {"rule": "uniform", "augment": "rrm"},
    "prompt-free-priority": {"rule": "prompt-free-priority", "params": {"tau": 1.0}},
    "prompt-free-filter": {"rule": "prompt-free-filter", "params": {"q": 0.5}},
}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


@flow(name="ablation", log_prints=True)
def ablation_flow(
    dataset: str,
    name: str = "ablation",
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    reference_model: str | None = None,
    m: int = 16,
    epochs: int = 10,
    batch_size: int = 64,
    backend: str = "embed-head",
    base_model: str = "bundled",
    train_predicate: str = "split = 'train'",
    test_split: str = "test",
    group_by: list[str] | None = None,
    method_params: dict[str, dict] | None = None,
    warehouse: str | None = None,
    reports_dir: str = "reports",
    device: str | None = None,
) -> dict:
    """Train and benchmark one model per (method, seed); write `reports/<name>/index.html`."""
    seeds = seeds if seeds is not None else [0, 1, 2]
    methods = methods or list(METHODS)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(METHODS)}")
    tag = _slug(name)
    # 1. A vanilla reference model scores every pair (unless the user names a reward model).
    if reference_model is None:
        ref = train_flow(name=f"{tag}-reference", dataset=dataset, split="train", epochs=epochs, batch_size=batch_size, seed=0,
                         backend=backend, base_model=base_model, warehouse=warehouse, device=device)  # fmt: skip
        reference_model = ref["path"]
    scores = score_flow(
        dataset=dataset, model=reference_model, m=m, warehouse=warehouse, device=device
    )
    run_id = scores["scoring_run_id"]
    with reader(warehouse) as con:
        n_train = csql.candidates(
            con,
            dataset_id=catalog.resolve_dataset(con, dataset),
            scoring_run_id=run_id,
            predicate=train_predicate,
        ).height
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
            cset = curate_flow(name=f"{tag}-{method}-s{seed}", dataset=dataset, predicate=train_predicate, rule=spec["rule"],
                               params=spec.get("params"), augment=spec.get("augment"), seed=seed, scoring_run=run_id,
                               warehouse=warehouse)  # fmt: skip
            trained = train_flow(name=f"{tag}-{method}-s{seed}", curated_set=f"{cset['name']}@{cset['version']}", epochs=epochs,
                                 max_steps=steps, batch_size=batch_size, seed=seed, backend=backend, base_model=base_model,
                                 warehouse=warehouse, device=device)  # fmt: skip
            models.append(
                {"name": trained["name"], "path": trained["path"], "method": method, "seed": seed}
            )
    # 3. Benchmarks and the report.
    bench = benchmark_flow(
        name=tag,
        models=models,
        dataset=dataset,
        split=test_split,
        group_by=group_by or [],
        warehouse=warehouse,
        device=device,
    )
    with reader(warehouse) as con:
        results = bsql.results(con, bench["benchmark_run_id"])
        preds = bsql.predictions(con, bench["benchmark_run_id"])
        scored = bsql.scored_train_pairs(con, run_id)
    length_col = "length_diff_chars"
    if (
        scored.height
        and scored["provenance"].str.json_path_match("$.length_diff").is_not_null().any()
    ):
        scored = scored.with_columns(
            pl.col("provenance")
            .str.json_path_match("$.length_diff")
            .cast(pl.Float64)
            .alias("length_diff_words")
        )
        length_col = "length_diff_words"
    meta = {"dataset": dataset, "scoring_run": run_id, "reference_model": reference_model, "prompts_per_pair": m, "seeds": seeds,
            "methods": methods, "backend": backend, "steps_per_model": steps, "batch_size": batch_size, "test_split": test_split,
            "benchmark_run": bench["benchmark_run_id"], "flow_run": current_flow_run_id()}  # fmt: skip
    out_dir = Path(reports_dir) / tag
    # Findings are written from the measured intervals, whatever they show.
    summary = summary_table(results)
    findings = [compare(summary, metric, method) for metric in ("bias-breaking: winner is shorter", "held-out accuracy", "prompt-swap accuracy")
                for method in methods if method != "vanilla"]  # fmt: skip
    html_path, md_path = write_report(out_dir, title=f"rmcurate ablation: {name}", meta=meta, summary=summary, results=results,
                                      preds=preds, scored=scored, length_col=length_col, findings=findings)  # fmt: skip
    with transaction(warehouse) as con:
        bsql.set_report(con, bench["benchmark_run_id"], str(html_path.resolve()))
    if current_flow_run_id():
        create_link_artifact(
            key=f"report-{tag}".lower()[:60],
            link=html_path.resolve().as_uri(),
            link_text=f"ablation report {name}",
        )
        create_markdown_artifact(
            key=f"summary-{tag}".lower()[:60],
            markdown=md_path.read_text(),
            description=f"ablation summary {name}",
        )
    return {"report": str(html_path.resolve()), "summary_md": str(md_path.resolve()), "summary": summary.to_dicts(), "findings": findings,
            "benchmark_run_id": bench["benchmark_run_id"], "scoring_run_id": run_id, "models": models}  # fmt: skip


@flow(name="pipeline", log_prints=True)
def pipeline_flow(
    source: str,
    name: str | None = None,
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    reference_model: str | None = None,
    m: int = 16,
    epochs: int = 10,
    group_by: list[str] | None = None,
    warehouse: str | None = None,
    reports_dir: str = "reports",
) -> dict:
    """ingest -> quality -> reference model -> score -> curate -> train -> benchmark -> report."""
    ingest = ingest_flow(source=source, name=name, warehouse=warehouse, reports_dir=reports_dir)
    dataset = f"{ingest['name']}@{ingest['version']}"
    result = ablation_flow(dataset=dataset, name=f"{ingest['name']}-v{ingest['version']}", seeds=seeds, methods=methods,
                           reference_model=reference_model, m=m, epochs=epochs, group_by=group_by, warehouse=warehouse,
                           reports_dir=reports_dir)  # fmt: skip
    return {"ingest": ingest} | result


@flow(name="iterate", log_prints=True)
def iterate_flow(
    dataset: str,
    name: str = "iter",
    rounds: int = 2,
    rule: str = "prompt-free-priority",
    params: dict | None = None,
    m: int = 16,
    epochs: int = 10,
    seed: int = 0,
    predicate: str = "split = 'train'",
    backend: str = "embed-head",
    base_model: str = "bundled",
    warehouse: str | None = None,
) -> list[dict]:
    """METHOD.md's loop: train, re-score the data with the new model, re-curate, train again.

    Round 0 trains on the uniform set; round r scores with model r-1 and curates by `rule`."""
    tag = _slug(name)
    history = []
    model = train_flow(name=f"{tag}-r0", dataset=dataset, split="train", epochs=epochs, seed=seed, backend=backend,
                       base_model=base_model, warehouse=warehouse)  # fmt: skip
    history.append(
        {"round": 0, "model": model["path"], "val_accuracy": model["metrics"].get("val_accuracy")}
    )
    for r in range(1, rounds + 1):
        scores = score_flow(
            dataset=dataset, model=model["path"], m=m, seed=seed, warehouse=warehouse
        )
        cset = curate_flow(name=f"{tag}-r{r}", dataset=dataset, predicate=predicate, rule=rule, params=params, seed=seed,
                           scoring_run=scores["scoring_run_id"], warehouse=warehouse)  # fmt: skip
        model = train_flow(name=f"{tag}-r{r}", curated_set=f"{cset['name']}@{cset['version']}", epochs=epochs, seed=seed,
                           backend=backend, base_model=base_model, warehouse=warehouse)  # fmt: skip
        history.append({"round": r, "model": model["path"], "scoring_run": scores["scoring_run_id"], "curated_set": cset["curated_set_id"],
                        "free_agrees_with_label": scores["free_agrees_with_label"], "val_accuracy": model["metrics"].get("val_accuracy")})  # fmt: skip
        print(f"round {r}: {history[-1]}")
    return history
