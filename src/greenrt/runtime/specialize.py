"""Shape specialization: compute once per input shape what depends only on shapes and constants.

Exporters wrap dynamic models in shape arithmetic (Shape -> Gather -> Concat -> Reshape, masks built with
Range/ConstantOfShape). None of it depends on input *values*, only on input *shapes*. The steps are split once,
per plan, into static steps (Shape/Size, and anything fed only by constants and static values) and data steps.
For each distinct input shape the static steps run once; their results are cached (on the device, plus CPU copies
for inputs ops read on the host), and every later call with that shape runs only the data steps. That is what
makes a dynamic-shape model capturable as a CUDA graph per shape: no step left reads a device tensor on the host.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..ops.facts import DYNAMIC_SHAPE_OPS, RANDOM_OPS, SHAPE_ONLY_OPS
from .executor import BoundStep, Executor



def shape_key(feeds: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v.shape), str(v.dtype)) for k, v in feeds.items()))




def split_static(executor: Executor) -> tuple[list[BoundStep], list[BoundStep]]:
    """(static steps, data steps).

    Data values depend on input values; of those, some also have a value-dependent *shape* (after NonZero, a
    Reshape to a computed shape, ...). Shape/Size of anything else is static, as is every step fed only by
    constants and static values. A step that reads a data value, runs a subgraph or draws random numbers is data.
    """
    data = set(executor.input_names)
    dynamic: set[str] = set()
    static_steps, data_steps = [], []
    for bound in executor.steps:
        step = bound.step
        inputs = [n for n in step.inputs if n]
        outputs = [n for n in step.outputs if n]
        if step.domain == "" and step.op_type in SHAPE_ONLY_OPS and inputs and inputs[0] not in dynamic:
            static_steps.append(bound)
            continue
        has_subgraph = any(isinstance(v, dict) and ("graph" in v or "graphs" in v) for v in step.attrs.values())
        if has_subgraph or step.op_type in RANDOM_OPS or any(n in data for n in inputs):
            data_steps.append(bound)
            data.update(outputs)
            host_data = any(p < len(step.inputs) and step.inputs[p] in data for p in bound.host_positions)
            if step.op_type in DYNAMIC_SHAPE_OPS or has_subgraph or host_data or any(n in dynamic for n in inputs):
                dynamic.update(outputs)
        else:
            static_steps.append(bound)
    return static_steps, data_steps


@dataclass
class Specialization:
    values: dict[str, Any]  # static values on the device
    host: dict[str, Any]  # their CPU copies (for host-read positions)


class ShapeSpecializer:
    """Runs an executor's plan with per-shape caching of its static part (LRU of ``max_shapes``)."""

    def __init__(self, executor: Executor, max_shapes: int = 16):
        self.executor = executor
        self.static_steps, self.data_steps = split_static(executor)
        self.max_shapes = max_shapes
        self._cache: OrderedDict[tuple, Specialization] = OrderedDict()

    def prepare(self, feeds: Mapping[str, Any]) -> Specialization:
        key = shape_key(feeds)
        spec = self._cache.get(key)
        if spec is not None:
            self._cache.move_to_end(key)
            return spec
        values: dict[str, Any] = {}
        static_ids = {id(b.step) for b in self.static_steps}

        def keep(step, outputs):
            if id(step) in static_ids:
                values.update((name, value) for name, value in zip(step.outputs, outputs) if name)

        # one full run: Shape of an intermediate needs the data steps before it (this is also the warm-up)
        self.executor.execute(self.executor.steps, feeds, observer=keep, want_outputs=False)
        # some ops build shape values on the host (e.g. Shape); data steps read them from the device, and a
        # host-to-device copy inside a CUDA-graph capture is not allowed: make both copies now
        device = self.executor.device
        values = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in values.items()}
        host = {k: v.cpu() for k, v in values.items() if isinstance(v, torch.Tensor) and v.device.type != "cpu"}
        spec = Specialization(values, host)
        self._cache[key] = spec
        if len(self._cache) > self.max_shapes:
            self._cache.popitem(last=False)
        return spec

    def run(self, feeds: Mapping[str, Any], spec: Specialization | None = None) -> list[Any]:
        spec = spec or self.prepare(feeds)
        return self.executor.execute(self.data_steps, feeds, known=spec.values, host_values=spec.host)
