"""Terminal output: rich tables, or CSV/JSON for scripts.

Nothing printed is broken inside a word: a wrapped path or id cannot be copied. Lines are
printed unwrapped (the terminal folds them for the eye, a copy gets the whole line); a table
wraps cells only at spaces, keeps cells that look like paths on one line, and when it cannot
fit the terminal that way (80 columns when output is not a terminal) it is printed pivoted,
one `column: value` line per cell.
"""

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

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _is_path(text: str) -> bool:
    return "/" in text


def _widths(columns: list[str], rows: list[list[str]], room: int) -> list[int] | None:
    """Column widths that fit `room` with every word (every path) whole; None if none do.
    Each column gets its longest word, then a share of the rest in proportion to what it
    lacks of its longest line."""
    cells = [[name, *(r[i] for r in rows)] for i, name in enumerate(columns)]
    longest = [max(len(line) for c in col for line in c.splitlines() or [""]) for col in cells]
    shortest = [
        max(len(c) if _is_path(c) else max(map(len, c.split()), default=0) for c in col)
        for col in cells
    ]
    if sum(longest) <= room:
        return longest
    if sum(shortest) > room:
        return None
    spare, lack = room - sum(shortest), [a - b for a, b in zip(longest, shortest, strict=True)]
    return [b + spare * d // sum(lack) for b, d in zip(shortest, lack, strict=True)]


def _table(
    title: str | None, columns: list[str], rows: list[list[str]], widths: list[int]
) -> Table:
    table = Table(title=title, show_lines=False)
    for name, width in zip(columns, widths, strict=True):
        table.add_column(Text(name), width=width, overflow="fold")
    # Cells as plain `Text`: a value such as "[/x]" is data, not rich markup.
    for row in rows:
        table.add_row(*map(Text, row))
    return table


def _print_pivoted(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    """One `column: value` line per cell, one block per row: a wide table that stays copyable."""
    width = max(map(len, columns))
    if title:
        console.print(Text(title, style="italic"))
    for n, row in enumerate(rows, 1):
        console.print(Text(f"[{n}/{len(rows)}]", style="bold"))
        for name, value in zip(columns, row, strict=True):
            console.print(Text(f"  {name:<{width}}  {value}"))


def show(frame: pl.DataFrame, *, title: str | None = None, output: str = "table") -> None:
    if output == "csv":
        sys.stdout.write(frame.write_csv())
    elif output == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        columns = frame.columns
        rows = [[_cell(v) for v in row] for row in frame.iter_rows()]
        # Each column costs its padding and one border, plus the table's closing border.
        widths = _widths(columns, rows, console.width - 3 * len(columns) - 1)
        if widths is not None:
            console.print(_table(title, columns, rows, widths), soft_wrap=False)
        else:
            _print_pivoted(title, columns, rows)
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
