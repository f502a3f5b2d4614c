"""The one rendering of a (prompt, response) pair as model input, shared by every model.

The reward models (`joint`, and the trainer through `JointRewardModel.encode`) and the LM
behind the importance weights (`lm_loglik`) must read the same text for the same pair,
or the weights describe a different input than the one being scored. So both render here:
- the tokenizer has a chat template: user=prompt, assistant=response, rendered by it (the
  template writes its own special tokens, so none are added on top);
- else, for sequence classifiers whose tokenizer adds separators to text pairs (BERT,
  RoBERTa, DeBERTa): the tokenizer's own text pair;
- else (GPT-2 style models, and every causal LM without a template): `prompt + "\\n" + response`.

Where the response starts matters to the LM, which scores only the response's tokens: with a
template the prompt part is the template's generation prompt (so the response includes the
template's end-of-turn tokens), without one it is the prompt and the newline.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import BatchEncoding, PreTrainedTokenizerBase

CHAT, PAIR, PLAIN = "chat", "pair", "plain"
SEPARATOR = "\n"  # between prompt and response in the plain rendering
RENDERINGS = {  # what a model card says about each rendering
    CHAT: "the tokenizer's chat template over two messages, user = prompt and assistant ="
    " response (the template writes its own special tokens)",
    PAIR: "the tokenizer's text pair (prompt, response) with its own special tokens, as"
    " `tokenizer(prompt, response)`",
    PLAIN: 'one text, `prompt + "\\n" + response`, with the tokenizer\'s special tokens',
}


PLAIN_CALLS = {  # `encode_pairs` for one pair in plain transformers, for model cards
    CHAT: "text = tokenizer.apply_chat_template(\n"
    '    [{{"role": "user", "content": prompt}}, {{"role": "assistant", "content": response}}],\n'
    "    tokenize=False,\n)\n"
    "inputs = tokenizer(text, add_special_tokens=False, truncation=True, max_length={n}, "
    'return_tensors="pt")',
    PAIR: "inputs = tokenizer(\n"
    '    prompt, response, truncation="longest_first", max_length={n}, return_tensors="pt"\n)',
    PLAIN: 'inputs = tokenizer(prompt + "\\n" + response, truncation=True, max_length={n}, '
    'return_tensors="pt")',
}


def plain_call(fmt: str, max_length: int) -> str:
    """Python that tokenizes one (`prompt`, `response`) as `encode_pairs` does (left
    truncation included) into `inputs`."""
    return 'tokenizer.truncation_side = "left"\n' + PLAIN_CALLS[fmt].format(n=max_length)


def input_format(tokenizer: PreTrainedTokenizerBase) -> str:
    """ "chat", "pair" or "plain": how a sequence classifier reads a pair (module docstring)."""
    if tokenizer.chat_template:
        return CHAT
    return PAIR if tokenizer.num_special_tokens_to_add(pair=True) > 0 else PLAIN


def conversation(prompt: str, response: str | None = None) -> list[dict[str, str]]:
    """The chat messages of one pair: the user turn, then the assistant turn when given."""
    messages = [{"role": "user", "content": prompt}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def render_texts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str]
) -> list[str]:
    """One text per pair: the chat template's rendering, else `prompt + "\\n" + response`."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [conversation(p, r) for p, r in zip(prompts, responses, strict=True)], tokenize=False
        )
    return [f"{p}{SEPARATOR}{r}" for p, r in zip(prompts, responses, strict=True)]


def response_starts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], texts: Sequence[str]
) -> list[int]:
    """Character offset in each text of `render_texts` where the response part begins."""
    if not tokenizer.chat_template:
        return [len(p) + len(SEPARATOR) for p in prompts]
    heads = tokenizer.apply_chat_template(
        [conversation(p) for p in prompts], tokenize=False, add_generation_prompt=True
    )
    if not all(t.startswith(h) for t, h in zip(texts, heads, strict=True)):
        raise ValueError("chat template renders the prompt differently with a response")
    return [len(h) for h in heads]


def tokenize_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], **kwargs: object
) -> BatchEncoding:
    """Token ids of rendered texts; special tokens only where no template wrote its own."""
    return tokenizer(list(texts), add_special_tokens=not tokenizer.chat_template, **kwargs)


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    max_length: int,
) -> BatchEncoding:
    """Unpadded token ids (+ token_type_ids for text pairs) and a `length` per row.

    Truncation keeps the end (the tokenizer's `truncation_side` is "left" in every model):
    text pairs are cut "longest first", so a short response is kept whole.
    """
    common = {"truncation": True, "max_length": max_length, "return_length": True}
    if input_format(tokenizer) == PAIR:
        return tokenizer(
            list(prompts), list(responses), **{**common, "truncation": "longest_first"}
        )
    return tokenize_texts(tokenizer, render_texts(tokenizer, prompts, responses), **common)
