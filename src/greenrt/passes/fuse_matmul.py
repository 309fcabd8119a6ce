"""MatMul/Gemm + bias + activation => one greenrt.FusedMatMul (the cuBLASLt bias/activation epilogue).

Gemm's transB, alpha and beta are applied to the constant weight and bias once, at build time.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from .activations import absorb_activation
from .base import GREENRT_DOMAIN, GraphPass, PassReport, add_initializer, attr, const_array, only_consumer, replace_node


def _bias_add(out: ir.Value, n_cols: int) -> tuple[ir.Node, ir.Value] | None:
    """out -> Add(out, b) with b a constant broadcasting along the last axis only."""
    add = only_consumer(out)
    if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx"):
        return None
    b = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    c = const_array(b)
    if c is None or c.size != n_cols or c.shape[-1:] != (n_cols,):
        return None
    return add, b


def _gemm_operands(graph: ir.Graph, gemm: ir.Node):
    """Gemm(A, B, C) with constant B (and C) -> (A, W, bias) for A @ W + bias, or None."""
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
        bias_arr = np.broadcast_to(c.reshape(-1) * attr(gemm, "beta", 1.0), (w.shape[1],)).astype(b.dtype)
        bias = add_initializer(graph, f"{gemm.name or 'gemm'}_bias", np.ascontiguousarray(bias_arr))
    weight = add_initializer(graph, f"{gemm.name or 'gemm'}_weight", np.ascontiguousarray(w.astype(b.dtype)))
    return gemm.inputs[0], weight, bias


class FuseMatMulBiasActivation(GraphPass):
    name = "fuse_matmul"
    rule = "act(MatMul(a, W) + b) | act(Gemm(a, B, C)) => greenrt.FusedMatMul(a, W, b, activation=act)"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        graph = model.graph
        count = 0
        for mm in list(graph):
            if mm.domain not in ("", "ai.onnx") or mm.op_type not in ("MatMul", "Gemm"):
                continue
            if mm.op_type == "Gemm":
                operands = _gemm_operands(graph, mm)
                if operands is None:
                    continue
                a, w, bias = operands
                nodes, out = [mm], mm.outputs[0]
            else:
                w_arr = const_array(mm.inputs[1])
                if w_arr is None or w_arr.ndim != 2:
                    continue
                a, w, bias = mm.inputs[0], mm.inputs[1], None
                nodes, out = [mm], mm.outputs[0]
                added = _bias_add(out, w_arr.shape[1])
                if added is not None:
                    add, bias = added
                    nodes.append(add)
                    out = add.outputs[0]
            name, params, out = absorb_activation(out, nodes)
            if len(nodes) == 1 and mm.op_type == "MatMul":
                continue
            attrs = [ir.AttrString("activation", name), ir.AttrFloat32s("activation_params", params)]
            fused = ir.Node(GREENRT_DOMAIN, "FusedMatMul", [a, w, bias], attrs, name=mm.name)
            replace_node(graph, nodes, fused, out)
            count += 1
            report.details.append(f"{mm.name}: {'+'.join(n.op_type for n in nodes)}")
        if count:
            model.opset_imports.setdefault(GREENRT_DOMAIN, 1)
        return count
