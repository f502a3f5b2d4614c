"""The layering rules of docs/ARCHITECTURE.md, checked on the source tree itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("rmcore", "tasks", "flows", "cli", "warehouse", "benchmarks", "scripts")
SQL = re.compile(
    r"\b(SELECT\b[\s\S]*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|CREATE\s+(OR\s+REPLACE\s+)?"
    r"(TABLE|VIEW|INDEX|SEQUENCE|MACRO)|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b"
)


def _sources(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal, f-string parts joined (placeholders as `?`)."""
    joined = [n for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)]
    parts = {id(v) for n in joined for v in n.values}
    out = [
        (n.lineno, "".join(v.value if isinstance(v, ast.Constant) else "?" for v in n.values))
        for n in joined
    ]
    out += [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in parts
    ]
    return out


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_sql_lives_in_warehouse_only() -> None:
    offenders = [
        f"{_rel(p)}:{line}"
        for p in _sources(*(d for d in CODE_DIRS if d != "warehouse"))
        for line, text in _strings(ast.parse(p.read_text()))
        if SQL.search(text)
    ]
    assert offenders == [], "SQL outside warehouse/: " + ", ".join(offenders)


def test_the_sql_check_catches_sql() -> None:
    code = 'q = "SELECT a FROM t"\nr = f"INSERT INTO {t} VALUES (?)"\ns = "select the model"\n'
    hits = [text for _, text in _strings(ast.parse(code)) if SQL.search(text)]
    assert len(hits) == 2


def _importing(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{_rel(p)} imports {name}"
        for p in paths
        for name in sorted(_imports(ast.parse(p.read_text())))
        if name.split(".")[0] in forbidden or any(name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(
    ("dirs", "exclude", "forbidden"),
    [
        (("rmcore",), "rmcore/stages/", ("prefect", "warehouse", "tasks", "flows", "cli")),
        (("rmcore/stages",), None, ("prefect", "tasks", "flows", "cli")),
        (("warehouse",), None, ("prefect", "tasks", "flows", "cli", "rmcore.stages")),
        (("tasks",), None, ("warehouse", "flows", "cli")),
        (("flows",), None, ("warehouse", "rmcore.stages", "cli")),
    ],
)
def test_layers_import_downwards(dirs, exclude, forbidden) -> None:
    paths = [p for p in _sources(*dirs) if not (exclude and _rel(p).startswith(exclude))]
    assert paths
    assert _importing(paths, forbidden) == []


def test_tasks_are_thin() -> None:
    long = {_rel(p): n for p in _sources("tasks") if (n := len(p.read_text().splitlines())) > 150}
    assert long == {}


def test_no_fmt_skip_markers() -> None:
    marker = "fmt: " + "skip"
    marked = [_rel(p) for p in _sources(*CODE_DIRS, "tests") if marker in p.read_text()]
    assert marked == []
