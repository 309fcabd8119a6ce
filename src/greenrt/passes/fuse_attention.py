"""MatMul-Scale-Mask-Softmax-MatMul => one greenrt.ScaledDotProductAttention (flash / memory-efficient kernels)."""

from __future__ import annotations

import onnx_ir as ir

from .base import GREENRT_DOMAIN, GraphPass, PassReport, attr, replace_node
from .patterns import consumer, other_input, producer, scalar


def _softmax_on_last_axis(softmax: ir.Node, opset: int) -> bool:
    axis = attr(softmax, "axis", -1 if opset >= 13 else 1)
    rank = len(softmax.inputs[0].shape) if softmax.inputs[0].shape is not None else None
    return axis == -1 or (rank is not None and axis == rank - 1)


def _match(softmax: ir.Node, opset: int):
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
    if any(t.shape is None or len(t.shape) < 3 for t in (q, kt, v)):
        return None
    return q, kt, v, mask, scale, nodes, pv.outputs[0]


class FuseAttention(GraphPass):
    name = "fuse_attention"
    rule = "MatMul(Softmax(MatMul(q, kT) * scale + mask), v) => greenrt.ScaledDotProductAttention(q, kT, v, mask)"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        graph = model.graph
        opset = model.opset_imports.get("", 1)
        count = 0
        for softmax in list(graph):
            if softmax.op_type != "Softmax" or softmax.domain not in ("", "ai.onnx") or softmax.graph is not graph:
                continue
            found = _match(softmax, opset)
            if found is None:
                continue
            q, kt, v, mask, scale, nodes, out = found
            attrs = [ir.AttrFloat32("scale", scale), ir.AttrInt64("k_transposed", 1)]
            fused = ir.Node(GREENRT_DOMAIN, "ScaledDotProductAttention", [q, kt, v, mask], attrs, name=softmax.name)
            replace_node(graph, nodes, fused, out)
            count += 1
        if count:
            model.opset_imports.setdefault(GREENRT_DOMAIN, 1)
        return count
