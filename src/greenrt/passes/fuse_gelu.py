"""The erf GELU that exporters write for opsets < 20 => one greenrt.Gelu.

    x * 0.5 * (1 + erf(x / sqrt(2)))   in either order of the two Muls
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx_ir as ir

from .base import GREENRT_DOMAIN, RewritePass, only_consumer, replace_node
from .patterns import close, consumer, other_input, producer, read_only_inside, scalar


@dataclass
class _Gelu:
    x: ir.Value
    nodes: list[ir.Node]  # the scaling (Div or Mul), Erf, Add, the two Muls
    out: ir.Value
    name: str | None  # the Erf's, for the fused node


def _match(erf: ir.Node) -> _Gelu | None:
    div = producer(erf.inputs[0], "Div")
    mul_in = producer(erf.inputs[0], "Mul")
    if div is not None and close(scalar(div.inputs[1]), math.sqrt(2)):
        x, first = div.inputs[0], div
    elif mul_in is not None and close(scalar(mul_in.inputs[1]), 1 / math.sqrt(2)):
        x, first = mul_in.inputs[0], mul_in
    else:
        return None
    add = consumer(erf.outputs[0], "Add")
    if add is None or not close(scalar(other_input(add, erf.outputs[0])), 1.0):
        return None
    m1 = consumer(add.outputs[0], "Mul")
    if m1 is None:
        return None
    partner = other_input(m1, add.outputs[0])
    if partner is x:  # (x * (1 + erf)) * 0.5
        m2 = consumer(m1.outputs[0], "Mul")
        if m2 is None or not close(scalar(other_input(m2, m1.outputs[0])), 0.5):
            return None
        nodes, out = [first, erf, add, m1, m2], m2.outputs[0]
        return _Gelu(x, nodes, out, erf.name) if read_only_inside(nodes, out) else None
    half = producer(partner, "Mul")  # (x * 0.5) * (1 + erf)
    if half is None or half.inputs[0] is not x or not close(scalar(half.inputs[1]), 0.5):
        return None
    if only_consumer(half.outputs[0]) is not m1:
        return None
    nodes, out = [half, first, erf, add, m1], m1.outputs[0]
    return _Gelu(x, nodes, out, erf.name) if read_only_inside(nodes, out) else None


class FuseGelu(RewritePass[_Gelu]):
    name = "fuse_gelu"
    rule = "x * 0.5 * (1 + erf(x / sqrt(2))) => greenrt.Gelu(x)"
    op_types = ("Erf",)
    creates_domain = GREENRT_DOMAIN

    def match(self, erf: ir.Node, graph: ir.Graph) -> _Gelu | None:
        return _match(erf)

    def rewrite(self, graph: ir.Graph, m: _Gelu) -> None:
        order = sorted(m.nodes, key=lambda n: list(graph).index(n))
        fused = ir.Node(GREENRT_DOMAIN, "Gelu", [m.x], [ir.AttrString("approximate", "none")], name=m.name)
        replace_node(graph, order, fused, m.out)
