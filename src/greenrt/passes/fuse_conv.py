"""Conv + bias + residual Add + activation => one greenrt.FusedConv (the cuDNN conv-bias-add-act epilogue)."""

from __future__ import annotations

import onnx_ir as ir

from .activations import absorb_activation
from .base import GREENRT_DOMAIN, GraphPass, PassReport, const_array, only_consumer, replace_node

CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def _residual(conv_out: ir.Value) -> tuple[ir.Node, ir.Value] | None:
    """conv_out -> Add(conv_out, z) with z a same-shaped runtime tensor: (add node, z)."""
    add = only_consumer(conv_out)
    if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(add.inputs) != 2:
        return None
    z = add.inputs[1] if add.inputs[0] is conv_out else add.inputs[0]
    if z is conv_out or const_array(z) is not None:
        return None
    if z.shape is None or conv_out.shape is None or len(z.shape) != len(conv_out.shape):
        return None
    if any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(z.shape, conv_out.shape)):
        return None
    return add, z


class FuseConvActivation(GraphPass):
    name = "fuse_conv"
    rule = "act(Conv(x, W, b) [+ z]) => greenrt.FusedConv(x, W, b, z, activation=act)"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        graph = model.graph
        count = 0
        for conv in list(graph):
            if conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx") or conv.graph is not graph:
                continue
            if const_array(conv.inputs[1]) is None:
                continue
            nodes, out, z = [conv], conv.outputs[0], None
            residual = _residual(out)
            if residual is not None:
                add, z = residual
                nodes.append(add)
                out = add.outputs[0]
            name, params, out = absorb_activation(out, nodes)
            if len(nodes) == 1:
                continue
            bias = conv.inputs[2] if len(conv.inputs) > 2 else None
            attrs = [ir.Attr(k, a.type, a.value) for k, a in conv.attributes.items() if k in CONV_ATTRS]
            attrs += [ir.AttrString("activation", name), ir.AttrFloat32s("activation_params", params)]
            fused = ir.Node(GREENRT_DOMAIN, "FusedConv", [conv.inputs[0], conv.inputs[1], bias, z], attrs,
                            name=conv.name)
            replace_node(graph, nodes, fused, out)
            count += 1
            report.details.append(f"{conv.name}: {'+'.join(n.op_type for n in nodes)}")
        if count:
            model.opset_imports.setdefault(GREENRT_DOMAIN, 1)
        return count
