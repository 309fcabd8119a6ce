"""Per-layer timing of an engine (or an ONNX file): `greenrt inspect model MODEL --profile`.

The runner's plain executor runs the plan with an observer that sees each step's outputs as soon as the step
is done; the time between two observer calls is the step's time (on CUDA each step is closed by a CUDA event,
read after the run; on CPU by ``perf_counter``). Repeated runs, the median per step. What this measures is the
eager executor, step by step: no CUDA graph, no shape specialization, so its sum is close to an eager run
(``full_run_ms`` is measured the same way without the observer, for comparison) and above a CUDA-graph replay.
Steps inside If/Loop bodies are counted in the step that runs them.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..plan.plan import PlanStep


@dataclass
class LayerTime:
    index: int
    name: str
    op: str  # domain.op_type
    implementation: str  # op_type-since
    precision: str
    ms: float  # median over the runs


@dataclass
class LayerProfile:
    device: str
    runs: int
    layers: list[LayerTime]
    full_run_ms: float  # median of plain runs of the same executor, without the observer
    shapes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return sum(l.ms for l in self.layers)

    def slowest(self, n: int) -> list[LayerTime]:
        return sorted(self.layers, key=lambda l: -l.ms)[:n]


def step_precision(step: PlanStep) -> str:
    """The precision a step computes in: recorded on the step, else its first float output's element type."""
    if step.precision:
        return step.precision
    names = {1: "fp32", 10: "fp16", 16: "bf16", 11: "fp64", 17: "fp8", 18: "fp8", 3: "int8", 2: "uint8"}
    for spec in list(step.output_specs) + list(step.input_specs):
        if spec is not None and spec.dtype in names:
            return names[spec.dtype]
    return "-"


def implementation(step: PlanStep) -> str:
    """The op's implementation, and the tactic the builder timed and kept where it chose one."""
    return f"{step.op_type}-{step.since}" + (f" [{step.tactic}]" if step.tactic else "")


def profile_layers(runner, feeds: Mapping[str, Any], *, runs: int = 10, warmup: int = 2) -> LayerProfile:
    """Median time of each top-level step of ``runner``'s plan over ``runs`` runs on ``feeds`` (device tensors)."""
    device = runner.device
    cuda = device.type == "cuda"
    top = {id(s): i for i, s in enumerate(runner.plan.steps)}
    samples: list[list[float]] = [[] for _ in runner.plan.steps]

    def one_run(record: bool) -> None:
        marks: list[tuple[int, Any]] = []
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            start = time.perf_counter()

        def observer(step, outputs):
            i = top.get(id(step))
            if i is None:  # a step of an If/Loop body: counted in the step that runs it
                return
            if cuda:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                marks.append((i, ev))
            else:
                marks.append((i, time.perf_counter()))

        runner.run(feeds, observer=observer)
        if not record:
            return
        if cuda:
            torch.cuda.synchronize(device)
            prev = start
            for i, ev in marks:
                samples[i].append(prev.elapsed_time(ev))
                prev = ev
        else:
            prev = start
            for i, t in marks:
                samples[i].append((t - prev) * 1e3)
                prev = t

    for _ in range(warmup):
        one_run(False)
    for _ in range(runs):
        one_run(True)

    full = []
    for _ in range(runs):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        runner.run(feeds)
        if cuda:
            torch.cuda.synchronize(device)
        full.append((time.perf_counter() - t0) * 1e3)

    layers = []
    for i, step in enumerate(runner.plan.steps):
        op = (step.domain + "." if step.domain else "") + step.op_type
        ms = statistics.median(samples[i]) if samples[i] else 0.0
        layers.append(LayerTime(i, step.name or f"#{i}", op, implementation(step), step_precision(step), ms))
    shapes = {k: list(v.shape) for k, v in feeds.items() if hasattr(v, "shape")}
    return LayerProfile(device.type, runs, layers, statistics.median(full), shapes)


def plot_layers(profile: LayerProfile, path: str, top: int = 20) -> str | None:
    """A horizontal bar plot of the ``top`` slowest layers; None if written, else what to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install matplotlib"
    layers = profile.slowest(top)[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(layers) + 1.2))
    ax.barh([f"{l.name} ({l.op})" for l in layers], [l.ms for l in layers], color="#3a7d44")
    total = profile.total_ms or 1.0
    for y, l in enumerate(layers):
        ax.text(l.ms, y, f" {100 * l.ms / total:.1f}%", va="center", fontsize=8)
    ax.set_xlabel(f"median ms per run ({profile.device}, {profile.runs} runs)")
    ax.set_title(f"slowest {len(layers)} of {len(profile.layers)} layers: sum {profile.total_ms:.3g} ms, "
                 f"full run {profile.full_run_ms:.3g} ms")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
