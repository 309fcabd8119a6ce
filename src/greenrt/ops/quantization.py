"""Quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv, QLinearMatMul.

Scales / zero points are per-tensor (scalar), per-axis (1-D along ``axis``) or blocked (``block_size`` > 0:
same rank as x, repeated block_size times along ``axis``). Integer rounding is half to even, then saturation.
Scales may be float8e8m0 (powers of two, the MX formats' shared scale; QuantizeLinear / DequantizeLinear 25+):
torch has no arithmetic on that type, so they are widened to float32, which holds every e8m0 value exactly.
"""

from __future__ import annotations

import math

import torch

from ..onnx.dtypes import FLOAT8_E8M0FNU, to_torch_dtype
from ._util import normalize_axis
from .conv import _conv_nd
from .registry import op

_FLOAT8 = (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz)


def _arithmetic_scale(scale):
    """A float8e8m0 scale as float32 (exact); other scales as they are."""
    if FLOAT8_E8M0FNU is not None and scale.dtype == FLOAT8_E8M0FNU:
        return scale.to(torch.float32)
    return scale


def _broadcast_param(p, x, axis, block_size=0):
    """Scale / zero point shaped to broadcast against x."""
    if p.dim() == 0 or (p.numel() == 1 and block_size == 0 and p.dim() <= 1):
        return p.reshape([])
    axis = normalize_axis(axis, x.dim())
    if block_size and block_size > 0:
        p = p.repeat_interleave(block_size, dim=axis)
        return p.narrow(axis, 0, x.shape[axis])
    shape = [1] * x.dim()
    shape[axis] = -1
    return p.reshape(shape)


def _int_range(dtype):
    info = torch.iinfo(dtype)
    return info.min, info.max


def _saturate_int(q, zp, dtype):
    """round-half-even(q) + zp, clipped to dtype's range, exactly (float64)."""
    q = torch.round(q).to(torch.float64)
    q = torch.where(torch.isnan(q), torch.full_like(q, -math.inf), q)  # NaN -> lowest value (as onnxruntime)
    if zp is not None:
        q = q + zp.to(torch.float64)
    lo, hi = _int_range(dtype)
    return q.clamp(lo, hi).to(dtype)


def _to_float8(q, dtype, saturate):
    """Round-to-nearest-even cast to a float8 type; saturate clamps to the finite range (as onnx's reference)."""
    q = q.to(torch.float32)
    fmax = torch.finfo(dtype).max
    if saturate:
        return q.clamp(-fmax, fmax).to(dtype)
    if dtype == torch.float8_e4m3fn:
        # torch saturates this type itself; without saturation overflow (and inf) becomes NaN
        over = q.abs() > 464.0  # 464 itself rounds (to even) down to 448
        return torch.where(over, torch.full_like(q, float("nan")), q).to(dtype)
    if dtype == torch.float8_e5m2:
        over = q.abs() >= 61440.0  # halfway between 57344 and the next power: rounds to inf
        return torch.where(over, q.sign() * float("inf"), q).to(dtype)
    return q.to(dtype)


def _quantize(x, y_scale, y_zero_point, *, axis=1, saturate=1, block_size=0, output_dtype=0, precision=0):
    if y_zero_point is not None:
        dtype = y_zero_point.dtype
    elif output_dtype:
        dtype = to_torch_dtype(output_dtype)
    else:
        dtype = torch.uint8
    scale = _broadcast_param(_arithmetic_scale(y_scale), x, axis, block_size)
    if precision:
        p = to_torch_dtype(precision)
        q = x.to(p) / scale.to(p)
    else:
        q = x / scale
    if dtype in _FLOAT8:
        return _to_float8(q, dtype, saturate)
    zp = None if y_zero_point is None else _broadcast_param(y_zero_point, x, axis, block_size)
    return _saturate_int(q, zp, dtype)


@op("QuantizeLinear", 10)
def QuantizeLinear_10(x, y_scale, y_zero_point=None):
    return _quantize(x, y_scale, y_zero_point)


@op("QuantizeLinear", 13)
def QuantizeLinear_13(x, y_scale, y_zero_point=None, *, axis=1):
    return _quantize(x, y_scale, y_zero_point, axis=axis)


@op("QuantizeLinear", 19)
def QuantizeLinear_19(x, y_scale, y_zero_point=None, *, axis=1, saturate=1):
    return _quantize(x, y_scale, y_zero_point, axis=axis, saturate=saturate)


@op("QuantizeLinear", 21, 23, 24, 25, 28)
def QuantizeLinear_21(x, y_scale, y_zero_point=None, *, axis=1, saturate=1, block_size=0, output_dtype=0,
                      precision=0):
    return _quantize(x, y_scale, y_zero_point, axis=axis, saturate=saturate, block_size=block_size,
                     output_dtype=output_dtype, precision=precision)


def _dequantize(x, x_scale, x_zero_point, *, axis=1, block_size=0, output_dtype=0):
    out_dtype = to_torch_dtype(output_dtype) if output_dtype else x_scale.dtype
    if x.dtype in _FLOAT8:
        xf = x.to(torch.float32)
        if x_zero_point is not None:
            xf = xf - _broadcast_param(x_zero_point, x, axis, block_size).to(torch.float32)
    else:
        xf = x.to(torch.float64)
        if x_zero_point is not None:
            xf = xf - _broadcast_param(x_zero_point, x, axis, block_size).to(torch.float64)
        xf = xf.to(torch.float32)
    scale = _broadcast_param(_arithmetic_scale(x_scale), x, axis, block_size)
    compute = torch.promote_types(scale.dtype, torch.float32)
    return (xf.to(compute) * scale.to(compute)).to(out_dtype)


@op("DequantizeLinear", 10)
def DequantizeLinear_10(x, x_scale, x_zero_point=None):
    return _dequantize(x, x_scale, x_zero_point)


@op("DequantizeLinear", 13, 19)
def DequantizeLinear_13(x, x_scale, x_zero_point=None, *, axis=1):
    return _dequantize(x, x_scale, x_zero_point, axis=axis)


@op("DequantizeLinear", 21)
def DequantizeLinear_21(x, x_scale, x_zero_point=None, *, axis=1, block_size=0):
    return _dequantize(x, x_scale, x_zero_point, axis=axis, block_size=block_size)


@op("DequantizeLinear", 23, 24, 25, 28)
def DequantizeLinear_23(x, x_scale, x_zero_point=None, *, axis=1, block_size=0, output_dtype=0):
    return _dequantize(x, x_scale, x_zero_point, axis=axis, block_size=block_size, output_dtype=output_dtype)


@op("DynamicQuantizeLinear", 11)
def DynamicQuantizeLinear(x):
    """uint8 quantization with scale/zero point from the data range (always including 0)."""
    xf = x.to(torch.float32)
    lo = torch.clamp(xf.min(), max=0.0) if xf.numel() else torch.zeros((), device=x.device)
    hi = torch.clamp(xf.max(), min=0.0) if xf.numel() else torch.zeros((), device=x.device)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # all-zero input: scale 1 (as onnxruntime)
    zp = torch.round((0.0 - lo / scale).clamp(0, 255)).to(torch.uint8)
    y = _saturate_int(xf / scale, zp, torch.uint8)
    return y, scale.to(torch.float32), zp


def _requantize(acc, scale, y_zero_point, fallback_dtype):
    """acc (exact integer accumulator, float64) * scale, rounded half to even, + zero point, saturated."""
    dtype = y_zero_point.dtype if y_zero_point is not None else fallback_dtype
    y = acc * scale
    if dtype in _FLOAT8:
        return _to_float8(y, dtype, True)
    return _saturate_int(y, y_zero_point, dtype)


def _shifted(v, zp, per_channel_axis=None):
    """v - zp in float64 (exact for 8-bit integers); zp a number, a scalar tensor or 1-D along ``per_channel_axis``."""
    vf = v.to(torch.float64)
    if zp is None:
        return vf
    if not isinstance(zp, torch.Tensor):
        return vf - float(zp) if zp else vf
    zf = zp.to(torch.float64)
    if per_channel_axis is not None and zf.dim() == 1 and zf.numel() > 1:
        shape = [1] * v.dim()
        shape[per_channel_axis] = -1
        zf = zf.reshape(shape)
    return vf - zf


@op("QLinearConv", 10)
def QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, b=None, *,
                auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    xs = _shifted(x, x_zero_point)
    ws = _shifted(w, w_zero_point, per_channel_axis=0)
    acc = _conv_nd(xs, ws, None if b is None else b.to(torch.float64), auto_pad=auto_pad, dilations=dilations,
                   group=group, kernel_shape=kernel_shape, pads=pads, strides=strides)
    acc = torch.round(acc)
    wsc = w_scale.to(torch.float32)
    if wsc.numel() > 1:
        wsc = wsc.reshape([1, -1] + [1] * (x.dim() - 2))
    scale = (x_scale.to(torch.float32) * wsc / y_scale.to(torch.float32)).to(torch.float64)
    return _requantize(acc, scale, y_zero_point, x.dtype)


@op("QLinearMatMul", 10, 21)
def QLinearMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    if a.dtype in _FLOAT8:
        af = a.to(torch.float32).to(torch.float64)
        bf = b.to(torch.float32).to(torch.float64)
    else:
        af = _shifted(a, a_zero_point, per_channel_axis=a.dim() - 2 if a.dim() >= 2 else None)
        bf = _shifted(b, b_zero_point, per_channel_axis=b.dim() - 1)
    acc = torch.matmul(af, bf)
    scale = (a_scale.to(torch.float32) * b_scale.to(torch.float32) / y_scale.to(torch.float32))
    if scale.dim() == 1 and scale.numel() > 1:
        scale = scale.reshape(-1) if b_scale.numel() > 1 else scale.reshape(-1, 1)
    return _requantize(acc, scale.to(torch.float64), y_zero_point, a.dtype)
