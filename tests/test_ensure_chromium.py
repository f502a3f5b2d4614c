"""`scripts/ensure_chromium.sh` (run by `make test`): installs Debian's chromium only when it is
missing, and otherwise says in one line why the screenshot tests will skip, never failing the
run. apt-get and chromium are stand-ins on a PATH built in the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ensure_chromium.sh"
IS_ROOT = os.geteuid() == 0


def fake_path(tmp_path: Path, **scripts: str) -> Path:
    """A PATH folder with the tools the script needs, plus `scripts` as executables."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("id", "tail", "awk", "chmod"):
        (folder / tool).symlink_to(shutil.which(tool))
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return folder


def ensure(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_present_chromium_is_left_alone_silently(tmp_path):
    out = ensure(fake_path(tmp_path, chromium="exit 0", **{"apt-get": "exit 99"}))
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_without_apt_get_one_line_and_success(tmp_path):
    out = ensure(fake_path(tmp_path))
    assert out.returncode == 0 and out.stdout.count("\n") == 1
    assert ("no apt-get" if IS_ROOT else "not root") in out.stdout


@pytest.mark.skipif(not IS_ROOT, reason="the install path runs only as root")
def test_failed_install_one_line_with_apt_gets_last_words(tmp_path):
    out = ensure(
        fake_path(tmp_path, **{"apt-get": "echo 'E: Unable to locate package' >&2; exit 100"})
    )
    assert out.returncode == 0
    assert out.stdout == (
        "installing chromium failed, screenshot tests will skip: E: Unable to locate package\n"
    )


@pytest.mark.skipif(not IS_ROOT, reason="the install path runs only as root")
def test_missing_chromium_is_installed_with_apt_get(tmp_path):
    folder = tmp_path / "bin"
    calls = tmp_path / "calls"
    installer = (
        f'echo "$@" >> {calls}\n'
        f'case "$*" in *install*) printf "#!/bin/sh\\necho Chromium 1.2.3\\n" > {folder}/chromium;'
        f" chmod +x {folder}/chromium;; esac"
    )
    out = ensure(fake_path(tmp_path, **{"apt-get": installer}))
    assert (
        out.returncode == 0 and out.stdout == "installed chromium 1.2.3 for the screenshot tests\n"
    )
    assert calls.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends chromium",
    ]
    assert ensure(folder).stdout == ""  # idempotent: the second run does nothing
