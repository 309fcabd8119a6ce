"""Inputs to run a model on: sample .npz files, and random inputs that respect dtypes and shapes.

Used by the builder (checks, range observation, the accuracy search) and by `greenrt run/compare`. Needs neither
onnx nor onnxruntime: running an engine with made-up inputs works on the lean runtime install.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from ..onnx.dtypes import BOOL, STRING, ONNX_TO_TORCH, onnx_type_name, torch_to_numpy

# Integer inputs are usually ids or indices: draw them from a small non-negative range so they index validly.
INT_RANGE = (0, 100)
DEFAULT_DYNAMIC_DIM = 1


def parse_shapes(spec: str) -> dict[str, list[int]]:
    """'input:1x3x224x224,mask:1x128' -> {'input': [1, 3, 224, 224], 'mask': [1, 128]}; a range
    'input:1x3x224x224/8x3x224x224/32x3x224x224' (the syntax of build's profiles) gives its OPT."""
    shapes: dict[str, list[int]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, dims = item.rpartition(":")
        parts = dims.split("/")
        if not sep or not name or len(parts) not in (1, 3) or \
                not all(re.fullmatch(r"\d+(x\d+)*", part) for part in parts):
            raise InvalidInputError(f"--shapes: cannot parse {item!r}; write NAME:1x3x224x224 or "
                                    "NAME:MIN/OPT/MAX (comma-separated)")
        shapes[name] = [int(d) for d in parts[len(parts) // 2].split("x")]
    return shapes


def load_inputs(path: str) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"--inputs: {path}: no such file")
    try:
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"--inputs: {path} is not a readable .npz of arrays ({exc})") from None


# ops that move or copy ids without changing their values: an id still indexes the same table after them
PASS_THROUGH = {"Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity", "Expand", "Transpose"}


def index_bounds(plan, constants: dict) -> dict[str, int]:
    """Integer graph inputs that end up as Gather indices into a constant table (token ids, token types,
    positions): name -> table size along the gather axis, so random ids index validly."""
    producer_of = {}
    for step in plan.steps:
        for out in step.outputs:
            producer_of[out] = step
    inputs = {s.name for s in plan.inputs}
    bounds: dict[str, int] = {}
    for step in plan.steps:
        if step.op_type != "Gather" or step.domain or len(step.inputs) < 2:
            continue
        table = constants.get(step.inputs[0])
        if table is None or not hasattr(table, "shape"):
            continue
        size = int(table.shape[step.attrs.get("axis", 0)])
        name = step.inputs[1]
        while name not in inputs and name in producer_of and producer_of[name].op_type in PASS_THROUGH:
            name = producer_of[name].inputs[0]
        if name in inputs:
            bounds[name] = min(bounds.get(name, size), size)
    return bounds


@dataclass
class RandomFeeds:
    """Random arrays, one per input, and which of their dims were made up (dynamic dims nobody gave a size)."""

    arrays: dict[str, np.ndarray]
    made_up: dict[str, list[int | str | None]] = field(default_factory=dict)  # input -> its declared shape

    def describe_made_up(self) -> str:
        """'x: [N, 3, H, W] -> 1x3x1x1' per input with made-up dims."""
        return ", ".join(f"{n}: {declared} -> {'x'.join(map(str, self.arrays[n].shape))}"
                         for n, declared in self.made_up.items())


def random_feeds(args: Sequence, shapes: dict[str, list[int]], seed: int = 0,
                 int_bounds: dict[str, int] | None = None) -> RandomFeeds:
    """One random array per input (NodeArg list); dynamic dims from ``shapes``, else a symbol already sized by
    another input, else DEFAULT_DYNAMIC_DIM (made up, and recorded as such). Integer inputs are drawn from
    [0, int_bounds[name]) where the graph says how far they may go, else INT_RANGE."""
    unknown = set(shapes) - {a.name for a in args}
    if unknown:
        raise InvalidInputError(
            f"--shapes names unknown input(s) {sorted(unknown)}; inputs are {[a.name for a in args]}"
        )
    rng = np.random.default_rng(seed)
    symbols: dict[str, int] = {}
    # symbols fixed by explicitly given shapes first, so every input using them agrees
    for a in args:
        if a.name in shapes and a.shape is not None and len(shapes[a.name]) == len(a.shape):
            for want, got in zip(a.shape, shapes[a.name]):
                if isinstance(want, str):
                    symbols.setdefault(want, got)
    out = RandomFeeds({})
    made_up_symbols: set[str] = set()
    for a in args:
        shape, made_up = _shape_for(a, shapes, symbols, made_up_symbols)
        if made_up:
            out.made_up[a.name] = list(a.shape)
        out.arrays[a.name] = _random_array(rng, a.name, a.elem_type, shape, (int_bounds or {}).get(a.name))
    return out



MAX_RANDOM_VALUES = 1 << 28  # 1 GiB of float32: a declared shape past it is a broken model or needs real inputs


def _shape_for(a, shapes, symbols, made_up_symbols: set[str]) -> tuple[list[int], bool]:
    """The input's shape, and whether any of its dims was made up (here or for another input sharing a symbol)."""
    if a.name in shapes:
        return shapes[a.name], False
    if a.shape is None:
        raise InvalidInputError(f"input {a.name!r} has unknown rank; give its shape with --shapes {a.name}:...")
    out, made_up = [], False
    for d in a.shape:
        if isinstance(d, int):
            out.append(d)
            continue
        if isinstance(d, str) and d in symbols:
            out.append(symbols[d])
            made_up |= d in made_up_symbols
            continue
        made_up = True
        if isinstance(d, str):
            made_up_symbols.add(d)
            out.append(symbols.setdefault(d, DEFAULT_DYNAMIC_DIM))
        else:
            out.append(DEFAULT_DYNAMIC_DIM)
    return out, made_up


def _random_array(rng: np.random.Generator, name: str, elem_type: int, shape: list[int],
                  bound: int | None) -> np.ndarray:
    size = 1
    for d in shape:
        size *= d
    if size > MAX_RANDOM_VALUES:
        raise InvalidInputError(f"input {name!r}: shape {list(shape)} holds {size:,} values, too many to draw random "
                                f"ones (at most {MAX_RANDOM_VALUES:,}); give the input with --inputs")
    if elem_type == BOOL:
        return rng.random(shape) < 0.5
    if elem_type == STRING:
        return np.array(rng.choice(["alpha", "beta", "gamma"], size=shape), dtype=object)
    dtype = ONNX_TO_TORCH.get(elem_type)
    if dtype is None:
        raise InvalidInputError(f"input {name!r}: cannot draw random values of type {onnx_type_name(elem_type)}; "
                                "give the input with --inputs")
    if dtype.is_complex:
        values = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        return torch_to_numpy(torch.from_numpy(values).to(dtype))
    if not dtype.is_floating_point:
        lo, hi = INT_RANGE if bound is None else (0, bound)
        if dtype in (torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int8, torch.int16):
            hi = min(hi, int(torch.iinfo(dtype).max) + 1)
        return torch_to_numpy(torch.from_numpy(rng.integers(lo, hi, size=shape)).to(dtype))
    values = rng.standard_normal(shape)
    if dtype == torch.float64:
        return values
    return torch_to_numpy(torch.from_numpy(values.astype(np.float32)).to(dtype))
