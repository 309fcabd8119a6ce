"""Constant folding, shape subgraphs included: a node whose inputs are all constants runs once at build time
(through greenrt's own op implementations) and becomes an initializer; Shape/Size of a value whose shape is
static become constants, which lets the Gather/Concat/Reshape chains exporters build around them fold too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
import torch

from ..errors import GreenrtError
from ..onnx.dtypes import as_str, numpy_to_torch, torch_to_numpy
from ..ops import REGISTRY, OpContext, load_all
from ..ops.facts import RANDOM_OPS
from ..ops.registry import canonical_domain
from .base import PassReport, RewritePass, add_initializer, attr, const_array, is_onnx


def tensor_value(tensor: ir.TensorProtocol, device: torch.device):
    """An ir tensor (initializer or attribute) as a runtime value on ``device``."""
    array = tensor.numpy()
    if tensor.dtype == ir.DataType.STRING:
        return np.vectorize(as_str, otypes=[object])(array) if array.size else array.astype(object)
    return numpy_to_torch(array, device)



def convert_attribute(attr: ir.Attr, device: torch.device) -> Any:
    t = attr.type
    A = ir.AttributeType
    if t in (A.FLOAT, A.INT, A.FLOATS, A.INTS, A.GRAPH, A.GRAPHS, A.TYPE_PROTO, A.TYPE_PROTOS):
        value = attr.value
        return list(value) if t in (A.FLOATS, A.INTS, A.GRAPHS, A.TYPE_PROTOS) else value
    if t == A.STRING:
        return as_str(attr.value)
    if t == A.STRINGS:
        return [as_str(s) for s in attr.value]
    if t == A.TENSOR:
        return tensor_value(attr.value, device)
    if t == A.TENSORS:
        return [tensor_value(v, device) for v in attr.value]
    if t == A.SPARSE_TENSOR:
        return attr.value  # only Constant uses it; it converts the proto itself
    raise GreenrtError(f"attribute {attr.name!r} has unsupported type {t}")


NOT_FOLDED = RANDOM_OPS | {"Dropout"}  # Dropout: training mode draws a mask
MAX_FOLDED_ELEMENTS = 1 << 20  # don't turn a small ConstantOfShape into megabytes of weights


def _static_shape(value: ir.Value | None) -> list[int] | None:
    if value is None or value.shape is None:
        return None
    dims = list(value.shape)
    return dims if all(isinstance(d, int) and d >= 0 for d in dims) else None


def _shape_slice(node: ir.Node, dims: list) -> list:
    """The part of ``dims`` a Shape node returns (its start/end attributes, clamped as ONNX says)."""
    rank = len(dims)
    start, end = attr(node, "start", 0), attr(node, "end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return dims[start:end]


def _shape_constant(node: ir.Node) -> np.ndarray | None:
    """Shape/Size of a statically shaped value as an int64 array, else None."""
    dims = _static_shape(node.inputs[0])
    if dims is None:
        return None
    if node.op_type == "Size":
        return np.array(int(np.prod(dims)), dtype=np.int64)
    return np.array(_shape_slice(node, dims), dtype=np.int64)


def _shape_dims(value: ir.Value | None) -> list | None:
    """The dims a Shape node's output holds (ints where static, None where not), or None if not from Shape."""
    node = value.producer() if value is not None else None
    if not is_onnx(node) or node.op_type != "Shape":
        return None
    src = node.inputs[0]
    if src is None or src.shape is None:
        return None
    return _shape_slice(node, [d if isinstance(d, int) and d >= 0 else None for d in src.shape])


def _partial_shape_constant(node: ir.Node) -> np.ndarray | None:
    """Gather/Slice picking only static dims out of a partly dynamic Shape: a constant (as onnxslim does)."""
    dims = _shape_dims(node.inputs[0])
    if dims is None:
        return None
    if node.op_type == "Gather" and attr(node, "axis", 0) == 0:
        idx = const_array(node.inputs[1])
        if idx is None:
            return None
        picked = [dims[int(i)] for i in np.asarray(idx).reshape(-1)]
        if any(d is None for d in picked):
            return None
        return np.array(picked, dtype=np.int64).reshape(np.asarray(idx).shape)
    if node.op_type == "Slice" and len(node.inputs) >= 3:
        inputs = list(node.inputs[1:5]) + [None] * (5 - len(node.inputs))
        consts = [const_array(v) if v is not None else None for v in inputs]
        if consts[0] is None or consts[1] is None or any(
                v is not None and c is None for v, c in zip(inputs[2:], consts[2:])):
            return None
        if consts[2] is not None and [int(a) for a in consts[2].reshape(-1)] not in ([0], [-1]):
            return None
        step = int(consts[3].reshape(-1)[0]) if consts[3] is not None else 1
        start, end = int(consts[0].reshape(-1)[0]), int(consts[1].reshape(-1)[0])
        picked = dims[slice(start, end, step)]
        if any(d is None for d in picked):
            return None
        return np.array(picked, dtype=np.int64)
    return None


def _evaluate(node: ir.Node, opset: int, inputs: list) -> list[np.ndarray] | None:
    impl = REGISTRY.lookup(node.domain, node.op_type, opset)
    if impl is None:
        return None
    args = [None if a is None else (numpy_to_torch(a) if a.dtype != object else a) for a in inputs]
    attrs = {name: convert_attribute(a, torch.device("cpu")) for name, a in node.attributes.items()}
    if impl.wants_ctx:
        attrs["ctx"] = OpContext(node.name or "", node.op_type, opset, torch.device("cpu"), len(node.outputs))
    result = impl.fn(*args, **attrs)
    result = result if isinstance(result, tuple) else (result,)
    if not all(isinstance(r, torch.Tensor) for r in result[: len(node.outputs)]):
        return None
    return [torch_to_numpy(r) for r in result[: len(node.outputs)]]


class FoldConstants(RewritePass[tuple[ir.Node, list[np.ndarray]]]):
    """Every default-domain op is an anchor (but the random ones); ``match`` runs it on its constant inputs."""

    name = "fold_constants"
    rule = "op(const, ...) => const; Shape(x static) => const; Gather/Slice(Shape(x), static dims) => const"

    def is_anchor(self, node: ir.Node) -> bool:
        return canonical_domain(node.domain) == "" and node.op_type not in NOT_FOLDED

    def apply(self, model: ir.Model, report: PassReport) -> int:
        load_all()
        return super().apply(model, report)

    def match(self, node: ir.Node, graph: ir.Graph) -> tuple[ir.Node, list[np.ndarray]] | None:
        if any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for a in node.attributes.values()):
            return None
        if node.op_type in ("Shape", "Size"):
            folded = _shape_constant(node)
            return None if folded is None else (node, [folded])
        if node.op_type in ("Gather", "Slice") and _shape_dims(node.inputs[0]) is not None:
            folded = _partial_shape_constant(node)
            return None if folded is None else (node, [folded])
        inputs = [const_array(v) if v is not None else None for v in node.inputs]
        if any(v is not None and a is None for v, a in zip(node.inputs, inputs)):
            return None
        try:
            outputs = _evaluate(node, graph.opset_imports.get("", 1), inputs)
        except Exception:  # an op that fails on these constants fails at run time too: leave it
            return None
        if outputs is None:
            return None
        limit = max(MAX_FOLDED_ELEMENTS, sum(a.size for a in inputs if a is not None))
        return None if sum(o.size for o in outputs) > limit else (node, outputs)

    def rewrite(self, graph: ir.Graph, match: tuple[ir.Node, list[np.ndarray]]) -> None:
        node, outputs = match
        for value, array in zip(node.outputs, outputs):
            self._replace_with_constant(graph, value, array)
        graph.remove(node, safe=True)

    @staticmethod
    def _replace_with_constant(graph: ir.Graph, value: ir.Value, array: np.ndarray) -> None:
        const = add_initializer(graph, f"{value.name or 'folded'}_const", np.ascontiguousarray(array).reshape(array.shape))
        if value.is_graph_output():
            # keep the graph's output name: an Identity from the constant carries it
            ident = ir.Node("", "Identity", [const], name=f"{value.name}_const")
            graph.append(ident)
            value.replace_all_uses_with(ident.outputs[0], replace_graph_outputs=True)
            name = value.name
            value.name = None
            ident.outputs[0].name = name
        else:
            value.replace_all_uses_with(const)
