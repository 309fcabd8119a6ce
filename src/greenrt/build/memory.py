"""Activation memory of a plan at concrete shapes: peak with lifetime-based reuse vs the naive sum.

The executor releases every intermediate after its last use (the plan's release lists), and the allocator reuses
those blocks, so the live set at each step is what memory must hold: its maximum is the peak. The naive sum is
what a runtime that kept every intermediate would need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch


@dataclass
class MemoryReport:
    peak_bytes: int
    naive_bytes: int
    measured_peak_bytes: int | None = None  # torch.cuda.max_memory_allocated delta on CUDA

    def to_json(self) -> dict:
        return self.__dict__.copy()


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


def activation_memory(runner, feeds: Mapping[str, Any]) -> MemoryReport:
    """Peak and naive activation memory of one run of ``runner`` (runtime.Runner) on ``feeds``."""
    sizes: dict[str, int] = {}
    order: list = []

    def record(step, outputs):
        order.append(step)
        for name, value in zip(step.outputs, outputs):
            if name:
                sizes[name] = _nbytes(value)

    executor = runner.executor
    device = runner.device
    measured = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    runner.run(feeds, observer=record)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        measured = torch.cuda.max_memory_allocated(device) - base

    releases = {id(b.step): b.release for b in executor.steps}
    outputs = set(executor.output_names)
    live = peak = 0
    for step in order:
        live += sum(sizes.get(n, 0) for n in step.outputs if n)
        peak = max(peak, live)
        live -= sum(sizes.get(n, 0) for n in releases.get(id(step), ()) if n not in outputs)
    naive = sum(sizes.values())
    return MemoryReport(peak, naive, measured)
