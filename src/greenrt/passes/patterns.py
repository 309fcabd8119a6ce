"""Tiny matching helpers for the decomposed-pattern fusions (GELU, LayerNorm, attention)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from .base import attr, const_array, is_onnx, only_consumer


def producer(value: ir.Value | None, op_type: str) -> ir.Node | None:
    """The node producing ``value`` if it is an ``op_type`` of the default domain."""
    node = value.producer() if value is not None else None
    return node if is_onnx(node) and node.op_type == op_type else None


def consumer(value: ir.Value, op_type: str) -> ir.Node | None:
    """The node reading ``value`` alone (see only_consumer) if it is an ``op_type`` of the default domain."""
    node = only_consumer(value)
    return node if is_onnx(node) and node.op_type == op_type else None


def read_only_inside(nodes: list[ir.Node], out: ir.Value) -> bool:
    """Every value ``nodes`` produce but ``out`` is read only by ``nodes`` and is no graph output: one fused node
    that computes ``out`` loses nothing (else the replacement could not remove them)."""
    inside = {id(n) for n in nodes}
    return all(v is out or (not v.is_graph_output() and all(id(user) in inside for user, _ in v.uses()))
               for n in nodes for v in n.outputs)


def scalar(value: ir.Value | None) -> float | None:
    c = const_array(value)
    if c is None or c.size != 1:
        return None
    return float(c.reshape(()))


def other_input(node: ir.Node, value: ir.Value) -> ir.Value | None:
    """For a binary node with ``value`` as one input, the other input."""
    a, b = node.inputs[0], node.inputs[1]
    if a is value:
        return b
    if b is value:
        return a
    return None


def close(x: float | None, target: float, rtol: float = 1e-3) -> bool:
    return x is not None and abs(x - target) <= rtol * abs(target)


def reduce_axes(node: ir.Node) -> list[int] | None:
    """The axes of a Reduce* node, from the attribute (old opsets) or the constant second input."""
    if "axes" in node.attributes:
        return list(attr(node, "axes"))
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        c = const_array(node.inputs[1])
        return None if c is None else [int(a) for a in np.asarray(c).reshape(-1)]
    return None
