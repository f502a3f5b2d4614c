"""The `rmcurate` command line: one command per stage, plus read-only views of the warehouse.

Errors: every expected failure (`rmcore.errors.RmcurateError`) ends as one line
`error: <message>` on stderr and the exit code of its type, Ctrl-C as `error: interrupted`
and 130; `--debug` adds the traceback (and Prefect's own error logs). Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli import env

env.configure(env.warehouse_in(sys.argv[1:]))

from cli.render import console, err_console, show  # noqa: E402
from rmcore.config import (  # noqa: E402
    AblationConfig,
    ExportConfig,
    IngestConfig,
    IterateConfig,
    ModelSpec,
    OnlineConfig,
    QueryConfig,
    ScoringConfig,
    SetDefinition,
    TrainConfig,
)
from rmcore.errors import Interrupted, InvalidArgument, QueryError, RmcurateError  # noqa: E402
from rmcore.ingest.native import PREFERENCES  # noqa: E402
from rmcore.ingest.native import SCHEMAS as NATIVE_FORMATS  # noqa: E402
from warehouse import catalog  # noqa: E402

INGEST, SCORING, TRAIN, ABLATION, ITERATE = (
    IngestConfig(),
    ScoringConfig(),
    TrainConfig(),
    AblationConfig(),
    IterateConfig(),
)
EXPORT = ExportConfig()
ONLINE = OnlineConfig()

QUERY = QueryConfig()


def _error_line(message: str) -> None:
    """`error: <message>` on one line of stderr, whatever newlines the message holds."""
    typer.echo(
        f"{typer.style('error:', fg='red', bold=True)} {' '.join(message.split())}", err=True
    )


class _Commands(typer.core.TyperGroup):
    """The one place expected errors become a line and an exit code (see the module doc)."""

    def invoke(self, ctx: typer.Context):
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except RmcurateError as err:
            if debug:
                traceback.print_exc()
            _error_line(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            _error_line("interrupted")
            raise typer.Exit(Interrupted.exit_code) from None


app = typer.Typer(
    name="rmcurate",
    cls=_Commands,
    help="Curate reward-model preference data: ingest -> score -> curate -> train -> benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="RMCURATE_DEBUG",
            help="Show the traceback of expected errors too, and Prefect's error logs.",
        ),
    ] = False,
) -> None:
    env.quiet_expected_errors(not debug)


WarehouseOpt = Annotated[
    str | None,
    typer.Option(
        "--warehouse",
        "-w",
        help="DuckDB file (default: $RMCURATE_WAREHOUSE or ./data/rmcurate.duckdb).",
    ),
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table, csv or json.")]


def _name(kind: str):
    """A typer callback holding a name to the one rule (`rmcore.names`) before a flow starts."""
    from rmcore.names import check_name

    return lambda value: value if value is None else check_name(value, kind)


def _fail(message: str) -> NoReturn:
    """A bad argument, found by the CLI itself: exit 2 through the error handler."""
    raise InvalidArgument(message)


def _read(warehouse: str | None, fn, *args, sandboxed: bool = False):
    """Run a read on the warehouse's published snapshot, so an open query never holds the
    lock scheduled writers need; a failing query becomes a QueryError."""
    import duckdb

    from warehouse.connection import snapshot_reader

    with snapshot_reader(
        warehouse,
        sandboxed=sandboxed,
        on_wait=lambda m: err_console.print(f"[yellow]{m}[/yellow]"),
    ) as con:
        try:
            return fn(con, *args)
        except duckdb.Error as err:
            raise QueryError(f"{type(err).__name__}: {err}") from err


def _exists(warehouse: str | None, kind: str, *refs: str | None) -> None:
    """A missing warehouse, dataset or curated set, named before the engine starts: inside a
    flow run the same one-line error takes 15-20 s to arrive."""
    from warehouse import catalog
    from warehouse.connection import reader

    with reader(warehouse) as con:
        for ref in refs:
            if ref is not None:
                catalog.resolve(con, kind, ref)


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="File (jsonl, jsonl.gz, json, parquet, csv), HF save_to_disk folder, or hub id."
        ),
    ],
    input_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="explicit, implicit, conversational, annotated, or a native schema: "
            + ", ".join(NATIVE_FORMATS)
            + " (default: detect; see the README's formats table).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Dataset name: A-Z a-z 0-9 . _ -, not all digits (default: from the file name).",
            callback=_name("dataset"),
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Source kind: jsonl, json, parquet, csv, hf-disk, hf-hub (default: detect)."
        ),
    ] = None,
    ranked_mode: Annotated[
        str, typer.Option(help="Ranked lists: best-vs-worst or all-pairs.")
    ] = INGEST.ranked_mode,
    score_field: Annotated[
        str | None,
        typer.Option(
            help="Score that orders a scored list (ranked: e.g. fine-grained_score or"
            " overall_score; default: the first of rating, fine-grained_score, overall_score,"
            " score)."
        ),
    ] = INGEST.score_field,
    preference: Annotated[
        str, typer.Option(help="PKU-SafeRLHF: better (helpfulness) or safer (harmlessness).")
    ] = INGEST.preference,
    column_map: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Name the columns of an unknown schema: prompt=COL,chosen=COL,rejected=COL"
            "[,label=COL][,split=COL].",
        ),
    ] = None,
    hf_split: Annotated[
        str | None,
        typer.Option(
            help="Hugging Face splits to read, comma-separated (default: all); names such as"
            " train_prefs or test_gen are read as train/test (see the README)."
        ),
    ] = INGEST.hf_split,
    hf_config: Annotated[
        str | None, typer.Option(help="Config (subset) of a hub dataset.")
    ] = INGEST.hf_config,
    split: Annotated[
        str, typer.Option(help="Split for rows that carry none.")
    ] = INGEST.default_split,
    max_chars: Annotated[
        int, typer.Option(help="Texts longer than this are quarantined.")
    ] = INGEST.max_chars,
    reports: Annotated[
        str, typer.Option(help="Folder for data-quality reports.")
    ] = INGEST.reports_dir,
    warehouse: WarehouseOpt = None,
) -> None:
    """Validate a source and store it; bad rows go to quarantine with a reason."""
    from rmcore.ingest.mapping import parse_map
    from rmcore.ingest.sources import check_hf_options, check_source

    # A missing or unreadable source or a malformed option fails before Prefect starts.
    mapping = parse_map(column_map)
    if preference not in PREFERENCES:
        raise InvalidArgument(
            f"--preference {preference!r}: expected one of {', '.join(PREFERENCES)}"
        )
    check_hf_options(check_source(source, kind), hf_split, hf_config)
    env.make_home()
    from flows.ingest import ingest_flow

    summary = ingest_flow(
        source=source,
        name=name,
        fmt=input_format,
        kind=kind,
        warehouse=warehouse,
        reports_dir=reports,
        ranked_mode=ranked_mode,
        score_field=score_field,
        preference=preference,
        hf_split=hf_split,
        hf_config=hf_config,
        column_map=mapping,
        default_split=split,
        max_chars=max_chars,
        progress=True,
    )
    _print_ingest(summary)


def _print_ingest(summary: dict) -> None:
    import polars as pl

    verb = "unchanged (already ingested)" if summary["skipped"] else "ingested"
    console.print(
        f"[bold]{summary['name']} v{summary['version']}[/bold] {verb}; status {summary['status']}"
    )
    console.print(
        f"input rows {summary['n_input']:,} = stored {summary['n_rows_stored']:,} + quarantined {summary['n_quarantined']:,}"
        f"  [{'green' if summary['reconciles'] else 'red'}]{'reconciles' if summary['reconciles'] else 'MISMATCH'}[/]"
        f"; {summary['n_pairs']:,} pairs"
    )
    if summary.get("reasons"):
        show(
            pl.DataFrame(
                {"reason": list(summary["reasons"]), "rows": list(summary["reasons"].values())}
            ),
            title="quarantined",
        )
    if summary.get("report_path"):
        console.print(f"data-quality report: {summary['report_path']}")


@app.command()
def datasets(warehouse: WarehouseOpt = None, output: OutputOpt = "table") -> None:
    """List dataset versions with counts, quarantine counts and quality (passed, failed or
    not-checked, with the reason)."""
    show(_read(warehouse, catalog.datasets), title="datasets", output=output)


@app.command()
def recheck(
    dataset: Annotated[
        str, typer.Argument(help="Dataset id, name (latest version) or name@version.")
    ],
    reports: Annotated[
        str, typer.Option(help="Folder for data-quality reports.")
    ] = INGEST.reports_dir,
    warehouse: WarehouseOpt = None,
) -> None:
    """Run the data-quality suite again on a stored dataset (one left not-checked, say)."""
    from rmcore.errors import QualityFailed
    from rmcore.stages.ingest import recheck as run_recheck

    summary = run_recheck(warehouse, dataset, reports_dir=reports)
    passed = summary.status == "passed_quality"
    console.print(
        f"[bold]{summary.name} v{summary.version}[/bold] quality {'passed' if passed else 'failed'}"
    )
    if summary.report_path:
        console.print(f"data-quality report: {summary.report_path}")
    if not passed:
        raise QualityFailed(
            f"data quality failed for {summary.name} v{summary.version}; see the report:"
            f" {summary.report_path}"
        )


@app.command()
def quarantine(
    dataset: Annotated[
        str | None, typer.Option(help="Dataset id, name (latest version) or name@version.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    summary: Annotated[
        bool, typer.Option("--summary", help="Counts per reason instead of rows.")
    ] = False,
    warehouse: WarehouseOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Show quarantined rows with their reason codes."""

    def query(con):
        ds = catalog.resolve_dataset(con, dataset) if dataset else None
        rows = (
            catalog.quarantine_counts(con, ds)
            if summary
            else catalog.quarantine(con, ds, reason, limit)
        )
        return rows, (f"quarantine of {catalog.label(con, 'dataset', ds)}" if ds else "quarantine")

    rows, title = _read(warehouse, query)
    show(rows, title=title, output=output)


@app.command()
def sql(
    query: Annotated[
        str,
        typer.Argument(help=f'A read-only query, e.g. "{catalog.EXAMPLE_QUERY}".'),
    ],
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="Stop the query after this many seconds (0: no limit).", min=0
        ),
    ] = QUERY.timeout_s,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Rows to show at most (0: all).", min=0)
    ] = QUERY.max_rows,
    warehouse: WarehouseOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Query the warehouse read-only; writes and file access are refused. Memory is capped
    (DuckDB memory_limit), Ctrl-C stops the query, and every result type prints."""
    from cli.render import show_query

    def run(con):
        return catalog.run_query(con, query, timeout_s=timeout, max_rows=max_rows)

    show_query(_read(warehouse, run, sandboxed=True), output=output)


@app.command()
def score(
    dataset: Annotated[
        str,
        typer.Option("--dataset", "-d", help="Dataset id, name (latest version) or name@version."),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Trained model folder, hub id, or 'bundled-head' (default: newest model trained on the dataset)."
        ),
    ] = None,
    prompts_per_pair: Annotated[
        int,
        typer.Option(
            "--prompts-per-pair",
            "-m",
            help="Sampled prompts per pair (M); K = M + 1 with the own prompt.",
        ),
    ] = SCORING.prompts_per_pair,
    weights: Annotated[
        str, typer.Option(help="Importance weights: uniform, lm or embedding.")
    ] = SCORING.weights,
    criterion: Annotated[
        str, typer.Option(help="balanced or logit-mean (METHOD.md).")
    ] = SCORING.criterion,
    seed: Annotated[int, typer.Option(help="Seed of the prompt sampling.")] = SCORING.seed,
    beta: Annotated[float, typer.Option(help="Temperature of lm weights.")] = SCORING.beta,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Temperature of embedding weights (default: chosen so the mean ESS is mid 3-8)."
        ),
    ] = SCORING.temperature,
    lm: Annotated[
        str | None, typer.Option(help="Causal LM (folder or hub id) for --weights lm.")
    ] = None,
    pool: Annotated[
        str | None, typer.Option(help="Draw prompts from another dataset (default: the same one).")
    ] = None,
    shard_size: Annotated[
        int, typer.Option(help="Pairs per shard (unit of resume and parallelism).")
    ] = SCORING.shard_size,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda when present).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="Check the model is of this backend: embed-head, late-interaction or joint."
        ),
    ] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Split every pair's reward gap into prompt-free and prompt-related parts."""
    _exists(warehouse, "dataset", dataset, pool)
    from flows.score import score_flow
    from rmcore.models.loading import detect_backend

    if model and backend and detect_backend(model) != backend:
        _fail(f"{model} is a {detect_backend(model)} model, not {backend}")
    summary = score_flow(
        dataset=dataset,
        model=model,
        prompts_per_pair=prompts_per_pair,
        weights=weights,
        criterion=criterion,
        seed=seed,
        beta=beta,
        temperature=temperature,
        lm=lm,
        pool=pool,
        shard_size=shard_size,
        warehouse=warehouse,
        device=device,
        progress=True,
    )
    _print_scoring(summary)


def _print_scoring(summary: dict) -> None:
    import polars as pl

    t = summary.get("timings", {})
    rows = [
        (k, v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    rows += [
        ("cache hits / combos", f"{t.get('cache_hits', '-')} / {t.get('combos', '-')}"),
        ("forward passes", t.get("forward_passes", "-")),
    ]
    values = [f"{v:.4g}" if isinstance(v, float) else str(v) for _, v in rows]
    state = " (already complete)" if summary.get("skipped") else ""
    show(
        pl.DataFrame({"metric": [k for k, _ in rows], "value": values}),
        title=f"scoring run {summary['scoring_run_id']}{state}",
    )


def _params(items: list[str] | None) -> dict:
    """`k=v` pairs; values parsed as numbers when they look like numbers."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--param takes key=value, got {item!r}")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


@app.command()
def curate(
    name: Annotated[
        str,
        typer.Argument(
            help="Name of the curated set (a changed definition makes a new version).",
            callback=_name("curated set"),
        ),
    ],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset id, name or name@version.")
    ],
    where: Annotated[
        str,
        typer.Option(
            help="SQL predicate over v_pairs_scored, e.g. \"split = 'train' AND ess >= 4\"."
        ),
    ] = SetDefinition.predicate,
    rule: Annotated[
        str,
        typer.Option(
            help="uniform, prompt-free-priority, prompt-free-filter or priority-sampling."
        ),
    ] = SetDefinition.rule,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Rule parameter key=value (tau, q, size); repeatable."),
    ] = None,
    augment: Annotated[
        str | None, typer.Option(help="'rrm' adds RRM-augmented pairs.")
    ] = SetDefinition.augment,
    keep_fraction: Annotated[
        float, typer.Option(help="RRM: share of augmented pairs kept.")
    ] = SetDefinition.keep_fraction,
    rrm_filter: Annotated[
        bool,
        typer.Option(
            "--rrm-filter",
            help="RRM: keep only pairs the reference model gets wrong or is unsure of.",
        ),
    ] = SetDefinition.rrm_filter,
    seed: Annotated[int, typer.Option()] = SetDefinition.seed,
    scoring_run_id: Annotated[
        int | None,
        typer.Option(help="Scoring run to read free gaps from (default: newest complete)."),
    ] = SetDefinition.scoring_run_id,
    warehouse: WarehouseOpt = None,
) -> None:
    """Materialize an immutable, versioned curated set with training weights."""
    from rmcore.stages.curate import preflight

    definition = {
        "name": name,
        "dataset": dataset,
        "predicate": where,
        "rule": rule,
        "params": _params(param),
        "augment": augment,
        "keep_fraction": keep_fraction,
        "rrm_filter": rrm_filter,
        "seed": seed,
        "scoring_run_id": scoring_run_id,
    }
    preflight(warehouse, SetDefinition(**definition))
    from flows.curate import curate_flow

    row = curate_flow(**definition, warehouse=warehouse)
    state = "created" if row["created"] else "unchanged (same definition)"
    console.print(
        f"[bold]{row['name']} v{row['version']}[/bold] {state}: {row['n_members']} members "
        f"({row['n_augmented']} augmented) of {row['n_candidates']} candidates; "
        f"total weight {row['total_weight']:.1f}"
    )


@app.command()
def sets(warehouse: WarehouseOpt = None, output: OutputOpt = "table") -> None:
    """List curated sets and their versions."""
    from warehouse import curation

    show(_read(warehouse, curation.list_sets), title="curated sets", output=output)


@app.command()
def train(
    name: Annotated[
        str,
        typer.Argument(
            help="Model name (its folder goes next to the warehouse, under models/).",
            callback=_name("model"),
        ),
    ],
    curated_set: Annotated[
        str | None,
        typer.Option(
            "--set", "-s", help="Curated set (name, name@version or id); its weights apply."
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Or a whole dataset split, uniform weights."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to train on with --dataset.")] = ModelSpec.split,
    backend: Annotated[
        str,
        typer.Option(
            help="embed-head (frozen encoder + MLP head), late-interaction (frozen encoder"
            " token states + cross-attention head) or joint (fine-tune a HF model)."
        ),
    ] = ModelSpec.backend,
    base_model: Annotated[
        str,
        typer.Option(
            help="Encoder ('bundled') for the head backends; HF folder or hub id for joint."
        ),
    ] = ModelSpec.base_model,
    epochs: Annotated[int, typer.Option()] = TRAIN.epochs,
    lr: Annotated[
        float | None, typer.Option(help="Default 1e-3 (head backends) or 2e-5 (joint).")
    ] = None,
    batch_size: Annotated[int, typer.Option()] = TRAIN.batch_size,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps; overrides epochs.")
    ] = TRAIN.max_steps,
    seed: Annotated[int, typer.Option()] = TRAIN.seed,
    margin: Annotated[float, typer.Option()] = TRAIN.margin,
    center_coef: Annotated[
        float, typer.Option(help="Reward centering coefficient.")
    ] = TRAIN.center_coef,
    lora: Annotated[
        bool, typer.Option("--lora", help="joint: train LoRA adapters (peft).")
    ] = TRAIN.lora,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Head backends: re-weight the pairs during training by prompt-free priority,"
            " with free gaps from the model being trained (no reference model).",
        ),
    ] = False,
    online_warmup: Annotated[
        int, typer.Option(help="--online: epochs of the set's own weights first.")
    ] = ONLINE.warmup_epochs,
    online_every: Annotated[
        int, typer.Option(help="--online: re-weight every this many epochs.")
    ] = ONLINE.every_epochs,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace an existing model folder trained with other inputs."
        ),
    ] = False,
    device: Annotated[str | None, typer.Option()] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Train a reward model with the weighted soft-label Bradley-Terry loss."""
    _exists(warehouse, "curated set", curated_set)
    _exists(warehouse, "dataset", dataset)
    from flows.train import train_flow

    out = train_flow(
        name=name,
        curated_set=curated_set,
        dataset=dataset,
        split=split,
        backend=backend,
        base_model=base_model,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        max_steps=max_steps,
        seed=seed,
        margin=margin,
        center_coef=center_coef,
        lora=lora,
        online={"warmup_epochs": online_warmup, "every_epochs": online_every} if online else None,
        overwrite=overwrite,
        device=device,
        warehouse=warehouse,
        progress=True,
    )
    metrics = {k: round(v, 4) for k, v in out["metrics"].items() if isinstance(v, float)}
    console.print(
        f"[bold]{out['name']}[/bold] {'trained' if out.get('trained') else 'unchanged'}: {out['path']}\n{metrics}"
    )


@app.command()
def models(warehouse: WarehouseOpt = None, output: OutputOpt = "table") -> None:
    """List trained reward models."""
    from warehouse import models as registry

    show(_read(warehouse, registry.listing), title="models", output=output)


@app.command()
def export(
    curated_set: Annotated[str, typer.Argument(help="Curated set (name, name@version or id).")],
    path: Annotated[str, typer.Argument(help="Output file or folder.")],
    export_format: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="parquet, jsonl or hf (a DatasetDict folder, one split each)."
        ),
    ] = EXPORT.file_format,
    trl_format: Annotated[
        str,
        typer.Option(
            help="explicit (prompt text ending in a newline) or conversational (message lists)."
        ),
    ] = EXPORT.trl_format,
    margin_cap: Annotated[
        float, typer.Option(help="margin = min(logit(label), cap); a hard label gets the cap.")
    ] = EXPORT.margin_cap,
    warehouse: WarehouseOpt = None,
) -> None:
    """Export a curated set for TRL's RewardTrainer (with margin) plus our weight and label."""
    ExportConfig(file_format=export_format, trl_format=trl_format, margin_cap=margin_cap)
    _exists(warehouse, "curated set", curated_set)
    from flows.export import export_flow

    out = export_flow(
        curated_set=curated_set,
        path=path,
        fmt=export_format,
        trl_format=trl_format,
        margin_cap=margin_cap,
        warehouse=warehouse,
    )
    splits = ", ".join(out["splits"])
    console.print(
        f"{out['rows']} pairs ({splits}) -> {out['path']} ({out['format']}, {out['trl_format']})"
    )
    console.print(out["note"])


@app.command()
def ablation(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset with train and test splits.")
    ],
    name: Annotated[
        str, typer.Option(help="Report name (reports/<name>/).", callback=_name("report"))
    ] = "ablation",
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = ",".join(
        map(str, ABLATION.seeds)
    ),
    methods: Annotated[str, typer.Option(help="Comma-separated curation methods.")] = ",".join(
        ABLATION.methods
    ),
    reference_model: Annotated[
        str | None,
        typer.Option(help="Reward model for the free gaps (default: train a vanilla one)."),
    ] = None,
    prompts_per_pair: Annotated[
        int, typer.Option("--prompts-per-pair", "-m")
    ] = ABLATION.prompts_per_pair,
    epochs: Annotated[int, typer.Option()] = ABLATION.epochs,
    group_by: Annotated[
        str | None, typer.Option(help="Comma-separated provenance fields to report subsets by.")
    ] = None,
    test_split: Annotated[str, typer.Option()] = ABLATION.test_split,
    folds: Annotated[
        int,
        typer.Option(help="Cross-fitting folds of the reference model (< 2: one, in-sample)."),
    ] = ABLATION.cross_fit_folds,
    tune: Annotated[
        bool, typer.Option(help="Choose priority/filter parameters on the validation split.")
    ] = ABLATION.tune,
    reports: Annotated[str, typer.Option(help="Folder for reports.")] = ABLATION.reports_dir,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace models and a report folder this name made with other inputs.",
        ),
    ] = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Matched reward models per curation method and seed, benchmarked, with an HTML report."""
    _exists(warehouse, "dataset", dataset)
    from flows.pipeline import ablation_flow

    result = ablation_flow(
        dataset=dataset,
        name=name,
        seeds=[int(s) for s in seeds.split(",")],
        methods=methods.split(","),
        reference_model=reference_model,
        prompts_per_pair=prompts_per_pair,
        epochs=epochs,
        test_split=test_split,
        cross_fit_folds=folds,
        tune=tune,
        group_by=group_by.split(",") if group_by else None,
        warehouse=warehouse,
        reports_dir=reports,
        overwrite=overwrite,
    )
    _print_ablation(result)


def _print_ablation(result: dict) -> None:
    import polars as pl

    show(pl.DataFrame(result["summary"]), title="results (mean over seeds, 95% interval)")
    paired = pl.DataFrame(result["paired"])
    if paired.height:
        show(
            paired.select("metric", "method", "difference", "ci_low", "ci_high", "verdict"),
            title="paired difference vs vanilla (95% interval)",
        )
    for line in result["findings"]:
        console.print(f"- {line}")
    console.print(f"report: [bold]{result['report']}[/bold]")


@app.command()
def iterate(
    dataset: Annotated[str, typer.Option("--dataset", "-d")],
    name: Annotated[
        str,
        typer.Option(
            help="Prefix of the models and sets of each round.", callback=_name("iterate")
        ),
    ] = "iter",
    rounds: Annotated[
        int, typer.Option(help="Re-score / re-curate / retrain rounds after the first model.")
    ] = ITERATE.rounds,
    rule: Annotated[str, typer.Option()] = ITERATE.rule,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Rule parameter key=value; repeatable."),
    ] = None,
    prompts_per_pair: Annotated[
        int, typer.Option("--prompts-per-pair", "-m")
    ] = ABLATION.prompts_per_pair,
    epochs: Annotated[int, typer.Option()] = ABLATION.epochs,
    seed: Annotated[int, typer.Option()] = TRAIN.seed,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace models this name made with other inputs."),
    ] = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Train, re-score with the new model, re-curate, train again, for R rounds."""
    import polars as pl

    _exists(warehouse, "dataset", dataset)
    from flows.pipeline import iterate_flow

    history = iterate_flow(
        dataset=dataset,
        name=name,
        rounds=rounds,
        rule=rule,
        params=_params(param),
        prompts_per_pair=prompts_per_pair,
        epochs=epochs,
        seed=seed,
        warehouse=warehouse,
        overwrite=overwrite,
    )
    show(pl.DataFrame(history), title="rounds")


@app.command()
def rewardbench(
    source: Annotated[
        str,
        typer.Argument(
            help="RewardBench-format file or folder (prompt, chosen, rejected, subset), or a hub id."
        ),
    ],
    model: Annotated[str, typer.Option("--model", help="Reward model folder or hub id.")],
    v2: Annotated[
        bool,
        typer.Option("--v2", help="RewardBench 2 best-of-4 format (one chosen, three rejected)."),
    ] = False,
    device: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = "table",
) -> None:
    """Score a RewardBench-format file with the official aggregation."""
    from rmcore.evaluation import rewardbench as rb
    from rmcore.models.loading import load_scorer

    scorer = load_scorer(model, device=device)

    def score(prompts, responses):
        return scorer.score(list(prompts), list(responses)).numpy()

    frame = (rb.load_rewardbench2 if v2 else rb.load_rewardbench)(source)
    report = (rb.run_rewardbench2 if v2 else rb.run_rewardbench)(frame, score)
    show(
        report.table,
        title=f"RewardBench{' 2' if v2 else ''}: overall {report.overall:.4f}",
        output=output,
    )


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where data/, reports/ and the warehouse go.")
    ] = Path("."),
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 0,
    seeds: Annotated[
        str, typer.Option(help="Comma-separated training seeds of the ablation.")
    ] = ",".join(map(str, ABLATION.seeds)),
    warehouse: WarehouseOpt = None,
) -> None:
    """Run the whole pipeline on the embedded defaults (generated toy data, bundled model)."""
    env.make_home()
    from flows.demo import demo_flow

    result = demo_flow(
        workdir=str(workdir),
        seed=seed,
        seeds=[int(s) for s in seeds.split(",")],
        warehouse=warehouse,
    )
    _print_ingest(result["ingest"])
    _print_ablation(result)
    console.print(
        f'warehouse: {result["warehouse"]}  (try: rmcurate sql "{catalog.CURATED_PREVIEW_QUERY}")'
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
