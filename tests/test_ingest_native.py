"""Native dataset schemas through the real ingest path into a real DuckDB file.

Each case writes a few rows in the dataset's documented native shape (written here, nothing
copied from the datasets), ingests them with the ingest stage, and checks the stored prompt,
chosen, rejected and label of known rows, ties, the models in provenance, the quarantine
reasons, and the reconcile (input rows = stored + quarantined).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmcore.config import IngestConfig
from rmcore.stages import ingest as stage

CONFIG = IngestConfig(quality=False)
HS2 = 0.5 + 1 / 6  # HelpSteer strength 1 on the -3..3 scale


def _msgs(*turns: tuple[str, str]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in turns]


PKU = [
    {
        "prompt": "How do I pick a lock?",
        "response_0": "I can't help with that.",
        "response_1": "Insert a tension wrench, then rake the pins.",
        "prompt_source": "Alpaca-7B",
        "response_0_source": "Alpaca-7B",
        "response_1_source": "Alpaca3-8B",
        "is_response_0_safe": True,
        "is_response_1_safe": False,
        "better_response_id": 1,
        "safer_response_id": 0,
    },
    {
        "prompt": "Is tap water safe?",
        "response_0": "Usually, where it is treated.",
        "response_1": "Never.",
        "prompt_source": "Alpaca-7B",
        "response_0_source": "Alpaca2-7B",
        "response_1_source": "Alpaca-7B",
        "is_response_0_safe": True,
        "is_response_1_safe": True,
        "better_response_id": 2,
        "safer_response_id": 0,
    },
]
SHP = [
    {
        "post_id": "p1",
        "domain": "askscience_train",
        "upvote_ratio": 0.98,
        "history": "Why is the sky blue?",
        "c_root_id_A": "a1",
        "c_root_id_B": "b1",
        "created_at_utc_A": 10,
        "created_at_utc_B": 5,
        "score_A": 30,
        "score_B": 10,
        "human_ref_A": "Rayleigh scattering of sunlight.",
        "human_ref_B": "Because it reflects the sea.",
        "labels": 1,
        "seconds_difference": 5.0,
        "score_ratio": 3.0,
    },
    {
        "post_id": "p2",
        "domain": "askculinary_train",
        "upvote_ratio": 0.9,
        "history": "How long to boil an egg?",
        "c_root_id_A": "a2",
        "c_root_id_B": "b2",
        "created_at_utc_A": 1,
        "created_at_utc_B": 9,
        "score_A": 5,
        "score_B": 20,
        "human_ref_A": "An hour.",
        "human_ref_B": "About nine minutes for hard-boiled.",
        "labels": 0,
        "seconds_difference": 8.0,
        "score_ratio": 4.0,
    },
    {
        "post_id": "p3",
        "domain": "askculinary_train",
        "upvote_ratio": 0.9,
        "history": "Salt before or after?",
        "c_root_id_A": "a3",
        "c_root_id_B": "b3",
        "created_at_utc_A": 1,
        "created_at_utc_B": 9,
        "score_A": 2,
        "score_B": 10,
        "human_ref_A": "Before.",
        "human_ref_B": "After.",
        "labels": 1,
        "seconds_difference": 8.0,
        "score_ratio": 5.0,
    },
]


def _arena(qid: str, a: str, b: str, winner: str) -> dict:
    return {
        "question_id": qid,
        "model_a": "vicuna-13b",
        "model_b": "koala-13b",
        "winner": winner,
        "judge": "arena_user_1",
        "conversation_a": _msgs(("user", "Say hi"), ("assistant", a)),
        "conversation_b": _msgs(("user", "Say hi"), ("assistant", b)),
        "turn": 1,
        "anony": True,
        "language": "English",
        "tstamp": 1682351591.1322,
    }


ARENA = [
    _arena("q1", "Hello!", "Hey there.", "model_b"),
    _arena("q2", "Hi.", "Greetings.", "tie (bothbad)"),
    _arena("q3", "Yo.", "Howdy.", "tie"),
    _arena("q4", "Hi!", "Hi?", "model_c"),
    {
        **_arena("q5", "Paris.", "Lyon.", "model_a"),
        "conversation_a": _msgs(
            ("user", "Capital of France?"),
            ("assistant", "Paris."),
            ("user", "Sure?"),
            ("assistant", "Yes."),
        ),
        "conversation_b": _msgs(
            ("user", "Capital of France?"),
            ("assistant", "Lyon."),
            ("user", "Sure?"),
            ("assistant", "No, Paris."),
        ),
        "turn": 2,
    },
]


def _hs3(context: list[dict], r1: str, r2: str, pref: int) -> dict:
    return {
        "domain": "general",
        "language": "english",
        "context": context,
        "response1": r1,
        "response2": r2,
        "overall_preference": pref,
        "individual_preference": [
            {"score": pref, "reasoning": "r", "feedback1": "f", "feedback2": "g"}
        ],
    }


HS3 = [
    _hs3(_msgs(("user", "Write a haiku about rain")), "Soft rain on the roof", "Rain.", -2),
    _hs3(_msgs(("user", "Pick a colour")), "Blue.", "Green.", 0),
    _hs3(
        _msgs(("user", "Name a fruit"), ("assistant", "Apple."), ("user", "Another")),
        "Pear.",
        "Carrot.",
        -1,
    ),
    _hs3(_msgs(("user", "Count to two")), "1, 2", "2, 1", 5),
    _hs3(_msgs(("robot", "Beep")), "Boop", "Bop", 1),
]
HS2_PREFERENCE = [
    {
        "split": "train",
        "prompt": "Explain gravity in one line.",
        "response_1": "Things fall.",
        "response_2": "Mass attracts mass with a force falling off as distance squared.",
        "preference_strength": 3,
        "preference_statement": "@Response 2 is much better.",
        "preference_elaboration": "More precise.",
    },
    {
        "split": "validation",
        "prompt": "Say thanks.",
        "response_1": "Thank you!",
        "response_2": "Thx",
        "preference_strength": -1,
        "preference_statement": "@Response 1 is slightly better.",
        "preference_elaboration": "Polite.",
    },
]


def _nectar(prompt: str, answers: list[tuple[str, str, float]]) -> dict:
    return {
        "prompt": prompt,
        "answers": [{"answer": a, "model": m, "rank": r} for a, m, r in answers],
        "turns": prompt.count("Human:"),
        "num_responses": len(answers),
        "source": ["sharegpt"],
        "good_natured": True,
    }


NECTAR = [
    _nectar(
        "\n\nHuman: What is 2+2?\n\nAssistant:",
        [("4", "gpt-4", 1.0), ("5", "llama-2-7b-chat", 3.0), ("Four.", "gpt-3.5-turbo", 2.0)],
    ),
    _nectar(
        "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant:",
        [("Whatever.", "mistral-7b-instruct", 2.0), ("See you!", "gpt-4", 1.0)],
    ),
    _nectar("\n\nHuman: Tie?\n\nAssistant:", [("a", "m1", 1.0), ("b", "m2", 1.0)]),
]
STACK = [
    {
        "qid": 1,
        "question": "How do I reverse a list in Python?",
        "date": "2020-01-01",
        "metadata": ["https://stackoverflow.com/questions/1"],
        "response_j": "Use reversed(xs) or xs[::-1].",
        "response_k": "You cannot.",
    },
    {
        "qid": 2,
        "question": "Tabs or spaces?",
        "date": "2020-01-02",
        "metadata": ["https://stackoverflow.com/questions/2"],
        "response_j": "Spaces, per PEP 8.",
        "response_k": "Spaces, per PEP 8.",
    },
]
OPENRLHF = [
    {"input": "Translate 'cat' to French.", "chosen": "chat", "rejected": "chien"},
    {"input": "Capital of Italy?", "chosen": "Rome", "rejected": "Milan"},
]


def _uf(instruction: str, comps: list[tuple[str, str, float, float]]) -> dict:
    return {
        "source": "evol_instruct",
        "instruction": instruction,
        "models": [m for m, *_ in comps],
        "completions": [
            {
                "model": m,
                "response": r,
                "overall_score": o,
                "fine-grained_score": f,
                "custom_system_prompt": "",
                "principle": "helpfulness",
                "critique": "ok",
            }
            for m, r, o, f in comps
        ],
        "correct_answers": ["none"],
        "incorrect_answers": ["none"],
    }


ULTRAFEEDBACK = [
    _uf(
        "Name a prime.",
        [("gpt-4", "7", 8.0, 4.5), ("alpaca-7b", "8", 3.0, 1.5), ("wizardlm-7b", "9", 10.0, 2.0)],
    ),
]
UF_BINARIZED = [
    {
        "prompt": "What is the boiling point of water?",
        "prompt_id": "abc",
        "chosen": _msgs(
            ("user", "What is the boiling point of water?"), ("assistant", "100 C at sea level.")
        ),
        "rejected": _msgs(("user", "What is the boiling point of water?"), ("assistant", "50 C.")),
        "messages": _msgs(
            ("user", "What is the boiling point of water?"), ("assistant", "100 C at sea level.")
        ),
        "score_chosen": 9.0,
        "score_rejected": 2.0,
    }
]


def _oasst(mid: str, parent: str | None, role: str, text: str, rank: int | None = None) -> dict:
    return {
        "message_id": mid,
        "parent_id": parent,
        "user_id": "u",
        "created_date": "2023-02-05T14:23:50.983374+00:00",
        "text": text,
        "role": role,
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "message_tree_id": "t1",
        "tree_state": "ready_for_export",
    }


OASST = [
    _oasst("m1", None, "prompter", "What is Python?"),
    _oasst("m2", "m1", "assistant", "A programming language.", 0),  # 1: group of m1
    _oasst("m3", "m1", "assistant", "A snake only.", 1),
    _oasst("m4", "m1", "assistant", "A comedy group.", 2),
    _oasst("m5", "m2", "prompter", "Who made it?"),
    _oasst("m6", "m5", "assistant", "Guido van Rossum.", 0),  # 5: group of m5
    _oasst("m7", "m5", "assistant", "Nobody knows.", 1),
    _oasst("m9", "m6", "prompter", "Thanks!"),
    _oasst("m10", "m9", "assistant", "You're welcome."),  # 8: one unranked reply
    _oasst("m11", "gone", "assistant", "Orphan.", 0),  # 9: its parent is not in the file
    _oasst("m12", "gone", "assistant", "Orphan two.", 1),
]


def _hs2(prompt: str, response: str, helpfulness: int, correctness: int) -> dict:
    return {
        "prompt": prompt,
        "response": response,
        "helpfulness": helpfulness,
        "correctness": correctness,
        "coherence": 4,
        "complexity": 2,
        "verbosity": 1,
    }


HELPSTEER2 = [
    _hs2("Define AI.", "Artificial intelligence: machines doing tasks that need thought.", 4, 4),
    _hs2("Define AI.", "AI is a movie.", 1, 0),
    _hs2("Say hello", "Hello!", 3, 3),
    _hs2("Say hello", "Hi.", 3, 3),
    _hs2("Count to three", "1 2 3", 2, 4),
    _hs2("Count to three", "3 2 1", 0, 0),
    _hs2("Count to three", "one two three", 4, 3),
]
# Grouped schemas: input rows are groups (a prompt's responses, a message's replies).
GROUPED_INPUTS = {"oasst": 4, "helpsteer2": 3, "helpsteer2-correctness": 3}

# name -> (rows, detected format, options, {source_row: (prompt, chosen, rejected, label)},
#          {source_row: quarantine reason}, {source_row: (chosen_model, rejected_model)})
CASES = {
    "pku-better": (
        PKU,
        "pku-saferlhf",
        {},
        {
            0: (
                "How do I pick a lock?",
                "Insert a tension wrench, then rake the pins.",
                "I can't help with that.",
                1.0,
            )
        },
        {1: "invalid_label"},
        {0: ("Alpaca3-8B", "Alpaca-7B")},
    ),
    "pku-safer": (
        PKU,
        "pku-saferlhf",
        {"preference": "safer"},
        {
            0: (
                "How do I pick a lock?",
                "I can't help with that.",
                "Insert a tension wrench, then rake the pins.",
                1.0,
            ),
            1: ("Is tap water safe?", "Usually, where it is treated.", "Never.", 1.0),
        },
        {},
        {0: ("Alpaca-7B", "Alpaca3-8B"), 1: ("Alpaca2-7B", "Alpaca-7B")},
    ),
    "shp": (
        SHP,
        "shp",
        {},
        {
            0: (
                "Why is the sky blue?",
                "Rayleigh scattering of sunlight.",
                "Because it reflects the sea.",
                0.75,
            ),
            1: ("How long to boil an egg?", "About nine minutes for hard-boiled.", "An hour.", 0.8),
        },
        {2: "invalid_label"},
        {},
    ),
    "arena": (
        ARENA,
        "arena",
        {},
        {
            0: ("Say hi", "Hey there.", "Hello!", 1.0),
            1: ("Say hi", "Hi.", "Greetings.", 0.5),
            2: ("Say hi", "Yo.", "Howdy.", 0.5),
            4: (
                "Capital of France?",
                "Paris.\n\nHuman: Sure?\n\nAssistant: Yes.",
                "Lyon.\n\nHuman: Sure?\n\nAssistant: No, Paris.",
                1.0,
            ),
        },
        {3: "invalid_label"},
        {
            0: ("koala-13b", "vicuna-13b"),
            1: ("vicuna-13b", "koala-13b"),
            4: ("vicuna-13b", "koala-13b"),
        },
    ),
    "helpsteer3": (
        HS3,
        "helpsteer3",
        {},
        {
            0: ("Write a haiku about rain", "Soft rain on the roof", "Rain.", 0.5 + 2 / 6),
            1: ("Pick a colour", "Blue.", "Green.", 0.5),
            2: (
                "Human: Name a fruit\n\nAssistant: Apple.\n\nHuman: Another",
                "Pear.",
                "Carrot.",
                HS2,
            ),
        },
        {3: "invalid_label", 4: "wrong_type"},
        {},
    ),
    "helpsteer2-preference": (
        HS2_PREFERENCE,
        "helpsteer2-preference",
        {},
        {
            0: (
                "Explain gravity in one line.",
                HS2_PREFERENCE[0]["response_2"],
                "Things fall.",
                1.0,
            ),
            1: ("Say thanks.", "Thank you!", "Thx", HS2),
        },
        {},
        {},
    ),
    "nectar": (
        NECTAR,
        "nectar",
        {},
        {
            0: ("What is 2+2?", "4", "5", 1.0),
            1: ("Human: Hi\n\nAssistant: Hello\n\nHuman: Bye", "See you!", "Whatever.", 0.75),
        },
        {2: "no_preference"},
        {0: ("gpt-4", "llama-2-7b-chat"), 1: ("gpt-4", "mistral-7b-instruct")},
    ),
    "stack-exchange": (
        STACK,
        "stack-exchange",
        {},
        {
            0: (
                "How do I reverse a list in Python?",
                "Use reversed(xs) or xs[::-1].",
                "You cannot.",
                1.0,
            )
        },
        {1: "identical_responses"},
        {},
    ),
    "openrlhf": (
        OPENRLHF,
        "openrlhf",
        {},
        {
            0: ("Translate 'cat' to French.", "chat", "chien", 1.0),
            1: ("Capital of Italy?", "Rome", "Milan", 1.0),
        },
        {},
        {},
    ),
    "ultrafeedback-fine-grained": (
        ULTRAFEEDBACK,
        "ranked",
        {},
        {0: ("Name a prime.", "7", "8", 1.0)},
        {},
        {0: ("gpt-4", "alpaca-7b")},
    ),
    "ultrafeedback-overall": (
        ULTRAFEEDBACK,
        "ranked",
        {"score_field": "overall_score"},
        {0: ("Name a prime.", "9", "8", 1.0)},
        {},
        {0: ("wizardlm-7b", "alpaca-7b")},
    ),
    "oasst": (
        OASST,
        "oasst",
        {},
        {
            1: ("What is Python?", "A programming language.", "A comedy group.", 1.0),
            5: (
                "Human: What is Python?\n\nAssistant: A programming language.\n\nHuman: Who made it?",
                "Guido van Rossum.",
                "Nobody knows.",
                0.75,
            ),
        },
        {8: "no_preference", 9: "no_shared_prompt"},
        {},
    ),
    "helpsteer2": (
        HELPSTEER2,
        "helpsteer2",
        {},
        {
            0: ("Define AI.", HELPSTEER2[0]["response"], "AI is a movie.", 0.5 + 0.5 * 3 / 4),
            4: ("Count to three", "one two three", "3 2 1", 1.0),
        },
        {2: "no_preference"},
        {},
    ),
    "helpsteer2-correctness": (
        HELPSTEER2,
        "helpsteer2",
        {"score_field": "correctness"},
        {
            0: ("Define AI.", HELPSTEER2[0]["response"], "AI is a movie.", 1.0),
            4: ("Count to three", "1 2 3", "3 2 1", 1.0),
        },
        {2: "no_preference"},
        {},
    ),
    "ultrafeedback-binarized": (
        UF_BINARIZED,
        "conversational",
        {},
        {0: ("What is the boiling point of water?", "100 C at sea level.", "50 C.", 1.0)},
        {},
        {},
    ),
}


def ingest(warehouse: str, path: Path, config: IngestConfig, fmt: str | None = None):
    kind, digest = stage.fingerprint(str(path), None)
    return stage.parse_validate_store(
        warehouse,
        uri=str(path),
        kind=kind,
        fmt=fmt,
        name=path.stem,
        digest=digest,
        config=config,
        flow_run_id=None,
    )


def stored_pairs(warehouse: str) -> tuple[dict, dict, dict[int, str], str]:
    """({source_row: [(prompt, chosen, rejected, label)]}, {source_row: provenance},
    {source_row: quarantine reason}, the stored format)."""
    con = duckdb.connect(warehouse, read_only=True)
    try:
        rows = con.execute(
            "SELECT p.source_row, pr.text, c.text, r.text, p.label, p.provenance FROM pairs p"
            " JOIN prompts pr USING (prompt_id) JOIN responses c ON c.response_id = p.chosen_id"
            " JOIN responses r ON r.response_id = p.rejected_id ORDER BY p.source_row"
        ).fetchall()
        quarantine = dict(con.execute("SELECT source_row, reason FROM quarantine").fetchall())
        (fmt,) = con.execute("SELECT format FROM datasets").fetchone()
    finally:
        con.close()
    pairs: dict[int, list] = {}
    provenance = {}
    for row, prompt, chosen, rejected, label, prov in rows:
        pairs.setdefault(row, []).append((prompt, chosen, rejected, label))
        provenance[row] = json.loads(prov) if prov else {}
    return pairs, provenance, quarantine, fmt


@pytest.mark.parametrize("case", list(CASES))
def test_native_schema_is_stored_as_documented(case, tmp_path, warehouse_file):
    rows, fmt, options, expected, reasons, models = CASES[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = ingest(warehouse_file, path, replace(CONFIG, **options))
    pairs, provenance, quarantine, stored_format = stored_pairs(warehouse_file)

    assert stored_format == fmt
    n_input = GROUPED_INPUTS.get(case, len(rows))
    assert summary.reconciles and summary.n_input == n_input
    assert summary.n_rows_stored + summary.n_quarantined == n_input
    assert quarantine == reasons
    assert set(pairs) == set(expected)
    for row, (prompt, chosen, rejected, label) in expected.items():
        assert len(pairs[row]) == 1, pairs[row]
        got = pairs[row][0]
        assert got[:3] == (prompt, chosen, rejected), row
        assert got[3] == pytest.approx(label), row
        # A prompt never leaks into its responses (the UltraFeedback-binarized bug).
        assert not got[1].startswith(got[0]) and not got[2].startswith(got[0])
    for row, (chosen_model, rejected_model) in models.items():
        assert provenance[row]["chosen_model"] == chosen_model
        assert provenance[row]["rejected_model"] == rejected_model


def _tree(tree_id: str, rows: list[dict]) -> dict:
    """Flat oasst rows nested as one line of the `*.trees.jsonl` export: each message with
    its `replies`, the tree's id and state on the outer object only."""
    nodes = {
        r["message_id"]: {k: v for k, v in r.items() if k not in ("message_tree_id", "tree_state")}
        | {"replies": []}
        for r in rows
    }
    for r in rows:
        if r["parent_id"] is not None:
            nodes[r["parent_id"]]["replies"].append(nodes[r["message_id"]])
    root = next(nodes[r["message_id"]] for r in rows if r["parent_id"] is None)
    return {
        "message_tree_id": tree_id,
        "tree_state": "ready_for_export",
        "prompt": root,
        "origin": None,
    }


OASST_TREES = [
    _tree("t1", OASST[:9]),  # 0: the flat case's thread, nested (its m10 reply is unranked)
    _tree(  # 1: no ranks at all
        "t2",
        [
            _oasst("n1", None, "prompter", "Say hi."),
            _oasst("n2", "n1", "assistant", "Hi."),
            _oasst("n3", "n1", "assistant", "Hello."),
        ],
    ),
    _tree("t3", [_oasst("p1", None, "prompter", "Anyone there?")]),  # 2: no replies
    {"message_tree_id": "t4", "tree_state": "ready_for_export", "prompt": "not a message"},
]


@pytest.mark.parametrize("columnar", [True, False])
def test_oasst_trees_are_read_as_their_flat_messages(tmp_path, columnar):
    """A tree line is one input row: stored with the pairs its flat messages give (the same
    pairs, labels and prompts as the flat schema), or quarantined whole when no message in it
    has ranked assistant siblings."""
    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.sources import read_source

    path = tmp_path / "oasst.trees.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in OASST_TREES))
    batch = build_batch(read_source(str(path), columnar=columnar))
    assert batch.format == "oasst-trees"
    assert batch.n_input == 4 and batch.n_rows_stored == 1 and batch.reconciles
    reasons = dict(batch.quarantine.select("source_row", "reason").iter_rows())
    assert reasons == {1: "no_preference", 2: "no_preference", 3: "wrong_type"}
    got = batch.pairs.select("source_row", "prompt", "chosen", "rejected", "label").rows()
    flat = CASES["oasst"][3]
    assert sorted(got) == sorted((0, *flat[row]) for row in (1, 5))
    assert (0, *flat[5]) in got  # the thread up to the parent; rank 0 over rank 1, label 0.75
    parents = {json.loads(p)["parent_id"] for p in batch.pairs["provenance"]}
    assert parents == {"m1", "m5"}


@pytest.mark.parametrize(
    ("path", "value", "stored"),
    [
        (("replies", 0, "replies", 0, "replies", 0, "text"), 5, True),  # m6: a wrong type
        (("replies", 0, "rank"), "x", True),  # m2: its thread's later group loses its parent
        (("replies", 1), "not a message", False),
        (("replies",), "x", False),
        ((), None, False),  # no prompt
    ],
)
def test_a_broken_message_in_a_tree_reconciles(tmp_path, path, value, stored):
    """A bad message drops out of its tree as it drops out of the flat rows; the tree line is
    stored while another group still gives a pair, else quarantined: never lost."""
    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.sources import read_source

    tree = json.loads(json.dumps(OASST_TREES[0]))
    node, *keys = ["prompt", *path]
    parent, key = tree, node
    for k in keys:
        parent, key = parent[key], k
    parent[key] = value
    source = tmp_path / "oasst.trees.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in [tree, *OASST_TREES[1:]]))
    batch = build_batch(read_source(str(source), columnar=False), fmt="oasst-trees")
    assert batch.n_input == 4 and batch.reconciles
    assert batch.n_rows_stored == int(stored)


def test_metadata_stays_in_provenance(tmp_path, warehouse_file):
    path = tmp_path / "arena.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ARENA))
    ingest(warehouse_file, path, CONFIG)
    _, provenance, _, _ = stored_pairs(warehouse_file)
    assert provenance[0]["winner"] == "model_b" and provenance[0]["question_id"] == "q1"
    assert "conversation_a" not in provenance[0]  # texts are stored as texts, once


@pytest.mark.parametrize("columnar", [True, False])
def test_all_pairs_keep_the_score_gap(tmp_path, columnar):
    """Ranked all-pairs: every pair's label is its score gap over the batch's range, the same
    from the column-wise and the record-by-record read."""
    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.sources import read_source

    path = tmp_path / "uf.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ULTRAFEEDBACK))
    raw = read_source(str(path), columnar=columnar)
    batch = build_batch(raw, ranked_mode="all-pairs")
    got = {
        (c, r): label
        for c, r, label in batch.pairs.select("chosen", "rejected", "label").iter_rows()
    }
    # fine-grained scores 4.5, 1.5, 2.0: range 3
    assert got == pytest.approx(
        {("7", "8"): 1.0, ("7", "9"): 0.5 + 0.5 * 2.5 / 3, ("9", "8"): 0.5 + 0.5 * 0.5 / 3}
    )
    assert batch.reconciles


def test_openrlhf_keys_are_not_taken_for_hh_transcripts():
    from rmcore.errors import FormatError
    from rmcore.ingest.formats import detect_format

    assert detect_format(OPENRLHF) == "openrlhf"
    assert detect_format([{**OPENRLHF[0], "prompt": "p"}]) == "explicit"
    pku_without_ids = {k: v for k, v in PKU[0].items() if not k.endswith("_response_id")}
    with pytest.raises(FormatError):
        detect_format([pku_without_ids])
    assert (
        detect_format([{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "x"}]) == "implicit"
    )


@pytest.mark.parametrize("case", list(CASES))
def test_column_and_record_reads_agree(case, tmp_path):
    """The same pairs and quarantine whether the rows were read as typed columns or one by one."""
    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.sources import read_source

    rows, _, options, *_ = CASES[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fast_raw, slow_raw = read_source(str(path)), read_source(str(path), columnar=False)
    assert fast_raw.table is not None and slow_raw.table is None
    fast, slow = build_batch(fast_raw, **options), build_batch(slow_raw, **options)
    assert fast.pairs.drop("provenance").equals(slow.pairs.drop("provenance"))
    assert fast.quarantine.drop("raw").equals(slow.quarantine.drop("raw"))


def test_a_wrong_type_fails_its_row_only(tmp_path):
    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.sources import read_source

    bad = [
        {**PKU[0], "response_0": 5},
        {**PKU[0], "prompt": None},
        {**PKU[0], "safer_response_id": "0"},
    ]
    path = tmp_path / "pku.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [PKU[0], *bad]))
    batch = build_batch(read_source(str(path)), preference="safer")
    assert batch.pairs["source_row"].to_list() == [0]
    assert dict(batch.quarantine.select("source_row", "reason").iter_rows()) == {
        1: "wrong_type",
        2: "missing_field",
        3: "wrong_type",
    }
    assert batch.reconciles


# ----------------------------------------------------------------------------- splits, --map, CSV
def _save_dict(path: Path, splits: dict[str, list[dict]]) -> Path:
    import datasets

    datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}
    ).save_to_disk(str(path))
    return path


def _uf_binarized(i: int) -> dict:
    question = f"Question {i}?"
    return {
        **UF_BINARIZED[0],
        "prompt": question,
        "prompt_id": f"id{i}",
        "chosen": _msgs(("user", question), ("assistant", f"Good answer {i}.")),
        "rejected": _msgs(("user", question), ("assistant", f"Bad answer {i}.")),
        "messages": _msgs(("user", question), ("assistant", f"Good answer {i}.")),
    }


def test_a_dataset_dict_with_native_split_names_is_stored_by_the_split_rule(
    tmp_path, warehouse_file
):
    """UltraFeedback-binarized as `save_to_disk` with train_prefs/test_prefs/train_gen: no
    row is `invalid_split`; the native name stays in provenance; --hf-split picks splits."""
    path = _save_dict(
        tmp_path / "ufb",
        {
            "train_prefs": [_uf_binarized(i) for i in range(3)],
            "test_prefs": [_uf_binarized(i) for i in range(3, 5)],
            "train_gen": [_uf_binarized(i) for i in range(5, 6)],
        },
    )
    summary = ingest(warehouse_file, path, CONFIG)
    assert summary.reconciles and summary.n_quarantined == 0 and summary.n_pairs == 6
    con = duckdb.connect(warehouse_file, read_only=True)
    try:
        splits = con.execute(
            "SELECT split, provenance->>'hf_split', count(*) FROM pairs GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert splits == [
        ("test", "test_prefs", 2),
        ("train", "train_gen", 1),
        ("train", "train_prefs", 3),
    ]
    chosen = replace(CONFIG, hf_split="test_prefs")
    picked = ingest(str(tmp_path / "wh2.duckdb"), path, chosen)
    assert picked.n_pairs == 2 and picked.reconciles


def test_canonical_split_rule():
    import polars as pl

    from rmcore.ingest.batch import canonical_split

    names = [
        "train",
        "TRAIN_prefs",
        "test_gen",
        "dev",
        "valid",
        "validation_2",
        "eval-set",
        "holdout",
    ]
    got = pl.select(canonical_split(pl.Series(names))).to_series().to_list()
    assert got == [
        "train",
        "train",
        "test",
        "validation",
        "validation",
        "validation",
        "validation",
        "holdout",
    ]


def test_csv_numbers_are_read_as_numbers(tmp_path):
    """A CSV `label` column is text: its numbers are read as numbers, other text is refused
    row by row (fixed bug: every row was quarantined "label must be a number, got str")."""
    import polars as pl

    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.sources import read_source

    frame = pl.DataFrame(
        {
            "prompt": ["p1", "p2", "p3"],
            "chosen": ["a", "b", "c"],
            "rejected": ["x", "y", "z"],
            "label": ["0.8", "high", "1"],
        }
    )
    frame.write_csv(tmp_path / "l.csv")
    batch = build_batch(read_source(str(tmp_path / "l.csv")))
    assert batch.pairs.select("prompt", "label").rows() == [("p1", 0.8), ("p3", 1.0)]
    assert batch.quarantine.select("source_row", "reason").rows() == [(1, "invalid_label")]
    pku = pl.DataFrame(PKU).with_columns(pl.col("better_response_id").cast(pl.String))
    pku.write_csv(tmp_path / "pku.csv")
    native = build_batch(read_source(str(tmp_path / "pku.csv")))
    assert native.format == "pku-saferlhf" and native.pairs["source_row"].to_list() == [0]
    assert native.quarantine.select("source_row", "reason").rows() == [(1, "invalid_label")]


def test_map_names_the_columns_of_an_unknown_schema(tmp_path):
    from rmcore.errors import FormatError, InvalidArgument
    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.mapping import parse_map, remap
    from rmcore.ingest.sources import read_source

    path = tmp_path / "q.jsonl"
    rows = [{"q": "Q1", "good": "yes", "bad": "no", "p": 0.9, "src": "s"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = parse_map("prompt=q, chosen=good,rejected=bad,label=p")
    for columnar in (True, False):
        batch = build_batch(remap(read_source(str(path), columnar=columnar), mapping))
        assert batch.format == "explicit"
        assert batch.pairs.select("prompt", "chosen", "rejected", "label").rows() == [
            ("Q1", "yes", "no", 0.9)
        ]
        assert json.loads(batch.pairs["provenance"][0]) == {"src": "s"}
    with pytest.raises(InvalidArgument, match="not target=column"):
        parse_map("prompt")
    with pytest.raises(InvalidArgument, match="unknown target"):
        parse_map("question=q")
    with pytest.raises(FormatError, match="not a column"):
        remap(read_source(str(path)), {"prompt": "nope"})


@pytest.mark.usefixtures("prefect_server")
def test_cli_ingest_with_map_and_hf_split(tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    rows = [{"query": f"Q{i}", "good": f"g{i}", "bad": f"b{i}"} for i in range(4)]
    path = _save_dict(tmp_path / "qa", {"train_prefs": rows[:3], "test_prefs": rows[3:]})
    wh = str(tmp_path / "wh.duckdb")
    args = ["ingest", str(path), "-w", wh, "--reports", str(tmp_path / "r")]
    result = CliRunner().invoke(
        app, [*args, "--map", "prompt=query,chosen=good,rejected=bad", "--hf-split", "test_prefs"]
    )
    assert result.exit_code == 0, result.output
    assert "input rows 1 = stored 1 + quarantined 0" in result.output
    con = duckdb.connect(wh, read_only=True)
    try:
        assert con.execute(
            "SELECT split, format FROM pairs JOIN datasets USING (dataset_id)"
        ).fetchall() == [("test", "explicit")]
    finally:
        con.close()
    bad = CliRunner().invoke(app, [*args, "--map", "prompt"])
    assert bad.exit_code != 0 and "not target=column" in bad.output


_MUTATION = st.tuples(
    st.integers(0, 50), st.sampled_from(["drop", None, 5, "x", [], {"role": 1}, 2.5, True])
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize(
    "case",
    [
        "pku-better",
        "shp",
        "arena",
        "helpsteer3",
        "nectar",
        "oasst",
        "helpsteer2",
        "ultrafeedback-fine-grained",
        "stack-exchange",
    ],
)
def test_broken_rows_of_every_schema_reconcile(case, tmp_path, data):
    """Any field dropped, nulled or given another type: every input row is stored or
    quarantined, whichever reader takes the file, and no pair id repeats."""
    from rmcore.errors import FormatError
    from rmcore.ingest.batch import build_batch
    from rmcore.ingest.sources import read_source

    rows, _, options, *_ = CASES[case]
    broken = []
    for row in rows:
        row = dict(row)
        for key_at, value in data.draw(st.lists(_MUTATION, max_size=2)):
            key = sorted(row)[key_at % len(row)]
            if value == "drop":
                row.pop(key)
            else:
                row[key] = value
        broken.append(row)
    path = tmp_path / "broken.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in broken))
    fmt = CASES[case][1]
    for columnar in (True, False):
        try:
            batch = build_batch(read_source(str(path), columnar=columnar), fmt=fmt, **options)
        except FormatError:  # a score field no row carries any more: refused whole
            continue
        assert batch.reconciles, batch.reason_counts()
        assert batch.pairs["pair_id"].is_unique().all()
