"""Per-channel constant Mul / Add after a Conv fold into its weight and bias (exporters that decompose
BatchNormalization, or add the bias as a separate node, leave these).

    Conv(x, W, b) * s  =>  Conv(x, W * s, b * s)          Conv(x, W, b) + t  =>  Conv(x, W, b + t)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .base import RewritePass, add_initializer, attr, const_array, is_onnx, only_consumer


def _per_channel(c: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """``c`` as a [C] vector if it broadcasts over a conv output of ``rank`` dims only along the channel axis."""
    if c.ndim > rank:
        return None  # it would add dims to the conv output, even where it holds one value
    if c.size == 1:
        return np.full(channels, c.reshape(()).item(), dtype=c.dtype)
    shape = list(c.shape)
    while len(shape) < rank:
        shape.insert(0, 1)
    if len(shape) != rank or shape[1] != channels or any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    return c.reshape(channels)


@dataclass
class _Chain:
    conv: ir.Node
    links: list[ir.Node]  # the Mul / Add nodes after it, in flow order
    weight: np.ndarray  # W and b with every link folded in
    bias: np.ndarray


class FoldConvAffine(RewritePass[_Chain]):
    name = "fold_conv_affine"
    rule = "Conv(x, W, b) * s + t (per channel) => Conv(x, W * s, b * s + t)"
    op_types = ("Conv",)

    def match(self, conv: ir.Node, graph: ir.Graph) -> _Chain | None:
        w = const_array(conv.inputs[1])
        out = conv.outputs[0]
        if w is None or out.shape is None or attr(conv, "group", 1) < 1:
            return None
        b_in = conv.inputs[2] if len(conv.inputs) > 2 else None
        b = const_array(b_in) if b_in is not None else np.zeros(w.shape[0], dtype=w.dtype)
        if b is None:
            return None
        links = []
        while True:
            node = only_consumer(out)
            if not is_onnx(node) or node.op_type not in ("Mul", "Add") or out.shape is None:
                break  # (a link's output of unknown rank: no telling whether the constant is per channel)
            other = node.inputs[1] if node.inputs[0] is out else node.inputs[0]
            c = const_array(other)
            vec = _per_channel(c, w.shape[0], len(out.shape)) if c is not None else None
            if vec is None:
                break
            if node.op_type == "Mul":
                w = w * vec.reshape(-1, *([1] * (w.ndim - 1))).astype(w.dtype)
                b = b * vec.astype(b.dtype)
            else:
                b = b + vec.astype(b.dtype)
            links.append(node)
            out = node.outputs[0]
        return _Chain(conv, links, w, b.astype(w.dtype)) if links else None

    def rewrite(self, graph: ir.Graph, m: _Chain) -> list[None]:
        conv, out = m.conv, m.conv.outputs[0]
        for node in m.links:  # the conv's output takes over each link's uses (and graph-output name)
            new_out = node.outputs[0]
            name = new_out.name
            out_uses_graph_output = new_out.is_graph_output()
            new_out.replace_all_uses_with(out, replace_graph_outputs=True)
            graph.remove(node, safe=True)
            if out_uses_graph_output:
                new_out.name = None
                out.name = name
            out.type, out.shape = new_out.type, new_out.shape
        conv.replace_input_with(1, add_initializer(graph, f"{conv.name or 'conv'}_affine_w", m.weight))
        bias = add_initializer(graph, f"{conv.name or 'conv'}_affine_b", m.bias)
        if len(conv.inputs) <= 2:
            conv.resize_inputs(3)
        conv.replace_input_with(2, bias)
        return [None] * len(m.links)  # each folded Mul / Add counts
