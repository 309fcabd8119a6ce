"""Import an ONNX file into greenrt's graph IR.

IR decision: greenrt uses onnx-ir (the ONNX project's in-memory IR, the one torch.onnx builds on) rather than a
graph class of its own. It already gives what the pipeline needs and would otherwise be rewritten here: a mutable
graph with use-def chains for rewrite passes, symbolic dimensions (``ir.SymbolicDim``) on every value, lazy
external-data tensors, subgraphs for control flow, function inlining, and exact round-trip to ModelProto so an
optimized graph stays a valid ONNX file that Netron opens (fused ops live in the ``greenrt`` domain).
What greenrt adds on top lives in the passes and the executor, not in a parallel graph type.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import google.protobuf.message
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import InlinePass

from ..errors import ModelLoadError, UnsupportedModelError
from .dtypes import is_supported_elem_type, onnx_type_name

# The newest ai.onnx opset the installed onnx package defines; greenrt's ops were written against it.
MAX_OPSET = onnx.defs.onnx_opset_version()


def read_model_proto(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse the file (with external data) or raise ModelLoadError naming the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (google.protobuf.message.DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{path}: not a valid ONNX model (truncated or not a ModelProto: {exc}); re-export or re-download it"
        ) from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{path}: parsed, but holds no graph (is this an ONNX model file?)")
    _load_external_data(proto, path)
    return proto


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    base = path.parent
    missing = []
    for tensor in onnx.external_data_helper._get_all_tensors(proto):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = base / info.get("location", "")
        if not location.is_file():
            missing.append(f"tensor {tensor.name!r} -> {location}")
    if missing:
        raise ModelLoadError(
            f"{path}: external data file(s) missing; keep the .onnx.data file next to the model:\n"
            + "\n".join(f"  - {m}" for m in sorted(set(missing)))
        )
    try:
        onnx.load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: could not read external data: {exc}") from None


def check_opsets(proto: onnx.ModelProto, source: str) -> None:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > MAX_OPSET:
            raise UnsupportedModelError(
                f"{source}: ai.onnx opset {imp.version} is newer than greenrt supports ({MAX_OPSET}); "
                f"export with opset <= {MAX_OPSET} or convert with onnx.version_converter"
            )


def check_dtypes(proto: onnx.ModelProto, source: str) -> None:
    problems = []
    for v in list(proto.graph.input) + list(proto.graph.output):
        t = v.type.tensor_type
        if v.type.HasField("tensor_type") and t.elem_type and not is_supported_elem_type(t.elem_type):
            problems.append(f"tensor {v.name!r}: element type {onnx_type_name(t.elem_type)}")
    for init in proto.graph.initializer:
        if not is_supported_elem_type(init.data_type):
            problems.append(f"initializer {init.name!r}: element type {onnx_type_name(init.data_type)}")
    if problems:
        raise UnsupportedModelError(f"{source}: uses element types greenrt cannot hold", problems)


def infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnx shape inference with data propagation (shape subgraphs); a model it rejects is kept as it was."""
    try:
        return onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # inference is an aid, not a gate: the executor runs without it
        return proto


def proto_to_ir(proto: onnx.ModelProto) -> ir.Model:
    model = ir.from_proto(proto)
    if model.functions:
        InlinePass()(model)  # model-local functions become plain nodes
    return model


def load_model(source: str | os.PathLike | onnx.ModelProto, *, shape_inference: bool = True) -> ir.Model:
    """ONNX file or ModelProto -> ir.Model, checked for opset and dtypes, with shapes inferred."""
    if isinstance(source, onnx.ModelProto):
        proto, name = source, "<model>"
    else:
        proto, name = read_model_proto(source), str(source)
    check_opsets(proto, name)
    check_dtypes(proto, name)
    if shape_inference:
        proto = infer_shapes(proto)
    try:
        return proto_to_ir(proto)
    except Exception as exc:
        raise ModelLoadError(f"{name}: could not be converted to greenrt's IR: {_root_cause(exc)}") from None


def _root_cause(exc: BaseException) -> str:
    """The innermost cause of a conversion error, with the value it concerns: onnx-ir wraps the reason ('Map types
    are not supported yet') in layers of 'Error calling deserialize_... with: <proto text>'."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    inner = str(chain[-1]).strip() or type(chain[-1]).__name__
    inner = inner.split(". Please contribute")[0].splitlines()[0]
    names = [m for e in chain for m in re.findall(r'name: "([^"]+)"', str(e))]
    where = f" (value {names[0]!r})" if names else ""
    if len(chain) == 1:
        return inner
    return f"{type(chain[-1]).__name__}: {inner}{where}"
