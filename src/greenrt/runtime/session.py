"""InferenceSession: onnxruntime's API over greenrt, so an ORT user swaps one import.

    sess = greenrt.InferenceSession("model.onnx", device="cuda")     # an ONNX file, run as it is
    sess = greenrt.InferenceSession("model.engine")                  # an engine from `greenrt build`
    logits, = sess.run(None, {"input": x})

Inputs may be numpy arrays or torch tensors; outputs come back in the same kind (torch if any input is torch).
An engine runs through its optimized plan with per-shape specialization and, on CUDA, one CUDA graph per shape;
loading one needs neither onnx nor onnxruntime.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import GreenrtError, InvalidInputError
from ..onnx.dtypes import STRING, TORCH_TO_ONNX, numpy_to_torch, onnx_type_name, torch_to_numpy
from ..plan.plan import Plan, TensorSpec
from .runner import Runner

@dataclass(frozen=True)
class NodeArg:
    """Like onnxruntime.NodeArg: name, shape (ints, or str for symbolic dims, None if unknown) and type."""

    name: str
    shape: list[int | str | None] | None
    type: str  # "tensor(float)", as onnxruntime spells it
    elem_type: int


def _type_string(elem_type: int) -> str:
    names = {1: "float", 11: "double", STRING: "string"}
    return f"tensor({names.get(elem_type, onnx_type_name(elem_type))})"


def node_arg(spec: TensorSpec) -> NodeArg:
    return NodeArg(spec.name, list(spec.shape) if spec.shape is not None else None, _type_string(spec.dtype),
                   spec.dtype)


def resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GreenrtError("device 'cuda' requested but torch sees no CUDA GPU; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise GreenrtError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def is_engine_file(path) -> bool:
    from ..plan.engine_file import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class InferenceSession:
    def __init__(self, model, device: str | torch.device | None = None, *, allow_mismatch: bool = False,
                 cuda_graphs: bool = True):
        """``model``: an .onnx path, an onnx.ModelProto, or an engine file. ``device`` defaults to the engine's
        device, or cpu for ONNX. ``cuda_graphs`` applies to engines on CUDA."""
        self.model_path = None if not isinstance(model, (str, os.PathLike)) else str(model)
        self.profiles: list = []
        self.header: dict | None = None
        if self.model_path is not None and is_engine_file(self.model_path):
            from ..plan.engine_file import read_engine
            from ..plan.profiles import Profile

            engine = read_engine(self.model_path, device=str(device) if device else None,
                                 allow_mismatch=allow_mismatch)
            self.header = engine.header
            self.device = resolve_device(device or engine.header["device"]["type"])
            self.profiles = [Profile.from_json(p) for p in engine.header.get("profiles", [])]
            config = engine.header.get("config", {})
            self.runner = Runner(engine.plan, engine.weights, self.device, precision=config.get("precision"),
                                 channels_last=bool(config.get("channels_last")), specialize=True,
                                 cuda_graphs=cuda_graphs, compile_key=engine.header["header_sha256"][:24])
        else:
            try:
                from ..onnx.importer import load_model
                from ..plan.compile import compile_model
            except ImportError as exc:
                raise GreenrtError(f"opening ONNX models needs the builder ({exc.name} is not installed): "
                                   "pip install 'greenrt[build]', or run an engine file") from None

            self.device = resolve_device(device or "cpu")
            plan, weights = compile_model(load_model(model))
            self.runner = Runner(plan, weights, self.device, precision="fp32")
        self.plan: Plan = self.runner.plan
        self.executor = self.runner.executor
        self.channels_last = self.runner.channels_last
        constants = set(self.plan.constants)
        self._inputs = [node_arg(s) for s in self.plan.inputs if s.name not in constants]
        self._optional_inputs = {s.name for s in self.plan.inputs if s.name in constants}
        self._outputs = [node_arg(s) for s in self.plan.outputs]

    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list[Any]:
        feeds, as_torch = self._prepare(input_feed)
        outputs = self._execute(feeds)
        by_name = dict(zip(self.executor.output_names, outputs))
        names = list(output_names) if output_names else self.executor.output_names
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise InvalidInputError(
                f"requested output(s) {unknown} do not exist; the model's outputs are {self.executor.output_names}"
            )
        if as_torch:
            return [_own(by_name[n]) if self.header is not None else by_name[n] for n in names]
        return [_to_numpy(by_name[n]) for n in names]

    def run_device(self, input_feed: Mapping[str, Any]) -> list[Any]:
        """Outputs as device tensors without any copy. With CUDA graphs these are the graph's own buffers:
        valid until the next call with the same input shapes (clone them to keep them longer)."""
        feeds, _ = self._prepare(input_feed)
        return list(self._execute(feeds))

    def _execute(self, feeds: dict[str, Any]) -> list[Any]:
        if self.profiles:
            from ..plan.profiles import select_profile

            select_profile(self.profiles, {k: tuple(v.shape) for k, v in feeds.items() if hasattr(v, "shape")})
        return self.runner.run(feeds)

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
        # shapes first, from the caller's arrays as they are: a shape the model or its profiles refuse is refused
        # before anything is copied (a zero-stride view of 2^40 elements costs nothing until copied)
        shapes: dict[str, tuple[int, ...]] = {}
        symbols: dict[str, tuple[int, str]] = {}
        for name, value in input_feed.items():
            shape = _shape_of(value)
            if shape is not None and name in expected:
                check_shape(expected[name], shape, symbols)
                shapes[name] = shape
        if self.profiles:
            from ..plan.profiles import select_profile

            select_profile(self.profiles, shapes)
        feeds: dict[str, Any] = {}
        symbols = {}
        for name, value in input_feed.items():
            arg = expected.get(name)
            tensor = self._to_runtime(name, value)
            if arg is not None:
                check_input(arg, tensor, symbols)
            feeds[name] = tensor
        return feeds, as_torch

    def _to_runtime(self, name: str, value: Any):
        if isinstance(value, (np.ndarray, np.generic, list, int, float, bool)):
            value = numpy_to_torch(np.asarray(value), self.device)
        if isinstance(value, torch.Tensor):
            return value.to(self.device)
        if isinstance(value, np.ndarray):
            return value
        raise InvalidInputError(f"input {name!r}: expected a numpy array or torch tensor, got {type(value).__name__}")



def check_input(arg: NodeArg, tensor, symbols: dict[str, tuple[int, str]]) -> None:
    """InvalidInputError unless ``tensor`` has ``arg``'s dtype, rank and fixed dims, with each symbolic dim the
    same across inputs (``symbols`` collects them over one feed)."""
    if isinstance(tensor, np.ndarray):  # string tensor
        got_elem, shape = STRING, tensor.shape
    else:
        got_elem, shape = TORCH_TO_ONNX.get(tensor.dtype, -1), tuple(tensor.shape)
    if arg.elem_type and got_elem != arg.elem_type:
        raise InvalidInputError(
            f"input {arg.name!r}: expected dtype {_type_string(arg.elem_type)}, got {_type_string(got_elem)}; "
            f"cast the array (e.g. x.astype(np.{_numpy_name(arg.elem_type)}))"
        )
    check_shape(arg, shape, symbols)


def _shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of an array or tensor as given (None for anything else: it is checked after conversion)."""
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        return tuple(value.shape)
    return None


def check_shape(arg: NodeArg, shape: Sequence[int], symbols: dict[str, tuple[int, str]]) -> None:
    """InvalidInputError unless ``shape`` has ``arg``'s rank and fixed dims, with each symbolic dim the same across
    inputs (``symbols`` collects them over one feed)."""
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
    from ..onnx.dtypes import ONNX_TO_TORCH, TORCH_TO_NUMPY

    dtype = TORCH_TO_NUMPY.get(ONNX_TO_TORCH.get(elem_type))
    return dtype.name if dtype is not None else onnx_type_name(elem_type)


def _own(value):
    """A copy the caller owns (CUDA-graph outputs are reused by the next call)."""
    return value.clone() if isinstance(value, torch.Tensor) else value


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        return torch_to_numpy(value)
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    return value
