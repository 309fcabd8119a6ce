"""ResNet-50 fp16: greenrt engine vs PyTorch eager fp16 (channels_last) and torch.compile fp16, in one run.

    python bench/resnet50_engine.py --out bench/results/resnet50_fp16_h100.json

Batch-1 latency (median and p99 over CUDA-event-timed replays) and batch-256 throughput over a steady window, with
NVML energy per image; accuracy of the fp16 engine against fp32 eager on the same random inputs. Random weights
(torchvision, seed 0): accuracy here is agreement with fp32, not ImageNet accuracy. Writes greenrt-results/1
(src/greenrt/tools/results.py): one record per runner and batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.energy import EnergyMeter  # noqa: E402
from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

ENGINE, EAGER, COMPILE = "greenrt engine fp16", "torch eager fp16 channels_last", "torch.compile fp16 (reduce-overhead)"


def latency_times_ms(fn, x, warmup=20, iters=200) -> np.ndarray:
    """Per-call device time in ms (CUDA events) of ``iters`` calls after ``warmup``."""
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
    return np.array(times)


def latency_ms(fn, x, warmup=20, iters=200) -> float:
    """Median of latency_times_ms (bench/ppocr_fp16.py times with it too)."""
    return float(np.median(latency_times_ms(fn, x, warmup, iters)))


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
    out = {"items_per_s": n / elapsed, "seconds": elapsed, "items": n, "joules_per_item": None, "watts": None}
    if meter.joules is not None:
        out |= {"joules_per_item": meter.joules / n, "watts": meter.watts}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench/results/resnet50_fp16.json"))
    ap.add_argument("--notes", default="", help="added to the file's metadata.notes")
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

    with torch.inference_mode():
        ref = eager32(xs[0][:32]).float()
        got = sess.run(None, {"image": xs[0][:32]})[0].float()
        e16 = eager(xs[0][:32]).float()

    def agreement(out):
        return {"max_rel_err_vs_fp32": float((out - ref).abs().max() / ref.abs().max()),
                "top1_agreement_vs_fp32": float((out.argmax(1) == ref.argmax(1)).float().mean()),
                "accuracy_items": len(ref)}

    # accuracy next to every fp16 figure; torch.compile's is not measured (null says so)
    accuracy = {ENGINE: agreement(got), EAGER: agreement(e16)}
    print("accuracy:", accuracy)

    runners = {ENGINE: ours, EAGER: eager}
    one_time = {ENGINE: {"build_s": build_s}}
    if args.compile:
        t0 = time.perf_counter()
        compiled = torch.compile(eager16, mode="reduce-overhead")

        def comp(x):
            with torch.inference_mode():
                return compiled(x.half().contiguous(memory_format=torch.channels_last))

        comp(x1), comp(x1), comp(xs[0]), comp(xs[0])
        torch.cuda.synchronize()
        one_time[COMPILE] = {"compile_s": time.perf_counter() - t0}
        runners[COMPILE] = comp

    records = []
    for name, fn in runners.items():
        times = latency_times_ms(fn, x1)
        tp = throughput(fn, xs)
        common = accuracy.get(name, {"max_rel_err_vs_fp32": None, "top1_agreement_vs_fp32": None})
        common |= one_time.get(name, {})
        records.append(make_record("resnet50", name, "fp16", 1, "cuda", latency_ms_p50=float(np.median(times)),
                                   latency_ms_p99=float(np.percentile(times, 99)), **common))
        records.append(make_record("resnet50", name, "fp16", bb, "cuda", items_per_s=tp["items_per_s"],
                                   joules_per_item=tp["joules_per_item"], watts=tp["watts"], seconds=tp["seconds"],
                                   items=tp["items"], **common))
        mj = 1e3 * tp["joules_per_item"] if tp["joules_per_item"] is not None else float("nan")
        print(f"{name:40s} b1 {np.median(times):7.3f} ms   b{bb} {tp['items_per_s']:9.0f} img/s  {mj:6.1f} mJ/img")

    # ratios of this run only: the validator recomputes them from the records
    others = [name for name in runners if name != ENGINE]
    records[0]["latency_speedup_vs"] = {o: _ratio(records, o, 1, "latency") for o in others}
    records[1]["throughput_ratio_vs"] = {o: _ratio(records, o, bb, "throughput") for o in others}
    print("ratios:", {k: round(v, 3) for r in records[:2] for k, v in
                      (r.get("latency_speedup_vs") or r.get("throughput_ratio_vs")).items()})
    notes = ("batch 1: latency over 200 CUDA-event-timed calls after 20 warm-up calls; batch "
             f"{bb}: throughput over a ~4 s steady window (3 random batches in turn) with NVML energy "
             "(joules_per_item; watts = joules / seconds of that window). Accuracy: fp16 logits against fp32 torch "
             "eager on accuracy_items random images (the same for both batches of a runner). build_s: greenrt engine "
             "build; compile_s: torch.compile compile and warm-up. " + args.notes).strip()
    meta = collect_metadata(command_line(), device="cuda", notes=notes,
                            weights="torchvision resnet50, random init (seed 0)")
    print("wrote", write_results(args.out, meta, records))
    return 0


def _ratio(records, other, batch, kind) -> float:
    ours = next(r for r in records if r["runner"] == ENGINE and r["batch"] == batch)
    base = next(r for r in records if r["runner"] == other and r["batch"] == batch)
    if kind == "latency":
        return base["latency_ms_p50"] / ours["latency_ms_p50"]
    return ours["items_per_s"] / base["items_per_s"]


if __name__ == "__main__":
    sys.exit(main())
