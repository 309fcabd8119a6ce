"""Regression tests from the fuzz campaigns' minimized findings (issue 13, bench/fuzz/). Each test is one finding:
the input the campaign reduced it to, and the clear GreenrtError (or result) greenrt now gives instead of the
traceback or blow-up it gave before. The campaign and the recipe are named in each test's docstring."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.build.calibration import CalibrationDataError, calibrate, open_calibration_data
from greenrt.errors import InvalidInputError, ModelLoadError
from greenrt.plan.engine_file import MAGIC, EngineFileError, encode_header
from greenrt.plan.profiles import parse_profile
from tests.conftest import make_mlp_model


def _save(model: onnx.ModelProto, path) -> str:
    path.write_bytes(model.SerializeToString())
    return str(path)


def _feeds(rng, batch=2):
    return {"x": rng.standard_normal((batch, 8)).astype(np.float32)}


# -- (a) ONNX files ----------------------------------------------------------------------------------------------
def _external_model(tmp_path, location: str) -> str:
    """The mlp with W1 stored as external data at ``location`` (fuzz onnx: ["external", i, location, ...])."""
    model = make_mlp_model()
    w1 = next(t for t in model.graph.initializer if t.name == "W1")
    w1.ClearField("raw_data")
    w1.ClearField("float_data")
    w1.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "512")):
        entry = w1.external_data.add()
        entry.key, entry.value = key, value
    return _save(model, tmp_path / "model.onnx")


@pytest.mark.parametrize("location", ["/etc/passwd", "../../etc/passwd", "sub/../../outside.bin",
                                      "/proc/self/environ"])
def test_external_data_outside_the_model_folder_is_refused_unread(tmp_path, location):
    """fuzz onnx: ["external", 59, "/proc/self/environ", 0, 0, false] gave onnx's ValidationError (a traceback);
    relative escapes were stat'ed outside the folder. Now refused before anything outside is touched."""
    path = _external_model(tmp_path, location)
    opened = []
    sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" and location.strip("./")
                     in str(args[0]) else None)
    with pytest.raises(ModelLoadError, match="must be a file in the model's folder") as info:
        greenrt.InferenceSession(path)
    assert "'W1'" in str(info.value) and location in str(info.value)
    assert not opened


def test_external_data_link_out_of_the_folder_is_refused(tmp_path):
    """A file beside the model that is a link to one outside it reads as outside."""
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.random.default_rng(0).standard_normal(128).astype(np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside, folder / "w1.bin")
    with pytest.raises(ModelLoadError, match="must be a file in the model's folder"):
        greenrt.InferenceSession(_external_model(folder, "w1.bin"))


def test_external_data_name_too_long(tmp_path):
    """fuzz onnx: ["external", 31, "a" * 300, 0, null, false] gave OSError: [Errno 36] File name too long."""
    with pytest.raises(ModelLoadError, match="external data file"):
        greenrt.InferenceSession(_external_model(tmp_path, "a" * 300))


@pytest.mark.parametrize("size", [11, 79, 0])
def test_initializer_with_too_few_bytes(tmp_path, size):
    """fuzz onnx: ["init_raw", 0, 79] gave ValueError: buffer size must be a multiple of element size (from numpy,
    deep in the compile)."""
    model = make_mlp_model()
    w1 = next(t for t in model.graph.initializer if t.name == "W1")
    w1.raw_data = bytes(range(size))
    with pytest.raises(ModelLoadError, match=r"tensor 'W1' \(float \[16, 8\]\): %d bytes of data, its dims need 512"
                       % size):
        greenrt.InferenceSession(_save(model, tmp_path / "m.onnx"))


def test_initializer_dims_that_do_not_fit_its_values(tmp_path):
    """fuzz onnx: ["init_type", ...] / ["init_dims", ...]: values that do not fill the dims."""
    model = make_mlp_model()
    b1 = next(t for t in model.graph.initializer if t.name == "b1")
    b1.CopyFrom(helper.make_tensor("b1", TensorProto.FLOAT, [16], np.arange(16, dtype=np.float32) + 0.5))
    b1.dims[0] = 17  # float_data holds 16 values
    with pytest.raises(ModelLoadError, match=r"tensor 'b1' \(float \[17\]\): 16 values, its dims need 17"):
        greenrt.InferenceSession(_save(model, tmp_path / "m.onnx"))


def test_node_name_that_is_not_utf8(tmp_path):
    """fuzz onnx bytes: ["set", 99, 251] turned node 'fc2' into b'f\\xfb2'; the build then failed writing the
    engine header (TypeError: bytes is not JSON-serializable)."""
    data = make_mlp_model().SerializeToString()
    index = data.index(b"fc2")
    path = tmp_path / "m.onnx"
    path.write_bytes(data[:index + 1] + b"\xfb" + data[index + 2:])
    with pytest.raises(ModelLoadError, match="not valid UTF-8"):
        greenrt.InferenceSession(path)
    with pytest.raises(ModelLoadError, match="not valid UTF-8"):
        build_engine(path, tmp_path / "m.engine", BuildConfig(device="cpu", opt_level=0), log=lambda *a: None)


def _mlp_with(tmp_path, edit) -> str:
    model = make_mlp_model()
    edit(model.graph)
    return _save(model, tmp_path / "m.onnx")


@pytest.mark.parametrize("edit, message", [
    (lambda g: g.node[1].input.__setitem__(0, "ghost1"),  # ["input", 1, 0, "dangling", 1]
     r"node 'relu1' \(Relu\) reads 'ghost1', which no node, graph input or initializer produces"),
    (lambda g: g.node[1].input.__setitem__(0, "m"),  # ["input", 1, 0, "cycle", 1]: an output of a later node
     r"node 'relu1' \(Relu\) reads 'm' before the node that produces it"),
    (lambda g: g.node[2].output.__setitem__(0, "h"),  # ["output", 2, 0, "dup", ...]
     r"node 'fc2' \(MatMul\) produces 'h', already produced by node 'fc1'"),
    (lambda g: g.output[0].__setattr__("name", "nowhere"),  # ["output", 4, 0, "rename", ...] on the last node
     r"graph output 'nowhere' is produced by no node"),
    (lambda g: g.output.append(helper.make_tensor_value_info("", TensorProto.FLOAT, [2])),  # ["graph_io", ...]
     r"graph output #1 has no name"),  # was KeyError: '' in the executor
    (lambda g: g.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])),
     r"graph output 'probs' is listed 2 times"),  # onnx-ir renamed the second to '': the same KeyError
])
def test_broken_edges_are_named(tmp_path, edit, message):
    """fuzz onnx: dangling and cyclic edges gave 'internal error ... please report it' (greenrt blaming itself for
    the file's problem); a graph output nothing produced gave KeyError in the executor."""
    with pytest.raises(ModelLoadError, match=message) as info:
        greenrt.InferenceSession(_mlp_with(tmp_path, edit))
    assert "internal error" not in str(info.value)


def test_broken_edge_in_a_subgraph(tmp_path):
    """fuzz onnx (control base): ["input", 6, 0, "dangling", 1] inside an If branch gave an ExecutionError at run
    time only."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    then_g = helper.make_graph([helper.make_node("Relu", ["ghost1"], ["t"], name="then_relu")], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"], name="else_neg")], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 4])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
         helper.make_node("Greater", ["s", "zero"], ["c"], name="positive"),
         helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)],
        "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.float32(0.0).reshape(()), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelLoadError, match=r"subgraph 'then_branch': node 'then_relu' \(Relu\) reads 'ghost1'"):
        greenrt.InferenceSession(_save(model, tmp_path / "m.onnx"))


def test_huge_static_input_builds_without_random_checks(tmp_path, rng):
    """fuzz onnx: ["dim", 28, 14, 8382438705810879488] (a static input dim of 8e18) gave ValueError: array is too
    big, from the build's random inputs. The build now skips that check and says why."""
    model = make_mlp_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2**40
    path = _save(model, tmp_path / "m.onnx")
    header = build_engine(path, tmp_path / "m.engine", BuildConfig(device="cpu", opt_level=0), log=lambda *a: None)
    reasons = " ".join(s["reason"] for s in header["report"]["skipped_checks"])
    assert "too many to draw random ones" in reasons and "'x'" in reasons


# -- (b) engine files --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine_bytes(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("engine")
    onnx.save(make_mlp_model(), folder / "m.onnx")
    config = BuildConfig(device="cpu", opt_level=0, profiles=[parse_profile("x:1x8/2x8/4x8")])
    build_engine(folder / "m.onnx", folder / "m.engine", config, log=lambda *a: None)
    return (folder / "m.engine").read_bytes()


def _tamper(data: bytes, path, edit_header=None, edit_weights=None) -> str:
    """The engine with its header (a dict) and its safetensors header edited, both checksums recomputed: a
    deliberate tamper, as the fuzz engine campaign makes them."""
    (n,) = struct.unpack("<Q", data[8:16])
    header, payload = json.loads(data[16:16 + n]), data[16 + n:]
    if edit_weights is not None:
        (m,) = struct.unpack("<Q", payload[:8])
        st = json.loads(payload[8:8 + m])
        edit_weights(st)
        raw = json.dumps(st).encode()
        raw += b" " * (-len(raw) % 8)
        payload = struct.pack("<Q", len(raw)) + raw + payload[8 + m:]
    if edit_header is not None:
        edit_header(header)
    header["weights_sha256"] = hashlib.sha256(payload).hexdigest()
    raw = encode_header(header)
    path.write_bytes(MAGIC + struct.pack("<Q", len(raw)) + raw + payload)
    return str(path)


def _set(path, value):
    def edit(doc):
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set(["config"], None), "'config' is NoneType, expected dict"),  # AttributeError in the session
    (_set(["profiles", 0, "x", "opt"], "/etc/passwd"), r"profiles\[0\]: input 'x': opt '/etc/passwd'"),
    (lambda h: h["profiles"].append("0.0.0"), r"profiles\[1\]: expected an object"),  # AttributeError
    (lambda h: h["profiles"][0]["x"].pop("opt"), r"profiles\[0\]: input 'x': expected min, opt and max"),  # KeyError
    (_set(["plan", "outputs", 0, "name"], {}), r"plan.outputs\[0\].name: expected a string"),  # TypeError, unhashable
    (_set(["plan", "steps", 0, "outputs"], {"fp16": [0]}), r"plan.steps\[0\].outputs: expected a list"),  # KeyError
    (_set(["plan", "steps", 0, "op_type"], [None, 3]), r"plan.steps\[0\].op_type: expected a string"),  # registry
    (_set(["plan", "steps", 1, "tactic"], {"Relu": False}), r"plan.steps\[1\].tactic: expected a string"),
    (lambda h: h["plan"]["constants"].__setitem__("0.0.0", []), r"plan.constants\['0.0.0'\]: expected a weight"),
    (_set(["plan", "constants", "b2"], "nope"), r"plan.constants\['b2'\]: weight 'nope' is not in the engine"),
    (_set(["plan", "steps", 2, "outputs", 0], "elsewhere"), r"plan.outputs: \['probs'\] are produced by no step"),
    (_set(["plan", "steps", 1, "inputs", 0], "later"), r"plan.steps\[1\] .*reads \['later'\], which nothing before"),
    # 10-minute run: ["add", ["plan", "subplans", 3, "inputs"], "/etc/passwd", null] gave AttributeError
    (lambda h: h["plan"]["inputs"].append(None), r"plan.inputs\[1\]: expected an object, got None"),
])
def test_tampered_header_is_refused_naming_the_field(tmp_path, engine_bytes, edit, message):
    """fuzz engine (header family, checksums recomputed): each edit gave an AttributeError, KeyError or TypeError
    from the session, the executor or the op registry (the minimized recipes, e.g. ["set", ["config"], null])."""
    path = _tamper(engine_bytes, tmp_path / "t.engine", edit_header=edit)
    with pytest.raises(EngineFileError, match=message):
        greenrt.InferenceSession(path)


def test_renamed_weight_is_refused(tmp_path, engine_bytes):
    """fuzz engine (payload family): ["st_rename", "one", "inductor"] gave KeyError in the executor."""
    def rename(st):
        st["renamed"] = st.pop("b2")
    path = _tamper(engine_bytes, tmp_path / "t.engine", edit_weights=rename)
    with pytest.raises(EngineFileError, match=r"plan.constants\['b2'\]: weight 'b2' is not in the engine's weights"):
        greenrt.InferenceSession(path)


def test_untampered_engine_still_runs(tmp_path, engine_bytes, rng):
    """The checks refuse nothing a build writes: the same engine, checksums recomputed, still runs."""
    session = greenrt.InferenceSession(_tamper(engine_bytes, tmp_path / "t.engine"))
    (probs,) = session.run(None, _feeds(rng))
    assert probs.shape == (2, 4) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


# -- (c) run-time inputs -----------------------------------------------------------------------------------------
def test_huge_view_with_a_wrong_fixed_dim_is_refused_before_copying(tmp_path):
    """fuzz inputs: a (3, 2^40) zero-stride float32 view for x[N, 8] gave MemoryError (Unable to allocate 12.0 TiB)
    from the copy to torch, before the shape was checked."""
    session = greenrt.InferenceSession(_save(make_mlp_model(), tmp_path / "m.onnx"))
    x = np.broadcast_to(np.float32(1.5), (3, 2**40))
    with pytest.raises(InvalidInputError, match=r"dimension 1 must be 8"):
        session.run(None, {"x": x})


def test_huge_batch_outside_the_profile_is_refused_before_copying(tmp_path, engine_bytes):
    """fuzz inputs (mlp.engine, profile 1..4): a batch of 2^31 as a zero-stride view (numpy and torch) gave a
    MemoryError from the copy; the profile check now comes first."""
    path = tmp_path / "m.engine"
    path.write_bytes(engine_bytes)
    session = greenrt.InferenceSession(path)
    for x in (np.broadcast_to(np.float32(0.5), (2**31, 8)), torch.ones(1, 8).expand(2**31, 8)):
        with pytest.raises(InvalidInputError, match="fit none of the engine's optimization profiles"):
            session.run(None, {"x": x})


# -- (d) calibration data ----------------------------------------------------------------------------------------
def _npz(rng) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=rng.standard_normal((3, 8)).astype(np.float32))
    return buf.getvalue()


@pytest.mark.parametrize("damage", ["truncate", "crc", "not-zip"])
def test_damaged_npz(tmp_path, mlp_path, rng, damage):
    """fuzz calibration: truncated or bit-flipped .npz files gave zipfile.BadZipFile / EOFError (e.g. "Bad CRC-32
    for file 'x.npy'") from np.load."""
    data = _npz(rng)
    damaged = {"truncate": data[:len(data) // 2], "not-zip": b"PK" + data[40:],
               "crc": data[:120] + bytes([data[120] ^ 0x20]) + data[121:]}[damage]
    path = tmp_path / "calib.npz"
    path.write_bytes(damaged)
    with pytest.raises(CalibrationDataError, match="calib.npz: not a readable .npz"):
        source = open_calibration_data(str(path), ["x"])
        calibrate(mlp_path, source)


def test_calibration_callable_that_raises(mlp_path):
    """fuzz calibration: --calib json:dumps (a callable that needs an argument) gave TypeError from the user's
    function as a greenrt traceback."""
    source = open_calibration_data("json:dumps", ["x"])
    with pytest.raises(CalibrationDataError, match=r"--calib json:dumps: calling it raised TypeError"):
        calibrate(mlp_path, source)


def test_reversed_batch_of_one(tmp_path, rng):
    """fuzz inputs (conv.engine, layout "reversed"): x[::-1] of a batch of 1 keeps a negative stride that numpy calls
    contiguous; torch.from_numpy refused it with a ValueError escaping session.run. It runs, as the copy would."""
    session = greenrt.InferenceSession(_save(make_mlp_model(batch=1), tmp_path / "m.onnx"))
    x = rng.standard_normal((1, 8)).astype(np.float32)
    (want,) = session.run(None, {"x": x.copy()})
    (got,) = session.run(None, {"x": x[::-1]})
    assert x[::-1].strides[0] < 0 and np.array_equal(got, want)


def test_npz_with_a_damaged_zip_flag(tmp_path, mlp_path, rng):
    """fuzz calibration (10-minute run): a bit flipped in the zip directory's flags made zipfile raise
    NotImplementedError("strong encryption (flag bit 6)") out of np.load."""
    data = bytearray(_npz(rng))
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x40  # general purpose flags: bit 6, strong encryption
    path = tmp_path / "calib.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(CalibrationDataError, match="NotImplementedError"):
        calibrate(mlp_path, open_calibration_data(str(path), ["x"]))


@pytest.mark.parametrize("field, value, message", [
    ("samples", [], "its samples"),  # int([]): TypeError
    ("ranges", 10**400, "has no valid range"),  # np.isfinite: TypeError on an int too big for a float
    ("channel_amax", 10**400, "are not lists of finite numbers"),
    ("stats", ["x"], "or stats are not what a calibration writes"),
])
def test_tampered_calibration_cache(tmp_path, mlp_path, rng, field, value, message):
    """fuzz calibration (10-minute run, tampered caches): ["tamper", [[15, ""], [0, {}], [150, []]]] gave
    TypeError from int() in load_cache; a number of 2e34 written as an integer gave TypeError from np.isfinite."""
    from greenrt.errors import GreenrtError

    data = tmp_path / "calib.npz"
    data.write_bytes(_npz(rng))
    cache = tmp_path / "model.calib.json"
    calibrate(mlp_path, open_calibration_data(str(data), ["x"]), cache=cache)
    doc = json.loads(cache.read_text())
    if field in ("samples", "stats"):
        doc[field] = value if field == "samples" else {name: value for name in doc["stats"]}
    else:
        table = doc[field]
        name = next(iter(table))
        table[name] = value if field == "ranges" else [value]
    cache.write_text(json.dumps(doc))
    with pytest.raises(GreenrtError, match=message):
        calibrate(mlp_path, None, cache=cache)


def test_calibration_cache_range_written_as_a_big_integer(tmp_path, mlp_path, rng):
    """A range of 2e34 written as a JSON integer is a finite number: np.isfinite raised TypeError on it (an int
    beyond int64); it loads as that float now."""
    data = tmp_path / "calib.npz"
    data.write_bytes(_npz(rng))
    cache = tmp_path / "model.calib.json"
    calibrate(mlp_path, open_calibration_data(str(data), ["x"]), cache=cache)
    doc = json.loads(cache.read_text())
    name = next(iter(doc["ranges"]))
    doc["ranges"][name] = 20493502437550128518121867878334464
    cache.write_text(json.dumps(doc))
    assert calibrate(mlp_path, None, cache=cache).ranges[name] == 2.0493502437550128e34
