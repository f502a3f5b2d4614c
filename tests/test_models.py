"""Reward backends: bundled encoder, embed-head model, joint sequence classifiers."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    PreTrainedTokenizerBase,
)

from rmcore.models.base import (
    BatchBudget,
    RewardScorer,
    length_grouped_batches,
    map_batches,
    pick_device,
)
from rmcore.models.embed_head import EmbedHeadRewardModel, HeadConfig, RewardHead
from rmcore.models.encoder import BUNDLED_ID, BUNDLED_SHA256, bundled_model_dir, load_encoder
from rmcore.models.head import dedupe
from rmcore.models.joint import JointRewardModel
from rmcore.models.loading import detect_backend, load_scorer
from rmcore.models.render import (
    encode_pairs,
    input_format,
    render_texts,
    response_starts,
    tokenize_texts,
)

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn.",
    "What is the capital of France?",
    "Explain recursion to a five year old child in simple words please.",
    "hi",
]
RESPONSES = [
    "Paris.",
    "Leaves drift and settle, the cold wind hums, the year exhales.",
    "The capital of France is Paris, a city on the Seine.",
    "Recursion is when a function calls itself on a smaller piece of the problem.",
    "Paris.",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu")


# ---------------------------------------------------------------- encoder


def test_bundled_encoder_unit_norm_and_semantic(encoder):
    texts = [
        "A man is playing a guitar.",
        "Someone is strumming a guitar.",
        "The central bank raised interest rates again.",
    ]
    emb = encoder.encode(texts)
    assert encoder.encoder_id == BUNDLED_ID
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3


def test_bundled_encoder_matches_sentence_transformers(encoder):
    """The reference implementation of all-MiniLM-L6-v2 (mean pooling + normalize)."""
    st_mod = pytest.importorskip("sentence_transformers")
    reference = st_mod.SentenceTransformer(str(bundled_model_dir()), device="cpu")
    expected = reference.encode(PROMPTS + RESPONSES, convert_to_tensor=True)
    expected = torch.nn.functional.normalize(expected.float(), dim=-1)
    torch.testing.assert_close(encoder.encode(PROMPTS + RESPONSES), expected, atol=1e-5, rtol=0)


def test_length_grouped_encoding_equals_one_at_a_time(encoder):
    texts = [*RESPONSES, "x", "a much longer sentence " * 8]
    before = encoder.n_forward
    batched = encoder.encode(texts, batch_size=3)
    assert encoder.n_forward - before == math.ceil(len(texts) / 3)
    single = torch.cat([encoder.encode([t]) for t in texts])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    assert encoder.encode([]).shape == (0, 384)


def test_local_folder_encoder_id_is_path_and_content_hash(tmp_path, encoder):
    folder = tmp_path / "minilm"
    folder.mkdir()
    for f in bundled_model_dir().iterdir():
        if f.is_file():
            (folder / f.name).symlink_to(f)
    local = load_encoder(str(folder), device="cpu")
    assert local.encoder_id == f"{folder.resolve()}@{BUNDLED_SHA256[:12]}"
    torch.testing.assert_close(local.encode(PROMPTS), encoder.encode(PROMPTS), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- batching helpers


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 300), min_size=1, max_size=60),
    st.integers(1, 16),
    st.one_of(st.none(), st.integers(1, 2000)),
)
def test_length_grouped_batches_partition_within_budget(lengths, max_batch, max_tokens):
    lens = torch.tensor(lengths)
    batches = length_grouped_batches(lens, max_batch=max_batch, max_tokens=max_tokens)
    flat = torch.cat(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert lens[flat].tolist() == sorted(lengths, reverse=True)
    for b in batches:
        assert 1 <= len(b) <= max_batch
        if max_tokens is not None and len(b) > 1:
            assert len(b) * int(lens[b].max()) <= max_tokens


def test_map_batches_halves_budget_on_oom_and_finishes():
    lengths = torch.tensor([5, 1, 9, 3, 7, 2, 8])

    def forward(idx: torch.Tensor) -> torch.Tensor:
        if idx.numel() > 3:
            raise torch.OutOfMemoryError("fake")
        return lengths[idx].float() * 10

    budget = BatchBudget(max_batch=8, max_tokens=100)
    out = map_batches(lengths, forward, budget=budget)
    torch.testing.assert_close(out, lengths.float() * 10)
    # all 7 rows fail -> limits become 7 // 2 = 3 rows and 100 / 2 = 50 tokens, which fit
    assert budget.max_batch == 3 and budget.max_tokens == 50

    def never_fits(idx: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("fake")

    with pytest.raises(RuntimeError, match="single row"):
        map_batches(lengths, never_fits, budget=BatchBudget(max_batch=4))


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- embed head


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "é", "", " a", "a "]), max_size=30))
def test_dedupe_inverse_rebuilds_input(texts):
    uniq, inverse = dedupe(texts)
    assert len(set(uniq)) == len(uniq) == len(set(texts))
    assert [uniq[i] for i in inverse.tolist()] == texts


def test_reward_head_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    head = RewardHead(HeadConfig(dim=8, hidden=16, encoder_id="enc@x")).eval()
    e_x, e_y = torch.randn(5, 8), torch.randn(5, 8)
    head.save_pretrained(tmp_path / "head")
    config = json.loads((tmp_path / "head" / "config.json").read_text())
    assert config["rmcurate_backend"] == "embed-head" and config["encoder_id"] == "enc@x"
    loaded = RewardHead.from_pretrained(tmp_path / "head")
    assert not loaded.training
    assert torch.equal(loaded(e_x, e_y), head(e_x, e_y))
    assert loaded.weights_sha256() == head.weights_sha256()
    (tmp_path / "head" / "config.json").write_text(json.dumps({"dim": 8}))
    with pytest.raises(ValueError, match="embed-head"):
        RewardHead.from_pretrained(tmp_path / "head")


def test_embed_head_score_equals_score_embeddings_and_dedupes(encoder):
    rm = EmbedHeadRewardModel.from_encoder(encoder, seed=1)
    rm.encode_batch_size = 1  # one encoder forward per distinct text
    assert isinstance(rm, RewardScorer)
    assert rm.model_id == f"bundled-head:{rm.revision}"
    before_enc, before_all = encoder.n_forward, rm.n_forward
    scores = rm.score(PROMPTS, RESPONSES)
    distinct = len(set(PROMPTS + RESPONSES))
    assert encoder.n_forward - before_enc == distinct
    assert rm.n_forward - before_all == distinct + 1  # plus one head batch
    direct = rm.score_embeddings(encoder.encode(PROMPTS), encoder.encode(RESPONSES))
    assert scores.shape == (len(PROMPTS),) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, direct, atol=1e-6, rtol=0)
    # the same response scores differently under different prompts: the head uses the prompt
    assert scores[0] != scores[4]


def test_embed_head_revision_tracks_weights_and_roundtrips(tmp_path, encoder):
    rm = EmbedHeadRewardModel.from_encoder(encoder, seed=2)
    rm.head.train()
    scores = rm.score(PROMPTS, RESPONSES)
    assert rm.head.training  # scoring does not leave dropout switched off for a trainer
    again = EmbedHeadRewardModel.from_encoder(encoder, seed=2)
    assert again.revision == rm.revision
    assert EmbedHeadRewardModel.from_encoder(encoder, seed=3).revision != rm.revision

    rm.save_pretrained(tmp_path / "rm")
    loaded = EmbedHeadRewardModel.from_pretrained(tmp_path / "rm", encoder=encoder)
    assert loaded.model_id == str((tmp_path / "rm").resolve())
    assert loaded.revision == rm.revision
    torch.testing.assert_close(loaded.score(PROMPTS, RESPONSES), scores, atol=0, rtol=0)
    assert detect_backend(tmp_path / "rm") == "embed-head"
    assert isinstance(load_scorer(tmp_path / "rm", device="cpu"), EmbedHeadRewardModel)

    old = rm.revision
    with torch.no_grad():
        rm.head.mlp[0].weight[0, 0] += 1.0
    assert rm.revision != old


def test_embed_head_refuses_other_encoder_space(encoder):
    head = RewardHead(HeadConfig(encoder_id="some-other-encoder@abc"))
    with pytest.raises(ValueError, match="trained on"):
        EmbedHeadRewardModel(encoder, head)


# ---------------------------------------------------------------- joint models


def save_tiny_gpt2(folder: Path, tokenizer: PreTrainedTokenizerBase) -> Path:
    """A random 2-layer GPT-2 reward model (num_labels=1) with `tokenizer`."""
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128, num_labels=1
    )
    torch.manual_seed(0)
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def joint_folder(request, tmp_path_factory, save_tiny_bert, byte_bpe_tokenizer) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "bert":
        return save_tiny_bert(folder)
    return save_tiny_gpt2(folder, byte_bpe_tokenizer())


def reference_scores(folder: Path, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """One pair at a time through plain transformers, encoding as the docstring says."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    out = []
    with torch.no_grad():
        for p, r in zip(prompts, responses, strict=True):
            if tok.num_special_tokens_to_add(pair=True) > 0:
                inputs = tok(p, r, return_tensors="pt")
            else:
                inputs = tok(f"{p}\n{r}", return_tensors="pt")
            out.append(model(**inputs).logits[0, 0])
    return torch.stack(out)


def test_joint_batched_equals_unbatched_and_counts_forwards(joint_folder):
    rm = JointRewardModel.load(joint_folder, device="cpu")
    rm.budget.max_batch = 2
    assert isinstance(rm, RewardScorer) and rm.backend == "joint"
    assert rm.model_id == str(joint_folder.resolve())
    weights = (joint_folder / "model.safetensors").read_bytes()
    assert rm.revision == hashlib.sha256(weights).hexdigest()[:12]

    scores = rm.score(PROMPTS, RESPONSES)
    assert rm.n_forward == math.ceil(len(PROMPTS) / 2)
    assert scores.shape == (len(PROMPTS),) and scores.dtype == torch.float32
    expected = reference_scores(joint_folder, PROMPTS, RESPONSES)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)

    assert detect_backend(joint_folder) == "joint"
    assert isinstance(load_scorer(joint_folder, device="cpu"), JointRewardModel)
    padded = rm.score(PROMPTS, RESPONSES, pad_longest=True)
    torch.testing.assert_close(padded, scores, atol=1e-5, rtol=0)
    assert rm.score([], []).shape == (0,)


def test_joint_token_budget_splits_batches(joint_folder):
    rm = JointRewardModel.load(joint_folder, device="cpu", max_tokens_per_batch=1)
    scores = rm.score(PROMPTS, RESPONSES)
    assert rm.n_forward == len(PROMPTS)  # a budget below one row still runs one row per batch
    torch.testing.assert_close(
        scores, reference_scores(joint_folder, PROMPTS, RESPONSES), atol=1e-5, rtol=0
    )


def test_joint_saved_folder_reloads_with_plain_transformers(joint_folder, tmp_path):
    rm = JointRewardModel.load(joint_folder, device="cpu")
    scores = rm.score(PROMPTS, RESPONSES)
    rm.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").exists()
    plain = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "saved", use_safetensors=True
    ).eval()
    assert plain.config.pad_token_id is not None  # GPT-2 needs it for batches > 1
    with torch.no_grad():
        idx = torch.arange(len(PROMPTS))
        logits = plain(**rm.collate(rm.encode(PROMPTS, RESPONSES), idx)).logits[:, 0]
    torch.testing.assert_close(logits, scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        JointRewardModel.load(tmp_path / "saved", device="cpu").score(PROMPTS, RESPONSES),
        scores,
        atol=0,
        rtol=0,
    )


def test_joint_truncation_keeps_response_end(joint_folder):
    rm = JointRewardModel.load(joint_folder, device="cpu", max_length=24)
    prompt, response = "the lazy dog " * 40, "paris is the capital"
    ids = rm.encode([prompt], [response])["input_ids"][0]
    assert len(ids) == 24
    text = rm.tokenizer.decode(ids, skip_special_tokens=True)
    assert text.rstrip().endswith(response)


def test_joint_uses_chat_template_when_present(tmp_path, byte_bpe_tokenizer):
    folder = save_tiny_gpt2(tmp_path / "chat", byte_bpe_tokenizer())
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    )
    tok.save_pretrained(folder)
    rm = JointRewardModel.load(folder, device="cpu")
    assert rm.input_format == "chat"
    ids = rm.encode(["hi there"], ["paris"])["input_ids"][0]
    expected = tok("<|user|>hi there<|endoftext|><|assistant|>paris<|endoftext|>")["input_ids"]
    assert ids == expected


def test_joint_rejects_multi_label_heads(tmp_path):
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bundled_model_dir()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="num_labels=1"):
        JointRewardModel.load(tmp_path, device="cpu")


# ---------------------------------------------------------------- rendering (shared by every model)

RENDER_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_render_plain_pins_text_response_start_and_ids(byte_bpe_tokenizer):
    tok = byte_bpe_tokenizer()
    prompts, responses = ["hi there", "a\n"], ["paris", " b"]
    assert input_format(tok) == "plain"
    texts = render_texts(tok, prompts, responses)
    assert texts == ["hi there\nparis", "a\n\n b"]
    assert response_starts(tok, prompts, texts) == [9, 3]
    enc = encode_pairs(tok, prompts, responses, max_length=64)
    assert enc["input_ids"] == [tok(t)["input_ids"] for t in texts]
    assert enc["length"] == [len(ids) for ids in enc["input_ids"]]
    assert "token_type_ids" not in enc or all(set(t) == {0} for t in enc["token_type_ids"])


def test_render_chat_template_pins_text_response_start_and_ids(byte_bpe_tokenizer):
    tok = byte_bpe_tokenizer()
    tok.chat_template = RENDER_CHAT_TEMPLATE
    prompts, responses = ["hi there", "what is the capital?"], ["paris", "Paris."]
    assert input_format(tok) == "chat"
    texts = render_texts(tok, prompts, responses)
    heads = [f"<|user|>{p}<|endoftext|><|assistant|>" for p in prompts]
    assert texts == [f"{h}{r}<|endoftext|>" for h, r in zip(heads, responses, strict=True)]
    assert response_starts(tok, prompts, texts) == [len(h) for h in heads]
    enc = encode_pairs(tok, prompts, responses, max_length=64)
    # The template writes its own special tokens: none are added on top.
    assert enc["input_ids"] == [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert tokenize_texts(tok, texts)["input_ids"] == enc["input_ids"]


def test_render_refuses_a_template_that_changes_the_prompt(byte_bpe_tokenizer):
    tok = byte_bpe_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}[{{ messages | length }}]{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}>{% endif %}"
    )
    texts = render_texts(tok, ["hi"], ["yo"])
    with pytest.raises(ValueError, match="differently"):
        response_starts(tok, ["hi"], texts)


def test_render_text_pair_tokenizer_uses_its_own_pair_encoding():
    tok = AutoTokenizer.from_pretrained(bundled_model_dir())
    tok.truncation_side = "left"
    assert input_format(tok) == "pair"
    prompt, response = "the lazy dog " * 20, "paris is the capital"
    enc = encode_pairs(tok, [prompt], [response], max_length=24)
    want = tok(prompt, response, truncation="longest_first", max_length=24)
    assert enc["input_ids"] == [want["input_ids"]]
    assert enc["token_type_ids"] == [want["token_type_ids"]]
    assert tok.decode(enc["input_ids"][0], skip_special_tokens=True).endswith(response)


def test_joint_and_lm_read_the_same_rendering(tmp_path, byte_bpe_tokenizer, save_tiny_lm):
    """The LM weights and a causal reward model tokenize one pair to the same ids."""
    from rmcore.models.lm_loglik import CausalLMScorer

    for name, template in (("plain", None), ("chat", RENDER_CHAT_TEMPLATE)):
        tok = byte_bpe_tokenizer()
        tok.chat_template = template
        rm = JointRewardModel.load(save_tiny_gpt2(tmp_path / f"rm-{name}", tok), device="cpu")
        lm = CausalLMScorer.load(save_tiny_lm(tmp_path / f"lm-{name}", template), device="cpu")
        texts = render_texts(lm.tokenizer, PROMPTS, RESPONSES)
        enc = tokenize_texts(lm.tokenizer, texts, truncation=True, max_length=rm.max_length)
        lm_ids = enc["input_ids"]
        assert rm.encode(PROMPTS, RESPONSES)["input_ids"] == lm_ids
