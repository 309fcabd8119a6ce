"""EfficientNet-Lite0 fp32 engine on the CPU, batch 1: NCHW vs channels-last, with and without the fused oneDNN
conv call, against onnxruntime, in one process with alternating rounds (the box's speed drifts; compare within a
round).

    python bench/cpu_engine_ab.py --out bench/results/cpu_engine_ab.json

Writes greenrt-results/1 (src/greenrt/tools/results.py): one record per variant with each round's median
(rounds_ms), the median of those (latency_ms_p50) and the median per-round ratio to NCHW unfused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

BASE = "greenrt engine nchw unfused"


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
    variants = {"greenrt engine nchw unfused": ("nchw", False), "greenrt engine nhwc unfused": ("nhwc", False),
                "greenrt engine nhwc oneDNN fused": ("nhwc", True)}
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
    base = np.array(rows[BASE])
    records = []
    for name, v in rows.items():
        extra = {"max_rel_err_vs_onnxruntime": errors[name]} if name in errors else {}
        ratio = float(np.median(np.array(v) / base))
        records.append(make_record("efficientnet_lite0", name, "fp32", 1, "cpu", latency_ms_p50=float(np.median(v)),
                                   rounds_ms=v, round_latency_ratio_vs={BASE: ratio}, weights="ImageNet", **extra))
        err = f", max rel err vs onnxruntime {errors[name]:.2e}" if name in errors else ""
        print(f"{name:32s} {np.median(v):7.2f} ms  (x{ratio:.3f} of NCHW unfused){err}")
    notes = (f"{args.rounds} alternating rounds in one process; rounds_ms: each round's median of {args.runs} runs; "
             "latency_ms_p50: the median of those round medians; round_latency_ratio_vs: the median of the per-round "
             "ratios (the box's speed drifts: compare within a round). onnxruntime: CPUExecutionProvider, same input.")
    meta = collect_metadata(command_line(), device="cpu", notes=notes)
    print("wrote", write_results(args.out, meta, records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
