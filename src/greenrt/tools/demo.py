"""The main job on the embedded default: EfficientNet-Lite0 (real ImageNet weights) on scikit-image photos,
through greenrt and through onnxruntime, side by side: answers, agreement, error, speed and energy.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ..zoo import efficientnet_lite as e
from .compare import compare_arrays, run_onnxruntime
from .energy import EnergyMeter

console = Console()


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def run_demo(device: str = "cpu", repeats: int = 10) -> int:
    import onnxruntime as ort

    import greenrt

    console.print("[bold]greenrt demo[/bold]: EfficientNet-Lite0 (ImageNet weights) on scikit-image photos")
    path = e.export()
    labels = e.imagenet_labels()
    photos = e.photos()
    batch = np.concatenate([e.preprocess(img) for img in photos.values()])

    session = greenrt.InferenceSession(path, device=device)
    ours = session.run(None, {"image": torch.from_numpy(batch).to(device)})[0].float().cpu().numpy()
    ref = run_onnxruntime(str(path), {"image": batch})[0]

    table = Table(title=f"top-1 per photo: greenrt ({device}) vs onnxruntime (cpu)")
    for col in ("photo", "greenrt", "onnxruntime", "agree"):
        table.add_column(col)
    agree = 0
    for i, name in enumerate(photos):
        a, b = int(ours[i].argmax()), int(ref[i].argmax())
        agree += a == b
        table.add_row(name, f"{labels[a]} ({a})", f"{labels[b]} ({b})", "yes" if a == b else "[red]NO[/red]")
    console.print(table)
    report = compare_arrays("logits", ours, ref, rtol=1e-4, atol=0.0)

    # speed: batch-1 latency, median of `repeats` after one warm-up, same inputs for both runtimes
    x1 = batch[:1]
    x1_dev = torch.from_numpy(x1).to(device)
    ort_sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def ours_once():
        session.run(None, {"image": x1_dev})
        sync()

    ours_once()
    ort_sess.run(None, {"image": x1})
    with EnergyMeter(device) as meter:
        ours_ms = _median_ms(ours_once, repeats)
    ort_ms = _median_ms(lambda: ort_sess.run(None, {"image": x1}), repeats)

    perf = Table(title="batch-1 latency (median) and energy")
    for col in ("runtime", "device", "latency ms", "energy J/inference"):
        perf.add_column(col)
    energy = f"{meter.joules / repeats:.3f}" if meter.joules is not None else f"n/a: {meter.reason}"
    perf.add_row("greenrt (interpreted, unoptimized)", device, f"{ours_ms:.1f}", energy)
    perf.add_row("onnxruntime", "cpu", f"{ort_ms:.1f}", "n/a: no energy counter for the CPU")
    console.print(perf)
    verdict = "match" if report.ok else "MISMATCH"
    console.print(
        f"top-1 agreement {agree}/{len(photos)}; logits max rel err {report.max_rel:.2e} "
        f"(tolerance 1e-4): [bold]{verdict}[/bold]"
    )
    return 0 if report.ok and agree == len(photos) else 1
