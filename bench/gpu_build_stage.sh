#!/usr/bin/env bash
# The build stage on the GPU machine (device tool), in two calls that each fit its 64 MiB working-tree limit.
# Results land in $OUT as greenrt-results/1; copy them to bench/results/ under the device's name.
#
#   bash bench/gpu_build_stage.sh exported      carry .whl (onnx-ir 1.1.0) and .gpu_zoo/zoo (EfficientNet-Lite0,
#       YOLOv8n, PP-OCR det/rec/cls exported or copied on the dev machine): GPU tests (torch settings left as found,
#       CUDA-graph engines, builds on CUDA) and the light exported corpus on CUDA (ONNX, fp32 and fp16 engines).
#   bash bench/gpu_build_stage.sh bench         the conformance cases on CUDA (no carried files needed; speed is
#       bench/gpu_suite.sh's, through greenrt bench).
#   bash bench/gpu_build_stage.sh third-party   carry .whl and .gpu_cache/zoo/third_party (the fetched files): the
#       third-party corpus on CUDA (ONNX, fp32 engine and fp16 engine per model) and its GPU tests.
set -uo pipefail
part=${1:?exported or third-party}
if [ "$part" != third-party ]; then export GREENRT_CACHE=$PWD/.gpu_zoo; fi
source bench/gpu_env.sh || exit 1
step() { echo "== $*"; }
if [ "$part" = exported ]; then
    step "GPU tests: runtime, build, exported corpus (light)"
    tests=(python3 -m pytest -p no:cacheprovider -q -rfE -s -o addopts="" -m "gpu and not heavy"
           -k "${GPU_TESTS_K:-not dynamo and not minilm}" tests/runtime tests/build tests/corpus/test_corpus.py)
    timeout 520 "${tests[@]}" > $OUT/gpu_tests.log 2>&1
    grep -E "max rel err|passed|failed|FAILED|^E  " $OUT/gpu_tests.log | cut -c1-300 | tail -40
    python3 bench/corpus_results.py $OUT/gpu_tests.log --device cuda --command "$(printf '%q ' "${tests[@]}")" \
        --outcome "$(grep -E '(passed|failed)' $OUT/gpu_tests.log | tail -1)" --out $OUT/corpus_h200.json | tail -2
elif [ "$part" = bench ]; then
    step "conformance on CUDA"
    timeout 200 python3 bench/conformance_results.py --device cuda --out $OUT/conformance_cuda_h200.json \
        > $OUT/conformance_cuda.log 2>&1
    grep -E "^FAILED" $OUT/conformance_cuda.log | cut -c1-160
    tail -1 $OUT/conformance_cuda.log
else
    step "third-party corpus on CUDA"
    timeout 330 python3 bench/third_party_corpus.py --device cuda --out $OUT/third_party_corpus_h200.json \
        --exclude ddddocr_common --exclude g2p_id_tiny_pron 2>&1 | tail -40
    step "third-party GPU tests"
    timeout 200 python3 -m pytest -p no:cacheprovider -q -rfE -s -o addopts="" -m "gpu and not heavy" \
        -k "not ddddocr" tests/corpus/test_third_party.py > $OUT/third_party_tests.log 2>&1
    grep -E "passed|failed|FAILED|^E  " $OUT/third_party_tests.log | cut -c1-300 | tail -20
fi
