"""Audit reports for an ablation: an HTML page with tables and figures, and a markdown summary.

Everything shown is computed from the frames passed in (benchmark rows, per-pair test
predictions, the scored training pairs), so a reader can recompute any number from the
warehouse. Intervals are 95% t-intervals over training seeds (bootstrap over examples in the
per-model table).
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
from rmcore.evaluation.specs import FINDINGS, HEADLINE, MetricKey, MetricSpec, spec_of

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


def compare(
    summary: pl.DataFrame,
    key: MetricKey | MetricSpec,
    method: str,
    baseline: str = BASELINE,
) -> str:
    """A plain sentence: does `method` beat `baseline` on the metric `key`, given the intervals?"""
    spec = spec_of(key)
    sel = summary.filter(
        (pl.col("benchmark") == spec.benchmark)
        & (pl.col("subset") == spec.subset)
        & (pl.col("metric") == spec.metric)
    )
    get = {r["method"]: r for r in sel.iter_rows(named=True)}
    title = spec.title
    if method not in get or baseline not in get:
        return f"{method} vs {baseline} on {title}: not measured."
    a, b = get[method], get[baseline]
    diff = a["mean"] - b["mean"]
    if any(np.isnan(x) for x in (a["ci_low"], a["ci_high"], b["ci_low"], b["ci_high"])):
        return (
            f"{method} vs {baseline} on {title}: {a['mean']:.3f} vs {b['mean']:.3f}"
            f" ({diff:+.3f}; one seed, no interval: not conclusive)."
        )
    overlap = not (a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"])
    if overlap:
        verdict = "the intervals overlap: no clear difference"
    elif spec.higher_is_better is None:
        verdict = "higher" if diff > 0 else "lower"
    else:
        verdict = "better" if (diff > 0 if spec.higher_is_better else diff < 0) else "worse"
    return (
        f"{method} vs {baseline} on {title}: {a['mean']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}] vs "
        f"{b['mean']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}] ({diff:+.3f}; {verdict})."
    )


def findings(
    summary: pl.DataFrame,
    methods: Sequence[str],
    baseline: str = BASELINE,
    keys: Sequence[MetricKey] = FINDINGS,
) -> list[str]:
    """One `compare` sentence per finding metric and non-baseline method, whatever they show."""
    return [
        compare(summary, key, method, baseline)
        for key in keys
        for method in methods
        if method != baseline
    ]


# ----------------------------------------------------------------------------- figures
def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def fig_free_gap_hist(scored: pl.DataFrame, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(scored["free_gap"].to_numpy(), bins=50, color="#4c72b0")
    ax.axvline(0, color="k", lw=0.8)
    ax.set(
        xlabel="prompt-free gap (reference model)",
        ylabel="pairs",
        title="Distribution of prompt-free gaps",
    )
    return _save(fig, path)


def fig_free_vs_length(scored: pl.DataFrame, length_col: str, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
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
        ("preference", "winner_shorter", "winner shorter"),
        ("preference", "winner_longer", "winner longer"),
        ("prompt_swap", "all", "prompt swap"),
    ]
    methods = results["method"].unique(maintain_order=True).to_list()
    fig, ax = plt.subplots(figsize=(8, 3.8))
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


def fig_calibration(preds: pl.DataFrame, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(5, 4))
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
) -> tuple[Path, Path]:
    """Write index.html, summary.md and the figures into `out_dir`; `summary` comes from
    `summary_table(results)` and is shown as `display_summary(summary)`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = display_summary(summary)
    figs = {
        "accuracy": fig_accuracy(results, out_dir / "accuracy.png"),
        "calibration": fig_calibration(preds, out_dir / "calibration.png"),
    }
    if scored is not None and scored.height:
        figs["free_gap_hist"] = fig_free_gap_hist(scored, out_dir / "free_gap_hist.png")
        figs["free_vs_length"] = fig_free_vs_length(
            scored, length_col, out_dir / "free_vs_length.png"
        )
    per_model = results.filter(pl.col("metric") == "accuracy").select(
        "model", "method", "seed", "benchmark", "subset", "n", "value", "ci_low", "ci_high"
    )
    meta_rows = pl.DataFrame({"key": list(meta), "value": [str(v) for v in meta.values()]})
    captions = {
        "free_gap_hist": "Prompt-free gaps of the training pairs under the reference model.",
        "free_vs_length": "Prompt-free gap against the length difference of the two responses.",
        "accuracy": "Accuracy per benchmark and method; bars are means over seeds, whiskers 95% t-intervals.",
        "calibration": "Reliability diagram of sigmoid(gap) against the soft labels, all seeds pooled, each pair in both orders.",
    }
    figures_html = "".join(
        f'<figure><img src="{name}" alt="{key}"><figcaption>{html.escape(captions[key])}</figcaption></figure>'
        for key, name in figs.items()
    )
    findings_html = "".join(f"<li>{html.escape(f)}</li>" for f in findings)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
th{{background:#f2f2f2}}figure{{display:inline-block;margin:0.5em;vertical-align:top}}img{{max-width:520px}}
figcaption{{font-size:12px;color:#555;max-width:520px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Findings</h2><ul>{findings_html}</ul>
<h2>Summary (mean over seeds, 95% interval)</h2>{_table_html(shown)}
<h2>Figures</h2>{figures_html}
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
        "## Summary (mean over seeds, 95% interval)",
        "",
        _table_md(shown),
        "",
        "## Run",
        "",
        _table_md(meta_rows),
        "",
        f"Figures and per-model tables: `{html_path}`",
    ]
    md_path = out_dir / "summary.md"
    md_path.write_text("\n".join(md) + "\n")
    return html_path, md_path
