#!/usr/bin/env bash
# Engine checks and benchmarks on the GPU machine: remaining corpus models on CUDA, fp16/bf16 accuracy on real
# photo crops, and ResNet-50 fp16 engine vs PyTorch eager and torch.compile. Results land in $OUT as
# greenrt-results/1 JSON (src/greenrt/tools/results.py).
set -uo pipefail
source bench/gpu_env.sh || exit 1
tests=(python3 -m pytest -p no:cacheprovider -q -rfE -s -o addopts="" -m gpu
       -k "${GPU_TESTS_K:-cuda and bert_base and not dynamo}" tests/corpus)
"${tests[@]}" 2>&1 | tee $OUT/corpus_cuda.log | grep -E "max rel err|passed|failed|^E  " | grep -v dynamo | cut -c1-400
python3 bench/corpus_results.py $OUT/corpus_cuda.log --device cuda --command "$(printf '%q ' "${tests[@]}")" \
    --outcome "$(grep -E '(passed|failed)' $OUT/corpus_cuda.log | tail -1)" --out $OUT/corpus_engine_cuda.json
python3 bench/fp16_accuracy.py --device cuda --out $OUT/efficientnet_lite0_precision_h100.json 2>&1 | tail -4
python3 bench/resnet50_engine.py --out $OUT/resnet50_fp16_h100.json 2>&1 | grep -v "^  build" | tail -13
