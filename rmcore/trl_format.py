"""A curated set's members as rows that TRL's `RewardTrainer` trains on as they are.

TRL tokenizes `prompt + chosen` and `prompt + rejected` with no separator (explicit format),
or applies the tokenizer's chat template to `prompt + chosen` message lists (conversational
format). Our texts are stripped, so a plain concatenation runs the prompt's last word into the
answer's first ("...a fruitApple"). Hence:

- `explicit`: the prompt ends with `rmcore.models.render.SEPARATOR` ("\\n"), so TRL reads
  `prompt + "\\n" + response`, the same text our joint models read without a chat template;
- `conversational`: the prompt is a list of `{role, content}` messages (a multi-turn prompt,
  stored as `Human:`/`Assistant:`/`System:` turns, becomes one message per turn), chosen and
  rejected one assistant message each; the chat template separates them.

Every row is oriented so that `chosen` is the preferred response (a label p < 0.5 swaps the
two and becomes 1 - p), because TRL always trains chosen over rejected. `margin` carries the
strength of the preference into TRL's loss, -log sigmoid(r_chosen - r_rejected - margin):
margin = min(logit(p), cap), the reward gap at which our soft-label loss for label p is
smallest (0 for a tie, `cap` for a hard label, whose logit is infinite).

TRL ignores `label` and `weight`: ties and soft labels train as hard preferences (only their
margin differs) and curation weights have no effect. `ignored_columns_note` says so with the
numbers; `rmcurate train --set` trains with both.
"""

from __future__ import annotations

import polars as pl

from rmcore.ingest.formats import parse_conversation
from rmcore.models.render import SEPARATOR

TRL_COLUMNS = ("prompt", "chosen", "rejected", "margin")
EXTRA_COLUMNS = ("label", "weight", "pair_id", "split", "augmentation")
CHAT_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}
MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})


def oriented(members: pl.DataFrame) -> pl.DataFrame:
    """Chosen is the preferred response in every row: p < 0.5 swaps the two, p -> 1 - p."""
    flip = pl.col("label") < 0.5
    return members.with_columns(
        chosen=pl.when(flip).then("rejected").otherwise("chosen"),
        rejected=pl.when(flip).then("chosen").otherwise("rejected"),
        label=pl.when(flip).then(1.0 - pl.col("label")).otherwise("label"),
    )


def margin(label: pl.Expr, cap: float) -> pl.Expr:
    """min(logit(p), cap) for p in [0.5, 1]: 0 for a tie, cap for a hard label."""
    return (label / (1.0 - label)).log().clip(0.0, cap)


def prompt_messages(prompts: pl.Series) -> pl.Series:
    """Each stored prompt as chat messages, one per turn (parsed once per distinct prompt)."""
    distinct = prompts.unique()
    messages = [
        [{"role": CHAT_ROLES[role], "content": text} for role, text in parse_conversation(p)]
        for p in distinct.to_list()
    ]
    table = pl.DataFrame(
        {"prompt": distinct, "messages": pl.Series(messages, dtype=pl.List(MESSAGE))}
    )
    joined = prompts.to_frame("prompt").join(table, on="prompt", how="left", maintain_order="left")
    return joined["messages"]


def assistant_message(texts: pl.Expr) -> pl.Expr:
    """A response as a one-message assistant turn."""
    return pl.concat_list(pl.struct(role=pl.lit("assistant"), content=texts))


def trl_rows(members: pl.DataFrame, trl_format: str, margin_cap: float) -> pl.DataFrame:
    """TRL's columns (prompt, chosen, rejected, margin), then ours (label, weight, ids)."""
    frame = oriented(members).with_columns(margin=margin(pl.col("label"), margin_cap))
    if trl_format == "explicit":
        frame = frame.with_columns(prompt=pl.col("prompt") + SEPARATOR)
    else:
        frame = frame.with_columns(
            prompt_messages(frame["prompt"]).alias("prompt"),
            chosen=assistant_message(pl.col("chosen")),
            rejected=assistant_message(pl.col("rejected")),
        )
    return frame.select(*TRL_COLUMNS, *EXTRA_COLUMNS)


def ignored_columns_note(rows: pl.DataFrame) -> str:
    """What TRL's RewardTrainer leaves out of this export, with counts, and what trains on it."""
    n_ties = rows.filter(pl.col("label") == 0.5).height
    n_soft = rows.filter((pl.col("label") > 0.5) & (pl.col("label") < 1.0)).height
    n_weighted = rows.filter(pl.col("weight") != 1.0).height
    return (
        "TRL's RewardTrainer reads prompt, chosen, rejected and margin; it ignores label and "
        f"weight: {n_ties} ties and {n_soft} soft labels train as hard preferences (their "
        f"strength only in margin) and {n_weighted} pairs with weight != 1 count as weight 1. "
        "To train with labels and weights: rmcurate train NAME --set SET"
    )
