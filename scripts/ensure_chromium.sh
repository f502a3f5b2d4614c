#!/usr/bin/env bash
# Headless Chromium for the screenshot tests (tests/test_screenshot.py): Debian's `chromium`
# package, installed only when no chromium is on PATH. Where it cannot be installed (not root,
# no apt-get, no network) one line says why and exits 0: the screenshot tests then skip.
set -uo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium missing and not root: screenshot tests will skip (sudo apt-get install chromium)"
elif ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium missing and no apt-get: screenshot tests will skip"
elif ! log=$({ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends chromium; } 2>&1); then
    echo "installing chromium failed, screenshot tests will skip: $(printf '%s\n' "$log" | tail -n 1)"
else
    echo "installed chromium $(chromium --version 2>/dev/null | awk '{print $2}') for the screenshot tests"
fi
exit 0
