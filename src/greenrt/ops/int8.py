"""INT8 layers of the quantized graph (domain ``greenrt``): a conv or a GEMM on integer inputs with a float epilogue.

    QConv(X, W, W_scale, B?, Z?, W_zp?, X_scale?, X_zp?)    = epilogue(ConvInteger(X - x_zp, W - W_zp))
    QMatMul(A, W, W_scale, B?, Z?, W_zp?, A_scale?, A_zp?)  = epilogue(MatMulInteger(A - a_zp, W - W_zp))
                                                              (trans_w: W is [N, K])

    epilogue(acc) = requantize(act(float32(acc) * (x_scale * W_scale[c]) + B + Z))

X is int8 or uint8 with the scalar scale and zero point in the attributes (``x_scale``, ``x_zero_point``; per-tensor
activations), or as the scalar inputs X_scale / X_zp where they are known only at run time (DynamicQuantizeLinear's
outputs, onnxruntime's dynamic quantization); W is int8 or uint8 per output channel (``W_scale`` 1-D over the
output channels or a scalar; symmetric weights have no ``W_zp``). B is float (added after scaling) or int32 (added to the accumulator, in units of
x_scale * W_scale[c], as onnxruntime's QLinearConv bias). Z is the residual: float, or integer with ``z_scale`` and
``z_zero_point``. ``out_dtype`` is the ONNX element type of the output: FLOAT (1) or FLOAT16 (10), or INT8 (3) /
UINT8 (2) with ``y_scale`` and ``y_zero_point``: round half to even of y * float32(1 / y_scale), plus the zero point,
saturated. So a layer feeding another INT8 layer hands it INT8 directly, with no dequantize/quantize between them.
INT32 (6) is the accumulator itself, no epilogue (ConvInteger / MatMulInteger as INT8 layers; W_scale is then 1).

This is the reference INT8 execution, exact on every device: the products of the integer inputs are accumulated in
float64, where every partial sum is an integer below 2**53, so the accumulator equals int32 arithmetic's wherever
int32 does not overflow (the quantization stage refuses layers whose reduction could: K * 255 * 255 >= 2**31). On
the CPU the sums run in float32 instead where a bound from the weights shows every partial sum stays below 2**24
(and the result is checked to be integral), several times faster and as exact. The epilogue is float32, as the fused kernels' (cuDNN's graph API, the Hopper issue's) is; those kernels are tactics of
these ops and are checked against this.
"""

from __future__ import annotations

import torch

from ..onnx.dtypes import to_torch_dtype
from .conv import _conv_nd
from .fused import _activation
from .quantization import _saturate_int, _shifted, _to_float8
from .registry import op
from .tactics import tactic

GREENRT = "greenrt"
FLOAT, UINT8, INT8, INT32, FLOAT16, FLOAT8E4M3FN = 1, 2, 3, 6, 10, 17
INTEGER_OUT = (INT8, UINT8)
FP8_MAX = 448.0  # float8 e4m3fn's largest finite value
# the largest reduction length whose int32 accumulator cannot overflow for any uint8/int8 inputs
MAX_EXACT_K = (2**31 - 1) // (255 * 255)


def _check_integer(name: str, t: torch.Tensor, fp8: bool = False) -> None:
    allowed = (torch.int8, torch.uint8) + ((torch.float8_e4m3fn,) if fp8 else ())
    if t.dtype not in allowed:
        kinds = "int8, uint8 or float8e4m3fn" if fp8 else "int8 or uint8"
        raise TypeError(f"{name} must be {kinds} (a quantized tensor), got {str(t.dtype).removeprefix('torch.')}")


def _check_fp8_pair(op: str, x: torch.Tensor, w: torch.Tensor, x_zero_point, w_zero_point) -> None:
    """FP8 layers: float8 input and weight together, no zero points (float8 is symmetric)."""
    fp8 = [t.dtype == torch.float8_e4m3fn for t in (x, w)]
    if any(fp8) and not all(fp8):
        raise TypeError(f"{op}: a float8e4m3fn input needs a float8e4m3fn weight and the other way round, got "
                        f"{str(x.dtype).removeprefix('torch.')} and {str(w.dtype).removeprefix('torch.')}")
    if all(fp8) and (w_zero_point is not None or (x_zero_point is not None and not isinstance(x_zero_point, torch.Tensor)
                                                   and x_zero_point != 0)):
        raise ValueError(f"{op}: float8 layers take no zero points")


def _channel_shape(c_axis: int, rank: int) -> list[int]:
    shape = [1] * rank
    shape[c_axis] = -1
    return shape


def epilogue(acc: torch.Tensor, c_axis: int, x_scale, w_scale: torch.Tensor, b, z, *, z_scale: float,
             z_zero_point: int, activation: str, activation_params, out_dtype: int, y_scale: float,
             y_zero_point: int) -> torch.Tensor:
    """The float32 epilogue of an exact integer accumulator ``acc`` (float64) over output channels at ``c_axis``;
    ``x_scale`` a number or a scalar tensor (read on the device: no host sync)."""
    if out_dtype == INT32:
        if b is not None or z is not None or activation:
            raise ValueError("out_dtype INT32 (the raw accumulator) takes no bias, residual or activation")
        return acc.to(torch.int32)
    shape = _channel_shape(c_axis, acc.dim())
    if b is not None and not b.is_floating_point():
        acc = acc + b.to(torch.float64).reshape(shape)  # an int32 bias joins the accumulator, exactly
        b = None
    scale = (torch.as_tensor(x_scale, dtype=torch.float32, device=acc.device).reshape([])
             * w_scale.to(torch.float32))
    y = acc.to(torch.float32) * (scale.reshape(shape) if scale.numel() > 1 else scale.reshape([]))
    if b is not None:
        y = y + b.to(torch.float32).reshape(shape)
    if z is not None:
        if z.is_floating_point() and z.dtype != torch.float8_e4m3fn:  # a float residual; float8 is a quantized one
            y = y + z.to(torch.float32)
        else:
            y = y + (z.to(torch.float32) - float(z_zero_point)) * float(z_scale)
    y = _activation(activation, list(activation_params))(y)
    if out_dtype == FLOAT8E4M3FN:
        if not y_scale > 0:
            raise ValueError(f"a float8 output (out_dtype {out_dtype}) needs y_scale > 0, got {y_scale}")
        inv = torch.tensor(1.0 / y_scale, dtype=torch.float32, device=y.device)
        return _to_float8(y * inv, torch.float8_e4m3fn, True)  # round to nearest even, saturated to +-448
    if out_dtype in INTEGER_OUT:
        if not y_scale > 0:
            raise ValueError(f"an integer output (out_dtype {out_dtype}) needs y_scale > 0, got {y_scale}")
        inv = torch.tensor(1.0 / y_scale, dtype=torch.float32, device=y.device)
        zero_point = torch.tensor(y_zero_point, dtype=torch.int32, device=y.device)
        return _saturate_int(y * inv, zero_point, torch.int8 if out_dtype == INT8 else torch.uint8)
    return y.to(to_torch_dtype(out_dtype))


def _runtime_qparams(name: str, scale_attr: float, zp_attr: int, scale_t, zp_t):
    """The input's scale and zero point: the attributes, or the scalar inputs that replace them at run time."""
    if scale_t is not None:
        if scale_t.numel() != 1 or not scale_t.is_floating_point():
            dtype = str(scale_t.dtype).removeprefix("torch.")
            raise ValueError(f"{name}_scale input must be a float scalar, got {dtype} of shape {list(scale_t.shape)}")
        scale_attr = scale_t.reshape([])
    if zp_t is not None:
        if zp_t.numel() != 1:
            raise ValueError(f"{name}_zp input must be a scalar, got shape {list(zp_t.shape)}")
        zp_attr = zp_t.reshape([])
    return scale_attr, zp_attr


def _common(x_scale, w_scale, out_dtype, y_scale):
    if not isinstance(x_scale, torch.Tensor) and not x_scale > 0:
        raise ValueError(f"x_scale must be > 0 (an attribute or the X_scale input), got {x_scale}")
    if out_dtype not in (FLOAT, FLOAT16, INT8, UINT8, INT32, FLOAT8E4M3FN):
        raise ValueError(f"out_dtype {out_dtype}: expected FLOAT (1), FLOAT16 (10), INT8 (3), UINT8 (2), INT32 (6) or "
                         "FLOAT8E4M3FN (17)")
    if w_scale.numel() and not bool((w_scale > 0).all()):
        raise ValueError("W_scale must be > 0 everywhere")


def _exact_in_float32(x: torch.Tensor, x_zero_point, w_shifted: torch.Tensor, reduce_dims: list[int]) -> bool:
    """Whether float32 holds every partial sum of this reduction exactly (so any summation order gives the exact
    integer): |x - zp| at most its type's reach, times the largest per-output sum of |w|, below 2**24. CPU only:
    there the conv and GEMM kernels multiply and add directly; GPU libraries may pick TF32 or Winograd/FFT
    algorithms, so the GPU keeps float64."""
    if x.device.type != "cpu" or x.dtype.is_floating_point:  # float8 products: exact in float64, not float32
        return False
    if x_zero_point is None or isinstance(x_zero_point, (int, float)):
        zp = float(x_zero_point or 0)
    elif x_zero_point.numel() == 1:
        zp = float(x_zero_point.reshape(-1)[0])
    else:
        return False
    info = torch.iinfo(x.dtype)
    reach = max(abs(info.min - zp), abs(info.max - zp))
    return reach * float(w_shifted.abs().sum(dim=reduce_dims).max()) < 2.0**24


def _integral_or_none(acc: torch.Tensor) -> torch.Tensor | None:
    return acc.to(torch.float64) if torch.equal(acc, torch.round(acc)) else None


def conv_accumulator(x, w, x_zero_point=0, w_zero_point=None, **conv_attrs) -> torch.Tensor:
    """The exact integer accumulator of a conv over integer tensors, as float64 (each value an integer)."""
    conv_attrs = {"auto_pad": "NOTSET", "dilations": None, "group": 1, "kernel_shape": None, "pads": None,
                  "strides": None} | conv_attrs
    ws = _shifted(w, w_zero_point, per_channel_axis=0)
    if _exact_in_float32(x, x_zero_point, ws, list(range(1, ws.dim()))):
        acc = _integral_or_none(_conv_nd(_shifted(x, x_zero_point).float(), ws.float(), None, **conv_attrs))
        if acc is not None:
            return acc
    return _conv_nd(_shifted(x, x_zero_point), ws, None, **conv_attrs)


def matmul_accumulator(a, w, a_zero_point=0, w_zero_point=None, trans_w=0) -> torch.Tensor:
    """The exact integer accumulator of A @ W (W^T with trans_w) over integer tensors, as float64."""
    wf = _shifted(w, w_zero_point, per_channel_axis=0 if trans_w else 1)
    wf = wf.t() if trans_w else wf
    if _exact_in_float32(a, a_zero_point, wf, [0]):
        acc = _integral_or_none(torch.matmul(_shifted(a, a_zero_point).float(), wf.float()))
        if acc is not None:
            return acc
    return torch.matmul(_shifted(a, a_zero_point), wf)


@op("QConv", 1, domain=GREENRT)
def QConv(x, w, w_scale, b=None, z=None, w_zero_point=None, x_scale_t=None, x_zero_point_t=None, *, x_scale=0.0,
          x_zero_point=0, y_scale=0.0, y_zero_point=0, out_dtype=FLOAT, z_scale=0.0, z_zero_point=0, activation="",
          activation_params=(), auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
          strides=None):
    _check_integer("QConv's input X", x, fp8=True)
    _check_integer("QConv's weight W", w, fp8=True)
    _check_fp8_pair("QConv", x, w, x_zero_point, w_zero_point)
    x_scale, x_zero_point = _runtime_qparams("X", x_scale, x_zero_point, x_scale_t, x_zero_point_t)
    _common(x_scale, w_scale, out_dtype, y_scale)
    acc = conv_accumulator(x, w, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations, group=group,
                           kernel_shape=kernel_shape, pads=pads, strides=strides)
    return epilogue(acc, 1, x_scale, w_scale, b, z, z_scale=z_scale, z_zero_point=z_zero_point,
                    activation=activation, activation_params=activation_params, out_dtype=out_dtype,
                    y_scale=y_scale, y_zero_point=y_zero_point)


tactic(GREENRT, "QConv", "reference", doc="greenrt's exact INT8 reference (integer sums in float64, or float32 "
       "where provably exact), then the float32 epilogue")(QConv)


@op("QMatMul", 1, domain=GREENRT)
def QMatMul(a, w, w_scale, b=None, z=None, w_zero_point=None, a_scale_t=None, a_zero_point_t=None, *, a_scale=0.0,
            a_zero_point=0, y_scale=0.0, y_zero_point=0, out_dtype=FLOAT, z_scale=0.0, z_zero_point=0, activation="",
            activation_params=(), trans_w=0):
    _check_integer("QMatMul's input A", a, fp8=True)
    _check_integer("QMatMul's weight W", w, fp8=True)
    _check_fp8_pair("QMatMul", a, w, a_zero_point, w_zero_point)
    a_scale, a_zero_point = _runtime_qparams("A", a_scale, a_zero_point, a_scale_t, a_zero_point_t)
    _common(a_scale, w_scale, out_dtype, y_scale)
    acc = matmul_accumulator(a, w, a_zero_point, w_zero_point, trans_w)
    return epilogue(acc, acc.dim() - 1, a_scale, w_scale, b, z, z_scale=z_scale, z_zero_point=z_zero_point,
                    activation=activation, activation_params=activation_params, out_dtype=out_dtype,
                    y_scale=y_scale, y_zero_point=y_zero_point)


tactic(GREENRT, "QMatMul", "reference", doc="greenrt's exact INT8 reference (integer sums in float64, or float32 "
       "where provably exact), then the float32 epilogue")(QMatMul)


@op("QGather", 1, domain=GREENRT)
def QGather(table, scale, indices):
    """An embedding lookup from an INT8 table with one symmetric scale per row: table[indices] * scale[indices],
    as float32 (ONNX Gather along axis 0 with negative indices counted from the end)."""
    _check_integer("QGather's table", table)
    idx = indices.to(torch.int64)
    idx = torch.where(idx < 0, idx + table.shape[0], idx)
    rows = table.index_select(0, idx.reshape(-1)).to(torch.float32) * scale.index_select(0, idx.reshape(-1))[:, None]
    return rows.reshape(*idx.shape, *table.shape[1:])
