"""What every rmcurate task shares: the flow-run id to stamp on rows, and a logger that
works inside and outside a Prefect run."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from prefect.runtime import flow_run

from rmcore.errors import RmcurateError


def current_flow_run_id() -> str | None:
    """The id of the enclosing flow run, recorded on the warehouse rows it creates."""
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("rmcurate")


def retry_unexpected(task, task_run, state) -> bool:
    """`retry_condition_fn` of tasks with retries: an expected failure (an `RmcurateError`:
    bad input, missing dataset, busy warehouse after its own bounded wait) fails at once,
    since a retry would fail the same way; anything else is retried."""
    return not isinstance(getattr(state, "data", None), RmcurateError)
