"""The `rmcurate` command line: one command per stage, plus read-only views of the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import env

env.configure()

from cli.render import console, err_console, show  # noqa: E402

app = typer.Typer(
    name="rmcurate",
    help="Curate reward-model preference data: ingest -> score -> curate -> train -> benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

WarehouseOpt = Annotated[
    str | None,
    typer.Option(
        "--warehouse",
        "-w",
        help="DuckDB file (default: $RMCURATE_WAREHOUSE or ./data/rmcurate.duckdb).",
    ),
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table, csv or json.")]


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/bold red] {message}")
    raise typer.Exit(code)


def _read(warehouse: str | None, fn, *args, sandboxed: bool = False):
    """Run a read query, turning a missing file or a held lock into a one-line error."""
    import duckdb

    from warehouse.connection import WarehouseBusy, WarehouseMissing, reader

    try:
        with reader(
            warehouse,
            sandboxed=sandboxed,
            on_wait=lambda m: err_console.print(f"[yellow]{m}[/yellow]"),
        ) as con:
            return fn(con, *args)
    except (WarehouseBusy, WarehouseMissing, LookupError) as err:
        _fail(str(err))
    except duckdb.Error as err:
        _fail(f"{type(err).__name__}: {err}")


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="File (jsonl, jsonl.gz, json, parquet, csv), HF save_to_disk folder, or hub id."
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="explicit, implicit, conversational, annotated or ranked (default: detect).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the file name).")] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Source kind: jsonl, json, parquet, csv, hf-disk, hf-hub (default: detect)."
        ),
    ] = None,
    ranked_mode: Annotated[
        str, typer.Option(help="Ranked lists: best-vs-worst or all-pairs.")
    ] = "best-vs-worst",
    split: Annotated[str, typer.Option(help="Split for rows that carry none.")] = "train",
    max_chars: Annotated[
        int, typer.Option(help="Texts longer than this are quarantined.")
    ] = 100_000,
    reports: Annotated[str, typer.Option(help="Folder for data-quality reports.")] = "reports",
    warehouse: WarehouseOpt = None,
) -> None:
    """Validate a source and store it; bad rows go to quarantine with a reason."""
    from flows.ingest import QualityFailed, ingest_flow
    from rmcore.ingest.formats import FormatError
    from rmcore.ingest.sources import SourceError
    from warehouse.connection import WarehouseBusy

    try:
        summary = ingest_flow(source=source, name=name, fmt=fmt, kind=kind, warehouse=warehouse, reports_dir=reports,
                              ranked_mode=ranked_mode, default_split=split, max_chars=max_chars)  # fmt: skip
    except (SourceError, FormatError, WarehouseBusy, QualityFailed) as err:
        _fail(str(err), 1)
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
    """List dataset versions with counts, quarantine counts and quality status."""
    from warehouse import catalog

    show(_read(warehouse, catalog.datasets), title="datasets", fmt=output)


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
    from warehouse import catalog

    def query(con):
        ds = catalog.resolve_dataset(con, dataset) if dataset else None
        return (
            catalog.quarantine_counts(con, ds)
            if summary
            else catalog.quarantine(con, ds, reason, limit)
        )

    show(_read(warehouse, query), title="quarantine", fmt=output)


@app.command()
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help='A read-only query, e.g. "SELECT split, count(*) FROM pairs GROUP BY 1".'
        ),
    ],
    warehouse: WarehouseOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Query the warehouse read-only; writes and file access are refused."""
    from warehouse import catalog

    show(_read(warehouse, catalog.run_query, query, sandboxed=True), fmt=output)


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where data/, reports/ and the warehouse go.")
    ] = Path("."),
    seed: Annotated[int, typer.Option(help="Seed for the generated data and every stage.")] = 0,
    warehouse: WarehouseOpt = None,
) -> None:
    """Run the whole pipeline on the embedded defaults (generated toy data, bundled model)."""
    from flows.demo import demo_flow

    result = demo_flow(workdir=str(workdir), seed=seed, warehouse=warehouse)
    _print_ingest(result["ingest"])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
