"""The decomposed hard activations that Paddle and some exporters write => HardSwish / HardSigmoid, so the conv
epilogue fusion can take them (PP-OCRv4's detector has 40 of these chains).

    x * Clip(x + 3, 0, 6) / 6        => HardSwish(x)        (the / 6 may be * (1/6), the Mul in either order)
    Clip(x + 3, 0, 6) / 6            => HardSigmoid(x, alpha=1/6, beta=0.5)
    x * HardSigmoid(x, 1/6, 0.5)     => HardSwish(x)

HardSwish is an ONNX op from opset 14; below that (PP-OCR's files are opset 11/12) the pass writes
greenrt.HardSwish, the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx_ir as ir

from .activations import _clip_bounds
from .base import GREENRT_DOMAIN, RewritePass, attr, is_onnx, replace_node
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
    return (node.op_type == "HardSigmoid" and is_onnx(node)
            and close(attr(node, "alpha", 0.2), 1 / 6) and close(attr(node, "beta", 0.5), 0.5))


def _hardswish_domain(graph: ir.Graph) -> str:
    """ONNX's HardSwish from opset 14, greenrt's below."""
    return "" if graph.opset_imports.get("", 0) >= 14 else GREENRT_DOMAIN


def _hardswish_of_x(hs_out: ir.Value, x: ir.Value) -> ir.Node | None:
    """The Mul(x, ``hs_out``) reading the HardSigmoid's output alone: x * HardSigmoid(x) is HardSwish(x)."""
    mul = consumer(hs_out, "Mul")
    return mul if mul is not None and other_input(mul, hs_out) is x else None


@dataclass
class _Hard:
    anchor: ir.Node  # the Clip or HardSigmoid; its name goes to the fused node
    x: ir.Value
    sigmoid: list[ir.Node]  # Add, Clip, / 6 => HardSigmoid(x) first; empty where the match is HardSwish at once
    swish: list[ir.Node]  # => HardSwish(x) (after that HardSigmoid: the Mul by x); empty: HardSigmoid alone


class FuseHardActivations(RewritePass[_Hard]):
    name = "fuse_hardswish"
    rule = "x * Clip(x + 3, 0, 6) / 6 => HardSwish(x); Clip(x + 3, 0, 6) / 6 => HardSigmoid(x)"
    op_types = ("Clip", "HardSigmoid")

    def new_domain(self, graph: ir.Graph) -> str | None:
        return _hardswish_domain(graph) or None

    def match(self, node: ir.Node, graph: ir.Graph) -> _Hard | None:
        if node.op_type == "HardSigmoid":
            mul = _hardswish_of_x(node.outputs[0], node.inputs[0]) if _is_hard_sigmoid_sixth(node) else None
            return None if mul is None else _Hard(node, node.inputs[0], [], [node, mul])
        found = _relu6_of_x_plus_3(node)
        if found is None:
            return None
        x, add = found
        r6 = node.outputs[0]
        mul = consumer(r6, "Mul")
        if mul is not None and other_input(mul, r6) is x:  # x * relu6(x + 3) / 6
            six = _divided_by_six(mul.outputs[0])
            return None if six is None else _Hard(node, x, [], [add, node, mul, six])
        six = _divided_by_six(r6)  # relu6(x + 3) / 6, maybe then times x
        if six is None:
            return None
        mul = _hardswish_of_x(six.outputs[0], x)
        return _Hard(node, x, [add, node, six], [] if mul is None else [mul])

    def rewrite(self, graph: ir.Graph, m: _Hard) -> list[str]:
        """One detail line per op written: the HardSigmoid, then (where x times it follows) the HardSwish."""
        name, details, swish = m.anchor.name, [], m.swish
        if m.sigmoid:
            attrs = [ir.AttrFloat32("alpha", 1 / 6), ir.AttrFloat32("beta", 0.5)]
            hs = ir.Node("", "HardSigmoid", [m.x], attrs, name=name)
            replace_node(graph, m.sigmoid, hs, m.sigmoid[-1].outputs[0])
            details.append(f"{name}: HardSigmoid")
            if swish:  # x * that HardSigmoid
                swish = [hs, *swish]
        if swish:
            fused = ir.Node(_hardswish_domain(graph), "HardSwish", [m.x], name=name)
            replace_node(graph, swish, fused, swish[-1].outputs[0])
            details.append(f"{name}: HardSwish")
        return details
