"""The decomposed hard activations that Paddle and some exporters write => HardSwish / HardSigmoid, so the conv
epilogue fusion can take them (PP-OCRv4's detector has 40 of these chains).

    x * Clip(x + 3, 0, 6) / 6        => HardSwish(x)        (the / 6 may be * (1/6), the Mul in either order)
    Clip(x + 3, 0, 6) / 6            => HardSigmoid(x, alpha=1/6, beta=0.5)
    x * HardSigmoid(x, 1/6, 0.5)     => HardSwish(x)

HardSwish is an ONNX op from opset 14; below that (PP-OCR's files are opset 11/12) the pass writes
greenrt.HardSwish, the same function.
"""

from __future__ import annotations

import onnx_ir as ir

from .activations import _clip_bounds
from .base import GREENRT_DOMAIN, GraphPass, PassReport, attr, replace_node
from .patterns import close, consumer, other_input, producer, scalar


def _divided_by_six(value: ir.Value) -> ir.Node | None:
    """The Div(value, 6) or Mul(value, 1/6) reading ``value`` alone."""
    div = consumer(value, "Div")
    if div is not None and div.inputs[0] is value and close(scalar(div.inputs[1]), 6.0):
        return div
    mul = consumer(value, "Mul")
    if mul is not None and close(scalar(other_input(mul, value)), 1 / 6):
        return mul
    return None


def _relu6_of_x_plus_3(clip: ir.Node) -> tuple[ir.Value, ir.Node] | None:
    """Clip(x + 3, 0, 6): (x, the Add node)."""
    lo, hi = _clip_bounds(clip)
    if lo is None or not (lo == 0.0 and close(hi, 6.0)):
        return None
    add = producer(clip.inputs[0], "Add")
    if add is None or consumer(add.outputs[0], "Clip") is not clip:
        return None
    for x in add.inputs:
        if close(scalar(other_input(add, x)), 3.0) and scalar(x) is None:
            return x, add
    return None


def _is_hard_sigmoid_sixth(node: ir.Node) -> bool:
    return (node.op_type == "HardSigmoid" and node.domain in ("", "ai.onnx")
            and close(attr(node, "alpha", 0.2), 1 / 6) and close(attr(node, "beta", 0.5), 0.5))


class FuseHardActivations(GraphPass):
    name = "fuse_hardswish"
    rule = "x * Clip(x + 3, 0, 6) / 6 => HardSwish(x); Clip(x + 3, 0, 6) / 6 => HardSigmoid(x)"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        graph = model.graph
        self.domain = "" if model.opset_imports.get("", 0) >= 14 else GREENRT_DOMAIN
        count = 0
        for node in list(graph):
            if node.graph is not graph:
                continue
            if node.op_type == "Clip" and node.domain in ("", "ai.onnx"):
                count += self._from_clip(graph, node, report)
            elif _is_hard_sigmoid_sixth(node):
                count += self._from_hard_sigmoid(graph, node, report)
        if count and self.domain:
            model.opset_imports.setdefault(GREENRT_DOMAIN, 1)
        return count

    def _from_clip(self, graph: ir.Graph, clip: ir.Node, report: PassReport) -> int:
        found = _relu6_of_x_plus_3(clip)
        if found is None:
            return 0
        x, add = found
        r6 = clip.outputs[0]
        mul = consumer(r6, "Mul")
        if mul is not None and other_input(mul, r6) is x:  # x * relu6(x + 3) / 6
            six = _divided_by_six(mul.outputs[0])
            if six is None:
                return 0
            fused = ir.Node(self.domain, "HardSwish", [x], name=clip.name)
            replace_node(graph, [add, clip, mul, six], fused, six.outputs[0])
            report.details.append(f"{clip.name}: HardSwish")
            return 1
        six = _divided_by_six(r6)  # relu6(x + 3) / 6
        if six is None:
            return 0
        fused = ir.Node("", "HardSigmoid", [x], [ir.AttrFloat32("alpha", 1 / 6), ir.AttrFloat32("beta", 0.5)],
                        name=clip.name)
        replace_node(graph, [add, clip, six], fused, six.outputs[0])
        report.details.append(f"{clip.name}: HardSigmoid")
        count = 1
        count += self._from_hard_sigmoid(graph, fused, report)
        return count

    def _from_hard_sigmoid(self, graph: ir.Graph, hs: ir.Node, report: PassReport) -> int:
        x, out = hs.inputs[0], hs.outputs[0]
        mul = consumer(out, "Mul")
        if mul is None or other_input(mul, out) is not x:
            return 0
        fused = ir.Node(self.domain, "HardSwish", [x], name=hs.name)
        replace_node(graph, [hs, mul], fused, mul.outputs[0])
        report.details.append(f"{hs.name}: HardSwish")
        return 1
