"""Normalizations: BatchNormalization, InstanceNormalization, LayerNormalization, RMSNormalization,
GroupNormalization, LpNormalization, MeanVarianceNormalization, LRN.

Statistics are computed in float32 for float16/bfloat16 inputs (float64 stays float64) and cast back.
"""

from __future__ import annotations

import torch

from ._util import normalize_axis
from .registry import op


def _work(x):
    """x in the dtype statistics are computed in."""
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)


def _channel(p, x):
    """A per-channel parameter of shape (C,) (or (C, D1, ...) for BatchNormalization's spatial=0) shaped for x."""
    p = _work(p)
    if p.dim() == 1:
        return p.reshape((1, -1) + (1,) * (x.dim() - 2))
    return p.unsqueeze(0)


def _batchnorm_infer(x, scale, b, mean, var, epsilon):
    xw = _work(x)
    inv = torch.rsqrt(_channel(var, xw) + epsilon)
    y = (xw - _channel(mean, xw)) * inv * _channel(scale, xw) + _channel(b, xw)
    return y.to(x.dtype)


@op("BatchNormalization", 1, 6, 7, 9)
def BatchNormalization_1(x, scale, b, mean, var, *, epsilon=1e-5, momentum=0.9, is_test=0, spatial=1, ctx=None):
    """Inference mode; the optional running/saved statistics outputs are passed through."""
    y = _batchnorm_infer(x, scale, b, mean, var, epsilon)
    return (y, mean, var, mean, var)[: max(ctx.num_outputs, 1)]


@op("BatchNormalization", 14, 15)
def BatchNormalization_14(x, scale, b, input_mean, input_var, *, epsilon=1e-5, momentum=0.9, training_mode=0):
    """training_mode=1 normalizes with the batch statistics and also returns the updated running ones."""
    if not training_mode:
        return _batchnorm_infer(x, scale, b, input_mean, input_var, epsilon)
    xw = _work(x)
    dims = [d for d in range(x.dim()) if d != 1]
    batch_mean = xw.mean(dim=dims)
    batch_var = xw.var(dim=dims, unbiased=False)
    y = _batchnorm_infer(x, scale, b, batch_mean, batch_var, epsilon)
    running_mean = _work(input_mean) * momentum + batch_mean * (1 - momentum)
    running_var = _work(input_var) * momentum + batch_var * (1 - momentum)
    return y, running_mean.to(input_mean.dtype), running_var.to(input_var.dtype)


@op("InstanceNormalization", 1, 6, 22)
def InstanceNormalization(x, scale, b, *, epsilon=1e-5):
    xw = _work(x)
    dims = list(range(2, x.dim()))
    mean = xw.mean(dim=dims, keepdim=True)
    var = xw.var(dim=dims, unbiased=False, keepdim=True)
    y = (xw - mean) * torch.rsqrt(var + epsilon) * _channel(scale, xw) + _channel(b, xw)
    return y.to(x.dtype)


def _fused_layer_norm(x, scale, b, axis: int, epsilon: float):
    """torch's one-kernel LayerNorm when it computes what ONNX asks for, else None.

    F.layer_norm accumulates fp16/bf16 in fp32 and rounds Y once, which is ONNX's stash_type=1; it needs the scale
    and bias in x's dtype and shaped as the normalized dims (an engine's fp16 weights are)."""
    shape = tuple(x.shape[axis:])
    if not shape or x.dtype not in (torch.float16, torch.bfloat16, torch.float32) or x.numel() == 0:
        return None
    if scale.dtype != x.dtype or tuple(scale.shape) != shape:
        return None
    if b is not None and (b.dtype != x.dtype or tuple(b.shape) != shape):
        return None
    return torch.nn.functional.layer_norm(x, shape, scale, b, epsilon)


@op("LayerNormalization", 17)
def LayerNormalization(x, scale, b=None, *, axis=-1, epsilon=1e-5, stash_type=1, ctx=None):
    """Normalizes over dims [axis, rank); Mean and InvStdDev keep size-1 normalized dims. With only Y read (as
    models do) and stash_type=1, torch's fused kernel; the statistics outputs need the explicit form."""
    axis = normalize_axis(axis, x.dim())
    if stash_type == 1 and (ctx is None or ctx.num_outputs <= 1):
        y = _fused_layer_norm(x, scale, b, axis, epsilon)
        if y is not None:
            return y
    xw = _work(x)
    dims = list(range(axis, x.dim()))
    mean = xw.mean(dim=dims, keepdim=True) if dims else xw
    diff = xw - mean
    var = (diff * diff).mean(dim=dims, keepdim=True) if dims else diff * diff
    inv_std = torch.rsqrt(var + epsilon)
    y = diff * inv_std * _work(scale)
    if b is not None:
        y = y + _work(b)
    return y.to(x.dtype), mean.to(x.dtype), inv_std.to(x.dtype)


@op("RMSNormalization", 23)
def RMSNormalization(x, scale, *, axis=-1, epsilon=1e-5, stash_type=1):
    axis = normalize_axis(axis, x.dim())
    xw = _work(x)
    dims = list(range(axis, x.dim()))
    mean_sq = (xw * xw).mean(dim=dims, keepdim=True)
    y = xw * torch.rsqrt(mean_sq + epsilon) * _work(scale)
    return y.to(x.dtype)


def _group_normalized(xw, num_groups, epsilon):
    """xw viewed as (N, G, -1), normalized per group."""
    grouped = xw.reshape(xw.shape[0], num_groups, -1)
    mean = grouped.mean(dim=-1, keepdim=True)
    var = grouped.var(dim=-1, unbiased=False, keepdim=True)
    return (grouped - mean) * torch.rsqrt(var + epsilon)


@op("GroupNormalization", 18)
def GroupNormalization_18(x, scale, b, *, num_groups, epsilon=1e-5):
    """Opset 18: scale and bias hold one value per group."""
    xw = _work(x)
    normed = _group_normalized(xw, num_groups, epsilon)
    y = normed * _work(scale).reshape(1, -1, 1) + _work(b).reshape(1, -1, 1)
    return y.reshape(x.shape).to(x.dtype)


@op("GroupNormalization", 21)
def GroupNormalization_21(x, scale, b, *, num_groups, epsilon=1e-5, stash_type=1):
    """Opset 21: scale and bias hold one value per channel."""
    xw = _work(x)
    normed = _group_normalized(xw, num_groups, epsilon).reshape(x.shape)
    y = normed * _channel(scale, xw) + _channel(b, xw)
    return y.to(x.dtype)


@op("LpNormalization", 1, 22)
def LpNormalization(x, *, axis=-1, p=2):
    """x / ||x||_p along axis; a zero norm gives 0."""
    xw = _work(x)
    axis = normalize_axis(axis, x.dim())
    if p == 1:
        norm = xw.abs().sum(dim=axis, keepdim=True)
    else:
        norm = torch.sqrt((xw * xw).sum(dim=axis, keepdim=True))
    y = torch.where(norm == 0, torch.zeros_like(xw), xw / norm)
    return y.to(x.dtype)


@op("MeanVarianceNormalization", 9, 13)
def MeanVarianceNormalization(x, *, axes=(0, 2, 3)):
    """(X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9), as in the ONNX function body."""
    xw = _work(x)
    dims = sorted({normalize_axis(a, x.dim()) for a in axes})
    mean = xw.mean(dim=dims, keepdim=True)
    var = (xw * xw).mean(dim=dims, keepdim=True) - mean * mean
    y = (xw - mean) / (torch.sqrt(var) + 1e-9)
    return y.to(x.dtype)


@op("LRN", 1, 13)
def LRN(x, *, size, alpha=1e-4, beta=0.75, bias=1.0):
    """Local response normalization across channels (window [c - (size-1)//2, c + ceil((size-1)/2)])."""
    xw = _work(x)
    channels = x.shape[1]
    before = (size - 1) // 2
    after = size - 1 - before
    sq = (xw * xw).movedim(1, -1)
    padded = torch.nn.functional.pad(sq, (before, after))
    square_sum = sum(padded[..., i : i + channels] for i in range(size)).movedim(-1, 1)
    y = xw / torch.pow(bias + (alpha / size) * square_sum, beta)
    return y.to(x.dtype)
