"""The main job on the embedded default: EfficientNet-Lite0 (real ImageNet weights) on scikit-image photos.

It builds a greenrt engine for the model (on the CPU at --opt-level 4, where Inductor's compiled graph is a candidate
kept only where it times faster) and runs the photos through it and through onnxruntime: answers, agreement, error;
then `greenrt bench`'s stage times the engine against onnxruntime (default and best session options) and OpenVINO
where installed, in interleaved rounds in this process: batch-1 latency, throughput and energy side by side.
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

console = Console()


def run_demo(device: str = "cpu", precision: str = "fp32", opt_level: int | None = None,
             duration_s: float | None = None) -> int:
    import onnxruntime as ort

    import greenrt
    from ..build import BuildConfig, build_engine
    from ..build.config import DEFAULT_OPT_LEVEL
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
        if opt_level is None:  # on the CPU the compiled path (Inductor, kept only where it times faster)
            opt_level = 4 if device == "cpu" else DEFAULT_OPT_LEVEL
        header = build_engine(path, engine_path, BuildConfig(device=device, precision=precision, profiles=[profile],
                                                             opt_level=opt_level), log=lambda m: None)
    build_s = time.perf_counter() - t0
    nodes = header["report"]["nodes"]
    compiled = header["plan"].get("compiled") == "inductor"
    console.print(f"built {engine_path.name} in {build_s:.1f} s: {nodes['before']} ONNX nodes -> "
                  f"{nodes['after']} after graph passes, {precision}, --opt-level {opt_level}"
                  f"{', compiled by Inductor (it timed faster than the executor)' if compiled else ''}",
                  highlight=False)

    engine = greenrt.InferenceSession(engine_path, device=device)
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

    inner = getattr(engine.runner, "_inner", None)
    first = list(getattr(inner, "compile_seconds", {}).values())
    if first:  # a compiled engine: its first run compiled it (or loaded the code compiled by an earlier run)
        warm = list(inner.compile_cache_warm.values())[:1] == [True]
        console.print(f"engine runs compiled by Inductor: first run {first[0]:.1f} s "
                      f"({'warm compiled-code cache' if warm else 'cold: compiled now, cached for later runs'})",
                      highlight=False)

    # batch-1 latency, throughput and energy through `greenrt bench`'s stage: the runners timed in interleaved
    # rounds in this process, the same thread count for all, onnxruntime with its default and its best session
    # options (and OpenVINO where installed)
    from .bench import BenchConfig, results_table, run_bench

    vs = ["onnxruntime"] + (["openvino"] if device == "cpu" else [])
    with console.status("timing greenrt against the baselines (interleaved rounds)"):
        records, _ = run_bench(BenchConfig(model=str(engine_path), device=device, batches=[1], vs=vs,
                                           reference=str(path), duration_s=duration_s))
    console.print(results_table(records))
    for ours in (r for r in records if r["runner"].startswith("greenrt") and r.get("headline_vs")):
        ratio = ours.get("round_latency_ratio_vs", {}).get(ours["headline_vs"])
        if ratio:
            console.print(f"greenrt's batch-1 latency is {ratio:.2f}x {ours['headline_vs']}'s (median of the "
                          "per-round ratios; below 1 is faster)", highlight=False)
    verdict = "match" if report.ok else "MISMATCH"
    console.print(
        f"top-1 agreement {agree}/{n}; logits max rel err vs onnxruntime {report.max_rel:.2e} "
        f"(tolerance {tolerance:g}): [bold]{verdict}[/bold]"
    )
    return 0 if report.ok and agree == n else 1
