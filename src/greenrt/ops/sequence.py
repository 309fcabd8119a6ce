"""Sequence and optional ops.

SequenceConstruct, SequenceEmpty, SequenceAt, SequenceInsert, SequenceErase, SequenceLength, SplitToSequence,
ConcatFromSequence, SequenceMap, Optional, OptionalGetElement, OptionalHasElement.

A sequence is a Python list of tensors; an empty optional is None.
"""

from __future__ import annotations

import torch

from ..onnx.dtypes import to_torch_dtype
from ._util import int_list, normalize_axis
from .registry import op


def _position(seq: list, position, allow_end: bool = False) -> int:
    """A position tensor (negative counts from the end) as a non-negative index into ``seq``."""
    n = len(seq)
    pos = int(position.reshape(-1)[0]) if isinstance(position, torch.Tensor) else int(position)
    upper = n if allow_end else n - 1
    if not -n <= pos <= upper:
        raise IndexError(f"sequence position {pos} out of range for length {n}")
    return pos + n if pos < 0 else pos


@op("SequenceConstruct", 11)
def SequenceConstruct(*inputs):
    return list(inputs)


@op("SequenceEmpty", 11)
def SequenceEmpty(*, dtype=1):
    to_torch_dtype(dtype)  # validate the element type
    return []


@op("SequenceAt", 11)
def SequenceAt(seq, position):
    return seq[_position(seq, position)]


@op("SequenceInsert", 11)
def SequenceInsert(seq, tensor, position=None):
    """Insert ``tensor`` before ``position`` (default: append)."""
    out = list(seq)
    if position is None:
        out.append(tensor)
    else:
        out.insert(_position(seq, position, allow_end=True), tensor)
    return out


@op("SequenceErase", 11)
def SequenceErase(seq, position=None):
    """Remove the element at ``position`` (default: the last one)."""
    out = list(seq)
    del out[_position(seq, position) if position is not None else -1]
    return out


@op("SequenceLength", 11)
def SequenceLength(seq, *, ctx):
    return torch.full((), len(seq), dtype=torch.int64, device=ctx.device)


@op("SplitToSequence", 11, 24)
def SplitToSequence(x, split=None, *, axis=0, keepdims=1):
    """Split along ``axis``: into 1-sized pieces (squeezed unless keepdims) when ``split`` is absent,
    into chunks of ``split`` (a scalar, last chunk may be smaller) or into the 1-D ``split`` lengths."""
    axis = normalize_axis(axis, x.dim())
    if split is None:
        pieces = torch.split(x, 1, dim=axis)
        return [p.squeeze(axis) for p in pieces] if not keepdims else list(pieces)
    if split.numel() == 1:  # a scalar (or a 1-element list, as onnx's reference reads it) is a chunk size
        return list(torch.split(x, int(split.reshape(-1)[0]), dim=axis))
    return list(torch.split(x, int_list(split), dim=axis))


@op("ConcatFromSequence", 11)
def ConcatFromSequence(seq, *, axis, new_axis=0):
    """Concatenate along ``axis``, or stack along a new ``axis`` (which may be rank) when new_axis=1."""
    if new_axis:
        axis = normalize_axis(axis, seq[0].dim() + 1)
        return torch.stack(seq, dim=axis)
    axis = normalize_axis(axis, seq[0].dim())
    return torch.cat(seq, dim=axis)


@op("SequenceMap", 17)
def SequenceMap(seq, *additional, body, ctx):
    """Run ``body`` per element; sequence inputs are indexed in step, tensor inputs are passed whole."""
    outputs: list[list] | None = None
    for i in range(len(seq)):
        args = [seq[i]] + [a[i] if isinstance(a, list) else a for a in additional]
        results = ctx.run_graph(body, args)
        if outputs is None:
            outputs = [[] for _ in results]
        for out, value in zip(outputs, results):
            out.append(value)
    if outputs is None:
        outputs = [[] for _ in range(ctx.num_outputs)]
    return tuple(outputs)


@op("Optional", 15, 28)
def Optional(x=None, *, type=None):
    """An optional holding ``x``, or the empty optional (None) when the input is omitted."""
    return x


@op("OptionalGetElement", 15, 18, 28)
def OptionalGetElement(x):
    """The value inside an optional (from 18, a plain tensor or sequence passes through)."""
    if x is None:
        raise ValueError("OptionalGetElement on an empty optional")
    return x


@op("OptionalHasElement", 15, 18, 28)
def OptionalHasElement(x=None, *, ctx):
    """Whether the optional holds a value (an omitted input counts as empty)."""
    return torch.full((), x is not None, dtype=torch.bool, device=ctx.device)
