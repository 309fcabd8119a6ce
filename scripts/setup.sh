#!/usr/bin/env bash
# Creates .venv and installs greenrt with its pinned dev/test dependencies. Idempotent: a stamp records what was
# installed, so a second run returns at once unless pyproject.toml or requirements/lock.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.greenrt-setup
want=$(cat pyproject.toml requirements/lock.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing greenrt and pinned dependencies into .venv (first time: a few minutes)" >&2
    .venv/bin/pip install -q --disable-pip-version-check -c requirements/lock.txt -e '.[dev]' 2>&1 \
        | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import greenrt, torch, onnxruntime" || { echo "setup: install failed" >&2; exit 2; }
    echo "$want" > "$stamp"
fi
