"""The one-file engine format: round trip, determinism, and every way a file can be wrong."""

from __future__ import annotations

import json
import math
import os
import struct
import warnings

import ml_dtypes
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.errors import GreenrtError, ModelLoadError
from greenrt.onnx.importer import load_model
from greenrt.plan import engine_file as ef
from greenrt.plan.compile import compile_model
from greenrt.plan.engine_file import (
    EngineFileError,
    EngineMismatchError,
    EngineMismatchWarning,
    inspect_engine_header,
    read_engine,
    write_engine,
)
from greenrt.plan.plan import Plan

BUILD_COMMAND = "greenrt build model.onnx -o model.engine --device cuda --fp16"


def conv_relu_proto(seed: int = 0) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    w = numpy_helper.from_array(r.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(r.standard_normal(4).astype(np.float32), "B")
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def extra_weights(seed: int = 1) -> dict:
    """Weights of every dtype an engine must carry, none of them zeros."""
    r = np.random.default_rng(seed)
    f32 = r.standard_normal((5, 6)).astype(np.float32)
    readonly = r.standard_normal(7).astype(np.float32)
    readonly.flags.writeable = False
    return {
        "f16": r.standard_normal((3, 4)).astype(np.float16),
        "f64": r.standard_normal(5),
        "bf16_np": r.standard_normal((2, 3)).astype(ml_dtypes.bfloat16),
        "bf16_torch": torch.from_numpy(r.standard_normal((4, 2)).astype(np.float32)).to(torch.bfloat16),
        "f8": torch.from_numpy(r.standard_normal(6).astype(np.float32)).to(torch.float8_e4m3fn),
        "i64": r.integers(-2**40, 2**40, size=(3,), dtype=np.int64),
        "i32": r.integers(-1000, 1000, size=(2, 2), dtype=np.int32),
        "u8": r.integers(1, 255, size=(9,), dtype=np.uint8),
        "bool": r.random(8) > 0.5,
        "scalar": np.array(r.standard_normal(), dtype=np.float32),  # 0-d stays 0-d
        "transposed": f32.T,  # not contiguous
        "view_a": f32[:2],  # two views of one buffer
        "view_b": f32[2:],
        "readonly": readonly,
        "big_endian": r.standard_normal(4).astype(">f4"),
    }


def as_torch(value) -> torch.Tensor:
    from greenrt.onnx.dtypes import numpy_to_torch

    if isinstance(value, torch.Tensor):
        return value
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    return numpy_to_torch(np.array(value))


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and bytes (works for float8, whose == torch does not implement)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


@pytest.fixture
def built():
    plan, weights = compile_model(load_model(conv_relu_proto()))
    return plan, {**weights, **extra_weights()}


def config_for(tmp_path) -> dict:
    return {"model": str(tmp_path / "model.onnx"), "build_command": BUILD_COMMAND, "precision": "fp32",
            "channels_last": False, "workspace": None}


PROFILES = [{"x": {"min": [1, 3, 8, 8], "opt": [2, 3, 8, 8], "max": [4, 3, 8, 8]}}]  # Profile.to_json()
REPORT = {"passes": [{"name": "fuse_conv", "rule": "Conv+Relu", "count": 1}], "nodes": {"before": 2, "after": 1}}


def write(path, plan, weights, tmp_path, **kw) -> dict:
    args = dict(device="cpu", config=config_for(tmp_path), profiles=PROFILES, report=REPORT)
    args.update(kw)
    return write_engine(path, plan, weights, **args)


def split(path) -> tuple[dict, bytes]:
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[8:16])
    return json.loads(data[16:16 + n]), data[16 + n:]


def rewrite_header(path, edit, *, fix_checksum: bool = True) -> None:
    """Edit the header of an engine in place (recomputing its checksum unless told not to)."""
    header, payload = split(path)
    edit(header)
    raw = ef.encode_header(header) if fix_checksum else ef._dumps(header).encode()
    with open(path, "wb") as f:
        f.write(ef.MAGIC + struct.pack("<Q", len(raw)) + raw + payload)


@pytest.fixture
def engine(tmp_path, built):
    plan, weights = built
    path = tmp_path / "model.engine"
    write(path, plan, weights, tmp_path)
    return path


# ------------------------------------------------------------------------------------------------------ round trip


def test_round_trip(tmp_path, built):
    plan, weights = built
    path = tmp_path / "model.engine"
    header = write(path, plan, weights, tmp_path)
    engine = read_engine(path)

    assert engine.path == path
    assert engine.header == header
    assert engine.plan.to_json() == plan.to_json()
    assert engine.header["plan"] == plan.to_json()
    assert engine.header["config"] == config_for(tmp_path)
    assert engine.header["profiles"] == PROFILES
    assert engine.header["report"] == REPORT
    assert engine.header["format_version"] == 1
    assert engine.header["versions"]["greenrt"] == greenrt.__version__
    assert engine.header["versions"]["torch"] == torch.__version__
    assert engine.header["versions"]["cuda"] == torch.version.cuda
    assert engine.header["device"]["type"] == "cpu" and engine.header["device"]["capability"] is None

    assert set(engine.weights) == set(weights)
    for key, value in weights.items():
        expected = as_torch(value)
        got = engine.weights[key]
        assert got.dtype == expected.dtype, key
        assert got.shape == expected.shape, key
        assert same_bits(got, expected), key
    assert engine.weights["bf16_np"].dtype == torch.bfloat16
    assert engine.weights["i64"].dtype == torch.int64
    assert engine.weights["f16"].dtype == torch.float16
    assert engine.weights["scalar"].dim() == 0
    # the compiled model's own weights, bit for bit
    w = numpy_helper.to_array(conv_relu_proto().graph.initializer[0])
    assert np.array_equal(engine.weights[plan.constants["W"]].numpy(), w)
    assert float(engine.weights[plan.constants["W"]].abs().sum()) > 0


def test_plan_float_attrs_survive(tmp_path, built):
    plan, weights = built
    plan.steps[-1].attrs.update({"hi": math.inf, "lo": -math.inf, "tiny": 1e-45, "tuple": (1, 2)})
    path = tmp_path / "model.engine"
    write(path, plan, weights, tmp_path)
    attrs = read_engine(path).plan.steps[-1].attrs
    assert attrs["hi"] == math.inf and attrs["lo"] == -math.inf and attrs["tiny"] == 1e-45
    assert attrs["tuple"] == [1, 2]


def test_empty_weights_and_numpy_scalars_in_report(tmp_path, built):
    plan, _ = built
    plan = Plan(inputs=plan.inputs, outputs=plan.inputs, steps=[], constants={}, opsets=plan.opsets)  # no weights
    path = tmp_path / "model.engine"
    header = write(path, plan, {}, tmp_path, report={"count": np.int64(3), "err": np.float32(0.5)})
    engine = read_engine(path)
    assert engine.weights == {}
    assert engine.header["report"] == {"count": 3, "err": 0.5} == header["report"]


def test_byte_identical_rebuild(tmp_path, built):
    plan, weights = built
    a, b = tmp_path / "a.engine", tmp_path / "b.engine"
    write(a, plan, weights, tmp_path)
    # a fresh compile of the same model, weights inserted in another order
    plan2, weights2 = compile_model(load_model(conv_relu_proto()))
    extra = extra_weights()
    write(b, plan2, {**dict(reversed(list(extra.items()))), **weights2}, tmp_path)
    assert a.read_bytes() == b.read_bytes()
    write(a, plan, weights, tmp_path)  # overwriting gives the same bytes again
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.engine", "b.engine"]  # no temp files left


def test_layout(engine):
    data = engine.read_bytes()
    assert data[:8] == b"GRTENGN1"
    (n,) = struct.unpack("<Q", data[8:16])
    text = data[16:16 + n].decode("utf-8")
    header = json.loads(text)
    assert text == json.dumps(header, sort_keys=True, separators=(",", ":"))
    assert header["header_sha256"] == ef.header_checksum(header)
    import hashlib

    import safetensors.torch

    assert hashlib.sha256(data[16 + n:]).hexdigest() == header["weights_sha256"]
    assert "W" in safetensors.torch.load(data[16 + n:])


def test_inspect_engine_header(engine):
    header = inspect_engine_header(engine)
    assert header == read_engine(engine).header
    assert header["plan"]["steps"][0]["op_type"] == "Conv"


def test_loading_runs_no_pickle(engine, monkeypatch):
    import pickle

    def boom(*a, **k):
        raise AssertionError("engine loading must not unpickle")

    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    assert read_engine(engine).weights


# ------------------------------------------------------------------------------------------------------ bad files


def test_missing_file(tmp_path):
    with pytest.raises(EngineFileError, match="no such engine file"):
        read_engine(tmp_path / "nope.engine")
    with pytest.raises(EngineFileError):
        inspect_engine_header(tmp_path / "nope.engine")


@pytest.mark.parametrize("content", [b"", b"GRT", b"GRTENGN2" + bytes(100), None])
def test_not_an_engine(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(conv_relu_proto().SerializeToString() if content is None else content)
    for fn in (read_engine, inspect_engine_header):
        with pytest.raises(EngineFileError, match="not a greenrt engine file") as info:
            fn(path)
        assert str(path) in str(info.value)
        assert "greenrt run" in str(info.value)
    assert issubclass(EngineFileError, ModelLoadError) and issubclass(EngineFileError, GreenrtError)


def test_truncated(engine):
    data = engine.read_bytes()
    (n,) = struct.unpack("<Q", data[8:16])
    header_cuts = [9, 15, 16, 17, 16 + n // 2, 16 + n - 1]
    weight_cuts = [16 + n, 16 + n + 1, 16 + n + 9, 16 + n + (len(data) - 16 - n) // 2, len(data) - 1]
    for cut in header_cuts + weight_cuts:
        engine.write_bytes(data[:cut])
        expected = "truncated" if cut in header_cuts else r"corrupted or truncated weights \(checksum mismatch\)"
        with pytest.raises(EngineFileError, match=expected) as info:
            read_engine(engine)
        assert str(engine) in str(info.value), cut
        if cut in header_cuts:
            with pytest.raises(EngineFileError, match="truncated"):
                inspect_engine_header(engine)
    engine.write_bytes(data)
    read_engine(engine)


def test_flipped_byte_in_weights(engine):
    data = bytearray(engine.read_bytes())
    (n,) = struct.unpack("<Q", data[8:16])
    for pos in (16 + n + 3, len(data) - 5):  # in the safetensors header, in the tensor data
        bad = bytearray(data)
        bad[pos] ^= 0x01
        engine.write_bytes(bytes(bad))
        with pytest.raises(EngineFileError, match=r"corrupted or truncated weights \(checksum mismatch\)"):
            read_engine(engine)
        inspect_engine_header(engine)  # the header alone is intact


def test_flipped_byte_in_header(engine):
    data = engine.read_bytes()
    (n,) = struct.unpack("<Q", data[8:16])
    text = data[16:16 + n]
    # inside a string (JSON still parses, only the checksum catches it), and in the JSON structure itself
    inside_string = text.index(b'"relu"') + 2
    structural = text.index(b'{')
    for pos, expected in ((inside_string, r"corrupted header \(checksum mismatch\)"),
                          (structural, "corrupted header")):
        bad = bytearray(data)
        bad[16 + pos] ^= 0x01
        engine.write_bytes(bytes(bad))
        for fn in (read_engine, inspect_engine_header):
            with pytest.raises(EngineFileError, match=expected):
                fn(engine)
    # a flipped bit in the header length: truncated or corrupted, never loaded
    bad = bytearray(data)
    bad[8] ^= 0x04
    engine.write_bytes(bytes(bad))
    with pytest.raises(EngineFileError, match="truncated|corrupted"):
        read_engine(engine)


def test_checksum_field_tampered(engine):
    rewrite_header(engine, lambda h: h["report"].update(nodes={"before": 2, "after": 0}), fix_checksum=False)
    with pytest.raises(EngineFileError, match=r"corrupted header \(checksum mismatch\)"):
        read_engine(engine)


@pytest.mark.parametrize("fix_checksum", [True, False])
def test_wrong_format_version(engine, fix_checksum):
    rewrite_header(engine, lambda h: h.update(format_version=2), fix_checksum=fix_checksum)
    for fn in (read_engine, inspect_engine_header):
        with pytest.raises(EngineFileError, match="format version") as info:
            fn(engine)
        message = str(info.value)
        assert "2" in message and "format version 1" in message
        assert BUILD_COMMAND in message


# ------------------------------------------------------------------------------------------------ compatibility


def claim_h100_torch_2_11(header):
    header["versions"]["torch"] = "2.11.0+cu128"
    header["device"] = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0]}


def fake_cuda(monkeypatch, name="NVIDIA H100 80GB HBM3", capability=(9, 0)):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: capability)


def here_torch() -> str:
    return ".".join(torch.__version__.split("+")[0].split(".")[:2])


def test_cuda_engine_on_cpu_machine_is_refused(engine, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rewrite_header(engine, claim_h100_torch_2_11)
    with pytest.raises(EngineMismatchError) as info:
        read_engine(engine)
    message = str(info.value)
    assert "built with torch 2.11 on NVIDIA H100 80GB HBM3 (sm_90)" in message
    assert f"this machine has torch {here_torch()} on CPU" in message
    assert BUILD_COMMAND in message
    assert str(engine.parent / "model.onnx") in message
    assert str(engine) in message
    assert not isinstance(info.value, ModelLoadError) and isinstance(info.value, GreenrtError)


def test_allow_mismatch_warns_and_loads(engine, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    expected = read_engine(engine)
    rewrite_header(engine, claim_h100_torch_2_11)
    with pytest.warns(EngineMismatchWarning, match="torch 2.11 on NVIDIA H100") as record:
        loaded = read_engine(engine, device="cpu", allow_mismatch=True)
    assert BUILD_COMMAND in str(record[0].message)
    assert issubclass(EngineMismatchWarning, UserWarning)
    assert loaded.plan.to_json() == expected.plan.to_json()
    assert all(same_bits(loaded.weights[k], expected.weights[k]) for k in expected.weights)


def test_greenrt_version_mismatch(engine, monkeypatch):
    real = ef.current_versions()
    monkeypatch.setattr(ef, "current_versions", lambda: {**real, "greenrt": "9.9.9"})
    with pytest.raises(EngineMismatchError, match="greenrt version") as info:
        read_engine(engine)
    assert f"greenrt {greenrt.__version__}" in str(info.value) and "greenrt 9.9.9" in str(info.value)
    assert BUILD_COMMAND in str(info.value)


def test_torch_version_mismatch_by_monkeypatch(engine, monkeypatch):
    real = ef.current_versions()
    monkeypatch.setattr(ef, "current_versions", lambda: {**real, "torch": "3.1.0"})
    with pytest.raises(EngineMismatchError) as info:
        read_engine(engine)
    assert f"built with torch {here_torch()} on CPU" in str(info.value)
    assert "this machine has torch 3.1 on CPU" in str(info.value)
    # a different patch release of the same torch is fine
    monkeypatch.setattr(ef, "current_versions", lambda: {**real, "torch": here_torch() + ".99"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_engine(engine)


def test_cpu_engine_asked_to_run_on_cuda(engine, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineMismatchError, match="no CUDA device"):
        read_engine(engine, device="cuda")
    fake_cuda(monkeypatch)
    with pytest.raises(EngineMismatchError, match="built for cpu, asked to run on cuda"):
        read_engine(engine, device="cuda")
    read_engine(engine, device="cpu")


def test_cuda_engine_on_matching_and_other_gpus(tmp_path, built, monkeypatch):
    plan, weights = built
    fake_cuda(monkeypatch)
    path = tmp_path / "model.engine"
    header = write(path, plan, weights, tmp_path, device="cuda")
    assert header["device"] == {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_engine(path).header == header  # same GPU: loads quietly
        read_engine(path, device="cuda:0")
    fake_cuda(monkeypatch, name="NVIDIA A100-SXM4-80GB", capability=(8, 0))
    with pytest.raises(EngineMismatchError, match="GPU model; compute capability") as info:
        read_engine(path)
    assert "NVIDIA H100 80GB HBM3 (sm_90)" in str(info.value)
    assert "NVIDIA A100-SXM4-80GB (sm_80)" in str(info.value)
    with pytest.raises(EngineMismatchError, match="built for cuda, asked to run on cpu"):
        read_engine(path, device="cpu")


def test_cuda_engine_needs_a_gpu_to_build(tmp_path, built, monkeypatch):
    plan, weights = built
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GreenrtError, match="no CUDA GPU"):
        write(tmp_path / "model.engine", plan, weights, tmp_path, device="cuda")
    assert list(tmp_path.iterdir()) == []


def test_rebuild_hint_without_build_command(tmp_path, built, monkeypatch):
    plan, weights = built
    path = tmp_path / "model.engine"
    write(path, plan, weights, tmp_path, config={"model": "resnet.onnx"})
    real = ef.current_versions()
    monkeypatch.setattr(ef, "current_versions", lambda: {**real, "torch": "1.0"})
    with pytest.raises(EngineMismatchError, match="greenrt build resnet.onnx"):
        read_engine(path)


# ------------------------------------------------------------------------------------------------- atomic writes


def test_failed_write_leaves_old_file_and_no_temp(engine, tmp_path, built, monkeypatch):
    plan, weights = built
    before = engine.read_bytes()

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ef.os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        write(engine, plan, {**weights, "W": weights["W"] + 1}, tmp_path)
    monkeypatch.undo()
    assert engine.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.engine"]


def test_unstorable_weights_are_refused_before_writing(tmp_path, built):
    plan, weights = built
    path = tmp_path / "model.engine"
    for bad in ({"s": np.array(["a"], dtype=object)}, {"c": np.ones(2, dtype=np.complex128)},
                {"x": [1.0, 2.0]}, {1: np.ones(2, np.float32)}):
        with pytest.raises(GreenrtError):
            write(path, plan, {**weights, **bad}, tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(GreenrtError, match="cannot write"):
        write(tmp_path / "no" / "such" / "dir.engine", plan, weights, tmp_path)


def test_written_file_has_normal_permissions(engine):
    umask = os.umask(0)
    os.umask(umask)
    assert engine.stat().st_mode & 0o777 == 0o666 & ~umask


def test_plan_from_engine_is_a_plan(engine):
    assert isinstance(read_engine(engine).plan, Plan)
