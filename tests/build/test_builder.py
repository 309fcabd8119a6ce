"""greenrt build -> engine -> InferenceSession: correctness vs onnxruntime, passes fired, profiles, determinism,
workspace limit, and an engine that loads and runs without onnx installed."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build import BuildConfig, build_engine, parse_size
from greenrt.plan.profiles import parse_profile
from greenrt.tools.compare import run_onnxruntime

R = np.random.default_rng(3)


def _cnn(path):
    """Conv-BN-Relu -> Conv + residual Add -> Relu -> GlobalAveragePool -> Flatten -> Gemm, dynamic batch."""
    def init(name, shape, positive=False):
        a = R.standard_normal(shape).astype(np.float32) * 0.3
        return numpy_helper.from_array(np.abs(a) + 0.5 if positive else a, name)

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn"], name="bn1"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["res"], name="residual"),
        helper.make_node("Relu", ["res"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1, name="fc"),
    ]
    inits = [init("w1", [8, 3, 3, 3]), init("g", [8]), init("b", [8]), init("m", [8]), init("v", [8], True),
             init("w2", [8, 8, 3, 3]), init("b2", [8]), init("fc", [10, 8]), init("fcb", [10])]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return _cnn(tmp_path_factory.mktemp("cnn") / "cnn.onnx")


@pytest.fixture(scope="module")
def engine(cnn, tmp_path_factory):
    out = tmp_path_factory.mktemp("eng") / "cnn.engine"
    config = BuildConfig(device="cpu", profiles=[parse_profile("x:1x3x16x16/4x3x16x16/8x3x16x16")])
    header = build_engine(cnn, out, config, log=lambda m: None)
    return out, header


def test_engine_matches_onnxruntime_and_passes_fired(cnn, engine):
    path, header = engine
    counts = {p["name"]: p["count"] for p in header["report"]["passes"]}
    assert counts["fold_batchnorm"] == 1 and counts["fuse_conv"] == 2 and counts["fuse_matmul"] == 1
    sess = greenrt.InferenceSession(path)
    ops = [s.op_type for s in sess.plan.steps]
    assert ops.count("FusedConv") == 2 and "BatchNormalization" not in ops and "Relu" not in ops
    for n in (1, 5, 8):
        x = R.standard_normal((n, 3, 16, 16)).astype(np.float32)
        ours = sess.run(None, {"x": x})[0]
        ref = run_onnxruntime(str(cnn), {"x": x})[0]
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_greenrt_load_runs_the_engine_like_a_session(cnn, engine):
    path, _ = engine
    sess = greenrt.load(path)
    assert sess.header is not None and sess.device.type == "cpu"
    x = R.standard_normal((3, 3, 16, 16)).astype(np.float32)
    ref = run_onnxruntime(str(cnn), {"x": x})[0]
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_shape_outside_every_profile_is_refused(engine):
    sess = greenrt.InferenceSession(engine[0])
    with pytest.raises(greenrt.InvalidInputError, match=r"'x' has shape 9x3x16x16, outside 1x3x16x16 \.\. 8x3x16x16"):
        sess.run(None, {"x": R.standard_normal((9, 3, 16, 16)).astype(np.float32)})


def test_same_model_and_config_build_byte_identical_engines(cnn, tmp_path):
    """Tactics are timed (default --opt-level), so the choices are only reproducible from a timing cache: once it is
    warm, the same model and config give the same bytes (the build's wall-clock figures stay out of the file)."""
    config = BuildConfig(device="cpu", profiles=[parse_profile("x:1x3x16x16/4x3x16x16/8x3x16x16")],
                         timing_cache=str(tmp_path / "timing.json"))
    build_engine(cnn, tmp_path / "warm-up.engine", config, log=lambda m: None)
    a, b = tmp_path / "a.engine", tmp_path / "b.engine"
    build_engine(cnn, a, config, log=lambda m: None)
    build_engine(cnn, b, config, log=lambda m: None)
    assert a.read_bytes() == b.read_bytes()


def test_memory_report_shows_reuse(engine):
    mem = engine[1]["report"]["memory"][0]
    assert 0 < mem["peak_bytes"] < mem["naive_bytes"]


def test_workspace_limit_is_enforced(cnn, tmp_path):
    config = BuildConfig(device="cpu", profiles=[parse_profile("x:1x3x16x16/4x3x16x16/8x3x16x16")], workspace=1024)
    with pytest.raises(greenrt.GreenrtError, match="over the workspace limit"):
        build_engine(cnn, tmp_path / "w.engine", config, log=lambda m: None)
    assert not (tmp_path / "w.engine").exists()
    assert parse_size("4G") == 4 << 30 and parse_size("512M") == 512 << 20


def test_bad_profiles_are_refused(cnn, tmp_path):
    for spec, message in (("y:1x3x16x16", "unknown input 'y'"), ("x:1x3x16x17", "fixed at 16"),
                          ("x:4x3x16x16/2x3x16x16/8x3x16x16", "min <= opt <= max")):
        with pytest.raises(greenrt.GreenrtError, match=message):
            build_engine(cnn, tmp_path / "p.engine", BuildConfig(device="cpu", profiles=[parse_profile(spec)]),
                         log=lambda m: None)


def test_engine_runs_without_onnx_installed(engine, tmp_path):
    x = R.standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = greenrt.InferenceSession(engine[0]).run(None, {"x": x})[0]
    np.save(tmp_path / "y.npy", expected)
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnx_ir'] = None; sys.modules['onnxruntime'] = None\n"
        "import numpy as np, greenrt\n"
        f"s = greenrt.InferenceSession({str(engine[0])!r})\n"
        f"y = s.run(None, {{'x': np.load({str(tmp_path / 'x.npy')!r})}})[0]\n"
        f"assert np.array_equal(y, np.load({str(tmp_path / 'y.npy')!r}))\n"
        "assert 'onnx' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_cli_run_and_inspect_of_an_engine_without_onnx(engine, tmp_path):
    """`greenrt run x.engine` (random inputs, or an .npz) and `greenrt inspect model x.engine` on the lean install:
    the command line must not need onnx either (its random-input helper used to import it)."""
    np.savez(tmp_path / "in.npz", x=R.standard_normal((2, 3, 16, 16)).astype(np.float32))
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnx_ir'] = None; sys.modules['onnxruntime'] = None\n"
        "from greenrt.tools.cli import main\n"
        f"assert main(['run', {str(engine[0])!r}, '--shapes', 'x:2x3x16x16']) == 0\n"
        f"assert main(['run', {str(engine[0])!r}, '--inputs', {str(tmp_path / 'in.npz')!r}]) == 0\n"
        f"assert main(['inspect', 'model', {str(engine[0])!r}]) == 0\n"
        "assert 'onnx' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
        "print('lean ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "lean ok" in proc.stdout, proc.stderr[-3000:]


def test_cli_build_and_compare(cnn, tmp_path, capsys):
    from greenrt.tools.cli import main

    out = tmp_path / "cli.engine"
    assert main(["build", str(cnn), "-o", str(out), "--device", "cpu", "--shapes", "x:1x3x16x16/2x3x16x16/4x3x16x16"]) == 0
    assert main(["compare", str(out), "--shapes", "x:3x3x16x16"]) == 0
    assert "verdict: match" in capsys.readouterr().out
    assert main(["run", str(out), "--shapes", "x:5x3x16x16"]) == 2


@pytest.mark.gpu
def test_cuda_graph_engine_matches_and_captures_once_per_shape(cnn, tmp_path):
    out = tmp_path / "gpu.engine"
    build_engine(cnn, out, BuildConfig(device="cuda", profiles=[parse_profile("x:1x3x16x16/4x3x16x16/8x3x16x16")]),
                 log=lambda m: None)
    sess = greenrt.InferenceSession(out)
    for n in (2, 2, 7, 2):
        x = R.standard_normal((n, 3, 16, 16)).astype(np.float32)
        ours = sess.run(None, {"x": torch.from_numpy(x).cuda()})[0]
        ref = run_onnxruntime(str(cnn), {"x": x})[0]
        np.testing.assert_allclose(ours.cpu().numpy(), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert sess.runner.captures == 2  # batch 2 and batch 7, each captured once
    a = sess.run_device({"x": torch.from_numpy(x).cuda()})[0]
    b = sess.run_device({"x": torch.from_numpy(x).cuda()})[0]
    assert a.data_ptr() == b.data_ptr()  # device outputs without a copy
