# Issue 12's CPU comparison, reproducible: build the opt-4 fp32 engines and bench them against onnxruntime and
# OpenVINO (f32 and its bf16 default) in interleaved rounds, batch 1 and 8.
#   bash bench/cpu_rounds.sh [DIR]     (default /tmp/cpu_rounds; engines are reused when present)
#   MODELS="resnet50 minilm" PRECISION=bf16 bash bench/cpu_rounds.sh   (bf16 engines: files named ..._bf16_MODEL)
# Measure on a quiet machine: the load average lands in each JSON's metadata.
set -e
dir=${1:-/tmp/cpu_rounds}
tag=${PRECISION:+${PRECISION}_}  # "" for fp32
flag=${PRECISION:+--$PRECISION}
mkdir -p "$dir"
cd "$(dirname "$0")/.."
text=input_ids,attention_mask,token_type_ids
for m in ${MODELS:-resnet50 mobilenet_v3_large efficientnet_lite0 minilm}; do
  if [[ $m == minilm ]]; then  # sequence 128
    build=$(for n in ${text//,/ }; do printf '%s:1x128/1x128/8x128,' $n; done); bench=${build//\/1x128\/8x128/}
  else
    build=image:1x3x224x224/1x3x224x224/8x3x224x224; bench=
  fi
  if [[ ! -f $dir/$tag$m.engine ]]; then
    .venv/bin/python bench/suite_models.py $m "$dir/$m.onnx"
    .venv/bin/greenrt build "$dir/$m.onnx" -o "$dir/$tag$m.engine" --device cpu --opt-level 4 $flag --shapes "${build%,}" | tail -3
  fi
  .venv/bin/greenrt bench "$dir/$tag$m.engine" --batch 1,8 ${bench:+--shapes "${bench%,}"} \
    --vs onnxruntime,openvino,openvino-bf16 --rounds 10 --json "$dir/cpu_bench_rounds_$tag$m.json"
done
