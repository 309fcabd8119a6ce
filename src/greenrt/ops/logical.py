"""Boolean logic, comparisons and float classification (all outputs are bool).

Ops: And, Or, Xor, Not, Equal, Greater, GreaterOrEqual, Less, LessOrEqual, IsInf, IsNaN.
"""

from __future__ import annotations

import numpy as np
import torch

from .elementwise import _bits, _legacy_broadcast, _ordered
from .registry import op


# -- And, Or, Xor, Not -----------------------------------------------------------------------------------------
@op("And", 7)
def And(a, b):
    return torch.logical_and(a, b)


@op("And", 1)
def And_1(a, b, *, broadcast=0, axis=None):
    return And(a, _legacy_broadcast(a, b, broadcast, axis))


@op("Or", 7)
def Or(a, b):
    return torch.logical_or(a, b)


@op("Or", 1)
def Or_1(a, b, *, broadcast=0, axis=None):
    return Or(a, _legacy_broadcast(a, b, broadcast, axis))


@op("Xor", 7)
def Xor(a, b):
    return torch.logical_xor(a, b)


@op("Xor", 1)
def Xor_1(a, b, *, broadcast=0, axis=None):
    return Xor(a, _legacy_broadcast(a, b, broadcast, axis))


@op("Not", 1)
def Not(x):
    return torch.logical_not(x)


# -- comparisons -----------------------------------------------------------------------------------------------
@op("Equal", 7, 11, 13, 19)
def Equal(a, b, *, ctx):
    """Elementwise a == b; string tensors (numpy object arrays) compare on the host."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return torch.from_numpy(np.asarray(np.equal(a, b), dtype=bool)).to(ctx.device)
    return torch.eq(_bits(a), _bits(b))


@op("Equal", 1)
def Equal_1(a, b, *, broadcast=0, axis=None, ctx):
    return Equal(a, _legacy_broadcast(a, b, broadcast, axis), ctx=ctx)


@op("Greater", 7, 9, 13)
def Greater(a, b):
    return torch.gt(_ordered(a), _ordered(b))


@op("Greater", 1)
def Greater_1(a, b, *, broadcast=0, axis=None):
    return Greater(a, _legacy_broadcast(a, b, broadcast, axis))


@op("GreaterOrEqual", 12, 16)
def GreaterOrEqual(a, b):
    return torch.ge(_ordered(a), _ordered(b))


@op("Less", 7, 9, 13)
def Less(a, b):
    return torch.lt(_ordered(a), _ordered(b))


@op("Less", 1)
def Less_1(a, b, *, broadcast=0, axis=None):
    return Less(a, _legacy_broadcast(a, b, broadcast, axis))


@op("LessOrEqual", 12, 16)
def LessOrEqual(a, b):
    return torch.le(_ordered(a), _ordered(b))


# -- IsInf, IsNaN ----------------------------------------------------------------------------------------------
def _classifiable(x: torch.Tensor) -> torch.Tensor:
    """float8 tensors widened to float32 (few torch kernels); other floats unchanged."""
    return x.to(torch.float32) if x.is_floating_point() and x.element_size() == 1 else x


@op("IsInf", 10, 20)
def IsInf(x, *, detect_negative=1, detect_positive=1):
    """True at +inf (if detect_positive) and at -inf (if detect_negative)."""
    x = _classifiable(x)
    if detect_negative and detect_positive:
        return torch.isinf(x)
    if detect_positive:
        return torch.isposinf(x)
    if detect_negative:
        return torch.isneginf(x)
    return torch.zeros_like(x, dtype=torch.bool)


@op("IsNaN", 9, 13, 20)
def IsNaN(x):
    return torch.isnan(_classifiable(x))
