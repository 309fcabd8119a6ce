#!/usr/bin/env bash
# `greenrt bench` on the GPU machine (device tool; carry .whl): its gpu test, then ResNet-50 fp16 end to end with
# the command a user would type, against torch eager, eager + CUDA graph and torch.compile of the same module.
set -uo pipefail
source bench/gpu_env.sh || exit 1
timeout 60 python3 -m pytest -p no:cacheprovider -q -rfE -o addopts="" -m gpu tests/tools/test_bench.py 2>&1 | tail -3
python3 bench/suite_models.py resnet50 /tmp/resnet50.onnx
python3 -m greenrt build /tmp/resnet50.onnx -o /tmp/resnet50.engine --device cuda --fp16 \
    --shapes image:1x3x224x224/256x3x224x224/256x3x224x224 2>&1 | tail -2
export PYTHONPATH=$PYTHONPATH:$PWD
timeout 300 python3 -m greenrt bench /tmp/resnet50.engine --batch 1,256 --duration 3 --vs onnxruntime,eager,eager-cudagraph,torch-compile \
    --torch-module bench.suite_models:resnet50 --json $OUT/bench_resnet50_fp16_h200.json \
    --plot $OUT/bench_resnet50_fp16_h200.png 2>&1 | tail -30
