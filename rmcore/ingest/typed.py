"""A source's rows as a frame of declared field types, with a reason for each row that fails them.

CSV cells are text: a field read as a number is parsed from it (`read_number`), a cell that
does not parse fails its row as any wrong type does.

The native-schema adapters (rmcore.ingest.native) are polars expressions, so they need typed
columns. A source read column-wise already has them: a column is used when its type fits the
declared one (integers for a number, extra struct fields ignored, a missing struct field read
as null); a column of another type fails every row holding a value in it. Rows read one by one
(a JSON array, a file whose types change from row to row) are checked value by value, the one
Python loop here, and only on that slower path.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl

from rmcore.ingest.sources import RawRecords

_NUMERIC = (int, float)


def read_number(text: str) -> float | str | None:
    """A CSV cell holding a number, as the number (CSV has no types, so a field a format
    reads as a number is parsed); an empty cell is a null, other text stays text, to be
    refused as it is."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return text


def number_from_text(column: str) -> tuple[pl.Expr, pl.Expr]:
    """`read_number` over a text column: (the numbers, the cells that hold other text)."""
    cell = pl.col(column).str.strip_chars()
    number = pl.when(cell == "").then(None).otherwise(cell.cast(pl.Float64, strict=False))
    return number, (cell != "") & number.is_null()


def conforms(value: Any, dtype: pl.DataType) -> bool:
    """Whether a Python value reads as `dtype` (None always does: it is a null)."""
    if value is None:
        return True
    if dtype == pl.String:
        return isinstance(value, str)
    if dtype == pl.Float64:
        return isinstance(value, _NUMERIC) and not isinstance(value, bool)
    if dtype == pl.Boolean:
        return isinstance(value, bool)
    if isinstance(dtype, pl.List):
        return isinstance(value, list) and all(conforms(v, dtype.inner) for v in value)
    if isinstance(dtype, pl.Struct):
        return isinstance(value, dict) and all(
            conforms(value.get(f.name), f.dtype) for f in dtype.fields
        )
    raise TypeError(f"no conformance rule for {dtype}")


def fits(actual: pl.DataType, wanted: pl.DataType) -> bool:
    """Whether a column of type `actual` can be read as `wanted` without loss."""
    if actual == pl.Null:
        return True
    if wanted == pl.Float64:
        return actual.is_numeric()
    if isinstance(wanted, pl.List):
        return isinstance(actual, pl.List | pl.Array) and fits(actual.inner, wanted.inner)
    if isinstance(wanted, pl.Struct):
        have = {f.name: f.dtype for f in actual.fields} if isinstance(actual, pl.Struct) else None
        return have is not None and all(
            fits(have[f.name], f.dtype) for f in wanted.fields if f.name in have
        )
    return actual == wanted


def _coerce(expr: pl.Expr, actual: pl.DataType, wanted: pl.DataType) -> pl.Expr:
    if isinstance(wanted, pl.Struct) and isinstance(actual, pl.Struct):
        have = {f.name: f.dtype for f in actual.fields}
        return pl.struct(
            *(
                _coerce(expr.struct.field(f.name), have[f.name], f.dtype).alias(f.name)
                if f.name in have
                else pl.lit(None, dtype=f.dtype).alias(f.name)
                for f in wanted.fields
            )
        )
    if isinstance(wanted, pl.List) and isinstance(actual, pl.List | pl.Array):
        inner = expr.arr.to_list() if isinstance(actual, pl.Array) else expr
        return inner.list.eval(_coerce(pl.element(), actual.inner, wanted.inner))
    return expr.cast(wanted)


def describe(dtype: pl.DataType) -> str:
    if dtype == pl.String:
        return "a string"
    if dtype == pl.Float64:
        return "a number"
    if dtype == pl.Boolean:
        return "true or false"
    if isinstance(dtype, pl.List):
        return f"a list of {describe(dtype.inner).removeprefix('a ').removeprefix('an ')}s"
    if isinstance(dtype, pl.Struct):
        return "{" + ", ".join(f"{f.name}: {describe(f.dtype)}" for f in dtype.fields) + "}"
    return str(dtype)


def _from_table(
    table: pl.DataFrame, fields: dict[str, pl.DataType], texts: frozenset[str], csv: bool
) -> pl.DataFrame:
    columns, wrong = [], []
    for name, dtype in fields.items():
        actual = table.schema.get(name)
        if actual is None:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
        elif csv and actual == pl.String and dtype == pl.Float64:
            number, unparsed = number_from_text(name)
            columns.append(number.alias(name))
            wrong.append((unparsed, "wrong_type", f"field {name!r} must be a number"))
        elif fits(actual, dtype):
            columns.append(_coerce(pl.col(name), actual, dtype).alias(name))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
            wrong.append(
                (
                    pl.col(name).is_not_null(),
                    "wrong_type",
                    f"field {name!r} must be {describe(dtype)}",
                )
            )
    extra = [c for c in table.columns if c not in texts and c != "split"]
    split = pl.col("split") if "split" in table.columns else pl.lit(None)
    frame = table.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
        *columns,
        split.alias("_split"),
        (pl.struct(extra).struct.json_encode() if extra else pl.lit(None, dtype=pl.String)).alias(
            "_extras"
        ),
        *first_failure(wrong),
    )
    return frame


def first_failure(checks: list[tuple[pl.Expr, str, Any]]) -> list[pl.Expr]:
    """(`_reason`, `_message`): the first of (condition, reason code, message) that holds for
    a row, null when none does."""
    reason = pl.when(False).then(pl.lit(None, dtype=pl.String))
    message = pl.when(False).then(pl.lit(None, dtype=pl.String))
    for cond, code, text in checks:
        hit = cond.fill_null(False)
        reason = reason.when(hit).then(pl.lit(code))
        message = message.when(hit).then(pl.lit(text) if isinstance(text, str) else text)
    return [reason.alias("_reason"), message.alias("_message")]


def _from_records(
    raw: RawRecords, fields: dict[str, pl.DataType], texts: frozenset[str], csv: bool
) -> pl.DataFrame:
    rows = [(i, r) for i, r in enumerate(raw.records) if r is not None]
    reasons: list[str | None] = [None] * len(rows)
    columns: dict[str, list] = {}
    for name, dtype in fields.items():
        values = []
        for k, (_, rec) in enumerate(rows):
            value = rec.get(name)
            if csv and dtype == pl.Float64 and isinstance(value, str):
                value = read_number(value)
            if conforms(value, dtype):
                values.append(value)
                continue
            values.append(None)
            reasons[k] = reasons[k] or f"field {name!r} must be {describe(dtype)}"
        columns[name] = values
    extras = []
    for _, rec in rows:
        extra = {k: v for k, v in rec.items() if k not in texts and k != "split"}
        extras.append(
            orjson.dumps(extra, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
            if extra
            else None
        )
    splits = [rec.get("split") for _, rec in rows]
    return pl.DataFrame(
        {
            "_row": pl.Series([i for i, _ in rows], dtype=pl.Int64),
            **{n: pl.Series(n, v, dtype=fields[n], strict=False) for n, v in columns.items()},
            "_split": pl.Series(
                [
                    s if isinstance(s, str) or s is None else orjson.dumps(s).decode()
                    for s in splits
                ],
                dtype=pl.String,
            ),
            "_split_ok": pl.Series([s is None or isinstance(s, str) for s in splits]),
            "_extras": pl.Series(extras, dtype=pl.String),
            "_reason": pl.Series(["wrong_type" if r else None for r in reasons], dtype=pl.String),
            "_message": pl.Series(reasons, dtype=pl.String),
        }
    )


def typed_frame(
    raw: RawRecords,
    fields: dict[str, pl.DataType],
    required: tuple[str, ...],
    texts: frozenset[str],
) -> pl.DataFrame:
    """`_row` (source row), the fields, `_split` (the row's split, null when it has none),
    `_extras` (provenance JSON of the non-text keys), and `_reason`/`_message` for the rows
    that fail a type or miss a required field. Rows that never parsed are not in it."""
    csv = raw.kind == "csv"
    if raw.table is not None:
        frame = _from_table(raw.table, fields, texts, csv)
        split_type = raw.table.schema.get("split")
        bad_split = split_type not in (None, pl.Null, pl.String)
        frame = frame.with_columns(
            (pl.col("_split").is_null() | (not bad_split)).alias("_split_ok"),
            (
                pl.lit(None, dtype=pl.String) if bad_split else pl.col("_split").cast(pl.String)
            ).alias("_split"),
        )
    else:
        frame = _from_records(raw, fields, texts, csv)
    reason, message = pl.col("_reason"), pl.col("_message")
    for name in required:
        missing = reason.is_null() & pl.col(name).is_null()
        reason = pl.when(missing).then(pl.lit("missing_field")).otherwise(reason)
        message = (
            pl.when(missing).then(pl.lit(f"field {name!r} is missing or null")).otherwise(message)
        )
    bad_split = reason.is_null() & ~pl.col("_split_ok")
    return frame.with_columns(
        pl.when(bad_split).then(pl.lit("invalid_split")).otherwise(reason).alias("_reason"),
        pl.when(bad_split)
        .then(pl.lit("split must be a string"))
        .otherwise(message)
        .alias("_message"),
    ).drop("_split_ok")
