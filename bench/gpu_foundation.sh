#!/usr/bin/env bash
# Foundation checks on the GPU machine (device tool): corpus on CUDA vs onnxruntime, GPU tests, CUDA conformance.
# Carried: .whl (onnx-ir 1.1.0, scikit-image) and .gpu_cache/zoo (ONNX files exported here: EfficientNet-Lite0,
# YOLOv8n). torchvision and BERT models are exported there with its own torch.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD/src || exit 1
export GREENRT_CACHE=$PWD/.gpu_cache HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch, onnx, onnxruntime, onnx_ir, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'onnx', onnx.__version__, 'ort', onnxruntime.__version__, 'onnx_ir', onnx_ir.__version__)"
python3 -c "import rich, safetensors, transformers, torchvision, skimage; print('deps ok')" || true
python3 -m pytest -p no:cacheprovider -q -rfE -s -m "gpu or heavy" -k "cuda and not minilm" tests/corpus tests/runtime \
    -o addopts="" 2>&1 | tee $OUT/gpu_tests.log | grep -E "max rel err|passed|failed|FAILED|Error" 
python3 -m greenrt conformance --device cuda --show failed --json $OUT/conformance_cuda.json > $OUT/conformance_cuda.log 2>&1
tail -1 $OUT/conformance_cuda.log
