"""Expected failures, one type each, with the exit code the CLI ends with.

Anything raised as an `RmcurateError` is a failure a user can cause and fix (a missing file, a
bad name, a busy warehouse): the CLI prints its message on one line and exits with the type's
code, with no traceback unless `--debug` is given. Anything else is a bug and keeps its
traceback. Codes are stable: scripts may branch on them.
"""

from __future__ import annotations


class RmcurateError(Exception):
    """An expected failure; `exit_code` is what the CLI exits with."""

    exit_code = 1


class InvalidArgument(RmcurateError, ValueError):
    """A bad option value, name, predicate or parameter, caught before any work starts."""

    exit_code = 2


class SourceError(RmcurateError, ValueError):
    """A source cannot be read at all: missing, empty, binary, undecodable, unparseable."""

    exit_code = 3


class FormatError(RmcurateError, ValueError):
    """A readable source whose records fit no known preference format."""

    exit_code = 4


class NotFound(RmcurateError, LookupError):
    """A dataset, curated set, model or scoring run that the warehouse does not hold."""

    exit_code = 5


class WarehouseBusy(RmcurateError, RuntimeError):
    """Another process holds the warehouse lock for longer than we were willing to wait."""

    exit_code = 6


class WarehouseMissing(RmcurateError, FileNotFoundError):
    """A read-only connection was asked for a warehouse file that does not exist."""

    exit_code = 7


class QualityFailed(RmcurateError, RuntimeError):
    """A stored batch failed a batch-level data-quality expectation."""

    exit_code = 8


class QueryError(RmcurateError, RuntimeError):
    """A user's SQL query failed (syntax, unknown column, refused statement)."""

    exit_code = 9


class QueryTimeout(QueryError):
    """A user's SQL query ran past its time limit and was interrupted."""

    exit_code = 10


class ModelLoadError(RmcurateError, OSError):
    """A model folder or hub id that cannot be loaded safely (missing, pickle-only, offline)."""

    exit_code = 11


class OutputExists(RmcurateError, FileExistsError):
    """An output folder that already exists and may not be overwritten (see `--overwrite`)."""

    exit_code = 12


class QualityNotChecked(QualityFailed):
    """A batch was stored but its data-quality check could not run (unwritable reports
    folder, ...): the dataset is marked `not_checked`, with the reason, until a re-check."""

    exit_code = 13


class Interrupted(RmcurateError):
    """The user pressed Ctrl-C (SIGINT); the work in flight was stopped cleanly."""

    exit_code = 130
