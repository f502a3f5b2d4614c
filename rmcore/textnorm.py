"""Canonical text normalization and content-addressed ids.

Every prompt and response is stored once, keyed by the sha256 of its normalized
text, so the same reference answer shared by thousands of pairs costs one row and
one embedding.
"""

from __future__ import annotations

import hashlib
import unicodedata

import polars as pl


def normalize_text(text: str) -> str:
    """NFC, unix newlines, surrounding whitespace stripped."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()


def text_id(text: str) -> str:
    """sha256 hex digest of the normalized text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def normalize_expr(col: pl.Expr) -> pl.Expr:
    """The vectorized twin of `normalize_text` for polars columns."""
    return col.str.replace_all("\r\n", "\n", literal=True).str.normalize("NFC").str.strip_chars()


def sha256_series(values: pl.Series) -> pl.Series:
    """sha256 hex of each value (already normalized), hashing each distinct value once:
    texts repeat a lot (reference answers, shared prompts)."""
    uniq = values.unique()
    digests = pl.Series(
        [hashlib.sha256(v.encode("utf-8")).hexdigest() for v in uniq.to_list()], dtype=pl.Utf8
    )
    return values.replace_strict(uniq, digests, return_dtype=pl.Utf8)


def pair_ids(namespace: str, frame: pl.DataFrame) -> pl.Series:
    """Content-addressed pair ids: sha256(namespace, prompt_id, chosen_id, rejected_id)."""
    key = pl.concat_str(
        [pl.lit(namespace), "prompt_id", "chosen_id", "rejected_id"], separator="\x1f"
    )
    return sha256_series(frame.select(key).to_series())
