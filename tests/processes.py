"""Real child processes for the reliability tests: the installed `rmcurate` console script and
Python snippets, pointed at the session's Prefect test server (so no child starts its own)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RMCURATE = str(Path(sys.executable).with_name("rmcurate"))


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment, offline, with the Prefect API of the running test server
    (call it inside the `prefect_server` fixture) and `extra` on top."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("RMCURATE_DEBUG", None)
    if url := PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = url
    return env | extra


def rmcurate(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run `rmcurate ARGS` to the end; stdout and stderr captured as text."""
    return subprocess.run(
        [RMCURATE, *args],
        cwd=cwd,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen:
    """Start a child in its own session (so a kill reaches only it), output to `log`."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed by the child's end)
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env or child_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def python(code: str) -> list[str]:
    """argv running `code` with this interpreter."""
    return [sys.executable, "-c", code]


def wait_for(
    condition: Callable[[], bool], *, timeout: float, every: float = 0.02, proc=None
) -> bool:
    """Poll `condition` until true (True), the timeout, or `proc` ending (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return condition()
        time.sleep(every)
    return False


def open_files(pid: int) -> set[str]:
    """The paths a process has open (Linux /proc)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    found = set()
    for fd in fd_dir.iterdir() if fd_dir.exists() else []:
        with contextlib.suppress(OSError):
            found.add(os.readlink(fd))
    return found


def no_traceback(done: subprocess.CompletedProcess) -> str:
    """stdout + stderr, asserted free of any Python traceback (ours or Prefect's logs)."""
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    return text
