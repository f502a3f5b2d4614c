"""From raw records to an ingest batch: canonical pairs plus quarantine rows, nothing lost.

Every input row ends in exactly one of two places: its pairs are stored, or the row is
quarantined with a machine-readable reason code. `IngestBatch.reconciles` checks
`n_input == n_rows_stored + n_quarantined`, the invariant the flow prints and enforces.

Reason codes: unparseable, invalid_utf8, line_too_long, too_deep, wrong_field_count,
missing_field, wrong_type, no_shared_prompt, no_preference, empty_text, text_too_long,
identical_responses, invalid_label, invalid_split, duplicate_pair. The first five are
given by the reader (rmcore.ingest.sources) with a per-row message: `line_too_long` a JSON
line over `IngestConfig.max_line_bytes`, `too_deep` a record nesting deeper than
`IngestConfig.max_depth`, `wrong_field_count` a CSV row with more fields than its header.

A source in which no row could be read at all (not UTF-8, not JSON) is not quarantined row
by row when its format is to be detected: `build_batch` raises a SourceError naming why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from rmcore.config import IngestConfig
from rmcore.errors import SourceError
from rmcore.ingest import native
from rmcore.ingest.formats import (
    COLUMN_MAPS,
    CONSUMED_KEYS,
    EXTRACTORS,
    FORMATS,
    NUMERIC_KEYS,
    RANKED_MODES,
    FormatError,
    Reject,
    detect_format,
)
from rmcore.ingest.sources import RawRecords
from rmcore.ingest.typed import read_number
from rmcore.progress import Progress
from rmcore.textnorm import normalize_expr, pair_ids, sha256_series

# The dataset splits, for every stage (the quality suite and the demo generator import them).
SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "dev": "validation",
    "val": "validation",
    "valid": "validation",
    "eval": "validation",
}


def canonical_split(split: pl.Expr) -> pl.Expr:
    """A split name as one of SPLITS: lower-cased, an alias (dev, val, valid, eval) read as
    validation, and a native name read by its first word (`train_prefs`, `train_sft`,
    `test-gen`, `validation_2` -> train, train, test, validation). Anything else is kept
    as it is and quarantined as `invalid_split`."""
    name = split.str.to_lowercase().str.strip_chars()
    word = name.str.extract(r"^([a-z]+)[_\-]", 1).replace(SPLIT_ALIASES)
    alias = name.replace(SPLIT_ALIASES)
    return (
        pl.when(alias.is_in(SPLITS))
        .then(alias)
        .when(word.is_in(SPLITS))
        .then(word)
        .otherwise(split)
    )


REASON_MESSAGES = {
    "empty_text": "prompt, chosen or rejected is empty or whitespace only",
    "text_too_long": "a text is longer than the size limit",
    "identical_responses": "chosen and rejected are the same text",
    "invalid_label": "label is not a number in [0, 1]",
    "invalid_split": f"split is not one of {', '.join(SPLITS)}",
    "duplicate_pair": "the same (prompt, chosen, rejected) already appears earlier in this source",
}

QUARANTINE_SCHEMA = {"source_row": pl.Int64, "reason": pl.Utf8, "message": pl.Utf8, "raw": pl.Utf8}


@dataclass
class IngestBatch:
    """`pairs`: one row per stored pair (texts, content ids, label, split, provenance);
    `quarantine`: one row per rejected input row."""

    format: str
    pairs: pl.DataFrame
    quarantine: pl.DataFrame
    n_input: int

    @property
    def n_rows_stored(self) -> int:
        return self.pairs["source_row"].n_unique() if self.pairs.height else 0

    @property
    def reconciles(self) -> bool:
        return self.n_input == self.n_rows_stored + self.quarantine.height

    def reason_counts(self) -> dict[str, int]:
        counts = self.quarantine.group_by("reason").len().sort("reason")
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


CANDIDATE_SCHEMA = {
    "source_row": pl.Int64,
    "prompt": pl.Utf8,
    "chosen": pl.Utf8,
    "rejected": pl.Utf8,
    "label": pl.Float64,
    "split": pl.Utf8,
    "provenance": pl.Utf8,
}
_REJECT_SCHEMA = {k: QUARANTINE_SCHEMA[k] for k in ("source_row", "reason", "message")}


def _parse_failures(raw: RawRecords) -> pl.DataFrame:
    """Rows that never became records (undecodable or unparseable)."""
    failed = [(i, e, raw.rows.messages[i]) for i, e in enumerate(raw.rows.errors) if e]
    return pl.DataFrame(failed, schema=_REJECT_SCHEMA, orient="row")


def _counted(records: Iterable[Any], bar: Progress) -> Iterable[tuple[int, Any]]:
    """(row number, record) of the readable records, each row counted on `bar`."""
    for i, record in enumerate(records):
        bar.update()
        if record is not None:
            yield i, record


def _extract_records(
    rows: Iterable[tuple[int, dict[str, Any]]],
    fmt: str,
    ranked_mode: str,
    default_split: str,
    csv: bool,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(candidates, rejects) from the format's extractor, record by record: the path for
    formats without a column-wise twin and for rows whose types the twin cannot take.
    `csv`: the records' numeric keys are text cells, parsed first."""
    extractor, consumed = EXTRACTORS[fmt], CONSUMED_KEYS[fmt]
    numeric = NUMERIC_KEYS[fmt] if csv else ()
    cols: dict[str, list] = {k: [] for k in CANDIDATE_SCHEMA}
    rejects = []
    for i, rec in rows:
        parsed = {k: read_number(rec[k]) for k in numeric if isinstance(rec.get(k), str)}
        rec = rec | parsed if parsed else rec
        try:
            pairs = extractor(rec, ranked_mode)
            split = default_split if rec.get("split") is None else rec["split"]
            if not isinstance(split, str):
                raise Reject("invalid_split", f"split must be a string, got {type(split).__name__}")
        except Reject as rej:
            rejects.append((i, rej.reason, rej.message))
            continue
        extra = {k: v for k, v in rec.items() if k not in consumed}
        prov = (
            orjson.dumps(extra, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
            if extra
            else None
        )
        for pair in pairs:
            for key, value in zip(CANDIDATE_SCHEMA, (i, *pair, split, prov), strict=True):
                cols[key].append(value)
    return (
        pl.DataFrame(cols, schema=CANDIDATE_SCHEMA),
        pl.DataFrame(rejects, schema=_REJECT_SCHEMA, orient="row"),
    )


def _split_col(schema: pl.Schema, default_split: str) -> tuple[pl.Expr, pl.Expr]:
    """(split, rows whose split the record path would reject as not a string)."""
    dtype = schema.get("split")
    if dtype == pl.String:
        return pl.col("split").fill_null(default_split), pl.lit(False)
    bad = pl.lit(False) if dtype in (None, pl.Null) else pl.col("split").is_not_null()
    return pl.lit(default_split), bad


def _extract_columns(
    table: pl.DataFrame, fmt: str, ranked_mode: str, default_split: str, csv: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(candidates, rejects) with polars expressions over typed columns; rows the column map
    does not call clean (wrong or missing types, odd labels) go through `_extract_records`."""
    mapping = COLUMN_MAPS[fmt](table.schema, csv)
    split, bad_split = _split_col(table.schema, default_split)
    extra = [c for c in table.columns if c not in CONSUMED_KEYS[fmt]]
    prov = pl.struct(extra).struct.json_encode() if extra else pl.lit(None, dtype=pl.Utf8)
    clean = (mapping.clean & ~bad_split).fill_null(False)
    values = (pl.int_range(pl.len()), *mapping.pair, split, prov)
    mapped = table.select(
        *(v.alias(k) for k, v in zip(CANDIDATE_SCHEMA, values, strict=True)), clean.alias("_clean")
    )
    is_clean = mapped["_clean"]
    others = zip(
        mapped.filter(~is_clean)["source_row"].to_list(),
        table.filter(~is_clean).to_dicts(),
        strict=True,
    )
    slow, rejects = _extract_records(others, fmt, ranked_mode, default_split, csv)
    fast = mapped.filter(is_clean).drop("_clean").cast(CANDIDATE_SCHEMA)
    return pl.concat([fast, slow]).sort("source_row", maintain_order=True), rejects


def _check(candidates: pl.DataFrame, max_chars: int) -> pl.DataFrame:
    """Vectorized text and label checks; adds `reason` (null when the pair is good)."""
    texts = ("prompt", "chosen", "rejected")
    df = candidates.with_columns(
        *(normalize_expr(pl.col(c)).alias(c) for c in texts),
        canonical_split(pl.col("split")).alias("split"),
    )
    too_long = pl.any_horizontal(pl.col(c).str.len_chars() > max_chars for c in texts)
    empty = pl.any_horizontal(pl.col(c).str.len_bytes() == 0 for c in texts)
    bad_label = pl.col("label").is_nan() | (pl.col("label") < 0) | (pl.col("label") > 1)
    reason = (
        pl.when(empty)
        .then(pl.lit("empty_text"))
        .when(too_long)
        .then(pl.lit("text_too_long"))
        .when(pl.col("chosen") == pl.col("rejected"))
        .then(pl.lit("identical_responses"))
        .when(bad_label)
        .then(pl.lit("invalid_label"))
        .when(~pl.col("split").is_in(SPLITS))
        .then(pl.lit("invalid_split"))
    )
    df = df.with_columns(reason.alias("reason"))
    # A row is quarantined whole if any of its pairs fails (ranked lists make several pairs).
    return df.with_columns(pl.col("reason").drop_nulls().first().over("source_row").alias("reason"))


def _identify(checked: pl.DataFrame, namespace: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good pairs with their content ids, bad rows' `source_row` and `reason`). Duplicates
    are judged among rows that are otherwise good: the first good occurrence wins, so a bad
    earlier row with the same texts cannot take a valid row down with it. The same texts
    give the same pair id (content-addressed), so one id column is compared rather than the
    three texts (hashing them again took longer than computing the ids)."""
    ok = checked.filter(pl.col("reason").is_null()).drop("reason")
    ok = ok.with_columns(
        sha256_series(ok["prompt"]).alias("prompt_id"),
        sha256_series(ok["chosen"]).alias("chosen_id"),
        sha256_series(ok["rejected"]).alias("rejected_id"),
    )
    ok = ok.with_columns(pair_ids(namespace, ok).alias("pair_id"))
    dup_rows = ok.filter(~pl.col("pair_id").is_first_distinct())["source_row"]
    is_dup = pl.col("source_row").is_in(dup_rows.implode())
    bad = pl.concat(
        [
            checked.filter(pl.col("reason").is_not_null()).select("source_row", "reason"),
            ok.filter(is_dup).select("source_row", pl.lit("duplicate_pair").alias("reason")),
        ]
    )
    return ok.filter(~is_dup), bad.sort("source_row", maintain_order=True)


def build_batch(
    raw: RawRecords,
    *,
    fmt: str | None = None,
    namespace: str = "",
    ranked_mode: str = IngestConfig.ranked_mode,
    score_field: str | None = IngestConfig.score_field,
    preference: str = IngestConfig.preference,
    default_split: str = IngestConfig.default_split,
    max_chars: int = IngestConfig.max_chars,
    progress: bool = False,
) -> IngestBatch:
    """Canonical pairs and quarantine rows for one source. `namespace` (e.g. "name@version")
    goes into each pair id so the same pair in two dataset versions keeps two ids.
    `progress` shows a bar over the record-by-record path (the slow one on big files)."""
    if fmt is None:
        unreadable = raw.unreadable()
        if unreadable is not None:
            raise SourceError(unreadable)
        fmt = detect_format(raw.iter_records())
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if ranked_mode not in RANKED_MODES:
        raise FormatError(
            f"unknown ranked mode {ranked_mode!r}; expected one of {', '.join(RANKED_MODES)}"
        )
    n_input = len(raw)
    if fmt in native.SCHEMAS:
        opts = native.Options(ranked_mode, score_field, preference)
        candidates, early, n_grouped = native.extract(raw, fmt, opts, default_split)
        # a table holds only rows that parsed
        failures = (
            _parse_failures(raw) if raw.table is None else pl.DataFrame(schema=_REJECT_SCHEMA)
        )
        early = pl.concat([failures, early.cast(_REJECT_SCHEMA)])
        if n_grouped is not None:
            n_input = n_grouped + failures.height
    elif raw.table is not None and fmt in COLUMN_MAPS:
        candidates, early = _extract_columns(
            raw.table, fmt, ranked_mode, default_split, raw.kind == "csv"
        )
    else:
        with Progress(len(raw), desc="checking rows", unit="rows", enabled=progress) as bar:
            candidates, early = _extract_records(
                _counted(raw.records, bar), fmt, ranked_mode, default_split, raw.kind == "csv"
            )
        early = pl.concat([_parse_failures(raw), early])
    good, bad = _identify(_check(candidates, max_chars), namespace)
    bad = bad.unique("source_row", keep="first", maintain_order=True)
    late = bad.select(
        "source_row",
        "reason",
        pl.col("reason").replace_strict(REASON_MESSAGES, default="").alias("message"),
    )
    quarantine = pl.concat([early, late]).sort("source_row")
    quarantine = quarantine.with_columns(
        pl.Series(
            "raw", [raw.raw_text(i) for i in quarantine["source_row"].to_list()], dtype=pl.Utf8
        )
    )

    order = [
        "pair_id",
        "prompt_id",
        "chosen_id",
        "rejected_id",
        "prompt",
        "chosen",
        "rejected",
        "label",
        "split",
        "source_row",
        "provenance",
    ]
    return IngestBatch(
        format=fmt,
        pairs=good.select(order),
        quarantine=quarantine.select(list(QUARANTINE_SCHEMA)),
        n_input=n_input,
    )
