"""Exports that TRL's RewardTrainer trains on as they are: a real warehouse and Prefect runs,
then a tiny random BERT reward model trained by TRL for a few steps on each TRL format, with
the tokenized texts checked for prompt and answer running together."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from rmcore.ingest.formats import parse_conversation, render_conversation
from rmcore.trl_format import margin

pytest.importorskip("trl")

MULTI_TURN = "Human: Hello there\n\nAssistant: Hi, how can I help?\n\nHuman: Name a planet"
ROWS = [
    {"prompt": "Name a fruit", "chosen": "Apple", "rejected": "Stone", "label": 1.0},
    {"prompt": "Pick a colour", "chosen": "Red", "rejected": "Blue", "label": 0.5},
    {"prompt": "Spell cat", "chosen": "c a t", "rejected": "k a t", "label": 0.8},
    {"prompt": "Two plus two", "chosen": "Five", "rejected": "Four", "label": 0.2},
    {"prompt": MULTI_TURN, "chosen": "Mars", "rejected": "Bread", "label": 1.0},
    {"prompt": "Name a tree", "chosen": "Oak", "rejected": "Rock", "split": "validation"},
]
CHAT_TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"


@pytest.fixture(scope="module")
def curated(tmp_path_factory, prefect_server) -> dict:
    """A warehouse holding ROWS and a uniform set over both splits."""
    from flows.curate import curate_flow
    from flows.ingest import ingest_flow

    root = tmp_path_factory.mktemp("trl")
    src = root / "pairs.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in ROWS))
    wh = str(root / "wh.duckdb")
    ingest_flow(source=str(src), name="pairs", warehouse=wh, quality=False)
    curate_flow(
        name="all", dataset="pairs", predicate="split IN ('train', 'validation')", warehouse=wh
    )
    return {"wh": wh, "root": root}


def export(curated: dict, fmt: str, trl_format: str) -> dict:
    from flows.export import export_flow

    path = curated["root"] / f"out-{trl_format}.{fmt}"
    out = export_flow(
        curated_set="all", path=str(path), fmt=fmt, trl_format=trl_format, warehouse=curated["wh"]
    )
    return out | {"file": path}


def by_pair(frame: pl.DataFrame, chosen: str) -> dict:
    """The exported row whose chosen response (text or one assistant message) is `chosen`."""
    rows = [r for r in frame.to_dicts() if chosen in json.dumps(r["chosen"])]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
def test_explicit_rows_are_separated_oriented_and_carry_margins(curated):
    out = export(curated, "parquet", "explicit")
    frame = pl.read_parquet(out["file"])
    assert frame.columns[:4] == ["prompt", "chosen", "rejected", "margin"]
    assert frame["prompt"].str.ends_with("\n").all()
    assert by_pair(frame, "Apple")["prompt"] == "Name a fruit\n"
    assert by_pair(frame, "Mars")["prompt"] == MULTI_TURN + "\n"
    flipped = by_pair(frame, "Four")  # stored with label 0.2: Four is the preferred answer
    assert (flipped["rejected"], flipped["label"]) == ("Five", pytest.approx(0.8))
    assert by_pair(frame, "Apple")["margin"] == 3.0  # a hard label gets the cap
    assert by_pair(frame, "Red")["margin"] == 0.0  # a tie
    assert by_pair(frame, "c a t")["margin"] == pytest.approx(math.log(4))
    assert out["rows"] == len(ROWS) and out["splits"] == ["train", "validation"]
    assert "ignores label and weight: 1 ties and 2 soft labels" in out["note"]


@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
def test_conversational_rows_are_message_lists_with_one_message_per_turn(curated):
    frame = pl.read_ndjson(export(curated, "jsonl", "conversational")["file"])
    row = by_pair(frame, "Mars")
    assert row["prompt"] == [
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "Hi, how can I help?"},
        {"role": "user", "content": "Name a planet"},
    ]
    assert row["chosen"] == [{"role": "assistant", "content": "Mars"}]
    assert by_pair(frame, "Apple")["prompt"] == [{"role": "user", "content": "Name a fruit"}]


@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
def test_hf_export_is_a_dataset_dict_with_the_set_splits(curated):
    import datasets

    saved = datasets.load_from_disk(str(export(curated, "hf", "conversational")["file"]))
    assert isinstance(saved, datasets.DatasetDict)
    assert {k: v.num_rows for k, v in saved.items()} == {"train": 5, "validation": 1}
    assert saved["validation"][0]["chosen"] == [{"role": "assistant", "content": "Oak"}]


@pytest.mark.parametrize(
    "text",
    [
        MULTI_TURN,
        "Name a fruit",
        "Human: only one turn, so plain text",
        "Quoted:\n\nHuman: a\n\nAssistant: b",
        "System: be brief\n\nHuman: hi",
    ],
)
def test_parse_conversation_inverts_the_canonical_rendering(text):
    assert render_conversation(parse_conversation(text)) == text


def test_margin_is_monotone_capped_logit():
    labels = pl.Series([0.5, 0.6, 0.9, 0.999, 1.0])
    out = pl.select(margin(pl.lit(labels), 3.0)).to_series().to_list()
    assert out == sorted(out) and out[0] == 0.0 and out[-1] == 3.0
    assert out[1] == pytest.approx(math.log(1.5))


def answer_follows_prompt(tokenizer, ids: list[int], prompt: str, answer: str) -> bool:
    """Whether the prompt's tokens and then the answer's appear as whole runs in `ids`."""
    tokens = tokenizer.convert_ids_to_tokens(ids)
    p, a = tokenizer.tokenize(prompt), tokenizer.tokenize(answer)
    starts = [i for i in range(len(tokens)) if tokens[i : i + len(p)] == p]
    return any(tokens[j : j + len(a)] == a for i in starts for j in range(i + len(p), len(tokens)))


@pytest.mark.parametrize(
    ("fmt", "trl_format", "load"),
    [("hf", "explicit", "disk"), ("jsonl", "conversational", "json")],
)
@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
def test_trl_reward_trainer_trains_on_each_export_format(
    curated, save_tiny_bert, fmt, trl_format, load
):
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    out = export(curated, fmt, trl_format)
    if load == "disk":
        train = datasets.load_from_disk(str(out["file"]))["train"]
    else:
        train = datasets.load_dataset("json", data_files=str(out["file"]), split="train")
    folder = save_tiny_bert(curated["root"] / f"bert-{trl_format}")
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE if trl_format == "conversational" else None
    before = [p.detach().clone() for p in model.parameters()]
    args = RewardConfig(
        output_dir=str(curated["root"] / f"trl-{trl_format}"),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        eos_token="[SEP]",
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.train()
    assert all(math.isfinite(h["loss"]) for h in trainer.state.log_history if "loss" in h)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # TRL's own tokenization of the fruit pair: "fruit" and "apple" are separate words.
    row = next(r for r in trainer.train_dataset if "apple" in tokenizer.decode(r["chosen_ids"]))
    assert answer_follows_prompt(tokenizer, row["chosen_ids"], "Name a fruit", "Apple")
    run_together = tokenizer("Name a fruit" + "Apple")["input_ids"]  # what TRL read before
    assert not answer_follows_prompt(tokenizer, run_together, "Name a fruit", "Apple")


@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
def test_export_command_says_what_trl_ignores_and_checks_its_options(curated):
    from typer.testing import CliRunner

    from cli.app import app
    from rmcore.errors import InvalidArgument

    runner, path = CliRunner(), str(curated["root"] / "cli.parquet")
    done = runner.invoke(app, ["export", "all", path, "-w", curated["wh"]])
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "6 pairs (train, validation)" in text and "(parquet, explicit)" in text
    assert "ignores label and weight" in text and "rmcurate train NAME --set SET" in text
    bad = runner.invoke(app, ["export", "all", path, "--trl-format", "chatml", "-w", curated["wh"]])
    assert bad.exit_code == InvalidArgument.exit_code
