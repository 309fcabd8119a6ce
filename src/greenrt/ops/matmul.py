"""Matrix products: MatMul, Gemm, Einsum, MatMulInteger, Det."""

from __future__ import annotations

import torch

from ._util import widen
from .registry import op


def _is_int(t):
    return not t.dtype.is_floating_point and not t.dtype.is_complex


def _matmul(a, b):
    """numpy-style matmul for every dtype (CUDA has no integer matmul kernels: multiply and sum instead)."""
    if not _is_int(a) or a.device.type == "cpu":
        return torch.matmul(a, b)
    a2 = a.unsqueeze(0) if a.dim() == 1 else a
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b
    out = (a2.unsqueeze(-1) * b2.unsqueeze(-3)).sum(-2, dtype=a.dtype)
    if a.dim() == 1:
        out = out.squeeze(-2)
    if b.dim() == 1:
        out = out.squeeze(-1)
    return out


@op("MatMul", 1, 9, 13)
def MatMul(a, b):
    dtype = a.dtype
    return _matmul(widen(a), widen(b)).to(dtype)


def _gemm(a, b, c, alpha, beta, trans_a, trans_b):
    """Y = alpha * A' B' + beta * C, computed in the input dtype (integers round back after scaling)."""
    dtype = a.dtype
    a, b = widen(a), widen(b)
    if trans_a:
        a = a.transpose(-1, -2)
    if trans_b:
        b = b.transpose(-1, -2)
    y = _matmul(a, b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None and beta != 0.0:
        c = widen(c)
        y = y + (c * beta if beta != 1.0 else c)
    return y.to(dtype)


@op("Gemm", 1, 6)
def Gemm_1(a, b, c, *, alpha=1.0, beta=1.0, transA=0, transB=0, broadcast=0):
    """Gemm with the old broadcast attribute: C broadcasts either way (broadcast=0 requires the full shape)."""
    return _gemm(a, b, c, alpha, beta, transA, transB)


@op("Gemm", 7, 9, 11, 13)
def Gemm_7(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    return _gemm(a, b, c, alpha, beta, transA, transB)


@op("Einsum", 12, 28)
def Einsum(*inputs, equation=""):
    equation = equation.replace(" ", "")
    dtype = inputs[0].dtype
    tensors = [widen(t) for t in inputs]
    device = tensors[0].device
    if _is_int(tensors[0]) and device.type != "cpu":
        # no integer contraction kernels off the CPU
        out = torch.einsum(equation, *[t.cpu() for t in tensors]).to(device)
    else:
        out = torch.einsum(equation, *tensors)
    return out.to(dtype)


def _zero_point_a(zp, a):
    """a_zero_point is a scalar or one value per row of A (shape [M] or [..., M, 1])."""
    zp = zp.to(torch.int64)
    if zp.dim() == 1 and a.dim() >= 2:
        zp = zp.unsqueeze(-1)
    return zp


@op("MatMulInteger", 10)
def MatMulInteger(a, b, a_zero_point=None, b_zero_point=None):
    """int32 product of (A - a_zero_point) and (B - b_zero_point); B's zero point is per column."""
    a64 = a.to(torch.int64)
    b64 = b.to(torch.int64)
    if a_zero_point is not None:
        a64 = a64 - _zero_point_a(a_zero_point, a)
    if b_zero_point is not None:
        b64 = b64 - b_zero_point.to(torch.int64)
    return _matmul(a64, b64).to(torch.int32)


@op("Det", 11, 22)
def Det(x):
    dtype = x.dtype
    work = x if dtype in (torch.float32, torch.float64) else x.to(torch.float32)
    return torch.linalg.det(work).to(dtype)
