"""ResNet-50 fp16: greenrt engine vs PyTorch eager fp16 (channels_last) and torch.compile fp16, in one run.

    python bench/resnet50_engine.py --out results/resnet50_fp16_h100.json

Batch-1 latency (median over CUDA-event-timed replays) and batch-256 throughput over a steady window, with
NVML energy per image; accuracy of the fp16 engine against fp32 eager on the same random inputs. Random weights
(torchvision, seed 0): accuracy here is agreement with fp32, not ImageNet accuracy.
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

from greenrt.tools.energy import EnergyMeter  # noqa: E402


def latency_ms(fn, x, warmup=20, iters=200) -> float:
    for _ in range(warmup):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def throughput(fn, inputs, seconds=4.0) -> dict:
    for x in inputs[:2]:
        fn(x)
    torch.cuda.synchronize()
    n = 0
    with EnergyMeter("cuda") as meter:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for x in inputs:
                fn(x)
                n += x.shape[0]
        torch.cuda.synchronize()
    elapsed = meter.seconds
    out = {"items_per_s": n / elapsed, "seconds": elapsed, "items": n}
    if meter.joules is not None:
        out |= {"mJ_per_item": 1e3 * meter.joules / n, "watts": meter.watts}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench/results/resnet50_fp16.json"))
    ap.add_argument("--big-batch", type=int, default=256)
    ap.add_argument("--compile", action="store_true", default=True)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    args = ap.parse_args()

    import torchvision

    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile
    from greenrt.zoo.export import export_onnx

    work = Path("/tmp/greenrt_bench")
    work.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    onnx_path = export_onnx(model, (torch.randn(1, 3, 224, 224),), work / "resnet50.onnx", ["image"], ["logits"],
                            {"image": {0: "batch"}}, dynamo=False)
    bb = args.big_batch
    t0 = time.perf_counter()
    profile = parse_profile(f"image:1x3x224x224/{bb}x3x224x224/{bb}x3x224x224")
    build_engine(onnx_path, work / "resnet50_fp16.engine",
                 BuildConfig(device="cuda", precision="fp16", profiles=[profile]), log=lambda m: print("  build:", m))
    build_s = time.perf_counter() - t0
    sess = greenrt.InferenceSession(work / "resnet50_fp16.engine")

    eager32 = model.cuda()
    eager16 = torchvision.models.resnet50(weights=None)
    eager16.load_state_dict(model.state_dict())
    eager16 = eager16.eval().cuda().half().to(memory_format=torch.channels_last)

    gen = torch.Generator(device="cuda").manual_seed(1)
    x1 = torch.randn(1, 3, 224, 224, device="cuda", generator=gen)
    xs = [torch.randn(bb, 3, 224, 224, device="cuda", generator=gen) for _ in range(3)]

    def ours(x):
        return sess.run_device({"image": x})[0]

    def eager(x):
        with torch.inference_mode():
            return eager16(x.half().contiguous(memory_format=torch.channels_last))

    results = {"rows": []}
    with torch.inference_mode():
        ref = eager32(xs[0][:32]).float()
        got = sess.run(None, {"image": xs[0][:32]})[0].float()
        e16 = eager(xs[0][:32]).float()
    accuracy = {
        "engine_fp16_max_rel_err_vs_fp32": float((got - ref).abs().max() / ref.abs().max()),
        "engine_fp16_top1_agreement_vs_fp32": float((got.argmax(1) == ref.argmax(1)).float().mean()),
        "eager_fp16_max_rel_err_vs_fp32": float((e16 - ref).abs().max() / ref.abs().max()),
        "eager_fp16_top1_agreement_vs_fp32": float((e16.argmax(1) == ref.argmax(1)).float().mean()),
    }
    print("accuracy:", accuracy)

    runners = {"greenrt engine fp16": ours, "torch eager fp16 channels_last": eager}
    compile_s = None
    if args.compile:
        t0 = time.perf_counter()
        compiled = torch.compile(eager16, mode="reduce-overhead")

        def comp(x):
            with torch.inference_mode():
                return compiled(x.half().contiguous(memory_format=torch.channels_last))

        comp(x1), comp(x1), comp(xs[0]), comp(xs[0])
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
        runners["torch.compile fp16 (reduce-overhead)"] = comp

    for name, fn in runners.items():
        lat = latency_ms(fn, x1)
        tp = throughput(fn, xs)
        row = {"runner": name, "batch1_latency_ms": lat, f"batch{bb}": tp}
        results["rows"].append(row)
        print(f"{name:40s} b1 {lat:7.3f} ms   b{bb} {tp['items_per_s']:9.0f} img/s  "
              f"{tp.get('mJ_per_item', float('nan')):6.1f} mJ/img")

    by = {r["runner"]: r for r in results["rows"]}
    base = by["torch eager fp16 channels_last"]
    ours_row = by["greenrt engine fp16"]
    ratios = {"b1_speedup_vs_eager": base["batch1_latency_ms"] / ours_row["batch1_latency_ms"],
              f"b{bb}_throughput_vs_eager": ours_row[f"batch{bb}"]["items_per_s"] / base[f"batch{bb}"]["items_per_s"]}
    if "torch.compile fp16 (reduce-overhead)" in by:
        c = by["torch.compile fp16 (reduce-overhead)"]
        ratios["b1_speedup_vs_compile"] = c["batch1_latency_ms"] / ours_row["batch1_latency_ms"]
        ratios[f"b{bb}_throughput_vs_compile"] = ours_row[f"batch{bb}"]["items_per_s"] / c[f"batch{bb}"]["items_per_s"]
    import triton

    results |= {
        "accuracy": accuracy,
        "ratios": ratios,
        "build_seconds": build_s,
        "compile_seconds": compile_s,
        "device": torch.cuda.get_device_name(),
        "driver": _driver(),
        "versions": {"torch": torch.__version__, "triton": triton.__version__, "greenrt": greenrt.__version__,
                     "python": platform.python_version(), "cuda": torch.version.cuda},
        "batch": [1, bb],
        "precision": "fp16",
        "weights": "torchvision resnet50, random init (seed 0)",
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("ratios:", {k: round(v, 3) for k, v in ratios.items()})
    return 0


def _driver() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlSystemGetDriverVersion()
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
