"""Terminal output: rich tables, or CSV/JSON for scripts."""

from __future__ import annotations

import sys

import polars as pl
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def show(frame: pl.DataFrame, *, title: str | None = None, output: str = "table") -> None:
    if output == "csv":
        sys.stdout.write(frame.write_csv())
    elif output == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        table = Table(title=title, show_lines=False)
        for name in frame.columns:
            table.add_column(name, overflow="fold")
        for row in frame.iter_rows():
            table.add_row(
                *("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row)
            )
        console.print(table)
        console.print(f"[dim]{frame.height} row(s)[/dim]")
