"""Elementwise unary math: Abs, Neg, Exp, Log, Sqrt, Reciprocal, Floor, Ceil, Round, Sign, Sin, Cos, Tan, Asin,
Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh, Erf.

Version 1 of several ops carried a legacy ``consumed_inputs`` attribute; it is accepted and ignored.
"""

from __future__ import annotations

import torch

from ._util import unsigned_safe
from .registry import op

_UNSIGNED = (torch.uint8, torch.uint16, torch.uint32, torch.uint64)


@op("Abs", 1, 6, 13)
def Abs(x, *, consumed_inputs=None):
    if x.dtype in _UNSIGNED:
        return x.clone()
    return torch.abs(x)


@op("Neg", 1, 6, 13)
def Neg(x, *, consumed_inputs=None):
    return torch.neg(x)


@op("Exp", 1, 6, 13)
def Exp(x, *, consumed_inputs=None):
    return torch.exp(x)


@op("Log", 1, 6, 13)
def Log(x, *, consumed_inputs=None):
    return torch.log(x)


@op("Sqrt", 1, 6, 13)
def Sqrt(x, *, consumed_inputs=None):
    return torch.sqrt(x)


@op("Reciprocal", 1, 6, 13)
def Reciprocal(x, *, consumed_inputs=None):
    return torch.reciprocal(x)


@op("Floor", 1, 6, 13)
def Floor(x, *, consumed_inputs=None):
    return torch.floor(x)


@op("Ceil", 1, 6, 13)
def Ceil(x, *, consumed_inputs=None):
    return torch.ceil(x)


@op("Round", 11, 22)
def Round(x):
    """Round half to even (torch.round already does)."""
    return torch.round(x)


@op("Sign", 9, 13)
@unsigned_safe
def Sign(x):
    return torch.sign(x)


@op("Sin", 7, 22)
def Sin(x):
    return torch.sin(x)


@op("Cos", 7, 22)
def Cos(x):
    return torch.cos(x)


@op("Tan", 7, 22)
def Tan(x):
    return torch.tan(x)


@op("Asin", 7, 22)
def Asin(x):
    return torch.asin(x)


@op("Acos", 7, 22)
def Acos(x):
    return torch.acos(x)


@op("Atan", 7, 22)
def Atan(x):
    return torch.atan(x)


@op("Sinh", 9, 22)
def Sinh(x):
    return torch.sinh(x)


@op("Cosh", 9, 22)
def Cosh(x):
    return torch.cosh(x)


@op("Asinh", 9, 22)
def Asinh(x):
    return torch.asinh(x)


@op("Acosh", 9, 22)
def Acosh(x):
    return torch.acosh(x)


@op("Atanh", 9, 22)
def Atanh(x):
    return torch.atanh(x)


@op("Erf", 9, 13)
def Erf(x):
    return torch.erf(x)
