"""Indexing, selection and scans: Gather, GatherElements, GatherND, Scatter, ScatterElements, ScatterND, Compress,
NonZero, OneHot, Trilu, TopK, Unique, ReverseSequence, ArgMax, ArgMin, CumSum, CumProd.

Indices may be negative (counted from the end of their axis) wherever ONNX allows it.
"""

from __future__ import annotations

import numpy as np
import torch

from ._util import int_list, normalize_axis, widen
from .registry import op


def _fix_negative(indices: torch.Tensor, dim) -> torch.Tensor:
    """int64 indices with negative values counted from the end (``dim`` may broadcast)."""
    indices = indices.to(torch.int64)
    return torch.where(indices < 0, indices + dim, indices)


# -- Gather --------------------------------------------------------------------------------------------


@op("Gather", 1, 11, 13)
def Gather(data, indices, *, axis=0):
    """out.shape = data.shape[:axis] + indices.shape + data.shape[axis+1:]."""
    axis = normalize_axis(axis, data.ndim)
    if isinstance(data, np.ndarray):
        return np.take(data, indices.cpu().numpy(), axis=axis)
    idx = _fix_negative(indices, data.shape[axis])
    flat = data.index_select(axis, idx.reshape(-1))
    return flat.reshape(tuple(data.shape[:axis]) + tuple(idx.shape) + tuple(data.shape[axis + 1 :]))


@op("GatherElements", 11, 13)
def GatherElements(data, indices, *, axis=0):
    axis = normalize_axis(axis, data.ndim)
    return torch.gather(data, axis, _fix_negative(indices, data.shape[axis]))


def _nd_split(data, indices, batch_dims: int):
    """Flatten batch dims: data -> (B, *rest), indices -> (B, M, k) with negatives fixed."""
    batch_shape = tuple(data.shape[:batch_dims])
    k = indices.shape[-1]
    nb = int(np.prod(batch_shape, dtype=np.int64))
    d = data.reshape((nb,) + tuple(data.shape[batch_dims:]))
    idx = indices.reshape(nb, -1, k).to(torch.int64)
    # negatives fixed per index column with Python ints: a torch.tensor(list, device=cuda) would be a host-to-device
    # copy, which also breaks CUDA-graph capture
    dims = data.shape[batch_dims: batch_dims + k]
    idx = torch.stack([_fix_negative(idx[..., j], int(dims[j])) for j in range(k)], dim=-1) if k else idx
    return d, idx, batch_shape


@op("GatherND", 11, 12, 13)
def GatherND(data, indices, *, batch_dims=0):
    """Each index tuple (last axis of ``indices``) picks an element or a slice of data, per batch."""
    d, idx, batch_shape = _nd_split(data, indices, batch_dims)
    k = idx.shape[-1]
    b = torch.arange(d.shape[0], device=data.device).reshape(-1, 1)
    picked = d[(b,) + tuple(idx[..., j] for j in range(k))]  # (B, M, *slice)
    out_shape = batch_shape + tuple(indices.shape[batch_dims:-1]) + tuple(data.shape[batch_dims + k :])
    return picked.reshape(out_shape)


# -- Scatter -------------------------------------------------------------------------------------------

_TORCH_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def _scatter_elements(data, indices, updates, axis: int, reduction: str):
    axis = normalize_axis(axis, data.ndim)
    idx = _fix_negative(indices, data.shape[axis])
    x, upd = widen(data), widen(updates)
    if reduction == "none":
        out = x.scatter(axis, idx, upd)
    else:
        out = x.scatter_reduce(axis, idx, upd, _TORCH_REDUCE[reduction], include_self=True)
    return out.to(data.dtype)


@op("Scatter", 9, 11)
def Scatter(data, indices, updates, *, axis=0):
    """Deprecated alias of ScatterElements without reduction."""
    return _scatter_elements(data, indices, updates, axis, "none")


@op("ScatterElements", 11, 13, 16, 18)
def ScatterElements(data, indices, updates, *, axis=0, reduction="none"):
    return _scatter_elements(data, indices, updates, axis, reduction)


@op("ScatterND", 11, 13, 16, 18)
def ScatterND(data, indices, updates, *, reduction="none"):
    """Index tuples address elements/slices of data; they are linearized over the first k dims."""
    k = indices.shape[-1]
    lead = tuple(data.shape[:k])
    rest = tuple(data.shape[k:])
    dims = torch.tensor(list(lead), dtype=torch.int64, device=data.device)
    idx = _fix_negative(indices.reshape(-1, k), dims)
    strides = torch.tensor(
        [int(np.prod(lead[j + 1 :], dtype=np.int64)) for j in range(k)], dtype=torch.int64, device=data.device
    )
    linear = (idx * strides).sum(-1) if k else torch.zeros(idx.shape[0], dtype=torch.int64, device=data.device)
    x = widen(data).reshape((-1,) + rest).clone()
    upd = widen(updates).reshape((-1,) + rest)
    if reduction == "none":
        x[linear] = upd
    else:
        index = linear.reshape((-1,) + (1,) * len(rest)).expand_as(upd)
        x = x.scatter_reduce(0, index, upd, _TORCH_REDUCE[reduction], include_self=True)
    return x.reshape(data.shape).to(data.dtype)


# -- Compress / NonZero / OneHot / Trilu ---------------------------------------------------------------


@op("Compress", 9, 11, 28)
def Compress(x, condition, *, axis=None):
    """Keep the slices along axis (or flattened elements) where condition is true."""
    keep = torch.nonzero(condition.reshape(-1).to(torch.bool)).reshape(-1)
    if axis is None:
        flat = x.reshape(-1)
        return flat.index_select(0, keep[keep < flat.shape[0]])
    axis = normalize_axis(axis, x.ndim)
    return x.index_select(axis, keep[keep < x.shape[axis]])


@op("NonZero", 9, 13)
def NonZero(x):
    """Indices of non-zero elements, shape (rank, count), in row-major order."""
    if x.ndim == 0:
        x = x.reshape(1)
    return torch.nonzero(widen(x)).T.contiguous()


@op("OneHot", 9, 11, 28)
def OneHot(indices, depth, values, *, axis=-1):
    """values = [off, on]; indices outside [-depth, depth-1] give an all-off row; float indices truncate."""
    depth = int(depth.reshape(-1)[0].item())
    idx = widen(indices).to(torch.int64)
    idx = torch.where(idx < 0, idx + depth, idx)
    rank = indices.ndim + 1
    axis = normalize_axis(axis, rank)
    classes = torch.arange(depth, device=indices.device, dtype=torch.int64)
    classes = classes.reshape((depth,) + (1,) * (rank - 1 - axis))
    hot = idx.unsqueeze(axis) == classes
    off, on = values.reshape(-1)[0], values.reshape(-1)[1]
    return torch.where(hot, on, off)


@op("Trilu", 14)
def Trilu(x, k=None, *, upper=1):
    """Keep the upper (j - i >= k) or lower (j - i <= k) triangle of the last two dims."""
    k = int_list(k)[0] if k is not None else 0
    rows, cols = x.shape[-2], x.shape[-1]
    i = torch.arange(rows, device=x.device).reshape(-1, 1)
    j = torch.arange(cols, device=x.device).reshape(1, -1)
    keep = (j - i >= k) if upper else (j - i <= k)
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


# -- TopK ----------------------------------------------------------------------------------------------


def _topk(x, k: int, axis: int, largest: int):
    """Stable sort: equal values keep the lower index first. Indices are int64."""
    axis = normalize_axis(axis, x.ndim)
    values, indices = torch.sort(widen(x), dim=axis, descending=bool(largest), stable=True)
    values = values.narrow(axis, 0, k).to(x.dtype)
    return values, indices.narrow(axis, 0, k)


@op("TopK", 1)
def TopK_1(x, *, k, axis=-1):
    return _topk(x, k, axis, 1)


@op("TopK", 10)
def TopK_10(x, k, *, axis=-1):
    return _topk(x, int_list(k)[0], axis, 1)


@op("TopK", 11, 24)
def TopK_11(x, k, *, axis=-1, largest=1, sorted=1):
    return _topk(x, int_list(k)[0], axis, largest)


# -- Unique --------------------------------------------------------------------------------------------


@op("Unique", 11, 28)
def Unique(x, *, axis=None, sorted=1):
    """Unique values (or slices along axis), first-occurrence indices, inverse indices and counts."""
    if axis is None:
        src = x.reshape(-1)
        dim = 0
    else:
        src = x
        dim = normalize_axis(axis, x.ndim)
    y, inverse, counts = torch.unique(widen(src), sorted=True, return_inverse=True, return_counts=True, dim=dim)
    n = y.shape[dim]
    positions = torch.arange(inverse.shape[0], device=x.device, dtype=torch.int64)
    first = torch.full((n,), inverse.shape[0], dtype=torch.int64, device=x.device)
    first = first.scatter_reduce(0, inverse, positions, "amin", include_self=True)
    if not sorted:  # order by first occurrence
        order = torch.argsort(first)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n, device=x.device, dtype=torch.int64)
        y = y.index_select(dim, order)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return y.to(x.dtype), first, inverse.to(torch.int64), counts.to(torch.int64)


# -- ReverseSequence -----------------------------------------------------------------------------------


@op("ReverseSequence", 10, 28)
def ReverseSequence(x, sequence_lens, *, batch_axis=1, time_axis=0):
    """Per batch entry b, reverse the first sequence_lens[b] steps along the time axis."""
    steps = x.shape[time_axis]
    lens = sequence_lens.to(torch.int64).to(x.device)
    t = torch.arange(steps, device=x.device, dtype=torch.int64)
    src = torch.where(t.reshape(1, -1) < lens.reshape(-1, 1), lens.reshape(-1, 1) - 1 - t.reshape(1, -1), t)
    # src is (batch, time): lay it out on x's axes and broadcast over the rest
    if batch_axis > time_axis:
        src = src.T
    shape = [1] * x.ndim
    shape[batch_axis], shape[time_axis] = x.shape[batch_axis], steps
    return torch.gather(x, time_axis, src.reshape(shape).expand(x.shape))


# -- ArgMax / ArgMin -----------------------------------------------------------------------------------


def _arg(x, fn, axis: int, keepdims: int, select_last_index: int):
    axis = normalize_axis(axis, x.ndim)
    x = widen(x.to(torch.uint8) if x.dtype == torch.bool else x)
    if select_last_index:
        n = x.shape[axis]
        out = (n - 1) - fn(x.flip(axis), dim=axis, keepdim=bool(keepdims))
    else:
        out = fn(x, dim=axis, keepdim=bool(keepdims))
    return out.to(torch.int64)


@op("ArgMax", 1, 11)
def ArgMax_1(x, *, axis=0, keepdims=1):
    return _arg(x, torch.argmax, axis, keepdims, 0)


@op("ArgMax", 12, 13)
def ArgMax_12(x, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(x, torch.argmax, axis, keepdims, select_last_index)


@op("ArgMin", 1, 11)
def ArgMin_1(x, *, axis=0, keepdims=1):
    return _arg(x, torch.argmin, axis, keepdims, 0)


@op("ArgMin", 12, 13)
def ArgMin_12(x, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(x, torch.argmin, axis, keepdims, select_last_index)


# -- CumSum / CumProd ----------------------------------------------------------------------------------


def _scan(x, axis_t, fn, identity, exclusive: int, reverse: int):
    """Inclusive/exclusive, forward/reverse cumulative fn along axis, in x's dtype."""
    axis = normalize_axis(int_list(axis_t)[0], x.ndim)
    data = widen(x)
    if reverse:
        data = data.flip(axis)
    out = fn(data, dim=axis, dtype=data.dtype)
    if exclusive:
        first = torch.full_like(out.narrow(axis, 0, 1), identity)
        out = torch.cat([first, out.narrow(axis, 0, out.shape[axis] - 1)], dim=axis)
    if reverse:
        out = out.flip(axis)
    return out.to(x.dtype)


@op("CumSum", 11, 14)
def CumSum(x, axis, *, exclusive=0, reverse=0):
    return _scan(x, axis, torch.cumsum, 0, exclusive, reverse)


@op("CumProd", 26)
def CumProd(x, axis, *, exclusive=0, reverse=0):
    return _scan(x, axis, torch.cumprod, 1, exclusive, reverse)
