#!/usr/bin/env bash
# The main job: set up, then EfficientNet-Lite0 (real ImageNet weights) on real photos, greenrt vs onnxruntime.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/greenrt demo "$@"
