"""Every supported source kind and format round-trips to canonical pairs (no Prefect, no DuckDB)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmcore.ingest.batch import build_batch
from rmcore.ingest.formats import FormatError, detect_format, render_conversation
from rmcore.ingest.sources import SourceError, _looks_binary, detect_kind, read_source
from rmcore.textnorm import WHITESPACE, normalize_expr, normalize_text, text_id


def triples(batch) -> list[tuple]:
    return list(batch.pairs.select("prompt", "chosen", "rejected", "label").iter_rows())


def test_explicit_jsonl(tmp_path, write_jsonl):
    rows = [
        {
            "prompt": "Q1",
            "chosen": "good",
            "rejected": "bad",
            "label": 0.8,
            "split": "test",
            "src": "x",
        }
    ]
    batch = build_batch(read_source(str(write_jsonl(tmp_path / "a.jsonl", rows))))
    assert batch.format == "explicit"
    assert triples(batch) == [("Q1", "good", "bad", 0.8)]
    assert batch.pairs["split"].to_list() == ["test"]
    assert json.loads(batch.pairs["provenance"][0]) == {"src": "x"}
    assert batch.pairs["prompt_id"][0] == text_id("Q1")


def test_hh_transcripts_gzip(tmp_path, write_jsonl):
    shared = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant:"
    rows = [
        {"chosen": shared + " It is 6.", "rejected": shared + " It is 7."},
        {
            "chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!",
            "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away.",
        },
    ]
    batch = build_batch(read_source(str(write_jsonl(tmp_path / "hh.jsonl.gz", rows, gz=True))))
    assert batch.format == "implicit"
    assert triples(batch) == [
        ("Human: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?", "It is 6.", "It is 7.", 1.0),
        ("Hi there", "Hello!", "Go away.", 1.0),  # a single user turn is stored as plain text
    ]


def test_hh_diverging_earlier_uses_last_shared_marker(tmp_path, write_jsonl):
    rows = [
        {
            "chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
            "rejected": "\n\nHuman: a\n\nAssistant: x\n\nHuman: y\n\nAssistant: z",
        }
    ]
    batch = build_batch(read_source(str(write_jsonl(tmp_path / "hh.jsonl", rows))))
    assert triples(batch) == [
        ("a", "b\n\nHuman: c\n\nAssistant: d", "x\n\nHuman: y\n\nAssistant: z", 1.0)
    ]


def test_conversational_with_and_without_prompt(tmp_path, write_jsonl):
    user = {"role": "user", "content": "Name a colour"}
    rows_with = [
        {
            "prompt": [user],
            "chosen": [{"role": "assistant", "content": "Blue"}],
            "rejected": [{"role": "assistant", "content": "Seven"}],
        }
    ]
    rows_without = [
        {
            "chosen": [
                {"role": "system", "content": "Be brief"},
                user,
                {"role": "assistant", "content": "Blue"},
            ],
            "rejected": [
                {"role": "system", "content": "Be brief"},
                user,
                {"role": "assistant", "content": "Seven"},
            ],
        }
    ]
    with_prompt = build_batch(read_source(str(write_jsonl(tmp_path / "c1.jsonl", rows_with))))
    without = build_batch(read_source(str(write_jsonl(tmp_path / "c2.jsonl", rows_without))))
    assert with_prompt.format == without.format == "conversational"
    assert triples(with_prompt) == [("Name a colour", "Blue", "Seven", 1.0)]
    assert triples(without) == [("System: Be brief\n\nHuman: Name a colour", "Blue", "Seven", 1.0)]


def test_alpacaeval_json_array_with_tie(tmp_path):
    records = [
        {
            "instruction": "Say hi",
            "output_1": "hi",
            "output_2": "hello there",
            "preference": 1.9,
            "generator_2": "m",
        },
        {
            "instruction": "Say bye",
            "output_1": "bye",
            "output_2": "see you",
            "preference": 1.2,
            "generator_2": "m",
        },
        {
            "instruction": "Say yes",
            "output_1": "yes",
            "output_2": "yep",
            "preference": 1.5,
            "generator_2": "m",
        },
    ]
    path = tmp_path / "ann.json.gz"
    path.write_bytes(gzip.compress(json.dumps(records).encode()))
    batch = build_batch(read_source(str(path)))
    assert batch.format == "annotated"
    got = triples(batch)
    assert got[0][:3] == ("Say hi", "hello there", "hi") and got[0][3] == pytest.approx(0.9)
    assert got[1][:3] == ("Say bye", "bye", "see you") and got[1][3] == pytest.approx(0.8)
    assert got[2] == ("Say yes", "yes", "yep", 0.5)  # a tie is stored as a tie, order as given
    assert json.loads(batch.pairs["provenance"][0]) == {"generator_2": "m"}


def test_ranked_best_vs_worst_and_all_pairs(tmp_path, write_jsonl):
    rows = [
        {
            "prompt": "P",
            "completions": [
                {"response": "a", "overall_score": 3},
                {"response": "b", "overall_score": 9},
                {"response": "c", "overall_score": 5},
            ],
        }
    ]
    src = str(write_jsonl(tmp_path / "uf.jsonl", rows))
    best = build_batch(read_source(src))
    assert best.format == "ranked" and triples(best) == [("P", "b", "a", 1.0)]
    every = build_batch(read_source(src), ranked_mode="all-pairs")
    assert sorted(t[1:3] for t in triples(every)) == [("b", "a"), ("b", "c"), ("c", "a")]
    assert every.reconciles and every.n_rows_stored == 1


def test_parquet_csv_and_hf_disk(tmp_path):
    import datasets

    frame = pl.DataFrame({"prompt": ["p1", "p2"], "chosen": ["c1", "c2"], "rejected": ["r1", "r2"]})
    frame.write_parquet(tmp_path / "x.parquet")
    frame.write_csv(tmp_path / "x.csv")
    datasets.Dataset.from_polars(frame).save_to_disk(str(tmp_path / "hf"))
    expected = [("p1", "c1", "r1", 1.0), ("p2", "c2", "r2", 1.0)]
    for src in ("x.parquet", "x.csv", "hf"):
        assert triples(build_batch(read_source(str(tmp_path / src)))) == expected, src
    assert detect_kind(str(tmp_path / "hf")) == "hf-disk"


def test_render_conversation_single_and_multi_turn():
    assert render_conversation([("Human", "hi")]) == "hi"
    assert (
        render_conversation([("Human", "hi"), ("Assistant", "yo"), ("Human", "ok")])
        == "Human: hi\n\nAssistant: yo\n\nHuman: ok"
    )


def test_detect_format_errors_name_the_keys():
    with pytest.raises(FormatError, match="cannot detect"):
        detect_format([{"question": "x", "answer": "y"}])
    with pytest.raises(SourceError, match="not found"):
        read_source("/nonexistent/file.jsonl")


def test_every_bad_row_gets_its_reason(bad_file, bad_lines):
    path, n_good = bad_file
    batch = build_batch(read_source(str(path)))
    assert batch.n_input == n_good + len(bad_lines)
    assert batch.pairs.height == n_good
    assert batch.reconciles
    got = dict(
        zip(
            batch.quarantine["source_row"].to_list(),
            batch.quarantine["reason"].to_list(),
            strict=True,
        )
    )
    assert got == {n_good + i: reason for i, (_, reason) in enumerate(bad_lines)}
    assert len(set(got.values())) >= 10
    assert all(batch.quarantine["raw"].is_not_null())


def test_bad_row_does_not_make_a_later_valid_twin_a_duplicate(tmp_path, write_jsonl):
    # Regression: duplicates were judged against quarantined rows too, so the valid second
    # row was lost as a "duplicate" of an invalid first row with the same texts.
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b", "label": 2.0},
        {"prompt": "p", "chosen": "a", "rejected": "b", "label": 1.0},
        {"prompt": "p", "chosen": "a", "rejected": "b", "label": 0.7},
    ]
    batch = build_batch(read_source(str(write_jsonl(tmp_path / "twins.jsonl", rows))))
    assert batch.pairs.select("source_row", "label").rows() == [(1, 1.0)]
    assert batch.quarantine.select("source_row", "reason").rows() == [
        (0, "invalid_label"),
        (2, "duplicate_pair"),
    ]
    assert batch.reconciles


def test_plain_file_starting_with_gzip_magic_is_not_fatal(tmp_path):
    # Regression (found by the property test below): the first line starts with b"\x1f\x8b".
    path = tmp_path / "x.jsonl"
    path.write_bytes(
        b"\x1f\x8bgarbage\n" + json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}).encode()
    )
    batch = build_batch(read_source(str(path)))
    assert batch.reconciles and batch.pairs.height == 1
    assert batch.quarantine["reason"].to_list() == ["invalid_utf8"]


def test_ultrafeedback_binarized_rows_split_the_repeated_prompt_off(tmp_path, write_jsonl):
    """HuggingFaceH4/ultrafeedback_binarized (and Tulu's copy) in their native shape: a text
    `prompt` beside `chosen`/`rejected` message lists that repeat it as the user turn. Stored
    like TRL's `maybe_extract_prompt` splits it (regression: the prompt was copied into both
    responses and the quality suite passed)."""
    question = "How many legs does a spider have?"

    def conversation(answer: str) -> list[dict]:
        return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    row = {
        "prompt": question,
        "prompt_id": "5f1c0b0e2a",
        "chosen": conversation("Eight."),
        "rejected": conversation("Six, like other insects."),
        "messages": conversation("Eight."),
        "score_chosen": 9.0,
        "score_rejected": 4.0,
    }
    batch = build_batch(read_source(str(write_jsonl(tmp_path / "uf.jsonl", [row]))))
    assert batch.format == "conversational" and batch.reconciles
    [(prompt, chosen, rejected, label)] = triples(batch)
    assert (prompt, chosen, rejected, label) == (
        question,
        "Eight.",
        "Six, like other insects.",
        1.0,
    )
    assert not chosen.startswith(prompt) and not rejected.startswith(prompt)


def test_a_text_prompt_beside_lists_without_it_is_kept(tmp_path, write_jsonl):
    row = {
        "prompt": "Name a colour",
        "chosen": [{"role": "assistant", "content": "Blue"}],
        "rejected": [{"role": "assistant", "content": "Seven"}],
    }
    batch = build_batch(read_source(str(write_jsonl(tmp_path / "t.jsonl", [row]))))
    assert triples(batch) == [("Name a colour", "Blue", "Seven", 1.0)]


_text = st.text(min_size=0, max_size=8)
_value = st.one_of(
    _text, st.integers(), st.floats(allow_nan=True), st.none(), st.lists(st.integers(), max_size=2)
)
_good = st.fixed_dictionaries(
    {"prompt": _text.filter(str.strip), "chosen": _text, "rejected": _text}
)
_malformed = st.dictionaries(
    st.sampled_from(["prompt", "chosen", "rejected", "label", "split", "extra"]), _value, max_size=6
)
_line = st.one_of(
    _good.map(lambda r: json.dumps(r).encode()),
    _malformed.map(lambda r: json.dumps(r).encode()),
    st.binary(min_size=1, max_size=20).filter(
        # NUL bytes, BOM-like first bytes and a file signature (PK\x03\x04, 7z, ...) make a
        # whole file binary: a SourceError, tested in tests/test_reliability_ingest.py
        lambda b: (
            b.strip()
            and not {*b"\n\r\x00"} & {*b}
            and b[:1] not in (b"\xff", b"\xfe", b"\x80", b"\xef")
            and _looks_binary(b) is None
        )
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_line, min_size=1, max_size=30))
def test_random_mixtures_reconcile(tmp_path, lines):
    path = tmp_path / "mix.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    raw = read_source(str(path))
    try:
        batch = build_batch(raw, fmt="explicit")
    except Exception as err:  # pragma: no cover - the assertion below names the failure
        pytest.fail(f"exception escaped: {err!r}")
    assert batch.n_input == len(raw)
    assert batch.n_rows_stored + batch.quarantine.height == batch.n_input
    assert batch.pairs["pair_id"].n_unique() == batch.pairs.height


# ----------------------------------------------------------------------------- normalization
def test_whitespace_constant_is_what_str_strip_removes():
    every = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert every == WHITESPACE


TRICKY_TEXTS = [
    "cafe\u0301",  # e + combining acute: NFC composes it
    "\u212b ngstr\u00f6m",  # Angstrom sign: NFC maps it to A-ring
    "  a\r\nb\r\n  ",
    "\r\n\r\n",
    "\r\r\n\n",
    "\x1c\x1fsep\x1e",  # ASCII separators: Python strips them, Rust's White_Space does not
    "\u3000\xa0wide\u2029",
    "\ufeffbom",
    "plain ascii",
    "",
]


def _normalized_both_ways(texts: list[str]) -> tuple[list[str], list[str]]:
    series = pl.Series(texts, dtype=pl.String)
    vectorized = pl.select(normalize_expr(pl.lit(series))).to_series().to_list()
    return [normalize_text(t) for t in texts], vectorized


def test_normalize_expr_matches_normalize_text_on_tricky_strings():
    expected, got = _normalized_both_ways(TRICKY_TEXTS)
    assert got == expected
    assert expected[0] == "caf\u00e9" and expected[2] == "a\nb" and expected[5] == "sep"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.sampled_from(list("ab \t\r\n\x1c\u0301\u00e9\u212b\u3000e"))
            | st.characters(exclude_categories=["Cs"]),
            max_size=12,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_normalize_expr_matches_normalize_text(texts):
    expected, got = _normalized_both_ways(texts)
    assert got == expected


# ----------------------------------------------------------------------------- column-wise JSONL path
def _reasons(batch) -> dict[int, str]:
    return dict(batch.quarantine.select("source_row", "reason").iter_rows())


def test_each_bad_line_kind_alone_gets_its_reason(bad_file, bad_lines, bad_line):
    """One bad line among good ones: whichever reader takes the file, the reason holds."""
    (path, n_good), (line, reason) = bad_file, bad_line
    path.write_bytes(path.read_bytes().split(b"\n" + bad_lines[0][0])[0] + b"\n" + line + b"\n")
    batch = build_batch(read_source(str(path)))
    assert _reasons(batch) == {n_good: reason}
    assert batch.pairs.height == n_good and batch.reconciles


@pytest.fixture
def typed_bad_file(tmp_path: Path, write_jsonl) -> Path:
    """Bad rows whose fields keep one JSON type per key, so pyarrow reads the file whole."""
    rows = [
        {"prompt": "p0", "chosen": "a", "rejected": "b", "label": 0.9, "split": "test"},
        {"prompt": "p1", "chosen": None, "rejected": "b", "label": 1.0, "split": None},
        {"prompt": "p2", "chosen": " \t", "rejected": "b", "label": None, "split": "dev"},
        {"prompt": "p3", "chosen": "same", "rejected": "same", "label": 1.0, "split": None},
        {"prompt": "p4", "chosen": "a", "rejected": "b", "label": 1.5, "split": None},
        {"prompt": "p5", "chosen": "a", "rejected": "b", "label": None, "split": "holdout"},
        {"prompt": "p0", "chosen": "a", "rejected": "b", "label": 0.2, "split": None},
        {"prompt": "p6 ", "chosen": "caf\u0065\u0301", "rejected": "x\r\ny", "label": 0},
        {"prompt": "p7", "chosen": "a", "rejected": "b", "label": float("nan"), "split": None},
    ]
    for i, row in enumerate(rows):
        row["source"] = {"file": f"f{i}", "score": i / 3}
    return write_jsonl(tmp_path / "typed.jsonl", rows)


def test_column_path_matches_record_path(typed_bad_file):
    src = str(typed_bad_file)
    columnar, records = read_source(src), read_source(src, columnar=False)
    assert columnar.table is not None and records.table is None
    fast, slow = build_batch(columnar), build_batch(records)
    assert fast.pairs.equals(slow.pairs) and fast.quarantine.equals(slow.quarantine)
    assert _reasons(fast) == {
        1: "missing_field",
        2: "empty_text",
        3: "identical_responses",
        4: "invalid_label",
        5: "invalid_split",
        6: "duplicate_pair",
        8: "invalid_label",
    }
    assert fast.pairs["split"].to_list() == ["test", "train"]  # no split: the default
    assert fast.pairs["chosen"][1] == "caf\u00e9" and fast.pairs["rejected"][1] == "x\ny"
    assert json.loads(fast.pairs["provenance"][0]) == {"source": {"file": "f0", "score": 0.0}}


def test_wrong_type_column_goes_row_by_row(tmp_path, write_jsonl):
    """Columns of a wrong but uniform type read fine column-wise; their rows still fail as
    the extractor says, and rows where the field is absent still pass."""
    rows = [
        {"prompt": "p0", "chosen": "a", "rejected": "b", "label": "high"},
        {"prompt": "p1", "chosen": "a", "rejected": "b"},
        {"prompt": "p2", "chosen": "a", "rejected": "b", "label": "0.5", "split": 3},
        {"prompt": "p3", "chosen": "a", "rejected": "b", "split": 4},
    ]
    lists = [{"prompt": "p", "chosen": ["a"], "rejected": "b"}, {"prompt": "q", "rejected": "b"}]
    for name, records, reasons in [
        ("w.jsonl", rows, {0: "invalid_label", 2: "invalid_label", 3: "invalid_split"}),
        ("l.jsonl", lists, {0: "wrong_type", 1: "missing_field"}),
    ]:
        src = str(write_jsonl(tmp_path / name, records))
        raw = read_source(src)
        assert raw.table is not None
        batch = build_batch(raw)
        assert _reasons(batch) == reasons
        assert batch.quarantine.equals(build_batch(read_source(src, columnar=False)).quarantine)


def test_dates_and_null_lines_keep_record_semantics(tmp_path, write_jsonl):
    dated = [{"prompt": "2024-01-02", "chosen": "2024-01-03T10:00:00", "rejected": "b"}]
    raw = read_source(str(write_jsonl(tmp_path / "d.jsonl", dated)))
    assert raw.table is not None and raw.table.schema["prompt"] == pl.String
    assert triples(build_batch(raw)) == [("2024-01-02", "2024-01-03T10:00:00", "b", 1.0)]
    # pyarrow reads a `null` line as an all-null row (and crashes on a leading one).
    path = tmp_path / "n.jsonl"
    path.write_bytes(b'null\n{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    raw = read_source(str(path))
    assert raw.table is None
    assert _reasons(build_batch(raw)) == {0: "unparseable"}


def test_annotated_jsonl_column_path(tmp_path, write_jsonl):
    rows = [
        {
            "instruction": "Say hi",
            "input": "",
            "output_1": "hi",
            "output_2": "hello",
            "preference": 1.9,
        },
        {"instruction": "Add", "input": "2+2", "output_1": "4", "output_2": "5", "preference": 1},
        {"instruction": "Tie", "input": None, "output_1": "x", "output_2": "y", "preference": 1.5},
        {"instruction": "Bad", "input": None, "output_1": "x", "output_2": "y", "preference": 2.5},
        {
            "instruction": "None",
            "input": None,
            "output_1": "x",
            "output_2": "y",
            "preference": None,
        },
    ]
    src = str(write_jsonl(tmp_path / "ann.jsonl", rows))
    raw = read_source(src)
    assert raw.table is not None
    batch = build_batch(raw)
    assert batch.format == "annotated"
    got = triples(batch)
    assert got[0][:3] == ("Say hi", "hello", "hi") and got[0][3] == pytest.approx(0.9)
    assert got[1:] == [("Add\n\n2+2", "4", "5", 1.0), ("Tie", "x", "y", 0.5)]
    assert _reasons(batch) == {3: "invalid_label", 4: "invalid_label"}
    slow = build_batch(read_source(src, columnar=False))
    assert batch.quarantine.equals(slow.quarantine)
    assert batch.pairs.drop("provenance").equals(slow.pairs.drop("provenance"))


_any_line = st.one_of(_line, st.sampled_from([b"null", b" null ", b"{}", b"\xef\xbb\xbf{}"]))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_any_line, min_size=1, max_size=30))
def test_column_and_record_paths_agree(tmp_path, lines):
    """Same pairs, same quarantine, whichever reader takes a file. Provenance may differ
    only in keys a row lacks (the column path cannot tell them from nulls)."""
    path = tmp_path / "mix.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    fast = build_batch(read_source(str(path)), fmt="explicit")
    slow = build_batch(read_source(str(path), columnar=False), fmt="explicit")
    assert fast.quarantine.equals(slow.quarantine)
    assert fast.pairs.drop("provenance").equals(slow.pairs.drop("provenance"))


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"\n", b"\r\n", b" ", b"\t", b"\x0b", b"{}", b'{"a": 1}', b"x", b"\xff"]),
        max_size=40,
    ).map(b"".join),
    scan=st.sampled_from([1, 3, 7, 1 << 26]),
)
def test_line_offsets_give_the_lines_split_would(data, scan):
    """`Lines` (offsets into the file's bytes) is the list `split(b"\\n")` minus blank lines,
    whatever the scan step; the list doubled a large file's memory (RESULTS section 9)."""
    from unittest.mock import patch

    from rmcore.ingest import sources

    with patch.object(sources, "_SCAN", scan):
        lines = sources.Lines(data)
    expected = [ln for ln in data.split(b"\n") if ln.strip()]
    assert list(lines) == expected and len(lines) == len(expected)
    assert [lines[i] for i in range(len(lines))] == expected
    assert lines.lengths.tolist() == [len(ln) for ln in expected]
