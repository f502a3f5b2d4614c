"""Native dataset schemas: public preference datasets read in the shape they are published in.

Each schema is a `Schema`: the keys that detect it, the typed fields it reads, and an adapter
of polars expressions over the whole batch (no per-row Python on the hot path). The adapter
maps a typed frame onto candidate pairs (prompt, chosen, rejected, label, the model behind
each response) or a quarantine reason per row; the batch builder then runs the same text,
label, split and duplicate checks as for every other format.

Label rules (P(chosen preferred), 0.5 is a tie and stays a tie):
- a stated preference without strength (PKU-SafeRLHF ids, StackExchange j > k, OpenRLHF
  chosen/rejected, Arena winners): 1.0; Arena `tie` and `tie (bothbad)`: 0.5.
- a signed strength on a -3..3 scale (HelpSteer3 `overall_preference`, HelpSteer2
  `preference_strength`; negative: the first response is better): 0.5 + |strength| / 6,
  so 1 -> 0.667, 2 -> 0.833, 3 -> 1.0, and 0 is a tie.
- SHP: the chosen comment's share of the two scores, score_c / (score_c + score_r)
  (a score ratio of 2 -> 0.667); 1.0 when the scores are missing.
- scored lists (UltraFeedback `completions`, Nectar `answers` ranks, HelpSteer2 attribute
  rows): 0.5 + 0.5 * gap / range, where gap is the score difference of the two responses and
  range the largest score difference in the batch, so the widest gap is 1.0.

Provenance: every column that is not one of the texts, plus `chosen_model` / `rejected_model`
where the dataset names the model behind each response.

Type checks are per field: a typed source column of the wrong type fails every row that holds
a value in it; rows read one by one (JSON arrays, mixed-type files) are checked value by value.
A required field that is null is `missing_field`, a value of the wrong type `wrong_type`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import polars as pl

from rmcore.config import IngestConfig
from rmcore.errors import FormatError
from rmcore.ingest.sources import ParsedRows, RawRecords
from rmcore.ingest.typed import first_failure, typed_frame

TEXT, NUMBER = pl.String, pl.Float64
MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
PREFERENCES = ("better", "safer")  # PKU-SafeRLHF: better_response_id or safer_response_id
ROLE_NAMES = {
    "user": "Human",
    "human": "Human",
    "prompter": "Human",
    "assistant": "Assistant",
    "gpt": "Assistant",
    "bot": "Assistant",
    "system": "System",
}
ITEM_TEXT_KEYS = ("response", "text", "output", "completion", "content", "answer")
# The default score of a scored list: UltraFeedback's `overall_score` is known to be noisy, so
# the mean of its fine-grained ratings comes first when a list carries both.
ITEM_SCORE_KEYS = ("rating", "fine-grained_score", "overall_score", "score")
TIE = 0.5


class Options(NamedTuple):
    """The choices a user makes for datasets that carry several preferences."""

    ranked_mode: str = IngestConfig.ranked_mode
    score_field: str | None = IngestConfig.score_field
    preference: str = IngestConfig.preference


@dataclass(frozen=True)
class Schema:
    """`keys`: detected when a record carries all of them; `fields`: typed fields read (a
    callable resolves them from the batch where they depend on it); `required`: fields that
    must be non-null; `texts`: fields left out of provenance."""

    name: str
    source: str
    keys: frozenset[str]
    fields: dict[str, pl.DataType] | Callable[[dict[str, pl.DataType], Options], dict]
    required: tuple[str, ...]
    texts: frozenset[str]
    adapt: Callable[[pl.DataFrame, Options, dict], pl.DataFrame] = field(repr=False)
    # rows of one comparison -> one input row per group (see "grouped rows" below)
    group: Callable[[pl.DataFrame, Options], pl.DataFrame] | None = field(default=None, repr=False)
    one_of: frozenset[str] = frozenset()  # detection also needs one of these keys
    absent: frozenset[str] = frozenset()  # ... and none of these
    # nested records read as the rows of another schema (see "message trees" below)
    flattened_as: str | None = None

    def matches(self, keys: set[str]) -> bool:
        return (
            self.keys <= keys
            and (not self.one_of or bool(self.one_of & keys))
            and not self.absent & keys
        )


# ----------------------------------------------------------------------------- expressions
def _fail(cond: pl.Expr, reason: str, message: str | pl.Expr) -> tuple[pl.Expr, str, Any]:
    return cond, reason, message


def _reasons(*checks: tuple[pl.Expr, str, Any]) -> list[pl.Expr]:
    return first_failure(list(checks))


def _role() -> pl.Expr:
    """The canonical role name of a list element (null for an unknown role)."""
    role = pl.element().struct.field("role").str.to_lowercase()
    return role.replace_strict(ROLE_NAMES, default=None, return_dtype=pl.String)


def _role_names(msgs: pl.Expr) -> pl.Expr:
    return msgs.list.eval(_role())


def _turns(msgs: pl.Expr) -> pl.Expr:
    """Each message as `Role: content` (null for an unknown role)."""
    content = pl.element().struct.field("content")
    return msgs.list.eval(pl.concat_str(_role(), pl.lit(": "), content))


def render_messages(msgs: pl.Expr) -> pl.Expr:
    """The canonical prompt rendering (rmcore.ingest.formats.render_conversation) as an
    expression: one user turn is its text, more turns are `Role: content` blocks."""
    first = msgs.list.first()
    single_user = (msgs.list.len() == 1) & (_role_names(msgs).list.first() == pl.lit("Human"))
    return (
        pl.when(single_user)
        .then(first.struct.field("content"))
        .otherwise(_turns(msgs).list.join("\n\n"))
    )


def render_reply(msgs: pl.Expr) -> pl.Expr:
    """A response that runs over several turns: the first reply's text, then the later turns
    as `Role: content` blocks (as an Anthropic-HH response after the shared prompt)."""
    head = msgs.list.first().struct.field("content")
    rest = _turns(msgs.list.slice(1)).list.join("\n\n")
    return (
        pl.when(msgs.list.len() > 1).then(pl.concat_str(head, pl.lit("\n\n"), rest)).otherwise(head)
    )


def _unknown_role(*lists: pl.Expr) -> pl.Expr:
    return pl.any_horizontal(
        _role_names(m).list.eval(pl.element().is_null()).list.any() for m in lists
    )


_HH_MARK = r"\s*\n\n(Human|Assistant|System):\s*"


def render_transcript(text: pl.Expr) -> pl.Expr:
    """An Anthropic-HH style prompt (`\\n\\nHuman: ...\\n\\nAssistant:`) in the canonical
    rendering: the trailing `Assistant:` marker dropped, one Human turn as its text."""
    body = pl.concat_str(pl.lit("\n\n"), text.str.strip_chars_start("\n"))
    body = body.str.replace(r"\s*\n\nAssistant:\s*$", "")
    marks = body.str.count_matches(r"\n\n(Human|Assistant|System):")
    lone = body.str.replace(r"^\n\nHuman:\s*", "")
    turns = body.str.replace_all(_HH_MARK, "\n\n$1: ").str.strip_chars_start("\n")
    return pl.when((marks == 1) & body.str.starts_with("\n\nHuman:")).then(lone).otherwise(turns)


def _pick(cond: pl.Expr, a: pl.Expr, b: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    return pl.when(cond).then(a).otherwise(b), pl.when(cond).then(b).otherwise(a)


def _pair(prompt, chosen, rejected, label, chosen_model=None, rejected_model=None) -> list:
    none = pl.lit(None, dtype=pl.String)
    return [
        prompt.alias("prompt"),
        chosen.alias("chosen"),
        rejected.alias("rejected"),
        label.cast(pl.Float64).alias("label"),
        (none if chosen_model is None else chosen_model).alias("chosen_model"),
        (none if rejected_model is None else rejected_model).alias("rejected_model"),
    ]


def _signed_strength(
    df: pl.DataFrame, prompt: pl.Expr, first: str, second: str, strength: str
) -> pl.DataFrame:
    """-3..3 with negative = the first response better (HelpSteer2 and 3)."""
    s = pl.col(strength)
    chosen, rejected = _pick(s <= 0, pl.col(first), pl.col(second))
    return df.select(
        "_row",
        *_pair(prompt, chosen, rejected, 0.5 + s.abs() / 6),
        *_reasons(
            _fail(
                (s.abs() > 3) | s.is_nan() | (s != s.round()),
                "invalid_label",
                pl.format(f"{strength} {{}} is not an integer in [-3, 3]", s),
            ),
        ),
    )


# ----------------------------------------------------------------------------- adapters
def _pku(df: pl.DataFrame, opts: Options, _: dict) -> pl.DataFrame:
    key = f"{opts.preference}_response_id"
    chosen_id = pl.col(key)
    first = chosen_id == 0
    chosen, rejected = _pick(first, pl.col("response_0"), pl.col("response_1"))
    cm, rm = _pick(first, pl.col("response_0_source"), pl.col("response_1_source"))
    return df.select(
        "_row",
        *_pair(pl.col("prompt"), chosen, rejected, pl.lit(1.0), cm, rm),
        *_reasons(
            _fail(chosen_id.is_null(), "missing_field", f"field {key!r} is missing or null"),
            _fail(
                ~chosen_id.is_in([0.0, 1.0]),
                "invalid_label",
                pl.format(f"{key} {{}} is not 0 or 1", chosen_id),
            ),
        ),
    )


def _shp(df: pl.DataFrame, _: Options, __: dict) -> pl.DataFrame:
    a_wins = pl.col("labels") == 1
    chosen, rejected = _pick(a_wins, pl.col("human_ref_A"), pl.col("human_ref_B"))
    sc, sr = _pick(a_wins, pl.col("score_A"), pl.col("score_B"))
    share = sc / (sc + sr)
    scored = sc.is_not_null() & sr.is_not_null() & (sc + sr > 0)
    return df.select(
        "_row",
        *_pair(pl.col("history"), chosen, rejected, pl.when(scored).then(share).otherwise(1.0)),
        *_reasons(
            _fail(
                ~pl.col("labels").is_in([0.0, 1.0]),
                "invalid_label",
                pl.format("labels {} is not 0 or 1", pl.col("labels")),
            ),
            _fail(
                scored & (share < 0.5),
                "invalid_label",
                "labels prefers the comment with the lower score",
            ),
            _fail((sc < 0) | (sr < 0), "invalid_label", "a comment score is negative"),
        ),
    )


_ARENA_WINNERS = {"model_a": 1.0, "model_b": 1.0, "tie": TIE, "tie (bothbad)": TIE}


def _arena(df: pl.DataFrame, _: Options, __: dict) -> pl.DataFrame:
    a, b = pl.col("conversation_a"), pl.col("conversation_b")

    def cut(m: pl.Expr) -> pl.Expr:  # index of the first assistant turn
        return _role_names(m).list.eval(pl.element() == "Assistant").list.arg_max()

    # Steps as columns: in one select, polars evaluated the list expressions once per use
    # (8x slower on 20k rows).
    k = pl.col("_k")
    steps = df.with_columns(cut(a).alias("_k"), cut(b).alias("_k_b")).with_columns(
        a.list.head(k).alias("_prompt_a"),
        (b.list.head(k) != a.list.head(k)).alias("_prompts_differ"),
        render_reply(a.list.slice(k)).alias("_reply_a"),
        render_reply(b.list.slice(k)).alias("_reply_b"),
        _unknown_role(a, b).alias("_unknown"),
    )
    winner = pl.col("winner")
    b_wins = winner == "model_b"
    chosen, rejected = _pick(~b_wins, pl.col("_reply_a"), pl.col("_reply_b"))
    cm, rm = _pick(~b_wins, pl.col("model_a"), pl.col("model_b"))
    return steps.select(
        "_row",
        *_pair(
            render_messages(pl.col("_prompt_a")),
            chosen,
            rejected,
            winner.replace_strict(_ARENA_WINNERS, default=None, return_dtype=pl.Float64),
            cm,
            rm,
        ),
        *_reasons(
            _fail(pl.col("_unknown"), "wrong_type", "a conversation holds an unknown role"),
            _fail(
                (k == 0) | (k != pl.col("_k_b")) | pl.col("_prompts_differ"),
                "no_shared_prompt",
                "conversation_a and conversation_b do not open with the same user turns",
            ),
            _fail(
                ~winner.is_in(list(_ARENA_WINNERS)),
                "invalid_label",
                pl.format("winner {} is not one of model_a, model_b, tie, tie (bothbad)", winner),
            ),
        ),
    )


def _helpsteer3(df: pl.DataFrame, _: Options, __: dict) -> pl.DataFrame:
    out = _signed_strength(
        df, render_messages(pl.col("context")), "response1", "response2", "overall_preference"
    )
    unknown = df.select(_unknown_role(pl.col("context")).fill_null(False)).to_series()
    return out.with_columns(
        pl.when(unknown).then(pl.lit("wrong_type")).otherwise("_reason").alias("_reason"),
        pl.when(unknown)
        .then(pl.lit("field 'context' holds an unknown role"))
        .otherwise("_message")
        .alias("_message"),
    )


def _helpsteer2_preference(df: pl.DataFrame, _: Options, __: dict) -> pl.DataFrame:
    return _signed_strength(df, pl.col("prompt"), "response_1", "response_2", "preference_strength")


def _stack_exchange(df: pl.DataFrame, _: Options, __: dict) -> pl.DataFrame:
    return df.select(
        "_row",
        *_pair(pl.col("question"), pl.col("response_j"), pl.col("response_k"), pl.lit(1.0)),
        *_reasons(),
    )


def _openrlhf(df: pl.DataFrame, _: Options, __: dict) -> pl.DataFrame:
    return df.select(
        "_row",
        *_pair(pl.col("input"), pl.col("chosen"), pl.col("rejected"), pl.lit(1.0)),
        *_reasons(),
    )


# ----------------------------------------------------------------------------- scored lists
def scored_pairs(items: pl.DataFrame, mode: str) -> pl.DataFrame:
    """Pairs from scored responses: `items` has `_row`, `prompt`, `_item` (position), `text`,
    `score` (higher is better), `model`, and `_reason`/`_message` per row (null when the
    row's list is usable). Best-vs-worst takes the first highest against the first lowest;
    all-pairs every ordered pair with a higher score first. Labels: module docstring."""
    bad = items.filter(pl.col("_reason").is_not_null()).unique(
        "_row", keep="first", maintain_order=True
    )
    good = items.filter(pl.col("_reason").is_null())
    distinct = good.group_by("_row").agg(pl.col("score").n_unique().alias("n"))
    flat = distinct.filter(pl.col("n") < 2)["_row"]
    rejects = pl.concat(
        [
            bad.select("_row", "_reason", "_message"),
            good.filter(pl.col("_row").is_in(flat.implode()))
            .unique("_row", keep="first", maintain_order=True)
            .select(
                "_row",
                pl.lit("no_preference").alias("_reason"),
                pl.lit("fewer than two distinct scores among the responses").alias("_message"),
            ),
        ]
    )
    good = good.filter(~pl.col("_row").is_in(flat.implode()))
    span = (good["score"].max() or 0.0) - (good["score"].min() or 0.0)
    if mode == "best-vs-worst":
        top = good.group_by("_row", maintain_order=True).agg(
            pl.col("prompt").first(),
            pl.col("text").get(pl.col("score").arg_max()).alias("chosen"),
            pl.col("text").get(pl.col("score").arg_min()).alias("rejected"),
            pl.col("model").get(pl.col("score").arg_max()).alias("chosen_model"),
            pl.col("model").get(pl.col("score").arg_min()).alias("rejected_model"),
            (pl.col("score").max() - pl.col("score").min()).alias("_gap"),
        )
    else:
        side = good.select("_row", "_item", "text", "score", "model")
        top = (
            good.join(side, on="_row", suffix="_r")
            .filter(pl.col("score") > pl.col("score_r"))
            .sort("_row", "_item", "_item_r")
            .select(
                "_row",
                "prompt",
                pl.col("text").alias("chosen"),
                pl.col("text_r").alias("rejected"),
                pl.col("model").alias("chosen_model"),
                pl.col("model_r").alias("rejected_model"),
                (pl.col("score") - pl.col("score_r")).alias("_gap"),
            )
        )
    pairs = top.select(
        "_row",
        *_pair(
            pl.col("prompt"),
            pl.col("chosen"),
            pl.col("rejected"),
            0.5 + 0.5 * pl.col("_gap") / (span or 1.0),
            pl.col("chosen_model"),
            pl.col("rejected_model"),
        ),
        *_reasons(),
    )
    nulls = {
        c: pl.lit(None, dtype=pairs.schema[c])
        for c in pairs.columns
        if c not in ("_row", "_reason", "_message")
    }
    rejects = rejects.select("_row", *(v.alias(k) for k, v in nulls.items()), "_reason", "_message")
    return pl.concat([pairs, rejects]).sort("_row", maintain_order=True)


def _explode(
    df: pl.DataFrame,
    prompt: pl.Expr,
    items: str,
    text: str,
    score: pl.Expr,
    model: str | None,
    what: str,
    no_prompt: tuple[str, str] = ("missing_field", "field 'prompt' is missing or null"),
) -> pl.DataFrame:
    """One row per listed response, with the row-level reasons of the whole list;
    `no_prompt` is the reason and message for a row without a prompt."""
    listed = df.select(
        "_row",
        prompt.alias("prompt"),
        pl.col(items).alias("_items"),
    )
    flat = listed.with_columns(pl.col("_items").list.len().alias("_n"))
    flat = flat.explode("_items", empty_as_null=True)  # an empty list keeps its row
    it = pl.col("_items")
    flat = flat.with_columns(
        pl.int_range(pl.len()).over("_row").alias("_item"),
        it.struct.field(text).alias("text"),
        score.alias("score"),
        (it.struct.field(model) if model else pl.lit(None, dtype=pl.String)).alias("model"),
    )
    per_row = flat.group_by("_row", maintain_order=True).agg(
        pl.col("prompt").first().is_null().alias("_no_prompt"),
        (pl.col("_n").first() == 0).alias("_empty"),
        (pl.col("text").is_null() & (pl.col("_n") > 0)).any().alias("_no_text"),
        pl.col("score").is_null().any().alias("_no_score"),
        pl.col("score").is_nan().any().alias("_nan"),
    )
    checks = per_row.select(
        "_row",
        *_reasons(
            _fail(pl.col("_no_prompt"), *no_prompt),
            _fail(pl.col("_empty"), "no_preference", f"field {items!r} is empty"),
            _fail(pl.col("_no_text"), "wrong_type", f"a {what} has no text field {text!r}"),
            _fail(
                pl.col("_no_score"), "invalid_label", f"a {what} has no number in its score field"
            ),
            _fail(pl.col("_nan"), "invalid_label", f"a {what} score is NaN"),
        ),
    )
    return flat.drop("_items", "_n").join(checks, on="_row", how="left", maintain_order="left")


def _item_keys(fields: dict[str, pl.DataType], column: str) -> list[str]:
    dtype = fields.get(column)
    inner = dtype.inner if isinstance(dtype, pl.List) else None
    return [f.name for f in inner.fields] if isinstance(inner, pl.Struct) else []


def _ranked_fields(found: dict[str, pl.DataType], opts: Options) -> dict[str, pl.DataType]:
    keys = _item_keys(found, "completions")
    text = next((k for k in ITEM_TEXT_KEYS if k in keys), ITEM_TEXT_KEYS[0])
    score = opts.score_field or next((k for k in ITEM_SCORE_KEYS if k in keys), None)
    if score is None or (keys and score not in keys):
        raise FormatError(
            f"the completions carry no score field {score or ' / '.join(ITEM_SCORE_KEYS)!r};"
            f" they have {', '.join(keys) or 'no fields'}: pass --score-field"
        )
    item = {text: TEXT, score: NUMBER} | ({"model": TEXT} if "model" in keys else {})
    return {"prompt": TEXT, "instruction": TEXT, "completions": pl.List(pl.Struct(item))}


def _ranked(df: pl.DataFrame, opts: Options, fields: dict) -> pl.DataFrame:
    names = [f.name for f in fields["completions"].inner.fields]
    text, score = names[0], names[1]
    prompt = pl.coalesce("prompt", "instruction")
    items = _explode(
        df,
        prompt,
        "completions",
        text,
        pl.col("_items").struct.field(score),
        "model" if "model" in names else None,
        "completion",
        ("missing_field", "field 'prompt' (or 'instruction') is missing or null"),
    )
    return scored_pairs(items, opts.ranked_mode)


_NECTAR_ITEM = pl.Struct({"answer": TEXT, "model": TEXT, "rank": NUMBER})


def _nectar(df: pl.DataFrame, opts: Options, _: dict) -> pl.DataFrame:
    rank = pl.col("_items").struct.field("rank")
    items = _explode(
        df, render_transcript(pl.col("prompt")), "answers", "answer", -rank, "model", "answer"
    )
    return scored_pairs(items, opts.ranked_mode)


# ----------------------------------------------------------------------------- grouped rows
# Datasets that spread one comparison over several rows (a row per rated response, a row per
# message) are grouped first: an input is one group, numbered by its first row, and the
# reconcile counts groups (plus rows that cannot join one). Each group holds `replies`, a
# list of {answer, model, score} with higher scores better.
_REPLY = pl.Struct({"answer": TEXT, "model": TEXT, "score": NUMBER})


def _group_frame(grouped: pl.DataFrame, prompt: pl.Expr, extras: pl.Expr) -> pl.DataFrame:
    return grouped.select(
        "_row",
        prompt.alias("prompt"),
        pl.col("replies").cast(pl.List(_REPLY)),
        "_split",
        extras.alias("_extras"),
        pl.lit(None, dtype=pl.String).alias("_reason"),
        pl.lit(None, dtype=pl.String).alias("_message"),
    ).sort("_row")


def _oasst_groups(df: pl.DataFrame, _: Options) -> pl.DataFrame:
    """The assistant replies to each message, with the thread from the root to that message as
    their prompt (built level by level: one join per tree depth, not per row). Unranked
    replies are left out of the comparison; the other messages are the threads' context."""
    msgs = df.with_columns(pl.struct("role", pl.col("text").alias("content")).alias("_turn"))
    level = msgs.filter(pl.col("parent_id").is_null()).select(
        "message_id", pl.concat_list("_turn").alias("thread")
    )
    threads = [level]
    for _ in range(msgs.height):  # at most one level per message, whatever the ids say
        up = level.rename({"message_id": "parent_id", "thread": "_up"})
        level = msgs.join(up, on="parent_id").select(
            "message_id", pl.concat_list("_up", "_turn").alias("thread")
        )
        if level.is_empty():
            break
        threads.append(level)
    thread = pl.concat(threads).unique("message_id", keep="first")
    replies = msgs.filter(
        (pl.col("role").str.to_lowercase() == "assistant") & pl.col("parent_id").is_not_null()
    )
    grouped = (
        replies.join(thread.rename({"message_id": "parent_id"}), on="parent_id", how="left")
        .group_by("parent_id", maintain_order=True)
        .agg(
            pl.col("_row").min(),
            pl.col("thread").first(),
            pl.col("_split").first(),
            pl.col("message_tree_id").first(),
            pl.struct(
                pl.col("text").alias("answer"),
                pl.col("model_name").alias("model"),
                (-pl.col("rank")).alias("score"),  # rank 0 is the most preferred
            )
            .filter(pl.col("rank").is_not_null())
            .alias("replies"),
        )
    )
    extras = pl.struct("message_tree_id", "parent_id").struct.json_encode()
    return _group_frame(grouped, render_messages(pl.col("thread")), extras)


# ----------------------------------------------------------------------------- message trees
# The oasst1 `*.trees.jsonl` export nests a tree's messages (`prompt`, each with its `replies`)
# in one line. The lines are flattened into the flat message rows and read by the flat schema
# (one implementation of the pairs); an input row is a tree line: stored when any of its
# messages' replies make a pair, else quarantined with the reason of its first rejected
# message or group (a tree without ranked assistant siblings is `no_preference`).
_OASST = ("message_id", "parent_id", "role", "text", "rank", "model_name", "message_tree_id")
_NO_REPLIES = ("no_preference", "no message in the tree has two ranked assistant replies")


def _tree_messages(tree: dict[str, Any]) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """The messages of one tree as flat rows (parent ids from the nesting), or (reason,
    message) when the tree cannot be flattened. Iterative: a deep tree costs no recursion."""
    root = tree.get("prompt")
    if root is None:
        return [], ("missing_field", "field 'prompt' is missing or null")
    stack: list[tuple[Any, Any]] = [(root, None)]
    rows = []
    while stack:
        node, parent = stack.pop()
        if not isinstance(node, dict):
            return [], ("wrong_type", "a message in the tree is not an object")
        replies = node.get("replies") or []
        if not isinstance(replies, list):
            return [], ("wrong_type", "field 'replies' must be a list of messages")
        row = {k: node.get(k) for k in _OASST[:-1]}
        rows.append(row | {"parent_id": parent, "message_tree_id": tree["message_tree_id"]})
        stack.extend((r, node.get("message_id")) for r in reversed(replies))
    return rows, None


def _flatten_trees(trees: pl.Series, raw: RawRecords) -> tuple[RawRecords, pl.Series, pl.DataFrame]:
    """The messages of the `trees` (source rows) as flat rows, the tree of each message row,
    and the trees that cannot be flattened as (source_row, reason, message)."""
    messages: list[dict[str, Any]] = []
    owner: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for i in trees.to_list():
        rows, why = _tree_messages(raw.records[i])
        if why is not None:
            bad.append((i, *why))
        messages += rows
        owner += [i] * len(rows)
    n = len(messages)
    flat = RawRecords("jsonl", n, lambda: ParsedRows(messages, [None] * n, [None] * n, [None] * n))
    unflattened = pl.DataFrame(
        bad,
        schema={"source_row": pl.Int64, "reason": pl.String, "message": pl.String},
        orient="row",
    )
    return flat, pl.Series("_tree", owner, dtype=pl.Int64), unflattened


def _per_tree(
    pairs: pl.DataFrame, rejects: pl.DataFrame, tree: pl.Series, trees: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pairs and rejects of message rows as those of the trees they came from: a tree with a
    pair is stored, the others keep their first reject (or `_NO_REPLIES`)."""
    pairs = pairs.with_columns(tree.gather(pairs["source_row"]).alias("source_row"))
    rejects = rejects.with_columns(tree.gather(rejects["source_row"]).alias("source_row"))
    fallback = pl.DataFrame({"source_row": trees}).with_columns(
        pl.lit(_NO_REPLIES[0]).alias("reason"), pl.lit(_NO_REPLIES[1]).alias("message")
    )
    rejects = (
        pl.concat([rejects.sort("source_row", maintain_order=True), fallback])
        .filter(~pl.col("source_row").is_in(pairs["source_row"].unique().implode()))
        .unique("source_row", keep="first", maintain_order=True)
    )
    return pairs, rejects


def _extract_trees(
    raw: RawRecords, schema: Schema, opts: Options, default_split: str
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """`extract` of a nested schema: its records flattened, read as `schema.flattened_as`."""
    frame = typed_frame(raw, schema.fields, schema.required, schema.texts)
    usable = pl.col("_reason").is_null()
    trees = frame.filter(usable)["_row"]
    failed = frame.filter(~usable).select(
        pl.col("_row").alias("source_row"),
        pl.col("_reason").alias("reason"),
        pl.col("_message").alias("message"),
    )
    flat, tree, unflattened = _flatten_trees(trees, raw)
    pairs, rejects, _ = extract(flat, schema.flattened_as, opts, default_split)
    pairs, rejects = _per_tree(pairs, rejects, tree, trees)
    rejects = (
        pl.concat([failed, unflattened, rejects])
        .unique("source_row", keep="first", maintain_order=True)
        .sort("source_row")
    )
    return pairs, rejects, frame.height


_HELPSTEER2_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def _helpsteer2_fields(found: dict[str, pl.DataType], opts: Options) -> dict[str, pl.DataType]:
    score = opts.score_field or _HELPSTEER2_ATTRIBUTES[0]
    if score not in found:
        raise FormatError(
            f"the rows carry no score field {score!r}; HelpSteer2 rates"
            f" {', '.join(_HELPSTEER2_ATTRIBUTES)}: pass one as --score-field"
        )
    return {"prompt": TEXT, "response": TEXT} | dict.fromkeys(
        dict.fromkeys((*_HELPSTEER2_ATTRIBUTES, score)), NUMBER
    )


def _helpsteer2_groups(df: pl.DataFrame, opts: Options) -> pl.DataFrame:
    """The rated responses to each prompt (HelpSteer2 gives each response its own row)."""
    score = opts.score_field or _HELPSTEER2_ATTRIBUTES[0]
    grouped = df.group_by("prompt", maintain_order=True).agg(
        pl.col("_row").min(),
        pl.col("_split").first(),
        pl.struct(
            pl.col("response").alias("answer"),
            pl.lit(None, dtype=pl.String).alias("model"),
            pl.col(score).alias("score"),
        ).alias("replies"),
    )
    return _group_frame(grouped, pl.col("prompt"), pl.lit(f'{{"score_field":"{score}"}}'))


def _grouped(df: pl.DataFrame, opts: Options, _: dict) -> pl.DataFrame:
    score = pl.col("_items").struct.field("score")
    no_prompt = ("no_shared_prompt", "the message these replies answer is not in the source")
    items = _explode(df, pl.col("prompt"), "replies", "answer", score, "model", "reply", no_prompt)
    return scored_pairs(items, opts.ranked_mode)


# ----------------------------------------------------------------------------- the schemas
def _schema(
    name,
    source,
    fields,
    required,
    adapt,
    texts=None,
    keys=None,
    group=None,
    one_of=(),
    absent=(),
    flattened_as=None,
) -> Schema:
    """A schema detected by its keys (default: the required fields); its texts (left out of
    provenance) are the required fields that are not numbers, unless named."""
    if texts is None:
        texts = {f for f in required if fields[f] != NUMBER}
    keys = frozenset(keys or required)
    return Schema(
        name,
        source,
        keys,
        fields,
        required,
        frozenset(texts),
        adapt,
        group,
        frozenset(one_of),
        frozenset(absent),
        flattened_as,
    )


_PKU = ("prompt", "response_0", "response_1")
_PKU_IDS = ("better_response_id", "safer_response_id")
_SHP = ("history", "human_ref_A", "human_ref_B", "labels")
_ARENA = ("conversation_a", "conversation_b", "winner")
_HS3 = ("context", "response1", "response2", "overall_preference")
_HS2 = ("prompt", "response_1", "response_2", "preference_strength")
_TYPES = {"context": MESSAGES, "conversation_a": MESSAGES, "conversation_b": MESSAGES}


def _typed(names: tuple[str, ...], numbers: tuple[str, ...] = ()) -> dict[str, pl.DataType]:
    return {n: NUMBER if n in numbers else _TYPES.get(n, TEXT) for n in names}


SCHEMAS: dict[str, Schema] = {
    s.name: s
    for s in (
        _schema(
            "pku-saferlhf",
            "PKU-Alignment/PKU-SafeRLHF",
            _typed((*_PKU, *_PKU_IDS, "response_0_source", "response_1_source"), numbers=_PKU_IDS),
            _PKU,
            _pku,
            one_of=_PKU_IDS,
        ),
        _schema(
            "shp",
            "stanfordnlp/SHP",
            _typed((*_SHP, "score_A", "score_B"), numbers=("labels", "score_A", "score_B")),
            _SHP,
            _shp,
        ),
        _schema(
            "arena",
            "lmsys/chatbot_arena_conversations",
            _typed((*_ARENA, "model_a", "model_b")),
            _ARENA,
            _arena,
            texts={"conversation_a", "conversation_b"},
        ),
        _schema(
            "helpsteer3",
            "nvidia/HelpSteer3 (preference)",
            _typed(_HS3, numbers=("overall_preference",)),
            _HS3,
            _helpsteer3,
        ),
        _schema(
            "helpsteer2-preference",
            "nvidia/HelpSteer2 (preference/preference.jsonl.gz)",
            _typed(_HS2, numbers=("preference_strength",)),
            _HS2,
            _helpsteer2_preference,
        ),
        _schema(
            "helpsteer2",
            "nvidia/HelpSteer2 (train/validation: a row per rated response)",
            _helpsteer2_fields,
            ("prompt", "response"),
            _grouped,
            texts={"prompt", "response"},
            keys={"prompt", "response", "helpfulness"},
            group=_helpsteer2_groups,
        ),
        _schema(
            "oasst",
            "OpenAssistant/oasst1 (flat message rows)",
            _typed(_OASST, numbers=("rank",)),
            ("message_id", "role", "text"),
            _grouped,
            texts={"text"},
            keys={"message_id", "parent_id", "role", "text"},
            group=_oasst_groups,
        ),
        _schema(
            "oasst-trees",
            "OpenAssistant/oasst1 (message trees, *.trees.jsonl)",
            _typed(("message_tree_id",)),
            ("message_tree_id",),
            _grouped,
            texts={"message_tree_id", "prompt"},
            keys={"message_tree_id", "prompt"},
            flattened_as="oasst",
        ),
        _schema(
            "nectar",
            "berkeley-nest/Nectar",
            {"prompt": TEXT, "answers": pl.List(_NECTAR_ITEM)},
            ("prompt", "answers"),
            _nectar,
        ),
        _schema(
            "stack-exchange",
            "lvwerra/stack-exchange-paired",
            _typed(("question", "response_j", "response_k")),
            ("question", "response_j", "response_k"),
            _stack_exchange,
        ),
        _schema(
            "openrlhf",
            "OpenRLHF reward data (--input_key input)",
            _typed(("input", "chosen", "rejected")),
            ("input", "chosen", "rejected"),
            _openrlhf,
            absent={"prompt"},  # prompt + input + chosen + rejected: explicit, input in provenance
        ),
        _schema(
            "ranked",
            "openbmb/UltraFeedback",
            _ranked_fields,
            ("completions",),
            _ranked,
            texts={"prompt", "instruction", "completions"},
        ),
    )
}


def detect_native(keys: set[str]) -> str | None:
    """The first native schema whose keys a record carries."""
    return next((s.name for s in SCHEMAS.values() if s.matches(keys)), None)


# ----------------------------------------------------------------------------- extraction
def _found(raw: RawRecords, sample: int = 200) -> dict[str, pl.DataType]:
    """Column types as the source has them (for schemas whose fields depend on the data): the
    table's schema, or, read one by one, the keys of the first records (and of their listed
    items) with no type."""
    if raw.table is not None:
        return dict(raw.table.schema)
    keys: dict[str, set[str] | None] = {}
    for rec in (r for r in raw.records[:sample] if r is not None):
        for col, value in rec.items():
            if isinstance(value, list) and any(isinstance(v, dict) for v in value):
                items = keys.get(col) or set()
                keys[col] = items | {k for v in value if isinstance(v, dict) for k in v}
            else:
                keys.setdefault(col, None)
    return {
        c: pl.Null if ks is None else pl.List(pl.Struct(dict.fromkeys(sorted(ks), pl.Null)))
        for c, ks in keys.items()
    }


def _provenance() -> pl.Expr:
    """The non-text keys of the row, led by the models behind the two responses if known."""
    models = pl.struct("chosen_model", "rejected_model").struct.json_encode()
    has_models = pl.col("chosen_model").is_not_null() | pl.col("rejected_model").is_not_null()
    extras = pl.col("_extras")
    spliced = pl.concat_str(
        models.str.slice(0, models.str.len_chars() - 1), pl.lit(","), extras.str.slice(1)
    )
    no_extras = extras.is_null() | (extras == "{}")
    return (
        pl.when(has_models & no_extras)
        .then(models)
        .when(has_models)
        .then(spliced)
        .otherwise(extras)
        .alias("provenance")
    )


def extract(
    raw: RawRecords, fmt: str, opts: Options, default_split: str
) -> tuple[pl.DataFrame, pl.DataFrame, int | None]:
    """(candidate pairs, rejected rows, input rows) of a native schema: candidates in the batch
    builder's layout (source_row, prompt, chosen, rejected, label, split, provenance), rejects
    as (source_row, reason, message); the input rows of a grouped schema (groups and rows that
    joined none; the parsed lines of a nested one; None for the others, whose input rows are
    the source's parsed rows)."""
    schema = SCHEMAS[fmt]
    if opts.preference not in PREFERENCES:
        raise FormatError(
            f"unknown preference {opts.preference!r}; expected one of {', '.join(PREFERENCES)}"
        )
    if schema.flattened_as is not None:
        return _extract_trees(raw, schema, opts, default_split)
    fields = schema.fields if isinstance(schema.fields, dict) else schema.fields(_found(raw), opts)
    frame = typed_frame(raw, fields, schema.required, schema.texts)
    usable = pl.col("_reason").is_null()
    rows, failed = frame.filter(usable), frame.filter(~usable)
    n_input = None
    if schema.group is not None:
        rows = schema.group(rows, opts)
        n_input = rows.height + failed.height
    out = schema.adapt(rows, opts, fields)
    rejects = pl.concat(
        [
            failed.select("_row", "_reason", "_message"),
            out.filter(pl.col("_reason").is_not_null())
            .unique("_row", keep="first", maintain_order=True)
            .select("_row", "_reason", "_message"),
        ]
    ).sort("_row")
    bad_rows = rejects["_row"].implode()
    pairs = (
        out.filter(~pl.col("_row").is_in(bad_rows))
        .join(
            rows.select("_row", "_split", "_extras"), on="_row", how="left", maintain_order="left"
        )
        .select(
            pl.col("_row").alias("source_row"),
            "prompt",
            "chosen",
            "rejected",
            "label",
            pl.col("_split").fill_null(default_split).alias("split"),
            _provenance(),
        )
    )
    rejects = rejects.rename({"_row": "source_row", "_reason": "reason", "_message": "message"})
    return pairs, rejects, n_input
