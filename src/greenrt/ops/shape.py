"""Shape manipulation: Reshape, Transpose, Concat, Split, Squeeze, Unsqueeze, Flatten, Expand, Tile, Slice, Pad,
Shape, Size, Identity, DepthToSpace, SpaceToDepth, CenterCropPad.

String tensors (numpy object arrays) are accepted by the pure data-movement ops (Reshape, Transpose, Concat,
Squeeze, Unsqueeze, Flatten, Shape, Size, Identity) through numpy, which has the same view semantics.
"""

from __future__ import annotations

import numpy as np
import torch

from ._util import int_list, normalize_axis
from .registry import op


def _device(x):
    return x.device if isinstance(x, torch.Tensor) else torch.device("cpu")


def _int64(values, device) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.int64, device=device)


# -- Reshape -------------------------------------------------------------------------------------------


def _reshape(data, shape: list[int], allowzero: int):
    """0 copies the input dim (unless allowzero), -1 is inferred."""
    if not allowzero:
        shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return data.reshape(tuple(shape))


@op("Reshape", 1)
def Reshape_1(data, *, shape=(), consumed_inputs=None):
    return _reshape(data, list(shape), 0)


@op("Reshape", 5, 13, 14, 19, 21, 23, 24, 25)
def Reshape_5(data, shape, *, allowzero=0):
    return _reshape(data, int_list(shape), allowzero)


@op("Transpose", 1, 13, 21, 23, 24, 25)
def Transpose(data, *, perm=None):
    """perm defaults to reversing the axes."""
    perm = list(perm) if perm else list(range(data.ndim))[::-1]
    if isinstance(data, np.ndarray):
        return np.transpose(data, perm)
    return data.permute(perm)


@op("Concat", 1, 4, 11, 13)
def Concat(*inputs, axis=1):
    if any(isinstance(x, np.ndarray) for x in inputs):
        return np.concatenate([np.asarray(x, dtype=object) for x in inputs], axis=axis)
    return torch.cat(inputs, dim=normalize_axis(axis, inputs[0].ndim))


# -- Split ---------------------------------------------------------------------------------------------


def _split(x, axis: int, sizes: list[int] | None, count: int):
    """Split into ``sizes`` along axis, or into ``count`` parts of ceil(dim/count) (the last one smaller)."""
    axis = normalize_axis(axis, x.ndim)
    if not sizes:
        dim = x.shape[axis]
        chunk = -(-dim // count)
        sizes = [max(0, min(chunk, dim - i * chunk)) for i in range(count)]
    return tuple(torch.split(x, sizes, dim=axis))


@op("Split", 1)
def Split_1(x, split_input=None, *, axis=0, split=None, ctx):
    """The sizes come from the optional second input or the ``split`` attribute."""
    sizes = int_list(split_input) if split_input is not None else (list(split) if split else None)
    return _split(x, axis, sizes, ctx.num_outputs)


@op("Split", 2, 11)
def Split_2(x, *, axis=0, split=None, ctx):
    return _split(x, axis, list(split) if split else None, ctx.num_outputs)


@op("Split", 13)
def Split_13(x, split=None, *, axis=0, ctx):
    return _split(x, axis, int_list(split) if split is not None else None, ctx.num_outputs)


@op("Split", 18)
def Split_18(x, split=None, *, axis=0, num_outputs=0, ctx):
    sizes = int_list(split) if split is not None else None
    return _split(x, axis, sizes, num_outputs or ctx.num_outputs)


# -- Squeeze / Unsqueeze / Flatten ---------------------------------------------------------------------


def _squeeze(x, axes: list[int] | None):
    """Remove the given axes, or every size-1 axis when none are given."""
    if not axes:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {normalize_axis(a, x.ndim) for a in axes}
    shape = [d for i, d in enumerate(x.shape) if i not in axes]
    return x.reshape(tuple(shape))


def _unsqueeze(x, axes: list[int]):
    """Insert size-1 axes at the given positions of the output."""
    rank = x.ndim + len(axes)
    axes = sorted(normalize_axis(a, rank) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return x.reshape(tuple(shape))


@op("Squeeze", 1, 11)
def Squeeze_1(x, *, axes=None):
    return _squeeze(x, list(axes) if axes else None)


@op("Squeeze", 13, 21, 23, 24, 25)
def Squeeze_13(x, axes=None):
    return _squeeze(x, int_list(axes) if axes is not None else None)


@op("Unsqueeze", 1, 11)
def Unsqueeze_1(x, *, axes=()):
    return _unsqueeze(x, list(axes))


@op("Unsqueeze", 13, 21, 23, 24, 25)
def Unsqueeze_13(x, axes):
    return _unsqueeze(x, int_list(axes))


@op("Flatten", 1, 9, 11, 13, 21, 23, 24, 25)
def Flatten(x, *, axis=1):
    """2-D result: dims before ``axis`` times dims from ``axis`` on."""
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape((outer, int(np.prod(x.shape[axis:], dtype=np.int64))))


# -- Expand / Tile -------------------------------------------------------------------------------------


@op("Expand", 8, 13)
def Expand(x, shape):
    """Bidirectional broadcast of x with ``shape`` (a 1 in shape keeps x's dim)."""
    target = torch.broadcast_shapes(tuple(x.shape), tuple(int_list(shape)))
    return x.expand(target).clone()


@op("Tile", 1)
def Tile_1(x, tiles, axis):
    reps = [1] * x.ndim
    reps[normalize_axis(int_list(axis)[0], x.ndim)] = int_list(tiles)[0]
    return x.repeat(*reps)


@op("Tile", 6, 13)
def Tile_6(x, repeats):
    reps = int_list(repeats)
    return x.repeat(*reps) if reps else x.clone()


# -- Slice ---------------------------------------------------------------------------------------------


def _slice(x, starts: list[int], ends: list[int], axes: list[int] | None, steps: list[int] | None):
    """numpy-style slicing per axis: out-of-range starts/ends are clamped, negative steps walk backwards."""
    if not axes:
        axes = list(range(len(starts)))
    if not steps:
        steps = [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = normalize_axis(axis, x.ndim)
        begin, stop, step = slice(start, end, step).indices(x.shape[axis])
        if step > 0:
            index = [slice(None)] * axis + [slice(begin, stop, step)]
            x = x[tuple(index)]
        else:
            idx = torch.arange(begin, stop, step, device=_device(x), dtype=torch.int64)
            x = x.index_select(axis, idx) if isinstance(x, torch.Tensor) else np.take(x, idx.numpy(), axis=axis)
    return x


@op("Slice", 1)
def Slice_1(x, *, starts=(), ends=(), axes=None):
    return _slice(x, list(starts), list(ends), list(axes) if axes else None, None)


@op("Slice", 10, 11, 13)
def Slice_10(x, starts, ends, axes=None, steps=None):
    return _slice(
        x,
        int_list(starts),
        int_list(ends),
        int_list(axes) if axes is not None else None,
        int_list(steps) if steps is not None else None,
    )


# -- Pad -----------------------------------------------------------------------------------------------


def _source_index(n: int, begin: int, end: int, mode: str, device) -> torch.Tensor:
    """For an axis of size n padded by begin/end, the source position of each output position."""
    pos = torch.arange(-begin, n + end, device=device, dtype=torch.int64)
    if mode == "edge":
        return pos.clamp(0, n - 1)
    if mode == "wrap":
        return pos.remainder(n)
    if n == 1:  # reflect
        return torch.zeros_like(pos)
    period = 2 * (n - 1)
    pos = pos.remainder(period)
    return torch.where(pos >= n, period - pos, pos)


def _crop(x, begins: list[int], ends: list[int]):
    """Apply the negative pads (crops) of every axis."""
    index = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(zip(begins, ends)))
    return x[index]


def _pad_constant(x, begins: list[int], ends: list[int], value):
    """Place (cropped) x inside a full tensor of ``value``."""
    x = _crop(x, begins, ends)
    shape = [d + max(b, 0) + max(e, 0) for d, b, e in zip(x.shape, begins, ends)]
    if isinstance(value, torch.Tensor):  # stays on the device: no host sync
        out = value.reshape(-1)[:1].to(device=x.device, dtype=x.dtype).reshape(()).expand(shape).clone()
    else:
        out = torch.full(shape, value, dtype=x.dtype, device=x.device) if value != 0 else x.new_zeros(shape)
    out[tuple(slice(max(b, 0), max(b, 0) + d) for d, b in zip(x.shape, begins))] = x
    return out


def _pad(x, pads: list[int], mode: str, value, axes: list[int] | None = None):
    """ONNX pads = [begin per axis..., end per axis...]; negative pads crop first (as onnxruntime does)."""
    rank = x.ndim
    axes = [normalize_axis(a, rank) for a in axes] if axes else list(range(rank))
    begins, ends = [0] * rank, [0] * rank
    k = len(axes)
    for i, a in enumerate(axes):
        begins[a], ends[a] = pads[i], pads[i + k]
    if mode == "constant":
        if value is None or (isinstance(value, torch.Tensor) and value.numel() == 0):
            value = 0
        return _pad_constant(x, begins, ends, value)
    x = _crop(x, begins, ends)
    for a in range(rank):
        b, e = max(begins[a], 0), max(ends[a], 0)
        if b or e:
            x = x.index_select(a, _source_index(x.shape[a], b, e, mode, x.device))
    return x


@op("Pad", 1)
def Pad_1(x, *, paddings=(), mode="constant", value=0.0):
    return _pad(x, list(paddings), mode, value)


@op("Pad", 2)
def Pad_2(x, *, pads=(), mode="constant", value=0.0):
    return _pad(x, list(pads), mode, value)


@op("Pad", 11, 13)
def Pad_11(x, pads, constant_value=None, *, mode="constant"):
    return _pad(x, int_list(pads), mode, constant_value)


@op("Pad", 18, 19, 21, 23, 24, 25)
def Pad_18(x, pads, constant_value=None, axes=None, *, mode="constant"):
    return _pad(x, int_list(pads), mode, constant_value, int_list(axes) if axes is not None else None)


# -- Shape / Size / Identity ---------------------------------------------------------------------------


@op("Shape", 1, 13)
def Shape_1(x):
    return _int64(x.shape, _device(x))


@op("Shape", 15, 19, 21, 23, 24, 25)
def Shape_15(x, *, start=0, end=None):
    """Dims [start, end) of the shape, with negative bounds counted from the end and clamped."""
    dims = list(x.shape)
    return _int64(dims[slice(start, end)], _device(x))


@op("Size", 1, 13, 19, 21, 23, 24, 25)
def Size(x):
    return torch.full((), int(np.prod(x.shape, dtype=np.int64)), dtype=torch.int64, device=_device(x))


@op("Identity", 1, 13, 14, 16, 19, 21, 23, 24, 25)
def Identity(x):
    """Any value (tensor, string tensor, sequence, optional) passes through."""
    return x


# -- DepthToSpace / SpaceToDepth -----------------------------------------------------------------------


def _depth_to_space(x, blocksize: int, mode: str):
    b, c, h, w = x.shape
    bs = blocksize
    if mode == "CRD":
        tmp = x.reshape(b, c // (bs * bs), bs, bs, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        tmp = x.reshape(b, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
    return tmp.reshape(b, c // (bs * bs), h * bs, w * bs)


def _space_to_depth(x, blocksize: int, mode: str):
    b, c, h, w = x.shape
    bs = blocksize
    tmp = x.reshape(b, c, h // bs, bs, w // bs, bs)
    perm = (0, 1, 3, 5, 2, 4) if mode == "CRD" else (0, 3, 5, 1, 2, 4)
    return tmp.permute(perm).reshape(b, c * bs * bs, h // bs, w // bs)


@op("DepthToSpace", 1)
def DepthToSpace_1(x, *, blocksize):
    return _depth_to_space(x, blocksize, "DCR")


@op("DepthToSpace", 11, 13, 28)
def DepthToSpace_11(x, *, blocksize, mode="DCR"):
    return _depth_to_space(x, blocksize, mode)


@op("SpaceToDepth", 1, 13)
def SpaceToDepth_1(x, *, blocksize):
    return _space_to_depth(x, blocksize, "DCR")


@op("SpaceToDepth", 28)
def SpaceToDepth_28(x, *, blocksize, mode="DCR"):
    return _space_to_depth(x, blocksize, mode)


# -- CenterCropPad -------------------------------------------------------------------------------------


@op("CenterCropPad", 18)
def CenterCropPad(x, shape, *, axes=None):
    """Center-crop or zero-pad each listed axis to the target size (extra goes to the end side)."""
    targets = int_list(shape)
    axes = [normalize_axis(a, x.ndim) for a in axes] if axes else list(range(x.ndim))
    for axis, target in zip(axes, targets):
        dim = x.shape[axis]
        if target < dim:
            x = x.narrow(axis, (dim - target) // 2, target)
        elif target > dim:
            begins = [0] * x.ndim
            ends = [0] * x.ndim
            begins[axis] = (target - dim) // 2
            ends[axis] = target - dim - begins[axis]
            x = _pad_constant(x, begins, ends, 0)
    return x
