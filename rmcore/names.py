"""The one rule for names a user gives to things that become folders or lookup keys: datasets,
curated sets, models and ablation reports; and the two rules for the folders named after them
(created inside their root only, published whole).

A name is 1 to 100 characters from `A-Z a-z 0-9 . _ -`, starts with a letter or a digit, and is
not all digits. So a name is always a single path component (no separator, never `.` or `..`,
never hidden), it cannot read as an id (`1`) or as `name@version` (`good@1`), and it stays short
enough that every file named after it (`NAME-v12...`) fits the file system's limit.

Names given by the user are checked, never changed. A name the code derives (the dataset name
from a file name) goes through `slug` first, which maps any text onto a valid name.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from rmcore.errors import InvalidArgument, OutputExists

NAME_MAX = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RULE = (
    f"names are 1-{NAME_MAX} characters from A-Z a-z 0-9 . _ -, start with a letter or digit"
    " and are not all digits"
)
_INVALID = re.compile(r"[^A-Za-z0-9._-]+")
# Suffixes `default_dataset_name` drops from a file name, outermost first.
_SOURCE_SUFFIXES = (".gz", ".jsonl", ".ndjson", ".json", ".parquet", ".csv")


def _problem(name: str) -> str | None:
    """What is wrong with `name`, or None when it is valid."""
    if not name:
        return "is empty"
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long (at most {NAME_MAX})"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if "@" in name:
        return "contains '@' (it would read as name@version)"
    if name.isdigit():
        return "is all digits (it would read as an id)"
    if name in (".", ".."):
        return "is a relative folder"
    if not NAME_PATTERN.fullmatch(name):
        bad = next((c for c in name if not re.fullmatch(r"[A-Za-z0-9._-]", c)), None)
        if bad is None:
            return "does not start with a letter or digit"
        return f"contains {bad!r}"
    return None


def is_valid(name: object) -> bool:
    return isinstance(name, str) and _problem(name) is None


def check_name(name: object, kind: str = "name") -> str:
    """`name` itself when it is valid; otherwise `InvalidArgument` saying what is wrong, the
    rule, and what `kind` of thing was being named (dataset, curated set, model, report)."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{kind} name must be text, got {type(name).__name__}; {RULE}")
    problem = _problem(name)
    if problem:
        shown = name if len(name) <= NAME_MAX else name[:NAME_MAX] + "..."
        raise InvalidArgument(f"{kind} name {shown!r} {problem}; {RULE}")
    return name


def slug(text: str, fallback: str = "dataset") -> str:
    """A valid name made from any text: runs of other characters become `-`, leading
    punctuation goes, the result is cut to `NAME_MAX`; all digits get `fallback-` in front
    and nothing left becomes `fallback`."""
    out = _INVALID.sub("-", text).lstrip("._-")[:NAME_MAX].rstrip("-")
    if not out:
        return fallback
    if out.isdigit():
        out = f"{fallback}-{out}"[:NAME_MAX]
    return out


def default_dataset_name(uri: str) -> str:
    """The dataset name when none is given: the file or folder name (or a hub id's last part)
    without its data suffixes, made valid by `slug` (`my data (2).jsonl` -> `my-data-2`)."""
    name = Path(uri.rstrip("/")).name
    for suffix in _SOURCE_SUFFIXES:
        name = name.removesuffix(suffix)
    return slug(name or uri)


def inside(root: Path, name: str, kind: str = "output") -> Path:
    """`root/name`, resolved, after checking that it is exactly that: a direct child of the
    resolved `root` and not a link (one planted at `root/name`, pointing elsewhere, is refused)."""
    base = root.resolve()
    path = (base / name).resolve()
    if path != base / name or not path.is_relative_to(base):
        raise InvalidArgument(
            f"{kind} folder {root / name} is a link or resolves outside {base}; pick another name"
        )
    return path


def publish(path: Path, write: Callable[[Path], object], *, replace: bool, kind: str) -> None:
    """`write(tmp)` into a hidden sibling folder, then move it into place with one rename, so
    nobody sees half an output and a failed write leaves the old folder as it was. An
    existing folder is replaced only when `replace` (set aside, swapped, then deleted);
    otherwise one that appeared meanwhile is an `OutputExists`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = path.with_name(f".{path.name}.tmp-{tag}"), path.with_name(f".{path.name}.old-{tag}")
    swapped = False
    try:
        write(tmp)
        if replace and path.exists():
            path.rename(old)
        try:
            os.rename(tmp, path)  # onto nothing or an empty folder; fails on a non-empty one
            swapped = True
        except OSError as err:
            if old.exists() and not path.exists():
                old.rename(path)
            raise OutputExists(
                f"{kind} folder {path} appeared meanwhile; pass --overwrite or pick another name"
            ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if swapped:  # an old folder that could not be put back stays, hidden, never deleted
            shutil.rmtree(old, ignore_errors=True)
