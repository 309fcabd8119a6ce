"""Explicit quantization: the INT8 layers a quantized ONNX model spells out become greenrt.QConv / greenrt.QMatMul.

    Q(act(Conv(DQ(x_q), DQ(W_q), b)))            => QConv(x_q, W_q, W_scale, b, activation=act, out_dtype=int8|uint8)
    Q(act(Gemm(DQ(a_q), DQ(W_q), c)))            => QMatMul(a_q, W_q, W_scale, c, trans_w=transB, ...)
    Q(act(MatMul(DQ(a_q), DQ(W_q)) + b))         => QMatMul(a_q, W_q, W_scale, b, ...)
    act(Conv|Gemm|MatMul(DQ(x_q), DQ(W_q), ...)) => the same with a float output (nothing quantizes it)
    QLinearConv / QLinearMatMul                  => QConv / QMatMul (int32 bias, integer output)

This reads the QDQ models onnxruntime's ``quantize_static(..., quant_format=QuantFormat.QDQ)`` writes (uint8 or int8
activations, weights per channel or per tensor, the int32 bias behind its own DequantizeLinear) and the NVIDIA Model
Optimizer's (int8 symmetric: Q->DQ pairs on activations, DQ on constant int8 weights, float bias, Relu/Clip between
the layer and the next QuantizeLinear); a weight written as Q->DQ of a float constant (pytorch-quantization) is
quantized here once. The QuantizeLinear that makes x_q stays (it is the quantization boundary); the DequantizeLinear
feeding the layer is bypassed and goes once nothing else reads it. The layer's QuantizeLinear is absorbed: QConv's
epilogue requantizes (round half to even, saturate) and its integer output feeds the next DequantizeLinear as the
QuantizeLinear's did. An int32 bias whose scale is x_scale * W_scale (onnxruntime's) joins the accumulator as it is;
one with another scale, or a bias of another type behind a DequantizeLinear, is dequantized here into a float bias.

A pattern is taken only when every piece is as an INT8 layer needs it, and left as the float ops (which run it
correctly, DequantizeLinear and all) otherwise: a scalar float32 activation scale and zero point (no per-channel or
blocked activation quantization), a constant weight quantized per output channel or per tensor (the channel axis of
Conv's W, of a Gemm's B as transB says, of a MatMul's 2-D B), int8/uint8 types, Gemm with transA=0, alpha=1, beta=1 and
a bias over the columns, and a reduction that cannot overflow int32 (bounded from the actual weights).

Where it runs: right after RemoveNoops, before the first FoldConstants. FoldConstants would run DequantizeLinear of a
constant int8 weight at build time and leave a float weight, erasing the quantization this pass reads; running first
keeps FoldConstants a plain constant folder that knows nothing about quantization, and every DequantizeLinear this
pass does not take (a layer left float) still folds there as before. Constant nodes are turned into initializers
first (FoldConstants limited to them), so scales and zero points written as Constant nodes (torch's exports) are seen.

Left as they are, on purpose:
- ConvInteger / MatMulInteger and DynamicQuantizeLinear (onnxruntime's dynamic quantization): left to their own
  pass, passes/import_integer.py (ImportIntegerLayers), which runs after the first FoldConstants; the INT8 layers
  take DynamicQuantizeLinear's runtime scale and zero point as inputs there, and DynamicQuantizeLinear stays.
- Residual Adds between quantized tensors (onnxruntime's QLinearAdd in QDQ form): each side is requantized before the
  Add, and fusing the Add into the conv epilogue would drop that rounding and stop matching the model's numerics.
- com.microsoft quantized ops are refused at compile time (plan/compile.py), not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from .activations import absorb_activation
from .base import GREENRT_DOMAIN, PassReport, RewritePass, add_initializer, attr, const_array, is_onnx, only_consumer
from .base import replace_node
from .fold_constants import FoldConstants

FLOAT, UINT8, INT8, INT32 = (ir.DataType.FLOAT, ir.DataType.UINT8, ir.DataType.INT8, ir.DataType.INT32)
INT_RANGE = {INT8: (-128, 127), UINT8: (0, 255)}
CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
INT32_MAX = 2**31 - 1
BIAS_SCALE_RTOL = 1e-6  # an int32 bias scale this close to x_scale * W_scale is taken as that product


@dataclass
class _Dequant:
    """DequantizeLinear(q, scale, zero_point): its node and constant parameters."""

    node: ir.Node
    q: ir.Value
    dtype: ir.DataType  # of q
    scale: np.ndarray
    zero_point: np.ndarray | None
    axis: int


@dataclass
class _Weight:
    """A layer's constant quantized weight W_q, its per-channel (or scalar) scale and zero point."""

    q: ir.Value | np.ndarray  # an array when made here (Q of a float constant)
    array: np.ndarray
    scale: ir.Value | np.ndarray
    zero_point: ir.Value | np.ndarray | None  # None: symmetric (all zero)
    scale_array: np.ndarray
    zp_array: np.ndarray | None


@dataclass
class _Layer:
    anchor: ir.Node
    op_type: str  # QConv | QMatMul
    nodes: list[ir.Node]  # replaced: the anchor, a MatMul's bias Add, the activation's nodes, the output's Q
    x: ir.Value
    weight: _Weight
    bias: ir.Value | np.ndarray | None
    attrs: list[ir.Attr]
    out: ir.Value
    bypassed: list[ir.Node] = field(default_factory=list)  # the DQs (and a weight's Q) it stops reading


# -- reading the quantization parameters ------------------------------------------------------------------------
def _dtype(q: ir.Value, zero_point: np.ndarray | None) -> ir.DataType | None:
    if zero_point is not None:
        return ir.DataType.from_numpy(zero_point.dtype)
    return q.dtype


def _dequant(value: ir.Value | None) -> _Dequant | None:
    """``value`` made by a DequantizeLinear with constant float32 scale (and zero point), not blocked."""
    node = value.producer() if value is not None else None
    if not is_onnx(node) or node.op_type != "DequantizeLinear" or attr(node, "block_size", 0):
        return None
    if attr(node, "output_dtype", 0) not in (0, FLOAT):
        return None
    scale = const_array(node.inputs[1])
    zp_in = node.inputs[2] if len(node.inputs) > 2 else None
    zp = const_array(zp_in) if zp_in is not None else None
    if scale is None or scale.dtype != np.float32 or (zp_in is not None and zp is None) or scale.ndim > 1:
        return None
    if zp is not None and (zp.ndim > 1 or zp.size != scale.size):
        return None
    dtype = _dtype(node.inputs[0], zp)
    if dtype is None:
        return None
    return _Dequant(node, node.inputs[0], dtype, scale, zp, attr(node, "axis", 1))


def _activation_params(dq: _Dequant | None) -> tuple[float, int] | None:
    """(scale, zero point) of a per-tensor 8-bit activation DequantizeLinear of a runtime tensor."""
    if dq is None or dq.dtype not in INT_RANGE or const_array(dq.q) is not None or dq.scale.size != 1:
        return None
    scale = float(dq.scale.reshape(()))
    if not scale > 0 or not np.isfinite(scale):
        return None
    return scale, 0 if dq.zero_point is None else int(dq.zero_point.reshape(()))


def _scalar_qparams(scale_v: ir.Value | None, zp_v: ir.Value | None, dtype_if_absent: ir.DataType | None = UINT8):
    """Constant scalar (scale, zero point, dtype) of an 8-bit per-tensor quantization, or None."""
    scale = const_array(scale_v)
    zp = const_array(zp_v) if zp_v is not None else None
    if scale is None or scale.dtype != np.float32 or scale.size != 1 or (zp_v is not None and zp is None):
        return None
    dtype = ir.DataType.from_numpy(zp.dtype) if zp is not None else dtype_if_absent
    s = float(scale.reshape(()))
    if dtype not in INT_RANGE or not (s > 0 and np.isfinite(s)) or (zp is not None and zp.size != 1):
        return None
    return s, 0 if zp is None else int(zp.reshape(())), dtype


def _quantize_constant(node: ir.Node) -> np.ndarray | None:
    """QuantizeLinear of a float constant, computed now (round half to even, saturate) as the op would."""
    w = const_array(node.inputs[0])
    scale = const_array(node.inputs[1])
    zp = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if w is None or scale is None or w.dtype != np.float32 or scale.dtype != np.float32 or attr(node, "block_size", 0):
        return None
    if len(node.inputs) > 2 and node.inputs[2] is not None and zp is None:
        return None
    dtype = ir.DataType.from_numpy(zp.dtype) if zp is not None else (
        ir.DataType(attr(node, "output_dtype", 0)) if attr(node, "output_dtype", 0) else UINT8)
    if dtype not in INT_RANGE or scale.ndim > 1 or (zp is not None and (zp.ndim > 1 or zp.size != scale.size)):
        return None
    shape = [1] * w.ndim
    if scale.size > 1:
        axis = attr(node, "axis", 1) % w.ndim
        if w.shape[axis] != scale.size:
            return None
        shape[axis] = -1
    s = scale.reshape(shape if scale.size > 1 else ())
    z = 0.0 if zp is None else zp.astype(np.float64).reshape(s.shape)
    lo, hi = INT_RANGE[dtype]
    q = np.clip(np.rint((w / s).astype(np.float32)).astype(np.float64) + z, lo, hi)
    return q.astype(dtype.numpy())


def _weight(value: ir.Value, channel_axis: int, rank: int | None) -> _Weight | None:
    """DequantizeLinear(constant W_q [or Q(constant float W)]) of rank ``rank`` (any if None) with its scale over
    ``channel_axis`` or scalar."""
    dq = _dequant(value)
    if dq is None or dq.dtype not in INT_RANGE:
        return None
    q_value: ir.Value | np.ndarray = dq.q
    array = const_array(dq.q)
    if array is None:
        producer = dq.q.producer()
        if not is_onnx(producer) or producer.op_type != "QuantizeLinear":
            return None
        array = _quantize_constant(producer)
        q_value = array
    if array is None or (rank is not None and array.ndim != rank) or array.ndim <= channel_axis:
        return None
    if ir.DataType.from_numpy(array.dtype) != dq.dtype:
        return None
    n = array.shape[channel_axis]
    if dq.scale.size > 1 and (dq.scale.size != n or dq.axis % array.ndim != channel_axis):
        return None
    if not bool((dq.scale > 0).all()) or not bool(np.isfinite(dq.scale).all()):
        return None
    node = dq.node
    zp_value: ir.Value | np.ndarray | None = node.inputs[2] if len(node.inputs) > 2 else None
    zp = dq.zero_point
    if zp is not None and not zp.any():
        zp_value, zp = None, None  # symmetric
    scale_value = node.inputs[1]
    return _Weight(q_value, array, scale_value, zp_value, dq.scale, zp)


def _bias(value: ir.Value | None, n: int, x_scale: float, w: _Weight) -> ir.Value | np.ndarray | None | bool:
    """A layer's bias over its ``n`` output channels: the value, an array made here, None (none), or False (not
    one this pass can take: a runtime bias, a full matrix)."""
    if value is None:
        return None
    c = const_array(value)
    if c is not None:
        if c.dtype != np.float32 or c.size not in (1, n):
            return False
        return value if c.shape == (n,) else np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (n,)))
    dq = _dequant(value)
    if dq is None:
        return False
    q = const_array(dq.q)
    if q is None or q.size not in (1, n) or (dq.scale.size > 1 and dq.scale.size != n):
        return False
    q64 = np.broadcast_to(q.reshape(-1).astype(np.int64), (n,))
    zp64 = 0 if dq.zero_point is None else np.broadcast_to(dq.zero_point.reshape(-1).astype(np.int64), (n,))
    scale = np.broadcast_to(dq.scale.reshape(-1), (n,))
    acc_scale = np.float32(x_scale) * np.broadcast_to(w.scale_array.reshape(-1), (n,)).astype(np.float32)
    if q.dtype == np.int32 and np.allclose(scale, acc_scale, rtol=BIAS_SCALE_RTOL, atol=0):
        shifted = q64 - zp64
        if np.abs(shifted).max(initial=0) <= INT32_MAX:
            if dq.zero_point is None or not dq.zero_point.any():
                return dq.q if q.shape == (n,) else shifted.astype(np.int32)
            return shifted.astype(np.int32)
    # another scale or type: the float bias the DequantizeLinear computes (in float64 then float32, as the op)
    return ((q64 - zp64).astype(np.float64).astype(np.float32) * scale.astype(np.float32)).astype(np.float32)


def _no_overflow(w: _Weight, reduce_axes: tuple[int, ...], x_dtype: ir.DataType, x_zp: int, bias) -> bool:
    """Every output's int32 accumulator stays in range: sum|W - W_zp| * max|x - x_zp| (+ |int32 bias|) < 2**31."""
    lo, hi = INT_RANGE[x_dtype]
    wf = w.array.astype(np.int64)
    if w.zp_array is not None:
        shape = [1] * wf.ndim
        keep = [a for a in range(wf.ndim) if a not in reduce_axes][0]
        shape[keep] = -1
        wf = wf - w.zp_array.astype(np.int64).reshape(shape if w.zp_array.size > 1 else ())
    bound = np.abs(wf).sum(axis=reduce_axes) * max(hi - x_zp, x_zp - lo)
    if isinstance(bias, np.ndarray) and bias.dtype == np.int32:
        bound = bound + np.abs(bias.astype(np.int64))
    elif isinstance(bias, ir.Value) and bias.dtype == INT32:
        bound = bound + np.abs(const_array(bias).astype(np.int64))
    return int(bound.max(initial=0)) <= INT32_MAX


def _bypassed(x_dq: _Dequant, params: list[ir.Value | None]) -> list[ir.Node]:
    """The nodes a layer stops reading: the input's DequantizeLinear, the weight's (and the Q of a float weight
    behind it), a bias's; in the order they can go."""
    nodes = [x_dq.node]
    for v in params:
        dq = _dequant(v)
        if dq is not None:
            nodes.append(dq.node)
            producer = dq.q.producer()
            if is_onnx(producer) and producer.op_type == "QuantizeLinear":
                nodes.append(producer)
    return nodes


def _bias_add(out: ir.Value, n: int) -> tuple[ir.Node, ir.Value] | None:
    """out -> Add(out, b) with b a constant (or dequantized constant) over the last axis only."""
    add = only_consumer(out)
    if not is_onnx(add) or add.op_type != "Add" or len(add.inputs) != 2:
        return None
    b = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    dq = _dequant(b)
    c = const_array(b) if dq is None else const_array(dq.q)
    if b is out or c is None or c.size != n or c.shape[-1:] != (n,):
        return None
    return add, b


def _output(out: ir.Value, nodes: list[ir.Node]) -> tuple[list[ir.Attr], ir.Value]:
    """The epilogue: an activation if ``out`` flows only into one, then a QuantizeLinear if the result flows only
    into one (integer output), else a float output. Adds what it absorbs to ``nodes``."""
    activation, params, out = absorb_activation(out, nodes)
    attrs = [ir.AttrString("activation", activation), ir.AttrFloat32s("activation_params", params)]
    q = only_consumer(out)
    if is_onnx(q) and q.op_type == "QuantizeLinear" and q.inputs[0] is out and not attr(q, "block_size", 0) \
            and not attr(q, "precision", 0):
        zp_v = q.inputs[2] if len(q.inputs) > 2 else None
        absent = ir.DataType(attr(q, "output_dtype", 0)) if attr(q, "output_dtype", 0) else UINT8
        params_q = _scalar_qparams(q.inputs[1], zp_v, absent)
        if params_q is not None:
            y_scale, y_zp, dtype = params_q
            nodes.append(q)
            attrs += [ir.AttrInt64("out_dtype", int(dtype)), ir.AttrFloat32("y_scale", y_scale),
                      ir.AttrInt64("y_zero_point", y_zp)]
            return attrs, q.outputs[0]
    if out.dtype not in (FLOAT, None):
        return [], out  # not a float32 layer: caller refuses (an empty list)
    return attrs + [ir.AttrInt64("out_dtype", int(FLOAT))], out


# -- the pass ------------------------------------------------------------------------------------------------------
class _ConstantNodes(FoldConstants):
    """Constant nodes => initializers (FoldConstants limited to them), so their values read as constants here."""

    def is_anchor(self, node: ir.Node) -> bool:
        return is_onnx(node) and node.op_type == "Constant"


class ImportQuantized(RewritePass[_Layer]):
    name = "import_qdq"
    rule = ("Q(act(Conv|Gemm|MatMul(DQ(x_q), DQ(W_q), b))) | QLinearConv | QLinearMatMul => "
            "greenrt.QConv / greenrt.QMatMul(x_q, W_q, W_scale, b, activation=act, out_dtype=int8|uint8|float)")
    op_types = ("Conv", "Gemm", "MatMul", "QLinearConv", "QLinearMatMul")
    creates_domain = GREENRT_DOMAIN

    def apply(self, model: ir.Model, report: PassReport) -> int:
        if any(is_onnx(n) and n.op_type in ("DequantizeLinear", "QLinearConv", "QLinearMatMul") for n in model.graph):
            _ConstantNodes()(model)
        return super().apply(model, report)

    def match(self, node: ir.Node, graph: ir.Graph) -> _Layer | None:
        if node.op_type == "QLinearConv":
            return self._qlinear_conv(node)
        if node.op_type == "QLinearMatMul":
            return self._qlinear_matmul(node)
        x_dq = _dequant(node.inputs[0])
        act = _activation_params(x_dq)
        if act is None:
            return None
        x_scale, x_zp = act
        if node.op_type == "Conv":
            return self._conv(node, x_dq, x_scale, x_zp)
        return self._matmul(node, x_dq, x_scale, x_zp)

    def _conv(self, conv: ir.Node, x_dq: _Dequant, x_scale: float, x_zp: int) -> _Layer | None:
        w_value = conv.inputs[1]
        w = _weight(w_value, 0, None)
        if w is None or w.array.ndim < 3:
            return None
        rank = w.array.ndim
        n = w.array.shape[0]
        bias = _bias(conv.inputs[2] if len(conv.inputs) > 2 else None, n, x_scale, w)
        if bias is False or not _no_overflow(w, tuple(range(1, rank)), x_dq.dtype, x_zp, bias):
            return None
        nodes = [conv]
        out_attrs, out = _output(conv.outputs[0], nodes)
        if not out_attrs:
            return None
        attrs = [ir.Attr(k, a.type, a.value) for k, a in conv.attributes.items() if k in CONV_ATTRS]
        attrs += [ir.AttrFloat32("x_scale", x_scale), ir.AttrInt64("x_zero_point", x_zp), *out_attrs]
        return _Layer(conv, "QConv", nodes, x_dq.q, w, bias, attrs, out, _bypassed(x_dq, conv.inputs[1:3]))

    def _matmul(self, mm: ir.Node, a_dq: _Dequant, a_scale: float, a_zp: int) -> _Layer | None:
        gemm = mm.op_type == "Gemm"
        trans_w = int(attr(mm, "transB", 0)) if gemm else 0
        if gemm and (attr(mm, "transA", 0) or attr(mm, "alpha", 1.0) != 1.0 or attr(mm, "beta", 1.0) != 1.0):
            return None
        w_value = mm.inputs[1]
        w = _weight(w_value, 0 if trans_w else 1, 2)
        if w is None:
            return None
        n = w.array.shape[0 if trans_w else 1]
        nodes, out = [mm], mm.outputs[0]
        bias_value = mm.inputs[2] if gemm and len(mm.inputs) > 2 else None
        if not gemm:
            added = _bias_add(out, n)
            if added is not None:
                nodes.append(added[0])
                bias_value, out = added[1], added[0].outputs[0]
        bias = _bias(bias_value, n, a_scale, w)
        if bias is False or not _no_overflow(w, (1,) if trans_w else (0,), a_dq.dtype, a_zp, bias):
            return None
        out_attrs, out = _output(out, nodes)
        if not out_attrs:
            return None
        attrs = [ir.AttrFloat32("a_scale", a_scale), ir.AttrInt64("a_zero_point", a_zp), *out_attrs,
                 ir.AttrInt64("trans_w", trans_w)]
        return _Layer(mm, "QMatMul", nodes, a_dq.q, w, bias, attrs, out, _bypassed(a_dq, [w_value, bias_value]))

    def _qlinear_weight(self, node: ir.Node, w_at: int, channel_axis: int, rank: int | None) -> _Weight | None:
        """QLinear*'s constant weight with its scale/zero point inputs (positions w_at, +1, +2)."""
        w_value, scale_v, zp_v = node.inputs[w_at], node.inputs[w_at + 1], node.inputs[w_at + 2]
        array, scale, zp = const_array(w_value), const_array(scale_v), const_array(zp_v)
        if array is None or scale is None or zp is None or (rank is not None and array.ndim != rank):
            return None
        dtype = ir.DataType.from_numpy(array.dtype)
        if dtype not in INT_RANGE or scale.dtype != np.float32 or scale.ndim > 1:
            return None
        if zp.ndim > 1 or zp.size != scale.size:
            return None
        if scale.size > 1 and scale.size != array.shape[channel_axis]:
            return None
        if not bool((scale > 0).all()) or not bool(np.isfinite(scale).all()):
            return None
        if not zp.any():
            return _Weight(w_value, array, scale_v, None, scale, None)
        return _Weight(w_value, array, scale_v, zp_v, scale, zp)

    def _qlinear_conv(self, node: ir.Node) -> _Layer | None:
        x_p = _scalar_qparams(node.inputs[1], node.inputs[2])
        y_p = _scalar_qparams(node.inputs[6], node.inputs[7])
        w = self._qlinear_weight(node, 3, 0, None)
        if x_p is None or y_p is None or w is None or w.array.ndim < 3:
            return None
        b_value = node.inputs[8] if len(node.inputs) > 8 else None
        bias = None
        if b_value is not None:
            b = const_array(b_value)
            if b is None or b.dtype != np.int32 or b.shape != (w.array.shape[0],):
                return None
            bias = b_value
        if not _no_overflow(w, tuple(range(1, w.array.ndim)), x_p[2], x_p[1], bias):
            return None
        attrs = [ir.Attr(k, a.type, a.value) for k, a in node.attributes.items() if k in CONV_ATTRS]
        attrs += [ir.AttrFloat32("x_scale", x_p[0]), ir.AttrInt64("x_zero_point", x_p[1]),
                  ir.AttrInt64("out_dtype", int(y_p[2])), ir.AttrFloat32("y_scale", y_p[0]),
                  ir.AttrInt64("y_zero_point", y_p[1])]
        return _Layer(node, "QConv", [node], node.inputs[0], w, bias, attrs, node.outputs[0])

    def _qlinear_matmul(self, node: ir.Node) -> _Layer | None:
        a_p = _scalar_qparams(node.inputs[1], node.inputs[2])
        y_p = _scalar_qparams(node.inputs[6], node.inputs[7])
        w = self._qlinear_weight(node, 3, 1, 2)
        if a_p is None or y_p is None or w is None or not _no_overflow(w, (0,), a_p[2], a_p[1], None):
            return None
        attrs = [ir.AttrFloat32("a_scale", a_p[0]), ir.AttrInt64("a_zero_point", a_p[1]),
                 ir.AttrInt64("out_dtype", int(y_p[2])), ir.AttrFloat32("y_scale", y_p[0]),
                 ir.AttrInt64("y_zero_point", y_p[1]), ir.AttrInt64("trans_w", 0)]
        return _Layer(node, "QMatMul", [node], node.inputs[0], w, None, attrs, node.outputs[0])

    def rewrite(self, graph: ir.Graph, m: _Layer) -> str:
        hint = m.anchor.name or m.op_type.lower()
        bias, w = m.bias, m.weight

        def value(v, suffix):
            return add_initializer(graph, f"{hint}_{suffix}", v) if isinstance(v, np.ndarray) else v

        inputs = [m.x, value(w.q, "weight_q"), value(w.scale, "weight_scale"), value(bias, "bias"), None,
                  value(w.zero_point, "weight_zero_point")]
        while inputs[-1] is None:
            inputs.pop()
        layer = ir.Node(GREENRT_DOMAIN, m.op_type, inputs, m.attrs, name=m.anchor.name)
        replace_node(graph, m.nodes, layer, m.out)
        for dq in m.bypassed:  # the DequantizeLinears (and a float weight's Q) nothing reads any more
            if dq.graph is graph and not any(o.uses() or o.is_graph_output() for o in dq.outputs):
                graph.remove(dq, safe=True)
        out = ir.DataType(next(a.value for a in m.attrs if a.name == "out_dtype")).name.lower()
        return f"{m.anchor.name or m.anchor.op_type}: {'+'.join(n.op_type for n in m.nodes)} => {m.op_type} ({out} out)"
