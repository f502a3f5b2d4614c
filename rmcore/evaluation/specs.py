"""What the report shows of the benchmark rows: metric keys, display titles and directions.

A result row is keyed by (benchmark, subset, metric), e.g. ("preference", "winner_shorter",
"accuracy"); code selects and compares by that key. The title is only for people, and whether
a higher value is better is stored here as data, next to the title.
"""

from __future__ import annotations

from dataclasses import dataclass

MetricKey = tuple[str, str, str]  # (benchmark, subset, metric)


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """One reported metric: its key, its display title, and its direction (None: neither
    direction is better, e.g. a correlation with length)."""

    benchmark: str
    subset: str
    metric: str
    title: str
    higher_is_better: bool | None

    @property
    def key(self) -> MetricKey:
        return (self.benchmark, self.subset, self.metric)


# The summary table's rows, in display order.
HEADLINE: tuple[MetricSpec, ...] = (
    MetricSpec(
        benchmark="preference",
        subset="all",
        metric="accuracy",
        title="held-out accuracy",
        higher_is_better=True,
    ),
    MetricSpec(
        benchmark="preference",
        subset="bias_balanced",
        metric="accuracy",
        title="group-balanced accuracy (bias cells)",
        higher_is_better=True,
    ),
    MetricSpec(
        benchmark="preference",
        subset="response_only_wrong",
        metric="accuracy",
        title="accuracy where r(y) is wrong",
        higher_is_better=True,
    ),
    MetricSpec(
        benchmark="preference",
        subset="winner_shorter",
        metric="accuracy",
        title="bias-breaking: winner is shorter",
        higher_is_better=True,
    ),
    MetricSpec(
        benchmark="preference",
        subset="winner_longer",
        metric="accuracy",
        title="winner is longer",
        higher_is_better=True,
    ),
    MetricSpec(
        benchmark="prompt_swap",
        subset="all",
        metric="accuracy",
        title="prompt-swap, random donor (RRM's training objective)",
        higher_is_better=True,
    ),
    MetricSpec(
        benchmark="prompt_swap",
        subset="same_topic",
        metric="accuracy",
        title="prompt-swap, same-topic donor (RRM's training objective)",
        higher_is_better=True,
    ),
    MetricSpec(
        benchmark="preference",
        subset="all",
        metric="log_loss",
        title="log-loss",
        higher_is_better=False,
    ),
    MetricSpec(
        benchmark="preference", subset="all", metric="brier", title="Brier", higher_is_better=False
    ),
    MetricSpec(
        benchmark="preference", subset="all", metric="ece", title="ECE", higher_is_better=False
    ),
    MetricSpec(
        benchmark="length_bias",
        subset="all",
        metric="within_prompt_spearman",
        title="reward~length (within prompt)",
        higher_is_better=None,
    ),
)
SPECS: dict[MetricKey, MetricSpec] = {spec.key: spec for spec in HEADLINE}


def spec_of(key: MetricKey | MetricSpec) -> MetricSpec:
    """The spec of a key (a spec is returned as is); an unknown key raises."""
    if isinstance(key, MetricSpec):
        return key
    try:
        return SPECS[tuple(key)]
    except KeyError:
        raise KeyError(f"no metric spec for {key!r}; known: {list(SPECS)}") from None
