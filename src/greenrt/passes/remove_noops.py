"""Remove what inference does not need: Identity, Dropout (inference mode), Cast to the type it already has."""

from __future__ import annotations

import onnx_ir as ir

from .base import GraphPass, PassReport


def _bypass(graph: ir.Graph, node: ir.Node) -> bool:
    """Route users of node's first output to its first input and drop the node, if the graph allows it."""
    src, out = node.inputs[0], node.outputs[0]
    if src is None or any(v.uses() or v.is_graph_output() for v in node.outputs[1:]):
        return False  # a Dropout mask someone reads: keep
    if out.is_graph_output():
        if src.is_graph_input() or src.is_initializer() or src.is_graph_output():
            return False  # would merge two graph-level names
        name = out.name
        out.replace_all_uses_with(src, replace_graph_outputs=True)
        out.name = None
        src.name = name
    else:
        out.replace_all_uses_with(src)
    graph.remove(node, safe=True)
    return True


def _is_noop(node: ir.Node) -> bool:
    if node.domain not in ("", "ai.onnx"):
        return False
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


class RemoveNoops(GraphPass):
    name = "remove_noops"
    rule = "Identity(x) / Dropout(x) [inference] / Cast(x: T, to=T) => x"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        count = 0
        for node in list(model.graph):
            if _is_noop(node) and _bypass(model.graph, node):
                count += 1
                report.details.append(f"{node.op_type} {node.name}")
        return count
