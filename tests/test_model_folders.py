"""Every kind of saved model folder loads with the call the README documents and gives the
scores `rmcurate score` stored; the model card carries metadata, lineage, the input format and
the steps actually run. Real warehouse, real Prefect runs, a tiny random BERT as joint base."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import torch
import yaml

from rmcore import demo

KINDS = ("embed-head", "joint")


@pytest.fixture(scope="module")
def saved(tmp_path_factory, prefect_server, save_tiny_bert) -> dict:
    """One model of each kind trained on a small demo set (joint via a curated set), scored."""
    from flows.curate import curate_flow
    from flows.ingest import ingest_flow
    from flows.score import score_flow
    from flows.train import train_flow

    root = tmp_path_factory.mktemp("folders")
    src = demo.write_demo(root / "toy.jsonl", n_length_biased=60, n_adversarial=12, seed=3)
    wh = str(root / "wh.duckdb")
    ingest_flow(source=str(src), name="toy", warehouse=wh, quality=False)
    curate_flow(name="all", dataset="toy", warehouse=wh)
    base = str(save_tiny_bert(root / "tiny-bert"))
    folders = {
        "embed-head": train_flow(name="head", dataset="toy", epochs=1, warehouse=wh)["path"],
        "joint": train_flow(
            name="jnt",
            curated_set="all",
            backend="joint",
            base_model=base,
            max_steps=2,
            batch_size=8,
            lr=1e-3,
            warehouse=wh,
        )["path"],
    }
    for folder in folders.values():
        score_flow(dataset="toy", model=folder, prompts_per_pair=1, warehouse=wh)
    return {"wh": wh, "folders": folders}


def stored_scores(wh: str, folder: str) -> tuple[list[str], list[str], torch.Tensor]:
    """Own-prompt chosen scores that `rmcurate score` wrote for the model in `folder`."""
    con = duckdb.connect(wh, read_only=True)
    try:
        rows = con.execute(
            "SELECT v.prompt, v.chosen, s.score FROM rm_scores s JOIN v_pairs v"
            " ON s.prompt_id = v.prompt_id AND s.response_id = v.chosen_id"
            " WHERE s.model_id = ? ORDER BY v.pair_id LIMIT 12",
            [str(Path(folder).resolve())],
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == 12
    return [r[0] for r in rows], [r[1] for r in rows], torch.tensor([r[2] for r in rows])


@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
@pytest.mark.parametrize("kind", KINDS)
def test_documented_load_scorer_call_reproduces_stored_scores(saved, kind):
    from rmcore.models.loading import load_scorer

    prompts, responses, stored = stored_scores(saved["wh"], saved["folders"][kind])
    scorer = load_scorer(saved["folders"][kind])  # README: "load either kind with"
    assert scorer.backend == kind
    torch.testing.assert_close(scorer.score(prompts, responses), stored.float(), atol=1e-5, rtol=0)


def python_blocks(folder: str) -> list[str]:
    """The ```python blocks of a model card, with its placeholder path set to the folder."""
    text = (Path(folder) / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    return [b.replace(f"path/to/{Path(folder).name}", folder) for b in blocks]


@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
@pytest.mark.parametrize("kind", KINDS)
def test_card_recipes_run_and_reproduce_stored_scores(saved, kind):
    """Each ```python block of the card, run as written for stored pairs, gives their scores."""
    folder = saved["folders"][kind]
    prompts, responses, stored = stored_scores(saved["wh"], folder)
    blocks = python_blocks(folder)
    assert len(blocks) == (2 if kind == "joint" else 1)
    example = 'prompt, response = "What is 2+2?", "4"\n'
    for block in blocks:
        scope: dict = {}
        exec(block, scope)  # as written, on the card's own example pair
        if "scorer" in scope:  # the load_scorer recipe
            got = scope["scorer"].score(prompts, responses)
        else:  # the plain-transformers recipe: its lines after the example pair, per pair
            tail = block.split(example)[1]
            got = []
            for p, r in zip(prompts, responses, strict=True):
                pair = scope | {"prompt": p, "response": r}
                exec(tail, pair)
                got.append(pair["reward"])
            got = torch.tensor(got)
        torch.testing.assert_close(got, stored.float(), atol=1e-5, rtol=0)


def card_of(folder: str) -> tuple[dict, str]:
    """(YAML metadata, markdown body) of a model folder's README.md."""
    text = (Path(folder) / "README.md").read_text()
    assert text.startswith("---\n")
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


@pytest.mark.slow  # the warehouse fixture runs Prefect flows (~90 s under load)
def test_cards_carry_metadata_lineage_input_format_and_true_epochs(saved):
    head_meta, head_body = card_of(saved["folders"]["embed-head"])
    assert head_meta["library_name"] == "rmcurate"
    assert head_meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "reward-model" in head_meta["tags"]
    assert head_meta["rmcurate"]["dataset"].startswith("toy@1")
    assert head_meta["rmcurate"]["split"] == "train"
    assert "embedded separately" in head_body and "**not** a transformers model" in head_body

    joint_meta, joint_body = card_of(saved["folders"]["joint"])
    assert joint_meta["library_name"] == "transformers"
    assert joint_meta["pipeline_tag"] == "text-classification"
    assert "base_model" not in joint_meta  # a local folder is not a hub id
    assert joint_meta["rmcurate"]["curated_set"].startswith("all@1")
    assert joint_meta["rmcurate"]["predicate"] == "split = 'train'"
    # 2 optimizer steps of batch 8 over the train split: a fraction of one epoch, said so.
    line = next(x for x in joint_body.splitlines() if x.startswith("- optimizer steps"))
    assert line.startswith("- optimizer steps: 2 (")
    per_epoch = int(line.split("(")[1].split()[0])
    assert per_epoch > 2 and f"so {2 / per_epoch:.3g} epochs" in line
    assert "AutoModelForSequenceClassification.from_pretrained" in joint_body


@pytest.mark.parametrize("template", [None, "chat"])
def test_plain_call_recipe_matches_scoring_for_plain_and_chat_renderings(
    tmp_path, byte_bpe_tokenizer, template
):
    """The card recipe of the other two renderings (GPT-2 style, with and without a chat
    template; the trained BERT above covers text pairs), with truncation in play."""
    from test_models import RENDER_CHAT_TEMPLATE, save_tiny_gpt2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rmcore.models.joint import JointRewardModel

    tokenizer = byte_bpe_tokenizer()
    tokenizer.chat_template = RENDER_CHAT_TEMPLATE if template else None
    folder = save_tiny_gpt2(tmp_path / "gpt2", tokenizer)
    rm = JointRewardModel.load(folder, device="cpu", max_length=24)
    assert rm.input_format == (template or "plain")
    rm.save_pretrained(folder)  # as training saves it: with the pad token scoring set
    prompts = ["the quick brown fox " * 8, "what is the capital of france?"]
    responses = ["paris is the capital", "the lazy dog"]
    scope = {
        "model": AutoModelForSequenceClassification.from_pretrained(folder).eval(),
        "tokenizer": AutoTokenizer.from_pretrained(folder),
    }
    got = []
    for p, r in zip(prompts, responses, strict=True):
        pair = scope | {"prompt": p, "response": r}
        exec(rm.plain_call(), pair)
        assert pair["inputs"]["input_ids"].shape[1] <= 24
        with torch.no_grad():
            got.append(pair["model"](**pair["inputs"]).logits[0, 0])
    torch.testing.assert_close(torch.stack(got), rm.score(prompts, responses), atol=1e-5, rtol=0)
