"""Per-channel constant Mul / Add after a Conv fold into its weight and bias (exporters that decompose
BatchNormalization, or add the bias as a separate node, leave these).

    Conv(x, W, b) * s  =>  Conv(x, W * s, b * s)          Conv(x, W, b) + t  =>  Conv(x, W, b + t)
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from .base import GraphPass, PassReport, add_initializer, attr, const_array, only_consumer


def _per_channel(c: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """``c`` as a [C] vector if it broadcasts over a conv output of ``rank`` dims only along the channel axis."""
    if c.size == 1:
        return np.full(channels, c.reshape(()).item(), dtype=c.dtype)
    shape = list(c.shape)
    while len(shape) < rank:
        shape.insert(0, 1)
    if len(shape) != rank or shape[1] != channels or any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    return c.reshape(channels)


class FoldConvAffine(GraphPass):
    name = "fold_conv_affine"
    rule = "Conv(x, W, b) * s + t (per channel) => Conv(x, W * s, b * s + t)"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        graph = model.graph
        count = 0
        for conv in list(graph):
            if conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
                continue
            w = const_array(conv.inputs[1])
            out = conv.outputs[0]
            if w is None or out.shape is None or attr(conv, "group", 1) < 1:
                continue
            b_in = conv.inputs[2] if len(conv.inputs) > 2 else None
            b = const_array(b_in) if b_in is not None else np.zeros(w.shape[0], dtype=w.dtype)
            if b is None:
                continue
            folded = 0
            while True:
                node = only_consumer(out)
                if node is None or node.op_type not in ("Mul", "Add") or node.domain not in ("", "ai.onnx"):
                    break
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
                new_out = node.outputs[0]
                name = new_out.name
                out_uses_graph_output = new_out.is_graph_output()
                new_out.replace_all_uses_with(out, replace_graph_outputs=True)
                graph.remove(node, safe=True)
                if out_uses_graph_output:
                    new_out.name = None
                    out.name = name
                out.type, out.shape = new_out.type, new_out.shape
                folded += 1
            if folded:
                conv.replace_input_with(1, add_initializer(graph, f"{conv.name or 'conv'}_affine_w", w))
                bias = add_initializer(graph, f"{conv.name or 'conv'}_affine_b", b.astype(w.dtype))
                if len(conv.inputs) > 2:
                    conv.replace_input_with(2, bias)
                else:
                    conv.resize_inputs(3)
                    conv.replace_input_with(2, bias)
                count += folded
        return count
