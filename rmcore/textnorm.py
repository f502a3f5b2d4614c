"""Canonical text normalization and content-addressed ids.

Every prompt and response is stored once, keyed by the sha256 of its normalized
text, so the same reference answer shared by thousands of pairs costs one row and
one embedding.
"""

from __future__ import annotations

import hashlib
import unicodedata

import polars as pl

# Exactly the characters Python's `str.strip()` removes (`str.isspace`). Polars'
# `strip_chars()` follows Rust's White_Space, which keeps \x1c-\x1f: spelled out so the
# vectorized twin strips the same set.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def normalize_text(text: str) -> str:
    """NFC, unix newlines, surrounding whitespace stripped."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()


def text_id(text: str) -> str:
    """sha256 hex digest of the normalized text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def normalize_expr(col: pl.Expr) -> pl.Expr:
    """The vectorized twin of `normalize_text` for polars columns. Each costly step runs only
    on the values that need it: most texts have no CRLF, and ASCII (same byte and char
    count) is already NFC."""
    unix = (
        pl.when(col.str.contains("\r\n", literal=True))
        .then(col.str.replace_all("\r\n", "\n", literal=True))
        .otherwise(col)
    )
    ascii_only = unix.str.len_bytes() == unix.str.len_chars()
    nfc = pl.when(ascii_only).then(unix).otherwise(unix.str.normalize("NFC"))
    return nfc.str.strip_chars(WHITESPACE)


def sha256_series(values: pl.Series) -> pl.Series:
    """sha256 hex of each value (already normalized), hashing each distinct value once:
    texts repeat a lot (reference answers, shared prompts)."""
    uniq = values.unique()
    digests = pl.Series(
        [hashlib.sha256(v.encode("utf-8")).hexdigest() for v in uniq.to_list()], dtype=pl.Utf8
    )
    return values.replace_strict(uniq, digests, return_dtype=pl.Utf8)


def pair_ids(namespace: str, frame: pl.DataFrame, extra: tuple[str, ...] = ()) -> pl.Series:
    """Content-addressed pair ids: sha256(namespace, prompt_id, chosen_id, rejected_id, *extra).
    `extra` names columns that are part of a pair's identity (e.g. the label of derived pairs)."""
    key = pl.concat_str(
        [
            pl.lit(namespace),
            "prompt_id",
            "chosen_id",
            "rejected_id",
            *(pl.col(c).cast(pl.Utf8) for c in extra),
        ],
        separator="\x1f",
    )
    return sha256_series(frame.select(key).to_series())
