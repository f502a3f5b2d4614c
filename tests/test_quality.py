"""The data-quality gate against real Great Expectations runs.

Every test validates with the committed `warehouse/gx/` config, run in a runtime context in a
temp folder (as ingest runs it next to the warehouse), so the suite under test is the committed
one and the repo tree stays clean.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import re
import shutil
from html import unescape
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmcore.textnorm import text_id
from warehouse import quality
from warehouse.quality import SuiteNotFullyEvaluated, validate_pairs

LABEL_RANGE = "expect_column_values_to_be_between[label]"
UNIQUE_PAIR = "expect_column_values_to_be_unique[pair_id]"
ROW_COUNT = "expect_table_row_count_to_be_between"


def make_batch(n: int = 6, label: float = 1.0) -> pl.DataFrame:
    """A clean batch in the canonical layout, ids derived the way ingest derives them."""
    prompts = [f"Question {i % 3}?" for i in range(n)]
    chosen = [f"A careful answer {i}." for i in range(n)]
    rejected = [f"A sloppy answer {i}." for i in range(n)]
    return pl.DataFrame(
        {
            "pair_id": [hashlib.sha256(f"demo|{i}".encode()).hexdigest() for i in range(n)],
            "prompt_id": [text_id(t) for t in prompts],
            "chosen_id": [text_id(t) for t in chosen],
            "rejected_id": [text_id(t) for t in rejected],
            "prompt": prompts,
            "chosen": chosen,
            "rejected": rejected,
            "label": [label] * n,
            "split": ["train", "validation", "test"] * (n // 3) + ["train"] * (n % 3),
            "source_row": list(range(n)),
        },
        schema=quality.COLUMNS,
    )


def set_row(df: pl.DataFrame, row: int, **values: object) -> pl.DataFrame:
    """`df` with the given columns replaced on one row (dtypes kept)."""
    hit = pl.int_range(pl.len()) == row
    return df.with_columns(
        pl.when(hit).then(pl.lit(v, dtype=df.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def page_text(path: Path) -> str:
    """The visible text of a report page (`<wbr>`, a line-break hint, joins its neighbours)."""
    html = re.sub(r"<(script|style).*?</\1>", " ", path.read_text(), flags=re.S)
    html = html.replace("<wbr>", "")
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def committed_files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and "uncommitted" not in p.relative_to(root).parts
    }


@pytest.fixture(scope="module")
def gx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The committed GX config (only read) and a private runtime folder to validate in."""
    assert quality.CONTEXT_DIR.is_dir(), (
        "warehouse/gx/ is missing: run warehouse.quality.sync_context()"
    )
    return {
        "context_dir": quality.CONTEXT_DIR,
        "runtime_dir": tmp_path_factory.mktemp("runtime") / "gx",
    }


def test_good_batch_passes_with_every_expectation_evaluated(gx: dict[str, Path], tmp_path: Path):
    out = validate_pairs(make_batch(), batch_name="good", reports_dir=tmp_path, **gx)

    assert out.success and out.failed == [] and out.n_failed == 0
    assert out.n_evaluated == out.n_expectations == len(quality.pairs_expectations())
    assert out.suite == quality.SUITE_NAME
    assert out.report_path is not None and out.report_path.is_file()
    assert out.report_path.is_relative_to(tmp_path.resolve())
    json.dumps(
        {"result": out.result_json, "statistics": out.statistics}
    )  # fits dq_runs JSON columns


IS_PROMPT = f"expect_column_values_to_be_in_set[{quality.IS_PROMPT}]"
STARTS_WITH_PROMPT = f"expect_column_values_to_be_in_set[{quality.STARTS_WITH_PROMPT}]"


def test_a_response_that_is_or_repeats_its_prompt_fails(gx: dict[str, Path], tmp_path: Path):
    """The UltraFeedback-binarized bug (the prompt copied into both responses) fails the
    suite; a response equal to its prompt fails it even once; one short prompt repeated at
    the start of a response in 200 pairs does not."""
    good = make_batch(200)
    copied = good.with_columns(
        (pl.col("prompt") + "\n\n" + pl.col(c)).alias(c) for c in ("chosen", "rejected")
    )
    out = validate_pairs(copied, batch_name="copied", reports_dir=tmp_path, **gx)
    assert not out.success and out.failed == [STARTS_WITH_PROMPT]

    same = set_row(good, 3, rejected=good["prompt"][3])
    out = validate_pairs(same, batch_name="same", reports_dir=tmp_path, **gx)
    assert not out.success and sorted(out.failed) == sorted([IS_PROMPT])

    once = set_row(good, 5, chosen=good["prompt"][5] + " Well asked.")
    out = validate_pairs(once, batch_name="once", reports_dir=tmp_path, **gx)
    assert out.success


def test_bad_label_and_duplicate_pair_fail_and_are_reported(gx: dict[str, Path], tmp_path: Path):
    good = make_batch()
    bad = pl.concat([set_row(good, 2, label=1.5), good.head(1)])  # row 0 comes back: same pair_id

    out = validate_pairs(bad, batch_name="ds/v1 bad", reports_dir=tmp_path, **gx)

    assert not out.success
    assert sorted(out.failed) == sorted([LABEL_RANGE, UNIQUE_PAIR])
    assert out.n_failed == 2 and out.n_evaluated == out.n_expectations
    assert out.report_path is not None and out.report_path.is_file()
    assert "/" not in out.report_path.relative_to(tmp_path.resolve()).parts[1]  # run-name folder
    text = page_text(out.report_path)
    assert f"FAIL {UNIQUE_PAIR}" in text and good["pair_id"][0] in text
    assert f"FAIL {LABEL_RANGE} min_value=0.0, max_value=1.0 1 of 7 unexpected" in text
    assert "1.5" in text


def test_audit_page_is_self_contained_with_a_status_per_expectation(gx, tmp_path: Path):
    """Offline, GX's Data Docs show no status (icons and tables come from CDNs): the audit
    page carries its own styles, no scripts, and one PASS/FAIL cell per expectation."""
    bad = set_row(make_batch(), 2, label=1.5)
    out = validate_pairs(bad, batch_name="audit me", reports_dir=tmp_path, **gx)

    page = out.report_path.read_text()
    assert out.report_path.parent.parent == tmp_path.resolve() / "quality"
    assert "<script" not in page and not re.search(r"(src|href)=\"https?:|url\(", page)
    assert page.count('class="status fail">FAIL<') == out.n_failed == 1
    assert page.count('class="status pass">PASS<') == out.n_expectations - 1
    assert 'data-status="failed"' in page
    # The GX page of the same run is still written, and linked relatively.
    (docs_link,) = re.findall(r'href="([^"]*validations/[^"]+\.html)"', page)
    assert (out.report_path.parent / docs_link).resolve().is_file()
    markdown = out.report_path.with_suffix(".md").read_text()
    assert f"| **FAIL** | {LABEL_RANGE} |" in markdown and str(out.report_path) in markdown


def test_audit_index_lists_every_check_newest_first(gx, tmp_path: Path):
    validate_pairs(make_batch(), batch_name="first", reports_dir=tmp_path, **gx)
    validate_pairs(make_batch().head(0), batch_name="second", reports_dir=tmp_path, **gx)

    index = tmp_path / "quality" / "index.html"
    text = page_text(index)
    assert 'data-runs="2"' in index.read_text()
    found = re.search(r"FAIL \S+ second (\d+) of (\d+) PASS \S+ first (\d+) of (\d+)", text)
    assert found and int(found[1]) == int(found[2]) - 1 and found[3] == found[4] == found[2]
    links = re.findall(r'<a href="([^"]+)">(?:first|second)</a>', index.read_text())
    assert all((index.parent / link).is_file() for link in links) and len(links) == 2


def test_empty_batch_fails_on_row_count(gx: dict[str, Path], tmp_path: Path):
    out = validate_pairs(make_batch().head(0), batch_name="empty", reports_dir=tmp_path, **gx)

    assert not out.success
    assert out.failed == [ROW_COUNT]
    assert out.n_evaluated == out.n_expectations


@pytest.mark.parametrize(
    ("defect", "expected"),
    [
        (
            lambda df: set_row(df, 1, rejected_id=df["chosen_id"][1]),
            ["expect_select_column_values_to_be_unique_within_record[chosen_id,rejected_id]"],
        ),
        # Both ids null: the row condition that speeds this check up must still see the row.
        (
            lambda df: set_row(df, 2, chosen_id=None, rejected_id=None),
            [
                "expect_select_column_values_to_be_unique_within_record[chosen_id,rejected_id]",
                "expect_column_values_to_not_be_null[chosen_id]",
                "expect_column_values_to_not_be_null[rejected_id]",
            ],
        ),
        (
            lambda df: set_row(df, 2, chosen_id=None),
            ["expect_column_values_to_not_be_null[chosen_id]"],
        ),
        (lambda df: set_row(df, 0, split="dev"), ["expect_column_values_to_be_in_set[split]"]),
        (
            lambda df: set_row(df, 3, prompt_id=df["prompt_id"][3].upper()),
            ["expect_column_values_to_match_regex[prompt_id]"],
        ),
        (
            lambda df: set_row(df, 3, pair_id=df["pair_id"][3][:63]),
            ["expect_column_values_to_match_regex[pair_id]"],
        ),
        (
            lambda df: set_row(df, 4, chosen=""),
            ["expect_column_value_lengths_to_be_between[chosen]"],
        ),
        (
            lambda df: set_row(df, 5, source_row=-1),
            ["expect_column_values_to_be_between[source_row]"],
        ),
        (
            lambda df: set_row(df, 5, source_row=None),
            ["expect_column_values_to_not_be_null[source_row]"],
        ),
        (lambda df: set_row(df, 0, label=None), ["expect_column_values_to_not_be_null[label]"]),
        (
            lambda df: df.with_columns(label=pl.lit(0.5)),
            ["expect_column_values_to_not_be_in_set[label]"],
        ),
        (
            lambda df: df.drop("split"),
            [
                "expect_column_values_to_be_in_set[split]",
                "expect_column_values_to_not_be_null[split]",
                "expect_table_columns_to_match_set",
            ],
        ),
    ],
    ids=[
        "chosen_is_rejected",
        "both_ids_null",
        "one_id_null",
        "split",
        "uppercase_id",
        "short_id",
        "empty_text",
        "negative_row",
        "null_row",
        "null_label",
        "all_ties",
        "missing_column",
    ],
)
def test_each_defect_fails_exactly_its_expectation(gx, tmp_path, defect, expected):
    out = validate_pairs(defect(make_batch()), batch_name="defect", reports_dir=tmp_path, **gx)

    assert sorted(out.failed) == sorted(expected)
    assert not out.success and out.n_evaluated == out.n_expectations


def test_max_chars_is_bound_per_call_and_leaves_the_suite_alone(
    gx: dict[str, Path], tmp_path: Path
):
    suite_file = quality.CONTEXT_DIR / "expectations" / f"{quality.SUITE_NAME}.json"
    before = suite_file.read_bytes()
    df = make_batch()  # longest text: "A careful answer 5." = 19 chars
    longest = int(
        df.select(pl.col(*quality.TEXT_COLUMNS).str.len_chars().max()).max_horizontal()[0]
    )

    fits = validate_pairs(df, batch_name="fits", reports_dir=tmp_path, **gx, max_chars=longest)
    over = validate_pairs(df, batch_name="over", reports_dir=tmp_path, **gx, max_chars=longest - 1)

    assert fits.success
    # Only "A careful answer 5." (chosen) is that long; "A sloppy answer 5." is one shorter.
    assert over.failed == ["expect_column_value_lengths_to_be_between[chosen]"]
    assert suite_file.read_bytes() == before


def test_committed_context_is_in_sync_with_the_code(gx: dict[str, Path], tmp_path: Path):
    """Validating must not rewrite the config it copied: else `pairs_expectations` changed
    uncommitted."""
    validate_pairs(make_batch(), batch_name="sync", reports_dir=tmp_path, **gx)

    committed, copied = committed_files(quality.CONTEXT_DIR), committed_files(gx["runtime_dir"])
    assert committed.keys() == copied.keys()
    changed = [
        name for name, p in committed.items() if not filecmp.cmp(p, copied[name], shallow=False)
    ]
    assert changed == [], (
        f"run warehouse.quality.sync_context() and commit warehouse/gx/: {changed}"
    )


def test_unloadable_expectation_in_the_stored_suite_raises(tmp_path: Path):
    """GX drops an expectation it cannot import when loading a suite; the gate must not pass."""
    ctx = tmp_path / "gx"
    shutil.copytree(quality.CONTEXT_DIR, ctx, ignore=shutil.ignore_patterns("uncommitted"))
    suite_file = ctx / "expectations" / f"{quality.SUITE_NAME}.json"
    suite = json.loads(suite_file.read_text())
    custom = {**suite["expectations"][0], "type": "expect_rmcurate_custom_check"}
    custom["id"] = "00000000-0000-4000-8000-000000000001"
    suite["expectations"].append(custom)
    suite_file.write_text(json.dumps(suite))

    with pytest.raises(SuiteNotFullyEvaluated, match="evaluated"):
        validate_pairs(
            make_batch(),
            batch_name="skip",
            reports_dir=tmp_path / "r",
            runtime_dir=tmp_path / "runtime",
            context_dir=ctx,
        )


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    labels=st.lists(
        st.sampled_from([0.0, 0.5, 0.5, 0.5, 1.0, 0.3, 1.5, -0.25]), min_size=1, max_size=150
    )
)
def test_label_checks_agree_with_a_direct_count(
    gx: dict[str, Path], tmp_path: Path, labels: list[float]
):
    """GX's range and tie checks against the definitions in the brief, counted by hand."""
    df = make_batch(len(labels)).with_columns(label=pl.Series(labels, dtype=pl.Float64))
    out = validate_pairs(df, batch_name="labels", reports_dir=tmp_path, **gx)

    out_of_range = any(not 0.0 <= x <= 1.0 for x in labels)
    non_tie_fraction = sum(x != 0.5 for x in labels) / len(labels)
    expected = {LABEL_RANGE} if out_of_range else set()
    if non_tie_fraction < quality.MIN_NON_TIE_FRACTION:
        expected.add("expect_column_values_to_not_be_in_set[label]")
    assert set(out.failed) == expected
    assert out.success == (not expected)
