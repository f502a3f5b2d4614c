"""Shared fixtures: offline Hugging Face, a private Prefect home, one Prefect test server per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Offline Hugging Face, and a Prefect home of the session's own; the rest is what the CLI sets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if "PREFECT_HOME" not in os.environ:  # removed when the session ends (it was left in /tmp)
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="rmcurate-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)

from cli import env

env.configure()

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real preference data beside the repo; skip cleanly when absent."""
    if not (SHARED_DATA / "alpaca_eval_dev").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the whole session (each start costs 12-25 s here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def warehouse_file(tmp_path: Path) -> str:
    """A fresh, real DuckDB warehouse file per test."""
    return str(tmp_path / "wh.duckdb")


@pytest.fixture
def ingest_toy(tmp_path: Path):
    """`ingest_toy(n_length_biased, n_adversarial)`: a real warehouse file under the test's
    data folder holding that many demo rows (seed 0) as dataset `toy`, stored by the ingest
    stage (quality suite off: not what these tests check)."""
    from rmcore.config import IngestConfig
    from rmcore.demo import write_demo
    from rmcore.stages.ingest import fingerprint, parse_validate_store

    def ingest(n_length_biased: int, n_adversarial: int) -> str:
        src = write_demo(
            tmp_path / "toy.jsonl",
            n_length_biased=n_length_biased,
            n_adversarial=n_adversarial,
            seed=0,
        )
        warehouse = str(tmp_path / "data" / "wh.duckdb")
        kind, digest = fingerprint(str(src), None)
        parse_validate_store(
            warehouse,
            uri=str(src),
            kind=kind,
            fmt=None,
            name="toy",
            digest=digest,
            config=IngestConfig(quality=False),
            flow_run_id=None,
        )
        return warehouse

    return ingest


# ---------------------------------------------------------------- ingest sources

# Kinds of bad rows, each with the reason code it must get.
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test asking for `bad_line` runs once per kind of bad row, as (line, reason)."""
    if "bad_line" in metafunc.fixturenames:
        metafunc.parametrize("bad_line", BAD_LINES, ids=[reason for _, reason in BAD_LINES])


@pytest.fixture
def bad_lines() -> list[tuple[bytes, str]]:
    """Every kind of bad row as (line, reason), in the order `bad_file` writes them."""
    return BAD_LINES


@pytest.fixture
def write_jsonl():
    """A function `(path, rows, gz=False) -> path` writing rows as JSON lines."""
    import gzip
    import json

    def write(path: Path, rows: list, gz: bool = False) -> Path:
        data = "\n".join(json.dumps(r) for r in rows).encode()
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    return write


@pytest.fixture
def bad_file(tmp_path: Path) -> tuple[Path, int]:
    """(path, n_good): a JSONL file of `n_good` valid rows followed by every bad line."""
    import json

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


# ---------------------------------------------------------------- tiny offline models

BPE_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "what is the capital of france? paris is the capital.",
    "write a haiku about autumn leaves falling slowly",
    "def add(a, b): return a + b",
]


@pytest.fixture(scope="session")
def byte_bpe_tokenizer():
    """A factory of tiny GPT-2 style (byte-level BPE, no pad token) tokenizers trained
    offline; each call builds a fresh one, since callers set chat templates on it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    def build() -> PreTrainedTokenizerFast:
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tk.train_from_iterator(BPE_CORPUS * 4, trainer)
        return PreTrainedTokenizerFast(
            tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
        )

    return build


@pytest.fixture(scope="session")
def save_tiny_bert():
    """A factory `(folder) -> folder` saving a random 2-layer BERT reward model (num_labels=1)
    with the bundled encoder's tokenizer (a text-pair tokenizer)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rmcore.models.encoder import bundled_model_dir

    def save(folder: Path) -> Path:
        tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            num_labels=1,
        )
        torch.manual_seed(0)
        BertForSequenceClassification(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    return save


@pytest.fixture(scope="session")
def save_tiny_lm(byte_bpe_tokenizer):
    """A factory `(folder, chat_template=None) -> folder` saving a random 2-layer GPT-2 LM
    with the byte-level BPE tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    def save(folder: Path, chat_template: str | None = None) -> Path:
        tokenizer = byte_bpe_tokenizer()
        tokenizer.chat_template = chat_template
        torch.manual_seed(0)
        config = GPT2Config(
            vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64
        )
        GPT2LMHeadModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    return save
