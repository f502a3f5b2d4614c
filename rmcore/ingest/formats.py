"""Preference-data formats and their mapping onto one canonical pair: (prompt, chosen, rejected, label).

Formats (auto-detected from the record keys, or forced):

- `explicit`       TRL's explicit format: `prompt`, `chosen`, `rejected` strings, optional `label`
                   (P(chosen preferred), default 1.0) and `split`.
- `implicit`       Anthropic-HH style: `chosen` and `rejected` full transcripts with turns marked
                   `\\n\\nHuman:` / `\\n\\nAssistant:`; the prompt is the shared conversation up to and
                   including the last `Assistant:` marker the two share, the responses what follows.
- `conversational` TRL's conversational format: `chosen`/`rejected` lists of `{role, content}`
                   messages, with a separate `prompt` message list or a shared message prefix
                   (also when a text `prompt` is given beside them: UltraFeedback-binarized
                   repeats it as the lists' user turn; split as TRL's `maybe_extract_prompt`).
- `annotated`      AlpacaEval annotations: `instruction`, `output_1`, `output_2`, `preference` in
                   [1, 2] (1 + P(output_2 better)); 1.5 is a tie, stored as label 0.5, never guessed.
- native schemas   PKU-SafeRLHF, SHP, Chatbot Arena, HelpSteer2/3, Nectar, StackExchange paired,
                   OpenRLHF and UltraFeedback (`ranked`): column-wise adapters in native.py.

Canonical prompt rendering (one rule for every format): a single user turn is stored as its
plain text; a multi-turn context is rendered as turns joined by a blank line, each turn
`Human: ...`, `Assistant: ...` or `System: ...`, without a trailing `Assistant:` marker.

Extraction is a small function per record (type checks need the Python values; see
sources.py for why polars cannot see wrong types); all text checks after it are vectorized.
For sources read as typed columns, `explicit` and `annotated` also have a column-wise twin
(`COLUMN_MAPS`): it takes the rows whose types are exactly what the extractor accepts, and
leaves every other row to the extractor, so reject reasons and messages have one source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import polars as pl

from rmcore.errors import FormatError
from rmcore.ingest.native import SCHEMAS, detect_native
from rmcore.ingest.typed import number_from_text
from rmcore.textnorm import WHITESPACE

FORMATS = ("explicit", "implicit", "conversational", "annotated", *SCHEMAS)
RANKED_MODES = ("best-vs-worst", "all-pairs")

_ROLE_NAMES = {
    "user": "Human",
    "human": "Human",
    "assistant": "Assistant",
    "gpt": "Assistant",
    "bot": "Assistant",
    "system": "System",
}
_HH_TURN = re.compile(r"\n\n(Human|Assistant|System):")
_ASSISTANT = "\n\nAssistant:"

Pair = tuple[str, str, str, float]  # prompt, chosen, rejected, label


class Reject(Exception):
    """A record that cannot become a pair; carries the quarantine reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


# ----------------------------------------------------------------------------- detection
def detect_format(records: Iterable[dict[str, Any] | None], sample: int = 200) -> str:
    """The format whose keys the first parsable records carry."""
    keys: set[str] = set()
    first_chosen: Any = None
    seen = 0
    for rec in records:
        if rec is None:
            continue
        keys |= rec.keys()
        if first_chosen is None and rec.get("chosen") is not None:
            first_chosen = rec["chosen"]
        seen += 1
        if seen >= sample:
            break
    if {"instruction", "output_1", "output_2", "preference"} <= keys:
        return "annotated"
    native = detect_native(keys)
    if native is not None:
        return native
    if {"chosen", "rejected"} <= keys:
        if isinstance(first_chosen, list):
            return "conversational"
        return "explicit" if "prompt" in keys else "implicit"
    raise FormatError(
        f"cannot detect the format from the keys {sorted(keys)[:20]}; expected one of: "
        "prompt/chosen/rejected (explicit), chosen/rejected transcripts (implicit), "
        "message lists (conversational), instruction/output_1/output_2/preference (annotated), "
        "prompt + completions (ranked), or a native schema (see the README's formats table)."
        " Pass --format to force one, or --map to name the columns."
    )


# ----------------------------------------------------------------------------- helpers
def _text(rec: dict[str, Any], key: str) -> str:
    if key not in rec or rec[key] is None:
        raise Reject("missing_field", f"field {key!r} is missing or null")
    value = rec[key]
    if not isinstance(value, str):
        raise Reject("wrong_type", f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _probability(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Reject(
            "invalid_label",
            f"field {key!r} must be a number, got {type(value).__name__}: {str(value)[:40]}",
        )
    return float(value)


def render_conversation(messages: list[tuple[str, str]]) -> str:
    """The canonical prompt rendering (see module docstring)."""
    if len(messages) == 1 and messages[0][0] == "Human":
        return messages[0][1]
    return "\n\n".join(f"{role}: {content}" for role, content in messages)


def parse_conversation(prompt: str) -> list[tuple[str, str]]:
    """The turns a stored prompt was rendered from: the inverse of `render_conversation`.

    A text that is not exactly the canonical rendering of its turns (a plain prompt, also one
    that happens to contain a `Human:` marker) is one Human turn holding the whole text."""
    turns = _hh_turns(prompt) if _HH_TURN.match("\n\n" + prompt) else []
    if turns and render_conversation(turns) == prompt:
        return turns
    return [("Human", prompt)]


def _messages(value: Any, key: str) -> list[tuple[str, str]]:
    if value is None:
        raise Reject("missing_field", f"field {key!r} is missing or null")
    if isinstance(value, str):
        return [("Human", value)]
    if not isinstance(value, list) or not value:
        raise Reject(
            "wrong_type", f"field {key!r} must be a non-empty list of {{role, content}} messages"
        )
    out = []
    for m in value:
        if not (
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
        ):
            raise Reject(
                "wrong_type",
                f"field {key!r} holds a message that is not {{role: str, content: str}}",
            )
        role = _ROLE_NAMES.get(m["role"].lower())
        if role is None:
            raise Reject("wrong_type", f"field {key!r} holds an unknown role {m['role']!r}")
        out.append((role, m["content"]))
    return out


def _hh_turns(transcript: str) -> list[tuple[str, str]]:
    """`\n\nHuman: a\n\nAssistant: b` -> [("Human", "a"), ("Assistant", "b")]; text before the
    first marker counts as a Human turn."""
    parts = _HH_TURN.split("\n\n" + transcript.lstrip("\n"))
    head = [("Human", parts[0].strip())] if parts[0].strip() else []
    return head + [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


# ----------------------------------------------------------------------------- extractors
def _explicit(rec: dict[str, Any], _: str) -> list[Pair]:
    label = 1.0 if rec.get("label") is None else _probability(rec["label"], "label")
    return [(_text(rec, "prompt"), _text(rec, "chosen"), _text(rec, "rejected"), label)]


def _implicit(rec: dict[str, Any], _: str) -> list[Pair]:
    chosen, rejected = _text(rec, "chosen"), _text(rec, "rejected")
    cut = chosen.rfind(_ASSISTANT)
    # Walk back to the last Assistant marker that both transcripts share as a prefix.
    while cut >= 0 and not rejected.startswith(chosen[: cut + len(_ASSISTANT)]):
        cut = chosen.rfind(_ASSISTANT, 0, cut)
    if cut < 0:
        raise Reject(
            "no_shared_prompt",
            "chosen and rejected share no conversation up to an 'Assistant:' marker",
        )
    end = cut + len(_ASSISTANT)
    prompt = render_conversation(_hh_turns(chosen[:cut]))
    label = 1.0 if rec.get("label") is None else _probability(rec["label"], "label")
    return [(prompt, chosen[end:], rejected[end:], label)]


def _conversational(rec: dict[str, Any], _: str) -> list[Pair]:
    chosen, rejected = (
        _messages(rec.get("chosen"), "chosen"),
        _messages(rec.get("rejected"), "rejected"),
    )
    given = rec.get("prompt")
    if isinstance(given, list):  # TRL's conversational prompt: the completions follow it
        prompt = _messages(given, "prompt")
    else:
        # As TRL's `maybe_extract_prompt`: a plain-text prompt beside message lists (the H4 /
        # Tulu UltraFeedback-binarized shape) is usually repeated inside them, so the prompt
        # is the longest shared message prefix; only lists that share none keep the text.
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        if shared and chosen[shared - 1][0] != "Assistant":
            prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        elif given is not None:
            prompt = _messages(given, "prompt")
        else:
            raise Reject("no_shared_prompt", "chosen and rejected share no prompt messages")
    label = 1.0 if rec.get("label") is None else _probability(rec["label"], "label")
    reply = lambda msgs: "\n\n".join(c for _, c in msgs)  # noqa: E731
    return [(render_conversation(prompt), reply(chosen), reply(rejected), label)]


def _annotated(rec: dict[str, Any], _: str) -> list[Pair]:
    prompt = _text(rec, "instruction")
    if isinstance(rec.get("input"), str) and rec["input"].strip():
        prompt = f"{prompt}\n\n{rec['input']}"
    out1, out2 = _text(rec, "output_1"), _text(rec, "output_2")
    if rec.get("preference") is None:
        raise Reject("invalid_label", "field 'preference' is missing or null")
    pref = _probability(rec["preference"], "preference")
    if not 1.0 <= pref <= 2.0:  # NaN fails this too
        raise Reject("invalid_label", f"preference {pref} is outside [1, 2]")
    p2 = pref - 1.0  # P(output_2 better)
    if p2 > 0.5:
        return [(prompt, out2, out1, p2)]
    return [(prompt, out1, out2, 1.0 - p2)]  # a tie stays (output_1, output_2, 0.5)


EXTRACTORS: dict[str, Callable[[dict[str, Any], str], list[Pair]]] = {
    "explicit": _explicit,
    "implicit": _implicit,
    "conversational": _conversational,
    "annotated": _annotated,
}
# Keys read as numbers: parsed from text in CSV rows (`read_number`).
NUMERIC_KEYS = {"explicit": ("label",), "implicit": ("label",), "conversational": ("label",)}
NUMERIC_KEYS["annotated"] = ("preference",)
CONSUMED_KEYS = {
    "explicit": {"prompt", "chosen", "rejected", "label", "split"},
    "implicit": {"chosen", "rejected", "label", "split"},
    "conversational": {"prompt", "chosen", "rejected", "label", "split"},
    "annotated": {"instruction", "input", "output_1", "output_2", "preference", "split"},
}


# ----------------------------------------------------------------------------- column-wise twins
class ColumnMap(NamedTuple):
    """`clean`: the rows the expressions map exactly as the extractor would (null counts as
    not clean); `pair`: prompt, chosen, rejected, label expressions for those rows."""

    clean: pl.Expr
    pair: tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]


def _text_col(schema: pl.Schema, key: str) -> pl.Expr:
    """`key` where `_text` accepts it (a string), null elsewhere."""
    return pl.col(key) if schema.get(key) == pl.String else pl.lit(None, dtype=pl.String)


def _number_col(schema: pl.Schema, key: str, csv: bool) -> tuple[pl.Expr, pl.Expr]:
    """(`key` as a float where `_probability` accepts it, rows holding some other non-null type).
    A CSV text column is parsed (see `read_number`); cells that do not parse are left over."""
    dtype = schema.get(key)
    if csv and dtype == pl.String:
        return number_from_text(key)
    if dtype is None or dtype == pl.Null:
        return pl.lit(None, dtype=pl.Float64), pl.lit(False)
    if dtype.is_integer() or dtype.is_float():
        return pl.col(key).cast(pl.Float64), pl.lit(False)
    return pl.lit(None, dtype=pl.Float64), pl.col(key).is_not_null()


def _explicit_columns(schema: pl.Schema, csv: bool) -> ColumnMap:
    texts = [_text_col(schema, k) for k in ("prompt", "chosen", "rejected")]
    label, not_a_number = _number_col(schema, "label", csv)
    clean = pl.all_horizontal(t.is_not_null() for t in texts) & ~not_a_number
    return ColumnMap(clean, (*texts, label.fill_null(1.0)))  # type: ignore[arg-type]


def _annotated_columns(schema: pl.Schema, csv: bool) -> ColumnMap:
    instruction, out1, out2 = (
        _text_col(schema, k) for k in ("instruction", "output_1", "output_2")
    )
    pref, _ = _number_col(schema, "preference", csv)
    clean = (
        pl.all_horizontal(t.is_not_null() for t in (instruction, out1, out2))
        & pref.is_between(1.0, 2.0)
        & ~pref.is_nan()
    )
    given = _text_col(schema, "input")
    has_input = given.str.strip_chars(WHITESPACE) != ""
    prompt = pl.when(has_input).then(instruction + "\n\n" + given).otherwise(instruction)
    p2 = pref - 1.0  # P(output_2 better); a tie stays (output_1, output_2, 0.5)
    second = p2 > 0.5
    return ColumnMap(
        clean,
        (
            prompt,
            pl.when(second).then(out2).otherwise(out1),
            pl.when(second).then(out1).otherwise(out2),
            pl.when(second).then(p2).otherwise(1.0 - p2),
        ),
    )


COLUMN_MAPS: dict[str, Callable[[pl.Schema, bool], ColumnMap]] = {
    "explicit": _explicit_columns,
    "annotated": _annotated_columns,
}
