"""Run an onnx-ir graph over torch ops on any torch device.

Construction is the compile step: every node is resolved to its OpImpl once, attributes are converted once,
initializers are moved to the device once, and each value gets a last-use index so its memory is released as
soon as nothing needs it. ``run`` then walks the resulting list of steps. The next stage (plan/) replaces this
list with an optimized, preallocated plan; the Step shape is what it consumes.
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import onnx_ir as ir
import torch

from ..errors import ExecutionError, GreenrtError, UnsupportedModelError
from ..onnx.dtypes import numpy_to_torch
from ..ops import REGISTRY, OpContext, OpImpl, load_all
from ..ops.registry import canonical_domain

MAX_SUPPORTED_OPSET = 24  # the highest ai.onnx opset the implementations were written against (onnx 1.23: 24/25)


@dataclass
class Step:
    node: ir.Node
    impl: OpImpl
    inputs: tuple[str, ...]  # "" for an omitted optional input
    outputs: tuple[str, ...]
    attrs: dict[str, Any]
    graph_attrs: tuple[str, ...]  # attribute names holding subgraphs
    release: tuple[str, ...] = ()  # values whose last use is this step

    @property
    def label(self) -> str:
        return f"node {self.node.name or '<unnamed>'!r} ({self.node.op_type})"


def tensor_value(tensor: ir.TensorProtocol, device: torch.device):
    """An ir tensor (initializer or attribute) as a runtime value on ``device``."""
    array = tensor.numpy()
    if tensor.dtype == ir.DataType.STRING:
        return np.vectorize(_as_str, otypes=[object])(array) if array.size else array.astype(object)
    return numpy_to_torch(array, device)


def _as_str(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def convert_attribute(attr: ir.Attr, device: torch.device) -> Any:
    t = attr.type
    A = ir.AttributeType
    if t in (A.FLOAT, A.INT, A.FLOATS, A.INTS, A.GRAPH, A.GRAPHS, A.TYPE_PROTO, A.TYPE_PROTOS):
        value = attr.value
        return list(value) if t in (A.FLOATS, A.INTS, A.GRAPHS, A.TYPE_PROTOS) else value
    if t == A.STRING:
        return _as_str(attr.value)
    if t == A.STRINGS:
        return [_as_str(s) for s in attr.value]
    if t == A.TENSOR:
        return tensor_value(attr.value, device)
    if t == A.TENSORS:
        return [tensor_value(v, device) for v in attr.value]
    if t == A.SPARSE_TENSOR:
        return attr.value  # only Constant uses it; it converts the proto itself
    raise GreenrtError(f"attribute {attr.name!r} has unsupported type {t}")


def _graph_outer_names(graph: ir.Graph) -> set[str]:
    """Names a subgraph reads from enclosing scopes (used but not produced inside it)."""
    defined = {v.name for v in graph.inputs} | set(graph.initializers)
    used: set[str] = set()
    for node in graph:
        for v in node.inputs:
            if v is not None and v.name:
                used.add(v.name)
        for attr in node.attributes.values():
            for sub in _subgraphs(attr):
                used |= _graph_outer_names(sub)
        defined |= {v.name for v in node.outputs}
    used |= {v.name for v in graph.outputs}
    return used - defined


def _subgraphs(attr) -> list[ir.Graph]:
    if isinstance(attr, ir.Attr):
        if attr.type == ir.AttributeType.GRAPH:
            return [attr.value]
        if attr.type == ir.AttributeType.GRAPHS:
            return list(attr.value)
    return []


class Executor:
    """Interprets one graph (a model's main graph or a subgraph) on ``device``."""

    def __init__(self, graph: ir.Graph, opsets: Mapping[str, int], device: torch.device | str = "cpu"):
        load_all()
        self.graph = graph
        self.device = torch.device(device)
        self.opsets = {canonical_domain(k): v for k, v in opsets.items()}
        self.input_names = [v.name for v in graph.inputs]
        self.output_names = [v.name for v in graph.outputs]
        self.constants: dict[str, Any] = {}
        for name, value in graph.initializers.items():
            if value.const_value is None:
                raise GreenrtError(f"initializer {name!r} has no data")
            self.constants[name] = tensor_value(value.const_value, self.device)
        self.steps = self._resolve()
        self._sub_executors: dict[int, Executor] = {}
        self._assign_releases()

    # -- compile ---------------------------------------------------------------------------------------
    def _resolve(self) -> list[Step]:
        steps: list[Step] = []
        problems: list[str] = []
        for node in self.graph:
            domain = canonical_domain(node.domain)
            opset = self.opsets.get(domain)
            label = f"node {node.name or '<unnamed>'!r} ({domain + '.' if domain else ''}{node.op_type})"
            if opset is None:
                problems.append(f"{label}: domain {domain!r} is not imported by the model")
                continue
            impl = REGISTRY.lookup(domain, node.op_type, opset)
            if impl is None:
                if REGISTRY.known(domain, node.op_type):
                    have = REGISTRY.versions(domain, node.op_type)
                    problems.append(f"{label}: opset {opset} is older than any implementation (have {have})")
                elif domain:
                    problems.append(f"{label}: domain {domain!r} is not supported by greenrt")
                else:
                    problems.append(f"{label}: op {node.op_type!r} is not supported by greenrt")
                continue
            try:
                attrs = {name: convert_attribute(a, self.device) for name, a in node.attributes.items()}
            except GreenrtError as exc:
                problems.append(f"{label}: {exc}")
                continue
            graph_attrs = tuple(n for n, a in node.attributes.items() if _subgraphs(a))
            steps.append(
                Step(
                    node=node,
                    impl=impl,
                    inputs=tuple(v.name if v is not None else "" for v in node.inputs),
                    outputs=tuple(v.name for v in node.outputs),
                    attrs=attrs,
                    graph_attrs=graph_attrs,
                )
            )
        if problems:
            raise UnsupportedModelError(
                f"{len(problems)} node(s) cannot run in greenrt; see `greenrt inspect ops` for what is supported",
                problems,
            )
        return steps

    def _assign_releases(self) -> None:
        """Free each intermediate after the last step reading it (outer-scope reads by subgraphs count)."""
        keep = set(self.output_names) | set(self.constants) | set(self.input_names)
        last_use: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            reads = set(step.inputs)
            for name in step.graph_attrs:
                for sub in _subgraphs(step.node.attributes[name]):
                    reads |= _graph_outer_names(sub)
            for name in reads:
                if name:
                    last_use[name] = i
        by_step: dict[int, list[str]] = {}
        for name, i in last_use.items():
            if name not in keep:
                by_step.setdefault(i, []).append(name)
        for i, step in enumerate(self.steps):
            step.release = tuple(by_step.get(i, ()))

    # -- run -------------------------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, Any], outer: Mapping[str, Any] | None = None) -> list[Any]:
        local: dict[str, Any] = dict(feeds)
        env: Mapping[str, Any] = ChainMap(local, self.constants, outer) if outer is not None else ChainMap(
            local, self.constants
        )
        for step in self.steps:
            args = [env[name] if name else None for name in step.inputs]
            kwargs = step.attrs
            if step.impl.wants_ctx:
                kwargs = dict(kwargs, ctx=self._context(step, env))
            try:
                result = step.impl.fn(*args, **kwargs)
            except GreenrtError:
                raise
            except KeyError as exc:
                raise ExecutionError(f"{step.label}: missing value {exc}") from exc
            except Exception as exc:  # an op failing on the given data: name the node, keep the cause
                raise ExecutionError(f"{step.label} failed: {type(exc).__name__}: {exc}") from exc
            if not isinstance(result, tuple):
                result = (result,)
            for name, value in zip(step.outputs, result):
                if name:
                    local[name] = value
            for name in step.release:
                local.pop(name, None)
        return [env[name] for name in self.output_names]

    def _context(self, step: Step, env: Mapping[str, Any]) -> OpContext:
        def run_graph(graph: ir.Graph, inputs: Sequence[Any]) -> list[Any]:
            sub = self._sub_executors.get(id(graph))
            if sub is None:
                sub = Executor(graph, self.opsets, self.device)
                self._sub_executors[id(graph)] = sub
            feeds = dict(zip(sub.input_names, inputs))
            return sub.run(feeds, outer=env)

        return OpContext(
            node_name=step.node.name or "",
            op_type=step.node.op_type,
            opset=self.opsets.get(step.impl.domain, 0),
            device=self.device,
            num_outputs=len(step.outputs),
            run_graph=run_graph,
            input_types=[v.type if v is not None else None for v in step.node.inputs],
            output_types=[v.type for v in step.node.outputs],
        )
