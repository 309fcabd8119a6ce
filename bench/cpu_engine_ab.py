"""EfficientNet-Lite0 fp32 engine on the CPU, batch 1: NCHW vs channels-last, with and without the fused oneDNN
conv call, against onnxruntime, in one process with alternating rounds (the box's speed drifts; compare within a
round).

    python bench/cpu_engine_ab.py --out bench/results/cpu_engine_ab.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _median_ms(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main() -> int:
    import onnxruntime as ort

    import greenrt
    from greenrt.ops import fused
    from greenrt.build import BuildConfig, build_engine
    from greenrt.zoo import efficientnet_lite as e

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--out", default=str(ROOT / "bench/results/cpu_engine_ab.json"))
    args = ap.parse_args()

    path = e.export()
    x = e.preprocess(e.photos()["chelsea"])
    sessions = {}
    for layout, channels_last in (("nchw", False), ("nhwc", True)):
        engine = Path(f"/tmp/effl0_{layout}.engine")
        build_engine(path, engine, BuildConfig(device="cpu", channels_last=channels_last), log=lambda m: None)
        sessions[layout] = greenrt.InferenceSession(engine)
    ort_sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = ort_sess.run(None, {"image": x})[0]
    variants = {"nchw unfused": ("nchw", False), "nhwc unfused": ("nhwc", False), "nhwc oneDNN fused": ("nhwc", True)}
    rows: dict[str, list[float]] = {name: [] for name in [*variants, "onnxruntime"]}
    errors = {}
    for _ in range(args.rounds):
        for name, (layout, use_onednn) in variants.items():
            fused._ONEDNN["ok"] = use_onednn
            sess = sessions[layout]
            rows[name].append(_median_ms(lambda: sess.run(None, {"image": x}), args.runs))
            out = sess.run(None, {"image": x})[0]
            errors[name] = float(np.abs(out - ref).max() / np.abs(ref).max())
        rows["onnxruntime"].append(_median_ms(lambda: ort_sess.run(None, {"image": x}), args.runs))
    fused._ONEDNN["ok"] = True
    base = np.array(rows["nchw unfused"])
    summary = {name: {"median_ms": float(np.median(v)), "per_round_ratio_vs_nchw_unfused": float(np.median(np.array(v) / base))}
               for name, v in rows.items()}
    for name, s in summary.items():
        err = f", max rel err vs onnxruntime {errors[name]:.2e}" if name in errors else ""
        print(f"{name:20s} {s['median_ms']:7.2f} ms  (x{s['per_round_ratio_vs_nchw_unfused']:.3f} of NCHW unfused){err}")
    Path(args.out).write_text(json.dumps({
        "device": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__, "onnxruntime": ort.__version__, "greenrt": greenrt.__version__,
        "model": "efficientnet_lite0 (ImageNet weights)", "batch": 1, "precision": "fp32",
        "command": "python " + " ".join(sys.argv), "summary": summary, "rounds_ms": rows,
        "max_rel_err_vs_onnxruntime": errors}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
