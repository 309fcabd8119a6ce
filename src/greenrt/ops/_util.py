"""Small helpers shared by op families (owned by the executor authors: add, don't change signatures)."""

from __future__ import annotations

import functools
import weakref

import torch

# torch's uint16/uint32/uint64 are storage types with few kernels: compute in a wider signed type, cast back.
_WIDER = {torch.uint16: torch.int32, torch.uint32: torch.int64, torch.uint64: torch.int64}


def widen(x: torch.Tensor) -> torch.Tensor:
    """x in a dtype torch has kernels for (uint16->int32, uint32/uint64->int64); others unchanged."""
    wider = _WIDER.get(x.dtype)
    return x.to(wider) if wider is not None else x


def unsigned_safe(fn):
    """Wrap an elementwise fn(*tensors) so it runs on torch's kernel-less unsigned dtypes.

    uint64 values >= 2**63 wrap through int64: exact for add/sub/mul/bitwise, not for ordering or division.
    """

    @functools.wraps(fn)  # keeps the op's name, module (its family) and signature
    def wrapper(*args, **kwargs):
        dtypes = [a.dtype for a in args if isinstance(a, torch.Tensor)]
        if not any(d in _WIDER for d in dtypes):
            return fn(*args, **kwargs)
        out_dtype = next(d for d in dtypes if d in _WIDER)
        result = fn(*[widen(a) if isinstance(a, torch.Tensor) else a for a in args], **kwargs)
        if isinstance(result, torch.Tensor) and result.dtype != torch.bool:
            return result.to(out_dtype)
        return result

    return wrapper


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def int_list(t) -> list[int]:
    """A 0-d/1-d integer tensor (or list) as a Python list of ints."""
    if t is None:
        return []
    if isinstance(t, torch.Tensor):
        return [int(v) for v in t.reshape(-1).tolist()]
    return [int(v) for v in t]


_DERIVED: dict[tuple[int, str], tuple[weakref.ref, object]] = {}


def derived_constant(t: torch.Tensor, what: str, make):
    """``make(t)``, computed once per (engine constant ``t``, ``what``) rather than on every call: what a tactic
    derives from a layer's weights and scales (a weight's column sums, an epilogue's per-channel tensors). Engine
    constants are never written in place; the entry goes when ``t`` does."""
    key = (id(t), what)
    hit = _DERIVED.get(key)
    if hit is not None and hit[0]() is t:
        return hit[1]
    value = make(t)
    _DERIVED[key] = (weakref.ref(t, lambda _r, key=key: _DERIVED.pop(key, None)), value)
    return value
