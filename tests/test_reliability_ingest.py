"""Reliability probes of the ingest (issue 12): encodings, binary content, parsing limits,
empty and malformed CSV / Parquet / HF sources, concurrent ingests of one file.

Each probe builds its bad source in the test and ends either stored-and-quarantined with the
exact reason codes (counted in a real DuckDB warehouse: input = stored + quarantined) or in
a one-line SourceError (exit code 3). The stage function is called directly (no Prefect)
except for the probes that need the CLI: a missing source must fail before Prefect starts,
and two `rmcurate ingest` processes of one file must resolve to one dataset version.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from rmcore.config import IngestConfig
from rmcore.errors import SourceError
from rmcore.ingest.batch import build_batch
from rmcore.ingest.sources import check_source, read_source
from rmcore.stages import ingest as stage
from warehouse.connection import writer

ROOT = Path(__file__).resolve().parents[1]
RMCURATE = str(Path(sys.executable).with_name("rmcurate"))
ROWS = [
    {"prompt": "Wie geht's? café", "chosen": "Gut, danke. naïve", "rejected": "Nein."},
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
]
CONFIG = IngestConfig(quality=False)


def jsonl(rows: list[dict] = ROWS) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def nested(depth: int) -> bytes:
    """A record whose `meta` field nests `depth` arrays (the record itself is one level more)."""
    return (
        b'{"prompt": "p", "chosen": "a", "rejected": "b", "meta": '
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )


def ingest(path: Path, warehouse: str, config: IngestConfig = CONFIG, name: str = "probe"):
    """The stage as the flow runs it, then the warehouse's own counts for that version."""
    kind, digest = stage.fingerprint(str(path), None)
    summary = stage.parse_validate_store(
        warehouse,
        uri=str(path),
        kind=kind,
        fmt=None,
        name=name,
        digest=digest,
        config=config,
        flow_run_id=None,
    )
    return summary, warehouse_counts(warehouse)


def warehouse_counts(warehouse: str) -> dict:
    con = duckdb.connect(warehouse, read_only=True)
    try:
        versions = con.execute("SELECT dataset_id, n_input FROM datasets").fetchall()
        reasons = dict(
            con.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall()
        )
        (stored,) = con.execute(
            "SELECT count(DISTINCT (dataset_id, source_row)) FROM pairs"
        ).fetchone()
        texts = {t for (t,) in con.execute("SELECT text FROM prompts").fetchall()}
    finally:
        con.close()
    return {"versions": versions, "reasons": reasons, "stored": stored, "prompts": texts}


# ----------------------------------------------------------------------------- stored + quarantined
def _latin_row() -> bytes:
    return json.dumps(ROWS[0], ensure_ascii=False).encode("latin-1")


STORED_PROBES: dict[str, tuple[str, Callable[[], bytes], int, dict[str, int]]] = {
    # name: (file name, content, rows stored, {reason: rows quarantined})
    "utf8-bom": ("bom.jsonl", lambda: b"\xef\xbb\xbf" + jsonl(), 3, {}),
    "utf8-bom-csv": (
        "bom.csv",
        lambda: b"\xef\xbb\xbf" + pl.DataFrame(ROWS).write_csv().encode(),
        3,
        {},
    ),
    "utf16-le-bom": ("u16le.jsonl", lambda: jsonl().decode().encode("utf-16"), 3, {}),
    "utf16-be-bom": (
        "u16be.jsonl",
        lambda: b"\xfe\xff" + jsonl().decode().encode("utf-16-be"),
        3,
        {},
    ),
    "utf32-le-bom": ("u32le.jsonl", lambda: jsonl().decode().encode("utf-32"), 3, {}),
    "utf32-be-bom": (
        "u32be.jsonl",
        lambda: b"\x00\x00\xfe\xff" + jsonl().decode().encode("utf-32-be"),
        3,
        {},
    ),
    "utf16-bom-gzip": (
        "u16.jsonl.gz",
        lambda: gzip.compress(jsonl().decode().encode("utf-16")),
        3,
        {},
    ),
    "one-latin1-row-in-utf8": (
        "mixed.jsonl",
        lambda: jsonl(ROWS[1:]) + _latin_row() + b"\n",
        2,
        {"invalid_utf8": 1},
    ),
    "100k-deep-line": ("deep.jsonl", lambda: jsonl() + nested(100_000) + b"\n", 3, {"too_deep": 1}),
    "deep-line-first": (
        "deepfirst.jsonl",
        lambda: nested(100_000) + b"\n" + jsonl(),
        3,
        {"too_deep": 1},
    ),
    "100-deep-line": ("deep100.jsonl", lambda: jsonl() + nested(100) + b"\n", 3, {"too_deep": 1}),
    "60-deep-line-is-fine": ("deep60.jsonl", lambda: nested(60) + b"\n" + jsonl(), 4, {}),
    "deep-element-in-json-array": (
        "deep.json",
        lambda: (
            b"["
            + b",".join([*map(json.dumps(ROWS[1]).encode().__add__, [b""]), nested(200)])
            + b"]"
        ),
        1,
        {"too_deep": 1},
    ),
    "deep-line-in-jsonl-named-json": (
        "lines.json",
        lambda: jsonl() + nested(100_000) + b"\n",
        3,
        {"too_deep": 1},
    ),
    "csv-extra-field": (
        "extra.csv",
        lambda: b"prompt,chosen,rejected\np,a,b\nq,c,d,EXTRA\nr,e,f\n",
        2,
        {"wrong_field_count": 1},
    ),
    "csv-short-row": (
        "short.csv",
        lambda: b"prompt,chosen,rejected\np,a,b\nq,c\n",
        1,
        {"missing_field": 1},
    ),
    "parquet-named-jsonl": (
        "really_parquet.jsonl",
        lambda: _parquet_bytes(),
        3,
        {},
    ),
}


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pl.DataFrame(ROWS).write_parquet(buf)
    return buf.getvalue()


@pytest.mark.parametrize("probe", list(STORED_PROBES))
def test_probe_is_stored_and_quarantined(tmp_path, warehouse_file, probe):
    file_name, content, n_stored, reasons = STORED_PROBES[probe]
    path = tmp_path / file_name
    path.write_bytes(content())
    summary, got = ingest(path, warehouse_file)
    assert got["reasons"] == reasons
    assert got["stored"] == n_stored
    [(_, n_input)] = got["versions"]
    assert n_input == n_stored + sum(reasons.values()) == summary.n_input
    assert summary.reconciles
    if n_stored == 3 and probe != "60-deep-line-is-fine":  # decoded, not mangled
        assert {r["prompt"] for r in ROWS} <= got["prompts"]


def test_line_over_max_line_bytes_is_quarantined_with_a_short_raw(tmp_path, warehouse_file):
    long_row = {"prompt": "p", "chosen": "x" * 5000, "rejected": "y"}
    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl([*ROWS, long_row]))
    config = IngestConfig(quality=False, max_line_bytes=4096)
    summary, got = ingest(path, warehouse_file, config)
    assert got["reasons"] == {"line_too_long": 1} and got["stored"] == 3 and summary.reconciles
    con = duckdb.connect(warehouse_file, read_only=True)
    [(message, raw)] = con.execute("SELECT message, raw FROM quarantine").fetchall()
    con.close()
    assert "max_line_bytes=4,096" in message
    assert len(raw) < 1100 and raw.endswith("bytes; truncated]")


def test_record_and_column_readers_agree_on_limits(tmp_path):
    """The column-wise read must hand limit-breaking lines to the record reader."""
    path = tmp_path / "mix.jsonl"
    path.write_bytes(jsonl() + nested(100) + b"\n" + nested(100_000) + b"\n")
    fast = build_batch(read_source(str(path)))
    slow = build_batch(read_source(str(path), columnar=False))
    assert fast.quarantine.equals(slow.quarantine)
    assert fast.quarantine["reason"].to_list() == ["too_deep", "too_deep"]


# ----------------------------------------------------------------------------- refused, one line
def _zip(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


REFUSED_PROBES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    # name: (file name, content, what the one-line message must say)
    "zip-named-jsonl": (
        "pairs.jsonl",
        lambda: _zip("pairs.jsonl", jsonl()),
        "looks like a zip archive",
    ),
    "tar-gz-named-jsonl-gz": ("pairs.jsonl.gz", lambda: _tar_gz("p.jsonl", jsonl()), "tar archive"),
    "text-named-parquet": (
        "pairs.parquet",
        jsonl,
        "not a Parquet file (no PAR1 magic): its content is text",
    ),
    "empty-named-parquet": ("pairs.parquet", lambda: b"", "not a Parquet file"),
    "truncated-parquet": (
        "pairs.parquet",
        lambda: _parquet_bytes()[:60],
        "not a readable Parquet file",
    ),
    "nul-bytes-named-jsonl": ("blob.jsonl", lambda: os.urandom(64) + b"\x00" * 64, "binary data"),
    "pdf-named-csv": ("doc.csv", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
    "utf16-without-bom": (
        "nobom.jsonl",
        lambda: jsonl().decode().encode("utf-16-le"),
        "UTF-16 (little-endian) text without a byte-order mark",
    ),
    "utf16-bom-odd-length": (
        "odd.jsonl",
        lambda: jsonl().decode().encode("utf-16") + b"x",
        "not valid UTF-16",
    ),
    "latin1-jsonl": (
        "latin1.jsonl",
        lambda: jsonl([ROWS[0]] * 3).decode().encode("latin-1"),
        "not UTF-8: 3 of 3 rows are not valid UTF-8 (first: byte 0xe9 at offset 27);"
        " re-encode the file as UTF-8",
    ),
    "latin1-csv": (
        "latin1.csv",
        lambda: pl.DataFrame([ROWS[0]] * 2).write_csv().encode("latin-1"),
        "not UTF-8: 2 of 2 rows",
    ),
    "latin1-json-array": (
        "latin1.json",
        lambda: json.dumps([ROWS[0]], ensure_ascii=False).encode("latin-1"),
        "not UTF-8: byte 0xe9",
    ),
    "no-row-is-json": (
        "words.jsonl",
        lambda: b"hello\nworld\n",
        "no row could be read (unparseable 2)",
    ),
    "empty-jsonl": ("empty.jsonl", lambda: b"", "holds no rows"),
    "empty-json-array": ("empty.json", lambda: b"[]", "holds no rows"),
    "empty-csv": ("empty.csv", lambda: b"", "is empty: a CSV source needs a header row"),
    "header-only-csv": ("header.csv", lambda: b"prompt,chosen,rejected\n", "holds no rows"),
    "100k-deep-json-document": (
        "deep.json",
        lambda: b"[" * 100_000 + b"]" * 100_000,
        "nest more than 64 levels deep",
    ),
}


def _one_line_source_error(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert err.type is SourceError and err.value.exit_code == 3
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("probe", list(REFUSED_PROBES))
def test_probe_is_refused_with_one_line(tmp_path, warehouse_file, probe):
    file_name, content, expected = REFUSED_PROBES[probe]
    path = tmp_path / file_name
    path.write_bytes(content())
    with pytest.raises(SourceError) as err:
        ingest(path, warehouse_file)
    assert expected in _one_line_source_error(err)
    assert not Path(warehouse_file).exists()  # refused before anything was written


def test_garbage_hf_state_json_is_refused(tmp_path, warehouse_file):
    import datasets

    folder = tmp_path / "hf"
    datasets.Dataset.from_polars(pl.DataFrame(ROWS)).save_to_disk(str(folder))
    (folder / "state.json").write_text("{ this is not json")
    with pytest.raises(SourceError) as err:
        ingest(folder, warehouse_file)
    assert "is not a readable Hugging Face `save_to_disk` folder" in _one_line_source_error(err)
    (folder / "dataset_info.json").unlink()
    (folder / "state.json").write_bytes(b"\x00\x01garbage")
    with pytest.raises(SourceError) as err:
        ingest(folder, warehouse_file)
    assert "save_to_disk" in _one_line_source_error(err)


def test_hub_id_without_network_says_it_needs_one(monkeypatch, warehouse_file):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(SourceError) as err:
        stage.fingerprint("someone/no-such-dataset-here", None)
    message = _one_line_source_error(err)
    assert "'someone/no-such-dataset-here'" in message
    assert "needs a network (offline mode is on: HF_HUB_OFFLINE) or a local copy" in message


@pytest.mark.parametrize(
    ("uri", "kind", "expected"),
    [
        ("missing.jsonl", None, "source not found: missing.jsonl"),
        ("data/missing.jsonl", None, "source not found: data/missing.jsonl"),  # not a hub id
        ("{tmp}", "jsonl", "is a folder, not a jsonl file"),
        ("{tmp}/x.jsonl", "hf-disk", "is not a folder"),
        ("{tmp}/x.jsonl", "xml", "unknown source kind 'xml'"),
        ("{tmp}/x.bin", None, "cannot tell the kind"),
    ],
)
def test_check_source_refuses_before_reading(tmp_path, uri, kind, expected):
    (tmp_path / "x.jsonl").write_bytes(jsonl())
    (tmp_path / "x.bin").write_bytes(jsonl())
    with pytest.raises(SourceError) as err:
        check_source(uri.format(tmp=tmp_path), kind)
    assert expected in _one_line_source_error(err)
    assert check_source(str(tmp_path / "x.jsonl"), None) == "jsonl"


# ----------------------------------------------------------------------------- concurrency
def test_two_threads_ingesting_one_file_make_one_version(tmp_path, warehouse_file):
    path = tmp_path / "same.jsonl"
    path.write_bytes(jsonl() + b'{"prompt": "p"}\n')
    kind, digest = stage.fingerprint(str(path), None)
    with writer(warehouse_file):  # migrated first: two threads may not both create the schema
        pass
    summaries, errors = [], []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        try:
            summaries.append(
                stage.parse_validate_store(
                    warehouse_file,
                    uri=str(path),
                    kind=kind,
                    fmt=None,
                    name="same",
                    digest=digest,
                    config=CONFIG,
                    flow_run_id=None,
                )
            )
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({s.dataset_id for s in summaries}) == 1 and len(summaries) == 2
    got = warehouse_counts(warehouse_file)
    assert got["versions"] == [(summaries[0].dataset_id, 4)]
    assert got["stored"] == 3 and got["reasons"] == {"missing_field": 1}


def _cli(tmp_path: Path, *args: str, api_url: str | None = None) -> subprocess.Popen:
    """`rmcurate ARGS` in tmp_path; with `api_url`, against that Prefect server (an
    ephemeral server each, starting at once on a loaded machine, can time out)."""
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "RMCURATE_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "RMCURATE_BUSY_TIMEOUT": "120",
    }
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return subprocess.Popen(
        [RMCURATE, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_missing_source_fails_in_one_line_before_prefect_starts(tmp_path):
    started = time.monotonic()
    proc = _cli(tmp_path, "ingest", "missing.jsonl")
    out, _ = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, out
    assert out.strip() == "error: source not found: missing.jsonl"
    assert not (tmp_path / "prefect-home").exists()  # Prefect never started
    assert not (tmp_path / "wh.duckdb").exists()
    assert elapsed < 15, f"{elapsed:.1f} s"  # about 1.5 s on an idle machine


@pytest.fixture
def api_url(prefect_server) -> str:
    """The session's Prefect test server, for subprocesses."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.mark.slow
def test_two_cli_ingests_of_one_file_make_one_version(tmp_path, api_url):
    path = tmp_path / "same.jsonl"
    path.write_bytes(jsonl() + b'{"prompt": "p"}\n')
    args = ("ingest", str(path), "--name", "same")
    procs = [_cli(tmp_path, *args, api_url=api_url) for _ in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out
        assert "Traceback" not in out
    got = warehouse_counts(str(tmp_path / "wh.duckdb"))
    [(_, n_input)] = got["versions"]
    assert n_input == 4 == got["stored"] + sum(got["reasons"].values())


@pytest.mark.slow
def test_cli_zip_named_jsonl_is_one_line_and_stores_nothing(tmp_path, api_url):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(_zip("pairs.jsonl", jsonl()))
    proc = _cli(tmp_path, "ingest", str(path), api_url=api_url)
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 3, out
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[-1] == f"error: {path} is not jsonl text: its content looks like a zip archive"
    if (tmp_path / "wh.duckdb").exists():
        assert warehouse_counts(str(tmp_path / "wh.duckdb"))["versions"] == []


def test_folder_flow_ingests_the_good_files_and_names_the_bad_one(tmp_path, prefect_server):
    from flows.ingest import ingest_folder_flow

    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a_good.jsonl").write_bytes(jsonl())
    (folder / "b_zip.jsonl").write_bytes(_zip("x.jsonl", jsonl()))
    (folder / "c_good.jsonl").write_bytes(jsonl(ROWS[1:]))
    warehouse = str(tmp_path / "wh.duckdb")
    with pytest.raises(SourceError, match=r"b_zip\.jsonl is not jsonl text"):
        ingest_folder_flow(
            folder=str(folder), warehouse=warehouse, reports_dir=str(tmp_path / "r"), quality=False
        )
    got = warehouse_counts(warehouse)
    assert sorted(n for _, n in got["versions"]) == [2, 3] and got["stored"] == 5
