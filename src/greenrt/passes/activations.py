"""Recognising an activation node (or the x * sigmoid(x) SiLU pair) after a value, for the epilogue fusions."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from .base import GREENRT_DOMAIN, ONNX_DOMAINS, attr, const_array, only_consumer


def absorb_activation(out: ir.Value, nodes: list[ir.Node]) -> tuple[str, list[float], ir.Value]:
    """If ``out`` flows only into an activation, add its nodes to ``nodes``: (name, params, new output);
    else ("", [], out) and ``nodes`` unchanged."""
    act = match_activation(out)
    if act is None:
        return "", [], out
    name, params, act_nodes, new_out = act
    nodes += act_nodes
    return name, params, new_out


def match_activation(value: ir.Value) -> tuple[str, list[float], list[ir.Node], ir.Value] | None:
    """If ``value`` flows only into an activation: (name, params, nodes to absorb, activation output)."""
    silu = _match_silu(value)
    if silu:
        return silu
    node = only_consumer(value)
    if node is None or node.domain not in (*ONNX_DOMAINS, GREENRT_DOMAIN) or node.inputs[0] is not value:
        return None
    t = node.op_type
    if t in ("Relu", "Sigmoid", "Tanh", "HardSwish"):
        return t, [], [node], node.outputs[0]
    if t == "LeakyRelu":
        return t, [attr(node, "alpha", 0.01)], [node], node.outputs[0]
    if t == "HardSigmoid":
        return t, [attr(node, "alpha", 0.2), attr(node, "beta", 0.5)], [node], node.outputs[0]
    if t == "Gelu":  # ONNX's (opset 20) or greenrt's
        name = "GeluTanh" if attr(node, "approximate", "none") == "tanh" else "Gelu"
        return name, [], [node], node.outputs[0]
    if t == "Clip":
        lo, hi = _clip_bounds(node)
        if lo is None:
            return None
        return t, [lo, hi], [node], node.outputs[0]
    return None


def _clip_bounds(node: ir.Node) -> tuple[float | None, float | None]:
    if "min" in node.attributes or "max" in node.attributes:  # opset < 11
        return attr(node, "min", -np.inf), attr(node, "max", np.inf)
    bounds = []
    for i in (1, 2):
        v = node.inputs[i] if len(node.inputs) > i else None
        if v is None:
            bounds.append(-np.inf if i == 1 else np.inf)
            continue
        c = const_array(v)
        if c is None or c.size != 1:
            return None, None
        bounds.append(float(c.reshape(())))
    return bounds[0], bounds[1]


def _match_silu(value: ir.Value):
    """value -> {Sigmoid(value), Mul(value, sigmoid)} and nothing else => SiLU."""
    if value.is_graph_output():
        return None
    users = {id(n): n for n, _ in value.uses()}
    if len(users) != 2:
        return None
    nodes = list(users.values())
    sig = next((n for n in nodes if n.op_type == "Sigmoid"), None)
    mul = next((n for n in nodes if n.op_type == "Mul"), None)
    if sig is None or mul is None or only_consumer(sig.outputs[0]) is not mul:
        return None
    if {id(v) for v in mul.inputs} != {id(value), id(sig.outputs[0])}:
        return None
    return "SiLU", [], [sig, mul], mul.outputs[0]
