"""Fold inference BatchNormalization into the Conv / ConvTranspose / Gemm that feeds it.

With s = gamma / sqrt(var + eps):  W' = W * s (per output channel),  b' = (b - mean) * s + beta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .base import RewritePass, add_initializer, attr, const_array, only_consumer, replace_node

PRODUCERS = ("Conv", "ConvTranspose", "Gemm")


def _scaled_weight(node: ir.Node, w: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    if node.op_type == "Conv":
        return w * s.reshape(-1, *([1] * (w.ndim - 1)))
    if node.op_type == "ConvTranspose":
        groups = attr(node, "group", 1)
        cin, cout_g = w.shape[0], w.shape[1]
        wg = w.reshape(groups, cin // groups, cout_g, *w.shape[2:])
        sg = s.reshape(groups, 1, cout_g, *([1] * (w.ndim - 2)))
        return (wg * sg).reshape(w.shape)
    # Gemm: y = alpha * A' @ B' + beta * C, output channel = column of B'
    if attr(node, "transA", 0) or w.ndim != 2:
        return None
    alpha = attr(node, "alpha", 1.0)
    return w * s[:, None] * alpha if attr(node, "transB", 0) else w * s[None, :] * alpha


@dataclass
class _Fold:
    src: ir.Node  # the Conv / ConvTranspose / Gemm
    bn: ir.Node
    weight: np.ndarray  # W * s, in W's dtype
    bias: np.ndarray  # (b - mean) * s + beta, in W's dtype


class FoldBatchNorm(RewritePass[_Fold]):
    name = "fold_batchnorm"
    rule = "conv(x, W, b) -> BN(gamma, beta, mean, var) => conv(x, W * s, (b - mean) * s + beta)"
    op_types = ("BatchNormalization",)

    def match(self, bn: ir.Node, graph: ir.Graph) -> _Fold | None:
        if attr(bn, "training_mode", 0) or any(v.uses() or v.is_graph_output() for v in bn.outputs[1:]):
            return None
        src = bn.inputs[0].producer() if bn.inputs[0] is not None else None
        if src is None or src.op_type not in PRODUCERS or only_consumer(src.outputs[0]) is not bn:
            return None
        params = [const_array(v) for v in bn.inputs[1:5]]
        w = const_array(src.inputs[1])
        if w is None or any(p is None for p in params):
            return None
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        s = gamma / np.sqrt(var + attr(bn, "epsilon", 1e-5))
        new_w = _scaled_weight(src, w.astype(np.float64), s)
        if new_w is None:
            return None
        b_in = src.inputs[2] if len(src.inputs) > 2 else None
        b = const_array(b_in) if b_in is not None else np.zeros_like(s)
        if b is None:
            return None
        b = b.astype(np.float64)
        if src.op_type == "Gemm":
            b = np.broadcast_to(b * attr(src, "beta", 1.0), s.shape)
        new_b = (b - mean) * s + beta
        return _Fold(src, bn, new_w.astype(w.dtype), new_b.astype(w.dtype))

    def rewrite(self, graph: ir.Graph, m: _Fold) -> str:
        src = m.src
        w_val = add_initializer(graph, f"{src.name or 'w'}_bnfolded_w", m.weight)
        b_val = add_initializer(graph, f"{src.name or 'b'}_bnfolded_b", m.bias)
        attrs = dict(src.attributes)
        if src.op_type == "Gemm":
            attrs = {k: v for k, v in attrs.items() if k not in ("alpha", "beta")}
        fused = ir.Node(src.domain, src.op_type, [src.inputs[0], w_val, b_val], attributes=attrs.values(),
                        name=src.name)
        replace_node(graph, [src, m.bn], fused, m.bn.outputs[0])
        return f"{m.bn.name} -> {src.op_type} {src.name}"
