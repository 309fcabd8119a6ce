#!/usr/bin/env bash
# The test suite: set up, then pytest (CI subset; `bash scripts/test.sh -m heavy tests/corpus` for heavy models).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
