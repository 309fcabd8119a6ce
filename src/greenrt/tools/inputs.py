"""Inputs for `greenrt run/compare`: load an .npz, or draw random ones that respect dtypes and shapes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ..errors import InvalidInputError

# Integer inputs are usually ids or indices: draw them from a small non-negative range so they index validly.
INT_RANGE = (0, 100)
DEFAULT_DYNAMIC_DIM = 1


def parse_shapes(spec: str) -> dict[str, list[int]]:
    """'input:1x3x224x224,mask:1x128' -> {'input': [1, 3, 224, 224], 'mask': [1, 128]}."""
    shapes: dict[str, list[int]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, dims = item.rpartition(":")
        if not sep or not name or not re.fullmatch(r"\d+(x\d+)*", dims):
            raise InvalidInputError(f"--shapes: cannot parse {item!r}; write NAME:1x3x224x224 (comma-separated)")
        shapes[name] = [int(d) for d in dims.split("x")]
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


PASS_THROUGH = {"Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity", "Expand"}


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


def random_inputs(args: Sequence, shapes: dict[str, list[int]], seed: int = 0,
                  int_bounds: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """One random array per input (NodeArg list); dynamic dims from ``shapes`` or 1, symbols kept consistent.
    Integer inputs are drawn from [0, int_bounds[name]) where the graph says how far they may go, else INT_RANGE."""
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
    feeds = {}
    for a in args:
        shape = _shape_for(a, shapes, symbols)
        feeds[a.name] = _random_array(rng, a.elem_type, shape, (int_bounds or {}).get(a.name))
    return feeds


def _shape_for(a, shapes, symbols) -> list[int]:
    if a.name in shapes:
        return shapes[a.name]
    if a.shape is None:
        raise InvalidInputError(f"input {a.name!r} has unknown rank; give its shape with --shapes {a.name}:...")
    out = []
    for d in a.shape:
        if isinstance(d, int):
            out.append(d)
        elif isinstance(d, str):
            out.append(symbols.setdefault(d, DEFAULT_DYNAMIC_DIM))
        else:
            out.append(DEFAULT_DYNAMIC_DIM)
    return out


def _random_array(rng: np.random.Generator, elem_type: int, shape: list[int], bound: int | None) -> np.ndarray:
    T = onnx.TensorProto
    if elem_type == T.BOOL:
        return rng.random(shape) < 0.5
    if elem_type == T.STRING:
        return np.array(rng.choice(["alpha", "beta", "gamma"], size=shape), dtype=object)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    if np.issubdtype(dtype, np.integer):
        lo, hi = INT_RANGE if bound is None else (0, bound)
        return rng.integers(lo, hi, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)
