"""The main job on the embedded default: EfficientNet-Lite0 (real ImageNet weights) on scikit-image photos.

It builds a greenrt engine for the model and runs the photos through that engine, through the unoptimized
ONNX graph in greenrt, and through onnxruntime: answers, agreement, error, batch-1 latency and energy side by side.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ..zoo import cache_dir
from ..zoo import efficientnet_lite as e
from .compare import compare_arrays
from .energy import energy_counter, run_window

console = Console()


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def run_demo(device: str = "cpu", repeats: int = 10, precision: str = "fp32") -> int:
    import onnxruntime as ort

    import greenrt
    from ..build import BuildConfig, build_engine
    from ..plan.profiles import parse_profile

    console.print("[bold]greenrt demo[/bold]: EfficientNet-Lite0 (ImageNet weights) on scikit-image photos")
    path = e.export()
    labels = e.imagenet_labels()
    photos = e.photos()
    batch = np.concatenate([e.preprocess(img) for img in photos.values()])
    n = len(photos)

    engine_path = cache_dir() / f"efficientnet_lite0_{device}_{precision}.engine"
    profile = parse_profile(f"image:1x3x224x224/{n}x3x224x224/{max(n, 8)}x3x224x224")
    t0 = time.perf_counter()
    with console.status("building the engine"):
        header = build_engine(path, engine_path, BuildConfig(device=device, precision=precision, profiles=[profile]),
                              log=lambda m: None)
    build_s = time.perf_counter() - t0
    nodes = header["report"]["nodes"]
    console.print(f"built {engine_path.name} in {build_s:.1f} s: {nodes['before']} ONNX nodes -> "
                  f"{nodes['after']} after graph passes, {precision}", highlight=False)

    engine = greenrt.InferenceSession(engine_path, device=device)
    plain = greenrt.InferenceSession(path, device=device)
    ort_sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.from_numpy(batch).to(device)
    ours = engine.run(None, {"image": x})[0].float().cpu().numpy()
    ref = ort_sess.run(None, {"image": batch})[0]

    table = Table(title=f"top-1 per photo: greenrt engine ({device}, {precision}) vs onnxruntime (cpu, fp32)")
    for col in ("photo", "greenrt engine", "onnxruntime", "agree"):
        table.add_column(col)
    agree = 0
    for i, name in enumerate(photos):
        a, b = int(ours[i].argmax()), int(ref[i].argmax())
        agree += a == b
        table.add_row(name, f"{labels[a]} ({a})", f"{labels[b]} ({b})", "yes" if a == b else "[red]NO[/red]")
    console.print(table)
    tolerance = 1e-4 if precision == "fp32" else 1e-2
    report = compare_arrays("logits", ours, ref, rtol=tolerance, atol=0.0)

    x1, x1_dev = batch[:1], x[:1].contiguous()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    counter = energy_counter(device)

    def timed(fn, energy_counter=counter):
        fn()  # warm-up (and CUDA-graph capture for the engine)
        ms = _median_ms(lambda: (fn(), sync()), repeats)
        # energy over its own window, long enough for the counter (NVML updates every ~20-100 ms: ten
        # sub-millisecond runs would read mostly its quantization)
        window = run_window(lambda i: fn(), sync, energy_counter, duration_s=0.0)
        if window.joules is None:
            return ms, f"n/a: {window.reason}"
        return ms, f"{window.joules / window.calls:.4f} ({window.calls} runs over {window.seconds:.1f} s)"

    rows = [
        ("greenrt engine", device, *timed(lambda: engine.run_device({"image": x1_dev}))),
        ("greenrt, ONNX as-is (interpreted)", device, *timed(lambda: plain.run(None, {"image": x1_dev}))),
        ("onnxruntime", "cpu", *timed(lambda: ort_sess.run(None, {"image": x1}), energy_counter("cpu"))),
    ]
    perf = Table(title="batch-1 latency (median of %d) and energy per inference" % repeats)
    for col in ("runtime", "device", "latency ms", "energy J/inference"):
        perf.add_column(col)
    for name, dev, ms, energy in rows:
        perf.add_row(name, dev, f"{ms:.2f}", energy)
    console.print(perf)
    verdict = "match" if report.ok else "MISMATCH"
    console.print(
        f"top-1 agreement {agree}/{n}; logits max rel err vs onnxruntime {report.max_rel:.2e} "
        f"(tolerance {tolerance:g}): [bold]{verdict}[/bold]"
    )
    return 0 if report.ok and agree == n else 1
