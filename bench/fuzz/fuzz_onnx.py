"""Fuzz campaign (a): ONNX files. Each case mutates one of the tiny base models (bench/fuzz/models.py) and hands the
file to greenrt as a user would: ``greenrt.InferenceSession(model.onnx)``, a run on valid inputs for what it
declares, then ``build_engine`` (cpu, --opt-level 0) and a run of that engine.

    python bench/fuzz/fuzz_onnx.py --seed 0 --cases 2000 --out bench/results/fuzz_onnx.json

Two families of cases:
- ``bytes``: byte mutations of a base's serialized file (bit flips, interesting bytes, inserted, deleted and
  repeated ranges, truncation), from a seeded random.Random;
- ``structure``: hypothesis draws a list of structural edits: attributes of the wrong type or size, dims of 0,
  negative or huge, unknown element types, dangling and cyclic edges, duplicate names, missing or resized
  initializers, opsets and IR versions out of range, op types and domains swapped, nodes dropped, duplicated or
  reordered, and external-data locations pointing outside the model's folder ("../../etc/passwd", absolute paths).
  Node indices run over the subgraphs too (If/Loop/Scan bodies of the ``control`` base), so they break the same ways.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fuzz.supervisor import (ROOT, UNBUILDABLE, Campaign, campaign_args, Case, draw_recipes,  # noqa: E402
                                   campaign_main, limit_warm_process, listify, Outcome, run_cases, Supervisor)
from bench.fuzz import models  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import AttributeProto, TensorProto, helper  # noqa: E402

import greenrt  # noqa: E402
from greenrt.build import BuildConfig, build_engine  # noqa: E402

BASE_NAMES = sorted(models.BASES)
OP_TYPES = ["Relu", "Add", "MatMul", "Gemm", "Conv", "Reshape", "Softmax", "If", "Loop", "Scan", "Gather", "Concat",
            "Transpose", "Slice", "Cast", "Identity", "Resize", "TopK", "Einsum", "NoSuchOp", ""]
DOMAINS = ["", "ai.onnx", "ai.onnx.ml", "com.microsoft", "greenrt", "unknown.domain"]
ATTR_NAMES = ["axis", "perm", "pads", "kernel_shape", "strides", "group", "transB", "to", "keepdims", "mode",
              "num_scan_inputs", "body", "then_branch", "alpha"]
LOCATIONS = ["../../etc/passwd", "/etc/passwd", "../outside.bin", "sub/../../outside.bin", "/proc/self/environ",
             "model.onnx.data", "model.onnx", "missing.bin", "", ".", "a" * 300, "data.bin", "./data.bin",
             "~/data.bin", "data.bin\x00.txt"]


# -- structure-aware edits ---------------------------------------------------------------------------------------
def _all_graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                out += _all_graphs(attr.g)
            for g in attr.graphs:
                out += _all_graphs(g)
    return out


def _nodes(model):
    return [(g, i, n) for g in _all_graphs(model.graph) for i, n in enumerate(g.node)]


def _value_infos(model):
    return [v for g in _all_graphs(model.graph) for v in (*g.input, *g.output, *g.value_info)]


def _names(model) -> list[str]:
    names = []
    for g in _all_graphs(model.graph):
        names += [v.name for v in g.input] + [t.name for t in g.initializer]
        names += [o for n in g.node for o in n.output]
    return names or ["x"]


def _attr_value(name: str, kind: str, value):
    if kind == "int":
        return helper.make_attribute(name, int(value))
    if kind == "float":
        return helper.make_attribute(name, float(value))
    if kind == "string":
        return helper.make_attribute(name, str(value))
    if kind == "ints":
        return helper.make_attribute(name, [int(v) for v in value], attr_type=AttributeProto.INTS)
    if kind == "floats":
        return helper.make_attribute(name, [float(v) for v in value], attr_type=AttributeProto.FLOATS)
    if kind == "tensor":
        return helper.make_attribute(name, helper.make_tensor(name, TensorProto.FLOAT, [len(value)], value))
    if kind == "graph":  # an empty or one-node graph where a subgraph or a number was expected
        nodes = [helper.make_node("Relu", ["x"], ["y"])] if value else []
        return helper.make_attribute(name, helper.make_graph(nodes, "g", [], []))
    raise ValueError(kind)


def apply_edit(model: onnx.ModelProto, op: list, folder: Path) -> None:
    kind, args = op[0], op[1:]
    nodes = _nodes(model)
    if kind == "attr":
        g, _, node = nodes[args[0] % len(nodes)]
        slot, akind, value = args[1], args[2], args[3]
        attrs = node.attribute
        name = attrs[slot % len(attrs)].name if attrs and slot < 100 else ATTR_NAMES[slot % len(ATTR_NAMES)]
        new = _attr_value(name, akind, value)
        kept = [a for a in attrs if a.name != name]
        del node.attribute[:]
        node.attribute.extend(kept + [new])
    elif kind == "drop_attr":
        _, _, node = nodes[args[0] % len(nodes)]
        if node.attribute:
            del node.attribute[args[1] % len(node.attribute)]
    elif kind in ("dim", "rank", "elem_type"):
        infos = _value_infos(model)
        if not infos:
            return
        v = infos[args[0] % len(infos)]
        t = v.type.tensor_type
        if kind == "elem_type":
            t.elem_type = args[1]
        elif kind == "rank":
            t.shape.Clear()
            for d in range(args[1]):
                t.shape.dim.add().dim_value = 2
        else:
            dims = t.shape.dim
            if not len(dims):
                dims.add()
            d = dims[args[1] % len(dims)]
            value = args[2]
            if isinstance(value, int):
                d.dim_value = value
            elif value is None:
                d.Clear()
            else:
                d.dim_param = value
    elif kind in ("init_dims", "init_type", "init_raw", "init_drop", "init_dup", "external"):
        g = model.graph
        inits = [(gg, t) for gg in _all_graphs(g) for t in gg.initializer]
        if not inits:
            return
        gg, t = inits[args[0] % len(inits)]
        if kind == "init_dims":
            del t.dims[:]
            t.dims.extend(args[1])
        elif kind == "init_type":
            t.data_type = args[1]
        elif kind == "init_raw":
            _materialize_data(t)
            t.raw_data = bytes((i * 37 + 11) % 256 for i in range(args[1]))
        elif kind == "init_drop":
            gg.initializer.remove(t)
        elif kind == "init_dup":
            gg.initializer.add().CopyFrom(t)
        else:  # external data at a location of the fuzzer's choice, with offset and length
            location, offset, length, write = args[1:]
            _materialize_data(t)
            t.data_location = TensorProto.EXTERNAL
            del t.external_data[:]
            for key, value in (("location", location), ("offset", offset), ("length", length)):
                if value is not None:
                    entry = t.external_data.add()
                    entry.key, entry.value = key, str(value)
            if write and "/" not in location and location not in ("", ".") and "\x00" not in location:
                (folder / location).write_bytes(bytes(range(256)) * 4)
    elif kind == "input":
        g, i, node = nodes[args[0] % len(nodes)]
        if not node.input:
            node.input.append("")
        slot, how, ref = args[1] % len(node.input), args[2], args[3]
        if how == "dangling":
            node.input[slot] = f"ghost{ref}"
        elif how == "cycle":  # an output of this node or a later one: a cycle or a use before definition
            later = [o for n in list(g.node)[i:] for o in n.output] or [""]
            node.input[slot] = later[ref % len(later)]
        elif how == "other":
            names = _names(model)
            node.input[slot] = names[ref % len(names)]
        else:
            node.input[slot] = ""
    elif kind == "output":
        g, i, node = nodes[args[0] % len(nodes)]
        if not node.output:
            node.output.append("")
        slot, how, ref = args[1] % len(node.output), args[2], args[3]
        if how == "dup":
            names = _names(model)
            node.output[slot] = names[ref % len(names)]
        elif how == "empty":
            node.output[slot] = ""
        else:
            node.output[slot] = f"renamed{ref}"
    elif kind == "drop_node":
        g, i, _ = nodes[args[0] % len(nodes)]
        del g.node[i]
    elif kind == "dup_node":
        g, i, node = nodes[args[0] % len(nodes)]
        g.node.add().CopyFrom(node)
    elif kind == "swap_nodes":
        g = model.graph
        if len(g.node) > 1:
            i, j = args[0] % len(g.node), args[1] % len(g.node)
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(g.node[i])
            b.CopyFrom(g.node[j])
            g.node[i].CopyFrom(b)
            g.node[j].CopyFrom(a)
    elif kind == "op_type":
        _, _, node = nodes[args[0] % len(nodes)]
        node.op_type = args[1]
    elif kind == "domain":
        _, _, node = nodes[args[0] % len(nodes)]
        node.domain = args[1]
    elif kind == "opset":
        domain, version = args
        found = [o for o in model.opset_import if o.domain == domain]
        (found[0] if found else model.opset_import.add()).version = version
        if not found:
            model.opset_import[-1].domain = domain
    elif kind == "ir_version":
        model.ir_version = args[0]
    elif kind == "graph_io":
        action, ref = args
        g = model.graph
        if action == "drop_input" and g.input:
            del g.input[ref % len(g.input)]
        elif action == "drop_output" and g.output:
            del g.output[ref % len(g.output)]
        elif action == "bogus_output":
            g.output.append(helper.make_tensor_value_info(f"ghost{ref}", TensorProto.FLOAT, [2]))
        elif action == "bogus_input":
            g.input.append(helper.make_tensor_value_info(f"extra{ref}", ref % 30, [2]))
        elif action == "dup_output" and g.output:
            g.output.append(onnx.ValueInfoProto.FromString(g.output[ref % len(g.output)].SerializeToString()))
        elif action == "dup_input" and g.input:
            g.input.append(onnx.ValueInfoProto.FromString(g.input[ref % len(g.input)].SerializeToString()))
        elif action == "unnamed_output":
            g.output.add().CopyFrom(helper.make_tensor_value_info("", TensorProto.FLOAT, [2]))
    else:
        raise ValueError(f"unknown edit {kind!r}")


def _materialize_data(t: onnx.TensorProto) -> None:
    """An initializer's values into raw_data (external data read back from nowhere: its bytes stay as they were)."""
    if t.data_location == TensorProto.EXTERNAL:
        return
    if not t.raw_data:
        try:
            t.raw_data = onnx.numpy_helper.to_array(t).tobytes()
        except Exception:  # noqa: BLE001  (an already broken tensor: keep it broken)
            return
        for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            t.ClearField(field)


def edit_strategy():
    from hypothesis import strategies as st

    index = st.integers(0, 60)
    big = st.one_of(st.sampled_from([0, 1, -1, 2, 3, 7, 2**31 - 1, 2**31, 2**40, 2**62, -2**63]),
                    st.integers(-2**63, 2**63 - 1))
    small_list = st.lists(big, max_size=6)
    floats = st.floats(width=32, allow_nan=True, allow_infinity=True)
    elem = st.one_of(st.integers(-1, 30), st.sampled_from([100, 2**31 - 1]))
    attr = st.one_of(
        st.tuples(st.just("int"), big), st.tuples(st.just("float"), floats),
        st.tuples(st.just("string"), st.text(max_size=8)), st.tuples(st.just("ints"), small_list),
        st.tuples(st.just("floats"), st.lists(floats, max_size=6)),
        st.tuples(st.just("tensor"), st.lists(floats, max_size=4)), st.tuples(st.just("graph"), st.booleans()))
    edits = st.one_of(
        st.builds(lambda n, s, a: ["attr", n, s, a[0], a[1]], index, st.integers(0, 120), attr),
        st.tuples(st.just("drop_attr"), index, index),
        st.tuples(st.just("dim"), index, index, st.one_of(big, st.none(), st.text(max_size=3))),
        st.tuples(st.just("rank"), index, st.integers(0, 6)),
        st.tuples(st.just("elem_type"), index, elem),
        st.tuples(st.just("init_dims"), index, st.lists(st.one_of(st.integers(-3, 70), st.sampled_from(
            [2**31, 2**40, 2**62])), max_size=5)),
        st.tuples(st.just("init_type"), index, elem),
        st.tuples(st.just("init_raw"), index, st.integers(0, 300)),
        st.tuples(st.just("init_drop"), index), st.tuples(st.just("init_dup"), index),
        st.tuples(st.just("external"), index, st.sampled_from(LOCATIONS),
                  st.one_of(st.none(), st.sampled_from([0, 1, -1, 64, 2**40])),
                  st.one_of(st.none(), st.sampled_from([0, 4, 64, 1024, -4, 2**40])), st.booleans()),
        st.tuples(st.just("input"), index, index, st.sampled_from(["dangling", "cycle", "other", "empty"]), index),
        st.tuples(st.just("output"), index, index, st.sampled_from(["dup", "empty", "rename"]), index),
        st.tuples(st.just("drop_node"), index), st.tuples(st.just("dup_node"), index),
        st.tuples(st.just("swap_nodes"), index, index),
        st.tuples(st.just("op_type"), index, st.sampled_from(OP_TYPES)),
        st.tuples(st.just("domain"), index, st.sampled_from(DOMAINS)),
        st.tuples(st.just("opset"), st.sampled_from(DOMAINS), st.sampled_from(
            [0, 1, 6, 7, 11, 13, 17, 21, 25, 26, 99, -1, 2**31 - 1, 2**62])),
        st.tuples(st.just("ir_version"), st.sampled_from([0, 1, 3, 7, 8, 10, 11, 12, 99, -1, 2**62])),
        st.tuples(st.just("graph_io"), st.sampled_from(["drop_input", "drop_output", "bogus_output",
                                                        "bogus_input", "dup_output", "dup_input",
                                                        "unnamed_output"]), index),
    )
    return st.tuples(st.sampled_from(BASE_NAMES), st.lists(edits, min_size=1, max_size=5))


# -- byte mutations ----------------------------------------------------------------------------------------------
def byte_recipe(rng: random.Random, size: int) -> list:
    ops = []
    for _ in range(rng.choice([1, 1, 2, 3, 5, 8])):
        kind = rng.choice(["flip", "flip", "set", "interesting", "insert", "delete", "repeat", "truncate"])
        off = rng.randrange(max(size, 1))
        if kind == "flip":
            ops.append(["flip", off, rng.randrange(8)])
        elif kind == "set":
            ops.append(["set", off, rng.randrange(256)])
        elif kind == "interesting":
            ops.append(["set", off, rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x08, 0x12, 0x1A, 0x22, 0x3A])])
        elif kind == "insert":
            ops.append(["insert", off, bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 16]))).hex()])
        elif kind == "delete":
            ops.append(["delete", off, rng.choice([1, 2, 4, 16, 64])])
        elif kind == "repeat":
            ops.append(["repeat", off, rng.choice([4, 16, 64])])
        else:
            ops.append(["truncate", off])
    return ops


def apply_bytes(data: bytes, ops: list) -> bytes:
    buf = bytearray(data)
    for op in ops:
        kind, off = op[0], op[1] % max(len(buf), 1)
        if kind == "flip" and buf:
            buf[off] ^= 1 << op[2]
        elif kind == "set" and buf:
            buf[off] = op[2]
        elif kind == "insert":
            buf[off:off] = bytes.fromhex(op[2])
        elif kind == "delete":
            del buf[off:off + op[2]]
        elif kind == "repeat":
            buf[off:off] = buf[off:off + op[2]]
        elif kind == "truncate":
            del buf[off:]
    return bytes(buf)


# -- a case: its files, and what greenrt is asked to do with them ------------------------------------------------
def materialize(case: Case, folder: Path) -> Path:
    path = folder / "model.onnx"
    if case.base == "external":
        (folder / "model.onnx.data").write_bytes(models.external_data_bytes())
    model = models.BASES[case.base]()
    if case.family == "bytes":
        path.write_bytes(apply_bytes(model.SerializeToString(), case.recipe))
        return path
    for op in case.recipe:
        apply_edit(model, op, folder)
    path.write_bytes(model.SerializeToString())
    return path


def declared_feeds(session, rng: np.random.Generator) -> dict | None:
    """Valid-looking inputs for what the (mutated) model declares; None where that is not a small tensor."""
    from greenrt.onnx.dtypes import ONNX_TO_TORCH, STRING, TORCH_TO_NUMPY

    feeds = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) else 2 for d in (arg.shape or [])]
        if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.float64)) > 1 << 16:
            return None
        if arg.elem_type == STRING:
            feeds[arg.name] = np.full(shape, "a", dtype=object)
            continue
        dtype = TORCH_TO_NUMPY.get(ONNX_TO_TORCH.get(arg.elem_type))
        if dtype is None:
            return None
        if dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "c":
            feeds[arg.name] = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
        elif dtype.kind == "b":
            feeds[arg.name] = rng.random(shape) > 0.5
        else:
            feeds[arg.name] = rng.integers(0, 5, shape).astype(dtype)
    return feeds


def target(folder: Path, path: Path) -> None:
    """What a user does with a model file: open it, run it, build an engine, run that."""
    session = greenrt.InferenceSession(path)
    feeds = declared_feeds(session, np.random.default_rng(0))
    if feeds is not None:
        session.run(None, feeds)
    engine = folder / "model.engine"
    build_engine(path, engine, BuildConfig(device="cpu", opt_level=0), log=lambda *a, **k: None)
    if feeds is not None:
        greenrt.InferenceSession(engine).run(None, feeds)


class OnnxCampaign:
    name = "onnx"

    def __init__(self, wall_s: float = 10.0):
        self.sup = Supervisor(wall_s=wall_s)
        self.work = Path(tempfile.mkdtemp(prefix="greenrt-fuzz-onnx-"))
        self.n = 0
        for base in BASE_NAMES:  # warm, in this process: lazy imports and first-call costs paid once, not per child
            folder = self.work / f"warm-{base}"
            folder.mkdir()
            target(folder, materialize(Case("structure", [], base), folder))
        self.sup.rebase()

    def run(self, case: Case):
        self.n += 1
        folder = self.work / f"case{self.n}"
        folder.mkdir()
        try:
            path = materialize(case, folder)
        except (ValueError, TypeError, OverflowError, OSError, ArithmeticError, LookupError) as exc:
            # a recipe the files cannot hold (or that refers to nothing left, e.g. a node of an emptied graph)
            return Outcome(UNBUILDABLE, type(exc).__name__, str(exc))
        try:
            return self.sup.run(target, folder, path, folder=folder)
        finally:
            _rmtree(folder)

    def cases(self, seed: int, n: int) -> list[Case]:
        rng = random.Random(seed)
        sizes = {b: len(models.BASES[b]().SerializeToString()) for b in BASE_NAMES}
        n_struct = n - n // 3
        structure = [Case("structure", listify(ops), base) for base, ops in draw_recipes(edit_strategy(), n_struct,
                                                                                           seed)]
        out = []
        for i in range(n):
            if i % 3 == 2 or not structure:
                base = rng.choice(BASE_NAMES)
                out.append(Case("bytes", byte_recipe(rng, sizes[base]), base))
            else:
                out.append(structure.pop())
        return out


def _rmtree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> int:
    return campaign_main("onnx", __doc__, OnnxCampaign, NOTES, argv)


NOTES = ("Each case forked from a warm process (greenrt, torch, onnx imported), 10 s wall and 2 GiB (address space "
         "and resident memory, on top of the warm process) per case, torch on 1 thread. A case: InferenceSession on "
         "the mutated file, a run on inputs it declares, build_engine (cpu, opt-level 0), a run of the engine. "
         "Families: bytes (seeded random.Random byte mutations), structure (hypothesis-drawn structural edits). "
         "Findings carry the minimized recipe (bench/fuzz/fuzz_onnx.py replays it).")

if __name__ == "__main__":
    sys.exit(main())
