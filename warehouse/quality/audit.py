"""The data-quality audit page: one self-contained HTML page per validation, and their index.

GX Data Docs take their styles, icons and scripts from CDNs (Bootstrap, Font Awesome,
jQuery, bootstrap-table): offline, the Data Docs home lists no validation runs (a script
fills that table) and every Status cell is an empty icon, so pass and fail look alike. These
pages are rendered from the validation result itself, with inline styles and no scripts:
each expectation's status is a word on a coloured cell, next to what it checks, what was
observed and a sample of the unexpected values. Per validation, under
`<reports>/quality/<run name>/`: `<time>.html` (the page), `<time>.md` (the same table in
markdown, for a Prefect artifact) and `<time>.json` (the line of the index). The index
(`<reports>/quality/index.html`) lists every validation written there, newest first.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

AUDIT_FOLDER = "quality"
INDEX = "index.html"
# Keys of an expectation's kwargs that name what it checks, not how (shown as the column).
_TARGET_KEYS = ("column", "column_list", "batch_id")
_SAMPLE = 5
# Status colours, also declared on <body> so a screenshot check can look for them.
PASS_COLOR, FAIL_COLOR = "#1a7f37", "#cf222e"


@dataclass(frozen=True)
class Check:
    """One expectation's outcome, as the page shows it."""

    expectation: str  # `expect_x[column]`, the name `dq_runs.failed` holds
    success: bool
    rule: str  # what it demands, from its kwargs
    observed: str
    unexpected: str  # a sample of the values that broke it


def expectation_name(kind: str, kwargs: dict[str, Any]) -> str:
    """`expect_x[column]`: readable, and stable enough to match on in tests and SQL."""
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    return f"{kind}[{target}]" if target else kind


def _rule(kwargs: dict[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if k not in _TARGET_KEYS}
    if isinstance(shown.get("row_condition"), dict):  # GX's parsed form of our pandas filter
        shown["row_condition"] = shown["row_condition"].get("pass_through_filter")
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in shown.items())


def _observed(result: dict[str, Any], exception: dict[str, Any]) -> str:
    if exception.get("raised_exception"):
        return f"error: {exception.get('exception_message')}"
    if "observed_value" in result:
        value = result["observed_value"]
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    if "unexpected_count" in result:
        n, bad = result.get("element_count", 0), result["unexpected_count"]
        share = result.get("unexpected_percent")
        return f"{bad:,} of {n:,} unexpected" + (f" ({share:.3g}%)" if share else "")
    return ""


def checks(result_json: dict[str, Any]) -> list[Check]:
    """The expectations of a validation result (`to_json_dict()` form), failures first."""
    out = []
    for r in result_json["results"]:
        config, result = r["expectation_config"], r.get("result") or {}
        sample = result.get("partial_unexpected_list") or []
        out.append(
            Check(
                expectation=expectation_name(config["type"], config["kwargs"]),
                success=bool(r["success"]),
                rule=_rule(config["kwargs"]),
                observed=_observed(result, r.get("exception_info") or {}),
                unexpected=", ".join(json.dumps(v, ensure_ascii=False) for v in sample[:_SAMPLE]),
            )
        )
    return sorted(out, key=lambda c: c.success)


@dataclass(frozen=True)
class AuditEntry:
    """One validation in the index."""

    batch: str
    checked_at: str  # ISO time of the validation
    success: bool
    n_expectations: int
    n_failed: int
    page: str  # relative to the audit folder


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328;max-width:1200px}
h1{font-size:1.5em} table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{border:1px solid #d0d7de;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa} td{overflow-wrap:anywhere} td.rule,td.sample{font-family:monospace}
table.checks{table-layout:fixed} td.status{font-weight:bold;text-align:center}
.pass{background:PASS_COLOR;color:#fff} .fail{background:FAIL_COLOR;color:#fff}
.banner{padding:.6em 1em;font-size:1.2em;font-weight:bold;display:inline-block}
.meta td:first-child{font-weight:bold;width:12em}
""".replace("PASS_COLOR", PASS_COLOR).replace("FAIL_COLOR", FAIL_COLOR)
_CHECK_COLUMNS = (
    '<colgroup><col style="width:5em"><col style="width:32%"><col style="width:27%">'
    '<col style="width:18%"><col></colgroup>'
)


def _page(title: str, body: str, attrs: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f'</title><style>{_STYLE}</style></head><body {attrs} data-pass-color="{PASS_COLOR}"'
        f' data-fail-color="{FAIL_COLOR}">{body}</body></html>\n'
    )


def _status_cell(success: bool) -> str:
    return (
        f'<td class="status {"pass" if success else "fail"}">{"PASS" if success else "FAIL"}</td>'
    )


def _check_rows(found: list[Check]) -> str:
    e = html.escape
    return "".join(
        f"<tr>{_status_cell(c.success)}<td>{e(c.expectation).replace('[', '<wbr>[')}</td>"
        f"<td class='rule'>{e(c.rule)}</td><td>{e(c.observed)}</td>"
        f"<td class='sample'>{e(c.unexpected)}</td></tr>"
        for c in found
    )


def _render_page(
    entry: AuditEntry, found: list[Check], meta: dict[str, str], data_docs: str | None
) -> str:
    e = html.escape
    verdict = "PASSED" if entry.success else "FAILED"
    passed = entry.n_expectations - entry.n_failed
    meta_rows = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in meta.items())
    body = (
        f"<h1>Data quality: {e(entry.batch)}</h1>"
        f'<p class="banner {"pass" if entry.success else "fail"}">{verdict}: {passed} of'
        f" {entry.n_expectations} expectations met</p>"
        f'<table class="meta">{meta_rows}</table>'
        f"<table class='checks'>{_CHECK_COLUMNS}<tr><th>Status</th><th>Expectation</th><th>Rule</th>"
        f"<th>Observed</th><th>Sample of unexpected values</th></tr>{_check_rows(found)}</table>"
        '<p><a href="../index.html">All data-quality checks</a></p>'
    )
    if data_docs:
        body += (
            "<p>This run in Great Expectations Data Docs (styled only when online):"
            f' <a href="{e(data_docs)}">{e(data_docs)}</a></p>'
        )
    attrs = (
        f'data-status="{"passed" if entry.success else "failed"}"'
        f' data-checks-passed="{passed}" data-checks-failed="{entry.n_failed}"'
    )
    return _page(f"Data quality: {entry.batch}", body, attrs)


def _markdown(entry: AuditEntry, found: list[Check], page: Path) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"**{'PASSED' if entry.success else 'FAILED'}**: {entry.n_expectations - entry.n_failed}"
        f" of {entry.n_expectations} expectations met for `{entry.batch}`",
        "",
        f"Audit page (open in a browser on this machine): `{page}`",
        "",
        "| status | expectation | rule | observed | unexpected sample |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {'PASS' if c.success else '**FAIL**'} | {cell(c.expectation)} | {cell(c.rule)}"
        f" | {cell(c.observed)} | {cell(c.unexpected)} |"
        for c in found
    ]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)


@contextmanager
def _index_lock(folder: Path) -> Iterator[None]:
    """One index writer at a time across processes: each lists every entry under the lock."""
    with (folder / ".index.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_index(folder: Path) -> Path:
    """`index.html` of the audit folder: every validation found there, newest first."""
    with _index_lock(folder):
        entries = [
            AuditEntry(**json.loads(p.read_text(encoding="utf-8"))) for p in folder.glob("*/*.json")
        ]
        entries.sort(key=lambda a: a.checked_at, reverse=True)
        e = html.escape
        rows = "".join(
            f"<tr>{_status_cell(a.success)}<td>{e(a.checked_at)}</td>"
            f'<td><a href="{e(a.page)}">{e(a.batch)}</a></td>'
            f"<td>{a.n_expectations - a.n_failed} of {a.n_expectations}</td></tr>"
            for a in entries
        )
        body = (
            "<h1>Data-quality checks</h1><table class='runs'><tr><th>Status</th>"
            f"<th>Checked at</th><th>Batch</th><th>Expectations met</th></tr>{rows}</table>"
            "<p>Great Expectations Data Docs (styled only when online):"
            ' <a href="../index.html">Data Docs home</a></p>'
        )
        index = folder / INDEX
        _write_atomic(index, _page("Data-quality checks", body, f'data-runs="{len(entries)}"'))
    return index


def write_audit(
    result_json: dict[str, Any],
    *,
    batch_name: str,
    run_name: str,
    reports_dir: Path,
    data_docs_page: Path | None,
) -> Path:
    """Write the audit page of one validation (and its markdown and index line), then
    refresh the index; returns the page."""
    found = checks(result_json)
    stats = result_json["statistics"]
    run_time = result_json["meta"]["run_id"]["run_time"]
    stamp = datetime.fromisoformat(run_time).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = reports_dir / AUDIT_FOLDER
    page = folder / run_name / f"{stamp}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    entry = AuditEntry(
        batch=batch_name,
        checked_at=run_time,
        success=bool(result_json["success"]),
        n_expectations=int(stats["evaluated_expectations"]),
        n_failed=int(stats["unsuccessful_expectations"]),
        page=page.relative_to(folder).as_posix(),
    )
    docs = os.path.relpath(data_docs_page, page.parent) if data_docs_page else None
    meta = {
        "batch": batch_name,
        "checked at": run_time,
        "suite": result_json["suite_name"],
        "rows": _row_count(result_json),
        "Great Expectations": result_json["meta"].get("great_expectations_version", "?"),
    }
    _write_atomic(page, _render_page(entry, found, meta, docs))
    _write_atomic(page.with_suffix(".md"), _markdown(entry, found, page))
    _write_atomic(page.with_suffix(".json"), json.dumps(asdict(entry)))
    write_index(folder)
    return page


def _row_count(result_json: dict[str, Any]) -> str:
    """The batch's row count, as the suite's row-count expectation observed it."""
    for r in result_json["results"]:
        if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between":
            value = (r.get("result") or {}).get("observed_value")
            return "?" if value is None else f"{value:,}"
    return "?"
