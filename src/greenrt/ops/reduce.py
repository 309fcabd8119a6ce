"""Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum,
ReduceLogSumExp, ReduceSumSquare.

Axes are an attribute up to ReduceSum-11 / Reduce*-13 and an optional input afterwards. Empty axes reduce over
every dimension, unless noop_with_empty_axes is set: then only the elementwise part of the op is applied (as in
onnx.reference: ReduceSumSquare gives x*x, ReduceL2 gives |x|, ...). Reducing an empty set gives the identity
of the reduction (0 for sums, 1 for products, -inf / the dtype's minimum for max, ...).
"""

from __future__ import annotations

import torch

from ._util import int_list, normalize_axis, widen
from .registry import op


def _dims(x, axes, noop_with_empty_axes):
    """The list of dimensions to reduce (empty: nothing to reduce)."""
    axes = int_list(axes)
    if not axes:
        return [] if noop_with_empty_axes else list(range(x.dim()))
    return sorted({normalize_axis(a, x.dim()) for a in axes})


def _out_shape(x, dims, keepdims):
    return [1 if i in dims else n for i, n in enumerate(x.shape) if keepdims or i not in dims]


def _sum(x, dims, keepdims):
    return torch.sum(x, dim=dims, keepdim=keepdims) if dims else x


def _extreme(x, dims, keepdims, largest, unsigned=False):
    """amax/amin; an empty set gives -inf/+inf (or the dtype's min/max); bool compares False < True.

    ``unsigned``: x is a widened unsigned tensor, whose min is 0 and max is -1 once cast back.
    """
    if not dims:
        return x
    if x.dtype == torch.bool:
        return _extreme(x.to(torch.uint8), dims, keepdims, largest).to(torch.bool)
    if any(x.shape[d] == 0 for d in dims):
        info = torch.finfo(x.dtype) if x.dtype.is_floating_point else torch.iinfo(x.dtype)
        if x.dtype.is_floating_point:
            fill = -float("inf") if largest else float("inf")
        else:
            fill = info.min if largest else info.max
            if unsigned:
                fill = 0 if largest else -1
        return torch.full(_out_shape(x, dims, keepdims), fill, dtype=x.dtype, device=x.device)
    fn = torch.amax if largest else torch.amin
    return fn(x, dim=dims, keepdim=keepdims)


def _prod(x, dims, keepdims):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdims)
    return x


def _float(x):
    """x in a floating dtype for ops whose math is only defined for floats (integer inputs round back)."""
    return x if x.dtype.is_floating_point else x.to(torch.float64)


def _logsumexp(x, dims, keepdims):
    if not dims:
        return x
    if x.numel() == 0:
        return torch.log(torch.sum(torch.exp(x), dim=dims, keepdim=keepdims))
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


def _mean(x, dims, keepdims):
    if not dims:
        return x
    if x.dtype.is_floating_point:
        return torch.mean(x, dim=dims, keepdim=keepdims)
    count = 1
    for d in dims:
        count *= x.shape[d]
    total = torch.sum(x, dim=dims, keepdim=keepdims)
    if count == 0:  # mean of nothing: NaN, cast to the integer type like numpy does
        return total.to(torch.float64) / 0.0
    return torch.div(total, count, rounding_mode="trunc")


_KERNELS = {
    "ReduceSum": lambda x, d, k: _sum(x, d, k),
    "ReduceSumSquare": lambda x, d, k: _sum(x * x, d, k),
    "ReduceL1": lambda x, d, k: _sum(torch.abs(x), d, k),
    "ReduceL2": lambda x, d, k: torch.sqrt(_sum(_float(x) * _float(x), d, k)),
    "ReduceLogSum": lambda x, d, k: torch.log(_sum(_float(x), d, k)),
    "ReduceLogSumExp": lambda x, d, k: _logsumexp(_float(x), d, k),
    "ReduceMean": _mean,
    "ReduceProd": _prod,
}


def _reduce(name, x, axes, keepdims, noop_with_empty_axes):
    dims = _dims(x, axes, noop_with_empty_axes)
    dtype = x.dtype
    wide = widen(x)
    if name in ("ReduceL2", "ReduceLogSum", "ReduceLogSumExp") and wide.dtype in (torch.float16, torch.bfloat16):
        wide = wide.float()
    if name in ("ReduceMax", "ReduceMin"):
        unsigned = dtype in (torch.uint16, torch.uint32, torch.uint64)
        out = _extreme(wide, dims, bool(keepdims), name == "ReduceMax", unsigned)
    else:
        out = _KERNELS[name](wide, dims, bool(keepdims))
    return out.to(dtype)


def _make(name):
    """Two implementations of a reduction: axes as attribute (old) and axes as optional input (new)."""

    def attr_version(x, *, axes=None, keepdims=1):
        return _reduce(name, x, axes, keepdims, 0)

    def input_version(x, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        return _reduce(name, x, axes, keepdims, noop_with_empty_axes)

    attr_version.__name__ = f"{name}_1"
    input_version.__name__ = f"{name}_18"
    attr_version.__doc__ = f"{name} with an axes attribute."
    input_version.__doc__ = f"{name} with an optional axes input."
    return attr_version, input_version


ReduceSum_1, ReduceSum_13 = _make("ReduceSum")
op("ReduceSum", 1, 11)(ReduceSum_1)
op("ReduceSum", 13)(ReduceSum_13)

ReduceMean_1, ReduceMean_18 = _make("ReduceMean")
op("ReduceMean", 1, 11, 13)(ReduceMean_1)
op("ReduceMean", 18)(ReduceMean_18)

ReduceMax_1, ReduceMax_18 = _make("ReduceMax")
op("ReduceMax", 1, 11, 12, 13)(ReduceMax_1)
op("ReduceMax", 18, 20)(ReduceMax_18)

ReduceMin_1, ReduceMin_18 = _make("ReduceMin")
op("ReduceMin", 1, 11, 12, 13)(ReduceMin_1)
op("ReduceMin", 18, 20)(ReduceMin_18)

ReduceProd_1, ReduceProd_18 = _make("ReduceProd")
op("ReduceProd", 1, 11, 13)(ReduceProd_1)
op("ReduceProd", 18)(ReduceProd_18)

ReduceL1_1, ReduceL1_18 = _make("ReduceL1")
op("ReduceL1", 1, 11, 13)(ReduceL1_1)
op("ReduceL1", 18)(ReduceL1_18)

ReduceL2_1, ReduceL2_18 = _make("ReduceL2")
op("ReduceL2", 1, 11, 13)(ReduceL2_1)
op("ReduceL2", 18)(ReduceL2_18)

ReduceLogSum_1, ReduceLogSum_18 = _make("ReduceLogSum")
op("ReduceLogSum", 1, 11, 13)(ReduceLogSum_1)
op("ReduceLogSum", 18, 28)(ReduceLogSum_18)

ReduceLogSumExp_1, ReduceLogSumExp_18 = _make("ReduceLogSumExp")
op("ReduceLogSumExp", 1, 11, 13)(ReduceLogSumExp_1)
op("ReduceLogSumExp", 18, 28)(ReduceLogSumExp_18)

ReduceSumSquare_1, ReduceSumSquare_18 = _make("ReduceSumSquare")
op("ReduceSumSquare", 1, 11, 13)(ReduceSumSquare_1)
op("ReduceSumSquare", 18)(ReduceSumSquare_18)
