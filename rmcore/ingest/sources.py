"""Reading preference data sources into records, losing nothing.

A source is a file (JSONL, JSONL.GZ, JSON array plain or gzip'd, Parquet, CSV), a
Hugging Face `save_to_disk` folder, or a hub id. Reading never drops a row: a line that
cannot be decoded or parsed becomes a record with a reason code, so the ingest can
quarantine it and the count `input rows = stored + quarantined` always holds.

JSON lines are read two ways. Column-wise first, with pyarrow: strict about types (a field
that changes from string to number fails the read), so typed columns can be trusted and
the batch builder maps the common formats without a per-record Python loop. When that
read fails or could differ from the record reader (invalid UTF-8, `null` lines, a leading
BOM, dates nested in objects), the file goes to the record-by-record reader alone:
orjson, falling back to the standard library for NaN and lone surrogates. Polars' NDJSON
reader is not used because it silently coerces mixed-type fields to strings
(`"chosen": 5` becomes `"5"`), which would hide exactly the wrong-type rows we must
quarantine. One difference remains by design: column-wise, a key missing from a row
reads as null, so its provenance JSON lists it as null.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

FILE_KINDS = ("jsonl", "json", "parquet", "csv", "hf-disk", "hf-hub")


class SourceError(ValueError):
    """The source as a whole cannot be read (missing file, unknown kind, not JSON at all)."""


class ParsedRows(NamedTuple):
    """Per-row Python values. `records[i]` is a dict, or None when row i failed to parse
    (`errors[i]` then holds the reason code and `messages[i]` the detail). `raw[i]` is the
    original text of row i when only it can show the row (else None: encoded on demand)."""

    records: list[dict[str, Any] | None]
    errors: list[str | None]
    messages: list[str | None]
    raw: list[str | None]


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
    lines: list[bytes] | None = field(default=None, repr=False)  # JSON lines: each row's bytes

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
                return (_parse_line(line)[0] for line in self.lines)
            if self.table is not None:
                return self.table.iter_rows(named=True)
        return iter(self.records)

    def raw_text(self, i: int) -> str:
        """Row i as stored in quarantine: its line as read, else its record as JSON."""
        if self.lines is not None:
            return self.lines[i].decode("utf-8", errors="backslashreplace").rstrip("\r")
        if self.table is not None:
            return _dumps(self.table.row(i, named=True))
        raw = self.rows.raw[i]
        return raw if raw is not None else _dumps(self.records[i])


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
    if "/" in uri and not uri.startswith((".", "/")) and uri.count("/") == 1:
        return "hf-hub"
    raise SourceError(f"source not found: {uri}")


def content_hash(uri: str, kind: str) -> str:
    """sha256 of the bytes (files), of every file in the folder (hf-disk), or of the
    dataset fingerprint (hub): an unchanged source re-ingests as a no-op."""
    h = hashlib.sha256()
    p = Path(uri)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if kind == "hf-disk" else [p]
    if kind == "hf-hub":
        h.update(_load_hub(uri)._fingerprint.encode())
        return h.hexdigest()
    for f in files:
        if kind == "hf-disk":
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _read_bytes(path: Path) -> bytes:
    """File bytes, gunzipped when the name says .gz or the magic bytes say gzip. A plain file
    whose first line happens to start with the gzip magic is read as it is (its bad line
    then goes to quarantine) rather than failing the whole source."""
    data = path.read_bytes()
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
    except orjson.JSONDecodeError:
        pass
    try:
        text = text_or_bytes.decode("utf-8") if isinstance(text_or_bytes, bytes) else text_or_bytes
        value = json.loads(text)
    except UnicodeDecodeError as err:
        return None, "invalid_utf8", f"line is not valid UTF-8: {err}"
    except json.JSONDecodeError as err:
        return None, "unparseable", f"not valid JSON: {err.msg} at column {err.colno}"
    if _has_surrogates(json.dumps(value, ensure_ascii=False)):
        return (
            None,
            "invalid_utf8",
            "a string holds an escaped lone surrogate (not encodable as UTF-8)",
        )
    return value, None, None


def _parse_line(line: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    value, err, msg = _parse(line)
    if err is None and not isinstance(value, dict):
        err, msg = "unparseable", f"expected a JSON object, got {type(value).__name__}"
    return (value if err is None else None), err, msg


def _parse_lines(lines: list[bytes]) -> ParsedRows:
    parsed = [_parse_line(line) for line in lines]
    records, errors, messages = ([p[k] for p in parsed] for k in range(3))
    return ParsedRows(records, errors, messages, [None] * len(lines))


_BOM = b"\xef\xbb\xbf"


def _record_only(data: bytes, lines: list[bytes]) -> bool:
    """Lines pyarrow reads differently from the record reader: `null` (an all-null row, and a
    crash of the whole process when it comes first) and a byte-order mark at the start of
    the file (skipped; anywhere else pyarrow fails on it)."""
    return data.startswith(_BOM) or any(ln.strip() == b"null" for ln in lines if len(ln) < 16)


def _is_utf8(data: bytes) -> bool:
    if data.isascii():  # the common case, without decoding a copy
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _has_temporal(dtype: pa.DataType) -> bool:
    return pa.types.is_temporal(dtype) or any(
        _has_temporal(dtype.field(i).type) for i in range(dtype.num_fields)
    )


def _arrow_json(data: bytes, block_size: int, schema: pa.Schema | None) -> pa.Table:
    return pa_json.read_json(
        io.BytesIO(data),
        read_options=pa_json.ReadOptions(block_size=block_size),
        parse_options=pa_json.ParseOptions(explicit_schema=schema),
    )


def _strict_table(data: bytes, lines: list[bytes]) -> pl.DataFrame | None:
    """The JSON lines as typed columns, or None when some row needs the record reader.
    pyarrow rejects the syntax orjson rejects and fails when a field changes type, but it
    accepts invalid UTF-8, reads ISO dates as timestamps (pinned back to strings here) and
    treats a few lines differently (`_record_only`)."""
    if not lines or _record_only(data, lines) or not _is_utf8(data):
        return None
    block_size = max(1 << 20, max(map(len, lines)) + 1)  # a row must fit in one block
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
    return pl.from_arrow(table)


def _read_jsonl(data: bytes, columnar: bool) -> RawRecords:
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    table = _strict_table(data, lines) if columnar else None
    return RawRecords("jsonl", len(lines), partial(_parse_lines, lines), table, lines)


def _read_json_array(data: bytes, columnar: bool) -> RawRecords:
    value, err, msg = _parse(data)
    if err is not None:
        # A JSON-lines file named .json is common enough to accept.
        if data.lstrip()[:1] == b"{":
            return _read_jsonl(data, columnar)
        raise SourceError(f"the file is not a JSON array: {msg}")
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise SourceError(f"expected a JSON array of records, got {type(value).__name__}")
    bad = [None if isinstance(v, dict) else "unparseable" for v in value]
    rows = ParsedRows(
        [v if isinstance(v, dict) else None for v in value],
        bad,
        [None if b is None else "array element is not a JSON object" for b in bad],
        [None if isinstance(v, dict) else _dumps(v) for v in value],
    )
    return RawRecords("json", len(value), lambda: rows)


def _json_typed(dtype: pl.DataType) -> bool:
    """Types whose values read the same as JSON from the table as from a Python record."""
    if isinstance(dtype, pl.List | pl.Struct):
        inner = [f.dtype for f in dtype.fields] if isinstance(dtype, pl.Struct) else [dtype.inner]
        return all(_json_typed(t) for t in inner)
    return dtype in (pl.String, pl.Boolean, pl.Int64, pl.Float64, pl.Null)


def _from_frame(kind: str, frame: pl.DataFrame, columnar: bool) -> RawRecords:
    def rows() -> ParsedRows:
        n = frame.height
        return ParsedRows(frame.to_dicts(), [None] * n, [None] * n, [None] * n)

    typed = columnar and all(_json_typed(t) for t in frame.schema.values())
    return RawRecords(kind, frame.height, rows, frame if typed else None)


def _read_csv(data: bytes, columnar: bool) -> RawRecords:
    try:
        frame = pl.read_csv(data, infer_schema=False)
    except pl.exceptions.ComputeError:
        # Invalid UTF-8 somewhere: decode row by row so only the bad rows are lost to quarantine.
        text = data.decode("utf-8", errors="surrogateescape")
        rows = ParsedRows([], [], [], [])
        for row in csv.DictReader(io.StringIO(text)):
            bad = any(isinstance(v, str) and _has_surrogates(v) for v in row.values())
            rows.records.append(None if bad else row)
            rows.errors.append("invalid_utf8" if bad else None)
            rows.messages.append("row is not valid UTF-8" if bad else None)
            rows.raw.append(_dumps({k: _escape(v) for k, v in row.items()}))
        return RawRecords("csv", len(rows.records), lambda: rows)
    return _from_frame("csv", frame, columnar)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escape(v: Any) -> Any:
    if isinstance(v, str) and _has_surrogates(v):
        return v.encode("utf-8", errors="surrogateescape").decode(
            "utf-8", errors="backslashreplace"
        )
    return v


def _load_hub(uri: str, split: str = "train"):
    import datasets

    return datasets.load_dataset(uri, split=split)


def _read_hf_disk(path: Path, split: str | None, columnar: bool) -> RawRecords:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        if split is None and len(names) > 1:
            frames = [
                pl.from_arrow(ds[s].data.table).with_columns(pl.lit(s).alias("split"))
                for s in names
            ]
            return _from_frame("hf-disk", pl.concat(frames, how="diagonal_relaxed"), columnar)
        ds = ds[split or names[0]]
    return _from_frame("hf-disk", pl.from_arrow(ds.data.table), columnar)


def read_source(
    uri: str, kind: str | None = None, *, split: str | None = None, columnar: bool = True
) -> RawRecords:
    """Every row of the source, in order; rows that fail to decode or parse are kept as
    `None` records with a reason code. `columnar=False` skips the column-wise JSON-lines
    read (the record reader then sees every row, as it does whenever that read fails)."""
    kind = kind or detect_kind(uri)
    if kind == "hf-hub":
        table = _load_hub(uri, split or "train").data.table
        return _from_frame("hf-hub", pl.from_arrow(table), columnar)
    if kind == "hf-disk":
        return _read_hf_disk(Path(uri), split, columnar)
    path = Path(uri)
    if not path.exists():
        raise SourceError(f"source not found: {uri}")
    if kind == "parquet":
        return _from_frame("parquet", pl.read_parquet(path), columnar)
    data = _read_bytes(path)
    if kind == "jsonl":
        return _read_jsonl(data, columnar)
    if kind == "json":
        return _read_json_array(data, columnar)
    if kind == "csv":
        return _read_csv(data, columnar)
    raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(FILE_KINDS)}")
