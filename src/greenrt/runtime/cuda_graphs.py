"""CUDA graphs: each distinct input shape is captured once and replayed (bounded LRU of captured shapes).

The data steps of a shape-specialized plan are captured with static input buffers; a call copies its inputs into
those buffers and replays. Outputs are the graph's own buffers (valid until the next call with the same shape);
the session copies them unless the caller asked for device outputs without a copy. A shape whose steps cannot be
captured (an op reads a device value on the host, e.g. NonZero's count) runs eagerly, and says why once.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..ops.facts import HOST_SYNC_OPS
from .specialize import ShapeSpecializer, Specialization, shape_key


@dataclass
class _Entry:
    spec: Specialization
    graph: torch.cuda.CUDAGraph | None = None
    static_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    static_outputs: list[Any] = field(default_factory=list)
    eager_reason: str = ""


class CudaGraphRunner:
    def __init__(self, specializer: ShapeSpecializer, max_graphs: int = 8, warmup_runs: int = 2):
        self.specializer = specializer
        self.max_graphs = max_graphs
        self.warmup_runs = warmup_runs
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._pool = torch.cuda.graph_pool_handle()
        self.captures = 0  # how many shapes were captured (for tests and reports)

    def try_replay(self, feeds: Mapping[str, torch.Tensor]) -> list[Any] | None:
        """The outputs of a replay when these input shapes were captured already, else None (nothing run): the hot
        path, which needs no math settings since the kernels were chosen at capture."""
        key = shape_key(feeds)
        entry = self._entries.get(key)
        if entry is None or entry.graph is None:
            return None
        self._entries.move_to_end(key)
        return self._replay(entry, feeds)

    def _replay(self, entry: _Entry, feeds: Mapping[str, torch.Tensor]) -> list[Any]:
        for name, value in feeds.items():
            entry.static_inputs[name].copy_(value, non_blocking=True)
        entry.graph.replay()
        return entry.static_outputs

    def run(self, feeds: Mapping[str, torch.Tensor]) -> list[Any]:
        key = shape_key(feeds)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._capture(feeds)
            self._entries[key] = entry
            if len(self._entries) > self.max_graphs:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        if entry.graph is None:
            return self.specializer.run(feeds, entry.spec)
        return self._replay(entry, feeds)

    def _capture(self, feeds: Mapping[str, torch.Tensor]) -> _Entry:
        spec = self.specializer.prepare(feeds)
        entry = _Entry(spec)
        blocker = self._host_sync_step(spec)
        if blocker:  # known not to capture: say so once, and leave the CUDA context clean (no failed capture)
            entry.eager_reason = blocker
            if not self.captures and len(self._entries) == 0:
                warnings.warn(f"greenrt: this plan runs without CUDA graphs ({blocker})", stacklevel=4)
            return entry
        entry.static_inputs = {k: v.clone() for k, v in feeds.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(stream):  # warm-up on a side stream, as torch's CUDA-graph docs ask
                for _ in range(self.warmup_runs):
                    self.specializer.run(entry.static_inputs, spec)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                entry.static_outputs = self.specializer.run(entry.static_inputs, spec)
            entry.graph = graph
            self.captures += 1
        except Exception as exc:  # not capturable: run this shape eagerly
            torch.cuda.synchronize()
            entry.graph, entry.static_outputs = None, []
            entry.eager_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            warnings.warn(f"greenrt: shape {shape_key(feeds)} runs without a CUDA graph ({entry.eager_reason})",
                          stacklevel=3)
        return entry

    def _host_sync_step(self, spec: Specialization) -> str:
        """Why the data steps cannot be captured, when one of them must read a device value on the host (an If's
        condition computed from data, a Loop's trip count, NonZero's count), else ''."""
        constants = self.specializer.executor.constants
        for bound in self.specializer.data_steps:
            step = bound.step
            if step.domain != "" or step.op_type not in HOST_SYNC_OPS:
                continue
            if step.op_type == "If" and (step.inputs[0] in spec.values or step.inputs[0] in constants):
                continue  # a condition that depends on shapes only: read from its host copy, no sync
            return f"{step.label} reads a device value on the host"
        return ""
