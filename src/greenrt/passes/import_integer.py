"""Dynamic quantization: ConvInteger / MatMulInteger (onnxruntime's ``quantize_dynamic``) become greenrt.QConv /
greenrt.QMatMul.

    Mul(Cast(ConvInteger(x_q, W_q, x_zp, W_zp), FLOAT), Mul(s_x, s_w)) + b
        => QConv(x_q, W_q, s_w, b, W_zp=W_zp, X_scale=s_x, X_zp=x_zp)                    (float out)
    Mul(Cast(MatMulInteger(a_q, W_q, a_zp, W_zp), FLOAT), Mul(s_a, s_w)) [+ b]
        => QMatMul(a_q, W_q, s_w, b, W_zp=W_zp, A_scale=s_a, A_zp=a_zp, trans_w=0)    (float out)
    ConvInteger / MatMulInteger without that epilogue
        => QConv / QMatMul(..., W_scale=1, x_scale=1, out_dtype=INT32)                (the same int32 accumulator)

This reads what onnxruntime's ``quantize_dynamic(..., weight_type=QInt8|QUInt8)`` writes for Conv and MatMul:
DynamicQuantizeLinear on the activation (uint8, scale and zero point computed from each input at run time), the
weight as a constant int8/uint8 initializer with its scale and zero point (per tensor, or per output column for a
MatMul with ``per_channel``), ConvInteger / MatMulInteger for the int32 accumulator, then Cast to float, a Mul by
``Mul(x_scale, W_scale)`` and a Conv's bias as an Add of ``Reshape(B, [1, -1, 1, 1])``. The layer takes the Cast, the
Mul and the bias Add; its epilogue computes float32(acc) * (float32 x_scale * W_scale[c]) + b, the very float32
operations of the graph it replaces, so its float output is the graph's (the accumulator being exact). A runtime
scale and zero point (DynamicQuantizeLinear's outputs 1 and 2) become the layer's X_scale / X_zp inputs, constant
ones its ``x_scale`` / ``x_zero_point`` attributes. DynamicQuantizeLinear stays (it is the quantization boundary, as
QuantizeLinear in the QDQ import); the scale Mul goes with dead-code elimination once nothing reads it.

A layer is taken only where every piece is as an INT8 layer needs it, and left as the integer/float ops (which run it
exactly) otherwise: a constant int8/uint8 weight (a MatMulInteger's 2-D), a scalar input zero point of the input's
type (a MatMulInteger's per-row zero point stays), a constant weight zero point per tensor or per output channel,
a reduction that cannot overflow int32 (bounded from the actual weights and the full range of the input's type,
whatever a runtime zero point turns out to be). The float epilogue is taken only where the accumulator's one reader
is Cast(to=FLOAT), the Cast's one reader a Mul by S = Mul(s_x, s_w) (either order; or S already a constant, a constant
s_x folded into it) with s_w a positive finite float32 constant, scalar or over the output channels only (axis 1 of a
conv's output, the last axis of a MatMul's) and s_x a float32 scalar; the Add's bias a float32 constant over the
output channels only (another Add stays, after the float layer). An epilogue that does not fit stays as it is,
after an INT32 layer: so does the one older onnxruntime versions wrote (``onnx.quantize`` 0.1.0: the bias divided by
x_scale * W_scale at run time, Floor, Cast to int32 and added to the accumulator before the Cast to float).

Where it runs: right after the first FoldConstants. By then a Conv's bias ``Reshape(B, shape)`` and a constant
``Mul(s_x, s_w)`` are constants and Constant nodes are initializers, so the bias and scales read as constants; the
integer layers themselves read a runtime activation (DynamicQuantizeLinear of a graph input or of an earlier
layer's output), so folding leaves them, their weights and their epilogue as they were written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .base import GREENRT_DOMAIN, RewritePass, add_initializer, attr, const_array, is_onnx, only_consumer
from .base import replace_node
from .import_qdq import CONV_ATTRS, FLOAT, INT32, INT_RANGE, _no_overflow, _Weight

ANCHORS = {"ConvInteger": "QConv", "MatMulInteger": "QMatMul"}


@dataclass
class _Integer:
    anchor: ir.Node
    op_type: str  # QConv | QMatMul
    nodes: list[ir.Node]  # replaced: the anchor, and the Cast, Mul and bias Add of a float epilogue
    x: ir.Value
    w: ir.Value
    w_scale: ir.Value | np.ndarray
    bias: ir.Value | np.ndarray | None
    w_zp: ir.Value | np.ndarray | None
    x_scale: ir.Value | None  # the runtime scale input (X_scale / A_scale), else the attribute holds it
    x_zp: ir.Value | None  # the runtime zero point input (X_zp / A_zp), else the attribute holds it
    attrs: list[ir.Attr]
    out: ir.Value


# -- reading the pieces --------------------------------------------------------------------------------------------
def _optional(node: ir.Node, i: int) -> ir.Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def _is_scalar_shape(value: ir.Value, max_rank: int | None) -> bool:
    """A static shape of one element, of rank at most ``max_rank`` (so it broadcasts without growing the output)."""
    if value.shape is None:
        return False
    dims = list(value.shape)
    return all(d == 1 for d in dims) and (max_rank is None or len(dims) <= max_rank)


def _from_dynamic_quantize(value: ir.Value, index: int) -> bool:
    node = value.producer()
    return (is_onnx(node) and node.op_type == "DynamicQuantizeLinear" and len(node.outputs) > index
            and node.outputs[index] is value)


def _input_zero_point(value: ir.Value | None, dtype: ir.DataType) -> tuple[int, ir.Value | None, int] | None:
    """The input's scalar zero point: (attribute value, runtime input or None, the zero point the overflow bound
    assumes), or None where it is not one (per row, another type)."""
    if value is None:
        return 0, None, 0
    c = const_array(value)
    if c is not None:
        if c.size != 1 or c.ndim > 1 or ir.DataType.from_numpy(c.dtype) != dtype:
            return None
        zp = int(c.reshape(()))
        return zp, None, zp
    if value.dtype != dtype or not (_from_dynamic_quantize(value, 2) or _is_scalar_shape(value, 1)):
        return None
    return 0, value, INT_RANGE[dtype][0]  # any zero point: the bound takes the widest reach, hi - lo


def _weight_zero_point(value: ir.Value | None, dtype: ir.DataType, n: int) -> np.ndarray | None | bool:
    """A constant weight zero point per tensor or over the ``n`` output channels: the array, None (absent or all
    zero) or False (not one an INT8 layer takes)."""
    if value is None:
        return None
    c = const_array(value)
    if c is None or ir.DataType.from_numpy(c.dtype) != dtype or c.ndim > 1 or c.size not in (1, n):
        return False
    return c if c.any() else None


def _over_channels(c: np.ndarray, n: int, axis: int | None, rank: int | None) -> np.ndarray | None:
    """``c`` as a scalar or 1-D [n] where it broadcasts against an output of rank ``rank`` along ``axis`` (counted
    from the front) only, without growing it; an unknown rank takes only ranks 0 and 1, along the last axis."""
    if rank is None:
        if c.ndim > 1:
            return None
        rank, axis = max(c.ndim, 1), max(c.ndim, 1) - 1
    if c.ndim > rank:
        return None
    offset = rank - c.ndim
    for i, d in enumerate(c.shape):
        if d != 1 and (i + offset != axis or d != n):
            return None
    return c.reshape(-1) if c.size == n and n > 1 else c.reshape(())


def _float_constant(value: ir.Value, n: int, axis: int | None, rank: int | None, positive: bool) -> np.ndarray | None:
    c = const_array(value)
    if c is None or c.dtype != np.float32 or not np.isfinite(c).all() or (positive and not (c > 0).all()):
        return None
    return _over_channels(c, n, axis, rank)


def _scales(s: ir.Value, n: int, axis: int | None, rank: int | None):
    """S = Mul(s_x, s_w) (either order) or a constant S: (s_w as scalar or [n], the constant value holding s_w,
    s_x's attribute, s_x's runtime value or None), or None."""
    folded = _float_constant(s, n, axis, rank, positive=True)
    if folded is not None:
        return folded, s, 1.0, None  # s_x and s_w already multiplied: x_scale 1 leaves float32(1 * S) = S
    node = s.producer()
    if not is_onnx(node) or node.op_type != "Mul" or len(node.inputs) != 2 or None in node.inputs:
        return None
    for s_x, s_w in (node.inputs, node.inputs[::-1]):
        w_scale = _float_constant(s_w, n, axis, rank, positive=True)
        if w_scale is None or s_x is s_w:
            continue
        c = const_array(s_x)
        if c is not None:
            if c.dtype == np.float32 and c.size == 1 and (rank is None or c.ndim <= rank) and \
                    np.isfinite(c).all() and float(c.reshape(())) > 0:
                return w_scale, s_w, float(c.reshape(())), None
            continue
        if s_x.dtype == FLOAT and (_from_dynamic_quantize(s_x, 1) or _is_scalar_shape(s_x, rank if rank else 1)):
            return w_scale, s_w, 1.0, s_x
    return None


def _epilogue(acc: ir.Value, n: int, axis: int | None, rank: int | None):
    """acc -> Cast(to=FLOAT) -> Mul(., S) [-> Add(., b)]: (nodes, output, scales as _scales, bias or None)."""
    cast = only_consumer(acc)
    if not is_onnx(cast) or cast.op_type != "Cast" or attr(cast, "to", 0) != int(FLOAT):
        return None
    mul = only_consumer(cast.outputs[0])
    if not is_onnx(mul) or mul.op_type != "Mul" or len(mul.inputs) != 2:
        return None
    casted = cast.outputs[0]
    s = mul.inputs[1] if mul.inputs[0] is casted else mul.inputs[0]
    if s is None or s is casted:
        return None
    scales = _scales(s, n, axis, rank)
    if scales is None:
        return None
    nodes, out, bias = [cast, mul], mul.outputs[0], None
    add = only_consumer(out)
    if is_onnx(add) and add.op_type == "Add" and len(add.inputs) == 2:
        b = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
        c = _float_constant(b, n, axis, rank, positive=False) if b is not None and b is not out else None
        if c is not None:
            nodes.append(add)
            out = add.outputs[0]
            bias = b if const_array(b).shape == (n,) else np.ascontiguousarray(np.broadcast_to(c, (n,)))
    return nodes, out, scales, bias


def _output_rank(node: ir.Node) -> int | None:
    """A MatMulInteger's output rank: its inferred shape's, else from A's (1-D A: 1; else A's rank)."""
    for v in (node.outputs[0], node.inputs[0]):
        if v.shape is not None:
            return max(len(v.shape), 1) if v is node.outputs[0] else (1 if len(v.shape) == 1 else len(v.shape))
    return None


def _same(value: ir.Value | None, array: np.ndarray) -> bool:
    """``value`` is a constant of ``array``'s shape and type (so the layer reads it as it is)."""
    c = const_array(value)
    return c is not None and c.shape == array.shape and c.dtype == array.dtype


# -- the pass ------------------------------------------------------------------------------------------------------
class ImportIntegerLayers(RewritePass[_Integer]):
    name = "import_integer"
    rule = ("Mul(Cast(ConvInteger|MatMulInteger(x_q, W_q, x_zp, W_zp)), Mul(s_x, s_w)) [+ b] => greenrt.QConv / "
            "greenrt.QMatMul(x_q, W_q, s_w, b, W_zp, s_x, x_zp) (float out); without that epilogue the int32 out")
    op_types = tuple(ANCHORS)
    creates_domain = GREENRT_DOMAIN

    def match(self, node: ir.Node, graph: ir.Graph) -> _Integer | None:
        conv = node.op_type == "ConvInteger"
        x, w_value = node.inputs[0], _optional(node, 1)
        if x is None or w_value is None or x.dtype not in INT_RANGE:
            return None
        w = const_array(w_value)
        if w is None or ir.DataType.from_numpy(w.dtype) not in INT_RANGE or (w.ndim < 3 if conv else w.ndim != 2):
            return None
        w_dtype = ir.DataType.from_numpy(w.dtype)
        axis_w, reduce_axes = (0, tuple(range(1, w.ndim))) if conv else (1, (0,))
        n = w.shape[axis_w]
        x_zp = _input_zero_point(_optional(node, 2), x.dtype)
        w_zp = _weight_zero_point(_optional(node, 3), w_dtype, n)
        if x_zp is None or w_zp is False:
            return None
        weight = _Weight(w_value, w, None, None, np.ones((), np.float32), w_zp)
        if not _no_overflow(weight, reduce_axes, x.dtype, x_zp[2], None):
            return None

        rank = w.ndim if conv else _output_rank(node)
        axis = 1 if conv else (rank - 1 if rank is not None else None)
        acc = node.outputs[0]
        epilogue = _epilogue(acc, n, axis, rank) if acc.dtype in (INT32, None) else None
        if epilogue is not None:
            nodes, out, (w_scale, scale_value, x_scale, x_scale_value), bias = epilogue
            nodes = [node, *nodes]
            out_dtype = FLOAT
        else:
            nodes, out, bias = [node], acc, None
            w_scale, x_scale, x_scale_value, scale_value = np.ones((), np.float32), 1.0, None, None
            out_dtype = INT32

        # W_scale and W_zp share a shape: both scalar, or both [n] where either is per channel
        per_channel = w_scale.size > 1 or (w_zp is not None and w_zp.size > 1)
        if per_channel:
            w_scale = np.ascontiguousarray(np.broadcast_to(w_scale.reshape(-1), (n,)), dtype=np.float32)
            w_zp = None if w_zp is None else np.ascontiguousarray(np.broadcast_to(w_zp.reshape(-1), (n,)))
        else:
            w_scale = w_scale.reshape(())
            w_zp = None if w_zp is None else w_zp.reshape(())
        w_scale_in = scale_value if _same(scale_value, w_scale) else w_scale
        zp_value = _optional(node, 3)
        w_zp_in = zp_value if w_zp is not None and _same(zp_value, w_zp) else w_zp

        prefix = "x" if conv else "a"
        attrs = [ir.Attr(k, a.type, a.value) for k, a in node.attributes.items() if k in CONV_ATTRS] if conv else []
        attrs += [ir.AttrFloat32(f"{prefix}_scale", x_scale), ir.AttrInt64(f"{prefix}_zero_point", x_zp[0]),
                  ir.AttrInt64("out_dtype", int(out_dtype))]
        if not conv:
            attrs.append(ir.AttrInt64("trans_w", 0))
        return _Integer(node, ANCHORS[node.op_type], nodes, x, w_value, w_scale_in, bias, w_zp_in, x_scale_value,
                        x_zp[1], attrs, out)

    def rewrite(self, graph: ir.Graph, m: _Integer) -> str:
        hint = m.anchor.name or m.op_type.lower()

        def value(v, suffix):
            return add_initializer(graph, f"{hint}_{suffix}", v) if isinstance(v, np.ndarray) else v

        inputs = [m.x, m.w, value(m.w_scale, "weight_scale"), value(m.bias, "bias"), None,
                  value(m.w_zp, "weight_zero_point"), m.x_scale, m.x_zp]
        while inputs[-1] is None:
            inputs.pop()
        layer = ir.Node(GREENRT_DOMAIN, m.op_type, inputs, m.attrs, name=m.anchor.name)
        replace_node(graph, m.nodes, layer, m.out)
        out = ir.DataType(next(a.value for a in m.attrs if a.name == "out_dtype")).name.lower()
        return f"{m.anchor.name or m.anchor.op_type}: {'+'.join(n.op_type for n in m.nodes)} => {m.op_type} ({out} out)"
