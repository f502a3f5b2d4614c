"""Process environment for local Prefect runs, set before Prefect is imported."""

from __future__ import annotations

import os
from pathlib import Path


def configure() -> None:
    """Local mode with no server to start: a Prefect home inside the project, analytics off,
    and a generous start-up timeout (the ephemeral server takes 12-25 s on this machine)."""
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
