"""Binary, variadic and bitwise arithmetic.

Ops: Add, Sub, Mul, Div, Pow, Mod, Max, Min, Mean, Sum, BitShift, BitwiseAnd, BitwiseOr, BitwiseXor, BitwiseNot,
Clip, Where.

torch has almost no kernels for uint16/uint32/uint64. Wrapping arithmetic, bitwise ops and selection run on the
same-size signed view of the bits (exact); ordering runs on an order-preserving signed image (``_ordered``);
uint64 division has its own exact routine.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import torch

from ._util import normalize_axis, widen
from .registry import op

_SIGNED_TWIN = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_HALF_FLOATS = (torch.float16, torch.bfloat16)


# -- unsigned helpers ----------------------------------------------------------------------------------------
def _bits(x: torch.Tensor) -> torch.Tensor:
    """x viewed as the signed type of its size when torch lacks kernels for it (no copy)."""
    twin = _SIGNED_TWIN.get(x.dtype)
    return x.view(twin) if twin is not None else x


def _unbits(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of _bits."""
    return x.view(dtype) if dtype in _SIGNED_TWIN else x


def _on_bits(fn, *tensors: torch.Tensor) -> torch.Tensor:
    """fn over the signed views of same-dtype inputs: exact for wrapping +, -, *, bitwise ops and selection."""
    dtype = tensors[0].dtype
    return _unbits(fn(*[_bits(t) for t in tensors]), dtype)


def _ordered(x: torch.Tensor) -> torch.Tensor:
    """x as a signed tensor with the same order: uint16/32 widened, uint64 with its top bit flipped."""
    if x.dtype == torch.uint64:
        return x.view(torch.int64) ^ _INT64_MIN
    return widen(x)


def _unordered(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of _ordered."""
    if dtype == torch.uint64:
        return (x ^ _INT64_MIN).view(torch.uint64)
    return x if x.dtype == dtype else x.to(dtype)


def _udiv64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact uint64 quotient of int64 bit patterns a, b (division by zero gives an unspecified value)."""
    a, b = torch.broadcast_tensors(a, b)
    top = b < 0  # divisor >= 2**63: the quotient is 0 or 1
    d = torch.where(top | (b == 0), 1, b)
    q = (((a >> 1) & _INT64_MAX) // d) << 1  # halve the dividend so it is non-negative, then correct by one
    r = a - q * d
    q = q + ((r ^ _INT64_MIN) >= (d ^ _INT64_MIN)).to(torch.int64)
    return torch.where(top, ((a ^ _INT64_MIN) >= (b ^ _INT64_MIN)).to(torch.int64), q)


def _legacy_broadcast(a: torch.Tensor, b: torch.Tensor, broadcast: int, axis: int | None) -> torch.Tensor:
    """Opset < 7 broadcasting: with broadcast=1 B's shape matches A's starting at ``axis`` (default: suffix)."""
    if not broadcast or axis is None or b.dim() == 0:
        return b
    trailing = a.dim() - normalize_axis(axis, a.dim()) - b.dim()
    return b.reshape(tuple(b.shape) + (1,) * trailing)


# -- Add, Sub, Mul, Div ----------------------------------------------------------------------------------------
@op("Add", 7, 13, 14)
def Add(a, b):
    return _on_bits(torch.add, a, b)


@op("Add", 1, 6)
def Add_1(a, b, *, broadcast=0, axis=None, consumed_inputs=None):
    return Add(a, _legacy_broadcast(a, b, broadcast, axis))


@op("Sub", 7, 13, 14)
def Sub(a, b):
    return _on_bits(torch.sub, a, b)


@op("Sub", 1, 6)
def Sub_1(a, b, *, broadcast=0, axis=None, consumed_inputs=None):
    return Sub(a, _legacy_broadcast(a, b, broadcast, axis))


@op("Mul", 7, 13, 14)
def Mul(a, b):
    return _on_bits(torch.mul, a, b)


@op("Mul", 1, 6)
def Mul_1(a, b, *, broadcast=0, axis=None, consumed_inputs=None):
    return Mul(a, _legacy_broadcast(a, b, broadcast, axis))


@op("Div", 7, 13, 14)
def Div(a, b):
    """Integer division truncates toward zero (C semantics, as onnx.reference)."""
    if a.is_floating_point() or a.is_complex():
        return torch.div(a, b)
    if a.dtype == torch.uint64:
        return _udiv64(_bits(a), _bits(b)).view(torch.uint64)
    return torch.div(widen(a), widen(b), rounding_mode="trunc").to(a.dtype)


@op("Div", 1, 6)
def Div_1(a, b, *, broadcast=0, axis=None, consumed_inputs=None):
    return Div(a, _legacy_broadcast(a, b, broadcast, axis))


# -- Pow, Mod --------------------------------------------------------------------------------------------------
@op("Pow", 7, 12, 13, 15)
def Pow(x, y):
    """x ** y; the exponent may have another dtype (opset 12+) and the result has x's dtype (numpy power().astype)."""
    if x.is_floating_point():
        exponent = y if y.is_floating_point() else y.to(x.dtype)
        return torch.pow(x, exponent).to(x.dtype)
    if y.is_floating_point():  # integer base, float exponent: computed in float64, truncated back
        return torch.pow(x.to(torch.float64), y.to(torch.float64)).to(x.dtype)
    return torch.pow(widen(x), widen(y)).to(x.dtype)  # wraps like numpy's fixed-width integer power


@op("Pow", 1)
def Pow_1(x, y, *, broadcast=0, axis=None):
    return Pow(x, _legacy_broadcast(x, y, broadcast, axis))


@op("Mod", 10, 13, 28)
def Mod(a, b, *, fmod=0):
    """fmod=0: result has the divisor's sign (numpy mod); fmod=1: the dividend's sign (C fmod)."""
    if a.is_floating_point():
        work = torch.float32 if a.dtype in _HALF_FLOATS else a.dtype
        fn = torch.fmod if fmod else torch.remainder
        return fn(a.to(work), b.to(work)).to(a.dtype)
    if a.dtype == torch.uint64:
        a64, b64 = _bits(a), _bits(b)
        return (a64 - _udiv64(a64, b64) * b64).view(torch.uint64)
    fn = torch.fmod if fmod else torch.remainder
    return fn(widen(a), widen(b)).to(a.dtype)


# -- variadic: Max, Min, Sum, Mean -----------------------------------------------------------------------------
@op("Max", 1, 6, 8, 12, 13)
def Max(*inputs, consumed_inputs=None):
    """Elementwise max with numpy broadcasting; NaN propagates."""
    dtype = inputs[0].dtype
    return _unordered(reduce(torch.maximum, [_ordered(x) for x in inputs]), dtype)


@op("Min", 1, 6, 8, 12, 13)
def Min(*inputs, consumed_inputs=None):
    """Elementwise min with numpy broadcasting; NaN propagates."""
    dtype = inputs[0].dtype
    return _unordered(reduce(torch.minimum, [_ordered(x) for x in inputs]), dtype)


@op("Sum", 1, 6, 8, 13)
def Sum(*inputs, consumed_inputs=None):
    return reduce(Add, inputs)


@op("Mean", 1, 6, 8, 13)
def Mean(*inputs, consumed_inputs=None):
    total = reduce(Add, inputs)
    if total.is_floating_point():
        return total / len(inputs)
    return Div(total, torch.full((), len(inputs), dtype=total.dtype, device=total.device))


# -- bitwise ---------------------------------------------------------------------------------------------------
@op("BitShift", 11, 28)
def BitShift(x, y, *, direction=""):
    """Shift x by y bits; a shift outside [0, bits) yields 0 (or -1 for a right shift of a negative signed x)."""
    bits = x.element_size() * 8
    xs, ys = _bits(x), _bits(y)
    out_of_range = (ys < 0) | (ys >= bits)
    amount = torch.where(out_of_range, 0, ys)
    if direction == "LEFT":
        shifted, fill = torch.bitwise_left_shift(xs, amount), torch.zeros_like(xs)
    elif _is_unsigned(x.dtype):
        shifted, fill = _logical_right_shift(xs, amount, x.dtype), torch.zeros_like(xs)
    elif direction == "RIGHT":
        shifted, fill = torch.bitwise_right_shift(xs, amount), torch.where(xs < 0, -1, 0).to(xs.dtype)
    else:
        raise ValueError(f"BitShift direction must be LEFT or RIGHT, got {direction!r}")
    return _unbits(torch.where(out_of_range, fill, shifted), x.dtype)


def _is_unsigned(dtype: torch.dtype) -> bool:
    return dtype == torch.uint8 or dtype in _SIGNED_TWIN


def _logical_right_shift(xs: torch.Tensor, amount: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Zero-filling right shift of the signed view ``xs`` of an unsigned tensor (0 <= amount < bits)."""
    if xs.dtype == dtype:  # uint8: torch shifts it natively
        return torch.bitwise_right_shift(xs, amount)
    half = torch.bitwise_right_shift(xs, 1) & torch.iinfo(xs.dtype).max  # clear the sign bit, then shift signed
    rest = torch.bitwise_right_shift(half, (amount - 1).clamp(min=0))
    return torch.where(amount == 0, xs, rest)


@op("BitwiseAnd", 18)
def BitwiseAnd(a, b):
    return _on_bits(torch.bitwise_and, a, b)


@op("BitwiseOr", 18)
def BitwiseOr(a, b):
    return _on_bits(torch.bitwise_or, a, b)


@op("BitwiseXor", 18)
def BitwiseXor(a, b):
    return _on_bits(torch.bitwise_xor, a, b)


@op("BitwiseNot", 18)
def BitwiseNot(x):
    return _on_bits(torch.bitwise_not, x)


# -- Clip, Where -----------------------------------------------------------------------------------------------
@op("Clip", 1, 6)
def Clip_1(x, *, min=float("-inf"), max=float("inf"), consumed_inputs=None):  # noqa: A002
    """Bounds as attributes (default: the type's full range)."""
    return torch.clamp(x, min=min, max=max)


@op("Clip", 11, 12, 13)
def Clip_11(x, low=None, high=None):
    """Bounds as optional 0-d inputs; with min > max every element becomes max (numpy clip)."""
    if low is None and high is None:
        return x
    low = _ordered(low) if low is not None else None
    high = _ordered(high) if high is not None else None
    return _unordered(torch.clamp(_ordered(x), min=low, max=high), x.dtype)


@op("Where", 9, 16)
def Where(condition, x, y):
    """x where condition else y, with numpy broadcasting (string tensors: numpy object arrays)."""
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return np.where(condition.cpu().numpy(), x, y).astype(object)
    return _on_bits(lambda a, b: torch.where(condition, a, b), x, y)
