"""Audit reports for an ablation: an HTML page with tables and figures, and a markdown summary.

Everything shown is computed from the frames passed in (benchmark rows, per-pair test
predictions, the scored training pairs), so a reader can recompute any number from the
warehouse. The summary grid shows means over seeds with 95% t-intervals; comparisons with
the baseline method come from the paired rows (`rmcore.stages.evidence`: test prompts
resampled, seed spread added), and only those decide "better" / "worse".
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by flows and CI, never shown

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from rmcore.config import BASELINE
from rmcore.evaluation.evaluate import both_orientations
from rmcore.evaluation.metrics import calibration_curve, mean_ci_over_seeds
from rmcore.evaluation.paired import verdict
from rmcore.evaluation.specs import HEADLINE, SPECS, MetricSpec

SUMMARY_SCHEMA = {
    "benchmark": pl.Utf8,
    "subset": pl.Utf8,
    "metric": pl.Utf8,
    "title": pl.Utf8,
    "method": pl.Utf8,
    "seeds": pl.Int64,
    "mean": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}


def summary_table(results: pl.DataFrame, specs: Sequence[MetricSpec] = HEADLINE) -> pl.DataFrame:
    """One row per metric spec and method, keyed by (benchmark, subset, metric) with the
    display title alongside: mean over seeds with a 95% interval."""
    rows = []
    for spec in specs:
        sel = results.filter(
            (pl.col("benchmark") == spec.benchmark)
            & (pl.col("subset") == spec.subset)
            & (pl.col("metric") == spec.metric)
        )
        for method in sel["method"].unique(maintain_order=True).to_list():
            values = (
                sel.filter(pl.col("method") == method)["value"].drop_nans().drop_nulls().to_numpy()
            )
            if values.size == 0:
                continue
            mean, lo, hi = mean_ci_over_seeds(values)
            rows.append(
                {
                    "benchmark": spec.benchmark,
                    "subset": spec.subset,
                    "metric": spec.metric,
                    "title": spec.title,
                    "method": method,
                    "seeds": int(values.size),
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA)


def display_summary(summary: pl.DataFrame) -> pl.DataFrame:
    """The summary as people read it: the title in the `metric` column, no key columns."""
    return summary.select(
        pl.col("title").alias("metric"), "method", "seeds", "mean", "ci_low", "ci_high"
    )


def _cell(mean: float, lo: float | None, hi: float | None) -> str:
    if mean is None or np.isnan(mean):
        return "-"
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def grid(summary: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Metric x method: one row per metric title, one column per method or baseline (in
    `columns` order), each cell "mean [95% interval over seeds]" (one value for a baseline)."""
    titles = summary["title"].unique(maintain_order=True).to_list()
    cells = {(r["title"], r["method"]): r for r in summary.iter_rows(named=True)}
    present = [c for c in columns if any((t, c) in cells for t in titles)]
    rows = []
    for title in titles:
        row = {"metric": title}
        for c in present:
            r = cells.get((title, c))
            row[c] = _cell(r["mean"], r["ci_low"], r["ci_high"]) if r else "-"
        rows.append(row)
    return pl.DataFrame(rows, schema={"metric": pl.Utf8} | {c: pl.Utf8 for c in present})


def title_of(benchmark: str, subset: str, metric: str) -> tuple[str, bool | None]:
    """(display title, higher_is_better) of a key; keys without a spec (e.g. a bias cell
    named after a provenance field) show as `subset metric`, higher better for accuracy."""
    spec = SPECS.get((benchmark, subset, metric))
    if spec is not None:
        return spec.title, spec.higher_is_better
    return f"{subset} {metric}", True if metric == "accuracy" else None


PAIRED_SCHEMA = {
    "metric": pl.Utf8,
    "method": pl.Utf8,
    "difference": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "verdict": pl.Utf8,
}


def paired_summary(results: pl.DataFrame) -> pl.DataFrame:
    """The `paired:*` rows (method - baseline, paired interval) with titles and verdicts,
    in HEADLINE order, then any other keys (bias cells)."""
    paired = results.filter(pl.col("benchmark").str.starts_with("paired:"))
    order = {spec.key: i for i, spec in enumerate(HEADLINE)}
    rows = []
    for r in paired.iter_rows(named=True):
        key = (r["benchmark"].removeprefix("paired:"), r["subset"], r["metric"])
        title, higher = title_of(*key)
        rows.append(
            (
                order.get(key, len(order)),
                {
                    "metric": title,
                    "method": r["method"],
                    "difference": r["value"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "verdict": verdict(
                        r["ci_low"] if r["ci_low"] is not None else np.nan,
                        r["ci_high"] if r["ci_high"] is not None else np.nan,
                        higher,
                    ),
                },
            )
        )
    rows.sort(key=lambda x: x[0])
    return pl.DataFrame([r for _, r in rows], schema=PAIRED_SCHEMA)


def paired_grid(paired: pl.DataFrame) -> pl.DataFrame:
    """Metric x method of the paired differences: "+0.012 [-0.003, 0.027] no clear difference"."""
    methods = paired["method"].unique(maintain_order=True).to_list()
    titles = paired["metric"].unique(maintain_order=True).to_list()
    cells = {(r["metric"], r["method"]): r for r in paired.iter_rows(named=True)}
    rows = []
    for title in titles:
        row = {"metric": title}
        for m in methods:
            r = cells.get((title, m))
            row[m] = (
                f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] {r['verdict']}"
                if r and r["ci_low"] is not None and not np.isnan(r["ci_low"])
                else "-"
            )
        rows.append(row)
    return pl.DataFrame(rows, schema={"metric": pl.Utf8} | {m: pl.Utf8 for m in methods})


def findings(paired: pl.DataFrame, baseline: str = BASELINE) -> list[str]:
    """One sentence per (metric, method) whose paired interval excludes 0, whatever it shows
    (calibration regressions included), then one sentence per method naming the metrics with
    no clear difference. Nothing is called better or worse on overlapping evidence."""
    lines = []
    for r in paired.filter(pl.col("verdict") != "no clear difference").iter_rows(named=True):
        lines.append(
            f"{r['method']} vs {baseline} on {r['metric']}: {r['difference']:+.3f}"
            f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] ({r['verdict']})."
        )
    for method in paired["method"].unique(maintain_order=True).to_list():
        flat = paired.filter(
            (pl.col("method") == method) & (pl.col("verdict") == "no clear difference")
        )["metric"].to_list()
        if flat:
            lines.append(
                f"{method} vs {baseline}: no clear difference (the 95% paired interval includes 0)"
                f" on {', '.join(flat)}."
            )
    return lines


# ----------------------------------------------------------------------------- figures
def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


PRIMARY = (  # the metrics a response-only shortcut cannot win; the paired figure shows these
    ("preference", "bias_balanced", "accuracy"),
    ("preference", "response_only_wrong", "accuracy"),
    ("preference", "all", "accuracy"),
)
FIGSIZE = (7.0, 4.2)  # every figure: the same size, shown at the same width


def fig_free_gap_hist(scored: pl.DataFrame, path: Path) -> str:
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.hist(scored["free_gap"].to_numpy(), bins=50, color="#4c72b0")
    ax.axvline(0, color="k", lw=0.8)
    ax.set(
        xlabel="prompt-free gap (reference model)",
        ylabel="pairs",
        title="Distribution of prompt-free gaps",
    )
    return _save(fig, path)


def fig_free_vs_length(scored: pl.DataFrame, length_col: str, path: Path) -> str:
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.scatter(
        scored[length_col].to_numpy(),
        scored["free_gap"].to_numpy(),
        s=4,
        alpha=0.4,
        color="#dd8452",
    )
    ax.axhline(0, color="k", lw=0.6)
    ax.set(
        xlabel=f"length difference, chosen - rejected ({length_col})",
        ylabel="prompt-free gap",
        title="Free gap against length difference",
    )
    return _save(fig, path)


def fig_accuracy(results: pl.DataFrame, path: Path) -> str:
    panels = [
        ("preference", "all", "held-out"),
        ("preference", "bias_balanced", "balanced"),
        ("preference", "response_only_wrong", "r(y) wrong"),
        ("preference", "winner_shorter", "winner\nshorter"),
        ("preference", "winner_longer", "winner\nlonger"),
        ("prompt_swap", "all", "prompt swap"),
    ]
    results = results.filter(
        ~pl.col("benchmark").str.starts_with("paired:")
        & ~pl.col("method").str.starts_with("baseline:")
    )
    methods = results["method"].unique(maintain_order=True).to_list()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    width = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
        means, errs = [], []
        for benchmark, subset, _ in panels:
            v = (
                results.filter(
                    (pl.col("method") == method)
                    & (pl.col("benchmark") == benchmark)
                    & (pl.col("subset") == subset)
                    & (pl.col("metric") == "accuracy")
                )["value"]
                .drop_nans()
                .to_numpy()
            )
            m, lo, hi = mean_ci_over_seeds(v) if v.size else (np.nan, np.nan, np.nan)
            means.append(m)
            errs.append(0.0 if np.isnan(lo) else (hi - lo) / 2)
        ax.bar(np.arange(len(panels)) + j * width, means, width, yerr=errs, capsize=3, label=method)
    ax.set_xticks(np.arange(len(panels)) + width * (len(methods) - 1) / 2, [p[2] for p in panels])
    ax.set(
        ylim=(0, 1), ylabel="accuracy", title="Accuracy by benchmark and method (95% CI over seeds)"
    )
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def fig_paired(paired: pl.DataFrame, path: Path) -> str:
    """Paired differences vs the baseline with their intervals, one row per (metric, method)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    primary = {SPECS[k].title for k in PRIMARY}
    acc = paired.filter(pl.col("ci_low").is_not_nan() & pl.col("metric").is_in(primary))
    labels = [f"{r['method']}: {r['metric']}" for r in acc.iter_rows(named=True)]
    y = np.arange(acc.height)[::-1]
    d = acc["difference"].to_numpy()
    err = np.stack([d - acc["ci_low"].to_numpy(), acc["ci_high"].to_numpy() - d])
    colors = [{"better": "#2a9d58", "worse": "#c0392b"}.get(v, "#777777") for v in acc["verdict"]]
    for color in set(colors):  # errorbar takes one colour per call
        sel = np.array([c == color for c in colors])
        ax.errorbar(d[sel], y[sel], xerr=err[:, sel], fmt="o", ms=4, color=color, capsize=2)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set(xlabel="method - baseline (95% paired interval)", title="Paired differences vs vanilla")
    return _save(fig, path)


def fig_calibration(preds: pl.DataFrame, path: Path) -> str:
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.plot([0, 1], [0, 1], color="k", lw=0.6, ls=":")
    for method in preds["method"].unique(maintain_order=True).to_list():
        sel = preds.filter(pl.col("method") == method)
        curve = calibration_curve(
            *both_orientations(sel["gap"].to_numpy(), sel["label"].to_numpy())
        )
        ok = curve.counts > 0
        ax.plot(curve.mean_predicted[ok], curve.mean_observed[ok], marker="o", ms=3, label=method)
    ax.set(
        xlabel="predicted P(chosen wins)",
        ylabel="observed (soft label)",
        title="Calibration on held-out pairs",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


# ----------------------------------------------------------------------------- pages
def _table_html(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{v:.4f}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _table_md(frame: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.iter_rows()
    ]
    return "\n".join(lines)


def write_report(
    out_dir: Path,
    *,
    title: str,
    meta: dict,
    summary: pl.DataFrame,
    results: pl.DataFrame,
    preds: pl.DataFrame,
    scored: pl.DataFrame | None,
    length_col: str = "length_diff_chars",
    findings: Sequence[str] = (),
    paired: pl.DataFrame | None = None,
    columns: Sequence[str] = (),
    tables: dict[str, pl.DataFrame] | None = None,
) -> tuple[Path, Path]:
    """Write index.html, summary.md and the figures into `out_dir`. `summary` comes from
    `summary_table(results)` and is shown as a metric x method grid (`columns`: baselines
    then methods; default every method in the summary); `paired` (`paired_summary`) as a
    second grid; `tables` are further titled tables (tuning grid, budgets, free gaps)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(columns) or summary["method"].unique(maintain_order=True).to_list()
    shown = grid(summary, columns)
    paired = paired if paired is not None else pl.DataFrame(schema=PAIRED_SCHEMA)
    shown_paired = paired_grid(paired)
    figs = {
        "accuracy": fig_accuracy(results, out_dir / "accuracy.png"),
        "calibration": fig_calibration(preds, out_dir / "calibration.png"),
    }
    if paired.height:
        figs["paired"] = fig_paired(paired, out_dir / "paired.png")
    if scored is not None and scored.height:
        figs["free_gap_hist"] = fig_free_gap_hist(scored, out_dir / "free_gap_hist.png")
        figs["free_vs_length"] = fig_free_vs_length(
            scored, length_col, out_dir / "free_vs_length.png"
        )
    per_model = results.filter(
        (pl.col("metric") == "accuracy") & ~pl.col("benchmark").str.starts_with("paired:")
    ).select("model", "method", "seed", "benchmark", "subset", "n", "value", "ci_low", "ci_high")
    meta_rows = pl.DataFrame({"key": list(meta), "value": [str(v) for v in meta.values()]})
    captions = {
        "free_gap_hist": "Prompt-free gaps of the training pairs under the reference model(s).",
        "free_vs_length": "Prompt-free gap against the length difference of the two responses.",
        "accuracy": "Accuracy per benchmark and method; bars are means over seeds, whiskers 95% t-intervals.",
        "paired": "Primary metrics: method minus vanilla, 95% paired interval (test prompts resampled, seed spread added); green better, red worse, grey no clear difference.",
        "calibration": "Reliability diagram of sigmoid(gap) against the soft labels, all seeds pooled, each pair in both orders.",
    }
    figures_html = "".join(
        f'<figure><img src="{name}" alt="{key}"><figcaption>{html.escape(captions[key])}</figcaption></figure>'
        for key, name in figs.items()
    )
    findings_html = "".join(f"<li>{html.escape(f)}</li>" for f in findings)
    extra = tables or {}
    extra_html = "".join(
        f"<h2>{html.escape(name)}</h2>{_table_html(frame)}" for name, frame in extra.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
th{{background:#f2f2f2}}figure{{display:inline-block;margin:0.5em;vertical-align:top;width:560px}}img{{width:560px}}
figcaption{{font-size:12px;color:#555}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Findings</h2><ul>{findings_html}</ul>
<h2>Summary: metric x method (mean over seeds, 95% t-interval; baselines: one value)</h2>{_table_html(shown)}
<h2>Paired differences vs vanilla (95% interval: test prompts resampled, seed spread added)</h2>{_table_html(shown_paired)}
<h2>Figures</h2>{figures_html}
{extra_html}
<h2>Per model (bootstrap 95% interval over test pairs)</h2>{_table_html(per_model)}
<h2>Run</h2>{_table_html(meta_rows)}
<script>window.addEventListener("load", () => {{
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-figures-loaded", ok + "/" + document.images.length);
}});</script>
</body></html>"""
    html_path = out_dir / "index.html"
    html_path.write_text(page)
    md = [
        f"# {title}",
        "",
        *[f"- {f}" for f in findings],
        "",
        "## Summary: metric x method (mean over seeds, 95% t-interval)",
        "",
        _table_md(shown),
        "",
        "## Paired differences vs vanilla (95% interval: test prompts resampled, seed spread added)",
        "",
        _table_md(shown_paired),
        "",
        *[
            line
            for name, frame in extra.items()
            for line in (f"## {name}", "", _table_md(frame), "")
        ],
        "## Run",
        "",
        _table_md(meta_rows),
        "",
        f"Figures and per-model tables: `{html_path}`",
    ]
    md_path = out_dir / "summary.md"
    md_path.write_text("\n".join(md) + "\n")
    return html_path, md_path
