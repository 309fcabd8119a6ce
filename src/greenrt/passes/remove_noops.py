"""Remove what inference does not need: Identity, Dropout (inference mode), Cast to the type it already has."""

from __future__ import annotations

import onnx_ir as ir

from .base import RewritePass


def _is_noop(node: ir.Node) -> bool:
    if node.op_type == "Identity":
        return True
    if node.op_type == "Dropout":
        training = node.inputs[2] if len(node.inputs) > 2 else None
        if training is not None:
            const = training.const_value
            return const is not None and not bool(const.numpy())
        return True
    if node.op_type == "Cast":
        to = node.attributes.get("to")
        src = node.inputs[0]
        return to is not None and src is not None and src.dtype is not None and int(src.dtype) == to.value
    return False


def _can_bypass(node: ir.Node) -> bool:
    """Users of node's first output can read its first input instead, if the graph allows it."""
    src, out = node.inputs[0], node.outputs[0]
    if src is None or any(v.uses() or v.is_graph_output() for v in node.outputs[1:]):
        return False  # a Dropout mask someone reads: keep
    if out.is_graph_output():
        return not (src.is_graph_input() or src.is_initializer() or src.is_graph_output())  # would merge two names
    return True


class RemoveNoops(RewritePass[ir.Node]):
    name = "remove_noops"
    rule = "Identity(x) / Dropout(x) [inference] / Cast(x: T, to=T) => x"
    op_types = ("Identity", "Dropout", "Cast")

    def match(self, node: ir.Node, graph: ir.Graph) -> ir.Node | None:
        return node if _is_noop(node) and _can_bypass(node) else None

    def rewrite(self, graph: ir.Graph, node: ir.Node) -> str:
        """Route users of node's first output to its first input (which takes a graph output's name) and drop it."""
        src, out = node.inputs[0], node.outputs[0]
        if out.is_graph_output():
            name = out.name
            out.replace_all_uses_with(src, replace_graph_outputs=True)
            out.name = None
            src.name = name
        else:
            out.replace_all_uses_with(src)
        graph.remove(node, safe=True)
        return f"{node.op_type} {node.name}"
