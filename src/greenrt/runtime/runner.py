"""One way to run a plan: the session, the builder's checks, the accuracy search and the memory report all make
their runner here, so what the builder measures is what the session will run.

    runner = Runner(plan, weights, "cuda", precision="fp16", channels_last=True, specialize=True, cuda_graphs=True)
    outputs = runner.run({"image": x})          # device tensors in, device tensors out

A runner puts 4-D float inputs in channels-last memory for channels-last engines, runs under the engine's math
settings (runtime/math_mode.py: set for the run, the caller's restored after), and, for engines, caches the
shape-only work per input shape (runtime/specialize.py) and replays one CUDA graph per shape on CUDA
(runtime/cuda_graphs.py). ``observer`` runs the plain executor instead, so every step's outputs can be seen.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..plan.plan import Plan
from .executor import Before, Executor, Observer
from .math_mode import engine_math


def nhwc_input(value: torch.Tensor) -> torch.Tensor:
    """A 4-D float input in channels_last memory format: NHWC in at the boundary of a channels-last engine."""
    if value.dim() == 4 and value.is_floating_point():
        return value.contiguous(memory_format=torch.channels_last)
    return value


class Runner:
    def __init__(self, plan: Plan, weights: Mapping[str, Any], device: torch.device | str, *,
                 precision: str | None = "fp32", channels_last: bool = False, specialize: bool = False,
                 cuda_graphs: bool = False, compile_key: str | None = None):
        self.device = torch.device(device)
        self.precision = precision
        self.channels_last = channels_last
        self.executor = Executor(plan, weights, self.device, channels_last=channels_last)
        self._inner: Any = self.executor
        self.compiled: Any = None  # the CompiledSpecializer of an engine compiled by Inductor (its .failed says why not)
        if specialize or cuda_graphs:
            from .specialize import ShapeSpecializer

            self._inner = ShapeSpecializer(self.executor)
            if plan.compiled == "inductor":  # runtime/compiled.py: the compiled-code cache keyed by the engine
                from .compiled import CompiledSpecializer, plan_key

                self._inner = self.compiled = CompiledSpecializer(self._inner, compile_key or plan_key(plan, weights))
            if cuda_graphs and self.device.type == "cuda":
                from .cuda_graphs import CudaGraphRunner

                self._inner = CudaGraphRunner(self._inner)
        self.uses_cuda_graphs = type(self._inner).__name__ == "CudaGraphRunner"

    @property
    def captures(self) -> int:
        """How many input shapes were captured as CUDA graphs (0 without CUDA graphs)."""
        return getattr(self._inner, "captures", 0)

    @property
    def plan(self) -> Plan:
        return self.executor.plan

    @property
    def output_names(self) -> list[str]:
        return self.executor.output_names

    def prepare_feeds(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        if not self.channels_last:
            return dict(feeds)
        return {k: nhwc_input(v) if isinstance(v, torch.Tensor) else v for k, v in feeds.items()}

    def run(self, feeds: Mapping[str, Any], observer: Observer | None = None, before: Before | None = None) -> list[Any]:
        """Outputs for ``feeds`` (tensors already on the device). With CUDA graphs the outputs are the graph's own
        buffers, valid until the next call with the same shapes. ``observer`` / ``before`` (see Executor.run) run
        the plain executor, step by step."""
        feeds = self.prepare_feeds(feeds)
        if observer is None and before is None and self.uses_cuda_graphs:
            with torch.inference_mode():  # a replay: the kernels were chosen at capture, no math settings apply
                outputs = self._inner.try_replay(feeds)
            if outputs is not None:
                return outputs
        with engine_math(self.device, self.precision), torch.inference_mode():
            if observer is not None or before is not None:
                return self.executor.run(feeds, observer=observer, before=before)
            return self._inner.run(feeds)
