# The INT8 checks and first measurements on the GPU machine (issues 10 and 11), one device call:
#   bash bench/gpu_int8.sh        (carry .whl: onnx-ir and nvidia-cudnn-frontend)
# 1. the INT8 GPU tests (the reference on CUDA, QConv's cuDNN graph plans against it);
# 2. bench/probes/cudnn_int8_conv.py at batch 256 (JSON under $OUT);
# 3. ResNet-50 (random weights, the suite's) as an fp16 engine and as an INT8 engine at --opt-level 1 (the tactic
#    stage picks a cuDNN plan or the reference per conv), each timed in a loop of InferenceSession.run at batch 64.
source bench/gpu_env.sh || exit 1
export PYTHONPATH=$PYTHONPATH:$PWD
mkdir -p "$OUT"
quiet() { grep -v '^Warning: CUDNN\|^$\|engineId\|^)$'; }  # cuDNN's notes on the engines it cannot use
timeout 120 python3 -m pytest -q -m gpu tests/ops/test_int8_cudnn.py tests/ops/test_int8_gemm.py tests/build/test_int8_build.py -p no:cacheprovider 2>&1 | quiet | tail -25
timeout 150 python3 bench/probes/cudnn_int8_conv.py --batch 256 --out "$OUT/cudnn_int8_conv_b256.json" 2>&1 | quiet | tail -12

timeout 240 python3 - <<'EOF' 2>&1 | quiet | tail -30
import time, numpy as np, torch
import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.plan.profiles import parse_profile
from greenrt.plan.engine_file import read_engine
from greenrt.zoo import vision
path = vision.export_torchvision("resnet50")
import onnx
name = onnx.load(str(path), load_external_data=False).graph.input[0].name
rng = np.random.default_rng(0)
np.savez("/tmp/calib.npz", **{name: rng.standard_normal((32, 3, 224, 224)).astype(np.float32)})
prof = [parse_profile(f"{name}:1x3x224x224/64x3x224x224/64x3x224x224")]
x = torch.randn(64, 3, 224, 224, device="cuda")
for label, kw in (("fp16", dict(precision="fp16")), ("int8+fp16", dict(precision="fp16", int8=True, calib="/tmp/calib.npz"))):
    t0 = time.time()
    build_engine(path, f"/tmp/r50_{label}.engine", BuildConfig(device="cuda", profiles=prof, opt_level=1, **kw), log=lambda m: None)
    steps = read_engine(f"/tmp/r50_{label}.engine").plan.steps
    tactics = {}
    for s in steps:
        if s.op_type in ("QConv", "FusedConv"):
            tactics[s.tactic or "default"] = tactics.get(s.tactic or "default", 0) + 1
    sess = greenrt.InferenceSession(f"/tmp/r50_{label}.engine", device="cuda")
    for _ in range(3):
        sess.run(None, {name: x})
    torch.cuda.synchronize(); a = time.perf_counter()
    for _ in range(10):
        sess.run(None, {name: x})
    torch.cuda.synchronize(); dt = (time.perf_counter() - a) / 10
    print(f"resnet50 {label}: build {time.time() - t0:.0f} s, {64 / dt:,.0f} img/s at batch 64, tactics {tactics}")
EOF
