"""InferenceSession: onnxruntime's API over greenrt, so an ORT user swaps one import.

    sess = greenrt.InferenceSession("model.onnx", device="cuda")
    logits, = sess.run(None, {"input": x})

Inputs may be numpy arrays or torch tensors; outputs come back in the same kind (torch if any input is torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnx_ir as ir
import torch

from ..errors import GreenrtError, InvalidInputError
from ..onnx.dtypes import numpy_to_torch, onnx_type_name, torch_to_numpy, TORCH_TO_ONNX
from ..onnx.importer import load_model
from .executor import Executor


@dataclass(frozen=True)
class NodeArg:
    """Like onnxruntime.NodeArg: name, shape (ints, or str for symbolic dims, None if unknown) and type."""

    name: str
    shape: list[int | str | None] | None
    type: str  # "tensor(float)", as onnxruntime spells it
    elem_type: int


def _type_string(elem_type: int) -> str:
    names = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.DOUBLE: "double", onnx.TensorProto.STRING: "string"}
    return f"tensor({names.get(elem_type, onnx_type_name(elem_type))})"


def _node_arg(value: ir.Value) -> NodeArg:
    elem = int(value.dtype) if value.dtype is not None else 0
    shape = None
    if value.shape is not None:
        shape = [_dim(d) for d in value.shape]
    return NodeArg(value.name, shape, _type_string(elem), elem)


def _dim(d) -> int | str | None:
    """A static size, a symbol name, or None (unknown; exporters also write -1 or '?' for that)."""
    if isinstance(d, int):
        return d if d >= 0 else None
    name = d.value
    return name if name not in (None, "", "?") else None


def resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GreenrtError("device 'cuda' requested but torch sees no CUDA GPU; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise GreenrtError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


class InferenceSession:
    def __init__(self, model: str | os.PathLike | onnx.ModelProto, device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.model_path = None if isinstance(model, onnx.ModelProto) else str(model)
        self.model: ir.Model = load_model(model)
        self.executor = Executor.from_model(self.model, self.device)
        initializer_names = set(self.model.graph.initializers)
        self._inputs = [_node_arg(v) for v in self.model.graph.inputs if v.name not in initializer_names]
        self._optional_inputs = {v.name for v in self.model.graph.inputs if v.name in initializer_names}
        self._outputs = [_node_arg(v) for v in self.model.graph.outputs]

    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list[Any]:
        feeds, as_torch = self._prepare(input_feed)
        outputs = self.executor.run(feeds)
        by_name = dict(zip(self.executor.output_names, outputs))
        names = list(output_names) if output_names else self.executor.output_names
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise InvalidInputError(
                f"requested output(s) {unknown} do not exist; the model's outputs are {self.executor.output_names}"
            )
        return [by_name[n] if as_torch else _to_numpy(by_name[n]) for n in names]

    # -- input validation --------------------------------------------------------------------------------
    def _prepare(self, input_feed: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        expected = {a.name: a for a in self._inputs}
        unknown = [n for n in input_feed if n not in expected and n not in self._optional_inputs]
        if unknown:
            raise InvalidInputError(
                f"unknown input name(s) {unknown}; the model's inputs are {list(expected)}"
            )
        missing = [n for n in expected if n not in input_feed]
        if missing:
            raise InvalidInputError(f"missing input(s) {missing}; the model's inputs are {list(expected)}")
        as_torch = any(isinstance(v, torch.Tensor) for v in input_feed.values())
        feeds: dict[str, Any] = {}
        symbols: dict[str, tuple[int, str]] = {}
        for name, value in input_feed.items():
            arg = expected.get(name)
            tensor = self._to_runtime(name, value)
            if arg is not None:
                self._check(arg, tensor, symbols)
            feeds[name] = tensor
        return feeds, as_torch

    def _to_runtime(self, name: str, value: Any):
        if isinstance(value, torch.Tensor):
            return value.to(self.device)
        if isinstance(value, (np.ndarray, np.generic, list, int, float, bool)):
            return numpy_to_torch(np.asarray(value), self.device)
        raise InvalidInputError(f"input {name!r}: expected a numpy array or torch tensor, got {type(value).__name__}")

    @staticmethod
    def _check(arg: NodeArg, tensor, symbols: dict[str, tuple[int, str]]) -> None:
        if isinstance(tensor, np.ndarray):  # string tensor
            got_elem, shape = onnx.TensorProto.STRING, tensor.shape
        else:
            got_elem, shape = TORCH_TO_ONNX.get(tensor.dtype, -1), tuple(tensor.shape)
        if arg.elem_type and got_elem != arg.elem_type:
            raise InvalidInputError(
                f"input {arg.name!r}: expected dtype {_type_string(arg.elem_type)}, got {_type_string(got_elem)}; "
                f"cast the array (e.g. x.astype(np.{_numpy_name(arg.elem_type)}))"
            )
        if arg.shape is None:
            return
        if len(shape) != len(arg.shape):
            raise InvalidInputError(
                f"input {arg.name!r}: expected rank {len(arg.shape)} with shape {arg.shape}, got shape {list(shape)}"
            )
        for axis, (want, got) in enumerate(zip(arg.shape, shape)):
            if isinstance(want, int) and want != got:
                raise InvalidInputError(
                    f"input {arg.name!r}: dimension {axis} must be {want} (shape {arg.shape}), got shape {list(shape)}"
                )
            if isinstance(want, str):
                seen = symbols.setdefault(want, (got, arg.name))
                if seen[0] != got:
                    raise InvalidInputError(
                        f"input {arg.name!r}: dimension {axis} ({want!r}) is {got}, but input {seen[1]!r} "
                        f"set {want!r} = {seen[0]}"
                    )


def _numpy_name(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:
        return onnx_type_name(elem_type)


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        return torch_to_numpy(value)
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    return value
