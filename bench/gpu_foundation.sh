#!/usr/bin/env bash
# Foundation + engine checks on the GPU machine (device tool): the corpus on CUDA vs onnxruntime, GPU tests
# (session, CUDA-graph engine), and the conformance suite on CUDA. Results land in $OUT as greenrt-results/1
# (corpus_cuda.json, conformance_cuda.json; copy them to bench/results/ under the device's name).
# Carried: .whl (onnx-ir 1.1.0, scikit-image, lazy-loader) and .gpu_cache/zoo (ONNX files exported on the dev
# machine: EfficientNet-Lite0, YOLOv8n, PP-OCR det/rec/cls). torchvision and BERT are exported there.
set -uo pipefail
source bench/gpu_env.sh || exit 1
tests=(python3 -m pytest -p no:cacheprovider -q -rfE -s -o addopts="" -m gpu -k "${GPU_TESTS_K:-not dynamo and not minilm}"
       tests/corpus tests/runtime tests/plan)
"${tests[@]}" 2>&1 | tee $OUT/gpu_tests.log | grep -E "max rel err|passed|failed|FAILED|Error"
python3 bench/corpus_results.py $OUT/gpu_tests.log --device cuda --command "$(printf '%q ' "${tests[@]}")" \
    --outcome "$(grep -E '(passed|failed)' $OUT/gpu_tests.log | tail -1)" --out $OUT/corpus_cuda.json
python3 bench/conformance_results.py --device cuda --out $OUT/conformance_cuda.json > $OUT/conformance_cuda.log 2>&1
grep -E "^FAILED" $OUT/conformance_cuda.log | cut -c1-160
tail -1 $OUT/conformance_cuda.log
