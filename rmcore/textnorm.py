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
