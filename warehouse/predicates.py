"""User predicates (`rmcurate curate --where`, the ablation's train predicate): checked with
DuckDB's own parser, then applied to rows that are already scoped, so no text can widen the
scope.

A predicate is accepted when `SELECT * FROM <view> WHERE <predicate>` parses (DuckDB's
`json_serialize_sql`) as exactly one plain SELECT whose only difference from
`SELECT * FROM <view> WHERE TRUE` is the WHERE expression: so no second statement, no set
operation (UNION, EXCEPT, ...), no ORDER BY / LIMIT / GROUP BY / QUALIFY tail, no unbalanced
parenthesis (`1=1) OR (1=1` is a syntax error there). The expression itself may not hold a
subquery or a `$n` parameter, may name only the view's columns, and must be BOOLEAN.

The accepted text is then placed in `SELECT ... FROM (<scope>) AS scoped WHERE (\\n<p>\\n)`, where
`<scope>` fixes the dataset (and scoring run) with bound parameters, and that whole statement is
parsed again and compared with the template: the statement that runs is the template with the
user's expression as its outer WHERE, nothing else. The caller still runs it on a read-only,
sandboxed connection (no writes, no file or network access).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import polars as pl

from rmcore.errors import InvalidArgument, QueryError
from warehouse.connection import frame

_SHOWN = 120  # characters of a predicate quoted back in a message


def _shown(predicate: str) -> str:
    text = predicate if len(predicate) <= _SHOWN else predicate[:_SHOWN] + "..."
    return repr(text)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _strip(node: Any) -> Any:
    """A parse tree without source positions, so trees of different texts compare."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if not k.startswith("query_location")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> dict:
    (text,) = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    return json.loads(text)


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> list[str]:
    """The columns a predicate over `view` may name, in the view's order."""
    return [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]  # our view name


def _statement(con: duckdb.DuckDBPyConnection, sql: str, predicate: str, offset: int) -> dict:
    """The one SELECT statement `sql` parses to; `offset` is where the predicate starts in
    `sql`, so a syntax error points into the user's text."""
    tree = _parse(con, sql)
    if tree.get("error"):
        message = tree.get("error_message", "cannot be parsed")
        if message.startswith("Only SELECT statements"):  # `p; DROP ...`: a second statement
            raise InvalidArgument(
                f"predicate {_shown(predicate)} holds more than one statement; give one SQL"
                " boolean expression (no ';')"
            )
        position = tree.get("position")
        where = ""
        if position is not None and str(position).isdigit():
            where = f" at character {max(0, int(position) - offset) + 1}"
        raise InvalidArgument(
            f"predicate {_shown(predicate)}: {message}{where}; give one SQL boolean expression,"
            " e.g. \"split = 'train' AND ess >= 4\""
        )
    statements = tree["statements"]
    if len(statements) != 1:
        raise InvalidArgument(
            f"predicate {_shown(predicate)} holds {len(statements)} statements; give one SQL"
            " boolean expression (no ';')"
        )
    return _strip(statements[0]["node"])


def _walk(node: Any, found: list[dict]) -> None:
    if isinstance(node, dict):
        if "class" in node:
            found.append(node)
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def _refused(kind: str, predicate: str) -> InvalidArgument:
    return InvalidArgument(
        f"predicate {_shown(predicate)} uses {kind}; give one boolean expression over the"
        " view's own columns"
    )


def _check_expression(
    expression: dict, predicate: str, view: str, columns: list[str], hints: dict[str, str]
) -> None:
    nodes: list[dict] = []
    _walk(expression, nodes)
    lambda_params = set()
    for node in nodes:
        if node["class"] == "SUBQUERY":
            raise _refused("a subquery", predicate)
        if node["class"] == "PARAMETER":
            raise _refused("a $ parameter", predicate)
        if node["class"] == "LAMBDA":
            params: list[dict] = []
            _walk(node.get("lhs"), params)
            lambda_params |= {
                p["column_names"][0].lower() for p in params if p["class"] == "COLUMN_REF"
            }
    known = {c.lower() for c in columns}
    for node in nodes:
        if node["class"] != "COLUMN_REF":
            continue
        first = node["column_names"][0]
        if first.lower() not in known and first.lower() not in lambda_params:
            name = ".".join(node["column_names"])
            raise InvalidArgument(
                f"predicate {_shown(predicate)}: unknown column {name!r}"
                f"{hints.get(first.lower(), '')}; {view} has: " + ", ".join(columns)
            )


def check_predicate(
    con: duckdb.DuckDBPyConnection,
    predicate: str,
    view: str,
    *,
    hints: dict[str, str] | None = None,
) -> dict:
    """Refuse (`InvalidArgument`, one line) anything but a single BOOLEAN expression over
    `view`'s columns; returns its parse tree (without positions). `hints[column]` is added
    to the message when that unknown column is named."""
    if not isinstance(predicate, str) or not predicate.strip():
        raise InvalidArgument(
            "the predicate is empty; give one SQL boolean expression, e.g. \"split = 'train'\""
            " (TRUE selects every pair)"
        )
    columns = view_columns(con, view)
    prefix = f"SELECT * FROM {view} WHERE "
    node = _statement(con, prefix + predicate, predicate, len(prefix))
    template = _statement(con, prefix + "TRUE", "TRUE", len(prefix))
    expression = node.get("where_clause")
    if node.get("type") != "SELECT_NODE" or expression is None:
        raise _refused("a set operation (UNION, EXCEPT, INTERSECT)", predicate)
    if {**node, "where_clause": None} != {**template, "where_clause": None}:
        raise _refused("a clause after the expression (ORDER BY, LIMIT, GROUP BY, ...)", predicate)
    _check_expression(expression, predicate, view, columns, hints or {})
    # Bind without running: unknown functions, aggregates or windows in WHERE, and the type.
    wrapped = f"(\n{predicate}\n)"
    try:
        kinds = con.execute(
            f"DESCRIBE SELECT {wrapped} AS keep FROM {view} WHERE {wrapped}"
        ).fetchall()
    except duckdb.Error as err:
        raise InvalidArgument(f"predicate {_shown(predicate)}: {_first_line(err)}") from err
    kind = kinds[0][1] if kinds else "?"
    if kind != "BOOLEAN":
        raise InvalidArgument(
            f"predicate {_shown(predicate)} is of type {kind}, not BOOLEAN; compare it with"
            ' something, e.g. "ess >= 4"'
        )
    return expression


def scoped_select(
    con: duckdb.DuckDBPyConnection,
    *,
    select: str,
    scope: str,
    predicate: str,
    expression: dict,
    order_by: str,
) -> str:
    """`SELECT <select> FROM (<scope>) AS scoped WHERE (<predicate>) ORDER BY <order_by>`,
    after checking that this text parses to exactly that template with `expression` (the
    predicate's tree from `check_predicate`) as the outer WHERE and nothing else changed.
    `select`, `scope` and `order_by` come from our code; the scope's values are bound."""
    head = f"SELECT {select} FROM ({scope}) AS scoped WHERE (\n"
    tail = f"\n) ORDER BY {order_by}"
    node = _statement(con, head + predicate + tail, predicate, len(head))
    template = _statement(con, head + "TRUE" + tail, "TRUE", len(head))
    same_frame = {**node, "where_clause": None} == {**template, "where_clause": None}
    if not same_frame or node.get("where_clause") != expression:
        raise InvalidArgument(
            f"predicate {_shown(predicate)} changes the query around it; give one SQL boolean"
            " expression"
        )
    return head + predicate + tail


def select_where(
    con: duckdb.DuckDBPyConnection,
    *,
    view: str,
    select: str,
    scope: str,
    params: list,
    predicate: str,
    order_by: str,
    hints: dict[str, str] | None = None,
) -> pl.DataFrame:
    """The rows of `scope` (a SELECT over `view` with bound `params`) that the user's
    `predicate` keeps, checked first (`check_predicate`, `scoped_select`); a predicate that
    fails while running (a bad cast, say) is a `QueryError`."""
    expression = check_predicate(con, predicate, view, hints=hints)
    sql = scoped_select(
        con,
        select=select,
        scope=scope,
        predicate=predicate,
        expression=expression,
        order_by=order_by,
    )
    try:
        return frame(con, sql, params)
    except duckdb.Error as err:
        raise QueryError(f"predicate {_shown(predicate)} failed: {_first_line(err)}") from err
