"""Process environment for local Prefect runs, set before Prefect is imported, and the filter
that keeps Prefect from logging tracebacks of expected errors."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path


def configure(warehouse: str | None = None) -> None:
    """Local mode with no server to start: one Prefect home per warehouse (`prefect_home`),
    analytics off, and a generous start-up timeout (the ephemeral server takes 12-25 s on this
    machine). A `PREFECT_HOME` or `PREFECT_API_URL` the user set is kept: with an API URL, runs
    and artifacts go to that server."""
    os.environ.setdefault("PREFECT_HOME", str(prefect_home(warehouse)))
    # Prefect makes its home at import without parents; a first ingest into a new folder
    # makes it before the engine starts (`make_home`), so the import-time warning is noise.
    warnings.filterwarnings("ignore", message="Failed to create the Prefect home directory")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    show_progress_lines()


def show_progress_lines() -> None:
    """The `rmcurate.progress` lines (one per model load; progress of long work when stderr
    is not a terminal) on stderr, as they are, once."""
    from rmcore.progress import log

    if not any(getattr(h, "rmcurate_cli", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.rmcurate_cli = True
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def prefect_home(warehouse: str | None = None) -> Path:
    """`<warehouse folder>/prefect` (`data/prefect` by default): the runs of one project
    stay in one place, inside its data folder, wherever a command is started from."""
    from warehouse.connection import warehouse_path

    return warehouse_path(warehouse).resolve().parent / "prefect"


def make_home() -> None:
    """Create Prefect's home (and the warehouse folder it sits in) for a command that creates
    the warehouse: without it the local server has nowhere for its database and times out
    after minutes (a first `ingest` into a new folder, `demo` on a fresh clone)."""
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


def warehouse_in(argv: list[str]) -> str | None:
    """The warehouse a command line names, read before typer parses it (Prefect's home must be
    set before Prefect is imported): `--warehouse`/`-w`, else `demo`'s `<workdir>/data`."""
    named = _option(argv, "--warehouse", "-w")
    if named is None and "demo" in argv:
        return str(Path(_option(argv, "--workdir") or ".") / "data" / "rmcurate.duckdb")
    return named


def _option(argv: list[str], *names: str) -> str | None:
    """The value of the first of `names` on the command line (`--name value` or `--name=value`)."""
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        if arg.partition("=")[0] in names and "=" in arg:
            return arg.partition("=")[2]
    return None


# Prefect's run loggers: they log a failing task or flow with its traceback, then its state.
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class ExpectedErrorFilter(logging.Filter):
    """Drops Prefect's error records about an expected failure (an `RmcurateError`): the
    "Task run failed with exception ... Traceback" records, and the "Finished in state
    Failed('Task run encountered an exception NotFound: ...')" records, which carry no
    exception but name its type. The CLI prints the one line instead; the run's state in
    Prefect still holds the message. Records of any other exception pass untouched."""

    active = True

    def filter(self, record: logging.LogRecord) -> bool:
        from rmcore.errors import RmcurateError

        if not self.active or record.levelno < logging.ERROR:
            return True
        if record.exc_info:
            return not isinstance(record.exc_info[1], RmcurateError)
        message = record.getMessage()
        return not any(f"{name}:" in message or f"{name}(" in message for name in _names())


def _names() -> set[str]:
    """The names of every expected error type (subclasses included)."""
    from rmcore.errors import RmcurateError

    found, todo = set(), [RmcurateError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


_FILTER = ExpectedErrorFilter()


def quiet_expected_errors(active: bool = True) -> None:
    """Install (once) or switch the filter on Prefect's run loggers; safe before Prefect is
    imported (its logging setup keeps the filters of existing loggers)."""
    _FILTER.active = active
    for name in PREFECT_RUN_LOGGERS:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
