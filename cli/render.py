"""Terminal output: rich tables, or CSV/JSON for scripts."""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from warehouse.query import QueryResult

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
            table.add_column(Text(name), overflow="fold")
        # Cells as plain `Text`: a value such as "[/x]" is data, not rich markup.
        for row in frame.iter_rows():
            table.add_row(
                *(
                    Text("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
                    for v in row
                )
            )
        console.print(table)
        console.print(f"[dim]{frame.height} row(s)[/dim]")


def show_query(result: QueryResult, *, output: str = "table") -> None:
    """A user's query result (`rmcurate sql`): every column is already printable (see
    `warehouse.query`); in JSON, JSON-text columns are embedded as JSON, and NaN and the
    infinities, which JSON cannot hold, are written as the strings "NaN", "Infinity" and
    "-Infinity". A result cut at `--max-rows` says so on stderr."""
    frame = result.frame
    if output == "json":
        rows = [
            {k: _json_value(v, parse=k in result.json_columns) for k, v in row.items()}
            for row in frame.iter_rows(named=True)
        ]
        sys.stdout.write(
            json.dumps(rows, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
        )
    else:
        show(frame, output=output)
    if result.truncated:
        err_console.print(
            f"[yellow]showing the first {frame.height:,} rows; --max-rows N shows more"
            " (0: all)[/yellow]"
        )


def _json_value(value: Any, *, parse: bool) -> Any:
    if parse and isinstance(value, str):
        value = json.loads(value)  # DuckDB's to_json writes NaN/Infinity, which this accepts
    return _finite(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
