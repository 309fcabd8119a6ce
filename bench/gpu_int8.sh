# The INT8 checks and measurements on the GPU machine (issues 10 and 11), one device call:
#   bash bench/gpu_int8.sh [tests|probe|engine|bench ...]     (carry .whl: onnx-ir and nvidia-cudnn-frontend)
# tests:  the INT8 GPU tests (the reference on CUDA, QConv's cuDNN plans and QMatMul's int-mm against it, 8-bit
#         MaxPool);
# probe:  bench/probes/cudnn_int8_conv.py at batch 256 (every plan of nine ResNet-50 convs vs torch fp16);
# engine: ResNet-50 (random weights) built as an INT8 + fp16 engine at --opt-level 1 for batch 1..256, its build log
#         timestamped (the build's stages and the tactic stage's cost), the tactics it chose, its timing cache;
# bench:  `greenrt bench` of that engine against torch eager and torch.compile fp16 at batch 1 and 256 (JSON + plot);
# bert:   BERT-base (random weights, sequence 128) built INT8 + fp16 for batch 1..64 and benched the same way.
# Everything lands under $OUT; each part under its own timeout so that one slow part leaves the others' results.
source bench/gpu_env.sh || exit 1
export PYTHONPATH=$PYTHONPATH:$PWD
mkdir -p "$OUT"
parts=${*:-tests probe engine bench}
quiet() { grep --line-buffered -v '^Warning: CUDNN\|^$\|engineId\|^)$'; }  # cuDNN's notes on the engines it cannot use
stamp() { while IFS= read -r line; do printf '%6ss %s\n' "$SECONDS" "$line"; done; }

if [[ " $parts " == *" tests "* ]]; then
    timeout 150 python3 -m pytest -q -m gpu tests/ops/test_int8_cudnn.py tests/ops/test_int8_gemm.py \
        tests/ops/test_int8_ops.py tests/build/test_int8_build.py -p no:cacheprovider --tb=line ${TESTS_K:+-k "$TESTS_K"} 2>&1 | quiet | tail -25
fi
if [[ " $parts " == *" probe "* ]]; then
    timeout 150 python3 bench/probes/cudnn_int8_conv.py --batch 256 --out "$OUT/cudnn_int8_conv_b256.json" 2>&1 \
        | quiet | tail -12
fi
if [[ " $parts " == *" engine "* ]]; then
    timeout ${ENGINE_S:-300} python3 - <<'EOF' 2>&1 | quiet | stamp | tail -70
import os, time, numpy as np, onnx
from greenrt.build import BuildConfig, build_engine
from greenrt.plan.profiles import parse_profile
from greenrt.plan.engine_file import read_engine
from greenrt.zoo import vision
out = os.environ["OUT"]
path = vision.export_torchvision("resnet50")
name = onnx.load(str(path), load_external_data=False).graph.input[0].name
rng = np.random.default_rng(0)
np.savez("/tmp/calib.npz", **{name: rng.standard_normal((32, 3, 224, 224)).astype(np.float32)})
prof = [parse_profile(f"{name}:1x3x224x224/256x3x224x224/256x3x224x224")]
t0 = time.time()
import greenrt.build.tactics as stage
_time = stage._time_candidates
def _timed(step, found, *a):  # each timed layer's cost, as it happens
    t = time.time(); choice = _time(step, found, *a)
    print(f"  {time.time() - t0:5.0f}s {step.name}: {len(found)} candidates, {time.time() - t:.1f} s, {choice.winner}", flush=True)
    return choice
stage._time_candidates = _timed
build_engine(path, f"{out}/resnet50_int8.engine", BuildConfig(
    device="cuda", profiles=prof, opt_level=1, precision="fp16", int8=True, calib="/tmp/calib.npz",
    calib_cache=f"{out}/resnet50_calib.json", timing_cache=f"{out}/resnet50_int8_timing.json"),
    log=lambda m: print(m[:160], flush=True))
tactics = {}
for s in read_engine(f"{out}/resnet50_int8.engine").plan.steps:
    if s.op_type in ("QConv", "QMatMul"):
        tactics[s.tactic or "default"] = tactics.get(s.tactic or "default", 0) + 1
print(f"resnet50 int8 build {time.time() - t0:.0f} s, tactics {tactics}", flush=True)
EOF
fi
if [[ " $parts " == *" bench "* && -f "$OUT/resnet50_int8.engine" ]]; then
    timeout ${BENCH_S:-300} python3 -m greenrt.tools.cli bench "$OUT/resnet50_int8.engine" --batch 1,256 --vs eager,torch-compile \
        --torch-module bench.suite_models:resnet50 --json "$OUT/bench_resnet50_int8.json" \
        --plot "$OUT/bench_resnet50_int8.png" 2>&1 | quiet | tail -20
    rm -f "$OUT/resnet50_int8.engine"  # 25 MB: rebuilt from the caches in seconds
fi
if [[ " $parts " == *" bert "* ]]; then
    timeout 420 python3 - <<'EOF' 2>&1 | quiet | stamp | tail -30
import os, time, numpy as np
from greenrt.build import BuildConfig, build_engine
from greenrt.plan.profiles import parse_profile
from greenrt.zoo import text
out = os.environ["OUT"]
path = text.export_bert_base()
rng = np.random.default_rng(0)
np.savez("/tmp/bert_calib.npz", input_ids=rng.integers(0, 30522, (32, 128)).astype(np.int64),
         attention_mask=np.ones((32, 128), np.int64), token_type_ids=rng.integers(0, 2, (32, 128)).astype(np.int64))
prof = [parse_profile(",".join(f"{n}:1x128/64x128/64x128" for n in ("input_ids", "attention_mask", "token_type_ids")))]
t0 = time.time()
build_engine(path, f"{out}/bert_int8.engine", BuildConfig(
    device="cuda", profiles=prof, opt_level=1, precision="fp16", int8=True, calib="/tmp/bert_calib.npz",
    calib_cache=f"{out}/bert_calib.json", timing_cache=f"{out}/bert_int8_timing.json"),
    log=lambda m: print(m[:160], flush=True))
print(f"bert int8 build {time.time() - t0:.0f} s", flush=True)
EOF
    [[ -f "$OUT/bert_int8.engine" ]] && timeout 240 python3 -m greenrt.tools.cli bench "$OUT/bert_int8.engine" \
        --batch 1,64 --vs eager,torch-compile --torch-module bench.suite_models:bert_base \
        --shapes input_ids:1x128,attention_mask:1x128,token_type_ids:1x128 --json "$OUT/bench_bert_int8.json" 2>&1 \
        | quiet | tail -20
    rm -f "$OUT/bert_int8.engine"
fi
