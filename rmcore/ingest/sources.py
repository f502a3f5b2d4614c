"""Reading preference data sources into records, losing nothing.

A source is a file (JSONL, JSONL.GZ, JSON array plain or gzip'd, Parquet, CSV), a
Hugging Face `save_to_disk` folder, or a hub id. Reading never drops a row: a line that
cannot be decoded or parsed becomes a record with a reason code, so the ingest can
quarantine it and the count `input rows = stored + quarantined` always holds.

JSON is parsed record by record (orjson, falling back to the standard library for
NaN and lone surrogates) rather than with polars' NDJSON reader, because polars
silently coerces mixed-type fields to strings (`"chosen": 5` becomes `"5"`), which
would hide exactly the wrong-type rows we must quarantine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

FILE_KINDS = ("jsonl", "json", "parquet", "csv", "hf-disk", "hf-hub")


class SourceError(ValueError):
    """The source as a whole cannot be read (missing file, unknown kind, not JSON at all)."""


@dataclass
class RawRecords:
    """Rows of a source, in order. `records[i]` is a dict, or None when row i failed to parse
    (`errors[i]` then holds the reason code and `messages[i]` the detail). `raw[i]` is the
    original text of row i when the source is textual, else None (encoded on demand)."""

    kind: str
    records: list[dict[str, Any] | None]
    raw: list[str | None]
    errors: list[str | None] = field(default_factory=list)
    messages: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def raw_text(self, i: int) -> str:
        if self.raw[i] is not None:
            return self.raw[i]  # type: ignore[return-value]
        return json.dumps(self.records[i], ensure_ascii=False, default=str)


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


def _read_jsonl(data: bytes) -> RawRecords:
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    out = RawRecords(
        "jsonl", [None] * len(lines), [None] * len(lines), [None] * len(lines), [None] * len(lines)
    )
    for i, line in enumerate(lines):
        value, err, msg = _parse(line)
        out.raw[i] = line.decode("utf-8", errors="backslashreplace").rstrip("\r")
        if err is None and not isinstance(value, dict):
            err, msg = "unparseable", f"expected a JSON object, got {type(value).__name__}"
        out.records[i], out.errors[i], out.messages[i] = (value if err is None else None), err, msg
    return out


def _read_json_array(data: bytes) -> RawRecords:
    value, err, msg = _parse(data)
    if err is not None:
        # A JSON-lines file named .json is common enough to accept.
        if data.lstrip()[:1] == b"{":
            return _read_jsonl(data)
        raise SourceError(f"the file is not a JSON array: {msg}")
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise SourceError(f"expected a JSON array of records, got {type(value).__name__}")
    bad = [None if isinstance(v, dict) else "unparseable" for v in value]
    return RawRecords(
        "json",
        [v if isinstance(v, dict) else None for v in value],
        [None if isinstance(v, dict) else json.dumps(v, ensure_ascii=False) for v in value],
        bad,
        [None if b is None else "array element is not a JSON object" for b in bad],
    )


def _from_frame(kind: str, frame: pl.DataFrame) -> RawRecords:
    records = frame.to_dicts()
    n = len(records)
    return RawRecords(kind, records, [None] * n, [None] * n, [None] * n)


def _read_csv(data: bytes) -> RawRecords:
    try:
        frame = pl.read_csv(data, infer_schema=False)
    except pl.exceptions.ComputeError:
        # Invalid UTF-8 somewhere: decode row by row so only the bad rows are lost to quarantine.
        import csv
        import io

        text = data.decode("utf-8", errors="surrogateescape")
        rows = list(csv.DictReader(io.StringIO(text)))
        out = RawRecords("csv", [], [], [], [])
        for row in rows:
            bad = any(isinstance(v, str) and _has_surrogates(v) for v in row.values())
            raw = json.dumps({k: _escape(v) for k, v in row.items()}, ensure_ascii=False)
            out.records.append(None if bad else row)
            out.raw.append(raw)
            out.errors.append("invalid_utf8" if bad else None)
            out.messages.append("row is not valid UTF-8" if bad else None)
        return out
    return _from_frame("csv", frame)


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


def _read_hf_disk(path: Path, split: str | None) -> RawRecords:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        if split is None and len(names) > 1:
            frames = [
                pl.from_arrow(ds[s].data.table).with_columns(pl.lit(s).alias("split"))
                for s in names
            ]
            return _from_frame("hf-disk", pl.concat(frames, how="diagonal_relaxed"))
        ds = ds[split or names[0]]
    return _from_frame("hf-disk", pl.from_arrow(ds.data.table))


def read_source(uri: str, kind: str | None = None, *, split: str | None = None) -> RawRecords:
    """Every row of the source, in order; rows that fail to decode or parse are kept as
    `None` records with a reason code."""
    kind = kind or detect_kind(uri)
    if kind == "hf-hub":
        return _from_frame("hf-hub", pl.from_arrow(_load_hub(uri, split or "train").data.table))
    if kind == "hf-disk":
        return _read_hf_disk(Path(uri), split)
    path = Path(uri)
    if not path.exists():
        raise SourceError(f"source not found: {uri}")
    if kind == "parquet":
        return _from_frame("parquet", pl.read_parquet(path))
    data = _read_bytes(path)
    if kind == "jsonl":
        return _read_jsonl(data)
    if kind == "json":
        return _read_json_array(data)
    if kind == "csv":
        return _read_csv(data)
    raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(FILE_KINDS)}")
