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
from onnx import TensorProto
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
    missing, outside = [], []
    for tensor in onnx.external_data_helper._get_all_tensors(proto):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if not _inside(base, location):
            outside.append(f"tensor {tensor.name!r} -> {location!r}")
            continue
        try:
            found = (base / location).is_file()
        except (OSError, ValueError):  # a name too long for the file system
            found = False
        if not found:
            missing.append(f"tensor {tensor.name!r} -> {base / location}")
    if outside:
        raise ModelLoadError(
            f"{path}: external data must be a file in the model's folder (a relative path, no '..', no link out of "
            "it); greenrt reads nothing else. Move the data next to the model and fix the location:\n"
            + "\n".join(f"  - {m}" for m in sorted(set(outside)))
        )
    if missing:
        raise ModelLoadError(
            f"{path}: external data file(s) missing; keep the .onnx.data file next to the model:\n"
            + "\n".join(f"  - {m}" for m in sorted(set(missing)))
        )
    try:
        onnx.load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: could not read external data: {exc}") from None


def _inside(base: Path, location: str) -> bool:
    """Whether the external-data ``location`` names a file inside ``base``: text (a corrupted file can hold bytes
    that are not UTF-8), relative, no '..', no NUL, and not a link that resolves out of it."""
    if not isinstance(location, str) or not location or "\x00" in location or os.path.isabs(location) or ".." in Path(location).parts:
        return False
    try:
        return (base / location).resolve().is_relative_to(base.resolve())
    except (OSError, ValueError, RuntimeError):
        return False


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


# where each element type keeps its values when not in raw_data (the ONNX spec's TensorProto field rules)
_TYPED_FIELD = {
    TensorProto.FLOAT: "float_data", TensorProto.COMPLEX64: "float_data", TensorProto.INT64: "int64_data",
    TensorProto.DOUBLE: "double_data", TensorProto.COMPLEX128: "double_data", TensorProto.UINT32: "uint64_data",
    TensorProto.UINT64: "uint64_data", TensorProto.STRING: "string_data",
}


def check_tensor_data(proto: onnx.ModelProto, source: str) -> None:
    """Every tensor's data (initializers, Constant values and other tensor attributes, in subgraphs too) holds as
    many values as its dims say, so a corrupted or hand-edited file is refused here, naming the tensor, and not by
    a numpy error deep in the build."""
    problems = []
    for t in onnx.external_data_helper._get_all_tensors(proto):
        if t.data_location == TensorProto.EXTERNAL or not is_supported_elem_type(t.data_type):
            continue  # check_dtypes names unsupported types
        where = f"tensor {t.name!r} ({onnx_type_name(t.data_type)} {list(t.dims)})"
        if any(d < 0 for d in t.dims):
            problems.append(f"{where}: negative dimension")
            continue
        count = 1
        for d in t.dims:
            count *= d
        if t.data_type == TensorProto.STRING:
            got, want = len(t.string_data), count
        elif t.HasField("raw_data"):
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
            got, want = len(t.raw_data), count * itemsize
            if got != want:
                problems.append(f"{where}: {got} bytes of data, its dims need {want}")
            continue
        else:
            field = _TYPED_FIELD.get(t.data_type, "int32_data")
            pairs = t.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128)
            got, want = len(getattr(t, field)), count * (2 if pairs else 1)
        if got != want:
            problems.append(f"{where}: {got} values, its dims need {want}")
    if problems:
        raise ModelLoadError(f"{source}: tensor data does not match the tensors' shapes (a corrupted or hand-edited "
                             "file): re-export the model\n" + "\n".join(f"  - {p}" for p in problems[:20]))


def check_names(proto: onnx.ModelProto, source: str) -> None:
    """Every name in the graph is text: a corrupted file can hold names that are not valid UTF-8, which protobuf
    hands over as bytes."""

    def graph_names(g: onnx.GraphProto, where: str):
        for v in (*g.input, *g.output, *g.value_info, *g.initializer):
            yield v.name, f"{where}value {v.name!r}"
        for i, n in enumerate(g.node):
            label = f"{where}node #{i} ({n.op_type!r})"
            yield from ((x, label) for x in (n.name, n.op_type, n.domain, *n.input, *n.output))
            for a in n.attribute:
                yield a.name, label
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    yield from graph_names(sub, f"{label}, subgraph {a.name!r}: ")

    bad = [where for name, where in graph_names(proto.graph, "") if not isinstance(name, str)]
    bad += [f"opset import #{i}" for i, o in enumerate(proto.opset_import) if not isinstance(o.domain, str)]
    if bad:
        raise ModelLoadError(f"{source}: names that are not valid UTF-8 text (a corrupted file): "
                             f"{', '.join(bad[:5])}; re-export or re-download the model")


def check_edges(proto: onnx.ModelProto, source: str) -> None:
    """Every value a node reads exists before it: a graph input, an initializer, an earlier node's output, or (in an
    If/Loop/Scan body) a value of the enclosing graph; each value is produced once; every graph output exists. The
    ONNX spec asks this of every file (topological order, single assignment); a file that breaks it is refused
    here, naming the node and the value, instead of failing later as if greenrt had broken the graph."""
    problems: list[str] = []

    def walk(g: onnx.GraphProto, outer: frozenset, where: str) -> None:
        defined = set(outer) | {v.name for v in g.input} | {t.name for t in g.initializer} | {""}
        defined |= {t.values.name for t in g.sparse_initializer}
        later = {o: i for i, n in enumerate(g.node) for o in n.output if o}
        produced: dict[str, str] = {}
        for i, n in enumerate(g.node):
            label = f"{where}node {n.name or f'#{i}'!r} ({n.op_type})"
            for name in n.input:
                if name in defined:
                    continue
                if name in later:
                    problems.append(f"{label} reads {name!r} before the node that produces it (the nodes are not "
                                    "in topological order, or they form a cycle)")
                else:
                    problems.append(f"{label} reads {name!r}, which no node, graph input or initializer produces")
            for a in n.attribute:
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sub, frozenset(defined), f"{label}, subgraph {a.name!r}: ")
            for name in n.output:
                if not name:
                    continue
                if name in produced or name in defined - set(outer):
                    first = produced.get(name, "a graph input or initializer")
                    problems.append(f"{label} produces {name!r}, already produced by {first} (each value must "
                                    "be assigned once)")
                produced[name] = label
                defined.add(name)
        for kind, values in (("input", g.input), ("output", g.output)):
            names = [v.name for v in values]
            problems.extend(f"{where}graph {kind} {n!r} is listed {names.count(n)} times"
                            for n in sorted(set(n for n in names if names.count(n) > 1)))
        for i, v in enumerate(g.output):
            if not v.name:
                problems.append(f"{where}graph output #{i} has no name")
            elif v.name not in defined:
                problems.append(f"{where}graph output {v.name!r} is produced by no node and is not an input or "
                                "initializer")

    walk(proto.graph, frozenset(), "")
    if problems:
        raise ModelLoadError(f"{source}: the graph's edges are broken (onnx.checker.check_model says the same):\n"
                             + "\n".join(f"  - {p}" for p in problems[:20])
                             + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""))


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
    check_names(proto, name)
    check_opsets(proto, name)
    check_dtypes(proto, name)
    check_tensor_data(proto, name)
    check_edges(proto, name)
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
