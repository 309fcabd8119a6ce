"""The decomposed LayerNorm => one LayerNormalization (greenrt domain, so it runs at any model opset).

    d = x - ReduceMean(x);  y = d / Sqrt(ReduceMean(Pow(d, 2)) + eps) [* gamma] [+ beta]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .base import GREENRT_DOMAIN, RewritePass, add_initializer, attr, const_array, replace_node
from .patterns import close, consumer, other_input, producer, read_only_inside, reduce_axes, scalar


def _last_axes(axes: list[int] | None, rank: int | None) -> int | None:
    """The LayerNormalization axis if ``axes`` are the trailing axes, else None."""
    if not axes:
        return None
    if rank is None:
        return axes[0] if axes == list(range(-len(axes), 0)) else None
    norm = sorted(a + rank if a < 0 else a for a in axes)
    return norm[0] - rank if norm == list(range(rank - len(norm), rank)) else None


@dataclass
class _LayerNorm:
    x: ir.Value
    gamma: ir.Value | None
    beta: ir.Value | None
    axis: int
    eps: float
    nodes: list[ir.Node]
    out: ir.Value
    name: str | None  # the Div's, for the fused node
    width: int | None = None  # without gamma: x's last dim, the length of the ones that stand in for it


def _match(div: ir.Node) -> _LayerNorm | None:
    d, sqrt_out = div.inputs[0], div.inputs[1]
    sub = producer(d, "Sub")
    sqrt = producer(sqrt_out, "Sqrt")
    if sub is None or sqrt is None:
        return None
    x, mean = sub.inputs[0], sub.inputs[1]
    rm1 = producer(mean, "ReduceMean")
    if rm1 is None or rm1.inputs[0] is not x:
        return None
    add_eps = producer(sqrt.inputs[0], "Add")
    if add_eps is None:
        return None
    var = add_eps.inputs[0] if scalar(add_eps.inputs[1]) is not None else add_eps.inputs[1]
    eps = scalar(other_input(add_eps, var))
    rm2 = producer(var, "ReduceMean")
    if rm2 is None or eps is None:
        return None
    sq = producer(rm2.inputs[0], "Pow") or producer(rm2.inputs[0], "Mul")
    if sq is None:
        return None
    if sq.op_type == "Pow" and not (sq.inputs[0] is d and close(scalar(sq.inputs[1]), 2.0)):
        return None
    if sq.op_type == "Mul" and not (sq.inputs[0] is d and sq.inputs[1] is d):
        return None
    rank = len(x.shape) if x.shape is not None else None
    axes1, axes2 = reduce_axes(rm1), reduce_axes(rm2)
    axis = _last_axes(axes1, rank)
    if axis is None or _last_axes(axes2, rank) != axis:
        return None
    if not (attr(rm1, "keepdims", 1) and attr(rm2, "keepdims", 1)):
        return None  # a mean without its reduced dims broadcasts against x along other axes
    nodes, out, gamma, beta = [rm1, sub, sq, rm2, add_eps, sqrt, div], div.outputs[0], None, None
    mul = consumer(out, "Mul")
    if mul is not None and const_array(other_input(mul, out)) is not None:
        gamma, out = other_input(mul, out), mul.outputs[0]
        nodes.append(mul)
        add = consumer(out, "Add")
        if add is not None and const_array(other_input(add, out)) is not None:
            beta, out = other_input(add, out), add.outputs[0]
            nodes.append(add)
    if not read_only_inside(nodes, out):
        return None
    return _LayerNorm(x, gamma, beta, axis, eps, nodes, out, div.name)


class FuseLayerNorm(RewritePass[_LayerNorm]):
    name = "fuse_layernorm"
    rule = "(x - mean(x)) / sqrt(var(x) + eps) * g + b => LayerNormalization(x, g, b)"
    op_types = ("Div",)
    creates_domain = GREENRT_DOMAIN

    def match(self, div: ir.Node, graph: ir.Graph) -> _LayerNorm | None:
        found = _match(div)
        if found is None or found.gamma is not None:
            return found
        x = found.x
        found.width = x.shape[-1] if x.shape is not None and isinstance(x.shape[-1], int) else None
        if found.width is None or found.axis != -1:
            return None  # no gamma, and no static last dim to make the ones that stand in for it
        return found

    def rewrite(self, graph: ir.Graph, m: _LayerNorm) -> None:
        gamma = m.gamma
        if gamma is None:
            gamma = add_initializer(graph, "layernorm_ones", np.ones(m.width, dtype=np.float32))
        attrs = [ir.AttrInt64("axis", m.axis), ir.AttrFloat32("epsilon", m.eps)]
        fused = ir.Node(GREENRT_DOMAIN, "LayerNormalization", [m.x, gamma, m.beta], attrs, name=m.name)
        replace_node(graph, m.nodes, fused, m.out)
