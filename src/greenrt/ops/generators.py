"""Tensor generators: Constant, ConstantOfShape, Range, EyeLike, RandomNormal, RandomUniform, RandomNormalLike,
RandomUniformLike, Multinomial, Bernoulli.

The random ops draw from torch's generator (seeded by the ``seed`` attribute when given), so their values are
correct in distribution but never bit-identical to numpy's or onnxruntime's.
"""

from __future__ import annotations

import numpy as np
import torch

from ..onnx.dtypes import numpy_to_torch, to_torch_dtype
from ._util import int_list
from .registry import op

# -- Constant ------------------------------------------------------------------------------------------


def _sparse_to_dense(sparse, device) -> torch.Tensor:
    """A SparseTensorProto (values + linear or coordinate indices + dims) as a dense tensor."""
    import onnx  # only a sparse Constant (built by the ONNX importer) needs it

    if not isinstance(sparse, onnx.SparseTensorProto):
        sparse = onnx.SparseTensorProto.FromString(bytes(sparse.SerializeToString()))
    values = numpy_to_torch(onnx.numpy_helper.to_array(sparse.values), device).reshape(-1)
    indices = numpy_to_torch(onnx.numpy_helper.to_array(sparse.indices), device).to(torch.int64)
    dims = [int(d) for d in sparse.dims]
    out = torch.zeros(int(np.prod(dims, dtype=np.int64)), dtype=values.dtype, device=device)
    if indices.ndim == 2:  # [NNZ, rank] coordinates -> linear positions
        strides = [int(np.prod(dims[i + 1 :], dtype=np.int64)) for i in range(len(dims))]
        indices = (indices * torch.tensor(strides, dtype=torch.int64, device=device)).sum(-1)
    out[indices.reshape(-1)] = values
    return out.reshape(dims)


@op("Constant", 1, 9, 11, 12, 13, 19, 21, 23, 24, 25)
def Constant(
    *,
    value=None,
    sparse_value=None,
    value_float=None,
    value_floats=None,
    value_int=None,
    value_ints=None,
    value_string=None,
    value_strings=None,
    ctx,
):
    """Exactly one attribute holds the value; floats are float32, ints int64, strings an object array."""
    device = ctx.device
    if value is not None:
        return value
    if sparse_value is not None:
        return _sparse_to_dense(sparse_value, device)
    if value_float is not None:
        return torch.full((), value_float, dtype=torch.float32, device=device)
    if value_floats is not None:
        return torch.tensor(list(value_floats), dtype=torch.float32, device=device)
    if value_int is not None:
        return torch.full((), value_int, dtype=torch.int64, device=device)
    if value_ints is not None:
        return torch.tensor(list(value_ints), dtype=torch.int64, device=device)
    if value_string is not None:
        return np.array(value_string, dtype=object)
    if value_strings is not None:
        out = np.empty(len(value_strings), dtype=object)
        out[:] = list(value_strings)
        return out
    raise ValueError("Constant has no value attribute")


@op("ConstantOfShape", 9, 20, 21, 23, 24, 25)
def ConstantOfShape(shape, *, value=None, ctx):
    """A tensor of ``shape`` filled with the one-element ``value`` (default float32 0)."""
    dims = tuple(int_list(shape))  # shape is read on the host; the result goes to ctx.device
    device = ctx.device
    if value is None:
        return torch.zeros(dims, dtype=torch.float32, device=device)
    return value.reshape(-1)[:1].to(device).reshape(()).expand(dims).clone()


# -- Range / EyeLike -----------------------------------------------------------------------------------


def _range(start, limit, delta, device):
    """start + i * delta for i < max(ceil((limit - start) / delta), 0), in the inputs' dtype, on ``device``."""
    dtype = start.dtype
    start, delta = start.to(device), delta.to(device)
    s, lim, d = (float(t.item()) if dtype.is_floating_point else int(t.item()) for t in (start, limit, delta))
    if dtype.is_floating_point:
        n = max(int(np.ceil((lim - s) / d)), 0)
    else:
        n = max(-(-(lim - s) // d), 0)
    i = torch.arange(n, device=device, dtype=torch.float64 if dtype.is_floating_point else torch.int64)
    return (start.to(i.dtype) + i * delta.to(i.dtype)).to(dtype)


@op("Range", 11)
def Range_11(start, limit, delta, *, ctx):
    return _range(start, limit, delta, ctx.device)


@op("Range", 27)
def Range_27(start, limit, delta, *, stash_type=1, ctx):
    """stash_type=0 keeps float16/bfloat16 arithmetic in the input type."""
    if stash_type == 0 and start.dtype in (torch.float16, torch.bfloat16):
        n = _range(start.float(), limit.float(), delta.float(), ctx.device).shape[0]
        i = torch.arange(n, device=ctx.device).to(start.dtype)
        return start.to(ctx.device) + i * delta.to(ctx.device)
    return _range(start, limit, delta, ctx.device)


@op("EyeLike", 9, 22)
def EyeLike(x, *, dtype=None, k=0):
    """Ones on the k-th diagonal of a matrix shaped like x."""
    rows, cols = x.shape
    out_dtype = to_torch_dtype(dtype) if dtype is not None else x.dtype
    i = torch.arange(rows, device=x.device).reshape(-1, 1)
    j = torch.arange(cols, device=x.device).reshape(1, -1)
    return (j - i == k).to(out_dtype)


# -- random --------------------------------------------------------------------------------------------


def _generator(seed, device) -> torch.Generator | None:
    """A generator seeded from the float ``seed`` attribute, or None for torch's global one."""
    if seed is None:
        return None
    gen = torch.Generator(device=device)
    # integral seeds are used as is; a fractional one by its float32 bit pattern
    bits = int(np.float32(seed).view(np.uint32))
    gen.manual_seed(int(seed) if float(seed).is_integer() else bits)
    return gen


def _normal(shape, dtype, mean, scale, seed, device):
    out = torch.empty(tuple(shape), dtype=torch.float32, device=device)
    out.normal_(mean, scale, generator=_generator(seed, device))
    return out.to(dtype)


def _uniform(shape, dtype, low, high, seed, device):
    out = torch.empty(tuple(shape), dtype=torch.float32, device=device)
    out.uniform_(low, high, generator=_generator(seed, device))
    return out.to(dtype)


@op("RandomNormal", 1, 22)
def RandomNormal(*, shape, dtype=1, mean=0.0, scale=1.0, seed=None, ctx):
    return _normal(shape, to_torch_dtype(dtype), mean, scale, seed, ctx.device)


@op("RandomUniform", 1, 22)
def RandomUniform(*, shape, dtype=1, low=0.0, high=1.0, seed=None, ctx):
    return _uniform(shape, to_torch_dtype(dtype), low, high, seed, ctx.device)


@op("RandomNormalLike", 1, 22)
def RandomNormalLike(x, *, dtype=None, mean=0.0, scale=1.0, seed=None):
    out_dtype = to_torch_dtype(dtype) if dtype is not None else x.dtype
    return _normal(x.shape, out_dtype, mean, scale, seed, x.device)


@op("RandomUniformLike", 1, 22)
def RandomUniformLike(x, *, dtype=None, low=0.0, high=1.0, seed=None):
    out_dtype = to_torch_dtype(dtype) if dtype is not None else x.dtype
    return _uniform(x.shape, out_dtype, low, high, seed, x.device)


@op("Multinomial", 7, 22)
def Multinomial(x, *, dtype=6, sample_size=1, seed=None):
    """x is [batch, classes] of unnormalized log-probabilities; samples are drawn with replacement."""
    probs = torch.softmax(x.to(torch.float64), dim=-1)
    samples = torch.multinomial(probs, sample_size, replacement=True, generator=_generator(seed, x.device))
    return samples.to(to_torch_dtype(dtype))


@op("Bernoulli", 15, 22)
def Bernoulli(x, *, dtype=None, seed=None):
    """1 with probability x, else 0; output in ``dtype`` or x's type."""
    out_dtype = to_torch_dtype(dtype) if dtype is not None else x.dtype
    draws = torch.bernoulli(x.to(torch.float64), generator=_generator(seed, x.device))
    return draws.to(out_dtype)
