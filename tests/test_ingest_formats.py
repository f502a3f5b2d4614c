"""Every supported source kind and format round-trips to canonical pairs (no Prefect, no DuckDB)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmcore.ingest.batch import build_batch
from rmcore.ingest.formats import FormatError, detect_format, render_conversation
from rmcore.ingest.sources import SourceError, detect_kind, read_source
from rmcore.textnorm import text_id


def write_jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    data = "\n".join(json.dumps(r) for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def triples(batch) -> list[tuple]:
    return list(batch.pairs.select("prompt", "chosen", "rejected", "label").iter_rows())


def test_explicit_jsonl(tmp_path):
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


def test_hh_transcripts_gzip(tmp_path):
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


def test_hh_diverging_earlier_uses_last_shared_marker(tmp_path):
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


def test_conversational_with_and_without_prompt(tmp_path):
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


def test_ranked_best_vs_worst_and_all_pairs(tmp_path):
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


# Ten kinds of bad rows, each with the reason code it must get.
BAD_LINES: list[tuple[bytes, str]] = [
    (b'{"prompt": "trunc', "unparseable"),
    (b'{"prompt": "p", "chosen": 5, "rejected": "r"}', "wrong_type"),
    (b'{"prompt": "p", "rejected": "r"}', "missing_field"),
    (b'{"prompt": "p", "chosen": "   ", "rejected": "r"}', "empty_text"),
    (b'{"prompt": "p", "chosen": "same", "rejected": "same"}', "identical_responses"),
    (b'{"prompt": "p", "chosen": "\xff\xfe", "rejected": "r"}', "invalid_utf8"),
    (b'{"prompt": "p", "chosen": "\\ud800", "rejected": "r"}', "invalid_utf8"),
    (b'{"prompt": "p", "chosen": "' + b"x" * 10_000_001 + b'", "rejected": "r"}', "text_too_long"),
    (b'{"prompt": "p", "chosen": "a", "rejected": "b", "label": NaN}', "invalid_label"),
    (b'{"prompt": "p", "chosen": "a", "rejected": "b", "label": 1.5}', "invalid_label"),
    (b'{"prompt": "p", "chosen": "a", "rejected": "b", "label": "high"}', "invalid_label"),
    (b'{"prompt": "p", "chosen": "a", "rejected": "b", "split": "holdout"}', "invalid_split"),
    (b'{"prompt": "good", "chosen": "a", "rejected": "b"}', "duplicate_pair"),
    (b"[1, 2, 3]", "unparseable"),
]


def bad_file(tmp_path: Path) -> tuple[Path, int]:
    good = [json.dumps({"prompt": "good", "chosen": "a", "rejected": "b"}).encode()]
    good += [
        json.dumps(
            {"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}", "split": "validation"}
        ).encode()
        for i in range(5)
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(good + [line for line, _ in BAD_LINES]) + b"\n")
    return path, len(good)


def test_every_bad_row_gets_its_reason(tmp_path):
    path, n_good = bad_file(tmp_path)
    batch = build_batch(read_source(str(path)))
    assert batch.n_input == n_good + len(BAD_LINES)
    assert batch.pairs.height == n_good
    assert batch.reconciles
    got = dict(
        zip(
            batch.quarantine["source_row"].to_list(),
            batch.quarantine["reason"].to_list(),
            strict=True,
        )
    )
    assert got == {n_good + i: reason for i, (_, reason) in enumerate(BAD_LINES)}
    assert len(set(got.values())) >= 10
    assert all(batch.quarantine["raw"].is_not_null())


def test_plain_file_starting_with_gzip_magic_is_not_fatal(tmp_path):
    # Regression (found by the property test below): the first line starts with b"\x1f\x8b".
    path = tmp_path / "x.jsonl"
    path.write_bytes(
        b"\x1f\x8bgarbage\n" + json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}).encode()
    )
    batch = build_batch(read_source(str(path)))
    assert batch.reconciles and batch.pairs.height == 1
    assert batch.quarantine["reason"].to_list() == ["invalid_utf8"]


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
        lambda b: b.strip() and b"\n" not in b and b"\r" not in b
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
