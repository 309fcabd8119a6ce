"""Reshape targets built from the tensor's own shape become constants with 0 ("copy this dim").

    Reshape(x, Concat(Unsqueeze(Shape(x)[0]), [-1]))        =>  Reshape(x, [0, -1])
    Reshape(x, Concat([7], Unsqueeze(batch * heads), [64]))   =>  Reshape(x, [7, -1, 64])   (one computed dim)

Exporters write such shape arithmetic for every dynamic dim; once the Reshape's target is a constant, the
Shape/Gather/Unsqueeze/Concat chain is dead code, and the output's rank and stated dims are known (set where shape
inference had left them unknown).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from .base import RewritePass, add_initializer, attr, const_array
from .patterns import producer


def _same_dim(a, b) -> bool:
    """Two dims known equal: the same static size, or the same symbol from shape inference."""
    if isinstance(a, int) or isinstance(b, int):
        return isinstance(a, int) and isinstance(b, int) and a == b >= 0
    return a.value is not None and a.value == b.value


def _copies_dim(part: ir.Value, x: ir.Value, pos: int) -> bool:
    """``part`` is Unsqueeze(Gather(Shape(src), i)) with src's dim i known equal to x's dim ``pos``: the
    Reshape may write 0 there (copy the input dim) instead of computing it."""
    unsq = producer(part, "Unsqueeze")
    gather = producer(unsq.inputs[0], "Gather") if unsq is not None else None
    shape = producer(gather.inputs[0], "Shape") if gather is not None else None
    if shape is None or attr(shape, "start", 0) != 0 or attr(gather, "axis", 0) != 0:
        return False
    src = shape.inputs[0]
    idx = const_array(gather.inputs[1])
    if idx is None or idx.size != 1 or src is None or src.shape is None or x.shape is None or pos >= len(x.shape):
        return False
    i = int(idx.reshape(()))
    i = i + len(src.shape) if i < 0 else i
    return src is x and i == pos or 0 <= i < len(src.shape) and _same_dim(src.shape[i], x.shape[pos])


def _constant_target(reshape: ir.Node) -> np.ndarray | None:
    x, target = reshape.inputs[0], reshape.inputs[1]
    concat = producer(target, "Concat")
    if concat is None or attr(concat, "axis", 0) != 0 or attr(reshape, "allowzero", 0):
        return None
    dims: list[int | None] = []
    for part in concat.inputs:
        c = const_array(part)
        if c is not None:
            dims.extend(int(v) for v in c.reshape(-1))
        elif _copies_dim(part, x, len(dims)):
            dims.append(0)
        elif part.shape is not None and list(part.shape) == [1]:
            dims.append(None)  # computed at run time (e.g. batch * heads)
        else:
            return None
    # one computed dim and no -1: Reshape can infer it from the element count
    if dims.count(None) == 1 and -1 not in dims:
        dims[dims.index(None)] = -1
    if None in dims or dims.count(-1) > 1:
        return None
    return np.array(dims, dtype=np.int64)


class SimplifyReshape(RewritePass[tuple[ir.Node, np.ndarray]]):
    name = "simplify_reshape"
    rule = ("Reshape(x, Concat(dims equal to x's at i, one computed dim, consts)) => Reshape(x, consts, 0 at i, "
            "-1 for the computed one)")
    op_types = ("Reshape",)

    def match(self, node: ir.Node, graph: ir.Graph) -> tuple[ir.Node, np.ndarray] | None:
        if len(node.inputs) < 2 or const_array(node.inputs[1]) is not None:
            return None
        target = _constant_target(node)
        return None if target is None else (node, target)

    def rewrite(self, graph: ir.Graph, match: tuple[ir.Node, np.ndarray]) -> None:
        node, target = match
        node.replace_input_with(1, add_initializer(graph, f"{node.name or 'reshape'}_shape", target))
        out = node.outputs[0]
        out.shape = _target_shape(node.inputs[0], target, out.shape)


def _target_shape(x: ir.Value, target: np.ndarray, known: ir.Shape | None) -> ir.Shape:
    """The output shape with what the constant target now states: its positive dims, x's dim where it writes 0
    (when x's shape says), else what shape inference had. The folding after this pass reads static dims of it (the
    head size an exporter computes from Shape(q) for the attention scale, say)."""
    if known is not None and len(known) != len(target):
        return known
    dims = []
    for i, d in enumerate(int(v) for v in target):
        if d > 0:
            dims.append(d)
        elif d == 0 and x.shape is not None and i < len(x.shape) and isinstance(x.shape[i], int):
            dims.append(x.shape[i])
        else:
            dims.append(known[i] if known is not None else None)
    return ir.Shape(dims)
