"""Type conversion: Cast, CastLike, BitCast.

Numeric casts go through torch. Float 8 targets follow the ONNX saturate tables; string tensors (numpy object
arrays) are parsed / formatted with numpy, as onnx's reference does. float8e8m0 (torch.float8_e8m0fnu, where torch
has it) is built bit by bit as ONNX specifies it, with ``round_mode`` (up, down or nearest) and ``saturate``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..onnx.dtypes import (FLOAT8_E8M0FNU, STRING, TYPE_NAMES, TORCH_TO_NUMPY, TORCH_TO_ONNX, to_torch_dtype,
                           torch_to_numpy)
from .registry import op

_STRING = STRING
_FLOAT8 = (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz)
_FNUZ = (torch.float8_e4m3fnuz, torch.float8_e5m2fnuz)
_E8M0 = FLOAT8_E8M0FNU  # None on torch < 2.7
# Source types torch cannot convert from reliably: go through float32 (exact for all of them).
_VIA_FLOAT32 = _FLOAT8 + ((_E8M0,) if _E8M0 is not None else ())


def _is_string(x) -> bool:
    return isinstance(x, np.ndarray)


# --- float 8 -----------------------------------------------------------------------------------------------------


def _float8_overflow_threshold(dtype: torch.dtype) -> float:
    """Smallest |x| that rounds (RNE) past the largest finite value of ``dtype`` (3 mantissa bits: e4m3fn)."""
    fmax = torch.finfo(dtype).max
    ulp = 2.0 ** (math.floor(math.log2(fmax)) - 3)
    return fmax + ulp / 2


def _to_float8(x: torch.Tensor, dtype: torch.dtype, saturate: bool, fnuz_inf_is_nan: bool) -> torch.Tensor:
    """x -> float8 per the Cast tables. ``fnuz_inf_is_nan``: Cast 19-23 map +-inf to NaN for FNUZ even saturating."""
    if not x.is_floating_point() or x.dtype in _VIA_FLOAT32:
        x = x.to(torch.float64 if x.dtype in (torch.int64, torch.uint64, torch.int32, torch.uint32) else torch.float32)
    if saturate:
        fmax = torch.finfo(dtype).max
        out = torch.clamp(x, -fmax, fmax)
        if fnuz_inf_is_nan and dtype in _FNUZ:
            out = torch.where(torch.isinf(x), torch.full_like(x, math.nan), out)
        return out.to(dtype)
    if dtype == torch.float8_e4m3fn:
        # torch saturates e4m3fn; without saturate, overflow (and +-inf) must become NaN keeping the sign.
        overflow = torch.abs(x) >= _float8_overflow_threshold(dtype)
        nan = torch.copysign(torch.full_like(x, math.nan), x)
        x = torch.where(overflow, nan, x)
    # torch already maps overflow to +-inf for e5m2 and to NaN for the FNUZ types.
    return x.to(dtype)


def _to_float8e8m0(x: torch.Tensor, saturate: bool, round_mode: str) -> torch.Tensor:
    """x -> float8e8m0 as the Cast spec (and onnx.numpy_helper.to_float8e8m0) defines it, on the float32 bits: the
    result is the float32 exponent field, so the sign is dropped and 0 / float32 subnormals give 2^-127 (0x00);
    inf and NaN give NaN (0xFF). A nonzero mantissa moves the exponent up by one for ``up``; for ``nearest`` when
    the mantissa is at least one half (exactly one half rounds up, except below 2^-126); never for ``down``.
    ``saturate`` keeps 2^127 (0xFE) from rounding up to NaN."""
    if round_mode not in ("up", "down", "nearest"):
        raise ValueError(f"Cast: round_mode must be 'up', 'down' or 'nearest', not {round_mode!r}")
    bits = x.to(torch.float32).contiguous().view(torch.int32)
    exponent = (bits >> 23) & 0xFF
    special = exponent == 0xFF
    if round_mode == "up":
        round_up = (bits & 0x7FFFFF) != 0
    elif round_mode == "nearest":
        guard = (bits & 0x400000) != 0  # the mantissa's first bit: >= one half
        rest = (bits & 0x3FFFFF) != 0
        round_up = guard & (rest | (exponent > 0))
    else:
        round_up = torch.zeros_like(special)
    round_up = round_up & ~special
    if saturate:
        round_up = round_up & (exponent != 0xFE)
    exponent = torch.where(special, torch.full_like(exponent, 0xFF), exponent + round_up.to(exponent.dtype))
    return exponent.to(torch.uint8).view(_E8M0).reshape(x.shape)


# --- strings -----------------------------------------------------------------------------------------------------


def _to_string(x) -> np.ndarray:
    """Numbers -> str as numpy formats them (onnx's reference uses ``astype(np.str_)``)."""
    if _is_string(x):
        return x.copy()
    array = torch_to_numpy(x)
    if array.dtype.kind not in "biufc":  # bfloat16 / float8 via ml_dtypes: format the float32 value
        array = array.astype(np.float32)
    return array.astype(np.str_).astype(object)


def _parse_float(s: str) -> float:
    """'1e-5', '+INF', 'nan' (any case), ... as a float; 'true'/'false' as 1/0."""
    text = s.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return 1.0 if lowered == "true" else 0.0
    return float(text)


def _from_string(x: np.ndarray, dtype: torch.dtype, saturate: bool, fnuz_inf_is_nan: bool, device,
                 round_mode: str = "up") -> torch.Tensor:
    flat = [str(s) for s in x.reshape(-1)]
    np_dtype = TORCH_TO_NUMPY.get(dtype)
    if np_dtype is not None and np_dtype.kind in "iu":
        try:
            values = np.array(flat, dtype=np_dtype)  # exact for large 64-bit integers
        except (ValueError, OverflowError):
            values = np.array([_parse_float(s) for s in flat], dtype=np.float64)
            return _cast_tensor(torch.from_numpy(values).to(device), dtype, saturate, fnuz_inf_is_nan,
                                round_mode).reshape(x.shape)
        return torch.from_numpy(values.reshape(x.shape)).to(device)
    values = np.array([_parse_float(s) for s in flat], dtype=np.float64).reshape(x.shape)
    return _cast_tensor(torch.from_numpy(values).to(device), dtype, saturate, fnuz_inf_is_nan, round_mode)


# --- numeric -----------------------------------------------------------------------------------------------------


def _cast_tensor(x: torch.Tensor, dtype: torch.dtype, saturate: bool, fnuz_inf_is_nan: bool,
                 round_mode: str = "up") -> torch.Tensor:
    if dtype == _E8M0:  # from float8e8m0 too: onnx's reference re-rounds 2^-127 (a float32 subnormal) to 2^-126
        return _to_float8e8m0(x, saturate, round_mode)
    if dtype in _FLOAT8:
        return _to_float8(x, dtype, saturate, fnuz_inf_is_nan)
    if x.dtype in _VIA_FLOAT32:
        x = x.to(torch.float32)  # torch's direct float8 -> integer conversions are not reliable
    return x.to(dtype)


def _cast(x, to: int, saturate: int, fnuz_inf_is_nan: bool, device, round_mode: str = "up"):
    if to == _STRING:
        return _to_string(x)
    dtype = to_torch_dtype(to)
    if _is_string(x):
        return _from_string(x, dtype, bool(saturate), fnuz_inf_is_nan, device, round_mode)
    return _cast_tensor(x, dtype, bool(saturate), fnuz_inf_is_nan, round_mode)


def _elem_type(y) -> int:
    return _STRING if _is_string(y) else TORCH_TO_ONNX[y.dtype]


# --- ops ---------------------------------------------------------------------------------------------------------


@op("Cast", 1, 6, 9, 13)
def Cast_1(x, *, to, ctx):
    """Before opset 9 ``to`` could be a type name string (e.g. 'FLOAT')."""
    if isinstance(to, str):
        to = {name.upper(): num for num, name in TYPE_NAMES.items()}[to.upper()]
    return _cast(x, to, 1, True, ctx.device)


@op("Cast", 19, 21, 23)
def Cast_19(x, *, to, saturate=1, ctx):
    return _cast(x, to, saturate, True, ctx.device)


@op("Cast", 24, 25, 28)
def Cast_24(x, *, to, saturate=1, round_mode="up", ctx):
    """From opset 24 saturating casts send +-inf to +-FLT_MAX for the FNUZ float 8 types too."""
    return _cast(x, to, saturate, False, ctx.device, round_mode)


@op("CastLike", 15)
def CastLike_15(x, like, *, ctx):
    return _cast(x, _elem_type(like), 1, True, ctx.device)


@op("CastLike", 19, 21, 23)
def CastLike_19(x, like, *, saturate=1, ctx):
    return _cast(x, _elem_type(like), saturate, True, ctx.device)


@op("CastLike", 24, 25)
def CastLike_24(x, like, *, saturate=1, round_mode="up", ctx):
    return _cast(x, _elem_type(like), saturate, False, ctx.device, round_mode)


@op("BitCast", 26)
def BitCast(x, *, to):
    """Reinterpret the bits of each element as ``to`` (same bit width, same shape)."""
    dtype = to_torch_dtype(to)
    if x.element_size() != torch.empty((), dtype=dtype).element_size():
        raise ValueError(f"BitCast: {x.dtype} and {dtype} differ in width")
    return x.contiguous().view(dtype).reshape(x.shape)
