"""Conv + bias + residual Add + activation => one greenrt.FusedConv (the cuDNN conv-bias-add-act epilogue)."""

from __future__ import annotations

from dataclasses import dataclass

import onnx_ir as ir

from .activations import absorb_activation
from .base import GREENRT_DOMAIN, RewritePass, const_array, is_onnx, only_consumer, replace_node

CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def _residual(conv_out: ir.Value) -> tuple[ir.Node, ir.Value] | None:
    """conv_out -> Add(conv_out, z) with z a same-shaped runtime tensor: (add node, z)."""
    add = only_consumer(conv_out)
    if not is_onnx(add) or add.op_type != "Add" or len(add.inputs) != 2:
        return None
    z = add.inputs[1] if add.inputs[0] is conv_out else add.inputs[0]
    if z is conv_out or const_array(z) is not None:
        return None
    if z.shape is None or conv_out.shape is None or len(z.shape) != len(conv_out.shape):
        return None
    if any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(z.shape, conv_out.shape)):
        return None
    return add, z


@dataclass
class _Epilogue:
    conv: ir.Node
    nodes: list[ir.Node]  # the Conv, the residual Add if any, the activation's nodes if any
    z: ir.Value | None  # the residual
    activation: str
    params: list[float]
    out: ir.Value


class FuseConvActivation(RewritePass[_Epilogue]):
    name = "fuse_conv"
    rule = "act(Conv(x, W, b) [+ z]) => greenrt.FusedConv(x, W, b, z, activation=act)"
    op_types = ("Conv",)
    creates_domain = GREENRT_DOMAIN

    def match(self, conv: ir.Node, graph: ir.Graph) -> _Epilogue | None:
        if const_array(conv.inputs[1]) is None:
            return None
        nodes, out, z = [conv], conv.outputs[0], None
        residual = _residual(out)
        if residual is not None:
            add, z = residual
            nodes.append(add)
            out = add.outputs[0]
        name, params, out = absorb_activation(out, nodes)
        return None if len(nodes) == 1 else _Epilogue(conv, nodes, z, name, params, out)

    def rewrite(self, graph: ir.Graph, m: _Epilogue) -> str:
        conv = m.conv
        bias = conv.inputs[2] if len(conv.inputs) > 2 else None
        attrs = [ir.Attr(k, a.type, a.value) for k, a in conv.attributes.items() if k in CONV_ATTRS]
        attrs += [ir.AttrString("activation", m.activation), ir.AttrFloat32s("activation_params", m.params)]
        fused = ir.Node(GREENRT_DOMAIN, "FusedConv", [conv.inputs[0], conv.inputs[1], bias, m.z], attrs,
                        name=conv.name)
        replace_node(graph, m.nodes, fused, m.out)
        return f"{conv.name}: {'+'.join(n.op_type for n in m.nodes)}"
