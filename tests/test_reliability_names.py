"""Reliability probes for names and output folders (issue 12, items 1 and 7's naming probes):
one name rule (`rmcore.names`) for datasets, curated sets, models and reports; model and report
folders created inside their root only and never written over unless asked (`--overwrite`).

The CLI probes run `rmcurate` as a real subprocess in a tiny project folder and check the exit
code, the one `error:` line, the absence of a traceback, and that not one file or folder of the
project changed (a foreign folder's README.md and config.json included). The flow and stage
probes train a real embedding-head model (1 epoch, 20 pairs) in a real warehouse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from rmcore.errors import InvalidArgument, NotFound, OutputExists
from rmcore.names import NAME_MAX, check_name, default_dataset_name, slug

RMCURATE = Path(sys.executable).with_name("rmcurate")
SOURCE_FILE = "my data (1).jsonl"  # named after its file: `my-data-1`
DATASET = "my-data-1"
LONG = "x" * 300


def _rows(n: int = 20) -> str:
    rows = [
        {
            "prompt": f"question {i}",
            "chosen": f"a careful answer to question {i}",
            "rejected": f"no {i}",
            "split": "train" if i < 16 else "test",
        }
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_server) -> dict:
    """A project folder: `data/wh.duckdb` with one dataset ingested under its derived name,
    an empty `data/models/`, and a foreign folder `elsewhere/` holding README.md and
    config.json that no probe may touch."""
    from prefect.settings import PREFECT_API_URL

    from flows.ingest import ingest_flow

    root = tmp_path_factory.mktemp("names")
    (root / SOURCE_FILE).write_text(_rows())
    warehouse = root / "data" / "wh.duckdb"
    out = ingest_flow(source=str(root / SOURCE_FILE), warehouse=str(warehouse), quality=False)
    assert out["name"] == DATASET
    (root / "data" / "models").mkdir()
    foreign = root / "elsewhere"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes\n")
    (foreign / "config.json").write_text('{"mine": true}\n')
    return {
        "root": root,
        "warehouse": str(warehouse),
        "foreign": foreign,
        "api": PREFECT_API_URL.value(),
    }


def _tree(root: Path) -> dict[str, tuple]:
    """Every folder under `root`, and every file with its size, mtime and bytes; the
    warehouse's read snapshot is left out (a read may publish it: that is the reader's
    design, inside the data folder)."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        if ".snapshot." in path.name:
            continue
        if path.is_dir() and not path.is_symlink():
            out[str(path.relative_to(root))] = ("dir",)
            continue
        stat = path.lstat()
        data = path.read_bytes() if path.is_file() and stat.st_size < 1 << 20 else None
        out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, data)
    return out


def _cli(project: dict, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PREFECT_API_URL": project["api"]}
    return subprocess.run(
        [str(RMCURATE), *args],
        capture_output=True,
        text=True,
        cwd=project["root"],
        env=env,
        timeout=600,
    )


def _assert_one_line_error(out: subprocess.CompletedProcess, code: int, needle: str) -> None:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stdout + out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), out.stderr
    assert needle in lines[-1], lines[-1]


# ---------------------------------------------------------------- the name rule itself


@pytest.mark.parametrize(
    "name", ["toy", "toy-v1", "My_Set.2", "a", "1a", "x" * NAME_MAX, "v1.0", "a..b"]
)
def test_valid_names_pass_unchanged(name):
    assert check_name(name, "dataset") == name


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("", "is empty"),
        ("1", "all digits"),
        ("007", "all digits"),
        ("good@1", "'@'"),
        ("../../X", "path separator"),
        ("/some/existing/dir", "path separator"),
        ("a\\b", "path separator"),
        (".", "relative folder"),
        ("..", "relative folder"),
        (".hidden", "start with a letter or digit"),
        ("-x", "start with a letter or digit"),
        ("a b", "contains ' '"),
        ("tab\there", "contains '\\t'"),
        ("new\nline", "contains '\\n'"),
        ("ümlaut", "contains 'ü'"),
        (LONG, "300 characters long"),
        ("x" * (NAME_MAX + 1), f"at most {NAME_MAX}"),
    ],
)
def test_invalid_names_are_refused_with_the_rule(name, needle):
    with pytest.raises(InvalidArgument) as err:
        check_name(name, "model")
    message = str(err.value)
    assert needle in message and "names are 1-" in message and "\n" not in message
    assert len(message) < 400  # a 300-character name is cut when quoted back


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("data/toy.jsonl", "toy"),
        ("data/my data (1).jsonl.gz", "my-data-1"),
        ("1.jsonl", "dataset-1"),
        ("good@1.csv", "good-1"),
        ("org/hub-name", "hub-name"),
        ("folder/hf_disk/", "hf_disk"),
        (".hidden.parquet", "hidden"),
        (f"{LONG}.jsonl", "x" * NAME_MAX),
        ("@@@.json", "dataset"),
    ],
)
def test_default_dataset_names_are_valid(uri, expected):
    assert default_dataset_name(uri) == expected
    assert check_name(expected) == expected


def test_slug_maps_any_text_onto_a_valid_name():
    for text in ["", "..", "../../etc", "a/b", "123", "\x00", "é" * 200, "x@1"]:
        check_name(slug(text))


# ---------------------------------------------------------------- CLI probes


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["train", "", "-d", DATASET], 2, "is empty"),  # would write into models/ itself
        (["train", "../../X", "-d", DATASET], 2, "path separator"),
        (["train", "FOREIGN", "-d", DATASET], 2, "path separator"),
        (["train", "..", "-d", DATASET], 2, "relative folder"),
        (["train", LONG, "-d", DATASET], 2, "300 characters long"),
        (["curate", "../sets", "-d", DATASET], 2, "path separator"),
        (["curate", "1", "-d", DATASET], 2, "all digits"),
        (["ingest", SOURCE_FILE, "--name", "1"], 2, "all digits"),
        (["ingest", SOURCE_FILE, "--name", "good@1"], 2, "'@'"),
        (["ingest", SOURCE_FILE, "--name", LONG], 2, "300 characters long"),
        (["ingest", SOURCE_FILE, "--name", "../x"], 2, "path separator"),
        (["ablation", "-d", DATASET, "--name", "../../r"], 2, "path separator"),
        (["iterate", "-d", DATASET, "--name", "a b"], 2, "contains ' '"),
        (["quarantine", "--dataset", "99"], 5, "no dataset with id 99"),
    ],
    ids=[
        "train-empty",
        "train-up",
        "train-absolute-existing-dir",
        "train-dotdot",
        "train-long",
        "curate-up",
        "curate-digits",
        "ingest-digits",
        "ingest-at-version",
        "ingest-long",
        "ingest-up",
        "ablation-up",
        "iterate-space",
        "quarantine-missing-id",
    ],
)
def test_cli_name_probes_fail_cleanly_and_write_nothing(project, args, code, needle):
    args = [str(project["foreign"]) if a == "FOREIGN" else a for a in args]
    before = _tree(project["root"])
    out = _cli(project, *args, "-w", project["warehouse"])
    _assert_one_line_error(out, code, needle)
    assert _tree(project["root"]) == before


def test_cli_quarantine_by_id_says_which_dataset(project):
    con = duckdb.connect(project["warehouse"], read_only=True)
    try:
        (dataset_id,) = con.execute(
            "SELECT dataset_id FROM datasets WHERE name = ?", [DATASET]
        ).fetchone()
    finally:
        con.close()
    out = _cli(project, "quarantine", "--dataset", str(dataset_id), "-w", project["warehouse"])
    assert out.returncode == 0, out.stderr
    assert f"{DATASET}@1 (id {dataset_id})" in " ".join(out.stdout.split())


@pytest.mark.slow
def test_cli_train_refuses_a_foreign_folder_in_models(project):
    """Through the whole flow: a folder in models/ that is not this model's stays untouched."""
    foreign = Path(project["warehouse"]).parent / "models" / "notes"
    foreign.mkdir(exist_ok=True)
    (foreign / "README.md").write_text("keep me\n")
    (foreign / "config.json").write_text("{}\n")
    before = _tree(project["root"])
    args = ["train", "notes", "-d", DATASET, "--epochs", "1", "--device", "cpu"]
    out = _cli(project, *args, "-w", project["warehouse"])
    _assert_one_line_error(out, 12, "already exists")
    assert "--overwrite" in out.stderr
    after = _tree(project["root"])
    assert {k: v for k, v in after.items() if k.startswith("data/models")} == {
        k: v for k, v in before.items() if k.startswith("data/models")
    }


# ---------------------------------------------------------------- train flow: output folders


def _train(project: dict, name: str, **kwargs) -> dict:
    from flows.train import train_flow

    kwargs = {"epochs": 1, "device": "cpu"} | kwargs
    return train_flow(name=name, dataset=DATASET, warehouse=project["warehouse"], **kwargs)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_train_keeps_the_no_op_refuses_other_inputs_and_overwrites_when_asked(project):
    first = _train(project, "m1")
    folder = Path(first["path"])
    models = Path(project["warehouse"]).parent / "models"
    assert first["trained"] and folder.parent == models.resolve()
    saved = _files(folder)
    assert {"README.md", "config.json"} <= set(saved)

    again = _train(project, "m1")  # same name, same inputs: the saved model, nothing written
    assert not again["trained"] and again["path"] == first["path"] and _files(folder) == saved

    with pytest.raises(OutputExists, match="--overwrite"):
        _train(project, "m1", seed=7)  # other inputs, same folder: refused
    assert _files(folder) == saved

    replaced = _train(project, "m1", seed=7, overwrite=True)
    assert replaced["trained"] and replaced["path"] == first["path"]
    assert _files(folder) != saved and not list(models.glob(".m1.*"))  # no temp folder left


def test_train_refuses_a_foreign_folder_and_bad_names(project):
    models = Path(project["warehouse"]).parent / "models"
    notes = models / "notes2"
    notes.mkdir()
    (notes / "README.md").write_text("keep me\n")
    (notes / "config.json").write_text("{}\n")
    before = _tree(project["root"])
    with pytest.raises(OutputExists):
        _train(project, "notes2")
    for bad in ["", "../../X", str(project["foreign"]), "..", "1", "m@1"]:
        with pytest.raises(InvalidArgument):
            _train(project, bad)
    assert _tree(project["root"]) == before


def test_a_symlink_out_of_the_models_folder_is_refused(project, tmp_path):
    from rmcore.stages.train import check_output

    models = Path(project["warehouse"]).parent / "models"
    outside = tmp_path / "outside"
    outside.mkdir()
    (models / "link").symlink_to(outside, target_is_directory=True)
    try:
        with pytest.raises(InvalidArgument, match="is a link"):
            check_output(project["warehouse"], "link", None)
    finally:
        (models / "link").unlink()
    assert list(outside.iterdir()) == []


def test_ingest_flow_refuses_bad_names_before_opening_the_warehouse(project, tmp_path):
    from flows.ingest import ingest_flow

    warehouse = tmp_path / "fresh" / "wh.duckdb"
    for bad in ["1", "good@1", LONG, "a/b"]:
        with pytest.raises(InvalidArgument):
            ingest_flow(
                source=str(project["root"] / SOURCE_FILE),
                name=bad,
                warehouse=str(warehouse),
                quality=False,
                reports_dir=str(tmp_path / "reports"),
            )
    assert not warehouse.parent.exists() and not (tmp_path / "reports").exists()


# ---------------------------------------------------------------- report folders


def test_report_folders_stay_inside_and_are_not_written_over(project, tmp_path):
    from rmcore.stages.report import report_folder
    from warehouse import benchmarks
    from warehouse.connection import transaction

    reports = tmp_path / "reports"
    wh = project["warehouse"]
    assert report_folder(wh, reports_dir=str(reports), name="abl") == (reports / "abl").resolve()
    for bad in ["../x", "", "1", "a@1", ".."]:
        with pytest.raises(InvalidArgument):
            report_folder(wh, reports_dir=str(reports), name=bad)
    mine = reports / "mine"
    mine.mkdir(parents=True)
    (mine / "README.md").write_text("mine\n")
    with pytest.raises(OutputExists, match="--overwrite"):
        report_folder(wh, reports_dir=str(reports), name="mine")
    assert report_folder(wh, reports_dir=str(reports), name="mine", overwrite=True)
    # An earlier report of the same ablation is rewritten by a re-run; another's is refused.
    earlier = reports / "abl2"
    earlier.mkdir()
    (earlier / "index.html").write_text("<html></html>")
    with transaction(wh) as con:
        (dataset_id,) = con.execute("SELECT min(dataset_id) FROM datasets").fetchone()
        run = benchmarks.create_run(
            con, name="abl2", dataset_id=dataset_id, split="test", params={}, flow_run_id=None
        )
        benchmarks.set_report(con, run, str((earlier / "index.html").resolve()))
    assert report_folder(wh, reports_dir=str(reports), name="abl2") == earlier.resolve()
    (reports / "other").symlink_to(earlier, target_is_directory=True)
    with pytest.raises(InvalidArgument, match="is a link"):
        report_folder(wh, reports_dir=str(reports), name="other")


def test_ablation_checks_everything_before_training(project, tmp_path):
    from rmcore.stages.ablation import check_ablation

    def check(**kw):
        args = {
            "name": "abl",
            "dataset": DATASET,
            "methods": ["vanilla", "prompt-free-priority"],
            "seeds": [0, 1],
            "reference": True,
            "train_predicate": "split = 'train'",
            "reports_dir": str(tmp_path / "reports"),
        }
        return check_ablation(project["warehouse"], **(args | kw))

    assert check() == str((tmp_path / "reports" / "abl").resolve())
    with pytest.raises(InvalidArgument, match="too long for the model names"):
        check(name="x" * (NAME_MAX - 5))
    with pytest.raises(InvalidArgument, match="unknown methods"):
        check(methods=["nope"])
    with pytest.raises(InvalidArgument, match="prompt-free-online re-weights online"):
        check(methods=["vanilla", "prompt-free-online"], backend="joint")
    assert check(methods=["prompt-free-online"], backend="late-interaction")
    with pytest.raises(InvalidArgument, match="syntax error"):
        check(train_predicate="1=1) OR (1=1")
    with pytest.raises(NotFound):
        check(dataset="no-such-dataset")
    with pytest.raises(InvalidArgument):
        check(name="../up")
    assert not (tmp_path / "reports").exists()
