"""The decomposed LayerNorm => one LayerNormalization (greenrt domain, so it runs at any model opset).

    d = x - ReduceMean(x);  y = d / Sqrt(ReduceMean(Pow(d, 2)) + eps) [* gamma] [+ beta]
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from .base import GREENRT_DOMAIN, GraphPass, PassReport, add_initializer, const_array, replace_node
from .patterns import close, consumer, other_input, producer, reduce_axes, scalar


def _last_axes(axes: list[int] | None, rank: int | None) -> int | None:
    """The LayerNormalization axis if ``axes`` are the trailing axes, else None."""
    if not axes:
        return None
    if rank is None:
        return axes[0] if axes == list(range(-len(axes), 0)) else None
    norm = sorted(a + rank if a < 0 else a for a in axes)
    return norm[0] - rank if norm == list(range(rank - len(norm), rank)) else None


def _match(div: ir.Node):
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
    users_of_d = {id(n) for n, _ in d.uses()}
    if users_of_d != {id(sq), id(div)} or d.is_graph_output():
        return None
    nodes, out, gamma, beta = [rm1, sub, sq, rm2, add_eps, sqrt, div], div.outputs[0], None, None
    mul = consumer(out, "Mul")
    if mul is not None and const_array(other_input(mul, out)) is not None:
        gamma, out = other_input(mul, out), mul.outputs[0]
        nodes.append(mul)
        add = consumer(out, "Add")
        if add is not None and const_array(other_input(add, out)) is not None:
            beta, out = other_input(add, out), add.outputs[0]
            nodes.append(add)
    return x, gamma, beta, axis, eps, nodes, out


class FuseLayerNorm(GraphPass):
    name = "fuse_layernorm"
    rule = "(x - mean(x)) / sqrt(var(x) + eps) * g + b => LayerNormalization(x, g, b)"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        graph = model.graph
        count = 0
        for div in list(graph):
            if div.op_type != "Div" or div.domain not in ("", "ai.onnx") or div.graph is not graph:
                continue
            found = _match(div)
            if found is None:
                continue
            x, gamma, beta, axis, eps, nodes, out = found
            if gamma is None:
                width = x.shape[-1] if x.shape is not None and isinstance(x.shape[-1], int) else None
                if width is None or axis != -1:
                    continue
                gamma = add_initializer(graph, "layernorm_ones", np.ones(width, dtype=np.float32))
            attrs = [ir.AttrInt64("axis", axis), ir.AttrFloat32("epsilon", eps)]
            fused = ir.Node(GREENRT_DOMAIN, "LayerNormalization", [x, gamma, beta], attrs, name=div.name)
            replace_node(graph, nodes, fused, out)
            count += 1
        if count:
            model.opset_imports.setdefault(GREENRT_DOMAIN, 1)
        return count
