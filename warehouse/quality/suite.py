"""The expectation suite `rmcurate_pairs`: the contract every stored batch must meet.

Edit `pairs_expectations`, then run `warehouse.quality.sync_context()` and commit
`warehouse/gx/` (a test fails while the committed suite and this code differ).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from rmcore.ingest.batch import SPLITS

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

SUITE_NAME = "rmcurate_pairs"

COLUMNS: dict[str, type[pl.DataType]] = {
    "pair_id": pl.Utf8,
    "prompt_id": pl.Utf8,
    "chosen_id": pl.Utf8,
    "rejected_id": pl.Utf8,
    "prompt": pl.Utf8,
    "chosen": pl.Utf8,
    "rejected": pl.Utf8,
    "label": pl.Float64,
    "split": pl.Utf8,
    "source_row": pl.Int64,
}
ID_COLUMNS = ("pair_id", "prompt_id", "chosen_id", "rejected_id")
TEXT_COLUMNS = ("prompt", "chosen", "rejected")
SHA256_HEX = r"^[0-9a-f]{64}$"
TIE = 0.5
# A batch where fewer than 1% of pairs prefer one side carries almost no signal.
MIN_NON_TIE_FRACTION = 0.01
_SAME_IDS = "(chosen_id == rejected_id) | (chosen_id.isna() & rejected_id.isna())"
# Derived columns, computed from the texts before validation (GX has no column-pair "starts
# with"): whether a response is its prompt, and whether one begins with it (the
# UltraFeedback-binarized bug: the prompt copied into both responses).
IS_PROMPT, STARTS_WITH_PROMPT = "response_is_prompt", "response_starts_with_prompt"
DERIVED_COLUMNS: dict[str, type[pl.DataType]] = {
    IS_PROMPT: pl.Boolean,
    STARTS_WITH_PROMPT: pl.Boolean,
}
# A response may open by repeating a short prompt ("Hello" -> "Hello! ..."): on 16,055 real
# AlpacaEval pairs 9 (0.06%) do and none equals its prompt; a copied prompt is 100%.
MAX_STARTS_WITH_PROMPT = 0.01


def with_derived(df: pl.DataFrame) -> pl.DataFrame:
    """The batch with the derived columns the suite checks."""
    prompt, responses = pl.col("prompt"), (pl.col("chosen"), pl.col("rejected"))
    return df.with_columns(
        pl.any_horizontal(r == prompt for r in responses).fill_null(False).alias(IS_PROMPT),
        pl.any_horizontal(r.str.starts_with(prompt) for r in responses)
        .fill_null(False)
        .alias(STARTS_WITH_PROMPT),
    )


def pairs_expectations() -> list[Expectation]:
    """The suite's expectations; `max_chars` stays a parameter bound at run time."""
    import great_expectations.expectations as gxe

    max_chars = {"$PARAMETER": "max_chars"}
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectTableColumnsToMatchSet(column_set=[*COLUMNS, *DERIVED_COLUMNS], exact_match=True),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in COLUMNS),
        *(gxe.ExpectColumnValuesToMatchRegex(column=c, regex=SHA256_HEX) for c in ID_COLUMNS),
        *(
            gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1, max_value=max_chars)
            for c in TEXT_COLUMNS
        ),
        gxe.ExpectColumnValuesToBeUnique(column="pair_id"),
        # chosen_id != rejected_id on every row: a pair must compare two different texts.
        # GX checks this row by row in Python (5-8 s per 100k rows); the row condition hands
        # it only the rows that can fail (equal, or both null), found by a vectorized query,
        # so the outcome is the same on every batch.
        gxe.ExpectSelectColumnValuesToBeUniqueWithinRecord(
            column_list=["chosen_id", "rejected_id"],
            ignore_row_if="never",
            row_condition=_SAME_IDS,
            condition_parser="pandas",
        ),
        gxe.ExpectColumnValuesToBeBetween(column="label", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToNotBeInSet(
            column="label", value_set=[TIE], mostly=MIN_NON_TIE_FRACTION
        ),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToBeInSet(column=IS_PROMPT, value_set=[False]),
        gxe.ExpectColumnValuesToBeInSet(
            column=STARTS_WITH_PROMPT, value_set=[False], mostly=1 - MAX_STARTS_WITH_PROMPT
        ),
        # Not unique: one source row may yield several pairs (multi-completion formats).
        gxe.ExpectColumnValuesToBeBetween(column="source_row", min_value=0),
    ]
