#!/usr/bin/env bash
# The standard suite (bench/suite.py) on the GPU machine, one part per device call (a whole suite is longer than one
# call may run): `bash bench/gpu_suite.sh MODELS` with MODELS a comma-separated subset; carry .whl, and for the models
# whose sources the GPU machine lacks the matching .gpu_zoo folder (wheels: EfficientNet-Lite0's packages; onnx:
# YOLOv8n's export; minilm: MiniLM's folder, weights rounded to fp16 to fit 64 MiB). Writes $OUT/suite-part.json
# (rewritten after every model) and the log; join the parts here with `python bench/suite.py --merge`.
set -uo pipefail
source bench/gpu_env.sh || exit 1
# carried model sources (.gpu_zoo): pure-Python wheels, cached ONNX files, MiniLM's folder with fp16-rounded weights
if [ -d .gpu_zoo/wheels ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu_zoo/wheels/*.whl || exit 1
fi
mkdir -p "$GREENRT_CACHE/zoo" && cp .gpu_zoo/onnx/*.onnx "$GREENRT_CACHE/zoo/" 2>/dev/null
if [ -d .gpu_zoo/minilm ]; then  # back to fp32 (the values stay the fp16-rounded ones; the suite's records say so)
    mkdir -p /tmp/minilm && cp .gpu_zoo/minilm/* /tmp/minilm/ && python3 -c "
from safetensors.torch import load_file, save_file
w = load_file('.gpu_zoo/minilm/model.safetensors')
save_file({k: v.float() if v.is_floating_point() else v for k, v in w.items()}, '/tmp/minilm/model.safetensors')" \
        && export GREENRT_MINILM_DIR=/tmp/minilm
fi
export PYTHONPATH=$PYTHONPATH:$PWD
python3 bench/suite.py --device cuda --models "$1" --duration "${DURATION:-2}" --out "$OUT/suite-part.json" 2>&1 \
    | tee "$OUT/suite-part.log" | grep -v "^\s*$"
