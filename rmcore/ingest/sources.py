"""Reading preference data sources into records, losing nothing.

A source is a file (JSONL, JSONL.GZ, JSON array plain or gzip'd, Parquet, CSV), a
Hugging Face `save_to_disk` folder, or a hub id. Reading never drops a row: a line that
cannot be decoded or parsed becomes a record with a reason code, so the ingest can
quarantine it and the count `input rows = stored + quarantined` always holds.

JSON lines are read two ways. Column-wise first, with pyarrow: strict about types (a field
that changes from string to number fails the read), so typed columns can be trusted and
the batch builder maps the common formats without a per-record Python loop. When that
read fails or could differ from the record reader (invalid UTF-8, `null` lines, dates nested in
objects, a line over a parsing limit), the file goes to the record-by-record reader alone:
orjson, falling back to the standard library for NaN and lone surrogates. Polars' NDJSON
reader is not used because it silently coerces mixed-type fields to strings
(`"chosen": 5` becomes `"5"`), which would hide exactly the wrong-type rows we must
quarantine. One difference remains by design: column-wise, a key missing from a row
reads as null, so its provenance JSON lists it as null.

Before any parsing, text sources (JSON lines, JSON, CSV) are checked by content, never by
name: a UTF-8 byte-order mark is dropped, UTF-16 and UTF-32 files (with a byte-order mark)
are decoded to UTF-8, and archives, Parquet files and other binary content are refused with
a `SourceError` that says what the bytes look like. Parsing limits keep one hostile row from
taking the process down: a JSON line longer than `max_line_bytes` is quarantined as
`line_too_long` unparsed, and a record nesting objects/arrays deeper than `max_depth` as
`too_deep` (pyarrow crashes on ~100k levels and the standard library recurses, so deep
lines never reach either).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from rmcore.config import IngestConfig
from rmcore.errors import InvalidArgument, SourceError

FILE_KINDS = ("jsonl", "json", "parquet", "csv", "hf-disk", "hf-hub")
_DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv", ".gz")
_ORJSON_MAX_DEPTH = 1024  # orjson refuses deeper documents itself; max_depth must stay below
MAX_DEPTH_CAP = 1000


class Limits(NamedTuple):
    """Per-row parsing limits (see `IngestConfig.max_line_bytes` and `max_depth`)."""

    max_line_bytes: int = IngestConfig.max_line_bytes
    max_depth: int = IngestConfig.max_depth
    check_depth: bool = True  # False once the column-wise read showed no row is too deep


class ParsedRows(NamedTuple):
    """Per-row Python values. `records[i]` is a dict, or None when row i failed to parse
    (`errors[i]` then holds the reason code and `messages[i]` the detail). `raw[i]` is the
    original text of row i when only it can show the row (else None: encoded on demand)."""

    records: list[dict[str, Any] | None]
    errors: list[str | None]
    messages: list[str | None]
    raw: list[str | None]


_WHITESPACE = np.frombuffer(b" \t\n\r\x0b\x0c", dtype=np.uint8)  # what bytes.strip() drops
_SCAN = 1 << 26  # bytes per step of the newline scan: its temporaries stay ~64 MiB


class Lines:
    """The non-blank lines of a JSON-lines file as offsets into its bytes: a line is sliced
    out when it is read, so the file is held once (a list of 1M line objects doubled a
    1.4 GB file's memory; docs/RESULTS.md section 9). Line i is `data[starts[i]:ends[i]]`,
    without its newline (a CR of CRLF stays, as `bytes.split(b"\n")` leaves it)."""

    def __init__(self, data: bytes) -> None:
        buf = np.frombuffer(data, dtype=np.uint8)
        newlines = [np.flatnonzero(buf[i : i + _SCAN] == 10) + i for i in range(0, len(buf), _SCAN)]
        ends = np.concatenate([*newlines, [len(buf)]]).astype(np.int64)  # (L,)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        nonempty = ends > starts
        first = buf[np.minimum(starts, max(len(buf) - 1, 0))] if len(buf) else starts
        keep = nonempty & ~np.isin(first, _WHITESPACE)
        # a line starting with whitespace is blank only if all of it is: decided one by one
        for i in np.flatnonzero(nonempty & ~keep):
            keep[i] = bool(data[starts[i] : ends[i]].strip())
        self.data, self.starts, self.ends = data, starts[keep], ends[keep]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]]

    def __iter__(self) -> Iterator[bytes]:
        data = self.data
        return (data[s:e] for s, e in zip(self.starts.tolist(), self.ends.tolist(), strict=True))

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts


@dataclass
class RawRecords:
    """Rows of a source, in order, in up to two shapes. `table` holds them as typed columns
    when they could be read column-wise without loss (strict JSON lines, JSON-typed frames):
    the batch builder then maps the common formats without a Python loop. `rows`, the
    per-row Python values, are parsed on first use, so a source read column-wise pays
    for them only when its format needs them."""

    kind: str
    n_rows: int
    parse: Callable[[], ParsedRows] = field(repr=False)
    table: pl.DataFrame | None = None
    lines: Lines | None = field(default=None, repr=False)  # JSON lines: each row's bytes
    limits: Limits = field(default_factory=Limits)
    uri: str = ""
    utf8_error: str | None = None  # where the file stops being UTF-8 ("byte 0x.. at offset ..")

    def __len__(self) -> int:
        return self.n_rows

    @cached_property
    def rows(self) -> ParsedRows:
        return self.parse()

    @property
    def records(self) -> list[dict[str, Any] | None]:
        return self.rows.records

    def iter_records(self) -> Iterator[dict[str, Any] | None]:
        """Records in order, each parsed as it is reached: detection reads only the first few."""
        if "rows" not in self.__dict__:
            if self.lines is not None:
                return (_parse_line(line, self.limits)[0] for line in self.lines)
            if self.table is not None:
                return self.table.iter_rows(named=True)
        return iter(self.records)

    def unreadable(self) -> str | None:
        """Why no row became a record, when none did (None otherwise): the message for a
        source that is not data at all rather than a source with some bad rows."""
        if self.n_rows == 0 or any(r is not None for r in self.iter_records()):
            return None
        errors = [e for e in self.rows.errors if e]
        where = f"{self.uri}: " if self.uri else ""
        if errors.count("invalid_utf8") * 2 > len(errors):
            first = f" (first: {self.utf8_error})" if self.utf8_error else ""
            return (
                f"{where}not UTF-8: {errors.count('invalid_utf8')} of {self.n_rows} rows are not"
                f" valid UTF-8{first}; re-encode the file as UTF-8"
                " (e.g. `iconv -f latin1 -t utf-8`)"
            )
        counts = ", ".join(f"{e} {errors.count(e)}" for e in sorted(set(errors)))
        first = next(m for m in self.rows.messages if m)
        return f"{where}no row could be read ({counts}); the first: {first}"

    def raw_text(self, i: int) -> str:
        """Row i as stored in quarantine: its line as read, else its record as JSON."""
        if self.lines is not None:
            line = self.lines[i]
            if len(line) > self.limits.max_line_bytes:  # the limit protects the warehouse too
                head = line[:_RAW_HEAD].decode("utf-8", errors="backslashreplace")
                return f"{head}... [{len(line):,} bytes; truncated]"
            return line.decode("utf-8", errors="backslashreplace").rstrip("\r")
        if self.table is not None:
            return _dumps(self.table.row(i, named=True))
        raw = self.rows.raw[i]
        return raw if raw is not None else _dumps(self.records[i])


_RAW_HEAD = 1024  # bytes of a line over `max_line_bytes` kept in quarantine


def _dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


def detect_kind(uri: str) -> str:
    """File kind from the path (suffixes, folder layout); anything that is not a local path
    and looks like `owner/name` is a hub id."""
    p = Path(uri)
    if p.is_dir():
        if (
            (p / "dataset_info.json").exists()
            or (p / "dataset_dict.json").exists()
            or (p / "state.json").exists()
        ):
            return "hf-disk"
        raise SourceError(f"{uri} is a folder but not a Hugging Face `save_to_disk` folder")
    if p.exists():
        if _head(p, 4) == b"PAR1":  # by content: a Parquet file whatever its name
            return "parquet"
        name = p.name.lower().removesuffix(".gz")
        for suffix, kind in (
            (".jsonl", "jsonl"),
            (".ndjson", "jsonl"),
            (".json", "json"),
            (".parquet", "parquet"),
            (".csv", "csv"),
        ):
            if name.endswith(suffix):
                return kind
        raise SourceError(
            f"cannot tell the kind of {uri} from its name; pass --kind ({', '.join(FILE_KINDS)})"
        )
    looks_like_file = uri.lower().endswith(_DATA_SUFFIXES)
    if (
        "/" in uri
        and not uri.startswith((".", "/"))
        and uri.count("/") == 1
        and not looks_like_file
    ):
        return "hf-hub"
    raise SourceError(f"source not found: {uri}")


def _head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror or err}") from err


def check_source(uri: str, kind: str | None = None) -> str:
    """The source's kind, once it is known to exist and be readable: a cheap check (no
    parsing, no Prefect) that callers run before starting any work. Raises SourceError."""
    if kind is not None and kind not in FILE_KINDS:
        raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(FILE_KINDS)}")
    kind = kind or detect_kind(uri)
    if kind == "hf-hub":
        return kind
    p = Path(uri)
    if not p.exists():
        raise SourceError(f"source not found: {uri}")
    if kind == "hf-disk":
        if not p.is_dir():
            raise SourceError(f"{uri} is not a folder; --kind hf-disk needs a save_to_disk folder")
        if not os.access(p, os.R_OK | os.X_OK):
            raise SourceError(f"cannot read the folder {uri}: permission denied")
        return kind
    if p.is_dir():
        raise SourceError(f"{uri} is a folder, not a {kind} file")
    _head(p, 1)
    return kind


def check_hf_options(kind: str, hf_split: str | None, hf_config: str | None) -> None:
    """--hf-split and --hf-config only choose among a Hugging Face dataset's parts."""
    if hf_config is not None and kind != "hf-hub":
        raise InvalidArgument("--hf-config chooses a hub dataset's config; this source is not one")
    if hf_split is not None and kind not in ("hf-hub", "hf-disk"):
        raise InvalidArgument(
            "--hf-split chooses splits of a Hugging Face dataset; this source is a file"
            " (its rows carry their split in a `split` column, or get --split)"
        )


def content_hash(
    uri: str, kind: str, hf_config: str | None = None, hf_split: str | None = None
) -> str:
    """sha256 of the bytes (files), of every file in the folder (hf-disk), or of the
    dataset fingerprints (hub), with the chosen config and splits: an unchanged source
    re-ingests as a no-op, another split of it is another version."""
    h = hashlib.sha256()
    if hf_config is not None or hf_split is not None:
        h.update(f"config={hf_config}|split={hf_split}|".encode())
    p = Path(uri)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if kind == "hf-disk" else [p]
    if kind == "hf-hub":
        ds = _load_hub(uri, hf_config)
        parts = [ds[s] for s in ds] if hasattr(ds, "keys") else [ds]
        h.update("".join(d._fingerprint for d in parts).encode())
        return h.hexdigest()
    for f in files:
        if kind == "hf-disk":
            h.update(str(f.relative_to(p)).encode())
        try:
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        except OSError as err:
            raise SourceError(f"cannot read {f}: {err.strerror or err}") from err
    return h.hexdigest()


def _read_bytes(path: Path) -> bytes:
    """File bytes, gunzipped when the name says .gz or the magic bytes say gzip. A plain file
    whose first line happens to start with the gzip magic is read as it is (its bad line
    then goes to quarantine) rather than failing the whole source."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror or err}") from err
    if path.name.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as err:
            if path.name.lower().endswith(".gz"):
                raise SourceError(f"{path} is not a valid gzip file: {err}") from err
    return data


def _parse(text_or_bytes: bytes | str) -> tuple[Any, str | None, str | None]:
    """(value, error code, message). orjson first; the standard library accepts NaN and lone
    surrogates, which we want to see as invalid labels / invalid UTF-8, not as parse errors."""
    try:
        return orjson.loads(text_or_bytes), None, None
    except orjson.JSONDecodeError as err:
        if "depth" in str(err) or "ecursion" in str(err):
            return None, "too_deep", None  # the caller names its limit
    try:
        text = text_or_bytes.decode("utf-8") if isinstance(text_or_bytes, bytes) else text_or_bytes
        value = json.loads(text)
    except UnicodeDecodeError as err:
        return None, "invalid_utf8", f"line is not valid UTF-8: {err}"
    except json.JSONDecodeError as err:
        return None, "unparseable", f"not valid JSON: {err.msg} at column {err.colno}"
    except RecursionError:
        return None, "too_deep", None
    if _has_surrogates(json.dumps(value, ensure_ascii=False)):
        return (
            None,
            "invalid_utf8",
            "a string holds an escaped lone surrogate (not encodable as UTF-8)",
        )
    return value, None, None


def _too_deep(limits: Limits) -> str:
    return f"objects/arrays nest more than {limits.max_depth} levels deep (the max_depth limit)"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests objects/arrays more than `limit` levels (a flat record is 1),
    level by level without recursion, stopping at the limit."""
    level, depth = [value], 0
    while level := [v for v in level if isinstance(v, dict | list)]:
        depth += 1
        if depth > limit:
            return True
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)]
    return False


def _may_be_deep(line: bytes, limit: int) -> bool:
    """A cheap bound: a line with at most `limit` brackets cannot nest deeper."""
    return line.count(b"[") + line.count(b"{") > limit


def _parse_line(
    line: bytes, limits: Limits
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    if len(line) > limits.max_line_bytes:
        return (
            None,
            "line_too_long",
            f"line is {len(line):,} bytes, over the limit max_line_bytes={limits.max_line_bytes:,}",
        )
    value, err, msg = _parse(line)
    if err is None and not isinstance(value, dict):
        err, msg = "unparseable", f"expected a JSON object, got {type(value).__name__}"
    elif err is None and limits.check_depth and _may_be_deep(line, limits.max_depth):
        err = "too_deep" if _deeper_than(value, limits.max_depth) else None
    if err == "too_deep":
        msg = _too_deep(limits)
    return (value if err is None else None), err, msg


def _parse_lines(lines: Lines, limits: Limits) -> ParsedRows:
    parsed = [_parse_line(line, limits) for line in lines]
    records, errors, messages = ([p[k] for p in parsed] for k in range(3))
    return ParsedRows(records, errors, messages, [None] * len(lines))


_ARROW_SAFE_BRACKETS = 1000  # pyarrow recurses per level and crashes near 100k levels
# Every byte but the brackets and the newline: deleting them leaves each line's brackets.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{\n")


def _record_only(data: bytes, lines: Lines, limits: Limits) -> bool:
    """Lines pyarrow reads differently from the record reader: `null` (an all-null row, and a
    crash of the whole process when it comes first), lines over `max_line_bytes`, and lines
    that may nest deep enough to crash pyarrow (more brackets than `_ARROW_SAFE_BRACKETS`):
    the record reader quarantines them. The brackets of all lines are counted in one pass
    over `data` (the lines of `lines` are its lines) rather than line by line (3x faster)."""
    lengths = lines.lengths
    if any(lines[i].strip() == b"null" for i in np.flatnonzero(lengths < 16)):
        return True
    if lengths.max() > limits.max_line_bytes:
        return True
    brackets = data.translate(None, _NOT_BRACKETS).split(b"\n")
    return max(map(len, brackets)) > _ARROW_SAFE_BRACKETS


def _arrow_depth(dtype: pa.DataType) -> int:
    """Levels of objects/arrays a value of this type nests (a string is 0)."""
    inner = [dtype.field(i).type for i in range(dtype.num_fields)]
    if pa.types.is_struct(dtype) or pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return 1 + max(map(_arrow_depth, inner), default=0)
    return 0


def _utf8_error(data: bytes) -> str | None:
    """None for valid UTF-8, else where it first breaks: "byte 0x.. at offset N"."""
    if data.isascii():  # the common case, without decoding a copy
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"byte 0x{data[err.start]:02x} at offset {err.start}"
    return None


# Text encodings recognised by their byte-order mark (UTF-32 before UTF-16: FF FE 00 00).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)

# What binary content looks like, by its magic bytes at offset 0.
_MAGIC = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive (empty)"),
    (b"PAR1", "a Parquet file (pass --kind parquet)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x93NUMPY", "a NumPy array"),
    (b"\x7fELF", "an executable"),
)
_SNIFF_BYTES = 8000  # like git: NUL bytes in the first 8000 bytes mean binary


def _looks_binary(data: bytes) -> str | None:
    """What `data` looks like when it is not text, else None."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    if data[4:10] == b"1AY&SY" and data[:3] == b"BZh":
        return "a bzip2 archive"
    if data[257:262] == b"ustar":
        return "a tar archive"
    if data[8:12] == b"DUCK":
        return "a DuckDB database"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if len(head) < 16:
            pass
        elif odd > len(head) // 4 and even == 0:
            return "UTF-16 (little-endian) text without a byte-order mark; re-encode it as UTF-8"
        if even > len(head) // 4 and odd == 0:
            return "UTF-16 (big-endian) text without a byte-order mark; re-encode it as UTF-8"
        return "binary data (it holds NUL bytes)"
    return None


def _read_text(path: Path, kind: str) -> bytes:
    """The bytes of a text source as UTF-8: gunzipped, a byte-order mark dropped (UTF-16/32
    decoded), refused when the content is binary whatever the name says."""
    data = _read_bytes(path)
    if data.startswith(codecs.BOM_UTF8):  # dropped: rows stay valid or invalid one by one
        data = data[len(codecs.BOM_UTF8) :]
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                data = data.decode(codec).encode("utf-8")
            except UnicodeError as err:
                raise SourceError(
                    f"{path} starts with a {name} byte-order mark but is not valid {name}"
                    f" ({err.reason} at offset {err.start}); re-encode it as UTF-8"
                ) from err
            break
    what = _looks_binary(data)
    if what is not None:
        raise SourceError(f"{path} is not {kind} text: its content looks like {what}")
    return data


def _has_temporal(dtype: pa.DataType) -> bool:
    return pa.types.is_temporal(dtype) or any(
        _has_temporal(dtype.field(i).type) for i in range(dtype.num_fields)
    )


def _arrow_json(data: bytes, block_size: int, schema: pa.Schema | None) -> pa.Table:
    """pyarrow's JSON read; the parser's scratch memory (about 1.5x the table, kept by the
    allocator after the read) is handed back at once: 1.6 GB at 1M pairs (RESULTS 9)."""
    try:
        return pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(block_size=block_size),
            parse_options=pa_json.ParseOptions(explicit_schema=schema),
        )
    finally:
        pa.default_memory_pool().release_unused()


def _strict_table(
    data: bytes, lines: Lines, limits: Limits, utf8_error: str | None
) -> pl.DataFrame | None:
    """The JSON lines as typed columns, or None when some row needs the record reader.
    pyarrow rejects the syntax orjson rejects and fails when a field changes type, but it
    accepts invalid UTF-8, reads ISO dates as timestamps (pinned back to strings here) and
    treats a few lines differently (`_record_only`)."""
    if not lines or utf8_error is not None or _record_only(data, lines, limits):
        return None
    block_size = max(1 << 20, int(lines.lengths.max()) + 1)  # a row must fit in one block
    try:
        table = _arrow_json(data, block_size, None)
        fields = [
            f.with_type(pa.string()) if pa.types.is_temporal(f.type) else f for f in table.schema
        ]
        if fields != list(table.schema):
            table = _arrow_json(data, block_size, pa.schema(fields))
    except pa.ArrowInvalid:
        return None
    if table.num_rows != len(lines) or any(_has_temporal(f.type) for f in table.schema):
        return None
    # The inferred schema nests as deep as the deepest row: within the limit, every row is.
    if 1 + max((_arrow_depth(f.type) for f in table.schema), default=0) > limits.max_depth:
        return None
    return pl.from_arrow(table)


def _read_jsonl(data: bytes, columnar: bool, limits: Limits) -> RawRecords:
    lines = Lines(data)
    utf8_error = _utf8_error(data)
    table = _strict_table(data, lines, limits, utf8_error) if columnar else None
    if table is not None:  # no row nests too deep: the record reader need not walk them
        limits = limits._replace(check_depth=False)
    return RawRecords(
        "jsonl",
        len(lines),
        partial(_parse_lines, lines, limits),
        table,
        lines,
        limits=limits,
        utf8_error=utf8_error,
    )


def _read_json_array(data: bytes, columnar: bool, limits: Limits) -> RawRecords:
    value, err, msg = _parse(data)
    if err is not None:
        # A JSON-lines file named .json is common enough to accept.
        if data.lstrip()[:1] == b"{":
            return _read_jsonl(data, columnar, limits)
        if err == "too_deep":
            msg = _too_deep(limits)
        elif err == "invalid_utf8" and (where := _utf8_error(data)):
            msg = f"not UTF-8: {where}; re-encode the file as UTF-8"
        raise SourceError(f"the file is not a JSON array: {msg}")
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise SourceError(f"expected a JSON array of records, got {type(value).__name__}")
    check = _may_be_deep(data, limits.max_depth + 1)  # the array itself is one level
    deep = [check and isinstance(v, dict) and _deeper_than(v, limits.max_depth) for v in value]
    bad = [
        "too_deep" if d else None if isinstance(v, dict) else "unparseable"
        for v, d in zip(value, deep, strict=True)
    ]
    too_deep = _too_deep(limits)
    rows = ParsedRows(
        [v if b is None else None for v, b in zip(value, bad, strict=True)],
        bad,
        [
            None if b is None else too_deep if d else "array element is not a JSON object"
            for b, d in zip(bad, deep, strict=True)
        ],
        [
            None if b is None else "[not stored: too deep]" if d else _dumps(v)
            for v, b, d in zip(value, bad, deep, strict=True)
        ],
    )
    return RawRecords("json", len(value), lambda: rows, limits=limits)


def _json_typed(dtype: pl.DataType) -> bool:
    """Types whose values read the same as JSON from the table as from a Python record."""
    if isinstance(dtype, pl.List | pl.Struct):
        inner = [f.dtype for f in dtype.fields] if isinstance(dtype, pl.Struct) else [dtype.inner]
        return all(_json_typed(t) for t in inner)
    return dtype in (pl.String, pl.Boolean, pl.Int64, pl.Float64, pl.Null)


def _dtype_depth(dtype: pl.DataType) -> int:
    if isinstance(dtype, pl.Struct):
        return 1 + max((_dtype_depth(f.dtype) for f in dtype.fields), default=0)
    if isinstance(dtype, pl.List | pl.Array):
        return 1 + _dtype_depth(dtype.inner)
    return 0


def _from_frame(
    kind: str, frame: pl.DataFrame, columnar: bool, limits: Limits, uri: str = ""
) -> RawRecords:
    for col, dtype in frame.schema.items():
        if 1 + _dtype_depth(dtype) > limits.max_depth:  # the record is one level itself
            raise SourceError(
                f"{uri}: column {col!r} nests more than {limits.max_depth} levels deep"
                " (the max_depth limit)"
            )

    def rows() -> ParsedRows:
        n = frame.height
        return ParsedRows(frame.to_dicts(), [None] * n, [None] * n, [None] * n)

    typed = columnar and all(_json_typed(t) for t in frame.schema.values())
    return RawRecords(kind, frame.height, rows, frame if typed else None, limits=limits, uri=uri)


def _read_csv(data: bytes, columnar: bool, limits: Limits, uri: str) -> RawRecords:
    if not data.strip():
        raise SourceError(f"{uri} is empty: a CSV source needs a header row and data rows")
    try:
        frame = pl.read_csv(data, infer_schema=False)
    except pl.exceptions.ComputeError:
        # Invalid UTF-8 or a ragged row somewhere: read row by row so that only the bad rows
        # are lost to quarantine.
        return _read_csv_rows(data, limits, uri)
    return _from_frame("csv", frame, columnar, limits, uri)


def _read_csv_rows(data: bytes, limits: Limits, uri: str) -> RawRecords:
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        table = [r for r in csv.reader(io.StringIO(text)) if r]  # blank lines are no rows
    except csv.Error as err:
        raise SourceError(f"{uri} is not a readable CSV file: {err}") from err
    header, body = table[0], table[1:]
    rows = ParsedRows([], [], [], [])
    for fields in body:
        reason, message = None, None
        if len(fields) > len(header):
            reason = "wrong_field_count"
            message = f"row has {len(fields)} fields, the header has {len(header)}"
        elif any(_has_surrogates(v) for v in fields):
            reason, message = "invalid_utf8", "row is not valid UTF-8"
        padded = fields + [None] * (len(header) - len(fields))  # short rows: missing fields
        rec = dict(zip(header, padded, strict=False))
        rows.records.append(rec if reason is None else None)
        rows.errors.append(reason)
        rows.messages.append(message)
        raw = rec if reason != "wrong_field_count" else fields
        rows.raw.append(_dumps(_escape(raw)))
    utf8_error = _utf8_error(data)
    return RawRecords("csv", len(body), lambda: rows, limits=limits, uri=uri, utf8_error=utf8_error)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escape(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _escape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_escape(x) for x in v]
    if isinstance(v, str) and _has_surrogates(v):
        return v.encode("utf-8", errors="surrogateescape").decode(
            "utf-8", errors="backslashreplace"
        )
    return v


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _load_hub(uri: str, config: str | None = None):
    """The hub dataset with every split (a DatasetDict), or the one a hub dataset has."""
    import datasets

    try:
        return datasets.load_dataset(uri, name=config)
    except Exception as err:  # any failure of the hub client: offline, unknown id, no config
        offline = any(
            os.environ.get(v, "").lower() in ("1", "true", "yes")
            for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
        )
        hint = " (offline mode is on: HF_HUB_OFFLINE)" if offline else ""
        raise SourceError(
            f"cannot load {uri!r} from the Hugging Face Hub ({_one_line(err)}); a hub id needs"
            f" a network{hint} or a local copy: pass a `save_to_disk` folder or a file instead"
        ) from err


def _splits_frame(ds: Any, split: str | None, where: str) -> pl.DataFrame:
    """The rows of a Dataset, or of the chosen splits of a DatasetDict (`split`: one name or
    a comma-separated list; default every split). A row of a DatasetDict gets its split name
    as `split` (unless the data has a split column of its own; see rmcore.ingest.batch.canonical_split
    for how names such as `train_prefs` are read) and as `hf_split`, kept in provenance."""
    if not hasattr(ds, "keys"):  # one Dataset: no split names to choose from
        if split is not None:
            raise SourceError(f"{where} holds one dataset without splits; drop --hf-split")
        return pl.from_arrow(ds.data.table)
    names = list(ds.keys())
    wanted = names if split is None else [s.strip() for s in split.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in names]
    if unknown or not wanted:
        raise SourceError(
            f"{where} has no split {', '.join(map(repr, unknown)) or repr(split)};"
            f" it has {', '.join(names)}"
        )
    frames = []
    for name in wanted:
        frame = pl.from_arrow(ds[name].data.table)
        own = "split" in frame.columns
        frame = frame.with_columns(
            pl.lit(name).alias("hf_split"), *(() if own else (pl.lit(name).alias("split"),))
        )
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed")


def _read_hf_disk(path: Path, split: str | None, columnar: bool, limits: Limits) -> RawRecords:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:  # garbage state.json, missing arrow files, a foreign folder
        raise SourceError(
            f"{path} is not a readable Hugging Face `save_to_disk` folder ({_one_line(err)});"
            " re-create it with `Dataset.save_to_disk`"
        ) from err
    frame = _splits_frame(ds, split, str(path))
    return _from_frame("hf-disk", frame, columnar, limits, str(path))


def _read_parquet(path: Path, columnar: bool, limits: Limits) -> RawRecords:
    head = _head(path, 4)
    if head != b"PAR1":
        data = _read_bytes(path)
        what = _looks_binary(data) or ("empty" if not data else "text")
        raise SourceError(f"{path} is not a Parquet file (no PAR1 magic): its content is {what}")
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as err:
        raise SourceError(f"{path} is not a readable Parquet file ({_one_line(err)})") from err
    return _from_frame("parquet", frame, columnar, limits, str(path))


def read_source(
    uri: str,
    kind: str | None = None,
    *,
    split: str | None = None,
    hf_config: str | None = None,
    columnar: bool = True,
    max_line_bytes: int = IngestConfig.max_line_bytes,
    max_depth: int = IngestConfig.max_depth,
) -> RawRecords:
    """Every row of the source, in order; rows that fail to decode, parse or pass a parsing
    limit are kept as `None` records with a reason code. `columnar=False` skips the
    column-wise JSON-lines read (the record reader then sees every row, as it does whenever
    that read fails). `split` and `hf_config` choose the splits and the config of a Hugging
    Face source. Raises SourceError for a source that holds no rows or is not data."""
    if max_line_bytes < 1:
        raise InvalidArgument(f"max_line_bytes must be positive, got {max_line_bytes}")
    if not 1 <= max_depth <= MAX_DEPTH_CAP:
        raise InvalidArgument(f"max_depth must be in [1, {MAX_DEPTH_CAP}], got {max_depth}")
    limits = Limits(max_line_bytes=max_line_bytes, max_depth=max_depth)
    kind = kind or detect_kind(uri)
    check_hf_options(kind, split, hf_config)
    if kind == "hf-hub":
        frame = _splits_frame(_load_hub(uri, hf_config), split, uri)
        raw = _from_frame("hf-hub", frame, columnar, limits, uri)
    elif kind == "hf-disk":
        raw = _read_hf_disk(Path(uri), split, columnar, limits)
    elif kind not in FILE_KINDS:
        raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(FILE_KINDS)}")
    else:
        path = Path(uri)
        if not path.exists():
            raise SourceError(f"source not found: {uri}")
        if path.is_dir():
            raise SourceError(f"{uri} is a folder, not a {kind} file")
        if kind == "parquet":
            raw = _read_parquet(path, columnar, limits)
        else:
            data = _read_text(path, kind)
            if kind == "csv":
                raw = _read_csv(data, columnar, limits, uri)
            elif kind == "json":
                raw = _read_json_array(data, columnar, limits)
            else:
                raw = _read_jsonl(data, columnar, limits)
    if raw.n_rows == 0:
        raise SourceError(f"{uri} holds no rows (an empty file, or a header only)")
    raw.uri = uri
    return raw
