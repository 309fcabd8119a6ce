"""MatMul/Gemm + bias + activation => one greenrt.FusedMatMul (the cuBLASLt bias/activation epilogue).

Gemm's transB, alpha and beta are applied to the constant weight and bias once, at build time. The weight is stored
(N, K), as torch's Linear holds it (trans_w=1), so the op runs as F.linear: the bias in cuBLASLt's epilogue and the
kernels PyTorch picks for a Linear. A weight other nodes also read keeps its (K, N) form (no second copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .activations import absorb_activation
from .base import GREENRT_DOMAIN, RewritePass, add_initializer, attr, const_array, is_onnx, only_consumer, replace_node


def _bias_add(out: ir.Value, n_cols: int) -> tuple[ir.Node, ir.Value] | None:
    """out -> Add(out, b) with b a constant broadcasting along the last axis only."""
    add = only_consumer(out)
    if not is_onnx(add) or add.op_type != "Add":
        return None
    b = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    c = const_array(b)
    if c is None or c.size != n_cols or c.shape[-1:] != (n_cols,):
        return None
    return add, b


def _gemm_operands(gemm: ir.Node) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Gemm(A, B, C) with constant B (and C) -> (W, bias) for A @ W + bias, or None."""
    if attr(gemm, "transA", 0):
        return None
    b = const_array(gemm.inputs[1])
    if b is None or b.ndim != 2:
        return None
    w = (b.T if attr(gemm, "transB", 0) else b) * attr(gemm, "alpha", 1.0)
    c_in = gemm.inputs[2] if len(gemm.inputs) > 2 else None
    bias = None
    if c_in is not None:
        c = const_array(c_in)
        if c is None or c.size not in (1, w.shape[1]):
            return None
        bias = np.broadcast_to(c.reshape(-1) * attr(gemm, "beta", 1.0), (w.shape[1],)).astype(b.dtype)
    return np.ascontiguousarray(w.astype(b.dtype)), None if bias is None else np.ascontiguousarray(bias)


@dataclass
class _Epilogue:
    mm: ir.Node
    nodes: list[ir.Node]  # the MatMul or Gemm, the bias Add if any, the activation's nodes if any
    a: ir.Value
    w: ir.Value | np.ndarray  # a Gemm's B (and C) are rewritten as W (and a bias) at build time
    bias: ir.Value | np.ndarray | None
    activation: str
    params: list[float]
    out: ir.Value


class FuseMatMulBiasActivation(RewritePass[_Epilogue]):
    name = "fuse_matmul"
    rule = "act(MatMul(a, W) + b) | act(Gemm(a, B, C)) => greenrt.FusedMatMul(a, W, b, activation=act)"
    op_types = ("MatMul", "Gemm")
    creates_domain = GREENRT_DOMAIN

    def match(self, mm: ir.Node, graph: ir.Graph) -> _Epilogue | None:
        nodes, out = [mm], mm.outputs[0]
        if mm.op_type == "Gemm":
            operands = _gemm_operands(mm)
            if operands is None:
                return None
            w, bias = operands
        else:
            w_arr = const_array(mm.inputs[1])
            if w_arr is None or w_arr.ndim != 2:
                return None
            w, bias = mm.inputs[1], None
            added = _bias_add(out, w_arr.shape[1])
            if added is not None:
                add, bias = added
                nodes.append(add)
                out = add.outputs[0]
        name, params, out = absorb_activation(out, nodes)
        if len(nodes) == 1 and mm.op_type == "MatMul":
            return None
        return _Epilogue(mm, nodes, mm.inputs[0], w, bias, name, params, out)

    def rewrite(self, graph: ir.Graph, m: _Epilogue) -> str:
        w, bias = m.w, m.bias
        if isinstance(bias, np.ndarray):  # a Gemm's, made at build time (bias first: the names stay as they were)
            bias = add_initializer(graph, f"{m.mm.name or 'gemm'}_bias", bias)
        hint = f"{m.mm.name or 'gemm'}_weight"
        trans_w = isinstance(w, np.ndarray) or only_consumer(w) is m.mm
        if not isinstance(w, np.ndarray) and trans_w:
            hint, w = f"{w.name}_t", const_array(w)
        if isinstance(w, np.ndarray):
            w = add_initializer(graph, hint, np.ascontiguousarray(w.T) if trans_w else w)
        attrs = [ir.AttrString("activation", m.activation), ir.AttrFloat32s("activation_params", m.params),
                 ir.AttrInt64("trans_w", int(trans_w))]
        fused = ir.Node(GREENRT_DOMAIN, "FusedMatMul", [m.a, w, bias], attrs, name=m.mm.name)
        replace_node(graph, m.nodes, fused, m.out)
        return f"{m.mm.name}: {'+'.join(n.op_type for n in m.nodes)}"
