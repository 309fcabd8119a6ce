"""Activations: Relu, LeakyRelu, PRelu, Elu, Selu, Celu, Gelu, HardSigmoid, HardSwish, Mish, Sigmoid, Softplus,
Softsign, Swish, ThresholdedRelu, Shrink, Tanh, Softmax, LogSoftmax, Hardmax.

Version 1 of several ops carried a legacy ``consumed_inputs`` attribute; it is accepted and ignored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._util import normalize_axis, widen
from .registry import op


@op("Relu", 1, 6, 13, 14)
def Relu(x, *, consumed_inputs=None):
    return torch.relu(x)


@op("LeakyRelu", 1, 6, 16)
def LeakyRelu(x, *, alpha=0.01, consumed_inputs=None):
    return torch.where(x < 0, x * alpha, x)


@op("PRelu", 1, 6, 7, 9, 16)
def PRelu(x, slope, *, consumed_inputs=None):
    """slope broadcasts to x (unidirectionally)."""
    x_w, slope_w = widen(x), widen(slope)
    return torch.where(x_w < 0, x_w * slope_w, x_w).to(x.dtype)


@op("Elu", 1, 6, 22)
def Elu(x, *, alpha=1.0, consumed_inputs=None):
    return torch.where(x < 0, alpha * torch.expm1(x), x)


def _selu(x, alpha, gamma):
    return gamma * torch.where(x <= 0, alpha * torch.expm1(x), x)


@op("Selu", 1)
def Selu_1(x, *, alpha=1.6732, gamma=1.0507, consumed_inputs=None):
    return _selu(x, alpha, gamma)


@op("Selu", 6, 22)
def Selu(x, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    return _selu(x, alpha, gamma)


@op("Celu", 12, 28)
def Celu(x, *, alpha=1.0):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    return torch.clamp(x, min=0) + torch.clamp(alpha * torch.expm1(x / alpha), max=0)


@op("Gelu", 20)
def Gelu(x, *, approximate="none"):
    return F.gelu(x, approximate=approximate)


@op("HardSigmoid", 1, 6, 22)
def HardSigmoid(x, *, alpha=0.2, beta=0.5, consumed_inputs=None):
    """max(0, min(1, alpha * x + beta))."""
    return torch.clamp(alpha * x + beta, 0, 1)


@op("HardSwish", 14, 22)
def HardSwish(x):
    """x * max(0, min(1, x / 6 + 0.5)), as torch's one-kernel hardswish."""
    return F.hardswish(x)


@op("Mish", 18, 22)
def Mish(x):
    return x * torch.tanh(F.softplus(x))


@op("Sigmoid", 1, 6, 13)
def Sigmoid(x, *, consumed_inputs=None):
    return torch.sigmoid(x)


@op("Softplus", 1, 22)
def Softplus(x):
    return F.softplus(x)


@op("Softsign", 1, 22)
def Softsign(x):
    return x / (1 + torch.abs(x))


@op("Swish", 24)
def Swish(x, *, alpha=1.0):
    return x * torch.sigmoid(alpha * x)


@op("ThresholdedRelu", 10, 22)
def ThresholdedRelu(x, *, alpha=1.0):
    return torch.where(x > alpha, x, torch.zeros_like(x))


@op("Shrink", 9)
def Shrink(x, *, bias=0.0, lambd=0.5):
    """x + bias below -lambd, x - bias above lambd, 0 between (any numeric type)."""
    xw = widen(x)
    if not xw.is_floating_point():
        xw = xw.to(torch.float64)
    out = torch.where(xw < -lambd, xw + bias, torch.where(xw > lambd, xw - bias, torch.zeros_like(xw)))
    return out.to(x.dtype)


@op("Tanh", 1, 6, 13)
def Tanh(x, *, consumed_inputs=None):
    return torch.tanh(x)


# Softmax family. Before opset 13 the input is coerced to 2D [prod(shape[:axis]), prod(shape[axis:])] and the op
# runs along the second dimension; from 13 on it runs along the single dimension `axis`.


def _coerced_2d(fn, x, axis):
    axis = normalize_axis(axis, x.dim()) if x.dim() else 0
    rows, cols = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    return fn(x.reshape(rows, cols), 1).reshape(x.shape)


def _along_axis(fn, x, axis):
    if x.dim() == 0:
        return fn(x.reshape(1), 0).reshape(())
    return fn(x, normalize_axis(axis, x.dim()))


def _softmax(x, dim):
    return torch.softmax(x, dim)


def _log_softmax(x, dim):
    return torch.log_softmax(x, dim)


def _hardmax(x, dim):
    """1 at the first maximum along dim, 0 elsewhere."""
    out = torch.zeros_like(x)
    if x.numel() == 0:
        return out
    return out.scatter_(dim, torch.argmax(x, dim, keepdim=True), 1)


@op("Softmax", 1, 11)
def Softmax_1(x, *, axis=1):
    return _coerced_2d(_softmax, x, axis)


@op("Softmax", 13)
def Softmax_13(x, *, axis=-1):
    return _along_axis(_softmax, x, axis)


@op("LogSoftmax", 1, 11)
def LogSoftmax_1(x, *, axis=1):
    return _coerced_2d(_log_softmax, x, axis)


@op("LogSoftmax", 13)
def LogSoftmax_13(x, *, axis=-1):
    return _along_axis(_log_softmax, x, axis)


@op("Hardmax", 1, 11)
def Hardmax_1(x, *, axis=1):
    return _coerced_2d(_hardmax, x, axis)


@op("Hardmax", 13)
def Hardmax_13(x, *, axis=-1):
    return _along_axis(_hardmax, x, axis)
