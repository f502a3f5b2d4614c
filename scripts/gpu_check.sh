#!/usr/bin/env bash
# The GPU check in one command (docs/GPU.md). From the repository root:
#
#   scripts/gpu_check.sh [--device cuda|cpu] [--tiny] [--out reports/gpu_check.md]
#   scripts/gpu_check.sh --prepare-bundle   # on a host with PyPI: the offline bundle (below)
#   scripts/gpu_check.sh --unpack-only      # offline machine: unpack the bundle parts carried
#
# The Python it runs, first match wins:
#   1. $PYTHON, when set;
#   2. .venv-gpu/bin/python, when it exists (made by 4 on an earlier run);
#   -  with --device cpu, the project's .venv (make setup), for the tiny test;
#   3. build/gpu-check/ (the offline bundle, for a GPU machine without network, such as the
#      device tool's): the machine's own python3 and its CUDA torch, plus the bundle's
#      packages on PYTHONPATH and its saved tokenizer; the project itself runs from the tree;
#   4. otherwise a new .venv-gpu: `pip install torch==2.13.0` (from $TORCH_INDEX_URL when set,
#      else pip's default index: PyPI's Linux x86_64 torch wheel IS the CUDA build), THEN
#      `pip install -e .[bench]`: the pin is already met, so pip keeps the CUDA torch.
#      pyproject.toml's `torch==2.13.0` pin is not touched.
#
# The check gets at most $GPU_CHECK_TIMEOUT seconds (default 590); its table is written after
# every step, so a run cut short still leaves the finished steps in --out.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUNDLE=build/gpu-check

if [[ "${1:-}" == "--prepare-bundle" ]]; then
    exec "${PYTHON:-.venv/bin/python}" scripts/gpu_check.py --prepare-bundle "$BUNDLE"
fi

device=cuda
for ((i = 1; i <= $#; i++)); do
    if [[ "${!i}" == "--device" ]]; then j=$((i + 1)); device="${!j}"; fi
    if [[ "${!i}" == --device=* ]]; then device="${!i#--device=}"; fi
done

if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -x .venv-gpu/bin/python ]]; then
    PY=.venv-gpu/bin/python
elif [[ "$device" == cpu && -x .venv/bin/python ]]; then
    PY=.venv/bin/python
elif compgen -G "$BUNDLE/site-*.tar.xz" >/dev/null || [[ -d "$BUNDLE/site" ]]; then
    PY=python3
    for part in "$BUNDLE"/site-*.tar.xz; do  # each part once; parts may come in separate calls
        [[ -f "$part" && ! -f "$BUNDLE/site/.unpacked-$(basename "$part")" ]] || continue
        echo "[gpu_check.sh] unpacking $part" >&2
        "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
            "$part" "$BUNDLE/site"
        touch "$BUNDLE/site/.unpacked-$(basename "$part")"
    done
    if [[ "${1:-}" == "--unpack-only" ]]; then exit 0; fi
    export PYTHONPATH="$ROOT:$ROOT/$BUNDLE/site${PYTHONPATH:+:$PYTHONPATH}"
    export RMCURATE_TOKENIZER="$ROOT/$BUNDLE/tokenizer"
else
    echo "[gpu_check.sh] creating .venv-gpu (CUDA torch first, then the project)" >&2
    python3 -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install -q --upgrade pip
    if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
        .venv-gpu/bin/python -m pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
    else
        .venv-gpu/bin/python -m pip install -q "torch==2.13.0"
    fi
    .venv-gpu/bin/python -m pip install -q -e ".[bench]"
    PY=.venv-gpu/bin/python
fi

"$PY" -c 'import sys, torch; print(f"[gpu_check.sh] {sys.executable}: torch {torch.__version__}, CUDA {torch.version.cuda}, cuda available {torch.cuda.is_available()}")'
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec timeout --signal=TERM --kill-after=10 "${GPU_CHECK_TIMEOUT:-590}" "$PY" scripts/gpu_check.py "$@"
