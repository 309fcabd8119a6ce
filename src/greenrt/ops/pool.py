"""Pooling: AveragePool, MaxPool, LpPool, GlobalAveragePool, GlobalMaxPool, GlobalLpPool, MaxUnpool.

Windows are computed on an explicitly padded input; sums use a depthwise all-ones convolution (which handles
dilations for any rank) and the divisor is the same convolution over a mask of the counted positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .conv import _CONV, _pad_spatial
from .registry import op

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _pool_geometry(in_shape, kernel, strides, dilations, pads, auto_pad, ceil_mode):
    """(out_shape, pads [b..., e...], extra end pads so every window fits) as in the ONNX pooling spec."""
    nd = len(in_shape)
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    span = [(kernel[i] - 1) * dilations[i] + 1 for i in range(nd)]
    out = []
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            o = math.ceil(in_shape[i] / strides[i])
            total = max(0, (o - 1) * strides[i] + span[i] - in_shape[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[nd + i] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
            out.append(o)
    else:
        if auto_pad == "VALID":
            pads = [0] * (2 * nd)
        for i in range(nd):
            size = (in_shape[i] + pads[i] + pads[nd + i] - span[i]) / strides[i] + 1
            if ceil_mode:
                o = math.ceil(size)
                if (o - 1) * strides[i] >= in_shape[i] + pads[i]:
                    o -= 1  # the last window must start inside the input or the leading pad
            else:
                o = math.floor(size)
            out.append(o)
    extra = [max(0, (out[i] - 1) * strides[i] + span[i] - (in_shape[i] + pads[i] + pads[nd + i])) for i in range(nd)]
    return out, pads, extra, strides, dilations


def _window_sum(x, kernel, strides, dilations):
    """Sum over each pooling window of x (N, C, *spatial).

    Undilated windows use avg_pool with divisor 1 (exact float accumulation); dilated ones an all-ones depthwise
    convolution in float64 (so no TF32 rounding on GPUs).
    """
    n, c = x.shape[:2]
    nd = x.dim() - 2
    flat = x.reshape(n * c, 1, *x.shape[2:])
    if all(d == 1 for d in dilations) and nd in (1, 2, 3):
        if nd == 1:
            y = F.avg_pool2d(flat.unsqueeze(-1), [kernel[0], 1], [strides[0], 1], divisor_override=1).squeeze(-1)
        else:
            pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
            y = pool(flat, list(kernel), list(strides), divisor_override=1)
    else:
        ones = torch.ones([1, 1, *kernel], dtype=torch.float64, device=x.device)
        y = _CONV[nd](flat.to(torch.float64), ones, stride=strides, dilation=dilations).to(x.dtype)
    return y.reshape(n, c, *y.shape[2:])


def _torch_padding(pads, kernel, nd):
    """Symmetric pads torch's pooling can apply itself (at most half the kernel), else None."""
    if nd not in _MAX_POOL:
        return None
    sym = [pads[i] for i in range(nd)]
    if any(pads[i] != pads[nd + i] or 2 * pads[i] > kernel[i] for i in range(nd)):
        return None
    return sym


def _compute_dtype(x):
    if x.dtype == torch.float64:
        return torch.float64
    return torch.float32


def _crop(y, out):
    return y[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)]


def _sum_pool(x, kernel, strides, dilations, pads, extra):
    nd = len(kernel)
    full_pads = pads[:nd] + [pads[nd + i] + extra[i] for i in range(nd)]
    return _window_sum(_pad_spatial(x, full_pads), kernel, strides, dilations)


@op("AveragePool", 1, 7, 10, 11, 19, 22)
def AveragePool(x, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None, kernel_shape=None,
                pads=None, strides=None):
    """Average over each window; the divisor counts input positions (plus explicit pads if count_include_pad)."""
    nd = x.dim() - 2
    in_shape = list(x.shape[2:])
    out, pads, extra, strides, dilations = _pool_geometry(
        in_shape, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    xc = x.to(_compute_dtype(x))
    padding = _torch_padding(pads, kernel_shape, nd)
    if padding is not None and all(d == 1 for d in dilations):
        # torch's divisor rules match ONNX: pads count only with count_include_pad, the ceil overhang never does
        y = _AVG_POOL[nd](xc, list(kernel_shape), strides, padding, bool(ceil_mode), bool(count_include_pad))
        if list(y.shape[2:]) == out:
            return y.to(x.dtype)
    total = _crop(_sum_pool(xc, kernel_shape, strides, dilations, pads, extra), out)
    mask = torch.ones([1, 1, *in_shape], dtype=xc.dtype, device=x.device)
    if count_include_pad:
        mask = _pad_spatial(mask, pads, value=1.0)
        count = _sum_pool(mask, kernel_shape, strides, dilations, [0] * (2 * nd), extra)
    else:
        count = _sum_pool(mask, kernel_shape, strides, dilations, pads, extra)
    return (total / _crop(count, out)).to(x.dtype)


@op("LpPool", 1, 2, 11, 18, 22)
def LpPool(x, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, p=2, pads=None, strides=None):
    out, pads, extra, strides, dilations = _pool_geometry(
        list(x.shape[2:]), kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    xc = x.to(_compute_dtype(x)).abs().pow(p)
    total = _crop(_sum_pool(xc, kernel_shape, strides, dilations, pads, extra), out)
    return total.pow(1.0 / p).to(x.dtype)


def _onnx_indices(idx, x_shape, padded_shape, pads, storage_order):
    """torch's flat indices into the padded spatial block -> ONNX flat indices into the whole input tensor."""
    nd = len(padded_shape)
    in_sp = list(x_shape[2:])
    coords = []
    rest = idx
    for i in reversed(range(nd)):
        coords.append(rest % padded_shape[i] - pads[i])
        rest = rest // padded_shape[i]
    coords = coords[::-1]
    flat = torch.zeros_like(idx)
    order = range(nd) if storage_order == 0 else reversed(range(nd))
    for i in order:
        flat = flat * in_sp[i] + coords[i]
    n, c = x_shape[:2]
    plane = math.prod(in_sp)
    nc = torch.arange(n * c, device=idx.device, dtype=idx.dtype).reshape([n, c] + [1] * nd)
    return flat + nc * plane


@op("MaxPool", 1, 8, 10, 11, 12, 22)
def MaxPool(x, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None, storage_order=0,
            strides=None, ctx=None):
    """Max over each window (padding never wins); second output: flat indices (row- or column-major)."""
    nd = x.dim() - 2
    out, pads, extra, strides, dilations = _pool_geometry(
        list(x.shape[2:]), kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    if x.dtype in (torch.float64, torch.int32, torch.int64):
        xc = x.to(torch.float64)
    elif x.dtype in (torch.int8, torch.uint8) and x.is_cuda:
        xc = x.to(torch.float16)  # exact for 8-bit integers, half the traffic of float32 (an INT8 engine's stem)
    else:
        xc = x.to(torch.float32)
    want_idx = ctx is not None and ctx.num_outputs > 1
    padding = _torch_padding(pads, kernel_shape, nd)
    if padding is not None:
        res = _MAX_POOL[nd](xc, list(kernel_shape), stride=strides, padding=padding, dilation=dilations,
                            ceil_mode=bool(ceil_mode), return_indices=want_idx)
        y = res[0] if want_idx else res
        if list(y.shape[2:]) == out:
            if not want_idx:
                return y.to(x.dtype)
            return y.to(x.dtype), _onnx_indices(res[1], list(x.shape), list(x.shape[2:]), [0] * (2 * nd),
                                                storage_order)
    full_pads = pads[:nd] + [pads[nd + i] + extra[i] for i in range(nd)]
    padded = _pad_spatial(xc, full_pads, value=-math.inf)
    res = _MAX_POOL[nd](padded, list(kernel_shape), stride=strides, dilation=dilations, return_indices=want_idx)
    if not want_idx:
        return _crop(res, out).to(x.dtype)
    y, idx = res
    y, idx = _crop(y, out), _crop(idx, out)
    return y.to(x.dtype), _onnx_indices(idx, list(x.shape), list(padded.shape[2:]), full_pads, storage_order)


@op("GlobalAveragePool", 1, 22)
def GlobalAveragePool(x):
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@op("GlobalMaxPool", 1, 22)
def GlobalMaxPool(x):
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


@op("GlobalLpPool", 1, 2, 22)
def GlobalLpPool(x, *, p=2):
    xc = x.to(_compute_dtype(x))
    return xc.abs().pow(p).sum(dim=tuple(range(2, x.dim())), keepdim=True).pow(1.0 / p).to(x.dtype)


@op("MaxUnpool", 9, 11, 22)
def MaxUnpool(x, indices, output_shape=None, *, kernel_shape=None, pads=None, strides=None):
    """Scatter x into zeros at the flat indices produced by MaxPool."""
    nd = x.dim() - 2
    strides = list(strides) if strides else [1] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    spatial = [(x.shape[2 + i] - 1) * strides[i] + kernel_shape[i] - pads[i] - pads[nd + i] for i in range(nd)]
    inferred = list(x.shape[:2]) + spatial
    y = torch.zeros(math.prod(inferred), dtype=x.dtype, device=x.device)
    y[indices.reshape(-1).long()] = x.reshape(-1)
    y = y.reshape(inferred)
    if output_shape is None:
        return y
    # as onnx's reference: indices address the inferred shape, which is then placed at the origin of output_shape
    shape = [int(v) for v in output_shape.tolist()]
    out = torch.zeros(shape, dtype=x.dtype, device=x.device)
    common = tuple(slice(0, min(a, b)) for a, b in zip(inferred, shape))
    out[common] = y[common]
    return out
