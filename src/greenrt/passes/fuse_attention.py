"""MatMul-Scale-Mask-Softmax-MatMul => one greenrt.ScaledDotProductAttention (flash / memory-efficient kernels).

The scale is taken after the first MatMul (a Div or Mul of the scores) or before it (q and k^T each multiplied by a
constant, as torch's scaled_dot_product_attention exports: both by sqrt(scale)).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx_ir as ir

from .base import GREENRT_DOMAIN, RewritePass, attr, replace_node
from .patterns import consumer, other_input, producer, scalar


def _softmax_on_last_axis(softmax: ir.Node, opset: int) -> bool:
    axis = attr(softmax, "axis", -1 if opset >= 13 else 1)
    rank = len(softmax.inputs[0].shape) if softmax.inputs[0].shape is not None else None
    return axis == -1 or (rank is not None and axis == rank - 1)


@dataclass
class _Attention:
    q: ir.Value
    kt: ir.Value
    v: ir.Value
    mask: ir.Value | None
    scale: float
    nodes: list[ir.Node]  # [Mul(q), Mul(kT),] MatMul [, Div|Mul] [, Add], Softmax, MatMul
    out: ir.Value
    name: str | None  # the Softmax's, for the fused node


def _mask_fits(mask: ir.Value | None, scores: ir.Value) -> bool:
    """The mask broadcasts to the scores' shape without widening it, as SDPA's attn_mask must: no more dims, and
    no dim that is not 1 where the scores have another size. Dims not known statically are let through."""
    if mask is None or mask.shape is None or scores.shape is None:
        return True
    if len(mask.shape) > len(scores.shape):
        return False
    return not any(isinstance(m, int) and isinstance(s, int) and m != 1 and m != s
                   for m, s in zip(reversed(list(mask.shape)), reversed(list(scores.shape))))


def _match(softmax: ir.Node, opset: int) -> _Attention | None:
    if not _softmax_on_last_axis(softmax, opset):
        return None
    nodes, s, mask, scale = [softmax], softmax.inputs[0], None, 1.0
    add = producer(s, "Add")
    if add is not None:
        for cand in add.inputs:
            if producer(cand, "MatMul") or producer(cand, "Div") or producer(cand, "Mul"):
                s, mask = cand, other_input(add, cand)
                nodes.insert(0, add)
                break
        else:
            return None
        if not _mask_fits(mask, s):
            return None
    for op_type in ("Div", "Mul"):
        sc = producer(s, op_type)
        if sc is not None and scalar(sc.inputs[1]) is not None:
            c = scalar(sc.inputs[1])
            scale = 1.0 / c if op_type == "Div" else c
            s = sc.inputs[0]
            nodes.insert(0, sc)
            break
    qk = producer(s, "MatMul")
    if qk is None:
        return None
    nodes.insert(0, qk)
    pv = consumer(softmax.outputs[0], "MatMul")
    if pv is None or pv.inputs[0] is not softmax.outputs[0]:
        return None
    nodes.append(pv)
    for a, b in zip(nodes, nodes[1:]):  # each intermediate feeds only the next node
        if consumer(a.outputs[0], b.op_type) is not b:
            return None
    q, kt, v = qk.inputs[0], qk.inputs[1], pv.inputs[1]
    prescaled = []
    for i, t in enumerate((q, kt)):  # q * c and k^T * c (torch's SDPA export scales each by sqrt(scale))
        mul = producer(t, "Mul")
        if mul is None or len(t.uses()) != 1 or t.is_graph_output():
            continue
        j = 1 if scalar(mul.inputs[1]) is not None else 0 if scalar(mul.inputs[0]) is not None else None
        if j is None:
            continue
        scale *= scalar(mul.inputs[j])
        prescaled.append(mul)
        q, kt = (mul.inputs[1 - j], kt) if i == 0 else (q, mul.inputs[1 - j])
    nodes[:0] = prescaled
    if any(t.shape is None or len(t.shape) < 3 for t in (q, kt, v)):
        return None
    return _Attention(q, kt, v, mask, scale, nodes, pv.outputs[0], softmax.name)


class FuseAttention(RewritePass[_Attention]):
    name = "fuse_attention"
    rule = ("MatMul(Softmax(MatMul(q [* c], kT [* c]) * scale + mask), v) => "
            "greenrt.ScaledDotProductAttention(q, kT, v, mask)")
    op_types = ("Softmax",)
    creates_domain = GREENRT_DOMAIN

    def match(self, softmax: ir.Node, graph: ir.Graph) -> _Attention | None:
        return _match(softmax, graph.opset_imports.get("", 1))

    def rewrite(self, graph: ir.Graph, m: _Attention) -> None:
        attrs = [ir.AttrFloat32("scale", m.scale), ir.AttrInt64("k_transposed", 1)]
        fused = ir.Node(GREENRT_DOMAIN, "ScaledDotProductAttention", [m.q, m.kt, m.v, m.mask], attrs, name=m.name)
        replace_node(graph, m.nodes, fused, m.out)
        _state_head_dim(fused.outputs[0], m.v)


def _state_head_dim(out: ir.Value, v: ir.Value) -> None:
    """The attention's output has v's last dim: stated where shape inference lost it and v's is known (later
    passes reason about the head layout: gemm_row_order)."""
    if out.shape is None or v.shape is None or not len(out.shape) or not len(v.shape):
        return
    if not isinstance(out.shape[-1], int) and isinstance(v.shape[-1], int):
        out.shape = ir.Shape([*list(out.shape)[:-1], v.shape[-1]])
