"""Shared fixtures: offline Hugging Face, a private Prefect home, one Prefect test server per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Offline Hugging Face, and a Prefect home of the session's own; the rest is what the CLI sets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rmcurate-prefect-"))

from cli import env

env.configure()

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real preference data beside the repo; skip cleanly when absent."""
    if not (SHARED_DATA / "alpaca_eval_dev").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the whole session (each start costs 12-25 s here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def warehouse_file(tmp_path: Path) -> str:
    """A fresh, real DuckDB warehouse file per test."""
    return str(tmp_path / "wh.duckdb")
