"""`greenrt build M.onnx` with no flags works for every model greenrt can run on real inputs.

The models here reject a dim of 1 the way published OCR and speech models do (a 3x3 stride-2 MaxPool, an
AveragePool, a strided STFT-style Conv1d): random inputs whose dynamic dims are made up as 1 cannot run them. The
builder must not fail on made-up shapes: it checks on the samples, at profile shapes, or at the model's static
shapes, and says which checks it skipped and why. Every engine is checked against onnxruntime on real inputs.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.plan.profiles import parse_profile
from greenrt.tools.cli import main
from greenrt.tools.compare import run_onnxruntime

R = np.random.default_rng(11)


def _save(graph, path, opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _pooling_cnn(path):
    """x[N, 3, H, W] -> Conv 3x3 -> Relu -> MaxPool 3x3 s2 (no padding) -> AveragePool 2x2 -> GlobalAveragePool:
    H or W below 7 cannot run."""
    w = numpy_helper.from_array(R.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[2, 2], name="maxpool"),
        helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2, 2], name="avgpool"),
        helper.make_node("GlobalAveragePool", ["a"], ["y"], name="gap"),
    ]
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 1, 1])], [w])
    return _save(graph, path)


def _stft_conv(path):
    """audio[N, T] -> Unsqueeze -> Conv1d(kernel 64, stride 16) -> magnitude-like Mul -> ReduceMean: the framing a
    voice-activity model does; T below 64 cannot run."""
    w = numpy_helper.from_array(R.standard_normal((8, 1, 64)).astype(np.float32) * 0.1, "frames")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Unsqueeze", ["audio", "axes"], ["u"], name="unsqueeze"),
        helper.make_node("Conv", ["u", "frames"], ["spec"], strides=[16], name="stft_conv"),
        helper.make_node("Mul", ["spec", "spec"], ["power"], name="power"),
        helper.make_node("ReduceMean", ["power"], ["energy"], axes=[2], keepdims=0, name="energy"),
    ]
    graph = helper.make_graph(nodes, "stft", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", "T"])],
                              [helper.make_tensor_value_info("energy", TensorProto.FLOAT, ["N", 8])], [w, axes])
    return _save(graph, path, opset=13)


@pytest.fixture(scope="module")
def pool_model(tmp_path_factory):
    return _pooling_cnn(tmp_path_factory.mktemp("pool") / "pool.onnx")


@pytest.fixture(scope="module")
def stft_model(tmp_path_factory):
    return _stft_conv(tmp_path_factory.mktemp("stft") / "stft.onnx")


def _image():
    return R.standard_normal((2, 3, 32, 40)).astype(np.float32)


def _audio():
    t = np.arange(1600, dtype=np.float32) / 16000
    chirp = np.sin(2 * np.pi * (200 + 900 * t) * t)
    return np.stack([chirp, 0.5 * chirp[::-1]]).astype(np.float32) + R.normal(0, 0.05, (2, 1600)).astype(np.float32)


def _check_engine_vs_ort(engine, model, feeds):
    ours = greenrt.InferenceSession(engine).run(None, feeds)
    ref = run_onnxruntime(str(model), feeds)
    for o, r in zip(ours, ref):
        assert np.abs(r).max() > 0
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-5 * np.abs(r).max())


def test_the_made_up_shape_really_fails(pool_model, stft_model):
    """The premise: both models reject the dim-1 inputs a made-up shape gives (else this file tests nothing)."""
    sess = greenrt.InferenceSession(pool_model)
    with pytest.raises(greenrt.ExecutionError):
        sess.run(None, {"x": R.standard_normal((1, 3, 1, 1)).astype(np.float32)})
    with pytest.raises(greenrt.ExecutionError):
        greenrt.InferenceSession(stft_model).run(None, {"audio": R.standard_normal((1, 1)).astype(np.float32)})


@pytest.mark.parametrize("which", ["pool", "stft"])
def test_build_with_no_flags_succeeds_and_says_what_it_skipped(which, pool_model, stft_model, tmp_path):
    model, feeds = (pool_model, {"x": _image()}) if which == "pool" else (stft_model, {"audio": _audio()})
    logs = []
    header = build_engine(model, tmp_path / "m.engine", BuildConfig(device="cpu"), log=logs.append)
    report = header["report"]
    assert report["accuracy_vs_fp32_unoptimized"] == []
    reasons = " ".join(s["reason"] for s in report["skipped_checks"])
    assert "engine not checked" in reasons and "dynamic dims" in reasons and "--inputs" in reasons
    assert any("skipped" in line and "engine not checked" in line for line in logs)
    assert header["profiles"] == []  # dynamic dims stay dynamic
    _check_engine_vs_ort(tmp_path / "m.engine", model, feeds)
    # another shape than any seen at build time runs too
    other = {"x": R.standard_normal((1, 3, 17, 23)).astype(np.float32)} if which == "pool" else \
        {"audio": _audio()[:1, :700]}
    _check_engine_vs_ort(tmp_path / "m.engine", model, other)


def test_build_checks_on_the_samples_given(stft_model, tmp_path):
    np.savez(tmp_path / "a.npz", audio=_audio())
    header = build_engine(stft_model, tmp_path / "m.engine", BuildConfig(device="cpu",
                                                                          inputs=[str(tmp_path / "a.npz")]),
                          log=lambda m: None)
    checks = header["report"]["accuracy_vs_fp32_unoptimized"]
    assert [c["inputs"] for c in checks] == ["sample"] and checks[0]["shapes"] == {"audio": [2, 1600]}
    assert checks[0]["max_rel_err"]["energy"] < 1e-5
    assert header["report"]["skipped_checks"] == []
    assert header["report"]["memory"][0]["label"] == "sample shapes"  # memory measured at the sample's shapes
    _check_engine_vs_ort(tmp_path / "m.engine", stft_model, {"audio": _audio()})


def test_build_with_a_profile_checks_random_inputs_at_its_opt_shape(pool_model, tmp_path):
    config = BuildConfig(device="cpu", profiles=[parse_profile("x:1x3x16x16/2x3x32x32/4x3x64x64")])
    header = build_engine(pool_model, tmp_path / "m.engine", config, log=lambda m: None)
    checks = header["report"]["accuracy_vs_fp32_unoptimized"]
    assert [(c["inputs"], c["shapes"]) for c in checks] == [("random", {"x": [2, 3, 32, 32]})]
    assert header["report"]["memory"][0]["shapes"] == {"x": [4, 3, 64, 64]}


def test_fp16_build_with_no_flags_and_dynamic_dims_reports_no_range_observation(pool_model, tmp_path):
    header = build_engine(pool_model, tmp_path / "m.engine", BuildConfig(device="cpu", precision="fp16"),
                          log=lambda m: None)
    checks = {s["check"] for s in header["report"]["skipped_checks"]}
    assert "fp16 range fallback" in checks
    x = _image()
    ours = greenrt.InferenceSession(tmp_path / "m.engine").run(None, {"x": x})[0]
    ref = run_onnxruntime(str(pool_model), {"x": x})[0]
    assert np.abs(ours - ref).max() <= 1e-2 * np.abs(ref).max()


def test_max_error_without_any_valid_inputs_is_a_clear_error(pool_model, tmp_path):
    with pytest.raises(greenrt.GreenrtError, match="--max-error .* no .*--inputs"):
        build_engine(pool_model, tmp_path / "m.engine", BuildConfig(device="cpu", precision="fp16", max_error=1e-2),
                     log=lambda m: None)


def test_random_values_the_model_rejects_skip_the_check_not_the_build(tmp_path):
    """Static shapes, but an int64 input read as a Reshape target: random values make a shape the model rejects.
    The check is skipped with the reason; the engine is right on valid inputs."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape"),
         helper.make_node("Relu", ["y"], ["z"], name="relu")], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["A", "B"])])
    model = _save(graph, tmp_path / "reshape.onnx")
    header = build_engine(model, tmp_path / "m.engine", BuildConfig(device="cpu"), log=lambda m: None)
    skipped = header["report"]["skipped_checks"]
    assert len(skipped) >= 1 and "rejects random inputs at static shapes" in skipped[0]["reason"]
    feeds = {"x": R.standard_normal((4, 6)).astype(np.float32), "shape": np.array([3, 8], np.int64)}
    _check_engine_vs_ort(tmp_path / "m.engine", model, feeds)


def test_static_model_is_checked_at_its_own_shapes(tmp_path):
    path = _pooling_cnn(tmp_path / "p.onnx")
    m = onnx.load(path)
    for i, d in enumerate([2, 3, 24, 24]):
        m.graph.input[0].type.tensor_type.shape.dim[i].dim_value = d
    onnx.save(m, path)
    header = build_engine(path, tmp_path / "m.engine", BuildConfig(device="cpu"), log=lambda m: None)
    checks = header["report"]["accuracy_vs_fp32_unoptimized"]
    assert [c["label"] for c in checks] == ["static shapes"] and checks[0]["max_rel_err"]["y"] < 1e-5


def test_cli_build_with_no_flags_exit_0(pool_model, tmp_path, capsys):
    assert main(["build", str(pool_model), "-o", str(tmp_path / "m.engine"), "--device", "cpu"]) == 0
    assert "engine not checked" in capsys.readouterr().out


def test_run_says_which_shapes_it_made_up_and_asks_for_inputs(pool_model, capsys):
    assert main(["run", str(pool_model)]) == 2
    err = capsys.readouterr().err
    assert "made-up" in err and "x: ['N', 3, 'H', 'W'] -> 1x3x1x1" in err
    assert "--inputs" in err and "--shapes" in err
    assert "Traceback" not in err


def test_run_with_shapes_for_the_dynamic_dims(pool_model, capsys):
    assert main(["run", str(pool_model), "--shapes", "x:1x3x32x32"]) == 0
    captured = capsys.readouterr()
    assert "y: float32 [1, 4, 1, 1]" in captured.out and "made-up" not in captured.err


def test_fp16_range_fallback_observes_made_up_shapes_when_the_model_takes_them(mlp_path, tmp_path):
    """Dynamic batch, no samples: the range fallback still sees activations (random inputs at batch 1), and the
    report says they were not real data; the engine itself stays unchecked."""
    header = build_engine(mlp_path, tmp_path / "m.engine", BuildConfig(device="cpu", precision="fp16"),
                          log=lambda m: None)
    report = header["report"]
    assert report["precision"]["observed_batches"] == 1
    reasons = {s["check"]: s["reason"] for s in report["skipped_checks"]}
    assert "made-up shapes {'x': [1, 8]}" in reasons["fp16 range fallback on real data"]
    assert "engine not checked" in reasons["accuracy"]
